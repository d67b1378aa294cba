"""A run of the suite as a value: its header, its findings and their numbers, its drift.

A :class:`RunSummary` is what the report shows and what ``report.json`` stores, so that later
runs (other checkpoints) can draw trajectories across runs from it. It holds plain numbers and
strings only: no tensors, no result objects, nothing that needs the model to read back.

>>> info = RunInfo(model_id="checkpoints@step900", step=900, device="cpu", dtype="float32",
...                processing="compat", date="2025-01-01T00:00:00+00:00")
>>> finding = Finding("t.py::test_a", "L1H0 is an induction head.", "failed", results=(
...     ResultSummary("HeadRoleResult", "induction score of L1H0: 0.6350", passed=False, measurements=(
...         Measurement("L1H0 induction score", 0.635, op=">=", threshold=0.8, primary=True),)),))
>>> run = RunSummary(info, (finding,))
>>> RunSummary.from_json(run.to_json()) == run
True
>>> finding.results[0].measurements[0].text
'L1H0 induction score 0.635 (claim ≥ 0.8: misses by 0.165)'

A claim over a family also keeps its verdict word and the interval its verdict rests on (around its
primary number), and the number of items (fields added later: summaries written before them read back
with ``None`` there, or with what their headline and ``interval low/high`` numbers say):

>>> unsure = ResultSummary("FamilyResult", "INCONCLUSIVE  months (held-out items): the answer is top-1", False,
...                        (Measurement("top-1 rate", 0.9, ">=", 0.8, primary=True),),
...                        verdict="inconclusive", low=0.735, high=0.979, n=30)
>>> unsure.interval_text
'[0.735, 0.979] inconclusive (30)'
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, TypeAlias, get_args

from pytest_annotate.errors import AnnotateError
from pytest_annotate.results import (  # noqa: F401  (re-exported: the report layer names them)
    VERDICT_WORDS,
    VERDICTS,
    Measurement,
    Op,
    Verdict,
    format_number,
)
from pytest_annotate.snapshot.drift import DriftRecord, KeyNumber

#: The ``schema`` field of ``report.json``; bumped when a field changes meaning.
SCHEMA = "pytest-annotate-report/1"

Outcome: TypeAlias = Literal["passed", "failed", "skipped", "error", "xfailed", "xpassed"]
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)


class ReportError(AnnotateError, ValueError):
    """A report summary (``report.json``) that cannot be read: the message names the file and why."""


@dataclass(frozen=True)
class RunInfo:
    """The run's header: which model, on what, with which library versions, when."""

    model_id: str
    step: int | None = None
    """The training step of the checkpoint (``--checkpoint``, or ``@stepN`` in the model id)."""
    device: str = ""
    dtype: str = ""
    processing: str = ""
    date: str = ""
    """When the run finished, ISO 8601 in UTC."""
    versions: tuple[tuple[str, str], ...] = ()
    """``(package, version)`` pairs: python, torch, transformers, transformer-lens, ..."""
    baseline: str | None = None
    """The ``--snapshot-baseline`` model id the drift is measured against."""
    command: str = ""
    """The pytest arguments of the run."""
    notes: tuple[str, ...] = ()
    """Caveats about the run (e.g. numbers missing under pytest-xdist)."""

    @property
    def label(self) -> str:
        """How a run is named on a plot axis: ``step 900``, else the model id."""
        return f"step {self.step}" if self.step is not None else self.model_id


@dataclass(frozen=True)
class ResultSummary:
    """One recorded check result, reduced to its headline and numbers (its full report kept as text)."""

    kind: str
    """The result's class name: ``HeadRoleResult``, ``SweepResult``..."""
    headline: str
    passed: bool | None = None
    """The check's verdict; ``None`` for a measurement that makes no claim (a sweep)."""
    measurements: tuple[Measurement, ...] = ()
    report: str = ""
    verdict: Verdict | None = None
    """``holds``, ``inconclusive`` or ``fails`` (a claim over a family may be inconclusive); ``None`` for a
    measurement that makes no claim."""
    low: float | None = None
    """The interval the verdict rests on, around the primary measurement (claims over families); ``None``
    for a claim on one prompt."""
    high: float | None = None
    n: int | None = None
    """How many items the interval rests on."""

    @property
    def interval(self) -> tuple[float, float] | None:
        """``(low, high)``, or ``None`` without an interval."""
        return None if self.low is None or self.high is None else (self.low, self.high)

    @property
    def interval_text(self) -> str:
        """``[0.735, 0.979] inconclusive (30)``; ``""`` without an interval."""
        if self.interval is None:
            return ""
        return interval_text(self.low, self.high, self.verdict, self.n)


