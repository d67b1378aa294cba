"""Necessity (with negative controls) and sufficiency checks, on Gemma 3 270M's month successor."""

from __future__ import annotations

import re

import pytest

from pytest_annotate.interventions.components import Component, parse_components
from pytest_annotate.errors import ComponentError, VerdictError
from pytest_annotate.interventions.ablations import InterventionSpecError, bypass_norm, keep_only
from pytest_annotate.checks.necessity import DEFAULT_THRESHOLDS, NecessityResult, SufficiencyResult, assert_circuit_sufficient, assert_layer_necessary, assert_layer_unnecessary, check_necessity, check_sufficiency, negative_controls
from pytest_annotate.scoring.answers import score_answer

MONTHS, MAY = "January February March April", " May"
MONTH_REFERENCE = [
    "June July August September",
    "March April May June",
    "February March April May",
    "August September October November",
    "May June July August",
    "October November December January",
]


# --------------------------------------------------------------------------- necessary components


@pytest.mark.parametrize("component", ["L12H0", "MLP3", "L3"])
def test_a_necessary_component_beats_its_negative_controls_under_zero_and_mean(model, component):
    result = assert_layer_necessary(model, MONTHS, MAY, component, reference=MONTH_REFERENCE)
    assert isinstance(result, NecessityResult) and result.passed
    assert [r.ablation for r in result.rows] == ["zero", "mean"]
    kind = parse_components(component, model)[0].kind
    for row in result.rows:
        assert row.drop >= 1.0 and row.drop >= row.control_drop + 0.5
        assert len(row.controls) == 5
        for control in row.controls:
            (picked,) = parse_components(control.components, model)
            assert picked.kind == kind and str(picked) != component


def test_an_irrelevant_block_fails_with_a_report_that_says_why_and_what_next(model):
    with pytest.raises(VerdictError) as info:
        assert_layer_necessary(model, MONTHS, MAY, "L6", reference=MONTH_REFERENCE)
    report = str(info.value)
    lines = report.splitlines()
    assert lines[0].startswith(
        "FAILED  L6 is necessary for ' May' after 'January February March April' (zero and mean ablation): "
        "drop in answer log-prob (nats): zero +0.000, mean "
    )
    assert lines[1] == ("  claim     ablating it must lower the answer's log-prob by at least 1.000 nats, and by 0.500 nats "
                        "more than ablating 5 random other blocks does (their median; seed 0)")
    assert re.match(r"  missed    zero: the drop \+0\.000 nats is below min_drop 1\.000 nats \(short by 1\.000 nats\); "
                    r"the drop \+0\.000 nats is not 0\.500 nats above the controls' median \+\d+\.\d{3} nats", lines[2])
    assert "  next      L6 matters less than claimed here; sweep(model, 'January February March April', ' May', 'block'" in report
    assert "Tokenized prompt: ['<bos>', 'January', ' February', ' March', ' April']" in report
    assert re.search(r"^clean\s+0\s+\d+\.\d\d\s+\d+\.\d\d%", report, re.M)
    assert re.search(r"^zero\s+0 .* FAILED$", report, re.M)
    assert "Negative controls (random other blocks, seed 0), drop in answer log-prob (nats):" in report
    result = info.value.result
    assert isinstance(result, NecessityResult) and not result.passed
    assert abs(result["zero"].drop) < 0.01


def test_an_irrelevant_block_is_unnecessary_and_a_necessary_head_is_not(model):
    result = assert_layer_unnecessary(model, MONTHS, MAY, "L6", reference=MONTH_REFERENCE)
    assert result.passed and result.max_drop == DEFAULT_THRESHOLDS["logprob"].max_drop
    with pytest.raises(VerdictError, match=r"FAILED  L12H0 is unnecessary .*\n  claim     ablating it must lower the "
                                           r"answer's log-prob by at most 0\.100 nats\n  missed    zero: the drop "
                                           r"\+\d\.\d{3} nats is above max_drop 0\.100 nats"):
        assert_layer_unnecessary(model, MONTHS, MAY, "L12H0", reference=MONTH_REFERENCE)


