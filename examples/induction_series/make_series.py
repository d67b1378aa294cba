"""Train a tiny attention-only transformer until an induction head forms, saving checkpoints.

The output is a checkpoint series of one model, for the drift features of pytest-annotate
(a finding that held at one step, weakened at the next, flipped at a later one):

    DIR/step0/      DIR/step500/    ...     DIR/series.json

Each ``stepN/`` is a complete HuggingFace model directory (config.json, model.safetensors and a
tokenizer) that loads offline with ``AutoModelForCausalLM.from_pretrained`` /
``AutoTokenizer.from_pretrained`` and with ``TransformerBridge.boot_transformers``.

Recipe (measured on a 2-core CPU while this example was written; README.md has the tables):

* a stock ``GPT2LMHeadModel``: 2 layers, 4 heads, ``n_embd`` 64, 41 positions, vocabulary 64;
  attention-only (MLPs with ``n_inner=1``, zeroed and frozen); untied embeddings; every weight drawn
  at std 0.02, attention ``c_proj`` included (GPT-2's scaled ``c_proj`` init stops the circuit forming);
* data: BOS, then 40 random tokens in which a segment of 5-20 tokens repeats at a random offset with
  random filler between the copies; 12.5% of rows are "skip-bigram" rows where the next token is a
  fixed function f (a random permutation) of the token before the current one;
* AdamW, lr 1e-3, betas (0.9, 0.999), weight decay 0.01, no warm-up, no clipping, batch 32.

One change from that recipe, measured here: in a skip-bigram row each token follows the rule with
probability 1/2 (else it is random). With every token following it (fully deterministic rows), no
run formed an induction head within 3,500 steps (seeds 0, 1; one seed tried to 10,000 steps). With
1/2, seeds 0, 1 and 3 formed one at steps 800-1,000 and seed 2 had not by 2,000. See README.md.

Determinism: the training uses one thread (set inside :func:`train`), so the same seed gives
bit-identical weights on the same torch build. A different thread count does not.

Usage::

    python examples/induction_series/make_series.py --out DIR [--steps 3500] [--save 0,500,...] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F

# --- fixed sizes of the task -------------------------------------------------------------------

VOCAB_SIZE = 64
N_TOKENS = 63  # ordinary tokens t0..t62 have ids 0..62
BOS_ID = 63  # "<bos>"
BOS_TOKEN = "<bos>"
SEQ_BODY = 40  # tokens after BOS in a training row
N_POSITIONS = SEQ_BODY + 1  # 41
MIN_SEG, MAX_SEG = 5, 20
SKIP_BIGRAM_FRACTION = 0.125
# In a skip-bigram row each token follows the rule x[t+1] = f(x[t-1]) with this probability, else it
# is random. With 1.0 (fully deterministic rows) no induction head formed in 3,500 steps here.
SKIP_RULE_PROB = 0.5
WEIGHT_DECAY = 0.01  # torch AdamW default

# Evaluation: BOS + n random distinct tokens repeated once (2n + 1 positions). n = 20 would fill
# all 41 positions, the one layout where a repeat sits at fixed positions, which a layer-0 positional
# shortcut can learn (seen in one trial run); with n = 15 the layout occurs at many offsets in training.
EVAL_N = 15
EVAL_BATCH = 64
EVAL_SEED = 1234  # independent of the training seed, so every run is scored on the same batch

DEFAULT_STEPS = 3500
# before (0, 500), during (800-900: the layer-1 induction score jumps from ~0.1 to ~0.7) and after
DEFAULT_SAVE = (0, 500, 800, 850, 900, 1000, 1500, 2000, 2500, 3000, 3500)
THREADS = 1


# --- model ---------------------------------------------------------------------------------------


def make_config():
    from transformers import GPT2Config

    config = GPT2Config(
        vocab_size=VOCAB_SIZE,
        n_positions=N_POSITIONS,
        n_embd=64,
        n_layer=2,
        n_head=4,
        n_inner=1,  # attention-only: the MLP weights are zeroed and frozen below
        activation_function="gelu_new",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        initializer_range=0.02,
        tie_word_embeddings=False,
        bos_token_id=BOS_ID,
        eos_token_id=BOS_ID,
        pad_token_id=BOS_ID,
    )
    config.architectures = ["GPT2LMHeadModel"]
    return config


def init_model(seed: int):
    """A GPT2LMHeadModel with every weight at N(0, 0.02) and the MLPs zeroed and frozen."""
    from transformers import GPT2LMHeadModel

    config = make_config()
    model = GPT2LMHeadModel(config)
    # eager attention so that output_attentions works and the training path is the scoring path
    model.config._attn_implementation = "eager"
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".ln_" in name or name.startswith("transformer.ln_f"):
                p.fill_(1.0 if name.endswith("weight") else 0.0)
            elif name.endswith("bias"):
                p.zero_()
            else:  # wte, wpe, c_attn, attn c_proj, lm_head: all std 0.02, no scaled c_proj
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
        for block in model.transformer.h:
            for p in block.mlp.parameters():
                p.zero_()
                p.requires_grad_(False)
    assert model.lm_head.weight.data_ptr() != model.transformer.wte.weight.data_ptr(), "tied"
    return model


# --- data ----------------------------------------------------------------------------------------


def make_batch(rng: np.random.Generator, skip_map: np.ndarray, batch: int = 32) -> torch.Tensor:
    """[batch, 41] int64 rows: BOS + 40 tokens (repeat rows, or skip-bigram rows)."""
    rows = np.empty((batch, N_POSITIONS), dtype=np.int64)
    rows[:, 0] = BOS_ID
    for i in range(batch):
        if rng.random() < SKIP_BIGRAM_FRACTION:
            body = np.empty(SEQ_BODY, dtype=np.int64)
            body[:2] = rng.integers(0, N_TOKENS, size=2)
            follow = rng.random(SEQ_BODY) < SKIP_RULE_PROB
            for t in range(2, SEQ_BODY):
                body[t] = skip_map[body[t - 2]] if follow[t] else rng.integers(0, N_TOKENS)
        else:
            body = rng.integers(0, N_TOKENS, size=SEQ_BODY)
            seg_len = int(rng.integers(MIN_SEG, MAX_SEG + 1))
            gap = int(rng.integers(0, SEQ_BODY - 2 * seg_len + 1))
            start = int(rng.integers(0, SEQ_BODY - 2 * seg_len - gap + 1))
            seg = rng.integers(0, N_TOKENS, size=seg_len)
            body[start : start + seg_len] = seg
            second = start + seg_len + gap
            body[second : second + seg_len] = seg
        rows[i, 1:] = body
    return torch.from_numpy(rows)


def repeated_tokens(n: int = EVAL_N, batch: int = EVAL_BATCH, seed: int = EVAL_SEED) -> torch.Tensor:
    """[batch, 2n+1]: BOS + n distinct random tokens + the same n tokens again."""
    rng = np.random.default_rng(seed)
    seqs = np.stack([rng.permutation(N_TOKENS)[:n] for _ in range(batch)])
    bos = np.full((batch, 1), BOS_ID, dtype=np.int64)
    return torch.from_numpy(np.concatenate([bos, seqs, seqs], axis=1).astype(np.int64))


# --- metrics -------------------------------------------------------------------------------------


def induction_scores(patterns: torch.Tensor, n: int) -> torch.Tensor:
    """[batch, heads, q, k] patterns of BOS + seq(n) + seq(n) -> [heads] induction scores.

    Mean attention from each position of the second copy (q = n+1 .. 2n) to the token after its
    earlier occurrence (k = q - n + 1): the pattern's diagonal at offset -(n-1).
    """
    stripe = patterns.diagonal(offset=-(n - 1), dim1=-2, dim2=-1)  # q = n-1 .. 2n
    return stripe[..., 2:].mean(dim=(0, -1))  # keep q = n+1 .. 2n


def prev_token_scores(patterns: torch.Tensor) -> torch.Tensor:
    """[batch, heads, q, k] -> [heads]: mean attention to position q-1, over q = 1 .. end."""
    return patterns.diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=(0, -1))


@torch.no_grad()
def evaluate(model, tokens: torch.Tensor | None = None, n: int = EVAL_N) -> dict:
    """Loss on the repeated half and per-head scores, on the fixed evaluation batch."""
    if tokens is None:
        tokens = repeated_tokens(n)
    was_training = model.training
    model.eval()
    out = model(tokens, output_attentions=True)
    model.train(was_training)
    logits = out.logits.float()
    logp = logits.log_softmax(-1)
    # position p predicts token p+1. Second copy occupies positions n+1 .. 2n; its first token is
    # unpredictable, so the repeated-half loss covers targets n+2 .. 2n (predicted from n+1 .. 2n-1).
    nll = -logp[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0]  # [batch, 2n]
    first_half = nll[:, 1:n].mean().item()  # targets 2 .. n (first token of copy 1 is the 0th)
    second_half = nll[:, n + 1 :].mean().item()
    acc = (logits[:, n + 1 : 2 * n].argmax(-1) == tokens[:, n + 2 :]).float().mean().item()
    att = out.attentions
    return {
        "loss_repeated_half": round(second_half, 6),
        "loss_first_half": round(first_half, 6),
        "acc_repeated_half": round(acc, 6),
        "induction_score_layer1": [round(x, 6) for x in induction_scores(att[1], n).tolist()],
        "prev_token_score_layer0": [round(x, 6) for x in prev_token_scores(att[0]).tolist()],
        # the other layer too, for completeness (a head can form in the "wrong" layer)
        "induction_score_layer0": [round(x, 6) for x in induction_scores(att[0], n).tolist()],
        "prev_token_score_layer1": [round(x, 6) for x in prev_token_scores(att[1]).tolist()],
    }


# --- tokenizer -----------------------------------------------------------------------------------


def make_tokenizer():
    """A WordLevel tokenizer: "t0".."t62" -> 0..62, "<bos>" -> 63, split on whitespace.

    It does not add BOS itself ("t5 t17 t3" -> [5, 17, 3]); bos_token is set so that
    TransformerLens's to_tokens prepends it. The vocabulary has no room for an unknown token, so
    an unknown word maps to <bos>: TransformerLens probes the tokenizer with encode("a") and an
    error there stops it loading the model. Check prompts with tokens like t0..t62 only.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"t{i}": i for i in range(N_TOKENS)}
    vocab[BOS_TOKEN] = BOS_ID
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=BOS_TOKEN))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with spaces
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS_TOKEN,
        eos_token=BOS_TOKEN,
        pad_token=BOS_TOKEN,
        model_max_length=N_POSITIONS,
        clean_up_tokenization_spaces=False,
    )


