"""--parity: the TransformerLens bridge's next-token log-probs against the unprocessed HuggingFace model's."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from pytest_annotate import load_model
from pytest_annotate.models.parity import (
    ParityReport,
    ParityUnavailable,
    PromptParity,
    default_atol,
    load_reference,
    parity,
    unavailable_reason,
)

PROMPTS = ["The capital of Ireland is", "Monday Tuesday Wednesday", "A B C D E F"]

SUITE = """
def test_capital(model):
    model.run("The capital of Ireland is")

def test_days(model):
    model.run("Monday Tuesday Wednesday Thursday")
    model.cache("one two three")
"""

# Adds 0.1 to every other entry of the unembedding row of token 5 right after the bridge is booted
# (before the Lab takes the fingerprint its isolation check compares with). A constant added to a
# whole row would change nothing under compat processing: the folded final norm's output is centred.
CORRUPT = """
import pytest_annotate.models.processed as processed

_boot = processed.boot

def _corrupt_boot(*args, **kwargs):
    booted = _boot(*args, **kwargs)
    weight = booted.bridge.unembed._original_component.weight
    with __import__("torch").no_grad():
        weight[5, ::2] += 0.1
    return booted

processed.boot = _corrupt_boot
"""


@pytest.mark.parametrize("lab_name", ["tiny_gpt2", "tiny_gpt2_raw"])
def test_both_processings_match_huggingface(lab_name: str, request: pytest.FixtureRequest) -> None:
    """Compat processing only re-associates float32 sums; raw runs HuggingFace's own modules."""
    lab = request.getfixturevalue(lab_name)
    result = parity(lab, PROMPTS)
    assert result.passed, result.report()
    assert result.max_abs < 1e-5
    assert [p.n_tokens for p in result.prompts] == [len(lab.tokens(p)) for p in PROMPTS]
    assert all(p.top1 == 1.0 and p.kl < 1e-9 for p in result.prompts)
    assert result.atol == default_atol("float32") == 1e-3
    assert result.measurements()[0].name == "max |Δ log-prob|" and result.measurements()[0].holds


def test_prompts_default_to_every_sequence_the_lab_ran(tiny_gpt2_dir: Path) -> None:
    lab = load_model(str(tiny_gpt2_dir), device="cpu")
    assert lab.prompts == []  # the warm-up pass at load is not a prompt
    lab.run("Monday Tuesday")
    lab.run("Monday Tuesday")
    lab.run_batch(lab.tokens("A B C")[None].repeat(2, 1))
    lab.cache("one two", names=["blocks.0.hook_resid_post"])
    expected = [tuple(lab.tokens(p).tolist()) for p in ("Monday Tuesday", "A B C", "one two")]
    assert lab.prompts == expected
    result = parity(lab)
    assert [p.prompt for p in result.prompts] == ["<|endoftext|>Monday Tuesday", "<|endoftext|>A B C",
                                                  "<|endoftext|>one two"]
    assert result.passed


def test_a_corrupted_weight_is_caught_and_the_worst_prompt_named(tiny_gpt2_dir: Path) -> None:
    lab = load_model(str(tiny_gpt2_dir), device="cpu")
    with __import__("torch").no_grad():
        lab.bridge.unembed._original_component.weight[5, ::2] += 0.1
    result = parity(lab, PROMPTS)
    assert not result.passed
    assert result.max_abs > 1e-2
    assert result.worst is max(result.prompts, key=lambda p: p.max_abs)
    report = result.report()
    assert report.startswith("FAILED  tiny-gpt2 (compat, float32) next-token log-probs match HuggingFace's within "
                             "0.001 nats: max |Δ log-prob| ")
    assert f"worst {result.worst.shown}" in report.splitlines()[0]
    assert "max |Δ|" in report and "--parity-atol" in report


def test_tolerance_is_the_one_given(tiny_gpt2: object) -> None:
    assert not parity(tiny_gpt2, PROMPTS, atol=0.0).passed  # compat is not bit-exact
    with pytest.raises(ValueError, match="not a tolerance"):
        parity(tiny_gpt2, PROMPTS, atol=-1)


def test_random_weights_compare_with_the_same_random_model() -> None:
    """--random-weights: the reference is the same seeded random HF model, before processing."""
    lab = load_model("pythia-70m", random_weights=True, device="cpu")
    result = parity(lab, ["The capital of Ireland is"])
    assert result.passed and result.max_abs < 1e-4, result.report()
    assert "the same random EleutherAI/pythia-70m (seed 0)" in result.reference


def test_a_device_map_is_not_compared() -> None:
    spec = SimpleNamespace(device_map="auto")
    lab = SimpleNamespace(resolved=SimpleNamespace(spec=spec), bridge=SimpleNamespace(original_model=None))
    assert "--device-map auto spreads the model over several devices" in unavailable_reason(lab)
    with pytest.raises(ParityUnavailable, match="--device-map auto"):
        load_reference(lab)


def test_report_with_no_prompts_and_with_a_nan() -> None:
    empty = ParityReport("m", "compat", "float32", "cpu", "ref", 1e-3, (), passed=True)
    assert empty.headline() == "PASSED  m (compat, float32) next-token log-probs match HuggingFace's within 0.001 " \
                               "nats: no prompt ran"
    nan = PromptParity("a", 3, float("nan"), float("nan"), float("nan"), 1.0, 2)
    ok = PromptParity("b", 3, 1e-6, 1e-7, 0.0, 1.0, 0)
    result = ParityReport("m", "compat", "float32", "cpu", "ref", 1e-3, (ok, nan), passed=False)
    assert result.worst is nan
    assert "max |Δ log-prob| nan nats" in result.headline()


