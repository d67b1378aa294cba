"""Which components Gemma 3 270M needs to continue "January February March April" with " May".

Found with the plugin's own sweeps (zero and mean ablation of every block, attention layer, MLP and
head). Each necessity claim is checked under two ablation types, each against a negative control
(random components of the same kind), on gemma-3-270m-q4_k_m, compat processing.
"""

import pytest

from pytest_annotate.checks.logit_lens import assert_first_top1_layer
from pytest_annotate.checks.necessity import assert_circuit_sufficient, assert_layer_necessary, assert_layer_unnecessary
from pytest_annotate.checks.predictions import assert_logit_diff, assert_top_token
from pytest_annotate.interventions.ablations import skip

pytestmark = pytest.mark.model("gemma-3-270m")

MONTHS = "January February March April"
# The mean is over other four-month runs: it removes *which* months were seen, position by position.
MONTH_RUNS = ["February March April May", "March April May June", "April May June July", "May June July August",
              "June July August September", "July August September October", "August September October November",
              "September October November December"]


@pytest.mark.parametrize("block", ["L3", "L12"])
def test_block_is_necessary_for_the_next_month(model, snapshot, block):
    """Blocks 3 and 12 are necessary for ' May': zeroing or mean-ablating either drops it out of the top 10
    (measured: L3 -10.7 / -7.3 logits, L12 -3.8 / -4.1), far beyond random other blocks."""
    result = assert_layer_necessary(model, MONTHS, " May", block, ablation=("zero", "mean"), reference=MONTH_RUNS)
    assert result == snapshot


def test_attention_in_block_12_is_necessary(model):
    """The attention layer of block 12 is necessary for ' May' under zero and mean ablation (-3.2 / -3.6 logits)."""
    assert_layer_necessary(model, MONTHS, " May", "attn12", ablation=("zero", "mean"), reference=MONTH_RUNS)


@pytest.mark.parametrize("block", ["L6", "L8"])
def test_block_is_not_needed_for_the_next_month(model, block):
    """Blocks 6 and 8 can be removed (zero) or averaged (mean) and ' May' stays top-1, losing at most
    0.5 nats of log-prob (measured for L8: +0.11 zero, -0.14 mean)."""
    assert_layer_unnecessary(model, MONTHS, " May", block, ablation=("zero", "mean"), reference=MONTH_RUNS,
                             max_drop=0.5)


def test_first_thirteen_blocks_suffice_for_june(model, snapshot):
    """Blocks L0-L12 alone (the rest skipped; final norm and unembedding run) make ' June' top-1
    after 'February March April May': the answer is formed by block 12."""
    result = assert_circuit_sufficient(model, "February March April May", " June", keep="L0-L12")
    assert result == snapshot


@pytest.mark.parametrize(("prompt", "answer", "layer"), [
    ("February March April May", " June", 12),
    ("Monday Tuesday Wednesday", " Thursday", 12),
    ("January February March April", " May", 17),
])
def test_logit_lens_first_top1_layer(model, prompt, answer, layer):
    """Read through the final norm and unembedding, the answer first becomes top-1 after block 12 for
    June and Thursday, and only after the last block (17) for May (rank 2 from block 12 on)."""
    assert_first_top1_layer(model, prompt, answer, layer=layer)


def test_skipping_mlp12_turns_counting_into_plus_two(model):
    """Without MLP12, Gemma continues '1 2 3 4' with '6' rather than '5' (measured: '6' 71%, '5' 14%):
    the 5-vs-6 logit difference flips from +5.5 to -1.6."""
    assert_logit_diff(model, "1 2 3 4", " 5", " 6", min_diff=3.0)
    assert_logit_diff(model, "1 2 3 4", " 6", " 5", min_diff=0.5, intervention=skip(model, "MLP12"))


def test_ioi_prefers_the_indirect_object(model):
    """In an IOI prompt the indirect object beats the repeated subject (measured over 150 sampled
    template/name pairs: IO - S logit difference >= 1.29, mean 4.7)."""
    prompt = "When John and Mary went to the store, John gave the bag to"
    assert_logit_diff(model, prompt, " Mary", " John", min_diff=1.0)
    assert_top_token(model, prompt, " Mary")
