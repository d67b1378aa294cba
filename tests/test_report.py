"""--annotate-report: the HTML/Markdown/JSON report, drift on the genuine induction series, trajectories.

The runs use the committed checkpoint series of a tiny 2-layer model (``examples/induction_series``)
with the committed behaviours and step-3500 snapshots copied into a pytester folder, so the report
is checked on real findings, real drift and real figures in about half a minute.
"""

from __future__ import annotations

import base64
import doctest
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

import pytest_annotate.report.build
import pytest_annotate.report.markdown
import pytest_annotate.report.measurements
import pytest_annotate.report.plots
import pytest_annotate.report.recording
import pytest_annotate.report.summary
import pytest_annotate.report.trajectory
from pytest_annotate.checks.families import FamilyResult
from pytest_annotate.report import (
    SCHEMA,
    Finding,
    Measurement,
    ReportError,
    ResultSummary,
    RunInfo,
    RunSummary,
    TestOutcome,
    build_report,
    load_summaries,
    record,
    summarize_run,
    trajectories,
    write_report,
)
from pytest_annotate.report.markdown import _cell
from pytest_annotate.report.plots import trajectory_plot
from pytest_annotate.results import Result
from pytest_annotate.snapshot import DriftRecord, KeyNumber
from pytest_annotate.stats import judge, rate_interval

REPO = Path(__file__).resolve().parents[1]
SERIES = REPO / "examples" / "induction_series" / "checkpoints"
BASELINE = "checkpoints@step3500"
BEHAVIOURS = "behaviours/induction_series/test_induction_circuit.py"
TESTS = ("test_l1h0_is_the_top_induction_head", "test_l0h1_is_the_previous_token_head",
         "test_repeated_half_is_copied", "test_l0h1_is_necessary_for_copying")
PLUGIN = ("-p", "pytest_annotate.plugin.report", "-p", "no:cacheprovider")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def series(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester folder holding the induction-series behaviours and step 3500's committed snapshots."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pytester.makeini("[pytest]\n")  # the rootdir, where snapshots/ lives (else the common folder of the args)
    (pytester.path / "behaviours" / "induction_series").mkdir(parents=True)
    shutil.copy(REPO / "behaviours" / "conftest.py", pytester.path / "behaviours" / "conftest.py")
    shutil.copy(REPO / BEHAVIOURS, pytester.path / BEHAVIOURS)
    shutil.copytree(REPO / "snapshots" / BASELINE, pytester.path / "snapshots" / BASELINE)
    (pytester.path / "reports").mkdir()
    return pytester


def run_step(pytester: pytest.Pytester, step: int, *args: str) -> pytest.RunResult:
    baseline = ("--snapshot-baseline", BASELINE) if f"checkpoints@step{step}" != BASELINE else ()
    return pytester.runpytest(*PLUGIN, "behaviours", "--model", str(SERIES), "--checkpoint", str(step),
                              "--threads", "1", *baseline, *args)


def images(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)]


def assert_offline(html: str) -> None:
    """Nothing in the page is fetched: no URLs, scripts, stylesheets or frames (the embedded PNGs aside)."""
    html = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)
    assert not re.search(r"https?:|//[a-z]|<script|<link|<iframe|@import|url\(", html, re.IGNORECASE)


# --------------------------------------------------------------------------- a passing run


