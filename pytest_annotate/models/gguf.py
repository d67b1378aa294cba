"""Turn an embedded GGUF file into the dense safetensors folder transformers would write for it.

The embedded models (see :mod:`pytest_annotate.models`) ship as GGUF files. What a load needs is
the folder that transformers' own round trip writes::

    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    model.config.architectures = [...]; model.hf_quantizer = None; del model.config.quantization_config
    model.save_pretrained(out); tokenizer.save_pretrained(out)

:func:`convert` writes that very folder -- the same ``config.json``, ``generation_config.json``,
tokenizer files and a ``model.safetensors`` that is byte for byte the one ``save_pretrained``
writes -- in a fraction of the time and memory. Why the round trip is slow (Gemma 3 270M, 2 CPU
cores): transformers reads the config through ``gguf.GGUFReader``, which builds a numpy view per
element of every metadata array (10-20 s for Gemma's 262k-token vocabulary, and it is done once for
the tokenizer and again for the model); ``gguf.quants.dequantize`` walks a tensor 16 rows at a time
in Python (5 s for Gemma's embedding); and the model then holds every weight in memory before
``save_pretrained`` writes them.

Here, instead:

* the metadata is read by :class:`GGUFFile`, a small reader over a memory map that skips the
  arrays nobody asks for;
* each tensor is dequantized by a vectorized kernel (:data:`KERNELS`: the quant types the
  embedded files use) a slab of rows at a time and written straight to ``model.safetensors`` after
  its header, so no second copy of the weights is ever held; types without a kernel go through
  ``gguf.quants.dequantize``, the reference the kernels are tested against bit for bit;
* tensor names come from gguf's name table the way transformers' ``get_gguf_hf_weights_map`` uses
  it, on the model built on the meta device (:func:`_weights_map`), and the per-architecture fix-ups
  (llama's q/k row permutation, Gemma's ``norm - 1``) are transformers' ``TensorProcessor`` classes
  themselves (:func:`_fixup`);
* the config is built by transformers' own GGUF key table (``GGUF_TO_TRANSFORMERS_MAPPING``) from
  the metadata read here, and saved by transformers;
* the tokenizer is the class ``AutoTokenizer`` would pick, loaded directly from the GGUF (that
  class reads the vocabulary with transformers' fast GGUF metadata reader), which skips the
  ``GGUFReader`` pass ``AutoTokenizer`` makes only to learn the model type; it is built in a
  thread while the weights are written.

``tests/test_gguf_convert.py`` checks the kernels against ``gguf.quants.dequantize`` and the whole
folder against the transformers round trip.

>>> convert(gguf_path, out_dir, architecture="Gemma3ForCausalLM")           # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import struct
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ProgressCallback = Callable[[int, int, str], None]
"""``progress(done_bytes, total_bytes, what)``: called as the weights are written."""

SUPPORTED_ARCHITECTURES = ("llama", "gemma3")
"""GGUF architectures converted here: the embedded models'. Their config needs none of the special
cases of transformers' ``load_gguf_checkpoint`` (t5, mistral-as-llama, MoE, ...) and their tensor
processors work tensor by tensor; others are refused rather than converted differently."""

# ggml type ids (gguf.constants.GGMLQuantizationType) of the types handled here.
F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q6_K = 0, 1, 2, 3, 6, 7, 8, 12, 14

_SLAB_BYTES = 8 << 20
"""Dequantize a big tensor this many output bytes at a time: temporaries stay in cache, and the
embedding (671 MB for Gemma) never exists in memory at once."""


# --------------------------------------------------------------------------- reading the file


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of the file: its GGUF name, shape in numpy order, ggml type and bytes."""

    name: str
    shape: tuple[int, ...]
    ggml_type: int
    offset: int
    """From the start of the file."""
    nbytes: int


_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_NUMPY = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "?", 10: "<u8", 11: "<i8",
          12: "<f8"}
_STRING, _ARRAY = 8, 9


