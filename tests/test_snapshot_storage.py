"""Where snapshots live, what --snapshot-update writes and prunes, and atomic writes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from pytest_annotate.snapshot import SnapshotWriteError, storage
from pytest_annotate.plugin.testing import make_suite, run_suite

pytest_plugins = ["pytester"]

TEST_IOI = """
import pytest

def test_name_mover(snapshot, values):
    assert snapshot == {"rank": 0, "prob": values["a"]}
    if values.get("second", True):
        assert snapshot == {"logit": values["a"] * 10}

@pytest.mark.parametrize("n", [1, 2])
def test_param(snapshot, values, n):
    assert snapshot == {"prob": values["a"] / n}

@pytest.mark.slow
def test_slow(snapshot, values):
    assert snapshot == {"prob": values["a"]}

class TestGroup:
    def test_in_class(self, snapshot, values):
        assert snapshot(name="named") == {"prob": values["a"]}
"""

ALL_FILES = [
    "test_ioi/TestGroup.test_in_class[named].snap",
    "test_ioi/test_name_mover.1.snap",
    "test_ioi/test_name_mover.snap",
    "test_ioi/test_param[1].snap",
    "test_ioi/test_param[2].snap",
    "test_ioi/test_slow.snap",
]


def _files(root: Path, model: str) -> list[str]:
    base = root / "snapshots" / model
    return sorted(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())


def _tree(root: Path) -> dict[str, bytes]:
    base = root / "snapshots"
    return {p.relative_to(base).as_posix(): p.read_bytes() for p in base.rglob("*") if p.is_file()}


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    make_suite(pytester, test_ioi=TEST_IOI)
    pytester.makeini("[pytest]\nmarkers = slow\n")
    run_suite(pytester, "--snapshot-update", values={"a": 0.5}).assert_outcomes(passed=5)
    return pytester


def test_layout_mirrors_the_test_file_under_the_model_folder(suite: pytest.Pytester) -> None:
    assert _files(suite.path, "gpt2-small") == ALL_FILES
    text = (suite.path / "snapshots/gpt2-small/test_ioi/test_param[2].snap").read_text()
    assert text.splitlines()[:4] == [
        "# pytest-annotate snapshot v1",
        "# model: gpt2-small",
        "# dtype: float32",
        "# test: test_ioi.py::test_param[2]",
    ]


def test_nested_test_folders_are_mirrored(pytester: pytest.Pytester) -> None:
    make_suite(pytester)
    pytester.mkpydir("behaviours")
    (pytester.path / "behaviours" / "test_deep.py").write_text("def test_d(snapshot):\n    assert snapshot == {'x': 1}\n")
    run_suite(pytester, "--snapshot-update").assert_outcomes(passed=1)
    assert _files(pytester.path, "pythia-160m-deduped@step3000") == []
    run_suite(pytester, "--snapshot-update", model="pythia-160m-deduped@step3000").assert_outcomes(passed=1)
    assert _files(pytester.path, "pythia-160m-deduped@step3000") == ["behaviours/test_deep/test_d.snap"]


def test_a_run_within_tolerance_passes_and_writes_nothing(suite: pytest.Pytester) -> None:
    before = _tree(suite.path)
    run_suite(suite, values={"a": 0.5005}).assert_outcomes(passed=5)
    run_suite(suite, "--snapshot-update", values={"a": 0.5005}).assert_outcomes(passed=5)
    assert _tree(suite.path) == before  # no churn in the pull request


def test_update_never_touches_another_models_folder(suite: pytest.Pytester) -> None:
    run_suite(suite, "--snapshot-update", model="pythia-70m", values={"a": 0.9}).assert_outcomes(passed=5)
    theirs = {k: v for k, v in _tree(suite.path).items() if k.startswith("pythia-70m/")}
    # gpt2-small changes a lot, loses a test and an assertion, and is updated:
    suite.makepyfile(test_ioi=TEST_IOI.replace("def test_slow", "def _was_test_slow"))
    run_suite(suite, "--snapshot-update", values={"a": 0.1, "second": False}).assert_outcomes(passed=4)
    assert {k: v for k, v in _tree(suite.path).items() if k.startswith("pythia-70m/")} == theirs
    assert _files(suite.path, "gpt2-small") == [f for f in ALL_FILES if "slow" not in f and ".1." not in f]


NOT_SLOW = {f for f in ALL_FILES if "slow" not in f}


@pytest.mark.parametrize(
    ("selection", "updated"),
    [
        (("-k", "param"), {"test_ioi/test_param[1].snap", "test_ioi/test_param[2].snap"}),
        (("-k", "not slow"), NOT_SLOW),
        (("-m", "not slow"), NOT_SLOW),
        (("test_ioi.py::test_param",), {"test_ioi/test_param[1].snap", "test_ioi/test_param[2].snap"}),
        (("test_ioi.py::TestGroup",), {"test_ioi/TestGroup.test_in_class[named].snap"}),
        (("--deselect", "test_ioi.py::test_slow"), NOT_SLOW),
    ],
)
def test_update_of_a_subset_keeps_the_snapshots_of_tests_that_did_not_run(
    suite: pytest.Pytester, selection: tuple[str, ...], updated: set[str]
) -> None:
    before = _tree(suite.path)
    result = run_suite(suite, "--snapshot-update", *selection, values={"a": 0.7})
    assert result.ret == 0
    after = _tree(suite.path)
    assert sorted(after) == sorted(before)  # nothing deleted
    assert {k.removeprefix("gpt2-small/") for k in after if after[k] != before[k]} == updated


def test_unused_snapshots_fail_the_run_and_update_deletes_them(suite: pytest.Pytester) -> None:
    values = {"a": 0.5, "second": False}
    result = run_suite(suite, values=values)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(
        [
            "*unused snapshots of gpt2-small*",
            "snapshots/gpt2-small/test_ioi/test_name_mover.1.snap  (test_ioi.py::test_name_mover: its test ran and no longer makes this assertion)",
            "Re-run with --snapshot-update to delete them.",
        ]
    )
    assert run_suite(suite, "--snapshot-warn-unused", values=values).ret == 0
    result = run_suite(suite, "--snapshot-update", values=values)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["Deleted snapshots/gpt2-small/test_ioi/test_name_mover.1.snap"])
    assert "test_ioi/test_name_mover.1.snap" not in _files(suite.path, "gpt2-small")


def test_a_failing_or_skipped_test_keeps_its_snapshots(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_ioi=TEST_IOI.replace(
            'assert snapshot == {"rank": 0', 'assert values["a"] < 0.6\n    assert snapshot == {"rank": 0'
        ).replace("def test_slow(snapshot, values):", "def test_slow(snapshot, values):\n    pytest.skip('slow')")
    )
    result = run_suite(suite, "--snapshot-update", values={"a": 0.9})
    result.assert_outcomes(passed=3, failed=1, skipped=1)
    assert _files(suite.path, "gpt2-small") == ALL_FILES


def test_snapshots_of_removed_tests_and_modules_are_pruned(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_ioi=TEST_IOI.replace("@pytest.mark.parametrize(\"n\", [1, 2])", "@pytest.mark.parametrize(\"n\", [1])"))
    suite.makepyfile(test_other="def test_o(snapshot):\n    assert snapshot == {'x': 1}\n")
    run_suite(suite, "--snapshot-update", values={"a": 0.5}).assert_outcomes(passed=5)
    assert "test_ioi/test_param[2].snap" not in _files(suite.path, "gpt2-small")
    (suite.path / "test_other.py").unlink()
    run_suite(suite, "--snapshot-update", values={"a": 0.5}).assert_outcomes(passed=4)
    assert not (suite.path / "snapshots/gpt2-small/test_other").exists()


def test_ignored_modules_keep_their_snapshots(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_other="def test_o(snapshot):\n    assert snapshot == {'x': 1}\n")
    run_suite(suite, "--snapshot-update", "test_other.py").assert_outcomes(passed=1)
    before = _tree(suite.path)
    run_suite(suite, "--snapshot-update", "--ignore=test_ioi.py", values={"a": 0.5}).assert_outcomes(passed=1)
    run_suite(suite, "--snapshot-update", "test_other.py").assert_outcomes(passed=1)
    assert _tree(suite.path) == before


def test_new_snapshots_fail_without_update(pytester: pytest.Pytester) -> None:
    make_suite(pytester, test_one="def test_x(snapshot):\n    assert snapshot == {'x': 1}\n")
    result = run_suite(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*No snapshot of 'gpt2-small' for this assertion yet: snapshots/gpt2-small/test_one/test_x.snap",
            "*Run with --snapshot-update to record it: pytest test_one.py::test_x --snapshot-update",
        ]
    )
    assert not (pytester.path / "snapshots").exists()
    run_suite(pytester, "--snapshot-update-new-only").assert_outcomes(passed=1)


def test_without_a_model_id_the_fixture_says_how_to_set_one(pytester: pytest.Pytester) -> None:
    make_suite(pytester, test_one="def test_x(snapshot):\n    assert snapshot == {'x': 1}\n")
    result = run_suite(pytester, model=None)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*SnapshotConfigError: snapshots are stored per model, but this session has no model id*"])


# -- atomic writes and read-only folders ---------------------------------------------


def test_a_failed_replace_leaves_the_old_file_and_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "m" / "t.snap"
    storage.atomic_write_text(target, "old\n")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(storage.os, "replace", broken_replace)
    with pytest.raises(SnapshotWriteError, match=r"cannot write snapshot .*t\.snap: No space left on device.*unchanged"):
        storage.atomic_write_text(target, "new\n")
    assert target.read_text() == "old\n"
    assert [p.name for p in target.parent.iterdir()] == ["t.snap"]


def test_a_process_killed_during_a_write_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "t.snap"
    target.write_text("old\n")
    child = textwrap.dedent(
        f"""
        import os, sys, time
        from pathlib import Path
        from pytest_annotate.snapshot import storage

        def stalled_replace(src, dst):
            print("written", flush=True)
            time.sleep(60)

        storage.os.replace = stalled_replace
        storage.atomic_write_text(Path({str(target)!r}), "new\\n" * 100000)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "written"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert target.read_text() == "old\n"
    leftovers = storage.leftover_temp_files(tmp_path)
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".t.snap.")