def test_report_of_a_passing_checkpoint(series: pytest.Pytester) -> None:
    result = run_step(series, 3500, "--annotate-report", "reports/step3500.html")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["pytest-annotate report: *reports/step3500.html (4 figures); Markdown *step3500.md; "
                                 "summary *step3500.json"])
    html = (series.path / "reports" / "step3500.html").read_text()
    for section in ("run", "findings", "head-roles", "ablations", "details"):
        assert f'id="{section}"' in html, section
    assert 'id="drift"' not in html and 'id="trajectory"' not in html  # no baseline, no history
    # header
    for text in ("checkpoints@step3500", "checkpoint step</th><td>3500", "float32", "compat", "torch 2.",
                 "transformer-lens 4."):
        assert text in html, text
    # one row per test: verdict, docstring's first sentence, the claim's numbers
    assert html.count('<span class="badge passed">passed</span>') >= 4
    assert "L1H0 is the model&#x27;s strongest induction head, with score ≥ 0.8 on BOS + 15 random tokens ×2." in html
    assert "The score is the mean attention" not in html.split('id="details"')[0]  # first sentence only
    assert re.search(r"L1H0 induction score 0\.899\d \(claim ≥ 0\.8: holds by 0\.0996\)", html)
    assert re.search(r"repeated-half top-1 accuracy 0\.994\d \(claim ≥ 0\.9: holds", html)
    # figures: 2 heatmaps (the claimed head boxed), the sweep's bars, the necessity bars
    pngs = images(html)
    assert len(pngs) == 4 and all(p.startswith(PNG_MAGIC) for p in pngs)
    assert 'alt="induction scores: checkpoints@step3500"' in html
    assert "L1H0 boxed (L1H0 is an induction head on checkpoints@step3500: score ≥ 0.8 and the top head: holds)" in html
    assert 'alt="ablation sweep:' in html and 'alt="necessity: L0H1"' in html
    assert_offline(html)

    md = (series.path / "reports" / "step3500.md").read_text()
    assert md.startswith("## pytest-annotate report: checkpoints@step3500\n\n4 tests: 4 passed\n")
    assert "| verdict | test | finding | key numbers |" in md
    assert ("| passed | `test_induction_circuit.py::test_l1h0_is_the_top_induction_head` | "
            "L1H0 is the model's strongest") in md
    assert "data:image" not in md and "_4 figures" in md

    summary = json.loads((series.path / "reports" / "step3500.json").read_text())
    assert summary["schema"] == SCHEMA
    assert summary["info"]["model_id"] == BASELINE and summary["info"]["step"] == 3500
    assert [f["nodeid"].rsplit("::", 1)[1] for f in summary["findings"]] == list(TESTS)
    assert [r["kind"] for r in summary["findings"][0]["results"]] == ["HeadScores", "HeadRoleResult"]


def test_other_models_skip_the_series_behaviours_and_say_why(series: pytest.Pytester) -> None:
    # Resolving the embedded Gemma is cheap; the marker skips every test, so nothing is loaded.
    result = series.runpytest(*PLUGIN, "behaviours", "--model", "gemma-3-270m", "--annotate-report", "reports/r.html")
    result.assert_outcomes(skipped=4)
    html = (series.path / "reports" / "r.html").read_text()
    assert html.count('<span class="badge skipped">skipped</span>') == 4
    assert "belongs to checkpoints; this session runs gemma-3-270m-q4_k_m (run with --model checkpoints)" in html
    assert "the model was not loaded: no test used it" in html
    assert images(html) == []


# --------------------------------------------------------------------------- drift and trajectories