class GGUFFile:
    """The metadata and tensor table of a GGUF file (format versions 2 and 3), over a memory map.

    ``gguf.GGUFReader`` covers this, but it builds a numpy view per element of every array in the
    metadata -- 10-20 s for a 262k-token vocabulary on a slow CPU -- so it is read here instead.
    Arrays of strings are decoded only when asked for (:meth:`strings`); numeric arrays are numpy
    views. Scalar values are what transformers' ``_gguf_parse_value`` makes of them (ints, floats
    widened from float32, bools, str).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.blob = np.memmap(self.path, mode="r", dtype=np.uint8)
        buf = self.blob
        if bytes(buf[:4]) != b"GGUF":
            raise ValueError(f"{self.path} is not a GGUF file (no GGUF magic bytes)")
        version, n_tensors, n_kv = struct.unpack_from("<IQQ", buf, 4)
        if version not in (2, 3):
            raise ValueError(f"{self.path} is GGUF version {version}; versions 2 and 3 are understood")
        pos = 24
        self.fields: dict[str, Any] = {}
        """Scalars as Python values; numeric arrays as numpy arrays; string arrays as :class:`_Strings`."""
        self.types: dict[str, tuple[int, ...]] = {}
        """The GGUF value type of each key, ``(9, element_type)`` for an array."""
        for _ in range(n_kv):
            key, pos = self._string(pos)
            (vtype,) = struct.unpack_from("<I", buf, pos)
            pos += 4
            if vtype == _ARRAY:
                etype, count = struct.unpack_from("<IQ", buf, pos)
                pos += 12
                self.types[key] = (_ARRAY, etype)
                if etype == _STRING:
                    self.fields[key] = _Strings(self, pos, count)
                    for _ in range(count):  # variable-length: walk it without decoding
                        (length,) = struct.unpack_from("<Q", buf, pos)
                        pos += 8 + length
                elif etype in _NUMPY:
                    dtype = np.dtype(_NUMPY[etype])
                    self.fields[key] = np.frombuffer(buf, dtype=dtype, count=count, offset=pos)
                    pos += count * dtype.itemsize
                else:
                    raise ValueError(f"{self.path}: {key} is an array of type {etype}, which is not understood")
            else:
                self.types[key] = (vtype,)
                self.fields[key], pos = self._scalar(pos, vtype, key)
        self.alignment = int(self.fields.get("general.alignment", 32))
        infos = []
        for _ in range(n_tensors):
            name, pos = self._string(pos)
            (n_dims,) = struct.unpack_from("<I", buf, pos)
            dims = struct.unpack_from(f"<{n_dims}Q", buf, pos + 4)
            ggml_type, offset = struct.unpack_from("<IQ", buf, pos + 4 + 8 * n_dims)
            pos += 4 + 8 * n_dims + 12
            infos.append((name, tuple(reversed(dims)), ggml_type, offset))
        data_start = -(-pos // self.alignment) * self.alignment
        self.tensors: list[TensorInfo] = []
        for name, shape, ggml_type, offset in infos:
            block, type_size = _block_sizes(ggml_type)
            n = int(np.prod(shape, dtype=np.int64))
            self.tensors.append(TensorInfo(name, shape, ggml_type, data_start + offset, n // block * type_size))
        if self.tensors:
            last = max(self.tensors, key=lambda t: t.offset)
            if last.offset + last.nbytes > len(buf):
                raise ValueError(f"{self.path} is truncated: its last tensor ends past the end of the file")

    def _string(self, pos: int) -> tuple[str, int]:
        (length,) = struct.unpack_from("<Q", self.blob, pos)
        return bytes(self.blob[pos + 8:pos + 8 + length]).decode("utf-8"), pos + 8 + length

    def _scalar(self, pos: int, vtype: int, key: str) -> tuple[Any, int]:
        if vtype == _STRING:
            return self._string(pos)
        if vtype not in _SCALARS:
            raise ValueError(f"{self.path}: {key} has value type {vtype}, which is not understood")
        (value,) = struct.unpack_from(_SCALARS[vtype], self.blob, pos)
        return value, pos + struct.calcsize(_SCALARS[vtype])

    def value(self, key: str) -> Any:
        """A metadata value as transformers' GGUF config reader sees it (a list for an array)."""
        v = self.fields[key]
        if isinstance(v, _Strings):
            return v.decode()
        if isinstance(v, np.ndarray):
            return v.tolist()
        return v

    def raw(self, tensor: TensorInfo) -> np.ndarray:
        """A tensor's bytes: ``(rows, bytes per row)`` uint8, a view of the memory map."""
        rows = int(np.prod(tensor.shape[:-1], dtype=np.int64)) if len(tensor.shape) > 1 else 1
        data = self.blob[tensor.offset:tensor.offset + tensor.nbytes]
        return data.reshape(rows, tensor.nbytes // rows)

    def close(self) -> None:
        mm = getattr(self.blob, "_mmap", None)
        self.blob = None  # type: ignore[assignment]
        if mm is not None:
            try:
                mm.close()
            except BufferError:  # a view is still alive somewhere; the map goes with it
                pass


class _Strings:
    """A metadata array of strings, decoded on demand."""

    def __init__(self, file: GGUFFile, pos: int, count: int) -> None:
        self.file, self.pos, self.count = file, pos, count

    def __len__(self) -> int:
        return self.count

    def decode(self) -> list[str]:
        buf, pos, out = self.file.blob, self.pos, []
        unpack = struct.Struct("<Q").unpack_from
        raw = memoryview(buf)
        for _ in range(self.count):
            (length,) = unpack(buf, pos)
            out.append(str(raw[pos + 8:pos + 8 + length], "utf-8"))
            pos += 8 + length
        return out


def _block_sizes(ggml_type: int) -> tuple[int, int]:
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    try:
        return GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
    except (KeyError, ValueError) as e:
        raise ValueError(f"ggml type {ggml_type} is not known to the installed gguf package") from e


# --------------------------------------------------------------------------- dequantization
#
# gguf.quants.dequantize is the reference (it is what transformers calls). Its kernels are already
# numpy code, but it applies them 16 rows at a time through np.array_split (16k Python-level calls
# for Gemma's embedding) and allocates every intermediate afresh. The kernels below do the very
# same float32 operations, in the same order (so the results are bit-identical: each is an exactly
# rounded IEEE operation on the same operands), on whole slabs of blocks, into the output buffer.


def _f16(blocks: np.ndarray, start: int) -> np.ndarray:
    """The float16 stored at byte ``start`` of each block, as float32, shape ``(n, 1)``."""
    return blocks[:, start:start + 2].copy().view(np.float16).astype(np.float32)


def _nibbles(qs: np.ndarray, out: np.ndarray) -> None:
    """Low nibbles of ``qs`` (n, k) into ``out[:, :k]``, high nibbles into ``out[:, k:]``."""
    k = qs.shape[1]
    np.bitwise_and(qs, 0x0F, out=out[:, :k])
    np.right_shift(qs, 4, out=out[:, k:])


def _dequant_q8_0(blocks: np.ndarray, out: np.ndarray) -> None:
    # reference: x.view(int8).astype(f32) * d
    out[...] = blocks[:, 2:].view(np.int8)
    np.multiply(out, _f16(blocks, 0), out=out)


def _dequant_q4_0(blocks: np.ndarray, out: np.ndarray) -> None:
    # reference: d * (nibbles.astype(int8) - 8).astype(f32); low nibbles first, then high
    q = np.empty((blocks.shape[0], 32), np.uint8)
    _nibbles(blocks[:, 2:], q)
    out[...] = q
    np.subtract(out, 8, out=out)
    np.multiply(out, _f16(blocks, 0), out=out)


def _dequant_q4_1(blocks: np.ndarray, out: np.ndarray) -> None:
    # reference: (d * nibbles.astype(f32)) + m
    q = np.empty((blocks.shape[0], 32), np.uint8)
    _nibbles(blocks[:, 4:], q)
    out[...] = q
    np.multiply(out, _f16(blocks, 0), out=out)
    np.add(out, _f16(blocks, 2), out=out)


def _q5_ints(blocks: np.ndarray, qh_at: int) -> np.ndarray:
    """The 5-bit values of Q5_0/Q5_1 blocks, (n, 32) uint8: nibble | bit j of the uint32 qh << 4."""
    q = np.empty((blocks.shape[0], 32), np.uint8)
    _nibbles(blocks[:, qh_at + 4:], q)
    high = np.unpackbits(blocks[:, qh_at:qh_at + 4], axis=1, bitorder="little")
    np.left_shift(high, 4, out=high)
    np.bitwise_or(q, high, out=q)
    return q


def _dequant_q5_0(blocks: np.ndarray, out: np.ndarray) -> None:
    # reference: d * ((ql | qh << 4).astype(int8) - 16).astype(f32)
    out[...] = _q5_ints(blocks, 2)
    np.subtract(out, 16, out=out)
    np.multiply(out, _f16(blocks, 0), out=out)


def _dequant_q5_1(blocks: np.ndarray, out: np.ndarray) -> None:
    # reference: (d * q.astype(f32)) + m
    out[...] = _q5_ints(blocks, 4)
    np.multiply(out, _f16(blocks, 0), out=out)
    np.add(out, _f16(blocks, 2), out=out)


def _k_scale_min(scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The eight 6-bit scales and mins packed in the 12 bytes of a Q4_K/Q5_K block, (n, 8) uint8."""
    d, m, md = scales[:, 0:4], scales[:, 4:8], scales[:, 8:12]
    sc = np.concatenate([d & 0x3F, (md & 0x0F) | ((d >> 2) & 0x30)], axis=1)
    mn = np.concatenate([m & 0x3F, (md >> 4) | ((m >> 2) & 0x30)], axis=1)
    return sc, mn


def _dequant_q4_k(blocks: np.ndarray, out: np.ndarray) -> None:
    # reference: (d * sc.astype(f32)) * q - (dmin * m.astype(f32)), per 32-value sub-block; the
    # 128 bytes of nibbles hold sub-blocks 2i (low nibbles) and 2i+1 (high) in bytes 32i..32i+31
    n = blocks.shape[0]
    sc, mn = _k_scale_min(blocks[:, 4:16])
    scale = (_f16(blocks, 0) * sc.astype(np.float32)).reshape(n, 8, 1)
    low = (_f16(blocks, 2) * mn.astype(np.float32)).reshape(n, 8, 1)
    qs = blocks[:, 16:].reshape(n, 4, 1, 32)
    q = np.empty((n, 4, 2, 32), np.uint8)
    np.bitwise_and(qs, 0x0F, out=q[:, :, 0:1])
    np.right_shift(qs, 4, out=q[:, :, 1:2])
    o = out.reshape(n, 8, 32)
    o[...] = q.reshape(n, 8, 32)
    np.multiply(o, scale, out=o)
    np.subtract(o, low, out=o)


def _dequant_q6_k(blocks: np.ndarray, out: np.ndarray) -> None:
    # reference: (d * scales.astype(f32)) * ((ql | qh << 4).astype(int8) - 32).astype(f32), per
    # 16-value group; 128 bytes ql (two halves of 64: low nibbles then high), 64 bytes qh (two
    # halves of 32, four 2-bit fields each), 16 int8 scales, then the float16 d.
    n = blocks.shape[0]
    ql = blocks[:, :128].reshape(n, 2, 1, 64)
    qh = blocks[:, 128:192].reshape(n, 2, 1, 32)
    q = np.empty((n, 2, 2, 64), np.uint8)
    np.bitwise_and(ql, 0x0F, out=q[:, :, 0:1])
    np.right_shift(ql, 4, out=q[:, :, 1:2])
    q = q.reshape(n, 2, 4, 32)
    for i, shift in enumerate((0, 2, 4, 6)):
        high = (qh >> shift) & 0x03
        q[:, :, i:i + 1] |= high << 4
    scale = (_f16(blocks, 208) * blocks[:, 192:208].view(np.int8).astype(np.float32)).reshape(n, 16, 1)
    o = out.reshape(n, 16, 16)
    o[...] = q.reshape(n, 16, 16)
    np.subtract(o, 32, out=o)
    np.multiply(o, scale, out=o)


KERNELS: dict[int, Callable[[np.ndarray, np.ndarray], None]] = {
    Q8_0: _dequant_q8_0,
    Q4_0: _dequant_q4_0,
    Q4_1: _dequant_q4_1,
    Q5_0: _dequant_q5_0,
    Q5_1: _dequant_q5_1,
    Q4_K: _dequant_q4_k,
    Q6_K: _dequant_q6_k,
}
"""ggml type -> ``kernel(blocks, out)``: ``blocks`` is ``(n, type_size)`` uint8, ``out`` ``(n, block_size)``
float32. Each is bit-identical to ``gguf.quants.dequantize`` (``tests/test_gguf_convert.py``)."""


def dequantize(raw: np.ndarray, ggml_type: int, out: np.ndarray | None = None) -> np.ndarray:
    """Dequantize ``raw`` (``(rows, bytes per row)`` uint8, as in the file) to float32 ``(rows, columns)``.

    Gives what ``gguf.quants.dequantize(raw, ggml_type)`` gives, bit for bit; into ``out`` if given.
    """
    block, type_size = _block_sizes(ggml_type)
    rows = raw.shape[0]
    cols = raw.shape[-1] // type_size * block
    if out is None:
        out = np.empty((rows, cols), np.float32)
    if ggml_type == F32:
        out[...] = raw.view(np.float32).reshape(rows, cols)
    elif ggml_type == F16:
        out[...] = raw.view(np.float16).reshape(rows, cols)
    elif ggml_type in KERNELS:
        KERNELS[ggml_type](raw.reshape(-1, type_size), out.reshape(-1, block))
    else:
        from gguf.quants import dequantize as reference

        out[...] = reference(np.ascontiguousarray(raw), ggml_type).reshape(rows, cols)
    return out


# --------------------------------------------------------------------------- the conversion


def convert(
    gguf_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    architecture: str | None = None,
    progress: ProgressCallback | None = None,
) -> None:
    """Write into ``out_dir`` the dense folder transformers' GGUF round trip writes (module docstring).

    ``architecture`` (e.g. ``"Gemma3ForCausalLM"``) is recorded in ``config.json`` as
    ``architectures``, as ``dense_copy`` always did. ``progress(done_bytes, total_bytes, what)`` is
    called as the weights are written (``what``: the tensor just written, then ``"tokenizer"`` if the
    tokenizer, built alongside, is still being built); without it a tqdm bar is shown when stderr is
    a terminal. Raises ``NotImplementedError`` for a GGUF architecture other than
    :data:`SUPPORTED_ARCHITECTURES`. Peak memory is the file's memory map plus a few slabs.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    gguf = GGUFFile(gguf_path)
    try:
        config_dict = gguf_config_dict(gguf)
        config = _config(config_dict, architecture)
        plan = _tensor_plan(gguf, config, config_dict)
        total = sum(p.nbytes for p in plan)
        report, close_bar = _reporter(progress, total)
        # The tokenizer is built (pure Python, mostly) while the weights are written (numpy and
        # file writes, which release the GIL): on two cores that hides most of its 2-4 s.
        with ThreadPoolExecutor(1, thread_name_prefix="gguf-tokenizer") as pool:
            tokenizer = pool.submit(save_tokenizer, gguf_path, config, out)
            try:
                report(0, "weights")
                _write_safetensors(gguf, plan, out / "model.safetensors", report)
                if not tokenizer.done():
                    report(total, "tokenizer")
            finally:
                close_bar()
            tokenizer.result()
        config.save_pretrained(out)
        generation = _generation_config(config)
        if generation is not None:
            generation.save_pretrained(out)
    finally:
        gguf.close()


def gguf_config_dict(gguf: GGUFFile) -> dict[str, Any]:
    """The config dict transformers' ``load_gguf_checkpoint(path, return_tensors=False)`` gives.

    Its key table is transformers' own; what is reproduced here is its walk over the metadata, for
    the architectures of :data:`SUPPORTED_ARCHITECTURES` (which need none of its special cases)."""
    from transformers.modeling_gguf_pytorch_utils import (
        GGUF_CONFIG_DEFAULTS_MAPPING,
        GGUF_TO_TRANSFORMERS_MAPPING,
    )

    architecture = gguf.fields["general.architecture"]
    name = gguf.fields.get("general.name", "")
    if architecture not in SUPPORTED_ARCHITECTURES or ("llama" in architecture and "mistral" in name):
        raise NotImplementedError(
            f"{gguf.path.name}: converting GGUF architecture {architecture!r} is not implemented "
            f"(supported: {', '.join(SUPPORTED_ARCHITECTURES)})"
        )
    config: dict[str, Any] = {
        "tie_word_embeddings": all(t.name != "output.weight" for t in gguf.tensors),
        **GGUF_CONFIG_DEFAULTS_MAPPING.get(architecture, {}),
    }
    renames = GGUF_TO_TRANSFORMERS_MAPPING["config"]
    for key in gguf.fields:
        prefix, _, rest = key.partition(".")
        target = renames.get(prefix, {}).get(rest)
        if target is None or target == -1:
            continue
        value = gguf.value(key)
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        config[target] = value
    if config.get("model_type") == "gemma3":  # the file holds the text backbone only
        config["model_type"] = "gemma3_text"
    if "vocab_size" not in config and "tokenizer.ggml.tokens" in gguf.fields:
        config["vocab_size"] = len(gguf.fields["tokenizer.ggml.tokens"])
    return config


def _config(config_dict: dict[str, Any], architecture: str | None) -> Any:
    """The config object the round trip saves: built by ``from_dict`` as ``AutoConfig`` builds it, with
    the dtype ``from_pretrained(dtype=torch.float32)`` records and the architecture ``dense_copy`` sets."""
    import torch
    from transformers import CONFIG_MAPPING

    config = CONFIG_MAPPING[config_dict["model_type"]].from_dict(dict(config_dict))
    config.dtype = torch.float32
    if architecture is not None:
        config.architectures = [architecture]
    return config


def _generation_config(config: Any) -> Any:
    """The generation config ``from_pretrained`` derives from the model config, or None."""
    from transformers import AutoModelForCausalLM, GenerationConfig

    model_class = AutoModelForCausalLM._model_mapping[type(config)]
    if not model_class.can_generate():
        return None
    return GenerationConfig.from_model_config(config)


def save_tokenizer(gguf_path: str | os.PathLike[str], config: Any, out: Path) -> Any:
    """Build the tokenizer ``AutoTokenizer.from_pretrained(gguf_file=...)`` builds, save it in ``out``.

    ``AutoTokenizer`` first reads the whole GGUF with ``gguf.GGUFReader`` (10-20 s for Gemma) only
    to learn the model type and so the tokenizer class; that class then builds the tokenizer from
    the file with transformers' fast metadata reader. The class is picked here the way
    ``AutoTokenizer`` picks it for a folder without a ``tokenizer_config.json`` (which is what a
    GGUF's folder is), from the config already built, and asked directly.
    """
    from transformers import TokenizersBackend
    from transformers.models.auto.tokenization_auto import TOKENIZER_MAPPING

    path = Path(gguf_path)
    tokenizer_class = TOKENIZER_MAPPING.get(type(config), TokenizersBackend)
    tokenizer = tokenizer_class.from_pretrained(str(path.parent), gguf_file=path.name)
    # transformers records HF_HUB_OFFLINE in the saved tokenizer_config.json ("local_files_only": true);
    # write what it writes without it, so the cache's bytes do not depend on the user's environment.
    if tokenizer.init_kwargs.get("local_files_only"):
        tokenizer.init_kwargs["local_files_only"] = False
    tokenizer.save_pretrained(out)
    return tokenizer


@dataclass(frozen=True)
class _Planned:
    """One tensor of ``model.safetensors``: its name there, its source and whether it needs a fix-up."""

    name: str
    source: TensorInfo
    shape: tuple[int, ...]
    fixup: Callable[[np.ndarray], np.ndarray] | None

    @property
    def nbytes(self) -> int:
        return 4 * int(np.prod(self.shape, dtype=np.int64))


def _tensor_plan(gguf: GGUFFile, config: Any, config_dict: dict[str, Any]) -> list[_Planned]:
    """What ``save_pretrained`` writes, in its order: the HF name, shape and fix-up of each tensor.

    The names come from transformers' ``get_gguf_hf_weights_map`` on the model class built on the
    meta device (no memory); the fix-ups are transformers' ``TensorProcessor`` for the architecture.
    A tensor the model has and the file lacks (other than a tied duplicate, which ``save_pretrained``
    leaves out) is an error, as are a shape mismatch and a file tensor with no place in the model.
    """
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.modeling_gguf_pytorch_utils import (
        TENSOR_PROCESSORS,
        TensorProcessor,
        get_gguf_hf_weights_map,
    )

    architecture = gguf.fields["general.architecture"]
    processor = TENSOR_PROCESSORS.get(architecture, TensorProcessor)(config=config_dict)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    name_map = _weights_map(model, processor, config)
    if any(t.name not in name_map for t in gguf.tensors):
        name_map = get_gguf_hf_weights_map(model, processor)
    params = model.state_dict(keep_vars=True)
    plan, placed = [], set()
    for tensor in gguf.tensors:
        if tensor.name not in name_map:
            raise ValueError(f"{gguf.path.name}: tensor {tensor.name} has no place in {type(model).__name__}")
        hf_name = name_map[tensor.name]
        if hf_name not in params or tuple(params[hf_name].shape) != tensor.shape:
            raise ValueError(f"{gguf.path.name}: {tensor.name} {tensor.shape} does not fit {hf_name}")
        plan.append(_Planned(hf_name, tensor, tensor.shape, _fixup(processor, tensor, name_map)))
        placed.add(id(params[hf_name]))
    missing = [name for name, p in params.items() if id(p) not in placed]
    if missing:
        raise ValueError(f"{gguf.path.name} lacks tensors for {', '.join(missing[:5])}")
    # safetensors orders tensors by dtype alignment, then name; all of these are float32.
    return sorted(plan, key=lambda p: p.name)


def _weights_map(model: Any, processor: Any, config: Any) -> dict[str, str]:
    """GGUF tensor name -> HF name, as transformers' ``get_gguf_hf_weights_map`` maps the model's own keys.

    That function also recurses into every submodule (for models converted from a base model, like
    Bloom's), building gguf's name table anew for each of Gemma's 313 modules (1.5-3 s); a
    submodule's entries are only used for GGUF names the top level leaves unmapped. This is its top
    level alone; :func:`_tensor_plan` falls back to the whole function when a file tensor is left
    unmapped, so the two never disagree on a tensor of the file.
    """
    from gguf import MODEL_ARCH_NAMES, get_tensor_name_map

    model_type = {"gemma3_text": "gemma3"}.get(config.model_type, config.model_type)
    arch = next((key for key, value in MODEL_ARCH_NAMES.items() if value == model_type), None)
    if arch is None:
        return {}
    table = get_tensor_name_map(arch, config.num_hidden_layers)
    out: dict[str, str] = {}
    for hf_name in model.state_dict():
        hf_name = processor.preprocess_name(hf_name)
        name, suffix = hf_name, ""
        if hf_name.endswith((".weight", ".bias")):
            name, suffix = hf_name.rsplit(".", 1)
            suffix = "." + suffix
        gguf_name = table.get_name(name)
        if gguf_name is None:
            processor.perform_fallback_tensor_mapping(out, suffix, "", hf_name)
            continue
        out[gguf_name + suffix] = hf_name
    return out


def _fixup(processor: Any, tensor: TensorInfo, name_map: dict[str, str]) -> Callable[[np.ndarray], np.ndarray] | None:
    """Transformers' per-architecture fix-up of this tensor (llama's q/k row permutation, Gemma's
    ``norm - 1``), or None when it leaves the tensor as it is -- which is learned by handing the
    processor a free stand-in (a zero-stride view) of the tensor's shape: a processor that returns
    its input untouched gets none, and the tensor can be streamed a slab at a time."""
    standin = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), tensor.shape, (0,) * len(tensor.shape))

    def apply(weights: np.ndarray) -> np.ndarray:
        result = processor.process(weights=weights, name=tensor.name, tensor_key_mapping=name_map,
                                   parsed_parameters={"tensors": {}})
        if result.name != tensor.name:
            raise NotImplementedError(f"the GGUF tensor processor renames {tensor.name}; not supported here")
        return result.weights

    if tensor.nbytes > _SLAB_BYTES and apply(standin) is standin:
        return None
    return apply


