"""The plugin seen from pytest: options, ini settings, markers, header, fixtures, isolation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

OPTIONS = ["--model", "--checkpoint", "--revision", "--device", "--dtype", "--processing", "--threads",
           "--random-weights", "--trust-remote-code", "--run-gpu-checks"]


def test_options_appear_in_their_own_help_group(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    out = result.stdout.str()
    group = out[out.index("pytest-annotate (model behaviour tests)"):]
    for flag in OPTIONS:
        assert flag in group, flag
    for ini in ("annotate_model", "annotate_device", "annotate_dtype", "annotate_processing"):
        assert ini in out


def test_header_names_model_device_dtype_processing_and_versions(pytester: pytest.Pytester, tiny_gpt2_dir: Path) -> None:
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest("--model", str(tiny_gpt2_dir), "--processing", "raw", "--dtype", "bfloat16")
    result.stdout.fnmatch_lines([
        "pytest-annotate: model tiny-gpt2+raw (local *), device auto, dtype bfloat16, processing raw",
        "pytest-annotate: transformer-lens 4.*, torch *, transformers *",
    ])


def test_ini_settings_are_used_and_the_command_line_wins(pytester: pytest.Pytester, tiny_gpt2_dir: Path) -> None:
    pytester.makeini(f"[pytest]\nannotate_model = {tiny_gpt2_dir}\nannotate_processing = raw\n")
    pytester.makepyfile("def test_nothing(): pass")
    pytester.runpytest().stdout.fnmatch_lines(["*model tiny-gpt2+raw*processing raw*"])
    pytester.runpytest("--processing", "compat").stdout.fnmatch_lines(["*model tiny-gpt2 (local*processing compat*"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "gpt2-smal"], "*unknown model 'gpt2-smal'. Did you mean 'gpt2-small'*"),
        (["--dtype", "float64"], "*dtype 'float64' is not supported; valid dtypes: float32, bfloat16, float16*"),
        (["--processing", "folded"], "*processing 'folded' is not supported; valid: compat*raw*"),
        (["--checkpoint", "abc"], "*--checkpoint 'abc' is not a whole number*"),
        (["--model", "pythia-160m-deduped", "--checkpoint", "3001"],
         "*not a published checkpoint of EleutherAI/pythia-160m-deduped; nearest: 2000, 3000, 4000*"),
        (["--model", "gemma-3-270m", "--checkpoint", "5"], "*embedded model 'gemma-3-270m' has no checkpoints*"),
        (["--threads", "0"], "*--threads 0: give 1 or more*"),
        (["--device", "tpu"], "*device 'tpu' is not valid; use auto, cpu, cuda, cuda:N or mps*"),
    ],
)
def test_bad_options_fail_before_collection_with_one_line(pytester: pytest.Pytester, args: list[str], message: str) -> None:
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_model_that_cannot_load_ends_the_session_with_one_message(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(pytester.path / "empty-hf-home"))
    pytester.makepyfile("""
        def test_a(model): pass
        def test_b(model): pass
        def test_c(model): pass
    """)
    result = pytester.runpytest_subprocess("--model", "gpt2-small")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    out = result.stdout.str()
    assert out.count("could not load the model") == 1
    result.stdout.fnmatch_lines(["*Could not load 'gpt2-small' (HuggingFace id 'gpt2'): the HuggingFace hub is "
                                 "unreachable*not in the local cache*Fix:*"])
    assert "Traceback" not in out


def test_model_marker_skips_other_models_with_a_reason(pytester: pytest.Pytester, tiny_gpt2_dir: Path) -> None:
    pytester.makepyfile("""
        import pytest

        @pytest.mark.model("gpt2-small")
        def test_for_gpt2(): pass

        @pytest.mark.model("pythia-70m", "tiny-gpt2")
        def test_for_tiny(): pass

        def test_for_any(): pass
    """)
    result = pytester.runpytest("--model", str(tiny_gpt2_dir), "-rs", "--strict-markers")
    result.assert_outcomes(passed=2, skipped=1)
    result.stdout.fnmatch_lines(["*belongs to gpt2-small; this session runs tiny-gpt2 (run with --model gpt2-small)*"])


def test_boolean_options_have_no_forms_that_override_the_ini(pytester: pytest.Pytester, tiny_gpt2_dir: Path) -> None:
    pytester.makeini("[pytest]\nannotate_random_weights = true\nannotate_run_gpu_checks = true\n")
    pytester.makepyfile("""
        import pytest

        @pytest.mark.gpu
        def test_heavy(): pass
    """)
    # --collect-only: resolving the model is cheap (nothing is loaded).
    pytester.runpytest("--model", "gpt2-small", "--co").stdout.fnmatch_lines(["*gpt2*RANDOM WEIGHTS*"])
    real = pytester.runpytest("--model", "gpt2-small", "--no-random-weights", "--co")
    real.stdout.fnmatch_lines(["pytest-annotate: model gpt2-small (HuggingFace gpt2)*"])
    assert "RANDOM" not in real.stdout.str()
    args = (f"--model={tiny_gpt2_dir}", "--device", "cpu")  # one argument: pytest would take a path for rootdir
    pytester.runpytest(*args, "--no-random-weights").assert_outcomes(passed=1)  # the ini's gpu checks: on
    pytester.runpytest(*args, "--no-random-weights", "--no-run-gpu-checks").assert_outcomes(skipped=1)
    help_text = pytester.runpytest("--model", "gpt2-small", "--help").stdout.str()
    for flag in ("--no-random-weights", "--no-trust-remote-code", "--no-run-gpu-checks", "--no-nondeterministic"):
        assert flag in help_text, flag


def test_marker_declares_processing_and_dtype_and_a_mismatch_skips_saying_what_to_pass(
    pytester: pytest.Pytester, tiny_gpt2_dir: Path
) -> None:
    pytester.makepyfile("""
        import pytest

        @pytest.mark.model("tiny-gpt2", processing="raw")
        def test_published_raw(): pass

        @pytest.mark.model("tiny-gpt2", processing="compat")
        def test_published_compat(): pass

        @pytest.mark.model("tiny-gpt2", dtype="bfloat16")
        def test_published_in_bf16(): pass

        @pytest.mark.model("gpt2-small", processing="raw")
        def test_other_model(): pass
    """)
    result = pytester.runpytest("--model", str(tiny_gpt2_dir), "-rs", "--strict-markers")
    result.assert_outcomes(passed=1, skipped=3)
    result.stdout.fnmatch_lines_random([
        "*published in raw processing (HuggingFace numerics, nothing folded); this session runs --processing "
        "compat: run with --processing raw*",
        "*published in bfloat16; this session runs --dtype float32: run with --dtype bfloat16*",
        "*belongs to gpt2-small; this session runs tiny-gpt2 (run with --model gpt2-small --processing raw)*",
    ])
    raw = pytester.runpytest("--model", str(tiny_gpt2_dir), "--processing", "raw", "-rs")
    raw.assert_outcomes(passed=1, skipped=3)
    raw.stdout.fnmatch_lines(["*published in compat processing (TransformerLens compatibility mode*"
                              "--processing compat*"])


def test_the_nearest_marker_setting_wins(pytester: pytest.Pytester, tiny_gpt2_dir: Path) -> None:
    pytester.makepyfile("""
        import pytest

        pytestmark = pytest.mark.model("tiny-gpt2", processing="raw")

        def test_module_setting(): pass

        @pytest.mark.model(processing="compat")
        def test_own_setting(): pass
    """)
    pytester.runpytest("--model", str(tiny_gpt2_dir)).assert_outcomes(passed=1, skipped=1)


def test_marker_bos_is_applied_while_the_test_runs(pytester: pytest.Pytester, tiny_gpt2_dir: Path) -> None:
    pytester.makepyfile("""
        import pytest

        @pytest.mark.model("tiny-gpt2", bos=False)
        def test_without_bos(model):
            assert model.str_tokens("A B") == ["A", " B"] and not model.has_bos
            assert model.str_tokens("A B", bos=True)[0] == "<|endoftext|>"  # a call's own bos still wins

        def test_policy_restored(model):
            assert model.str_tokens("A B")[0] == "<|endoftext|>"  # GPT-2's BOS policy
    """)
    pytester.runpytest("--model", str(tiny_gpt2_dir), "--device", "cpu", "-p", "no:randomly").assert_outcomes(passed=2)


@pytest.mark.parametrize(("marker", "message"), [
    ('"tiny-gpt2", processing="folded"', "processing='folded': valid: 'compat', 'raw'"),
    ('"tiny-gpt2", bos="yes"', "bos='yes': give True"),
    ('"tiny-gpt2", dtype="float64"', "dtype='float64': valid: 'float32', 'bfloat16', 'float16'"),
    ('"tiny-gpt2", prepend_bos=True', "got prepend_bos=; it takes model names and processing=, bos=, dtype="),
])
def test_a_bad_marker_is_a_usage_error_naming_the_test(
    pytester: pytest.Pytester, tiny_gpt2_dir: Path, marker: str, message: str
) -> None:
    pytester.makepyfile(f"import pytest\n\n@pytest.mark.model({marker})\ndef test_x(): pass\n")
    result = pytester.runpytest("--model", str(tiny_gpt2_dir))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*test_a_bad_marker_is_a_usage_error_naming_the_test.py::test_x: "
                                 f"@pytest.mark.model(...) {message}*"])


BEHAVIOURS = """
    import pytest

    pytestmark = pytest.mark.model("gpt2-small", processing="compat")

    def test_a(): pass
    def test_b(): pass

    @pytest.mark.model(processing="raw")
    def test_raw(): pass