def test_drift_across_checkpoints_held_weakened_flipped_and_the_trajectory(series: pytest.Pytester) -> None:
    history = ("--annotate-report-history", "reports")
    run_step(series, 3500, "--annotate-report", "reports/step3500.html", *history).assert_outcomes(passed=4)
    run_step(series, 1500, "--annotate-report", "reports/step1500.html", *history).assert_outcomes(passed=4)
    late = run_step(series, 900, "--annotate-report", "reports/step900.html", *history)
    late.assert_outcomes(failed=4)
    late.stdout.fnmatch_lines(["pytest-annotate report: *step900.html (5 figures, trajectories over 3 runs)*"])

    def statuses(step: int) -> dict[str, str]:
        data = json.loads((series.path / "reports" / f"step{step}.json").read_text())
        return {r["nodeid"].rsplit("::", 1)[1]: r["status"] for r in data["drift"]}

    # After formation only the sharpening previous-token head moved beyond its band; before it, all flip.
    assert statuses(1500) == {"test_l1h0_is_the_top_induction_head": "held",
                              "test_l0h1_is_the_previous_token_head": "weakened",
                              "test_repeated_half_is_copied": "held", "test_l0h1_is_necessary_for_copying": "held"}
    assert set(statuses(900).values()) == {"flipped"}
    assert statuses(3500) == {}  # the baseline run compares with nothing

    html = (series.path / "reports" / "step900.html").read_text()
    assert "drift against checkpoints@step3500: 4 snapshots: 0 held, 0 weakened, 4 flipped, 0 new, 0 missing" in html
    assert html.count('<span class="badge flipped">flipped</span>') >= 8  # drift table + drift-across-runs table
    assert re.search(r"passed True → False\* · rank 0 → 1\* · score 0\.8996 → 0\.63\d\d\*", html)
    # failures keep their message and full report
    assert "VerdictError: FAILED  L1H0 is an induction head on checkpoints@step900: score ≥ 0.8 and the top head" in html
    assert "top-1: misses (L1H0 is 2nd; 1 head(s) would have to drop below it)" in html
    # drift across runs: step 900 and step 1500 against the same baseline
    drift_runs = html.split('id="drift-runs"')[1].split("</section>")[0]
    assert "<th>step 900</th><th>step 1500</th>" in drift_runs
    assert "step 900: 4 flipped · step 1500: 3 held, 1 weakened" in drift_runs
    # the trajectory: a figure and a table over steps 900, 1500 and 3500
    trajectory = html.split('id="trajectory"')[1].split("</section>")[0]
    assert 'alt="findings across checkpoints"' in trajectory and len(images(trajectory)) == 1
    assert "<th>step 900</th><th>step 1500</th><th>step 3500</th>" in trajectory
    assert re.search(r"L1H0 induction score</div></td><td>≥ 0.8</td><td class='num miss'>0\.63\d\d</td>"
                     r"<td class='num'>0\.908\d</td><td class='num'>0\.899\d</td>", trajectory)
    assert_offline(html)

    md = (series.path / "reports" / "step900.md").read_text()
    assert ("| **flipped** | `test_induction_circuit.py::test_l1h0_is_the_top_induction_head` | passed True → False* · "
            "rank 0 → 1* · score 0.8996 → 0.63") in md
    assert "### Findings across checkpoints" in md and "| finding | claim | step 900 | step 1500 | step 3500 |" in md


def test_trajectory_from_summaries_without_pytest(tmp_path: Path) -> None:
    def run(step: int, score: float, status: str | None = None) -> RunSummary:
        m = Measurement("L1H0 induction score", score, ">=", 0.8, primary=True)
        finding = Finding("t.py::test_ind", "L1H0 is an induction head.", "passed" if score >= 0.8 else "failed",
                          results=(ResultSummary("HeadRoleResult", "induction score of L1H0", score >= 0.8, (m,)),))
        drift = () if status is None else (
            DriftRecord("t.py::test_ind", "test_ind", status, f"m@step{step}", "m@step3500",  # type: ignore[arg-type]
                        "snapshots/m@step3500/t/test_ind.snap", (KeyNumber("passed", "verdict", True, score >= 0.8),)),)
        info = RunInfo(f"m@step{step}", step=step, baseline="m@step3500" if status else None)
        return RunSummary(info, (finding,), drift)

    history = [run(3500, 0.90), run(1000, 0.73, "flipped")]
    for h in history:
        (tmp_path / f"{h.info.model_id}.json").write_text(h.to_json())
    loaded = load_summaries([tmp_path])
    assert sorted(r.info.step for r in loaded) == [1000, 3500]  # type: ignore[type-var]
    report = build_report(run(1500, 0.91, "held"), history=loaded)
    [t] = report.trajectories
    assert [(p.x, p.value, p.holds) for p in t.points] == [
        (1000.0, 0.73, False), (1500.0, 0.91, True), (3500.0, 0.9, True)]
    assert [p.section for p in report.plots] == ["trajectory"]
    assert report.drift_matrix is not None and report.drift_matrix.rows == (("t.py::test_ind", ("flipped", "held")),)
    paths = write_report(report, tmp_path / "out.html")
    assert (paths.markdown.name, paths.json.name) == ("out.md", "out.json")
    assert RunSummary.from_json(paths.json.read_text()) == report.run
    assert images(paths.html.read_text())[0].startswith(PNG_MAGIC)


# --------------------------------------------------------------------------- trajectories with intervals