def _reporter(progress: ProgressCallback | None, total: int) -> tuple[Callable[[int, str], None], Callable[[], None]]:
    """``report(done, what)`` and ``close()``: the caller's callback, else a tqdm bar on a terminal."""
    if progress is not None:
        return (lambda done, what: progress(done, total, what)), (lambda: None)
    if not sys.stderr.isatty():
        return (lambda done, what: None), (lambda: None)
    from tqdm.auto import tqdm

    bar = tqdm(total=total, unit="B", unit_scale=True, desc="pytest-annotate: converting GGUF", leave=False)

    def report(done: int, what: str) -> None:
        bar.set_postfix_str(what[-40:], refresh=False)
        bar.update(done - bar.n)

    return report, bar.close


def _write_safetensors(gguf: GGUFFile, plan: list[_Planned], path: Path, report: Callable[[int, str], None]) -> None:
    """Write ``plan`` as the safetensors file ``save_pretrained`` writes: a compact JSON header
    (``__metadata__`` first, then the tensors in file order) padded with spaces to 8 bytes, then the
    data. Each tensor is dequantized into a reused buffer a slab at a time and written out."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for p in plan:
        header[p.name] = {"dtype": "F32", "shape": list(p.shape), "data_offsets": [offset, offset + p.nbytes]}
        offset += p.nbytes
    blob = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    blob += b" " * (-len(blob) % 8)
    from pytest_annotate.models.embedded import WriteThrough

    slab = np.empty(_SLAB_BYTES // 4, np.float32)
    done = 0
    with WriteThrough(path) as fh:
        fh.write(len(blob).to_bytes(8, "little"))
        fh.write(blob)
        for p in plan:
            raw = gguf.raw(p.source)
            if p.fixup is not None:
                weights = p.fixup(dequantize(raw, p.source.ggml_type).reshape(p.shape))
                weights = np.ascontiguousarray(weights, dtype=np.float32)
                if weights.shape != p.shape:
                    raise ValueError(f"the fix-up of {p.source.name} changed its shape to {weights.shape}")
                fh.write(memoryview(weights.reshape(-1)).cast("B"))
            else:
                rows = raw.shape[0]
                cols = p.nbytes // 4 // rows
                step = max(1, slab.size // cols)
                for start in range(0, rows, step):
                    chunk = raw[start:start + step]
                    out = slab[:chunk.shape[0] * cols].reshape(chunk.shape[0], cols)
                    dequantize(chunk, p.source.ggml_type, out=out)
                    fh.write(memoryview(out.reshape(-1)).cast("B"))
            done += p.nbytes
            report(done, p.name)
        if fh.tell() != 8 + len(blob) + offset:
            raise AssertionError(f"wrote {fh.tell()} bytes to {path}, expected {8 + len(blob) + offset}")
