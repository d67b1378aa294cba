"""Calibration: the family checks' own error rates, measured where the answer is known.

Every claim type is stated at its check's defaults and judged where its truth is known:

* **the null, random weights.** Models of the induction series' architecture (2 layers x 4
  heads, ``examples/induction_series``), re-initialised with other seeds exactly as its step 0
  was (:func:`series_random_lab`: seed 0 *is* step 0). No finding is true of them, so every
  claim that holds there is a false positive; the false-positive rate gets a Clopper-Pearson
  interval. Each claim is stated for every component that makes sense (every head and layer
  necessary, every layer's logit lens, every head in a role) on repeated-random-token families
  (:func:`pytest_annotate.families.induction_family`).
* **the known circuit, the induction series.** At step 3500, L0H1 is a previous-token head and
  L1H0, L1H1 and L1H3 are induction heads that copy the repeated half (the series' README has
  the measurements these claims come from). Its true claims must hold there and not at step 0,
  the same architecture before training.

"Not needed" claims are the one type random weights cannot test (nothing is needed there, so
the claim is *true*): their null is the components known to be needed at step 3500, and their
true claims are the same components at step 0.

>>> cal = calibrate()                                  # doctest: +SKIP
>>> print(cal.markdown())                              # doctest: +SKIP
>>> cal.problems()                                     # doctest: +SKIP
[]

``python -m pytest_annotate.calibration`` prints the table (``--help`` for seeds and sizes);
``--pythia-seeds 1,2`` adds Pythia-70M's architecture with random weights to the null (with
``--seeds ""``, it is the whole null); ``--bound-sims 1000`` adds :func:`at_the_bound`'s table.
"""

from __future__ import annotations

import dataclasses
import random
import tempfile
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pytest_annotate.families import INDUCTION_SEGMENT, Family, induction_family
from pytest_annotate.stats import Interval, rate_interval

if TYPE_CHECKING:
    from pytest_annotate.lab import Lab

#: The committed checkpoint series (a repository checkout; not part of an installed package).
SERIES = Path(__file__).resolve().parent.parent / "examples" / "induction_series" / "checkpoints"
#: The false-positive rate a claim type may have on random weights (the point estimate is judged).
MAX_FPR = 0.05
#: The fewest null claims per type for a rate to mean something (at 20, one false positive is 5%).
MIN_NULL_CLAIMS = 20
#: Items per family: about half are held out, and a claim true of every item needs 35 held-out
#: items for its Clopper-Pearson interval to clear 90%.
FAMILY_ITEMS = 96
SEGMENT = INDUCTION_SEGMENT
"""Random tokens in the first copy (the series' probe length, README "Metrics")."""

Side = Literal["null", "true", "false"]


# --------------------------------------------------------------------------- models and families


def series_random_lab(seed: int, directory: str | Path) -> Lab:
    """The induction series' architecture with fresh random weights, drawn as its step 0 was.

    Every weight matrix ``N(0, 0.02)`` from a ``torch.Generator`` seeded with ``seed``, in
    parameter order; LayerNorms 1 and 0, biases 0, the MLPs zeroed (the model is attention-only),
    as ``examples/induction_series/make_series.py``'s ``init_model`` does: ``seed=0`` gives step 0's
    weights bit for bit. The model is written to ``directory/series-random-seed{seed}`` (the
    tokenizer and config copied from step 0) and loaded from there like any local model.
    """
    import shutil

    import torch
    from transformers import GPT2LMHeadModel

    from pytest_annotate.models import load_model

    source = SERIES / "step0"
    if not source.is_dir():
        raise FileNotFoundError(f"{source} is missing: calibration needs the repository's examples/induction_series")
    out = Path(directory) / f"series-random-seed{seed}"
    out.mkdir(parents=True, exist_ok=False)
    for path in source.iterdir():
        if path.name != "model.safetensors":
            shutil.copy(path, out / path.name)
    model = GPT2LMHeadModel.from_pretrained(source)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".ln_" in name or name.startswith("transformer.ln_f"):
                p.fill_(1.0 if name.endswith("weight") else 0.0)
            elif name.endswith("bias"):
                p.zero_()
            else:  # wte, wpe, c_attn, c_proj (attention and MLP), lm_head: the draws happen in this order
                p.copy_(torch.randn(p.shape, generator=generator) * 0.02)
        for block in model.transformer.h:
            for p in block.mlp.parameters():
                p.zero_()
    model.save_pretrained(out)
    return load_model(str(out), device="cpu")


