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

import math
from dataclasses import dataclass, field

import pytest
import torch

from pytest_annotate.checks.head_roles import HeadRoleResult, check_head_role
from pytest_annotate.scoring.head_scores import RepeatedRandomTokens, head_scores
from pytest_annotate.checks.necessity import check_necessity
from pytest_annotate.report import Measurement, record
from pytest_annotate.results import Result, kind
from pytest_annotate.scoring.sweeps import sweep

pytestmark = pytest.mark.model("checkpoints")

#: The series' probe shape (README "Metrics"): BOS + 15 distinct random tokens, repeated once.
PROBE = RepeatedRandomTokens(n=15, batch=64, seed=0)
#: One repeated sequence for the ablations: 15 random tokens (``random.Random(7)``), then the same
#: 15 again up to the last one, which the model should complete.
SEGMENT = "t20 t60 t9 t25 t41 t3 t4 t52 t34 t6 t23 t37 t57 t32 t13"
PROMPT = f"{SEGMENT} {SEGMENT.rsplit(' ', 1)[0]}"
ANSWER = " t13"


# --------------------------------------------------------------------------- what the snapshots keep


@dataclass(frozen=True)
class HeadClaim:
    """A head-role claim as its snapshot keeps it: the verdict and the head's numbers.

    No model id: the snapshot file's header names the model, and an id in the body would make
    every other checkpoint's snapshot differ from the baseline's.
    """

    head: str
    role: str
    passed: bool
    rank: int
    score: float = field(metadata=kind("prob"))

    @classmethod
    def of(cls, result: HeadRoleResult) -> HeadClaim:
        return cls(result.head, result.role, result.passed, result.rank, result.score)


@dataclass(frozen=True)
class NecessityClaim:
    """A necessity claim as its snapshot keeps it: the verdict, the drop and the controls' median drop (nats)."""

    component: str
    passed: bool
    drop: float = field(metadata=kind("logit"))
    control_drop: float = field(metadata=kind("logit"))


# --------------------------------------------------------------------------- copying the repeated half


@dataclass(frozen=True, eq=False)
class RepeatCopying(Result):
    """How well the model predicts the second copy of repeated random sequences (the series' metric)."""

    inputs: str
    accuracy: float
    """Top-1 accuracy on second-copy tokens 2..n (the first one cannot be predicted)."""
    loss: float
    """Mean next-token NLL on the same positions (nats)."""
    n_positions: int
    min_accuracy: float = field(metadata=kind("exact"))
    passed: bool

    def claim(self) -> str:
        return (f"the second copy of a repeated random sequence is predicted top-1 at ≥ {self.min_accuracy:.0%} "
                "of positions")

    def measurements(self) -> tuple[Measurement, ...]:
        return (Measurement("repeated-half top-1 accuracy", self.accuracy, ">=", self.min_accuracy, primary=True),
                Measurement("repeated-half loss", self.loss, unit="nats"))

    def report(self) -> str:
        hits = round(self.accuracy * self.n_positions)
        lines = [
            f"{'PASSED' if self.passed else 'FAILED'}  {self.claim()}: {self.accuracy:.2%}",
            f"  measured  accuracy {self.accuracy:.2%} ({hits} of {self.n_positions} positions), "
            f"loss {self.loss:.3f} nats/token (chance: ln 63 = {math.log(63):.2f})",
            f"  inputs    {self.inputs}; scored on second-copy tokens 2..n",
        ]
        if not self.passed:
            short = round(self.min_accuracy * self.n_positions) - hits
            lines.append(f"  missed    by {self.min_accuracy - self.accuracy:.2%} ({short} positions)")
            lines.append(
                "  next      head_scores(model, 'induction') and head_scores(model, 'previous_token'): is the circuit "
                "formed at this checkpoint? The series' README lists accuracy per step.")
        return "\n".join(lines)


def check_repeat_copying(model, inputs: RepeatedRandomTokens = PROBE, *, min_accuracy: float = 0.9) -> RepeatCopying:
    """Top-1 accuracy and loss on the second copy of ``inputs``' sequences, one batched forward pass."""
    tokens = inputs.tokens(model)  # [batch, 1 + 2n]
    n = inputs.n
    with torch.inference_mode():
        logits = model.run_batch(tokens)  # [batch, pos, vocab]
        # Position q predicts token q + 1; second-copy tokens 2..n sit at positions n + 2 .. 2n.
        predicting = logits[:, n + 1 : 2 * n].double()
        targets = tokens[:, n + 2 : 2 * n + 1]
        accuracy = (predicting.argmax(-1) == targets).double().mean().item()
        loss = -predicting.log_softmax(-1).gather(-1, targets[..., None]).mean().item()
    return RepeatCopying(str(inputs), accuracy, loss, targets.numel(), min_accuracy, accuracy >= min_accuracy)


# --------------------------------------------------------------------------- findings


def test_l1h0_is_the_top_induction_head(model, snapshot):
    """L1H0 is the model's strongest induction head, with score ≥ 0.8 on BOS + 15 random tokens ×2.

    The score is the mean attention from each second-copy token to the token after its first copy.
    While the circuit forms (steps 800-1000) L1H1 leads; L1H0 takes over by step 1500.
    """
    record(head_scores(model, "induction", inputs=PROBE))  # the whole table, for the report's heatmap
    result = check_head_role(model, "L1H0", "induction", min_score=0.8, top_k=1, inputs=PROBE)
    assert snapshot(tolerance={"prob": 0.05}) == HeadClaim.of(result)
    result.raise_if_failed()


def test_l0h1_is_the_previous_token_head(model, snapshot):
    """L0H1 is the model's strongest previous-token head, with score ≥ 0.5.

    It attends from each position to the one before it, which lets layer 1's keys match "the token
    before was x". It sharpens all through training (0.44 at step 1000, 0.67 at 1500, 0.78 at 3500).
    """
    record(head_scores(model, "previous_token", inputs=PROBE))
    result = check_head_role(model, "L0H1", "previous_token", min_score=0.5, top_k=1, inputs=PROBE)
    assert snapshot(tolerance={"prob": 0.05}) == HeadClaim.of(result)
    result.raise_if_failed()


def test_repeated_half_is_copied(model, snapshot):
    """The model predicts the second copy of a repeated random sequence top-1 at ≥ 90% of positions.

    On BOS + 15 random tokens ×2 (64 sequences): the first copy is unpredictable (loss ≈ ln 63), the
    second is copied. Accuracy passes 90% between steps 900 (78%) and 1000 (92%).
    """
    result = check_repeat_copying(model, min_accuracy=0.9)
    assert snapshot(tolerance={"accuracy": 0.02, "loss": {"abs": 0.3}}) == result
    result.raise_if_failed()


def test_l0h1_is_necessary_for_copying(model, snapshot):
    """Zeroing L0H1's output costs the copied answer ≥ 1 nat, and 0.5 nat more than zeroing 5 random other heads.

    The previous-token head is the circuit's first step: without it layer 1 cannot tell which
    earlier token to copy from. (At step 1000 the previous-token signal is still spread over L0H1
    and L0H2, and zeroing L0H1 alone costs 0.08 nats.)
    """
    record(sweep(model, PROMPT, ANSWER, "head", ablation="zero"))  # every head's effect, for the report's bar chart
    result = check_necessity(model, PROMPT, ANSWER, "L0H1", ablation="zero", min_drop=1.0, control_margin=0.5)
    row = result.rows[0]
    assert snapshot(tolerance={"logit": {"abs": 0.5}}) == NecessityClaim(
        result.component, result.passed, row.drop, row.control_drop)
    result.raise_if_failed()