def _family(k: int, n: int = 30, threshold: float = 0.8) -> FamilyResult:
    iv = rate_interval(k, n, label="top-1", items="held-out items")
    verdict = judge(iv, threshold).verdict
    return FamilyResult(
        family="months", family_summary="months v1: 30 items", split="heldout", model_id="m",
        subject="the answer is top-1 on ≥ 80% of items", label="top-1", threshold=threshold, direction=">=",
        verdict=verdict, passed=verdict == "holds", n=n, k=k, estimate=iv.estimate, low=iv.low, high=iv.high,
        method=iv.method, confidence=0.95,
    )  # fmt: skip


def _family_run(step: int, k: int) -> RunSummary:
    result = _family(k)
    outcome = TestOutcome("t.py::test_months", "passed" if result.passed else "failed", "Months are top-1.")
    return summarize_run(RunInfo(f"m@step{step}", step=step), outcomes=[outcome],
                         recorded=[("t.py::test_months", result)])


def _without_new_fields(run: RunSummary) -> str:
    """``run``'s JSON as written before results kept their verdict word and interval."""
    data = json.loads(run.to_json())
    for finding in data["findings"]:
        for result in finding["results"]:
            for key in ("verdict", "low", "high", "n"):
                del result[key]
    return json.dumps(data)


def test_a_family_result_keeps_its_verdict_word_interval_and_n_in_the_summary() -> None:
    run = _family_run(900, 27)
    [result] = run.findings[0].results
    assert (result.verdict, result.n, result.passed) == ("inconclusive", 30, False)
    assert result.interval == pytest.approx((0.7347, 0.9789), abs=1e-4)
    assert RunSummary.from_json(run.to_json()) == run
    single = summarize_run(RunInfo("m"), recorded=[("t.py::test_ind", _head_role_like(True))]).findings[0].results[0]
    assert (single.verdict, single.interval, single.n) == ("holds", None, None)


@dataclass(frozen=True, eq=False)
class _Score(Result):
    """A judged result on one prompt: no interval."""

    score: float
    passed: bool

    @property
    def claim(self) -> str:
        return "L1H0 is an induction head"

    def measurements(self) -> tuple[Measurement, ...]:
        return (Measurement("L1H0 induction score", self.score, ">=", 0.8, primary=True),)

    def report(self) -> str:
        return self.headline()


def _head_role_like(passed: bool) -> _Score:
    return _Score(0.9 if passed else 0.6, passed)


def test_trajectory_points_carry_the_interval_verdict_and_n() -> None:
    runs = [_family_run(3500, 30), _family_run(1500, 29), _family_run(900, 27), _family_run(300, 10)]
    [t] = trajectories([RunSummary.from_json(r.to_json()) for r in runs])
    assert t.name == "top-1 rate" and t.has_intervals
    assert [p.x for p in t.points] == [300.0, 900.0, 1500.0, 3500.0]
    assert [(p.verdict, p.n) for p in t.points] == [("fails", 30), ("inconclusive", 30), ("holds", 30), ("holds", 30)]
    # the point's status is the family verdict, not the estimate against the bound: 27/30 = 0.9 ≥ 0.8, yet unsure
    assert [p.status for p in t.points] == ["fails", "inconclusive", "holds", "holds"]
    assert t.points[1].holds is True
    for p, k in zip(t.points, (10, 27, 29, 30), strict=True):
        iv = rate_interval(k, 30)
        assert p.interval == (iv.low, iv.high) and p.value == pytest.approx(k / 30)
    assert [p.text for p in t.points] == [
        "0.3333 [0.1729, 0.5281] fails (30)", "0.9 [0.7347, 0.9789] inconclusive (30)",
        "0.9667 [0.8278, 0.9992] holds (30)", "1 [0.8843, 1] holds (30)"]