def interval_text(low: float | None, high: float | None, verdict: str | None = None, n: int | None = None) -> str:
    """``[0.735, 0.979] holds (30)``: an interval, the verdict resting on it and its number of items.

    >>> interval_text(0.8843, 1.0, "holds", 30), interval_text(0.1, 0.5)
    ('[0.8843, 1] holds (30)', '[0.1, 0.5]')
    """
    out = f"[{format_number(low)}, {format_number(high)}]"
    if verdict:
        out += f" {verdict}"
    if n is not None:
        out += f" ({n})"
    return out


@dataclass(frozen=True)
class Finding:
    """One test: what it states (its docstring's first sentence), how it ended, what it measured."""

    nodeid: str
    doc: str
    outcome: Outcome
    reason: str = ""
    """Why it failed or was skipped: the first line of the error, or the skip reason."""
    details: str = ""
    """The failure's full text (pytest's long report), for failed and erroring tests."""
    duration: float = 0.0
    results: tuple[ResultSummary, ...] = ()

    @property
    def measurements(self) -> tuple[Measurement, ...]:
        """Every key number of every result the test recorded."""
        return tuple(m for r in self.results for m in r.measurements)

    @property
    def key_numbers(self) -> tuple[Measurement, ...]:
        """What the findings table shows: the numbers of the results that claim something (a bound),
        else every number; each name once."""
        claims = [r for r in self.results if any(m.bound for m in r.measurements)]
        shown: dict[str, Measurement] = {}
        for r in claims or self.results:
            for m in r.measurements:
                shown.setdefault(m.name, m)
        return tuple(shown.values())


