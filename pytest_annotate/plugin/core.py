"""The pytest plugin: options, markers, fixtures, header and isolation checks.

This module only wires pytest to the rest of the package: no model maths lives here.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from pytest_annotate.errors import AnnotateError, VerdictError
from pytest_annotate.models.embedded import EMBEDDED
from pytest_annotate.models.spec import (
    DEFAULT_MODEL,
    DTYPES,
    PROCESSINGS,
    ModelSpec,
    ResolvedModel,
    resolve,
)
from pytest_annotate.plugin import keys

# The tolerant snapshot extension is its own plugin module (options, fixture, drift summary).

LAB = pytest.StashKey[Any]()
RESOLVED = pytest.StashKey[ResolvedModel]()
NOT_JUDGED = pytest.StashKey[list[str]]()
_TORCH_FLAGS = pytest.StashKey[tuple[bool, bool, bool]]()

# (option, ini name, type, default, help). One table, so the CLI and the ini file cannot drift apart.
_OPTIONS: list[tuple[str, str, str, Any, str]] = [
    ("--model", "annotate_model", "string", DEFAULT_MODEL,
     f"model to test: an embedded model ({', '.join(EMBEDDED)}), a TransformerLens alias "
     "(gpt2-small, pythia-70m, ...), a HuggingFace id or a local directory. Default: %(default)s"),
    ("--checkpoint", "annotate_checkpoint", "string", None,
     "training step to load, e.g. 3000 for Pythia's step3000, or N for a local series' step{N}/"),
    ("--revision", "annotate_revision", "string", None, "HuggingFace revision (branch, tag or commit)"),
    ("--device", "annotate_device", "string", "auto", "auto, cpu, cuda, cuda:N or mps. Default: %(default)s"),
    ("--dtype", "annotate_dtype", "string", "float32", f"{' | '.join(DTYPES)}. Default: %(default)s"),
    ("--device-map", "annotate_device_map", "string", None,
     "split a model larger than one GPU over all visible GPUs with accelerate: auto, balanced, "
     "balanced_low_0 or sequential (instead of --device)"),
    ("--processing", "annotate_processing", "string", "compat",
     "compat: TransformerLens compatibility mode (folded LayerNorm, legacy HookedTransformer numerics); "
     "raw: HuggingFace numerics. Default: %(default)s"),
    ("--threads", "annotate_threads", "string", None,
     "torch CPU threads (timings on a shared machine are stable with 1). Default: torch's choice"),
    ("--annotate-seed", "annotate_seed", "string", "0",
     "seed for torch, numpy and random, set before every test that uses the model, so random prompts "
     "and ablations are the same in every run and in any test order. Default: %(default)s"),
    ("--nondeterministic", "annotate_nondeterministic", "bool", False,
     "allow torch's nondeterministic kernels (faster on some GPUs); by default the model runs with "
     "torch.use_deterministic_algorithms(True), so two runs give the same numbers"),
    ("--random-weights", "annotate_random_weights", "bool", False,
     "structural dry run: the declared architecture with random weights; verdicts are not judged"),
    ("--trust-remote-code", "annotate_trust_remote_code", "bool", False,
     "allow a HuggingFace model's own Python code to run (off unless given)"),
    ("--run-gpu-checks", "annotate_run_gpu_checks", "bool", False,
     "run tests marked @pytest.mark.gpu even when the model is not on a GPU"),
]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("annotate", "pytest-annotate (model behaviour tests)")
    for flag, ini, kind, default, help_text in _OPTIONS:
        dest = ini
        if kind == "bool":
            # --flag / --no-flag: None (not given) falls back to the ini file, so either form overrides it.
            group.addoption(flag, action=argparse.BooleanOptionalAction, default=None, dest=dest,
                            help=f"{help_text} (the --no- form turns it off over the ini file)")
        else:
            group.addoption(flag, action="store", default=None, dest=dest, metavar=flag[2:].upper(),
                            help=help_text % {"default": default} if "%(default)s" in help_text else help_text)
        parser.addini(ini, help=f"default for {flag}", type=kind if kind == "bool" else "string",
                      default=default)


def option(config: pytest.Config, ini: str) -> Any:
    """An option's value: the command line wins over ``[tool.pytest.ini_options]``."""
    value = config.getoption(ini)
    return config.getini(ini) if value is None else value