def test_old_summaries_without_the_fields_still_draw() -> None:
    # a claim on one prompt, from a summary written before the fields: a point as before, no interval
    single = summarize_run(RunInfo("m@step900", step=900), recorded=[("t.py::test_ind", _head_role_like(False))])
    old = RunSummary.from_json(_without_new_fields(single))
    assert "verdict" not in json.loads(_without_new_fields(single))["findings"][0]["results"][0]
    latest = summarize_run(RunInfo("m@step3500", step=3500), recorded=[("t.py::test_ind", _head_role_like(True))])
    [t] = trajectories([old, latest])
    assert not t.has_intervals
    assert [(p.value, p.holds, p.interval, p.n, p.status, p.text) for p in t.points] == [
        (0.6, False, None, None, "fails", "0.6"), (0.9, True, None, None, "holds", "0.9")]
    # a family claim from such a summary: its headline says INCONCLUSIVE and its numbers hold the interval
    old_family = RunSummary.from_json(_without_new_fields(_family_run(900, 27)))
    [result] = old_family.findings[0].results
    assert (result.verdict, result.n) == ("inconclusive", 30)
    assert result.interval == pytest.approx((0.7347, 0.9789), abs=1e-4)
    # a summary with neither: no verdict, no interval
    bare = RunSummary.from_json(json.dumps({"schema": SCHEMA, "info": {"model_id": "m"}, "findings": [
        {"nodeid": "t.py::a", "doc": "", "outcome": "passed", "results": [
            {"kind": "SweepResult", "headline": "sweep", "measurements": [{"name": "drop", "value": 1.5}]}]}]}))
    assert bare.findings[0].results[0] == ResultSummary("SweepResult", "sweep", measurements=(Measurement("drop", 1.5),))


def test_a_bad_verdict_in_a_summary_is_named() -> None:
    data = json.loads(_family_run(900, 27).to_json())
    data["findings"][0]["results"][0]["verdict"] = "maybe"
    with pytest.raises(ReportError, match="unknown verdict 'maybe'"):
        RunSummary.from_json(json.dumps(data), source="r.json")


def test_the_trajectory_plot_and_tables_show_intervals(tmp_path: Path) -> None:
    history = [_family_run(3500, 30), _family_run(1500, 29), _family_run(300, 10)]
    report = build_report(_family_run(900, 27), history=history)
    [plot] = [p for p in report.plots if p.section == "trajectory"]
    assert plot.png.startswith(PNG_MAGIC)
    assert "interval" in plot.caption and "hollow amber circles: inconclusive" in plot.caption
    paths = write_report(report, tmp_path / "r.html")
    html = paths.html.read_text()
    trajectory = html.split('id="trajectory"')[1].split("</section>")[0]
    assert ("<td class='num miss'>0.3333 [0.1729, 0.5281] fails (30)</td>"
            "<td class='num unsure'>0.9 [0.7347, 0.9789] inconclusive (30)</td>"
            "<td class='num'>0.9667 [0.8278, 0.9992] holds (30)</td>") in trajectory
    assert "value [low, high] verdict (items)" in trajectory
    md = paths.markdown.read_text()
    assert ("| **0.3333 [0.1729, 0.5281] fails (30)**✗ | _0.9 [0.7347, 0.9789] inconclusive (30)_? | "
            "0.9667 [0.8278, 0.9992] holds (30) | 1 [0.8843, 1] holds (30) |") in md


def test_a_trajectory_plot_without_intervals_keeps_its_caption() -> None:
    def run(step: int, passed: bool) -> RunSummary:
        return summarize_run(RunInfo(f"m@step{step}", step=step), recorded=[("t.py::test_ind", _head_role_like(passed))])

    tracks = trajectories([run(900, False), run(3500, True)])
    plot = trajectory_plot(tracks)
    assert plot.png.startswith(PNG_MAGIC)
    assert "interval" not in plot.caption and "inconclusive" not in plot.caption
    assert "Green dots: the claim holds at that run; red crosses: it fails" in plot.caption


# --------------------------------------------------------------------------- bad paths


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("no/such/folder/report.html",
         "ERROR: --annotate-report no/such/folder/report.html: the folder */no/such/folder does not exist; create it "
         "(mkdir -p */no/such/folder) or choose another path"),
        ("reports", "ERROR: --annotate-report reports: */reports is a folder; give the report's file name, e.g. "
                    "*/reports/report.html"),
        ("reports/report.md", "ERROR: --annotate-report reports/report.md: give the HTML file's path, ending in .html "
                              "(e.g. */reports/report.html)*"),
        ("/proc/report.html",
         "ERROR: --annotate-report /proc/report.html: cannot write in /proc: *; choose a writable folder"),
    ],
)
def test_a_bad_report_path_fails_before_the_tests_run(pytester: pytest.Pytester, path: str, message: str) -> None:
    (pytester.path / "reports").mkdir()
    pytester.makepyfile("def test_never_runs(): raise AssertionError('ran')")
    result = pytester.runpytest(*PLUGIN, "-p", "no:annotate", "--annotate-report", path)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can write in a read-only folder")