def random_weights_lab(name: str, seed: int) -> Lab:
    """A shipped architecture (``pythia-70m-deduped``, ``gpt2``...) with random weights drawn with ``seed``.

    :func:`pytest_annotate.load_model` with ``random_weights=True`` always draws seed 0; this
    builds the same model with another seed, under the model id ``<name>+random-seed<seed>``.
    """
    from pytest_annotate.lab import Lab
    from pytest_annotate.models import ModelSpec, resolve
    from pytest_annotate.models.random_weights import boot_random_bridge

    resolved = resolve(ModelSpec(name, device="cpu", random_weights=True))
    bridge, _ = boot_random_bridge(resolved.source, seed=seed, device="cpu")
    bridge.eval()
    resolved = dataclasses.replace(resolved, model_id=f"{resolved.display_name}+random-seed{seed}")
    return Lab(bridge, resolved, device="cpu")


def series_probe(seed: int) -> Any:
    """The series' head-role probe (README "Metrics": BOS + 15 random tokens x2, 64 rows), seeded."""
    from pytest_annotate.scoring.head_scores import RepeatedRandomTokens

    return RepeatedRandomTokens(n=SEGMENT, batch=64, seed=seed)


# --------------------------------------------------------------------------- claim types

#: ``claim(lab, family, probe) -> result``: one claim about one model, stated on a family (or a probe).
ClaimFn = Callable[["Lab", Family, Any], Any]


@dataclass(frozen=True)
class ClaimType:
    """One claim type, stated at its check's defaults: the claims it makes where each side is known.

    ``null(lab)`` names the claims to judge on a random-weights model (none hold if the check is
    calibrated); ``known`` the claims true of the induction series at step 3500 (``reverse``: true at
    step 0 and false at step 3500, for "not needed"). ``null_draws``: families per random model.
    """

    name: str
    stated: str
    """The check and the arguments it is called with: its defaults, and any argument it has no default for."""
    null: Callable[[Lab], Sequence[tuple[str, ClaimFn]]] | None
    known: Sequence[tuple[str, ClaimFn]]
    reverse: bool = False
    null_draws: int = 1


def _heads(lab: Lab) -> list[str]:
    return [f"L{layer}H{head}" for layer in range(lab.n_layers) for head in range(lab.n_heads)]


#: Necessity claims per random model: every head and layer up to this many heads, else a seeded sample of
#: this many heads and every layer (each claim on Pythia-70M is a batched pass of 7 x ~48 items).
NECESSITY_HEADS = 16


