"""pytest plugin: ``--parity``, the TransformerLens-vs-HuggingFace oracle over the session's prompts.

At the end of a session that loaded the model, every distinct token sequence the tests ran through
the Lab is run once more, on the bridge and on the unprocessed HuggingFace model
(:mod:`pytest_annotate.models.parity`), and their next-token log-probs are compared at every
position over the full vocabulary. The terminal summary gives the largest ``|Δ log-prob|`` and the
worst prompt; ``--annotate-report`` gets the per-prompt table as a finding named ``--parity``.
Beyond ``--parity-atol`` the session fails (exit status 1), even when every test passed.

Models that cannot be compared (``--device-map``, a reference that cannot be loaded) are said so
and skipped, not failed. Under pytest-xdist each worker compares the prompts it ran and the
controller gathers the results.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from pytest_annotate.plugin import keys

#: The nodeid the oracle's result is filed under, in the report.
NODEID = "--parity"
_REPORT = pytest.StashKey[Any]()
"""The session's outcome: a ParityReport, or a str saying why there is none."""
_WORKER_KEY = "pytest_annotate_parity"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("annotate", "pytest-annotate (model behaviour tests)")
    group.addoption(
        "--parity", action="store_true", default=None, dest="annotate_parity",
        help="at the end of the session, compare the model's next-token log-probs on every prompt the tests ran "
             "with the unprocessed HuggingFace model's (all positions, full vocabulary); fail the session beyond "
             "--parity-atol")
    group.addoption(
        "--parity-atol", action="store", default=None, dest="annotate_parity_atol", metavar="NATS",
        help="the largest |Δ log-prob| --parity accepts. Default: 1e-3 nats for float32, 1 for float16, "
             "5 for bfloat16 (half precision rounds the compat-processed weights: check parity in float32)")
    parser.addini("annotate_parity", type="bool", default=False, help="default for --parity")
    parser.addini("annotate_parity_atol", default="", help="default for --parity-atol")


def _enabled(config: pytest.Config) -> bool:
    value = config.getoption("annotate_parity", None)
    return bool(config.getini("annotate_parity") if value is None else value)


def _atol(config: pytest.Config) -> float | None:
    raw = config.getoption("annotate_parity_atol", None)
    if raw is None:
        raw = config.getini("annotate_parity_atol") or None
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (value >= 0 and math.isfinite(value)):
        raise pytest.UsageError(f"--parity-atol {raw!r} is not a tolerance; give a number of nats >= 0, e.g. 1e-3")
    return value


def pytest_configure(config: pytest.Config) -> None:
    _atol(config)  # a bad tolerance is a usage error before collection, with or without --parity
    if _enabled(config) and _is_xdist_controller(config):
        gathered = _Gathered()
        config.stash[_GATHERED] = gathered
        config.pluginmanager.register(gathered, "annotate-parity-gatherer")


def _is_xdist_controller(config: pytest.Config) -> bool:
    return bool(getattr(config.option, "numprocesses", None)) and not hasattr(config, "workerinput")


def pytest_report_header(config: pytest.Config) -> list[str]:
    if not _enabled(config):
        return []
    from pytest_annotate.models.parity import DEFAULT_ATOL

    atol = _atol(config)
    dtype = config.stash.get(keys.DTYPE, "float32")
    tol = f"{atol:g}" if atol is not None else f"{DEFAULT_ATOL.get(dtype, math.nan):g}"
    return [("pytest-annotate: --parity: next-token log-probs checked against HuggingFace at session end, "
             f"tolerance {tol} nats ({dtype})")]


def _compare(config: pytest.Config) -> Any:
    """The ParityReport of this process's Lab, or a str saying why there is none."""
    from pytest_annotate.plugin.core import LAB

    lab = config.stash.get(LAB, None)
    if lab is None:
        return "no test used the model: nothing to compare"
    from pytest_annotate.models.parity import ParityUnavailable, parity

    lab.clear_memo()  # the session is over: give the reference the memo's memory
    try:
        return parity(lab, atol=_atol(config))
    except ParityUnavailable as e:
        return f"skipped: {e}"


@pytest.hookimpl(tryfirst=True)  # before the report plugin (trylast) files the findings
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if not _enabled(config):
        return
    if _is_xdist_controller(config):
        outcome = _gather_workers(config)  # the controller runs no test: the workers compared
    else:
        outcome = _compare(config)
        if hasattr(config, "workerinput"):
            config.workeroutput[_WORKER_KEY] = _to_wire(outcome)  # type: ignore[attr-defined]
            return
    config.stash[_REPORT] = outcome
    if isinstance(outcome, str):
        return
    recorded = config.stash.get(keys.RECORDED_RESULTS, None)
    if recorded is not None:
        recorded.append((NODEID, outcome))
    if not outcome.passed and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    outcome = config.stash.get(_REPORT, None)
    if outcome is None:
        return
    if isinstance(outcome, str):
        terminalreporter.write_sep("=", "pytest-annotate: parity with HuggingFace", yellow=True)
        terminalreporter.write_line(f"--parity: {outcome}")
        return
    colour = {"green": True} if outcome.passed else {"red": True}
    terminalreporter.write_sep("=", "pytest-annotate: parity with HuggingFace", **colour)
    terminalreporter.write_line(outcome.summary_line(), **colour)
    if not outcome.passed:
        terminalreporter.write_line("\n".join(outcome.table(rows=10)))
        terminalreporter.write_line(
            f"--parity: the session FAILS: max |Δ log-prob| {outcome.max_abs:.3g} nats is beyond the tolerance "
            f"{outcome.atol:g} (--parity-atol); worst prompt {outcome.worst.shown}", red=True)


# --------------------------------------------------------------------------- pytest-xdist


def _to_wire(outcome: Any) -> Any:
    if isinstance(outcome, str):
        return outcome
    import dataclasses

    return dataclasses.asdict(outcome)


def _from_wire(data: Any) -> Any:
    from pytest_annotate.models.parity import ParityReport, PromptParity

    if isinstance(data, str):
        return data
    prompts = tuple(PromptParity(**p) for p in data.pop("prompts"))
    return ParityReport(**data, prompts=prompts)


class _Gathered:
    def __init__(self) -> None:
        self.outcomes: list[Any] = []

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        data = getattr(node, "workeroutput", {}).get(_WORKER_KEY)
        if data is not None:
            self.outcomes.append(_from_wire(data))


_GATHERED = pytest.StashKey[_Gathered]()


def _gather_workers(config: pytest.Config) -> Any:
    import dataclasses

    gathered = config.stash.get(_GATHERED, None)
    reports = [o for o in (gathered.outcomes if gathered else []) if not isinstance(o, str)]
    if not reports:
        reasons = sorted({o for o in (gathered.outcomes if gathered else []) if isinstance(o, str)})
        return "; ".join(reasons) or "no worker reported a comparison"
    merged: dict[str, Any] = {}
    for r in reports:
        for p in r.prompts:
            merged.setdefault(p.prompt + "\0" + str(p.n_tokens), p)
    first = reports[0]
    prompts = tuple(merged.values())
    worst = max((p.max_abs for p in prompts), default=0.0)
    passed = all(r.passed for r in reports) and not math.isnan(worst) and worst <= first.atol
    return dataclasses.replace(first, prompts=prompts, passed=passed, seconds=max(r.seconds for r in reports),
                               load_seconds=max(r.load_seconds for r in reports),
                               device=", ".join(sorted({r.device for r in reports})))