def test_zero_and_mean_ablation_disagree_about_block_1(model):
    # Zeroing L1 destroys ' May' (its output is large and prompt-independent); replacing it with its
    # mean over other month sequences is harmless. Checking both is what catches this.
    result = check_necessity(model, MONTHS, MAY, "L1", reference=MONTH_REFERENCE)
    assert result["zero"].passed and result["zero"].drop > 10
    assert not result["mean"].passed and result["mean"].drop < 0.5
    assert ("the ablation types disagree: the claim holds under zero but not mean; a zero-ablation effect that mean "
            "ablation does not reproduce") in result.report()


def test_a_necessity_check_is_one_batched_forward_pass(model):
    check_necessity(model, MONTHS, MAY, "MLP9", ablation="zero")  # memoizes the clean run
    before = model.stats.executed
    result = check_necessity(model, MONTHS, MAY, "MLP10", ablation=("zero", "skip"), n_controls=4)
    assert model.stats.executed - before == 1
    assert [len(r.controls) for r in result.rows] == [4, 4]
    assert result["zero"].drop == result["skip"].drop  # the same operation for an MLP


def test_every_metric_measures_its_own_drop(model):
    clean = score_answer(model, MONTHS, MAY)
    for metric in ("logprob", "prob", "logit", "rank"):
        result = check_necessity(model, MONTHS, MAY, "L12H0", ablation="zero", metric=metric)
        row, a = result["zero"], result["zero"].ablated
        expected = {"logprob": clean.joint_logprob - a.log_prob, "prob": clean.joint_prob - a.prob,
                    "logit": clean.logit - a.logit, "rank": a.rank - clean.rank}[metric]
        assert row.drop == pytest.approx(expected)
        assert result.min_drop == DEFAULT_THRESHOLDS[metric].min_drop


def test_mean_ablation_needs_a_reference_set(model):
    with pytest.raises(InterventionSpecError, match="'mean MLP3' needs a reference set"):
        assert_layer_necessary(model, MONTHS, MAY, "MLP3")


def test_bad_arguments_are_rejected(model):
    with pytest.raises(ValueError, match="max_drop is for claim='unnecessary'"):
        check_necessity(model, MONTHS, MAY, "MLP3", ablation="zero", max_drop=1.0)
    with pytest.raises(ValueError, match="unknown metric 'nats'"):
        check_necessity(model, MONTHS, MAY, "MLP3", ablation="zero", metric="nats")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="claim must be 'necessary' or 'unnecessary'"):
        check_necessity(model, MONTHS, MAY, "MLP3", claim="sufficient")  # type: ignore[arg-type]
    with pytest.raises(ComponentError, match="'MLP30': layer 30 is out of range"):
        check_necessity(model, MONTHS, MAY, "MLP30", ablation="zero")


def test_necessity_runs_on_a_second_architecture(tiny_gpt2):
    result = check_necessity(tiny_gpt2, "1 2 3 4", " 5", "L1H0", ablation=("zero", "mean"),
                             reference=["A B C D", "5 6 7 8"], n_controls=3)
    assert [r.ablation for r in result.rows] == ["zero", "mean"]
    assert all(len(r.controls) == 3 for r in result.rows)
    assert "L1H0 is necessary" in result.report()


# --------------------------------------------------------------------------- negative controls


def test_controls_are_seeded_same_kind_and_never_the_named_component(model):
    mlp9 = parse_components("MLP9", model)
    first = negative_controls(model, mlp9, 5, seed=0)
    assert first == negative_controls(model, mlp9, 5, seed=0)
    assert first != negative_controls(model, mlp9, 5, seed=1)
    assert len(set(first)) == 5
    assert all(len(c) == 1 and c[0].kind == "mlp" and c[0] != mlp9[0] for c in first)


