"""The report's figures, drawn with matplotlib's Agg canvas into PNG bytes (no display, no pyplot).

* :func:`head_scores_heatmap`: a head role's score for every head (layer × head), the claimed
  head boxed;
* :func:`head_role_bars`: a head-role claim whose full table was not recorded: its top heads;
* :func:`sweep_bars`: the drop in the answer's score when each component is ablated;
* :func:`necessity_bars`: a necessity claim: the component's drop next to its controls', with the
  claim's thresholds;
* :func:`trajectory_plot`: findings' key numbers across checkpoints, with their claims' bounds and,
  for claims over families, the interval each verdict rests on.

:func:`plots_for_results` picks the figures for a run's recorded results. Figures are built on
``matplotlib.figure.Figure`` directly, so nothing here touches pyplot's global state or the
user's backend.
"""

from __future__ import annotations

import base64
import io
import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_annotate.report.trajectory import (
    MAX_TRAJECTORIES,
    Trajectory,
    TrajectoryPoint,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 100
#: Heatmaps annotate each cell with its score up to this many heads.
MAX_ANNOTATED_CELLS = 160
#: Roles whose scores are attention fractions in [0, 1]: drawn on a fixed 0..1 scale, so that
#: heatmaps of different checkpoints compare by eye.
ATTENTION_ROLES = frozenset({"induction", "previous_token", "duplicate_token", "mover_attention"})
HURTS, HELPS, CONTROL, CLAIMED = "#c0392b", "#2e86c1", "#95a5a6", "#d35400"
#: Trajectory points by verdict: holds, inconclusive (hollow), fails (a cross); no bound (hollow).
HOLDS, UNSURE, LINE = "#27ae60", "#e6a100", "#34495e"


@dataclass(frozen=True)
class Plot:
    """One figure of the report: PNG bytes, a title, a caption, and the test it belongs to."""

    title: str
    caption: str
    png: bytes
    section: str
    """``head roles``, ``ablations`` or ``trajectory``."""
    nodeid: str = ""

    @property
    def data_uri(self) -> str:
        """The PNG as a ``data:`` URI, to embed in HTML with no file beside it."""
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _short(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _title(ax: Any, text: str, width_inches: float, fontsize: int = 10) -> None:
    """A title wrapped to the axes' figure width (matplotlib clips a long title at the figure's edge)."""
    chars = max(20, int(width_inches * 72 / (0.6 * fontsize)))
    ax.set_title("\n".join(textwrap.wrap(text, chars)[:3]), fontsize=fontsize)


def _head_index(name: str) -> tuple[int, int] | None:
    """``"L1H0"`` → ``(1, 0)``."""
    upper = name.upper()
    if not upper.startswith("L") or "H" not in upper:
        return None
    layer, _, head = upper[1:].partition("H")
    return (int(layer), int(head)) if layer.isdigit() and head.isdigit() else None


# --------------------------------------------------------------------------- head roles


def head_scores_heatmap(scores: Any, *, claims: Sequence[Any] = (), nodeid: str = "") -> Plot:
    """A heatmap of a :class:`~pytest_annotate.scoring.head_scores.HeadScores` table (layer × head).

    ``claims``: :class:`~pytest_annotate.checks.head_roles.HeadRoleResult` values about this table; their
    heads are boxed (orange: the claim holds, red: it fails; on a red-blue map, solid black: holds,
    dashed: fails).
    """
    data = np.array(scores.scores, dtype=np.float64)
    n_layers, n_heads = data.shape
    width = min(11.0, max(4.5, 0.8 * n_heads + 2.2))
    height = min(11.0, max(2.6, 0.42 * n_layers + 1.6))
    fig = _figure(width, height)
    ax = fig.add_subplot()
    finite = data[np.isfinite(data)]
    if scores.role in ATTENTION_ROLES:
        cmap, vmin, vmax = "viridis", 0.0, 1.0
    elif finite.size and finite.min() < 0:
        bound = float(np.abs(finite).max()) or 1.0
        cmap, vmin, vmax = "RdBu_r", -bound, bound
    else:
        cmap, vmin, vmax = "viridis", 0.0, float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    image = ax.imshow(data, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto", interpolation="nearest")
    fig.colorbar(image, ax=ax, label=f"{scores.role} score", shrink=0.9)
    ax.set_xticks(range(n_heads), [f"H{h}" for h in range(n_heads)], fontsize=8 if n_heads > 12 else 9)
    ax.set_yticks(range(n_layers), [f"L{layer}" for layer in range(n_layers)], fontsize=8 if n_layers > 12 else 9)
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    _title(ax, f"{scores.role} score per head: {scores.model_id}", width)
    if data.size <= MAX_ANNOTATED_CELLS:
        mid = (vmin + vmax) / 2
        for (layer, head), value in np.ndenumerate(data):
            if math.isfinite(value):
                color = "black" if value > mid and cmap == "viridis" else "white"
                if cmap == "RdBu_r":
                    color = "white" if abs(value) > 0.6 * vmax else "black"
                ax.text(head, layer, f"{value:.2f}", ha="center", va="center", fontsize=8 if data.size > 48 else 9,
                        color=color)
    from matplotlib.patches import Rectangle

    boxed = []
    for claim in claims:
        at = _head_index(claim.head)
        if at is None:
            continue
        color = CLAIMED if claim.passed else HURTS
        if cmap == "RdBu_r":  # red and orange vanish on a red-blue map
            color = "black"
        ax.add_patch(Rectangle((at[1] - 0.5, at[0] - 0.5), 1, 1, fill=False, edgecolor=color, linewidth=3,
                               linestyle="-" if claim.passed else "--"))
        boxed.append(f"{claim.head} boxed ({getattr(claim, 'claim', None) or 'claimed'}: "
                     f"{'holds' if claim.passed else 'FAILS'})")
    top = ", ".join(f"{name} {value:.3f}" for name, value in scores.top(3))
    caption = f"Inputs: {scores.inputs}. Top heads: {top}." + (f" {'; '.join(boxed)}." if boxed else "")
    return Plot(f"{scores.role} scores: {scores.model_id}", caption, _png(fig), "head roles", nodeid)


def head_role_bars(result: Any, *, nodeid: str = "") -> Plot:
    """A head-role claim recorded without its score table: the top heads it carries, the claimed one marked."""
    names = [name for name, _ in result.top_heads]
    values = [value for _, value in result.top_heads]
    labels = list(names)
    if result.head not in names:
        names.append(result.head)
        values.append(result.score)
        labels.append(f"{result.head} (#{result.rank + 1})")
    width = 6.5
    fig = _figure(width, 0.35 * len(names) + 1.4)
    ax = fig.add_subplot()
    colors = [(CLAIMED if result.passed else HURTS) if n == result.head else CONTROL for n in names]
    ax.barh(range(len(names)), values, color=colors)
    ax.set_yticks(range(len(names)), labels)
    ax.invert_yaxis()
    if result.min_score is not None:
        ax.axvline(result.min_score, color="black", linestyle="--", linewidth=1, label=f"claim ≥ {result.min_score:g}")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel(f"{result.role} score")
    _title(ax, f"{result.role}: {result.head} on {result.model_id} (top {len(result.top_heads)} heads)", width)
    caption = (f"Inputs: {result.inputs}. Only the top heads were recorded; record the full table "
               "(pytest_annotate.report.record(head_scores(...))) for a layer × head heatmap.")
    return Plot(f"{result.role}: {result.head}", caption, _png(fig), "head roles", nodeid)


# --------------------------------------------------------------------------- ablations

_DROP_WORDS = {"logprob": "drop in answer log-prob (nats)", "prob": "drop in answer probability",
               "logit": "drop in answer logit", "rank": "rise in answer rank"}


def sweep_bars(result: Any, *, nodeid: str = "") -> Plot:
    """Per component of a :class:`~pytest_annotate.scoring.sweeps.SweepResult`: how much ablating it costs."""
    metric = result.sort_metric
    names = [row.component for row in result.rows]
    drops = np.array([row.drop(metric) for row in result.rows], dtype=np.float64)
    width = min(12.0, max(5.0, 0.32 * len(names) + 2.0))
    fig = _figure(width, 3.6)
    ax = fig.add_subplot()
    ax.bar(range(len(names)), drops, color=[HURTS if d > 0 else HELPS for d in drops])
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(names)), names, rotation=90 if len(names) > 16 else 0, fontsize=8 if len(names) > 16 else 9)
    ax.set_ylabel(_DROP_WORDS.get(metric, metric))
    _title(ax, f"{result.ablation} ablation of each of {len(names)} {result.kinds}: "
               f"{_short(result.prompt, 48)!r} → {result.answer!r}", width)
    top = ", ".join(f"{row.component} {row.drop(metric):+.3g}" for row in result.ranked()[:3])
    caption = (f"{result.model_id}; clean answer: rank {result.clean.rank}, log-prob {result.clean.log_prob:.3f}. "
               f"Red: ablating the component hurts the answer; blue: it helps. Largest: {top}.")
    return Plot(f"ablation sweep: {_short(result.prompt, 40)!r} → {result.answer!r}", caption, _png(fig), "ablations",
                nodeid)


def necessity_bars(result: Any, *, nodeid: str = "") -> Plot:
    """A :class:`~pytest_annotate.checks.necessity.NecessityResult`: the component's drop under each ablation,
    next to each negative control's, with the claim's thresholds."""
    labels: list[str] = []
    values: list[float] = []
    colors: list[str] = []
    groups: list[tuple[int, int, Any]] = []
    for row in result.rows:
        start = len(labels)
        labels.append(f"{result.component}\n{row.ablation}")
        values.append(row.drop)
        colors.append(CLAIMED if row.passed else HURTS)
        for control in row.controls:
            labels.append(f"{control.components}\n{row.ablation}")
            values.append(control.drop)
            colors.append(CONTROL)
        groups.append((start, len(labels), row))
    width = min(12.0, max(5.0, 0.55 * len(labels) + 2.0))
    fig = _figure(width, 3.8)
    ax = fig.add_subplot()
    ax.bar(range(len(labels)), values, color=colors)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    threshold = result.min_drop if result.claim == "necessary" else result.max_drop
    if threshold is not None:
        word = "≥" if result.claim == "necessary" else "≤"
        ax.axhline(threshold, color="black", linestyle="--", linewidth=1, label=f"claim: drop {word} {threshold:g}")
    for start, stop, row in groups:
        if result.claim == "necessary" and row.control_drop is not None and result.control_margin is not None:
            needed = row.control_drop + result.control_margin
            ax.hlines(needed, start - 0.4, stop - 0.6, color=CLAIMED, linestyle=":", linewidth=1.5,
                      label="controls' median + margin" if start == 0 else "_nolegend_")
    ax.legend(fontsize=8, loc="best")
    ax.set_ylabel(_DROP_WORDS.get(result.metric, result.metric))
    _title(ax, f"{result.component} {result.claim} for {result.answer!r} after {_short(result.prompt, 48)!r}", width)
    verdicts = "; ".join(f"{r.ablation}: {'holds' if r.passed else 'FAILS'}" for r in result.rows)
    caption = (f"{result.model_id}. Orange/red: {result.component} ablated (red: the claim fails there); grey: "
               f"random other {result.control_kind} ablated the same way (seed {result.seed}). {verdicts}.")
    return Plot(f"necessity: {result.component}", caption, _png(fig), "ablations", nodeid)


# --------------------------------------------------------------------------- across runs


def trajectory_plot(trajectories: Sequence[Trajectory], *, by_step: bool = True,
                    baseline_step: int | None = None) -> Plot:
    """Each finding's key number across runs (one panel each), its claim's bound dashed.

    Filled green dots: the claim holds at that run; hollow amber circles: inconclusive; red crosses:
    it fails; hollow grey: no bound. A claim over a family also draws the interval its verdict rests
    on: an error bar at each run, and a shaded band joining them.
    """
    shown = list(trajectories[:MAX_TRAJECTORIES])
    n = len(shown)
    cols = 1 if n == 1 else 2 if n <= 4 else 3
    rows = math.ceil(n / cols)
    fig = _figure(4.2 * cols + 0.6, 2.9 * rows + 0.3)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax, t in zip(axes.flat, shown, strict=False):
        xs = [p.x for p in t.points]
        ys = [p.value for p in t.points]
        banded = _interval_band(ax, t)
        ax.plot(xs, ys, color=LINE, linewidth=1.2, zorder=1)
        for p in t.points:
            _trajectory_marker(ax, p)
        if t.threshold is not None:
            ax.axhline(t.threshold, color="black", linestyle="--", linewidth=1, label=f"claim {t.bound}")
        if baseline_step is not None and by_step:
            ax.axvline(baseline_step, color="#7f8c8d", linestyle=":", linewidth=1, label="baseline")
        if banded or t.threshold is not None or (baseline_step is not None and by_step):
            ax.legend(fontsize=7, loc="best")
        if not by_step:
            ax.set_xticks(xs, [p.label for p in t.points], rotation=30, fontsize=7, ha="right")
        else:
            ax.set_xlabel("checkpoint step", fontsize=8)
        ax.tick_params(labelsize=8)
        unit = f" ({t.unit})" if t.unit else ""
        ax.set_title("\n".join(textwrap.wrap(f"{t.name}{unit}", 44)[:2]) + f"\n{_short(t.test_name, 48)}", fontsize=8)
    more = f" (first {MAX_TRAJECTORIES} of {len(trajectories)}; the table lists all)" if len(trajectories) > n else ""
    intervals = any(t.has_intervals for t in shown)
    caption = "Each finding's key number across runs" + more + ". "
    if intervals:
        caption += ("Claims over families show the interval their verdict rests on: a bar at each run, a shaded "
                    "band across runs (the table gives value [low, high] verdict (items)). ")
    caption += "Green dots: the claim holds at that run; "
    if intervals:
        caption += "hollow amber circles: inconclusive (the interval straddles the bound); "
    caption += "red crosses: it fails; hollow grey: no bound claimed. Dashed: the claim's bound."
    return Plot("findings across checkpoints", caption, _png(fig), "trajectory")


def _interval_band(ax: Any, t: Trajectory) -> bool:
    """A family claim's intervals: a shaded band through the runs that have one, and a bar at each
    (``False``: no run has one, nothing drawn)."""
    with_interval = [p for p in t.points if p.interval is not None]
    if not with_interval:
        return False
    xs = [p.x for p in with_interval]
    lows = [p.interval[0] for p in with_interval]  # type: ignore[index]
    highs = [p.interval[1] for p in with_interval]  # type: ignore[index]
    if len(with_interval) > 1:
        ax.fill_between(xs, lows, highs, color=LINE, alpha=0.12, linewidth=0, zorder=0, label="interval")
    for i, (p, low, high) in enumerate(zip(with_interval, lows, highs, strict=True)):
        color = {"holds": HOLDS, "inconclusive": UNSURE, "fails": HURTS}.get(p.status or "", LINE)
        label = "interval" if i == 0 and len(with_interval) == 1 else "_nolegend_"
        ax.errorbar([p.x], [p.value], yerr=[[max(p.value - low, 0.0)], [max(high - p.value, 0.0)]], fmt="none",
                    ecolor=color, elinewidth=1.4, capsize=3, zorder=1.5, label=label)
    return True


def _trajectory_marker(ax: Any, p: TrajectoryPoint) -> None:
    status = p.status
    if status is None:
        ax.scatter([p.x], [p.value], s=30, facecolors="white", edgecolors=LINE, zorder=2)
    elif status == "holds":
        ax.scatter([p.x], [p.value], s=30, color=HOLDS, zorder=2)
    elif status == "inconclusive":
        ax.scatter([p.x], [p.value], s=36, facecolors="white", edgecolors=UNSURE, linewidths=1.8, zorder=2)
    else:
        ax.scatter([p.x], [p.value], s=40, color=HURTS, marker="x", zorder=2)


# --------------------------------------------------------------------------- dispatch


def plots_for_results(recorded: Sequence[tuple[str, Any]]) -> list[Plot]:
    """The figures for a run's recorded ``(nodeid, result)`` pairs, in recording order.

    A head-role claim is drawn as a box on its table's heatmap when the same test recorded the
    table (same role, model and inputs), else as a bar chart of its top heads.
    """
    plots: list[Plot] = []
    kinds = {id(r): type(r).__name__ for _, r in recorded}
    tables = [(n, r) for n, r in recorded if kinds[id(r)] == "HeadScores"]
    seen: set[tuple[str, int]] = set()
    for nodeid, result in recorded:
        if (nodeid, id(result)) in seen:
            continue  # the same value recorded twice by one test (memoized checks return the same object)
        seen.add((nodeid, id(result)))
        kind = kinds[id(result)]
        if kind == "HeadScores":
            claims = [c for n, c in recorded
                      if n == nodeid and kinds[id(c)] == "HeadRoleResult" and _same_table(c, result)]
            plots.append(head_scores_heatmap(result, claims=claims, nodeid=nodeid))
        elif kind == "HeadRoleResult":
            if any(n == nodeid and _same_table(result, t) for n, t in tables):
                continue  # boxed on its table's heatmap
            plots.append(head_role_bars(result, nodeid=nodeid))
        elif kind == "SweepResult":
            plots.append(sweep_bars(result, nodeid=nodeid))
        elif kind == "NecessityResult":
            plots.append(necessity_bars(result, nodeid=nodeid))
    return plots


def _same_table(claim: Any, table: Any) -> bool:
    return (claim.role, claim.model_id, claim.inputs) == (table.role, table.model_id, table.inputs)


__all__ = [
    "Plot",
    "head_role_bars",
    "head_scores_heatmap",
    "necessity_bars",
    "plots_for_results",
    "sweep_bars",
    "trajectory_plot",
]
