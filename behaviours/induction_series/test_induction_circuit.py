"""The induction circuit of the tiny 2-layer model in ``examples/induction_series/``, as of step 3500.

Findings about the final checkpoint: layer 0 has a previous-token head (L0H1), layer 1 an
induction head (L1H0) that reads it, and together they copy the second half of a repeated random
sequence. Each test snapshots its key numbers, so the same tests run on an earlier checkpoint
against step 3500's snapshots show each finding held, weakened or flipped::

    pytest behaviours/induction_series --model examples/induction_series/checkpoints --checkpoint 900 \\
        --snapshot-baseline checkpoints@step3500 --annotate-report reports/step900.html

(``examples/induction_series/drift_demo.sh`` runs the whole series; ``DRIFT.md`` beside it has the
measured tables.) Skipped for every other model.

The snapshot bands are wider than the float-noise defaults on purpose: they say how far a number
may move between *checkpoints* and still count as the same finding. After the circuit forms
(steps 1500-3500) L1H0's induction score moves by ≤ 0.02 and the repeated-half loss by ±0.15
nats (``examples/induction_series/README.md``), so a head score within ±0.05, an accuracy within
±0.02, a loss within ±0.3 nats and an ablation effect within ±0.5 nats "held".
"""

from __future__ import annotations

import pytest

from pytest_annotate import (
    Projection,
    RepeatedRandomTokens,
    check_head_role,
    check_necessity,
    check_repeat_copying,
    head_scores,
    sweep,
)
from pytest_annotate.report import record

pytestmark = pytest.mark.model("checkpoints")

#: The series' probe shape (README "Metrics"): BOS + 15 distinct random tokens, repeated once.
PROBE = RepeatedRandomTokens(n=15, batch=64, seed=0)
#: One repeated sequence for the ablations: 15 random tokens (``random.Random(7)``), then the same
#: 15 again up to the last one, which the model should complete.
SEGMENT = "t20 t60 t9 t25 t41 t3 t4 t52 t34 t6 t23 t37 t57 t32 t13"
PROMPT = f"{SEGMENT} {SEGMENT.rsplit(' ', 1)[0]}"
ANSWER = " t13"


#: What each snapshot keeps: the verdict and the claim's numbers. No model id: the snapshot file's header
#: names the model, and an id in the body would make every other checkpoint's snapshot differ.
HEAD_CLAIM = Projection("HeadClaim", "head", "role", "passed", "rank", "score", kinds={"score": "prob"})
NECESSITY_CLAIM = Projection("NecessityClaim", "component", "passed", drop="rows.0.drop",
                             control_drop="rows.0.control_drop", kinds={"drop": "logit", "control_drop": "logit"})
COPYING_CLAIM = Projection("RepeatCopying", "inputs", accuracy="second_half_accuracy", loss="loss",
                           n_positions="n_positions", min_accuracy="min_accuracy", passed="passed",
                           kinds={"min_accuracy": "exact"})


def test_l1h0_is_the_top_induction_head(model, snapshot):
    """L1H0 is the model's strongest induction head, with score ≥ 0.8 on BOS + 15 random tokens ×2.

    The score is the mean attention from each second-copy token to the token after its first copy.
    While the circuit forms (steps 800-1000) L1H1 leads; L1H0 takes over by step 1500.
    """
    record(head_scores(model, "induction", inputs=PROBE))  # the whole table, for the report's heatmap
    result = check_head_role(model, "L1H0", "induction", min_score=0.8, top_k=1, inputs=PROBE)
    assert snapshot(tolerance={"prob": 0.05}) == HEAD_CLAIM.of(result)
    result.raise_if_failed()


def test_l0h1_is_the_previous_token_head(model, snapshot):
    """L0H1 is the model's strongest previous-token head, with score ≥ 0.5.

    It attends from each position to the one before it, which lets layer 1's keys match "the token
    before was x". It sharpens all through training (0.44 at step 1000, 0.67 at 1500, 0.78 at 3500).
    """
    record(head_scores(model, "previous_token", inputs=PROBE))
    result = check_head_role(model, "L0H1", "previous_token", min_score=0.5, top_k=1, inputs=PROBE)
    assert snapshot(tolerance={"prob": 0.05}) == HEAD_CLAIM.of(result)
    result.raise_if_failed()


def test_repeated_half_is_copied(model, snapshot):
    """The model predicts the second copy of a repeated random sequence top-1 at ≥ 90% of positions.

    On BOS + 15 random tokens ×2 (64 sequences): the first copy is unpredictable (loss ≈ ln 63), the
    second is copied. Accuracy passes 90% between steps 900 (78%) and 1000 (92%).
    """
    result = check_repeat_copying(model, PROBE, min_accuracy=0.9, score_first_repeat=False)
    assert snapshot(tolerance={"accuracy": 0.02, "loss": {"abs": 0.3}}) == COPYING_CLAIM.of(result)
    result.raise_if_failed()


def test_l0h1_is_necessary_for_copying(model, snapshot):
    """Zeroing L0H1's output costs the copied answer ≥ 1 nat, and 0.5 nat more than zeroing 5 random other heads.

    The previous-token head is the circuit's first step: without it layer 1 cannot tell which
    earlier token to copy from. (At step 1000 the previous-token signal is still spread over L0H1
    and L0H2, and zeroing L0H1 alone costs 0.08 nats.)
    """
    record(sweep(model, PROMPT, ANSWER, "head", ablation="zero"))  # every head's effect, for the report's bar chart
    result = check_necessity(model, PROMPT, ANSWER, "L0H1", ablation="zero", min_drop=1.0, control_margin=0.5)
    assert snapshot(tolerance={"logit": {"abs": 0.5}}) == NECESSITY_CLAIM.of(result)
    result.raise_if_failed()
