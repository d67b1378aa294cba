"""Bad input: every case raises pytest-annotate's own error, naming the bad value and what is valid.

Each case asserts three things:

* the specific exception class (``ModelSpecError``, ``ComponentError``, ``PromptError``...);
* that the message names the bad value and says what would be valid;
* that the exception was raised inside ``pytest_annotate`` (the last traceback frame), so that a
  researcher never reads a bare traceback from deep inside torch, transformers or TransformerLens.

Cases about the real tokenizer use Gemma (the session ``model``); the rest use ``tiny_gpt2``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from pytest_annotate import load_model
from pytest_annotate.interventions.components import Component, parse_components
from pytest_annotate.errors import ComponentError, ModelLoadError, ModelSpecError, PromptError
from pytest_annotate.interventions.ablations import InterventionSpecError, ablate
from pytest_annotate.models.spec import ModelSpec, resolve
from pytest_annotate.models.load import resolve_device
from pytest_annotate.checks.predictions import check_logit_diff, check_prob, check_rank, check_top_token
from pytest_annotate.snapshot.errors import SnapshotFileError, SnapshotModelMismatchError, SnapshotWriteError, ToleranceError
from pytest_annotate.plugin.testing import inline_suite, make_suite
from pytest_annotate.snapshot.tolerance import Tolerance
from pytest_annotate.scoring.sweeps import score_interventions, sweep

PACKAGE = Path(__import__("pytest_annotate").__file__).parent


def raises_here(error: type[BaseException], call: Callable[[], object], *fragments: str) -> str:
    """Run ``call``; assert it raises ``error`` from inside pytest_annotate with every fragment in its message."""
    __tracebackhide__ = True
    with pytest.raises(error) as info:
        call()
    assert type(info.value) is error or issubclass(type(info.value), error)
    last = Path(info.traceback[-1].path)
    assert PACKAGE in last.parents, f"{type(info.value).__name__} was raised from {last}, outside pytest_annotate"
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} is not in the message:\n{message}"
    return message


# =========================================================================== the model


@pytest.mark.parametrize(
    ("name", "fragments"),
    [
        ("llama-9000", ["unknown model 'llama-9000'", "Valid: an embedded model (gemma-3-270m, smollm2-135m)"]),
        ("gemma-3-27m", ["unknown model 'gemma-3-27m'", "Did you mean 'gemma-3-270m'"]),
        ("gpt2-smal", ["unknown model 'gpt2-smal'", "Did you mean 'gpt2-small'"]),
        ("pythia-70", ["unknown model 'pythia-70'", "Did you mean 'pythia-70m'"]),
        ("   ", ["model name '   ' is empty", "give an embedded model"]),
    ],
)
def test_unknown_or_misspelt_model_names(name: str, fragments: list[str]) -> None:
    raises_here(ModelSpecError, lambda: resolve(ModelSpec(name)), *fragments)


@pytest.mark.parametrize(
    ("spec", "fragments"),
    [
        (dict(name="pythia-70m", checkpoint=-1), ["checkpoint -1 is not valid", "a whole number >= 0"]),
        (dict(name="pythia-70m", checkpoint=3000, revision="main"),
         ["either --checkpoint (3000) or --revision ('main'), not both"]),
        (dict(name="gpt2-small", checkpoint=3000), ["--checkpoint 3000: 'gpt2' has no known checkpoint schedule",
                                                     "Use --revision"]),
        (dict(name="pythia-160m-deduped", checkpoint=3001),
         ["--checkpoint 3001 is not a published checkpoint", "nearest: 2000, 3000, 4000"]),
        (dict(name="gemma-3-270m", checkpoint=5), ["'gemma-3-270m' has no checkpoints", "drop --checkpoint"]),
        (dict(dtype="float64"), ["dtype 'float64' is not supported", "float32, bfloat16, float16"]),
        (dict(processing="folded"), ["processing 'folded' is not supported", "compat", "raw"]),
        (dict(device="tpu"), ["device 'tpu' is not valid", "auto, cpu, cuda, cuda:N or mps"]),
        (dict(device_map="everywhere"), ["device map 'everywhere' is not valid", "auto, balanced, balanced_low_0, sequential"]),
        (dict(device="cuda:0", device_map="auto"), ["either --device (cuda:0) or --device-map (auto), not both"]),
        (dict(random_weights=True, device_map="auto"), ["--device-map needs real weights", "--random-weights"]),
    ],
)
def test_invalid_model_options(spec: dict, fragments: list[str]) -> None:
    raises_here(ModelSpecError, lambda: resolve(ModelSpec(**spec)), *fragments)


@pytest.mark.skipif(torch.cuda.device_count() > 3, reason="this machine has a cuda:3")
def test_a_gpu_this_machine_lacks() -> None:
    if torch.cuda.is_available():
        raises_here(ModelSpecError, lambda: resolve_device("cuda:3"), "--device cuda:3: only", "valid: cuda:0")
    else:
        raises_here(ModelSpecError, lambda: resolve_device("cuda:3"), "--device cuda:3: CUDA is not available",
                    "Use --device cpu")


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")
def test_mps_on_a_machine_without_it() -> None:
    raises_here(ModelSpecError, lambda: resolve_device("mps"), "--device mps: MPS is not available", "--device cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_loading_onto_cuda_without_cuda_fails_before_reading_weights(tiny_gpt2_dir: Path) -> None:
    raises_here(ModelSpecError, lambda: load_model(str(tiny_gpt2_dir), device="cuda"),
                "--device cuda: CUDA is not available", "Use --device cpu or --device auto")


def test_a_path_that_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "model"
    raises_here(ModelSpecError, lambda: resolve(ModelSpec(str(missing))),
                f"--model {str(missing)!r} looks like a path, but there is no directory at")


def test_a_directory_without_config(tmp_path: Path) -> None:
    raises_here(ModelSpecError, lambda: resolve(ModelSpec(str(tmp_path))),
                f"{tmp_path} is not a HuggingFace model directory: it has no config.json")


def test_a_local_directory_without_weights(tmp_path: Path, tiny_gpt2_dir: Path) -> None:
    for f in tiny_gpt2_dir.iterdir():
        if f.suffix != ".safetensors":
            shutil.copy(f, tmp_path)
    raises_here(ModelSpecError, lambda: load_model(str(tmp_path), device="cpu"),
                f"{tmp_path} has a config.json but no weights", "*.safetensors, pytorch_model*.bin")


def test_a_truncated_weights_file(tmp_path: Path, tiny_gpt2_dir: Path) -> None:
    broken = shutil.copytree(tiny_gpt2_dir, tmp_path / "truncated")
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    raises_here(ModelLoadError, lambda: load_model(str(broken), device="cpu"),
                f"Could not load the model directory {broken}", "corrupt or truncated", "re-save the model")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--checkpoint", "3000", "--revision", "main", "--model", "pythia-70m"],
         "*either --checkpoint (3000) or --revision ('main'), not both*"),
        (["--device", "cuda:3"], "*--device cuda:3: *"),
        (["--model", "gemma-3-27m"], "*unknown model 'gemma-3-27m'. Did you mean 'gemma-3-270m'*"),
    ],
)
def test_bad_command_lines_are_one_usage_error(pytester: pytest.Pytester, args: list[str], message: str) -> None:
    if args[:2] == ["--device", "cuda:3"] and torch.cuda.device_count() > 3:
        pytest.skip("this machine has a cuda:3")
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: pytest-annotate: {message}"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


# =========================================================================== components


@pytest.mark.parametrize(
    ("name", "fragments"),
    [
        ("L99", ["'L99': layer 99 is out of range: tiny-gpt2 has 2 layers (0..1)"]),
        ("MLP9", ["'MLP9': layer 9 is out of range"]),
        ("L1H40", ["'L1H40': head 40 is out of range: tiny-gpt2 has 4 heads per layer (0..3)"]),
        ("MLP", ["'MLP' is not a component name: 'MLP' needs a layer number, e.g. MLP9"]),
        ("attn-1", ["'attn-1' is not a component name", "no negative layer"]),
        ("L5H", ["'L5H' is not a component name", "L<layer>H<head>"]),
        ("H3", ["'H3' is not a component name"]),
        ("", ["no component given (got '')"]),
        ("L1-L0", ["'L1-L0': the range runs backwards", "L0-L1"]),
    ],
)
def test_unknown_and_out_of_range_components(tiny_gpt2, name: str, fragments: list[str]) -> None:
    message = raises_here(ComponentError, lambda: parse_components(name, tiny_gpt2), *fragments)
    if "runs backwards" not in message:
        assert "Valid: L0..L1, attn0..attn1, MLP0..MLP1, L0H0..L1H3" in message


def test_a_head_gemma_does_not_have(model) -> None:
    # Gemma 3 270M has 4 query heads (sharing one key/value head): L5H4 does not exist.
    raises_here(ComponentError, lambda: parse_components("L5H4", model),
                "'L5H4': head 4 is out of range", "4 heads per layer (0..3)")


def test_a_component_of_an_unknown_kind() -> None:
    raises_here(ComponentError, lambda: Component("neuron", 3), "unknown component kind 'neuron'", "valid kinds:")


# =========================================================================== prompts and answers


def test_an_empty_prompt(tiny_gpt2) -> None:
    raises_here(PromptError, lambda: tiny_gpt2.run(""), "the prompt is empty")


def test_an_empty_token_list(tiny_gpt2) -> None:
    raises_here(PromptError, lambda: tiny_gpt2.run([]), "the prompt has no tokens")


def test_a_prompt_longer_than_the_context(tiny_gpt2) -> None:
    raises_here(PromptError, lambda: tiny_gpt2.run("a " * 100),
                "the prompt is 201 tokens long, longer than tiny-gpt2's context of 64")


def test_a_token_list_longer_than_gemmas_context(model) -> None:
    too_long = [2] * (model.n_ctx + 1)
    raises_here(PromptError, lambda: model.tokens(too_long), f"{model.n_ctx + 1} tokens long",
                f"context of {model.n_ctx}")


@pytest.mark.parametrize("bad_id", [262_144, -1])
def test_a_token_id_outside_gemmas_vocabulary(model, bad_id: int) -> None:
    raises_here(PromptError, lambda: model.run([2, bad_id]), f"token id {bad_id} is out of range",
                "valid ids are 0..262143")


def test_an_empty_answer(model) -> None:
    raises_here(PromptError, lambda: check_prob(model, "1 2 3", "", min_prob=0.1), "the answer is empty", "' May'")


def test_answer_ids_outside_the_vocabulary(model) -> None:
    raises_here(PromptError, lambda: check_rank(model, "1 2 3", [262_144], rank=0), "(262144,)",
                "valid ids 0..262143")


def test_gemmas_byte_fallback_means_no_text_is_out_of_vocabulary(model) -> None:
    # Not an error case: Gemma's tokenizer falls back to byte tokens (<0x00>...), so every string
    # has ids and no <unk>. The honest "not in the vocabulary" errors are ids out of range (above)
    # and a multi-token string where one token is required (below).
    ids = model.answer_tokens("\x00 ☃ 𝔘")
    assert model.bridge.tokenizer.unk_token_id not in ids


def test_a_multi_token_string_where_one_token_is_required(model) -> None:
    # Gemma splits " 5" into " " + "5".
    raises_here(PromptError, lambda: model.single_token(" 5"), "' 5' is 2 tokens", "[' ', '5']",
                "give a single token")


def test_a_multi_token_string_as_an_algebra_logit(model) -> None:
    from pytest_annotate.algebra import PromptedTransformer, logits

    L = logits(PromptedTransformer(model, "1 2 3 4")(" "))
    raises_here(PromptError, lambda: L[" 5"], "[' 5']: ' 5' is not one token", "[' ', '5']", "score_answer")


def test_a_hook_point_that_does_not_exist(tiny_gpt2) -> None:
    raises_here(PromptError, lambda: tiny_gpt2.cache("A B C", names=["blocks.9.hook_resid_post"]),
                "unknown hook point(s) ['blocks.9.hook_resid_post']", "in all)")


def test_logit_diff_between_identical_answers(tiny_gpt2) -> None:
    raises_here(PromptError, lambda: check_logit_diff(tiny_gpt2, "A B C", " D", " D", min_diff=1.0), "' D'")


# =========================================================================== tolerances and options


@pytest.mark.parametrize(
    ("call", "fragments"),
    [
        (lambda lab: check_rank(lab, "A B", " C", rank=1, max_rank=2),
         ["give exactly one of rank=", "got rank=1, max_rank=2"]),
        (lambda lab: check_rank(lab, "A B", " C"), ["give exactly one of rank=", "got rank=None, max_rank=None"]),
        (lambda lab: check_rank(lab, "A B", " C", rank=-1), ["rank=-1 is not a rank", "whole number >= 0"]),
        (lambda lab: check_prob(lab, "A B", " C", min_prob=1.5), ["min_prob=1.5 is not a probability",
                                                                   "between 0 and 1", "min_prob=0.015?"]),
        (lambda lab: check_prob(lab, "A B", " C", max_prob=-0.1), ["max_prob=-0.1 is not a probability"]),
        (lambda lab: check_prob(lab, "A B", " C", min_prob=0.6, max_prob=0.5),
         ["min_prob=0.6 is above max_prob=0.5"]),
        (lambda lab: check_top_token(lab, "A B", " C", k=0), ["k=0 is not a valid top-k", ">= 1"]),
        (lambda lab: sweep(lab, "A B", " C", "mlp", metric="probz"), ["unknown metric 'probz'",
                                                                       "logprob, prob, logit, rank"]),
        (lambda lab: score_interventions(lab, "A B", " C", [None], max_batch_size=0),
         ["max_batch_size must be 1 or more, not 0"]),
    ],
    ids=["rank-and-max_rank", "neither-rank", "negative-rank", "min_prob-percent", "negative-max_prob",
         "min-above-max", "k-zero", "unknown-metric", "batch-size-zero"],
)
def test_invalid_check_options(tiny_gpt2, call: Callable, fragments: list[str]) -> None:
    raises_here(ValueError, lambda: call(tiny_gpt2), *fragments)


@pytest.mark.parametrize(
    ("spec", "fragments"),
    [
        ({"prob": -0.1}, ["tolerance for 'prob' must be >= 0, got -0.1"]),
        ({"prob": {"rel": -1}}, ["tolerance for 'prob' must be >= 0, got {'rel': -1}"]),
        ({"prob": {"relative": 0.1}}, ["unknown keys ['relative']", "use 'abs' and 'rel'"]),
        ({"prob": True}, ["must be a number, a dict or a Band, not a bool"]),
    ],
    ids=["negative-abs", "negative-rel", "unknown-key", "bool"],
)
def test_invalid_tolerances(spec: dict, fragments: list[str]) -> None:
    raises_here(ToleranceError, lambda: Tolerance.default().with_overrides(spec), *fragments)


# =========================================================================== ablations


@pytest.mark.parametrize("how", ["mean", "resample"])
def test_an_ablation_that_needs_a_reference_set_without_one(tiny_gpt2, how: str) -> None:
    raises_here(InterventionSpecError, lambda: ablate(tiny_gpt2, "MLP1", how),
                f"'{how} MLP1' needs a reference set", "reference=[...]", "permuted_prompts")


def test_an_unknown_ablation(tiny_gpt2) -> None:
    raises_here(InterventionSpecError, lambda: ablate(tiny_gpt2, "MLP1", "zeros"),
                "unknown ablation 'zeros'", "zero, mean, resample, skip", "Did you mean 'zero'?")


def test_a_reference_given_as_one_string(tiny_gpt2) -> None:
    raises_here(InterventionSpecError, lambda: ablate(tiny_gpt2, "MLP1", "mean", reference="A B C"),
                "reference must be a list of prompts, not one string ('A B C')", "reference=['A B C', ...]")


def test_an_empty_reference_set(tiny_gpt2) -> None:
    raises_here(InterventionSpecError, lambda: ablate(tiny_gpt2, "MLP1", "mean", reference=[]),
                "the reference set is empty")


# =========================================================================== snapshots

SNAPSHOT_TEST = """
def test_x(snapshot, values):
    assert snapshot == {"rank": values["rank"], "prob": values["prob"]}