def test_controls_for_a_range_are_same_size_sets_and_mixed_sets_keep_their_shape(model):
    for control in negative_controls(model, parse_components("L0-L7", model), 4):
        assert len(control) == 8 and all(c.kind == "block" for c in control)
        assert set(control) != set(parse_components("L0-L7", model))
    result = check_necessity(model, "1 2 3 4", " 5", "L0-L3", ablation="zero", n_controls=3)
    assert "more than ablating 3 random other sets of 4 blocks does" in result.report()
    assert all(len(parse_components(c.components, model)) == 4 for c in result["zero"].controls)
    for control in negative_controls(model, parse_components(["L0-L3", "MLP9"], model), 3):
        kinds = sorted(c.kind for c in control)
        assert kinds == ["block"] * 4 + ["mlp"] and Component("mlp", 9) not in control


def test_embeddings_have_no_control(model):
    with pytest.raises(ComponentError, match="embed has no other component of its kind .* pass n_controls=0"):
        negative_controls(model, parse_components("embed", model), 3)
    result = check_necessity(model, MONTHS, MAY, "embed", ablation="zero", n_controls=0)
    assert result.passed and result["zero"].control_drop is None and "Negative controls" not in result.report()


# --------------------------------------------------------------------------- sufficiency


def test_blocks_0_to_16_suffice_for_counting(model):
    result = assert_circuit_sufficient(model, "1 2 3 4", " 5", keep=["L0-L16"])
    assert isinstance(result, SufficiencyResult)
    assert result.under_circuit.rank == 0 and result.circuit == "keep L0-L16" and result.removed == "skips L17"
    report = result.report()
    assert report.startswith("PASSED  'keep L0-L16' is sufficient: ' 5' stays top-1 after '1 2 3 4': rank 0")
    assert "Circuit: keep L0-L16 (skips L17; the embeddings, ln_final and unembed always run)" in report
    assert "Tokenized answer: [' ', '5']" in report


def test_without_blocks_16_and_17_july_beats_may_and_the_report_says_so(model):
    with pytest.raises(VerdictError) as info:
        assert_circuit_sufficient(model, MONTHS, MAY, keep="L0-L15")
    report = str(info.value)
    assert re.match(r"FAILED  'keep L0-L15' is sufficient: ' May' stays top-1 after 'January February March April': "
                    r"rank \d, prob \d+\.\d\d%\n  missed    the answer has rank \d under the circuit, \d places worse "
                    r"than the allowed 0\n  next      ", report)
    assert re.search(r"^full model\s+0\s+\d+\.\d\d\s+\d+\.\d\d%\s*$", report, re.M)
    assert re.search(r"^circuit\s+[1-9]\s+\d+\.\d\d\s+\d+\.\d\d%\s+\| July\| \d+\.\d\d%$", report, re.M)
    assert "Top 5 under the circuit:\nTop 0th token." in report and "Top 5 of the full model:" in report
    assert info.value.result.under_circuit.top_tokens[0].token == " July"


def test_sufficiency_with_a_probability_floor_and_a_composed_circuit(model):
    with pytest.raises(VerdictError, match=r"missed    prob \d+\.\d\d% under the circuit, \d+\.\d\d points short of 99\.90%"):
        assert_circuit_sufficient(model, "1 2 3 4", " 5", keep=["L0-L16"], min_prob=0.999)
    circuit = keep_only(model, "L0-L16") + bypass_norm(model, "MLP16")
    result = check_sufficiency(model, "1 2 3 4", " 5", circuit)
    assert result.circuit == "keep L0-L16; MLP16 without ln2"
    with pytest.raises(ValueError, match="max_rank must be 0 or more"):
        check_sufficiency(model, "1 2 3 4", " 5", "L0-L16", max_rank=-1)
