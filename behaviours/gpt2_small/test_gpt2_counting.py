"""GPT-2 small's counting circuit (seed 001): every row of the source's table is a test.

Source: seed 001, the numseqcont circuit experiments notebook (``nb_templates/headFNs_expms_template.ipynb``
in wlg1/numseqcont_circuit_expms on GitHub), tabulated in the project's findings table ("GPT-2 small:
counting / successor circuit"); row numbers below are that table's, from 1. The source ran legacy
``HookedTransformer.from_pretrained("gpt2-small", fold_ln=True, ...)`` (folded LayerNorm, centred
weights: ``--processing compat`` here) with ``prepend_bos=True`` on every prompt; the marker declares
both, so a ``--processing raw`` session skips these tests and says what to pass.

Configurations as the source meant them: "skip Lk" removes block k (its output is never added
to the residual stream); "keep L0–L9" removes blocks 10 and 11; ``ln_final`` and the
unembedding always run; "without its ln2" runs MLP9 on the raw residual stream
(:func:`~pytest_annotate.interventions.ablations.bypass_norm`). The source's reading: L0–L7 "get the
number", MLP9 does the +1, L9's attention is not needed for digits, MLP8 matters for the
alphabet, early attention is required.

Each test asserts the verdict (top-1 or not) and snapshots the published numbers: the committed
``snapshots/gpt2-small/`` files hold the publication's values (not yet re-measured here).

    pytest behaviours/gpt2_small --model gpt2-small
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import pytest

from gpt2_published import PUBLISHED_PREDICTION, PUBLISHED_TOLERANCE, raise_unless_not_top
from pytest_annotate.interventions.ablations import Intervention, bypass_norm, keep_only, skip
from pytest_annotate.lab import Lab
from pytest_annotate.checks.predictions import check_top_token

pytestmark = pytest.mark.model("gpt2-small", processing="compat", bos=True)

# configuration (as the source names it) -> the intervention that carries it out (None: full model)
CONFIGURATIONS: dict[str, Callable[[Lab], Intervention | None]] = {
    "full model": lambda lab: None,
    "keep L0-L9": lambda lab: keep_only(lab, "L0-L9"),
    "keep L0-L8": lambda lab: keep_only(lab, "L0-L8"),
    "keep L0-L7": lambda lab: keep_only(lab, "L0-L7"),
    "keep L0-L9 skip L5": lambda lab: keep_only(lab, ["L0-L4", "L6-L9"]),
    "L0-L7 + L9": lambda lab: keep_only(lab, ["L0-L7", "L9"]),
    "L0-L7 + MLP9": lambda lab: keep_only(lab, ["L0-L7", "MLP9"]),
    "L0-L7 + attn9": lambda lab: keep_only(lab, ["L0-L7", "attn9"]),
    "skip L9": lambda lab: skip(lab, "L9"),
    "attn0-7 + MLP9": lambda lab: keep_only(lab, ["attn0-7", "MLP9"]),
    "keep L0-L9 skip L4": lambda lab: keep_only(lab, ["L0-L3", "L5-L9"]),
    "skip L4 L8 L10 L11": lambda lab: skip(lab, ["L4", "L8", "L10", "L11"]),
    "skip L3 L4 L8 L10 L11": lambda lab: skip(lab, ["L3", "L4", "L8", "L10", "L11"]),
    "skip L2 L3 L4 L8 L10 L11": lambda lab: skip(lab, ["L2", "L3", "L4", "L8", "L10", "L11"]),
    "MLP0-7 + MLP9": lambda lab: keep_only(lab, ["MLP0-7", "MLP9"]),
    "L0-L7 + MLP9 without ln2": lambda lab: keep_only(lab, ["L0-L7", "MLP9"]) + bypass_norm(lab, "MLP9"),
    "L0-L7 + attn8 + L9": lambda lab: keep_only(lab, ["L0-L7", "attn8", "L9"]),
    "L0-L7 + MLP8 + L9": lambda lab: keep_only(lab, ["L0-L7", "MLP8", "L9"]),
    "MLP0-8 + L9": lambda lab: keep_only(lab, ["MLP0-8", "L9"]),
}


class Row(NamedTuple):
    """One row of the published table (seed 001), with its number (from 1, in the source's order)."""

    row: int
    configuration: str
    prompt: str
    answer: str
    published: Any
    """The published numbers, as :data:`PUBLISHED_PREDICTION` keeps them."""

    @property
    def id(self) -> str:
        return f"row{self.row:02d} {self.configuration} on {self.prompt}"


DIGITS, MONTHS, DAYS, LETTERS, WORDS = (
    "1 2 3 4", "January February March April", "Sunday Monday Tuesday Wednesday", "A B C D", "one two three four",
)
ANSWERS = {DIGITS: " 5", MONTHS: " May", DAYS: " Thursday", LETTERS: " E", WORDS: " five"}


def _row(n: int, configuration: str, prompt: str, rank: int, logit: float, prob: float,
         top1: str | None = None, top1_prob: float | None = None) -> Row:
    answer = ANSWERS[prompt]
    top = (answer, prob) if top1 is None else (top1, top1_prob)
    published = PUBLISHED_PREDICTION.record(rank=rank, logit=logit, prob=prob, top1_token=top[0], top1_prob=top[1])
    return Row(n, configuration, prompt, answer, published)


# row, configuration, prompt, answer rank, answer logit, answer prob, top-1 (when not the answer), its prob
PUBLISHED: list[Row] = [
    _row(1, "full model", DIGITS, 0, 18.76, 0.9617),
    _row(2, "full model", MONTHS, 0, 30.05, 0.9987),
    _row(3, "full model", LETTERS, 0, 24.16, 0.9924),
    _row(4, "keep L0-L9", DIGITS, 0, 34.66, 0.9998),
    _row(5, "keep L0-L9", WORDS, 0, 26.86, 0.8310),
    _row(6, "keep L0-L8", DIGITS, 1, 26.25, 0.0253, " 4", 0.9658),
    _row(7, "keep L0-L8", MONTHS, 4, 22.44, 0.0195, " April", 0.7410),
    _row(8, "keep L0-L7", DIGITS, 4, 20.50, 0.0107, " 4", 0.6740),
    _row(9, "keep L0-L9 skip L5", DIGITS, 56, 12.34, 0.0029, "th", 0.1041),
    _row(10, "keep L0-L9 skip L5", MONTHS, 62, 13.65, 0.0002, " 29", 0.2532),
    _row(11, "L0-L7 + L9", DIGITS, 0, 31.84, 0.9994),
    _row(12, "L0-L7 + L9", MONTHS, 0, 26.42, 0.7781),
    _row(13, "L0-L7 + L9", DAYS, 0, 31.53, 0.8714),
    _row(14, "L0-L7 + L9", LETTERS, 0, 22.92, 0.5431),
    _row(15, "L0-L7 + MLP9", DIGITS, 0, 28.38, 0.9887),
    _row(16, "L0-L7 + MLP9", MONTHS, 2, 22.27, 0.0929, " 5", 0.2198),
    _row(17, "L0-L7 + MLP9", DAYS, 0, 26.03, 0.2603),
    _row(18, "L0-L7 + MLP9", LETTERS, 1, 21.58, 0.2049, " D", 0.6599),
    _row(19, "L0-L7 + attn9", DIGITS, 1, 25.61, 0.1024, " 4", 0.8732),
    _row(20, "skip L9", DIGITS, 1, 14.61, 0.0800, " 4", 0.5515),
    _row(21, "attn0-7 + MLP9", DIGITS, 3602, 6.59, 0.0000, " ›", 0.2906),
    _row(22, "keep L0-L9 skip L4", DIGITS, 0, 34.78, 0.9936),
    _row(23, "keep L0-L9 skip L4", DAYS, 18, 27.14, 0.0077, " morning", 0.2915),
    _row(24, "keep L0-L9 skip L4", LETTERS, 0, 26.32, 0.9762),
    _row(25, "skip L4 L8 L10 L11", DIGITS, 0, 36.43, 0.9991),
    _row(26, "skip L4 L8 L10 L11", MONTHS, 3, 33.98, 0.0070, " April", 0.9594),
    _row(27, "skip L3 L4 L8 L10 L11", DIGITS, 0, 31.95, 0.9224),
    _row(28, "skip L3 L4 L8 L10 L11", MONTHS, 16, 23.40, 0.0042, " 2018", 0.3870),
    _row(29, "skip L2 L3 L4 L8 L10 L11", DIGITS, 1, 19.54, 0.2206, " 3", 0.2246),
    _row(30, "MLP0-7 + MLP9", DIGITS, 89, 5.75, 0.0010, "th", 0.0910),
    _row(31, "L0-L7 + MLP9 without ln2", DIGITS, 0, 28.18, 0.9727),
    _row(32, "L0-L7 + attn8 + L9", LETTERS, 1, 26.56, 0.0856, " D", 0.9096),
    _row(33, "L0-L7 + MLP8 + L9", LETTERS, 0, 25.53, 0.6787),
    _row(34, "L0-L7 + MLP8 + L9", WORDS, 10, 18.42, 0.0002, "teen", 0.9894),
    _row(35, "MLP0-8 + L9", LETTERS, 192, 6.32, 0.0009, "-", 0.0161),
    _row(36, "MLP0-8 + L9", DIGITS, 73, 5.94, 0.0011, "th", 0.1039),
]


@pytest.mark.parametrize("row", PUBLISHED, ids=[r.id for r in PUBLISHED])
def test_counting_prediction(model, snapshot, row: Row):
    """Under each published configuration the successor is top-1 exactly when seed 001 found it so,
    with the rank, logit, probability and top-1 token it reported (seed 001's table, row in the id).

    Published in compat processing (legacy HookedTransformer, fold_ln, centred weights), BOS prepended."""
    intervention = CONFIGURATIONS[row.configuration](model)
    result = check_top_token(model, row.prompt, row.answer, intervention=intervention, k=1)
    where = f"with {intervention} ({intervention.detail})" if intervention else "in the full model"
    if row.published.rank == 0:
        result.raise_if_failed()
    else:
        raise_unless_not_top(result, where + f" (seed 001 row {row.row})")
    assert snapshot(tolerance=PUBLISHED_TOLERANCE) == PUBLISHED_PREDICTION.of(result)


def test_every_configuration_is_tested():
    """Every configuration of the table is used by a row, and every row names a known configuration."""
    used = {r.configuration for r in PUBLISHED}
    assert used == set(CONFIGURATIONS), sorted(used ^ set(CONFIGURATIONS))
    assert [r.row for r in PUBLISHED] == list(range(1, 37))