"""


def test_a_session_that_judges_no_behaviour_exits_non_zero_and_counts_the_skips(
    pytester: pytest.Pytester, tiny_gpt2_dir: Path
) -> None:
    pytester.makepyfile(test_behaviours=BEHAVIOURS)
    result = pytester.runpytest("--model", str(tiny_gpt2_dir))
    result.assert_outcomes(skipped=3)
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    result.stdout.fnmatch_lines([
        "*pytest-annotate: NOTHING JUDGED*",
        "pytest-annotate: no behaviour of tiny-gpt2 was judged: the 3 selected behaviours with a model marker "
        "were all skipped (exit code 5). Skipped, by reason:",
        "     2 × belongs to gpt2-small; this session runs tiny-gpt2 (run with --model gpt2-small)",
        "     1 × belongs to gpt2-small; this session runs tiny-gpt2 (run with --model gpt2-small --processing raw)",
    ])
    # An explicit selection that judges nothing says so too; -k and node ids that judge something are fine.
    one = pytester.runpytest("--model", str(tiny_gpt2_dir), "test_behaviours.py::test_raw")
    assert one.ret == pytest.ExitCode.NO_TESTS_COLLECTED and "the 1 selected behaviour with" in one.stdout.str()
    pytester.makepyfile(test_tiny="""
        import pytest

        @pytest.mark.model("tiny-gpt2")
        def test_tiny(): pass
    """)
    assert pytester.runpytest("--model", str(tiny_gpt2_dir)).ret == pytest.ExitCode.OK
    assert pytester.runpytest("--model", str(tiny_gpt2_dir), "-k", "tiny").ret == pytest.ExitCode.OK
    assert pytester.runpytest("--model", str(tiny_gpt2_dir), "-k", "test_b").ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_a_skipped_processing_is_counted_with_the_option_to_pass(pytester: pytest.Pytester, tiny_gpt2_dir: Path) -> None:
    pytester.makepyfile("""
        import pytest

        pytestmark = pytest.mark.model("tiny-gpt2", processing="raw")

        def test_a(): pass
        def test_b(): pass
    """)
    result = pytester.runpytest("--model", str(tiny_gpt2_dir))
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    result.stdout.fnmatch_lines(["     2 × published in raw processing (HuggingFace numerics, nothing folded); "
                                 "this session runs --processing compat: run with --processing raw"])


def test_sessions_without_model_markers_and_failing_sessions_are_not_affected(
    pytester: pytest.Pytester, tiny_gpt2_dir: Path
) -> None:
    pytester.makepyfile(test_plain="""
        import pytest

        @pytest.mark.skip(reason="not today")
        def test_skipped(): pass
    """)
    result = pytester.runpytest("--model", str(tiny_gpt2_dir))
    assert result.ret == pytest.ExitCode.OK and "NOTHING JUDGED" not in result.stdout.str()
    pytester.makepyfile(test_behaviours=BEHAVIOURS, test_plain="def test_fails(): assert False")
    assert pytester.runpytest("--model", str(tiny_gpt2_dir)).ret == pytest.ExitCode.TESTS_FAILED


@pytest.mark.parametrize(("marker", "model", "runs"), [
    ("gpt2-small", "gpt2", True), ("gpt2", "gpt2-small", True), ("pythia-160m-deduped", "EleutherAI/pythia-160m-deduped", True),
    ("pythia-70m", "pythia-160m-deduped", False), ("gemma-3-270m", "gemma-3-270m", True),
    ("gemma-3-270m-q4_k_m", "gemma-3-270m", True), ("smollm2-135m", "gemma-3-270m", False),
])
def test_model_marker_matches_aliases(marker: str, model: str, runs: bool) -> None:
    from pytest_annotate.models.spec import ModelSpec, resolve
    from pytest_annotate.plugin.core import _marker_matches

    assert _marker_matches(resolve(ModelSpec(model)), [marker]) is runs


def test_gpu_marker_is_skipped_on_cpu_unless_asked(pytester: pytest.Pytester, tiny_gpt2_dir: Path) -> None:
    pytester.makepyfile("""
        import pytest

        @pytest.mark.gpu
        def test_heavy(): pass
    """)
    pytester.runpytest("--model", str(tiny_gpt2_dir), "--device", "cpu", "--strict-markers").assert_outcomes(skipped=1)
    pytester.runpytest("--model", str(tiny_gpt2_dir), "--device", "cpu", "--run-gpu-checks").assert_outcomes(passed=1)


def test_forward_passes_are_memoized_across_tests(pytester: pytest.Pytester, tiny_gpt2_dir: Path) -> None:
    pytester.makepyfile("""
        def test_first(model):
            model.run("The capital of Ireland is")
            model.run("The capital of Ireland is")
            assert (model.stats.requested, model.stats.executed) == (2, 1)

        def test_second_reuses_the_first(model, cache):
            model.run("The capital of Ireland is")
            cache("The capital of Ireland is", names=["blocks.0.hook_resid_pre"])
            cache("The capital of Ireland is", names=["blocks.0.hook_resid_pre"])
            assert (model.stats.requested, model.stats.executed) == (5, 2)

        def test_bos_policy(model):
            assert model.str_tokens("A B")[0] == "<|endoftext|>"
            assert model.str_tokens("A B", bos=False)[0] == "A"
    """)
    result = pytester.runpytest("--model", str(tiny_gpt2_dir), "--device", "cpu")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["pytest-annotate: tiny-gpt2: 5 forward passes requested, 2 executed*"])


def test_model_tests_are_seeded_and_deterministic(pytester: pytest.Pytester, tiny_gpt2_dir: Path) -> None:
    pytester.makepyfile("""
        import random, torch

        def test_first(model):
            assert torch.initial_seed() == 7 and torch.are_deterministic_algorithms_enabled()
            torch.rand(100), random.random()  # draw: the next test must not see the difference

        def test_second(model):
            assert torch.initial_seed() == 7
            assert random.Random(7).random() == random.random()
            assert torch.equal(torch.rand(3), torch.rand(3, generator=torch.Generator().manual_seed(7)))
    """)
    before, warn_only = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    pytester.runpytest("--model", str(tiny_gpt2_dir), "--device", "cpu", "--annotate-seed", "7").assert_outcomes(passed=2)
    assert torch.are_deterministic_algorithms_enabled() == before, "the session must restore torch's flags"
    pytester.makepyfile(test_fast="""
        import torch

        def test_flag(model):
            assert not torch.are_deterministic_algorithms_enabled()
    """)
    torch.use_deterministic_algorithms(True)  # as after an earlier session: --nondeterministic turns it off
    try:
        pytester.runpytest("test_fast.py", "--model", str(tiny_gpt2_dir), "--device", "cpu",
                           "--nondeterministic").assert_outcomes(passed=1)
        assert torch.are_deterministic_algorithms_enabled(), "and gives it back after the session"
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn_only)
    result = pytester.runpytest("--model", str(tiny_gpt2_dir), "--annotate-seed", "abc")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--annotate-seed 'abc' is not a whole number*"])


def test_a_test_that_leaves_a_hook_fails_and_the_next_runs_clean(pytester: pytest.Pytester, tiny_gpt2_dir: Path) -> None:
    pytester.makepyfile("""
        def test_leaky(model):
            model.bridge.blocks[0].hook_resid_pre.add_hook(lambda act, hook: act)

        def test_next(model):
            assert model.hook_leaks() == []
    """)
    result = pytester.runpytest("--model", str(tiny_gpt2_dir), "--device", "cpu")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*test_leaky left hooks on the model at blocks.0.hook_resid_pre*removed*"])


def test_a_test_that_changes_weights_fails_and_weights_are_restored(pytester: pytest.Pytester, tiny_gpt2_dir: Path) -> None:
    pytester.makepyfile("""
        import torch

        def test_vandal(model):
            with torch.no_grad():
                next(model.bridge.parameters()).add_(1.0)

        def test_next(model):
            assert model.weights_changed() == []
    """)
    result = pytester.runpytest("--model", str(tiny_gpt2_dir), "--device", "cpu")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*test_vandal changed the model's weights*reloaded*"])


def test_xdist_workers_each_load_the_model(pytester: pytest.Pytester, tiny_gpt2_dir: Path) -> None:
    """Behaviour files spread over two workers (one model per worker), here on CPU."""
    pytester.makepyfile(**{
        f"test_file{i}": f"""
            def test_runs(model):
                logits = model.run("The capital of Ireland is")
                assert logits.shape[-1] == model.d_vocab
        """ for i in range(4)
    })
    result = pytester.runpytest_subprocess("--model", str(tiny_gpt2_dir), "--device", "cpu", "-n", "2", "-p", "xdist")
    result.assert_outcomes(passed=4)


def test_worker_device_spreads_over_gpus() -> None:
    from pytest_annotate.plugin.core import worker_device

    assert [worker_device("cuda", f"gw{i}", 4) for i in range(5)] == ["cuda:0", "cuda:1", "cuda:2", "cuda:3", "cuda:0"]
    assert worker_device("cpu", "gw1", 4) == "cpu"