def _int_option(config: pytest.Config, ini: str, flag: str) -> int | None:
    raw = option(config, ini)
    if raw in (None, ""):
        return None
    try:
        return int(str(raw).removeprefix("step"))
    except ValueError:
        raise pytest.UsageError(f"{flag} {raw!r} is not a whole number (e.g. {flag} 3000)") from None


def spec_from_config(config: pytest.Config) -> ModelSpec:
    """The session's :class:`ModelSpec`, from the command line and the ini file."""
    return ModelSpec(
        name=str(option(config, "annotate_model")),
        checkpoint=_int_option(config, "annotate_checkpoint", "--checkpoint"),
        revision=option(config, "annotate_revision") or None,
        device=str(option(config, "annotate_device")),
        dtype=str(option(config, "annotate_dtype")),  # type: ignore[arg-type]
        processing=str(option(config, "annotate_processing")),  # type: ignore[arg-type]
        random_weights=bool(option(config, "annotate_random_weights")),
        trust_remote_code=bool(option(config, "annotate_trust_remote_code")),
        device_map=option(config, "annotate_device_map") or None,
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", _MARKER_HELP)
    config.addinivalue_line(
        "markers", "gpu: a heavy check; skipped unless the model runs on a GPU or --run-gpu-checks is given"
    )
    try:
        resolved = resolve(spec_from_config(config))
        if resolved.spec.device not in ("auto", "cpu"):
            from pytest_annotate.models.load import resolve_device

            resolve_device(resolved.spec.device)  # a GPU this machine lacks fails here, before collection
    except AnnotateError as e:
        raise pytest.UsageError(f"pytest-annotate: {e}") from None
    threads = _int_option(config, "annotate_threads", "--threads")
    if threads is not None:
        if threads < 1:
            raise pytest.UsageError(f"--threads {threads}: give 1 or more")
        import torch

        torch.set_num_threads(threads)
    _int_option(config, "annotate_seed", "--annotate-seed")  # a bad seed is a usage error before collection
    config.stash[RESOLVED] = resolved
    config.stash[keys.MODEL_SPEC] = resolved.spec
    config.stash[keys.MODEL_ID] = resolved.model_id
    config.stash[keys.DTYPE] = resolved.spec.dtype
    config.stash[keys.RECORDED_RESULTS] = []
    config.stash[NOT_JUDGED] = []
    if not hasattr(config, "workerinput"):  # pytest-xdist: the controller sees every worker's reports
        config.pluginmanager.register(JudgedTally(resolved.model_id), "annotate-judged")


def pytest_report_header(config: pytest.Config) -> list[str]:
    resolved = config.stash.get(RESOLVED, None)
    if resolved is None:
        return []
    spec = resolved.spec
    source = {"embedded": f"embedded, from {resolved.embedded.package if resolved.embedded else ''}",
              "local": f"local {resolved.source}", "hub": f"HuggingFace {resolved.source}",
              "random": "RANDOM WEIGHTS: plumbing only, verdicts are not judged"}[resolved.kind]
    rev = f", revision {resolved.revision}" if resolved.revision else ""
    return [
        f"pytest-annotate: model {resolved.model_id} ({source}{rev}), "
        f"{f'device map {spec.device_map}' if spec.device_map else f'device {spec.device}'}, "
        f"dtype {spec.dtype}, processing {spec.processing}",
        f"pytest-annotate: transformer-lens {_version('transformer-lens')}, torch {_version('torch')}, "
        f"transformers {_version('transformers')}",
    ]


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


# --------------------------------------------------------------------------- markers

#: How ``--processing`` is described in a skip reason.
_PROCESSING_WORDS = {
    "compat": "TransformerLens compatibility mode: folded LayerNorm, centred weights, as legacy HookedTransformer",
    "raw": "HuggingFace numerics, nothing folded",
}
_MARKER_HELP = (
    "model(*names, processing=None, bos=None, dtype=None): this behaviour belongs to these models (names as "
    "for --model: gpt2-small, pythia-70m, gemma-3-270m, a folder name...) and its numbers were published in "
    "this --processing (compat or raw), BOS policy (True: a BOS token before every text prompt; False: none) "
    "and --dtype. Under another model, processing or dtype it is skipped with the reason and the options to "
    "pass; bos is applied to the model while the test runs"
)


@dataclass(frozen=True)
class Published:
    """What a behaviour's ``model`` markers say: its models, and the setting its numbers were published in.

    Markers nearest the test win for each setting (a function's marker over its module's
    ``pytestmark``); the model names of all of them count.
    """

    names: tuple[str, ...]
    processing: str | None = None
    bos: bool | None = None
    dtype: str | None = None

    @classmethod
    def of(cls, item: pytest.Item) -> Published | None:
        markers = list(item.iter_markers("model"))
        if not markers:
            return None
        settings: dict[str, Any] = {}
        for m in markers:  # nearest first
            unknown = sorted(set(m.kwargs) - {"processing", "bos", "dtype"})
            if unknown:
                raise pytest.UsageError(
                    f"{item.nodeid}: @pytest.mark.model(...) got {', '.join(f'{k}=' for k in unknown)}; "
                    "it takes model names and processing=, bos=, dtype="
                )
            for key, value in m.kwargs.items():
                settings.setdefault(key, value)
        published = cls(tuple(n for m in markers for n in m.args), **settings)
        published._validate(item.nodeid)
        return published

    def _validate(self, nodeid: str) -> None:
        bad = None
        if self.processing is not None and self.processing not in PROCESSINGS:
            bad = f"processing={self.processing!r}: valid: {', '.join(map(repr, PROCESSINGS))}"
        elif self.dtype is not None and self.dtype not in DTYPES:
            bad = f"dtype={self.dtype!r}: valid: {', '.join(map(repr, DTYPES))}"
        elif self.bos is not None and not isinstance(self.bos, bool):
            bad = f"bos={self.bos!r}: give True (a BOS token before every text prompt) or False (none)"
        elif any(not isinstance(n, str) or not n for n in self.names):
            bad = f"model names {self.names!r}: give names as for --model (strings)"
        if bad:
            raise pytest.UsageError(f"{nodeid}: @pytest.mark.model(...) {bad}")

    def skip_reason(self, resolved: ResolvedModel) -> str | None:
        """Why this session cannot run the behaviour as published (None: it can), and what to pass."""
        spec = resolved.spec
        fix = []
        if self.processing is not None and self.processing != spec.processing:
            fix.append(f"--processing {self.processing}")
        if self.dtype is not None and self.dtype != spec.dtype:
            fix.append(f"--dtype {self.dtype}")
        if self.names and not _marker_matches(resolved, self.names):
            return (f"belongs to {' / '.join(self.names)}; this session runs {resolved.model_id} "
                    f"(run with {' '.join([f'--model {self.names[0]}', *fix])})")
        why = []
        if self.processing is not None and self.processing != spec.processing:
            why.append(f"published in {self.processing} processing ({_PROCESSING_WORDS[self.processing]}); "
                       f"this session runs --processing {spec.processing}")
        if self.dtype is not None and self.dtype != spec.dtype:
            why.append(f"published in {self.dtype}; this session runs --dtype {spec.dtype}")
        return f"{'; '.join(why)}: run with {' '.join(fix)}" if why else None


PUBLISHED = pytest.StashKey[Published]()


def _marker_matches(resolved: ResolvedModel, wanted: Iterable[str]) -> bool:
    names = resolved.names()
    for want in wanted:
        w = want.lower()
        if w in names:
            return True
        try:
            other = resolve(ModelSpec(want))
        except AnnotateError:
            continue
        if other.names() & names:
            return True
    return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    resolved = config.stash.get(RESOLVED, None)
    if resolved is None:
        return
    run_gpu = bool(option(config, "annotate_run_gpu_checks"))
    on_gpu = resolved.spec.device.startswith("cuda") or (resolved.spec.device == "auto" and _cuda_available())
    for item in items:
        published = Published.of(item)
        if published is not None:
            item.stash[PUBLISHED] = published
            reason = published.skip_reason(resolved)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))
        if item.get_closest_marker("gpu") and not (on_gpu or run_gpu):
            item.add_marker(pytest.mark.skip(reason="@pytest.mark.gpu: heavy check; runs on --device cuda or with "
                                                    "--run-gpu-checks"))