def _necessity_components(lab: Lab) -> list[str]:
    heads = _heads(lab)
    if len(heads) > NECESSITY_HEADS:
        heads = sorted(random.Random(f"necessity/{lab.model_id}").sample(heads, NECESSITY_HEADS // 2))
    return heads + [f"L{layer}" for layer in range(lab.n_layers)]


_ZERO_MLPS: weakref.WeakKeyDictionary[Lab, bool] = weakref.WeakKeyDictionary()


def _mlps(lab: Lab) -> list[str]:
    """The MLPs a head circuit keeps on an attention-only model (the series' MLPs are zeroed): ``keep_only``
    refuses to skip a component whose output is already zero ("a patch that changes nothing"), so a circuit
    of heads there must name them (they add nothing)."""
    if lab not in _ZERO_MLPS:
        weights = [p.detach() for name, p in lab.bridge.named_parameters() if ".mlp." in name]
        _ZERO_MLPS[lab] = bool(weights) and all(float(p.abs().max()) == 0 for p in weights)
    return [f"MLP{layer}" for layer in range(lab.n_layers)] if _ZERO_MLPS[lab] else []


def _circuits(lab: Lab) -> list[list[str]]:
    """Four head circuits for a random model: the series' circuit's shape (one layer-0 head, three of
    the last layer) and three random circuits of 2, 3 and 4 heads (seeded by the model id)."""
    rng = random.Random(f"circuits/{lab.model_id}")
    heads = _heads(lab)
    last = [h for h in heads if h.startswith(f"L{lab.n_layers - 1}H")]
    first = [h for h in heads if h.startswith("L0H")]
    out = [[rng.choice(first), *rng.sample(last, min(3, len(last)))]]
    out += [rng.sample(heads, size) for size in (2, 3, 4)]
    return [sorted(c) + _mlps(lab) for c in out]


def _claim_types() -> tuple[ClaimType, ...]:
    from pytest_annotate.checks.families import (
        check_logit_diff_effect,
        check_logit_lens_rate,
        check_necessity_family,
        check_prob_rate,
        check_rank_rate,
        check_sufficiency_family,
        check_top_token_rate,
    )
    from pytest_annotate.checks.head_roles import check_head_role

    def top1(lab: Lab, fam: Family, probe: Any) -> Any:
        return check_top_token_rate(lab, fam)

    def top5(lab: Lab, fam: Family, probe: Any) -> Any:
        return check_rank_rate(lab, fam, max_rank=4)

    def prob(lab: Lab, fam: Family, probe: Any) -> Any:
        return check_prob_rate(lab, fam, min_prob=1 / lab.d_vocab)

    def lens(layer: int | None) -> ClaimFn:
        return lambda lab, fam, probe: check_logit_lens_rate(
            lab, fam, max_layer=lab.n_layers - 1 if layer is None else layer)

    def diff(lab: Lab, fam: Family, probe: Any) -> Any:
        return check_logit_diff_effect(lab, fam)

    def necessary(component: str | list[str], claim: str = "necessary") -> ClaimFn:
        return lambda lab, fam, probe: check_necessity_family(lab, fam, component, claim=claim)  # type: ignore[arg-type]

    def sufficient(heads: list[str]) -> ClaimFn:
        return lambda lab, fam, probe: check_sufficiency_family(lab, fam, heads + _mlps(lab))

    def role(head: str, name: str, min_score: float) -> ClaimFn:
        return lambda lab, fam, probe: check_head_role(lab, head, name, min_score=min_score, top_k=1,  # type: ignore[arg-type]
                                                       inputs=probe)

    roles = (("induction", 0.8), ("previous_token", 0.5))
    # Needed at step 3500 (the series' README: zeroing L0H1 costs 3.2 nats, L1H0 and L1H1 2.9, and with L1H3
    # 3.4), and so are the layers that hold them.
    needed = [["L0H1"], ["L1H0", "L1H1"], ["L1H0", "L1H1", "L1H3"], ["L0"], ["L1"]]
    # The previous-token head and the layer-1 heads with induction scores >= 0.5 (README). Not L0H1+L1H0
    # alone: zeroing L1H1 by itself drops the repeated-half accuracy to 90%.
    circuit = ["L0H1", "L1H0", "L1H1", "L1H3"]
    return (
        ClaimType("top-1 rate", "`check_top_token_rate`: min_rate 0.9, Clopper-Pearson 95%, held-out items",
                  lambda lab: [("the answer is top-1", top1)], [("the answer is top-1", top1)], null_draws=4),
        ClaimType("rank rate", "`check_rank_rate(max_rank=4)`: min_rate 0.9",
                  lambda lab: [("the answer is top-5", top5)], [("the answer is top-5", top5)], null_draws=4),
        ClaimType("prob rate", "`check_prob_rate(min_prob=1/vocab)`: min_rate 0.9",
                  lambda lab: [("the answer is likelier than uniform", prob)],
                  [("the answer is likelier than uniform", prob)], null_draws=4),
        ClaimType("logit-lens rate", "`check_logit_lens_rate(max_layer=L)`: min_rate 0.9; every block L",
                  lambda lab: [(f"top-1 in the lens by L{layer}", lens(layer)) for layer in range(lab.n_layers)],
                  [("top-1 in the lens by the last block", lens(None))], null_draws=4),
        ClaimType("logit-diff effect", "`check_logit_diff_effect`: min_mean 0, BCa bootstrap 95%",
                  lambda lab: [("logit(answer) > logit(foil) on average", diff)],
                  [("logit(answer) > logit(foil) on average", diff)], null_draws=16),
        ClaimType("necessary", "`check_necessity_family`: mean ablation, min_effect 1 nat, 5 random controls, "
                  "alpha 0.05; every head and layer",
                  lambda lab: [(f"{c} is necessary", necessary(c)) for c in _necessity_components(lab)],
                  # Not L1H0 alone: zeroing it costs 0.74 nats (README), below the default 1 nat.
                  [("L0H1 is necessary", necessary("L0H1")), ("L1H0+L1H1 is necessary", necessary(["L1H0", "L1H1"]))]),
        ClaimType("not needed", "`check_necessity_family(claim=\"unnecessary\")`: mean ablation, max_effect 0.1 nat",
                  None, [(f"{'+'.join(c)} is not needed", necessary(c, "unnecessary")) for c in needed],
                  reverse=True, null_draws=4),
        ClaimType("sufficient", "`check_sufficiency_family`: min_rate 0.9, 5 random circuits, alpha 0.05",
                  lambda lab: [(f"keeping only {'+'.join(c)} is sufficient", sufficient(c)) for c in _circuits(lab)],
                  [(f"keeping only {'+'.join(circuit)} is sufficient", sufficient(circuit))]),
        ClaimType("head role", "`check_head_role(min_score=s, top_k=1)`: induction s = 0.8, previous-token "
                  "s = 0.5 (no defaults: as the series' behaviours state them); every head",
                  lambda lab: [(f"{h} is a {name} head", role(h, name, s)) for h in _heads(lab) for name, s in roles],
                  [("L1H0 is an induction head", role("L1H0", "induction", 0.8)),
                   ("L0H1 is a previous-token head", role("L0H1", "previous_token", 0.5))], null_draws=2),
    )


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class JudgedClaim:
    """One claim as judged: which side of the calibration it is on, and its verdict."""

    claim_type: str
    side: Side
    """``null``: false where judged; ``true``: known true there; ``false``: a true claim where it is not true."""
    model: str
    family: str
    claim: str
    verdict: str
    measured: str
    control_p: float | None = None
    """The p-value of the test against random controls, when the claim has one."""

    @property
    def held(self) -> bool:
        return self.verdict == "holds"


@dataclass(frozen=True)
class CalibrationRow:
    """One claim type's measured error rates: on its null, on its known-true claims, and where those are false."""

    claim_type: str
    stated: str
    null_where: str
    null_n: int
    null_held: int
    true_where: str
    true_n: int
    true_held: int
    false_where: str
    false_n: int
    false_held: int
    control_significant: int | None = None
    """Null claims whose test against random controls was significant on its own (None: the type has no controls)."""

    @property
    def fpr(self) -> Interval:
        """The false-positive rate on the null, with its Clopper-Pearson 95% interval."""
        return rate_interval(self.null_held, max(self.null_n, 1), label="false positives", items="null claims")

    @property
    def tpr(self) -> float:
        """The share of known-true claims that hold."""
        return self.true_held / self.true_n if self.true_n else float("nan")

    def problems(self, max_fpr: float = MAX_FPR, min_null: int = MIN_NULL_CLAIMS) -> list[str]:
        out = []
        if self.null_n < min_null:
            out.append(f"{self.claim_type}: only {self.null_n} null claims (need ≥ {min_null} for the rate to mean "
                       "anything)")
        elif self.null_held / self.null_n > max_fpr:
            out.append(f"{self.claim_type}: false-positive rate {self.null_held}/{self.null_n} = "
                       f"{self.null_held / self.null_n:.1%} > {max_fpr:.0%} on {self.null_where} ({self.stated})")
        if self.true_held < self.true_n:
            out.append(f"{self.claim_type}: only {self.true_held} of {self.true_n} true claims hold on {self.true_where}")
        if self.false_held:
            out.append(f"{self.claim_type}: {self.false_held} of {self.false_n} claims hold on {self.false_where}, "
                       "where they are not true")
        return out


@dataclass(frozen=True)
class Calibration:
    """The calibration table: one :class:`CalibrationRow` per claim type, and every judged claim."""

    rows: tuple[CalibrationRow, ...]
    claims: tuple[JudgedClaim, ...] = field(repr=False)
    null_models: tuple[str, ...]
    max_fpr: float = MAX_FPR
    min_null: int = MIN_NULL_CLAIMS

    def problems(self) -> list[str]:
        """What is wrong, one line each: a false-positive rate above ``max_fpr``, too few null claims, a true
        claim that does not hold, a claim that holds where it is false. Empty when calibrated."""
        return [p for row in self.rows for p in row.problems(self.max_fpr, self.min_null)]

    @property
    def ok(self) -> bool:
        return not self.problems()

    def row(self, claim_type: str) -> CalibrationRow:
        return next(r for r in self.rows if r.claim_type == claim_type)

    def held(self, side: Side, claim_type: str | None = None) -> list[JudgedClaim]:
        """The claims of ``side`` (of one type) that hold: on ``null`` and ``false``, each is an error."""
        return [c for c in self.claims if c.side == side and c.held and claim_type in (None, c.claim_type)]

    def markdown(self) -> str:
        """The table as README.md shows it."""
        lines = [
            ("| claim type | stated as | null | held / null claims | false-positive rate [95% CI] | "
             "controls alone p ≤ 0.05 | true claims that hold | hold where false |"),
            "|---|---|---|---:|---|---:|---:|---:|",
        ]
        for r in self.rows:
            iv = r.fpr
            fpr = f"{100 * iv.estimate:.1f}% [{100 * iv.low:.1f}%, {100 * iv.high:.1f}%]"
            ctrl = "–" if r.control_significant is None else f"{r.control_significant} / {r.null_n}"
            false = "(the null)" if r.false_where == r.null_where else f"{r.false_held} / {r.false_n} ({r.false_where})"
            lines.append(
                f"| {r.claim_type} | {r.stated} | {r.null_where} | {r.null_held} / {r.null_n} | {fpr} | {ctrl} | "
                f"{r.true_held} / {r.true_n} ({r.true_where}) | {false} |"
            )
        return "\n".join(lines)

    def null_markdown(self) -> str:
        """The null's columns alone (for a null judged apart, e.g. Pythia-70M's architecture)."""
        lines = ["| claim type | held / null claims | false-positive rate [95% CI] | controls alone p ≤ 0.05 |",
                 "|---|---:|---|---:|"]
        for r in self.rows:
            if r.null_where != "random weights":
                continue
            iv = r.fpr
            ctrl = "–" if r.control_significant is None else f"{r.control_significant} / {r.null_n}"
            lines.append(f"| {r.claim_type} | {r.null_held} / {r.null_n} | {100 * iv.estimate:.1f}% "
                         f"[{100 * iv.low:.1f}%, {100 * iv.high:.1f}%] | {ctrl} |")
        return "\n".join(lines)

    def __str__(self) -> str:
        problems = self.problems()
        if problems:
            tail = "\n".join(["PROBLEMS:", *(f"  {p}" for p in problems)])
        else:
            tail = f"calibrated: every false-positive rate ≤ {self.max_fpr:.0%}, every true claim holds, none where false"
        return f"null models: {', '.join(self.null_models)}\n\n{self.markdown()}\n\n{tail}"


# --------------------------------------------------------------------------- running it


def _judge(lab: Lab, claim_type: ClaimType, side: Side, text: str, fn: ClaimFn, fam: Family, probe: Any) -> JudgedClaim:
    result = fn(lab, fam, probe)
    verdict = getattr(result, "verdict", "holds" if result.passed else "fails")
    control = getattr(result, "control", None)
    inputs = getattr(result, "inputs", None)  # a head role is judged on its probe, not on the family
    return JudgedClaim(claim_type.name, side, lab.model_id, fam.name if inputs is None else str(inputs), text,
                       verdict, result.measured(), None if control is None else control.p_value)


class _Families:
    """A model's induction families by draw, built on first use."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self._built: dict[int, Family] = {}

    def __getitem__(self, draw: int) -> Family:
        if draw not in self._built:
            self._built[draw] = induction_family(self.lab, seed=draw)
        return self._built[draw]


def _null_claims(lab: Lab, types: Sequence[ClaimType]) -> Iterator[JudgedClaim]:
    families = _Families(lab)
    for t in types:
        if t.null is None:
            continue
        claims = t.null(lab)
        for d in range(t.null_draws):
            for text, fn in claims:
                yield _judge(lab, t, "null", text, fn, families[d], series_probe(d))


def _series_claims(lab: Lab, types: Sequence[ClaimType], draws: int, step: int) -> Iterator[JudgedClaim]:
    families = _Families(lab)
    for t in types:
        # The known claims are true at step 3500 and not at step 0. "Not needed" claims are the reverse, and
        # at step 3500, where they are false, they are that type's null, judged on its null_draws families.
        if step == 0:
            side: Side = "true" if t.reverse else "false"
        else:
            side = "null" if t.reverse else "true"
        for d in range(t.null_draws if side == "null" else draws):
            for text, fn in t.known:
                yield _judge(lab, t, side, text, fn, families[d], series_probe(d))


@contextmanager
def _threads(n: int | None) -> Iterator[None]:
    import torch

    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def calibrate(
    *,
    seeds: Sequence[int] = range(1, 7),
    series_draws: int = 3,
    types: Sequence[ClaimType] | None = None,
    extra_null: Sequence[tuple[str, int]] = (),
    threads: int | None = 1,
    max_fpr: float = MAX_FPR,
    min_null: int = MIN_NULL_CLAIMS,
    progress: Callable[[str], None] | None = None,
) -> Calibration:
    """Judge every claim type on random weights (the null) and on the induction series (the truth).

    ``seeds``: the series architecture re-initialised with each (seed 0 is step 0, judged apart);
    each claim type states its claims on its ``null_draws`` families per random model.
    ``series_draws``: families for the series' known claims at steps 3500 and 0. ``extra_null``:
    ``(architecture, seed)`` random-weights models to add to the null (``("pythia-70m-deduped", 1)``).
    ``types``: the claim types (default :func:`claim_types`). Deterministic for the same arguments,
    torch build and thread count.
    """
    from pytest_annotate.models import load_model

    types = tuple(claim_types() if types is None else types)
    say = progress or (lambda _: None)
    claims: list[JudgedClaim] = []
    null_models: list[str] = []
    with ExitStack() as stack, _threads(threads):
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pytest-annotate-calibration-")))
        for seed in seeds:
            lab = series_random_lab(seed, tmp)
            say(f"null: {lab.model_id}")
            null_models.append(lab.model_id)
            claims += _null_claims(lab, types)
        for name, seed in extra_null:
            lab = random_weights_lab(name, seed)
            say(f"null: {lab.model_id}")
            null_models.append(lab.model_id)
            claims += _null_claims(lab, types)
        for step in (3500, 0):
            lab = load_model(str(SERIES), checkpoint=step, device="cpu")
            say(f"series: {lab.model_id}")
            claims += _series_claims(lab, types, series_draws, step)
    rows = tuple(_row(t, [c for c in claims if c.claim_type == t.name]) for t in types)
    return Calibration(rows, tuple(claims), tuple(null_models), max_fpr, min_null)


def _row(t: ClaimType, claims: Sequence[JudgedClaim]) -> CalibrationRow:
    def count(side: Side) -> tuple[int, int]:
        mine = [c for c in claims if c.side == side]
        return len(mine), sum(c.held for c in mine)

    (null_n, null_held), (true_n, true_held), (false_n, false_held) = count("null"), count("true"), count("false")
    with_controls = [c for c in claims if c.side == "null" and c.control_p is not None]
    # The control test decides a "necessary" or "sufficient" verdict; a "not needed" verdict only shows it.
    significant = None if t.reverse or not with_controls else sum(c.control_p <= 0.05 for c in with_controls)  # type: ignore[operator]
    if t.reverse:  # its null is its true claims where they are false
        where = "step 3500: needed components"
        return CalibrationRow(t.name, t.stated, where, null_n, null_held, "step 0", true_n, true_held, where, null_n,
                              null_held, significant)
    return CalibrationRow(t.name, t.stated, "random weights", null_n, null_held, "step 3500", true_n, true_held,
                          "step 0", false_n, false_held, significant)


def claim_types() -> tuple[ClaimType, ...]:
    """The claim types calibrated by default, each stated at its check's defaults."""
    return _claim_types()


# --------------------------------------------------------------------------- at the bound

#: Per-item distributions for effects at the bound: mean 0, the claim ``mean >= 0`` exactly false.
#: "long tail against the claim" is the negated centred lognormal: most items above 0, a few far below.
EFFECT_SHAPES = ("normal", "long tail for the claim", "long tail against the claim")


@dataclass(frozen=True)
class BoundRow:
    """How often an interval's verdict is ``holds`` when the true value sits exactly on the claim's bound.

    This is the worst case of a claim that is false (random weights are far from most bounds): a
    rate of exactly ``min_rate`` (Clopper-Pearson, computed exactly), or a mean effect of exactly
    ``min_mean`` (the BCa bootstrap every effect claim uses, simulated ``sims`` times).
    """

    interval: str
    claim: str
    n: int
    held: float
    """The probability (exact) or share of simulations (simulated) that the claim holds."""
    sims: int | None = None
    """Simulations behind ``held``; None when it is exact."""

    def fmt(self) -> str:
        if self.sims is None:
            return f"{100 * self.held:.2f}% (exact)"
        k = round(self.held * self.sims)
        iv = rate_interval(k, self.sims)
        return f"{100 * self.held:.1f}% [{100 * iv.low:.1f}%, {100 * iv.high:.1f}%] ({k} of {self.sims})"


def at_the_bound(*, ns: Sequence[int] = (20, 48), sims: int = 1000, shapes: Sequence[str] = EFFECT_SHAPES,
                 min_rate: float = 0.9, seed: int = 0) -> tuple[BoundRow, ...]:
    """The statistics' own false-positive rate where a claim is false by the least: exactly on its bound.

    Rates: ``k ~ Binomial(n, min_rate)``, judged with the default Clopper-Pearson 95% interval
    (exact: the sum of the binomial probabilities of every ``k`` that holds). Effects: ``n`` item
    values of mean exactly 0 drawn from each of ``shapes`` (a standard normal, and a centred
    lognormal with sigma 1 and its negation: skewness 6.2), judged ``>= 0`` with the default BCa
    bootstrap (9999 resamples, seed 0, as :func:`~pytest_annotate.checks.families.check_logit_diff_effect`
    and :func:`~pytest_annotate.checks.families.check_necessity_family` call it).
    """
    import numpy as np
    from scipy import stats as sps

    from pytest_annotate.stats import bootstrap_interval, judge

    rows = []
    for n in ns:
        p = sum(float(sps.binom.pmf(k, n, min_rate)) for k in range(n + 1)
                if judge(rate_interval(k, n), min_rate).verdict == "holds")
        rows.append(BoundRow("Clopper-Pearson 95% (every rate claim)", f"rate = min_rate = {min_rate:g}", n, p))
    shift = float(np.exp(0.5))  # the mean of lognormal(0, 1)
    draw = {
        "normal": lambda rng, n: rng.normal(size=n),
        "long tail for the claim": lambda rng, n: rng.lognormal(0.0, 1.0, size=n) - shift,
        "long tail against the claim": lambda rng, n: shift - rng.lognormal(0.0, 1.0, size=n),
    }
    for n in ns:
        for shape in shapes:
            rng = np.random.default_rng([seed, n, EFFECT_SHAPES.index(shape)])
            held = sum(judge(bootstrap_interval(draw[shape](rng, n)), 0.0).verdict == "holds" for _ in range(sims))
            rows.append(BoundRow("BCa bootstrap 95% (every effect claim)", f"mean = min_mean, {shape}", n,
                                 held / sims, sims))
    return tuple(rows)


def bound_markdown(rows: Sequence[BoundRow]) -> str:
    lines = ["| interval | true value | items | holds |", "|---|---|---:|---|"]
    lines += [f"| {r.interval} | {r.claim} | {r.n} | {r.fmt()} |" for r in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------- the command


def main(argv: Sequence[str] | None = None) -> int:
    import argparse
    import sys
    import time

    parser = argparse.ArgumentParser(prog="python -m pytest_annotate.calibration", description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="1-6", help="random inits of the series architecture: 1-6 or 1,3,5")
    parser.add_argument("--series-draws", type=int, default=3, help="families for the series' claims (default 3)")
    parser.add_argument("--pythia-seeds", default="", help="also Pythia-70M with random weights, these seeds")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the numbers depend on it)")
    parser.add_argument("--bound-sims", type=int, default=0,
                        help="also the statistics at the bound, with this many simulations per effect (1000 in README)")
    parser.add_argument("-v", "--verbose", action="store_true", help="list every null claim that held")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    cal = calibrate(
        seeds=_seeds(args.seeds), series_draws=args.series_draws, threads=args.threads,
        extra_null=[("pythia-70m-deduped", s) for s in _seeds(args.pythia_seeds)],
        progress=lambda m: print(m, file=sys.stderr, flush=True),
    )
    print(cal)
    if args.pythia_seeds:
        print("\nThe null's columns:\n\n" + cal.null_markdown())
    if args.bound_sims:
        print("\nAt the bound:\n\n" + bound_markdown(at_the_bound(sims=args.bound_sims)))
    if args.verbose:
        for c in cal.claims:
            if c.held != (c.side == "true"):
                print(f"  {c.side}: {c.model} {c.family}: {c.claim}: {c.verdict} ({c.measured})")
    print(f"\n{len(cal.claims)} claims in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0 if cal.ok else 1


def _seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):  # "" is no seeds
        lo, _, hi = part.partition("-")
        out += range(int(lo), int(hi) + 1) if hi else [int(lo)]
    return out


__all__ = [
    "EFFECT_SHAPES",
    "MAX_FPR",
    "MIN_NULL_CLAIMS",
    "BoundRow",
    "Calibration",
    "CalibrationRow",
    "ClaimType",
    "JudgedClaim",
    "at_the_bound",
    "bound_markdown",
    "calibrate",
    "claim_types",
    "random_weights_lab",
    "series_random_lab",
]

if __name__ == "__main__":
    raise SystemExit(main())