@dataclass(frozen=True)
class RunSummary:
    """A whole run: header, one :class:`Finding` per test, and drift against a baseline."""

    info: RunInfo
    findings: tuple[Finding, ...] = ()
    drift: tuple[DriftRecord, ...] = ()

    def counts(self) -> dict[str, int]:
        """``{outcome: number of tests}``, every outcome present (0 where none)."""
        out: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        for f in self.findings:
            out[f.outcome] += 1
        return out

    def counts_line(self) -> str:
        """``4 tests: 3 passed, 1 failed`` (outcomes with no test left out)."""
        counts = {k: v for k, v in self.counts().items() if v}
        n = len(self.findings)
        return f"{n} test{'s' * (n != 1)}: " + (", ".join(f"{v} {k}" for k, v in counts.items()) or "none ran")

    # ----------------------------------------------------------------- JSON

    def to_json(self) -> str:
        """The summary as JSON (what ``report.json`` holds)."""
        data = {"schema": SCHEMA, "info": asdict(self.info), "findings": [asdict(f) for f in self.findings],
                "drift": [_drift_to_dict(r) for r in self.drift]}
        return json.dumps(data, indent=1, ensure_ascii=False, allow_nan=True) + "\n"

    @classmethod
    def from_json(cls, text: str, *, source: str = "<string>") -> RunSummary:
        """Read a summary written by :meth:`to_json`; :class:`ReportError` says what is wrong."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ReportError(
                f"{source} is not JSON ({e.msg} at line {e.lineno}); give the .json a report wrote") from None
        if not isinstance(data, Mapping) or data.get("schema") != SCHEMA:
            found = data.get("schema") if isinstance(data, Mapping) else type(data).__name__
            raise ReportError(
                f"{source} is not a pytest-annotate report summary (schema {found!r}, expected {SCHEMA!r}); "
                "give the .json written beside a report by --annotate-report"
            )
        try:
            info = data["info"]
            info = RunInfo(**{**info, "versions": tuple(tuple(v) for v in info.get("versions", ())),
                              "notes": tuple(info.get("notes", ()))})
            findings = tuple(_finding_from_dict(f) for f in data.get("findings", ()))
            drift = tuple(_drift_from_dict(r) for r in data.get("drift", ()))
        except (KeyError, TypeError, ValueError) as e:
            raise ReportError(f"{source}: malformed report summary ({type(e).__name__}: {e})") from None
        return cls(info, findings, drift)


def load_summaries(paths: Iterable[str | Path], *, exclude: Iterable[str | Path] = ()) -> list[RunSummary]:
    """Read report summaries from ``.json`` files and folders of them (``*.json`` directly inside;
    an empty folder gives none).

    ``exclude``: files to leave out (the report being written, when the history folder holds it).
    Raises :class:`ReportError` naming the first path that is missing or unreadable.
    """
    skip = {Path(p).resolve() for p in exclude}
    out: list[RunSummary] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            files = sorted(path.glob("*.json"))  # none yet is fine: the first run of a series
        elif path.is_file():
            files = [path]
        else:
            raise ReportError(f"{path}: no such file or folder")
        for file in files:
            if file.resolve() in skip:
                continue
            try:
                text = file.read_text(encoding="utf-8")
            except OSError as e:
                raise ReportError(f"{file}: cannot read it ({e.strerror})") from None
            out.append(RunSummary.from_json(text, source=str(file)))
    return out


def order_runs(runs: Sequence[RunSummary]) -> list[RunSummary]:
    """Runs in trajectory order: by checkpoint step when every run has one, else by date.

    A model id seen twice keeps its latest run only (a re-run replaces the earlier point).
    """
    latest: dict[str, RunSummary] = {}
    for run in sorted(runs, key=lambda r: r.info.date):
        latest[run.info.model_id] = run
    kept = list(latest.values())
    if kept and all(r.info.step is not None for r in kept):
        return sorted(kept, key=lambda r: (r.info.step, r.info.date))
    return kept


def step_of(model_id: str) -> int | None:
    """The training step in a model id such as ``pythia-160m@step3000`` or ``checkpoints@step900``.

    >>> step_of("checkpoints@step900"), step_of("gpt2-small")
    (900, None)
    """
    m = re.search(r"@step(\d+)(?:\b|\+|$)", model_id)
    return int(m.group(1)) if m else None


def first_sentence(doc: str | None) -> str:
    """A docstring's first sentence, on one line.

    >>> first_sentence('''L1H0 is an induction head (score ≥ 0.8).
    ...
    ...     Measured on BOS + 15 random tokens.''')
    'L1H0 is an induction head (score ≥ 0.8).'
    >>> first_sentence("Zeroing L0H1 costs 3.2 nats. Controls cost 0.")
    'Zeroing L0H1 costs 3.2 nats.'
    """
    if not doc:
        return ""
    paragraph = re.split(r"\n\s*\n", doc.strip(), maxsplit=1)[0]
    text = " ".join(paragraph.split())
    m = re.search(r"[.!?](?=\s+[A-Z(\"'`])", text)
    return text[: m.end()] if m else text


def _finding_from_dict(d: Mapping[str, Any]) -> Finding:
    return Finding(**{**d, "results": tuple(_result_from_dict(r) for r in d.get("results", ()))})


#: What a summary written before ``verdict``/``low``/``high``/``n`` holds instead: the verdict's word
#: heads the headline, and a family claim's interval is among its numbers.
_HEADLINE_VERDICTS = {word: verdict for verdict, word in VERDICT_WORDS.items()}
_LEGACY_INTERVAL = {"interval low": "low", "interval high": "high", "items": "n"}


def _result_from_dict(r: Mapping[str, Any]) -> ResultSummary:
    measurements = tuple(Measurement(**m) for m in r.get("measurements", ()))
    fields = {**r, "measurements": measurements}
    if "verdict" not in r:  # an older summary: take what its headline and numbers say
        fields.update(_legacy_fields(r.get("headline", ""), r.get("passed"), measurements))
    if fields.get("verdict") is not None and fields["verdict"] not in VERDICTS:
        raise ValueError(f"unknown verdict {fields['verdict']!r}; expected one of {', '.join(VERDICTS)}")
    return ResultSummary(**fields)


def _legacy_fields(headline: str, passed: Any, measurements: Sequence[Measurement]) -> dict[str, Any]:
    """``verdict``, ``low``, ``high`` and ``n`` of a summary written before those fields."""
    out: dict[str, Any] = {}
    if isinstance(passed, bool):
        word = headline.split(maxsplit=1)[0] if headline.strip() else ""
        out["verdict"] = _HEADLINE_VERDICTS.get(word, "holds" if passed else "fails")
    found = {_LEGACY_INTERVAL[m.name]: m.value for m in measurements if m.name in _LEGACY_INTERVAL}
    low, high, n = found.get("low"), found.get("high"), found.get("n")
    if _is_real(low) and _is_real(high):
        out.update(low=float(low), high=float(high))  # type: ignore[arg-type]
        if isinstance(n, int) and not isinstance(n, bool):
            out["n"] = n
    return out


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _drift_to_dict(record: DriftRecord) -> dict[str, Any]:
    # The changed fields (FieldDiff, with their bands) stay in the run; the summary keeps what
    # the drift table and the drift-across-runs table show.
    return {
        "nodeid": record.nodeid, "snapshot_name": record.snapshot_name, "status": record.status,
        "model_id": record.model_id, "baseline_model_id": record.baseline_model_id,
        "baseline_path": record.baseline_path, "key_numbers": [asdict(k) for k in record.key_numbers],
        "n_compared": record.n_compared, "n_failed": record.n_failed,
        "max_abs_error": record.max_abs_error, "max_rel_error": record.max_rel_error,
    }


def _drift_from_dict(d: Mapping[str, Any]) -> DriftRecord:
    return DriftRecord(**{**d, "key_numbers": tuple(KeyNumber(**k) for k in d.get("key_numbers", ()))})


__all__ = [
    "OUTCOMES",
    "SCHEMA",
    "Finding",
    "Measurement",
    "Outcome",
    "ReportError",
    "ResultSummary",
    "RunInfo",
    "RunSummary",
    "first_sentence",
    "format_number",
    "interval_text",
    "load_summaries",
    "order_runs",
    "step_of",
]