# --------------------------------------------------------------------------- a session that judged nothing


@dataclass(eq=False)  # registered as a pytest plugin, which must be hashable
class JudgedTally:
    """Which tests with a ``model`` marker ran and which were skipped (with why), from their reports.

    A session that selected such tests and ran none of them has judged nothing about its model: a CI
    job that goes green that way hides a wrong ``--model``, ``--processing`` or ``-k``. Such a session
    ends with exit code 5 (pytest's "no tests ran") and says what was skipped, counted by reason.
    This holds for any selection (a folder, ``-k``, node ids): asking for behaviours that all skip
    under this model is a mistake worth a red run. Sessions whose tests carry no ``model`` marker
    (``pytest tests/``) are not affected; nor is a session that failed for another reason.
    """

    model_id: str
    ran: set[str] = field(default_factory=set)
    skipped: dict[str, str] = field(default_factory=dict)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if "model" not in report.keywords:
            return
        if report.skipped and not hasattr(report, "wasxfail"):
            longrepr = report.longrepr
            reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
            self.skipped.setdefault(report.nodeid, reason.removeprefix("Skipped: "))
        elif report.when == "call" or report.failed:
            self.ran.add(report.nodeid)

    @property
    def judged_nothing(self) -> bool:
        return bool(self.skipped) and not self.ran

    def message(self) -> list[str]:
        counts = Counter(self.skipped.values())
        n = len(self.skipped)
        lines = [f"pytest-annotate: no behaviour of {self.model_id} was judged: the {n} selected behaviour"
                 f"{'s' if n != 1 else ''} with a model marker {'were' if n != 1 else 'was'} all skipped"
                 " (exit code 5). Skipped, by reason:"]
        lines += [f"  {count:4d} × {reason}" for reason, count in counts.most_common()]
        return lines

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.judged_nothing and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.NO_TESTS_COLLECTED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.judged_nothing:
            terminalreporter.write_sep("=", "pytest-annotate: NOTHING JUDGED", red=True)
            for line in self.message():
                terminalreporter.write_line(line)


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


