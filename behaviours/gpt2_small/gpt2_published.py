"""What seed 001's published table keeps about one prediction, its tolerances, and its "not top-1" verdict.

The committed snapshots under ``snapshots/gpt2-small/`` hold the publication's numbers, not a
measurement made here (the hub is unreachable from the machine that wrote them); their files say
so in a comment line. Tolerances are set for values published to 2 decimals.
"""

from __future__ import annotations

from pytest_annotate import Projection, TopTokenResult, VerdictError
from pytest_annotate.results import fmt_prob, fmt_token

#: Logits published as xx.xx (rounding ±0.005) plus float32 noise between TransformerLens versions;
#: probabilities published as xx.xx% (rounding ±5e-5) plus the same noise: 0.1 points.
PUBLISHED_TOLERANCE = {"logit": {"abs": 0.01, "rel": 0.0}, "prob": 1e-3}


#: The published subset of a prediction: the answer's rank, logit and probability, and the top-1 token.
PUBLISHED_PREDICTION = Projection("PublishedPrediction", "rank", "logit", "prob",
                                  top1_token="top_tokens.0.token", top1_prob="top_tokens.0.prob")


def raise_unless_not_top(result: TopTokenResult, where: str) -> None:
    """The finding is that the answer is *not* top-1: raise :class:`VerdictError` when it is."""
    __tracebackhide__ = True
    if result.rank == 0:
        raise VerdictError(
            f"claimed: {result.answer!r} is NOT the top-1 token after {result.prompt!r} {where}\n"
            f"measured: it is top-1, at {fmt_prob(result.prob)} (logit {result.logit:.2f}); the runner-up is "
            f"{fmt_token(result.top_tokens[1].token)} at {fmt_prob(result.top_tokens[1].prob)}\n"
            "next: the removed components did not matter here; check the intervention's `detail` (what it skips) "
            "and the processing mode (the source used compat)\n\n" + result.report(),
            result=result,
        )