# --------------------------------------------------------------------------- the plugin


def test_parity_passes_with_summary_lines_and_a_report_table(pytester: pytest.Pytester, tiny_gpt2_dir: Path) -> None:
    pytester.makepyfile(SUITE)
    result = pytester.runpytest("--model", str(tiny_gpt2_dir), "--device", "cpu", "--parity",
                                "--annotate-report", "report.html")
    assert result.ret == 0
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([
        ("pytest-annotate: --parity: next-token log-probs checked against HuggingFace at session end, "
         "tolerance 0.001 nats (float32)"),
        "*= pytest-annotate: parity with HuggingFace =*",
        ("PASSED  tiny-gpt2 (compat, float32) next-token log-probs match HuggingFace's within 0.001 nats: "
         "max |Δ log-prob| * nats over 3 prompts (* positions), worst '<|endoftext|>*'; reference "
         "AutoModelForCausalLM * (eager attention); all positions, full vocabulary; * s"),
    ])
    html = (pytester.path / "report.html").read_text()
    assert "ParityReport" in html and "max |Δ|" in html and "&#x27;&lt;|endoftext|&gt;one two three&#x27;" in html
    markdown = (pytester.path / "report.md").read_text()
    row = r"\| passed \| `--parity` \| .*max \|Δ log-prob\| .* nats \(claim ≤ 0\.001: holds"
    assert re.search(row, markdown.replace("\\|", "|"))


def test_parity_beyond_the_tolerance_fails_the_session(pytester: pytest.Pytester, tiny_gpt2_dir: Path) -> None:
    pytester.makeconftest(CORRUPT)
    pytester.makepyfile(SUITE)
    result = pytester.runpytest("--model", str(tiny_gpt2_dir), "--device", "cpu", "--parity")
    result.assert_outcomes(passed=2)  # every test passed, yet the session fails
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    out = result.stdout.str()
    worst = re.search(r"^--parity: the session FAILS: max \|Δ log-prob\| (\S+) nats is beyond the tolerance 0\.001 "
                      r"\(--parity-atol\); worst prompt ('.*')$", out, re.MULTILINE)
    assert worst, out
    assert float(worst.group(1)) > 1e-2
    assert worst.group(2) in ("'<|endoftext|>The capital of Ireland is'",
                              "'<|endoftext|>Monday Tuesday Wednesday Thursday'", "'<|endoftext|>one two three'")
    result.stdout.fnmatch_lines(["FAILED  tiny-gpt2 (compat, float32) next-token log-probs match HuggingFace's*",
                                 "  prompt * tokens * max |Δ| * mean |Δ| * KL * top-1 * worst pos",
                                 f"  {worst.group(2)} *"])
    # A tolerance wide enough lets it pass.
    assert pytester.runpytest("--model", str(tiny_gpt2_dir), "--device", "cpu", "--parity",
                              "--parity-atol", "100").ret == 0


def test_parity_needs_a_model_run_and_a_valid_tolerance(pytester: pytest.Pytester, tiny_gpt2_dir: Path) -> None:
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest("--model", str(tiny_gpt2_dir), "--parity")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["--parity: no test used the model: nothing to compare"])
    bad = pytester.runpytest("--model", str(tiny_gpt2_dir), "--parity-atol", "tight")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--parity-atol 'tight' is not a tolerance; give a number of nats >= 0, e.g. 1e-3*"])
    assert "parity with HuggingFace" not in pytester.runpytest("--model", str(tiny_gpt2_dir)).stdout.str()


def test_xdist_workers_results_travel_and_merge() -> None:
    """Under pytest-xdist each worker compares its own prompts; the controller merges them."""
    from pytest_annotate.plugin import parity as plugin

    a = PromptParity("a", 3, 2e-6, 1e-7, 0.0, 1.0, 1)
    b = PromptParity("b", 4, 5e-6, 1e-7, 0.0, 1.0, 2)
    one = ParityReport("m", "compat", "float32", "cpu", "ref", 1e-3, (a,), passed=True, seconds=2.0)
    two = ParityReport("m", "compat", "float32", "cpu", "ref", 1e-3, (a, b), passed=True, seconds=3.0)
    wired = [plugin._from_wire(plugin._to_wire(r)) for r in (one, two)]
    assert wired[1] == two and wired[1].prompts == (a, b)
    gathered = plugin._Gathered()
    gathered.outcomes = [*wired, "no test used the model: nothing to compare"]
    config = SimpleNamespace(stash={plugin._GATHERED: gathered})
    merged = plugin._gather_workers(config)
    assert merged.prompts == (a, b) and merged.passed and merged.seconds == 3.0
    assert merged.worst == b


def test_options_are_in_the_annotate_help_group(pytester: pytest.Pytester) -> None:
    out = pytester.runpytest("--help").stdout.str()
    group = out[out.index("pytest-annotate (model behaviour tests)"):]
    assert "--parity " in group and "--parity-atol=NATS" in group
    assert "annotate_parity " in out and "annotate_parity_atol" in out


def test_default_tolerances_per_dtype() -> None:
    import torch

    assert [default_atol(d) for d in ("float32", "float16", "bfloat16")] == [1e-3, 1.0, 5.0]
    assert default_atol(torch.bfloat16) == 5.0
    with pytest.raises(ValueError, match="no default parity tolerance for dtype 'float64'; valid: float32, float16"):
        default_atol("float64")