# --------------------------------------------------------------------------- fixtures


def worker_device(device: str, worker: str | None, n_gpus: int) -> str:
    """Spread pytest-xdist workers over GPUs: ``--device cuda`` on worker ``gwN`` runs on ``cuda:N mod n_gpus``.

    >>> worker_device("cuda", "gw3", 2), worker_device("cuda", None, 2), worker_device("cuda:1", "gw0", 2)
    ('cuda:1', 'cuda', 'cuda:1')
    """
    if device not in ("cuda", "auto") or not worker or n_gpus < 2:
        return device
    return f"cuda:{int(worker.removeprefix('gw')) % n_gpus}"


def get_lab(config: pytest.Config) -> Any:
    """The session's Lab, loaded on first use. A load failure ends the session with one message."""
    lab = config.stash.get(LAB, None)
    if lab is not None:
        return lab
    import dataclasses
    import os

    from pytest_annotate.models.load import load

    resolved = config.stash[RESOLVED]
    if (resolved.spec.device in ("cuda", "auto") and resolved.spec.device_map is None
            and os.environ.get("PYTEST_XDIST_WORKER")):
        import torch

        n_gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        device = worker_device(resolved.spec.device, os.environ["PYTEST_XDIST_WORKER"], n_gpus)
        resolved = dataclasses.replace(resolved, spec=dataclasses.replace(resolved.spec, device=device))
    deterministic = not option(config, "annotate_nondeterministic")
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when cuBLAS starts: before the load
    try:
        lab = load(resolved, progress=_conversion_progress(config))
    except AnnotateError as e:
        # One clear message for the whole session, not a traceback per test.
        pytest.exit(f"pytest-annotate could not load the model: {e}", returncode=pytest.ExitCode.USAGE_ERROR)
    except Exception as e:  # noqa: BLE001 - anything else from transformers/torch gets the same treatment
        pytest.exit(f"pytest-annotate could not load the model {config.stash[RESOLVED].spec.name!r}: "
                    f"{type(e).__name__}: {e}", returncode=pytest.ExitCode.USAGE_ERROR)
    # After the load, which imports torch._inductor anyway (the flag setter imports it: ~1 s).
    config.stash[_TORCH_FLAGS] = use_deterministic_algorithms(deterministic)
    config.stash[LAB] = lab
    return lab