def test_a_read_only_folder_is_refused(pytester: pytest.Pytester) -> None:
    folder = pytester.path / "locked"
    folder.mkdir(mode=0o555)
    pytester.makepyfile("def test_never_runs(): pass")
    result = pytester.runpytest(*PLUGIN, "-p", "no:annotate", "--annotate-report", "locked/r.html")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --annotate-report locked/r.html: cannot write in *locked: *"])


def test_the_ini_setting_is_used(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nannotate_report = out/ini-report.html\n")
    (pytester.path / "out").mkdir()
    pytester.makepyfile('def test_ok():\n    """It runs."""')
    pytester.runpytest(*PLUGIN, "-p", "no:annotate").assert_outcomes(passed=1)
    md = (pytester.path / "out" / "ini-report.md").read_text()
    assert "| passed | `test_the_ini_setting_is_used.py::test_ok` | It runs. | – |" in md
    assert "model `(no model)`" in md


@pytest.mark.parametrize(
    ("history", "message"),
    [
        ("missing.json", "ERROR: --annotate-report-history: */missing.json: no such file or folder"),
        ("other.json", "ERROR: --annotate-report-history: */other.json is not a pytest-annotate report summary "
                       "(schema None, expected 'pytest-annotate-report/1'); give the .json written beside a report*"),
    ],
)
def test_a_bad_history_file_is_named(pytester: pytest.Pytester, history: str, message: str) -> None:
    (pytester.path / "other.json").write_text('{"not": "a summary"}')
    pytester.makepyfile("def test_never_runs(): pass")
    result = pytester.runpytest(*PLUGIN, "-p", "no:annotate", "--annotate-report", "r.html",
                                "--annotate-report-history", history)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


# --------------------------------------------------------------------------- pieces


def test_failures_errors_and_xfails_are_told_apart(pytester: pytest.Pytester) -> None:
    pytester.makepyfile('''
        import pytest

        @pytest.fixture
        def broken():
            raise RuntimeError("fixture broke")

        def test_fails():
            """Two is three."""
            assert 2 == 3

        def test_errors(broken):
            """Never gets here."""

        @pytest.mark.xfail(reason="known gap")
        def test_xfails():
            assert False

        def test_skips():
            pytest.skip("not today")
    ''')
    result = pytester.runpytest(*PLUGIN, "-p", "no:annotate", "--annotate-report", "r.html")
    result.assert_outcomes(failed=1, errors=1, xfailed=1, skipped=1)
    run = RunSummary.from_json((pytester.path / "r.json").read_text())
    findings = {f.nodeid.rsplit("::", 1)[1]: f for f in run.findings}
    assert (findings["test_fails"].outcome, findings["test_fails"].reason) == ("failed", "assert 2 == 3")
    assert findings["test_fails"].doc == "Two is three."
    assert (findings["test_errors"].outcome, findings["test_errors"].reason) == (
        "error", "setup: RuntimeError: fixture broke")
    assert (findings["test_xfails"].outcome, findings["test_xfails"].reason) == ("xfailed", "known gap")
    assert (findings["test_skips"].outcome, findings["test_skips"].reason) == ("skipped", "not today")


def test_record_outside_a_test_returns_what_it_was_given() -> None:
    marker = object()
    assert record(marker) is marker
    assert record(1, 2) == (1, 2)


def test_markdown_cells_escape_token_bars() -> None:
    assert _cell("Token: | May|\nnext") == "Token: \\| May\\| next"


@pytest.mark.parametrize("module", [
    pytest_annotate.report.summary, pytest_annotate.report.measurements, pytest_annotate.report.trajectory,
    pytest_annotate.report.recording, pytest_annotate.report.build, pytest_annotate.report.markdown,
    pytest_annotate.report.plots,
])
def test_docstring_examples_run(module: object) -> None:
    failures, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS)  # type: ignore[arg-type]
    assert failures == 0