def save_checkpoint(model, tokenizer, path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    # generation defaults are noise for this model; keep the directory to what a loader needs
    gen_cfg = path / "generation_config.json"
    if gen_cfg.exists():
        gen_cfg.unlink()


# --- training ------------------------------------------------------------------------------------


def train(
    out: str | os.PathLike,
    steps: int = DEFAULT_STEPS,
    save: Iterable[int] = DEFAULT_SAVE,
    seed: int = 0,
    eval_every: int = 100,
    batch: int = 32,
    log=None,
) -> dict:
    """Train and write ``out/step{N}/`` for each N in ``save`` plus ``out/series.json``.

    Returns the series record (what series.json holds).
    """
    out = Path(out)
    save = sorted({int(s) for s in save})
    if any(s < 0 or s > steps for s in save):
        raise ValueError(f"save steps must lie in [0, {steps}], got {save}")
    old_threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        return _train(out, steps, save, seed, eval_every, batch, log)
    finally:
        torch.set_num_threads(old_threads)


def _train(out: Path, steps, save, seed, eval_every, batch, log) -> dict:
    import transformers

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    skip_map = rng.permutation(N_TOKENS)  # skip-bigram rule: x[t+1] = skip_map[x[t-1]]
    model = init_model(seed)
    model.train()
    tokenizer = make_tokenizer()
    opt = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-3, betas=(0.9, 0.999),
        weight_decay=WEIGHT_DECAY,
    )
    eval_tokens = repeated_tokens(EVAL_N, EVAL_BATCH, EVAL_SEED)
    out.mkdir(parents=True, exist_ok=True)
    checkpoints: dict[str, dict] = {}
    trace: list[dict] = []
    train_loss = float("nan")
    for step in range(steps + 1):
        # state after `step` updates
        if step in save or (eval_every and step % eval_every == 0) or step == steps:
            m = evaluate(model, eval_tokens, EVAL_N)
            m = {"step": step, "train_loss": None if step == 0 else round(train_loss, 6), **m}
            trace.append(m)
            if step in save:
                save_checkpoint(model, tokenizer, out / f"step{step}")
                checkpoints[str(step)] = m
            if log:
                log(
                    f"step {step:5d}  train {m['train_loss']}  rep-loss {m['loss_repeated_half']:.3f}"
                    f"  ind L1 {max(m['induction_score_layer1']):.3f}"
                    f"  prev L0 {max(m['prev_token_score_layer0']):.3f}"
                    f"  ({time.perf_counter() - t0:.1f}s)"
                )
        if step == steps:
            break
        x = make_batch(rng, skip_map, batch)
        logits = model(x).logits
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB_SIZE), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        train_loss = loss.item()
    wall = time.perf_counter() - t0
    record = {
        "description": "tiny 2-layer attention-only GPT2LMHeadModel trained until an induction head "
        "forms; made by examples/induction_series/make_series.py",
        "seed": seed,
        "steps": steps,
        "saved_steps": save,
        "threads": THREADS,
        "batch": batch,
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "wall_seconds": round(wall, 1),
        "eval": {
            "sequence": f"BOS + {EVAL_N} distinct random tokens, repeated once ({2 * EVAL_N + 1} positions)",
            "n": EVAL_N,
            "batch": EVAL_BATCH,
            "seed": EVAL_SEED,
            "induction_score": "mean attention from each second-copy position q to key q-n+1 "
            "(the token after the earlier occurrence): diagonal offset -(n-1)",
            "prev_token_score": "mean attention from each position q>=1 to q-1",
            "loss_repeated_half": "mean next-token NLL on second-copy tokens 2..n",
        },
        "checkpoints": checkpoints,
        "trace": trace,
    }
    (out / "series.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output directory (gets step{N}/ and series.json)")
    ap.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    ap.add_argument(
        "--save",
        default=",".join(map(str, DEFAULT_SAVE)),
        help="comma-separated steps to save (default: %(default)s)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-every", type=int, default=100, help="metrics trace interval (0: off)")
    args = ap.parse_args(argv)
    save = [int(s) for s in args.save.split(",") if s.strip()]
    rec = train(args.out, args.steps, save, args.seed, args.eval_every, log=print)
    print(f"wrote {len(rec['checkpoints'])} checkpoints to {args.out} in {rec['wall_seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