def _conversion_progress(config: pytest.Config) -> Callable[[int, int, str], None]:
    """A progress line on pytest's terminal while an embedded model's GGUF file is converted on first
    use (a minute of silence after the first test file's name otherwise). Output capture is suspended
    for each update: the load happens inside a fixture, where stdout and stderr are captured."""
    writer = config.get_terminal_writer()
    capman = config.pluginmanager.getplugin("capturemanager")
    state = {"last": -1}

    def report(done: int, total: int, what: str) -> None:
        percent = int(100 * done / total) if total else 100
        if percent == state["last"] or (percent % 5 and done < total):
            return
        state["last"] = percent
        width = 30
        bar = "#" * (width * percent // 100)
        line = f"\rpytest-annotate: converting the embedded GGUF model (once): [{bar:<{width}}] {percent:3d}% {what[:40]:<40}"
        with capman.global_and_fixture_disabled() if capman is not None else contextlib.nullcontext():
            writer.write(line, flush=True)
            if done >= total:
                writer.write("\n", flush=True)

    return report


def use_deterministic_algorithms(on: bool = True) -> tuple[bool, bool, bool]:
    """Ask torch for deterministic kernels (or, with ``on=False``, allow the others: ``--nondeterministic``)
    before any test runs the model; return the previous ``(deterministic, warn_only, cudnn.benchmark)``
    so the session can restore them.

    On CPU this changes nothing measurable; on CUDA it makes cuBLAS and scatter/index kernels give the
    same bits in every run, which also needs ``CUBLAS_WORKSPACE_CONFIG`` set before cuBLAS starts
    (:func:`get_lab` sets it before loading). ``warn_only``: an op with no deterministic kernel warns
    rather than failing the suite.
    """
    import torch

    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
              torch.backends.cudnn.benchmark)
    torch.use_deterministic_algorithms(on, warn_only=True)
    torch.backends.cudnn.benchmark = False
    return before


def pytest_unconfigure(config: pytest.Config) -> None:
    """Give torch back the flags the session changed (matters when pytest runs in-process)."""
    flags = config.stash.get(_TORCH_FLAGS, None)
    if flags is not None:
        import torch

        torch.use_deterministic_algorithms(flags[0], warn_only=flags[1])
        torch.backends.cudnn.benchmark = flags[2]


@pytest.fixture(scope="session")
def model(pytestconfig: pytest.Config) -> Any:
    """The session's model, a :class:`pytest_annotate.Lab` wrapping TransformerLens's bridge.

    Loaded once per session; its runs are memoized (``model.run(prompt)``).
    """
    return get_lab(pytestconfig)


@pytest.fixture(scope="session")
def cache(model: Any) -> Callable[..., Any]:
    """``cache(prompt, names=None)``: the prompt's activations, computed once and shared across tests."""
    return model.cache


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Record every result the test's ``assert_*`` helpers judge, for the summary and the report."""
    from pytest_annotate.results import RECORDERS

    recorded = item.config.stash.get(keys.RECORDED_RESULTS, None)
    if recorded is None:
        return (yield)

    def record(result: Any) -> None:
        recorded.append((item.nodeid, result))

    RECORDERS.append(record)
    try:
        return (yield)
    finally:
        RECORDERS.remove(record)