def test_update_removes_temporaries_left_by_a_killed_run(suite: pytest.Pytester) -> None:
    folder = suite.path / "snapshots/gpt2-small/test_ioi"
    (folder / ".test_slow.snap.abc123.tmp").write_text("half a fi")
    run_suite(suite, values={"a": 0.5}).assert_outcomes(passed=5)  # never read as a snapshot
    run_suite(suite, "--snapshot-update", values={"a": 0.5}).assert_outcomes(passed=5)
    assert storage.leftover_temp_files(folder) == []


def test_an_interrupted_update_keeps_the_old_snapshot(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    path = suite.path / "snapshots/gpt2-small/test_ioi/test_slow.snap"
    before = path.read_text()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(storage.os, "replace", broken_replace)
    result = run_suite(suite, "--snapshot-update", "-k", "slow", values={"a": 0.9})
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*SnapshotWriteError: cannot write snapshot *test_slow.snap: Input/output error*"])
    assert path.read_text() == before
    assert storage.leftover_temp_files(path.parent) == []


def test_a_read_only_snapshot_folder_gives_a_clear_error(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(**kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", kwargs.get("dir"))

    monkeypatch.setattr(storage, "tempfile", SimpleNamespace(mkstemp=denied))
    result = run_suite(suite, "--snapshot-update", "-k", "slow", values={"a": 0.9})
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*SnapshotWriteError: cannot write snapshot *test_slow.snap: the folder is read-only (Permission denied)*"]
    )


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores file permissions")
def test_a_really_read_only_folder_gives_a_clear_error(suite: pytest.Pytester) -> None:
    folder = suite.path / "snapshots/gpt2-small/test_ioi"
    folder.chmod(0o555)
    try:
        result = run_suite(suite, "--snapshot-update", "-k", "slow", values={"a": 0.9})
    finally:
        folder.chmod(0o755)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*SnapshotWriteError: cannot write snapshot *the folder is read-only*"])


def test_awkward_parameter_ids_become_distinct_file_names(pytester: pytest.Pytester) -> None:
    make_suite(
        pytester,
        test_ids="""
import pytest

@pytest.mark.parametrize("p", ["a/b", "ab", "x:y", "100%"])
def test_k(snapshot, p):
    assert snapshot == {"p": p}
""",
    )
    # No "-W error" here: in-process, a warning left over from an earlier test of the whole suite
    # (garbage-collected resources) could surface inside this inner run and fail it spuriously.
    run_suite(pytester, "--snapshot-update").assert_outcomes(passed=4)
    assert _files(pytester.path, "gpt2-small") == [
        "test_ids/test_k[100%25].snap",
        "test_ids/test_k[a%2Fb].snap",
        "test_ids/test_k[ab].snap",
        "test_ids/test_k[x%3Ay].snap",
    ]
    run_suite(pytester).assert_outcomes(passed=4)
