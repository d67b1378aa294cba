"""Isolation and loading security: no hooks left behind, no code run from a model folder."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from pytest_annotate import ModelLoadError, load_model


def test_an_exception_inside_a_hooked_forward_leaves_no_hooks(tiny_gpt2) -> None:
    def broken(activation, hook):
        raise RuntimeError("boom inside the intervention")

    with pytest.raises(RuntimeError, match="boom"):
        tiny_gpt2.run("A B C", fwd_hooks=[("blocks.1.hook_mlp_out", broken)], key="broken")
    assert tiny_gpt2.hook_leaks() == []


def _copy_without_weights(tiny_gpt2_dir: Path, target: Path) -> Path:
    target.mkdir()
    for f in tiny_gpt2_dir.iterdir():
        if f.suffix != ".safetensors":
            shutil.copy(f, target)
    return target


def test_a_pickled_weights_file_cannot_run_code(tmp_path: Path, tiny_gpt2_dir: Path) -> None:
    folder = _copy_without_weights(tiny_gpt2_dir, tmp_path / "pickled")
    marker = tmp_path / "PAYLOAD_RAN"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"transformer.wte.weight": Payload()}, folder / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="a pickled weights file holds code, which is refused .*posix.system"):
        load_model(str(folder), device="cpu")
    assert not marker.exists(), "the pickle's payload ran"


def test_custom_code_in_a_model_folder_does_not_run_without_trust_remote_code(tmp_path: Path, tiny_gpt2_dir: Path) -> None:
    folder = Path(shutil.copytree(tiny_gpt2_dir, tmp_path / "remote"))
    marker = tmp_path / "CUSTOM_CODE_RAN"
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="custom_gpt", architectures=["CustomModel"],
                  auto_map={"AutoConfig": "custom.CustomConfig", "AutoModelForCausalLM": "custom.CustomModel"})
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "custom.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n"
                                      "from transformers import GPT2Config as CustomConfig, GPT2LMHeadModel as CustomModel\n")
    with pytest.raises(ModelLoadError, match="contains custom code; pytest-annotate runs it only if you pass "
                                             "--trust-remote-code"):
        load_model(str(folder), device="cpu")
    assert not marker.exists(), "the folder's custom code ran"