@pytest.fixture(autouse=True)
def _annotate_isolation(request: pytest.FixtureRequest) -> Iterator[None]:
    """Seed the random generators before each model test and apply its marker's BOS policy; after each
    test, verify that the model carries no leftover hooks and unchanged weights."""
    bos_policy: Any = contextlib.nullcontext()
    if "model" in request.fixturenames:
        # As pytest-randomly does, but with a fixed seed: a test's random draws do not depend on
        # which tests ran before it.
        _seed_everything(_int_option(request.config, "annotate_seed", "--annotate-seed") or 0)
        published = request.node.stash.get(PUBLISHED, None)
        if published is not None and published.bos is not None:
            # The BOS policy the behaviour's source ran under (@pytest.mark.model(..., bos=...)).
            bos_policy = request.getfixturevalue("model").bos_policy(published.bos)
    with bos_policy:
        yield
    lab = request.config.stash.get(LAB, None)
    if lab is None:
        return
    leaks = lab.hook_leaks()
    if leaks:
        lab.remove_leaked_hooks()
        pytest.fail(
            f"{request.node.nodeid} left hooks on the model at {', '.join(leaks[:5])}"
            f"{' ...' if len(leaks) > 5 else ''}. Use model.run(..., fwd_hooks=...) or bridge.hooks(...) as a "
            "context manager; the hooks were removed so the next test runs clean.",
            pytrace=False,
        )
    changed = lab.weights_changed()
    if changed:
        from pytest_annotate.models.load import load

        fresh = load(request.config.stash[RESOLVED])
        lab.bridge.load_state_dict(fresh.bridge.state_dict())
        lab.clear_memo()
        pytest.fail(
            f"{request.node.nodeid} changed the model's weights ({', '.join(changed[:5])}"
            f"{' ...' if len(changed) > 5 else ''}). Tests must not modify the shared model; work on a copy. "
            "The weights were reloaded so the next test runs on the original model.",
            pytrace=False,
        )


def _seed_everything(seed: int) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# --------------------------------------------------------------------------- random weights


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    resolved = item.config.stash.get(RESOLVED, None)
    if resolved is None or resolved.kind != "random" or call.when != "call" or call.excinfo is None:
        return
    if call.excinfo.errisinstance(VerdictError):
        # Under --random-weights a verdict means nothing: the plumbing ran, which is what is checked.
        report = outcome.get_result()
        report.outcome = "passed"
        report.longrepr = None
        item.config.stash[NOT_JUDGED].append(item.nodeid)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    resolved = config.stash.get(RESOLVED, None)
    if resolved is not None and resolved.kind == "random":
        n = len(config.stash[NOT_JUDGED])
        terminalreporter.write_sep("=", "pytest-annotate: RANDOM WEIGHTS", yellow=True)
        terminalreporter.write_line(
            f"{resolved.source} ran with random weights: component names, hook points, tokenization and shapes "
            f"were exercised, but NO verdict was judged ({n} check(s) whose verdict failed were counted as "
            "passed). Run with the real weights to test the findings.")
    _family_claims_summary(terminalreporter, config)
    lab = config.stash.get(LAB, None)
    if lab is not None and config.getoption("verbose") >= 0:
        s = lab.stats
        t = f", load {lab.timing.total:.1f} s" if lab.timing else ""
        terminalreporter.write_line(
            f"pytest-annotate: {lab.model_id}: {s.requested} forward passes requested, {s.executed} executed "
            f"({s.executed_rows} sequences){t}")




def _family_claims_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """``pytest-annotate: family claims: 12 hold, 1 inconclusive, 2 fail`` when any family claim was asserted."""
    recorded = config.stash.get(keys.RECORDED_RESULTS, None) or []
    if not any(getattr(result, "is_family_claim", False) for _, result in recorded):
        return
    from pytest_annotate.checks.families import family_summary_line

    line = family_summary_line(result for _, result in recorded)
    if line:
        terminalreporter.write_line(line)
