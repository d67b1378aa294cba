"""The offline checkpoint series of examples/induction_series (a tiny model that forms an induction head).

Fast: trains a few dozen steps into tmp_path. Checks the saved layout loads with transformers and
with TransformerLens's TransformerBridge, that the tokenizer round-trips, that a seed gives
bit-identical weights, and that the committed series.json agrees with the committed weights.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SERIES_DIR = ROOT / "examples" / "induction_series"
COMMITTED = SERIES_DIR / "checkpoints"


def _load_make_series():
    spec = importlib.util.spec_from_file_location("make_series", SERIES_DIR / "make_series.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


ms = _load_make_series()

STEPS = 40
SAVE = (0, 20, 40)


@pytest.fixture(scope="module")
def short_runs(tmp_path_factory):
    """Two short runs with the same seed, one with another seed."""
    base = tmp_path_factory.mktemp("induction_series")
    recs = {
        name: ms.train(base / name, steps=STEPS, save=SAVE, seed=seed, eval_every=0)
        for name, seed in (("a", 0), ("b", 0), ("c", 1))
    }
    return base, recs


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def test_layout_and_series_json(short_runs):
    base, recs = short_runs
    out = base / "a"
    assert sorted(p.name for p in out.iterdir()) == ["series.json", "step0", "step20", "step40"]
    for step in SAVE:
        d = out / f"step{step}"
        names = {p.name for p in d.iterdir()}
        assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names
        assert json.loads((d / "config.json").read_text())["architectures"] == ["GPT2LMHeadModel"]
        assert (d / "model.safetensors").stat().st_size < 1_000_000
    rec = json.loads((out / "series.json").read_text())
    assert rec == json.loads(json.dumps(recs["a"]))
    assert rec["seed"] == 0 and rec["steps"] == STEPS and rec["threads"] == 1
    assert rec["saved_steps"] == list(SAVE)
    assert rec["torch_version"] == torch.__version__
    for step in SAVE:
        m = rec["checkpoints"][str(step)]
        assert len(m["induction_score_layer1"]) == 4 and len(m["prev_token_score_layer0"]) == 4
        assert m["loss_repeated_half"] > 0


def test_loads_with_transformers_and_tokenizer_round_trips(short_runs):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d = short_runs[0] / "a" / f"step{STEPS}"
    model = AutoModelForCausalLM.from_pretrained(d)
    assert type(model).__name__ == "GPT2LMHeadModel"
    assert model.config.n_layer == 2 and model.config.n_head == 4 and model.config.n_embd == 64
    assert model.lm_head.weight.data_ptr() != model.transformer.wte.weight.data_ptr()
    # the MLPs stay zero: the model is attention-only
    for block in model.transformer.h:
        assert all(not p.detach().any() for p in block.mlp.parameters())

    tok = AutoTokenizer.from_pretrained(d)
    assert tok("t5 t17 t3").input_ids == [5, 17, 3]
    assert tok.decode([5, 17, 3]) == "t5 t17 t3"
    assert tok.bos_token == "<bos>" and tok.bos_token_id == ms.BOS_ID
    assert tok.convert_ids_to_tokens(list(range(3))) == ["t0", "t1", "t2"]
    assert len(tok) == model.config.vocab_size == 64
    # no room for an unknown token in 64 ids: an unknown word becomes <bos> (TransformerLens
    # probes the tokenizer with encode("a") and must not get an error)
    assert tok("t5 a").input_ids == [5, ms.BOS_ID]


def test_loads_with_transformer_bridge(short_runs):
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoModelForCausalLM

    d = short_runs[0] / "a" / f"step{STEPS}"
    bridge = TransformerBridge.boot_transformers(str(d), device="cpu")
    tokens = bridge.to_tokens("t5 t17 t3")
    assert tokens.tolist() == [[ms.BOS_ID, 5, 17, 3]]  # BOS prepended by TransformerLens

    hf = AutoModelForCausalLM.from_pretrained(d, attn_implementation="eager")
    seq = ms.repeated_tokens(n=6, batch=2, seed=0)
    with torch.no_grad():
        logits, cache = bridge.run_with_cache(seq)
        ref = hf(seq, output_attentions=True)
    torch.testing.assert_close(logits, ref.logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(cache["blocks.1.attn.hook_pattern"], ref.attentions[1], atol=1e-5, rtol=1e-4)


def test_same_seed_gives_identical_weights(short_runs):
    from safetensors.torch import load_file

    base, recs = short_runs
    for step in SAVE:
        a = load_file(base / "a" / f"step{step}" / "model.safetensors")
        b = load_file(base / "b" / f"step{step}" / "model.safetensors")
        c = load_file(base / "c" / f"step{step}" / "model.safetensors")
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert not all(torch.equal(a[k], c[k]) for k in a)  # the seed matters
    assert recs["a"]["checkpoints"] == recs["b"]["checkpoints"]


def test_induction_score_matches_transformer_lens_head_detector():
    """Our score is head_detector's induction pattern, normalised over second-copy rows only."""
    from transformer_lens.head_detector import (
        compute_head_attention_similarity_score,
        get_induction_head_detection_pattern,
    )

    n = 7
    seq = ms.repeated_tokens(n=n, batch=1, seed=3)
    pattern = torch.rand(1, 1, 2 * n + 1, 2 * n + 1).tril()
    pattern = pattern / pattern.sum(-1, keepdim=True)
    ours = float(ms.induction_scores(pattern, n)[0])
    detection = get_induction_head_detection_pattern(seq[0].cpu())
    tl = compute_head_attention_similarity_score(
        pattern[0, 0], detection, exclude_bos=False, exclude_current_token=False, error_measure="mul"
    )
    # head_detector divides by all 2n+1 rows (each sums to 1); only the n second-copy rows can score
    assert tl == pytest.approx(ours * n / (2 * n + 1), abs=1e-6)


def _committed_steps():
    return sorted(int(p.name[4:]) for p in COMMITTED.glob("step*") if p.is_dir())


def test_committed_series_is_consistent_with_its_weights():
    from transformer_lens.model_bridge import TransformerBridge

    rec = json.loads((COMMITTED / "series.json").read_text())
    steps = _committed_steps()
    assert steps == rec["saved_steps"]
    for step in steps:
        assert (COMMITTED / f"step{step}" / "model.safetensors").stat().st_size < 1_000_000
    final = steps[-1]
    stored = rec["checkpoints"][str(final)]
    n, batch, seed = rec["eval"]["n"], rec["eval"]["batch"], rec["eval"]["seed"]
    tokens = ms.repeated_tokens(n=n, batch=batch, seed=seed)

    # recompute through TransformerLens's hooks, independently of the script's HF forward pass
    bridge = TransformerBridge.boot_transformers(str(COMMITTED / f"step{final}"), device="cpu")
    with torch.no_grad():
        _, cache = bridge.run_with_cache(tokens)
    ind = ms.induction_scores(cache["blocks.1.attn.hook_pattern"], n).tolist()
    prev = ms.prev_token_scores(cache["blocks.0.attn.hook_pattern"]).tolist()
    assert ind == pytest.approx(stored["induction_score_layer1"], abs=0.02)
    assert prev == pytest.approx(stored["prev_token_score_layer0"], abs=0.02)

    # the series shows the head forming: before, during and after
    best = [max(rec["checkpoints"][str(s)]["induction_score_layer1"]) for s in steps]
    assert best[0] < 0.3 and best[-1] > 0.7
    assert any(0.3 <= b <= 0.7 for b in best)