"""


def _failure(recorder: pytest.HookRecorder) -> pytest.TestReport:
    failed = [r for r in recorder.getreports("pytest_runtest_logreport") if r.failed]
    assert len(failed) == 1, [r.nodeid for r in failed]
    return failed[0]


def _headline(report: pytest.TestReport) -> str:
    """The first line syrupy shows under the failed ``snapshot ==``: it must be our error, not a traceback.

    syrupy catches an error raised while reading or writing a snapshot and shows it as the
    assertion's explanation (its traceback follows, truncated unless -vv).
    """
    lines = [line for line in report.longreprtext.splitlines() if line.startswith("E   ")]
    assert lines[0].endswith("assert [- snapshot] == [+ received]"), lines
    return lines[1].removeprefix("E").strip()


@pytest.fixture
def recorded(pytester: pytest.Pytester) -> pytest.Pytester:
    make_suite(pytester, test_one=SNAPSHOT_TEST)
    inline_suite(pytester, "--snapshot-update", values={"rank": 0, "prob": 0.5}).assertoutcome(passed=1)
    return pytester


def _snap(pytester: pytest.Pytester) -> Path:
    return pytester.path / "snapshots" / "gpt2-small" / "test_one" / "test_x.snap"


def test_a_snapshot_file_from_another_model(recorded: pytest.Pytester) -> None:
    path = _snap(recorded)
    path.write_text(path.read_text().replace("# model: gpt2-small", "# model: pythia-70m"))
    report = _failure(inline_suite(recorded, values={"rank": 0, "prob": 0.5}))
    assert _headline(report) == (
        "pytest_annotate.snapshot.errors.SnapshotModelMismatchError: snapshots/gpt2-small/test_one/test_x.snap:2: "
        "this snapshot was recorded for model 'pythia-70m', but it is in the folder of 'gpt2-small'. Move it to "
        "snapshots/pythia-70m/, or delete it and re-run with --snapshot-update to record 'gpt2-small'.")


def test_a_corrupt_snapshot_file(recorded: pytest.Pytester) -> None:
    path = _snap(recorded)
    path.write_text(path.read_text().replace("prob = 0.5", "prob = 0.5.1"))
    report = _failure(inline_suite(recorded, values={"rank": 0, "prob": 0.5}))
    assert _headline(report) == (
        f"pytest_annotate.snapshot.errors.{SnapshotFileError.__name__}: snapshots/gpt2-small/test_one/test_x.snap:7: "
        "cannot read the value of 'prob': '0.5.1' is not a Python literal (invalid syntax)")


def test_a_snapshot_folder_that_cannot_be_created(pytester: pytest.Pytester) -> None:
    # Root ignores permission bits, so make the folder's path a file: a real OS refusal for anyone.
    make_suite(pytester, test_one=SNAPSHOT_TEST)
    (pytester.path / "snapshots" / "gpt2-small").mkdir(parents=True)
    (pytester.path / "snapshots" / "gpt2-small" / "test_one").write_text("not a folder")
    report = _failure(inline_suite(pytester, "--snapshot-update", values={"rank": 0, "prob": 0.5}))
    headline = _headline(report)
    assert headline.startswith(f"pytest_annotate.snapshot.errors.{SnapshotWriteError.__name__}: cannot write "
                               f"snapshot {pytester.path}/snapshots/gpt2-small/test_one/test_x.snap: ")
    assert "File exists" in headline and "Make the snapshot folder writable" in headline


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores file permissions")
def test_a_read_only_snapshot_folder(recorded: pytest.Pytester) -> None:
    folder = _snap(recorded).parent
    folder.chmod(0o555)
    try:
        report = _failure(inline_suite(recorded, "--snapshot-update", values={"rank": 1, "prob": 0.9}))
    finally:
        folder.chmod(0o755)
    assert "the folder is read-only" in _headline(report)

