"""The pytest-annotate benchmark: one command, results in bench/RESULTS.md.

    ./venv-run python bench/run.py [--threads 1] [--runs 3] [--quick]

What a user waits for is the whole process, so every figure starts when the interpreter starts and
ends when it exits. The machine may be shared, so targets are ratios measured in one run:

(a) suite: ``pytest behaviours/`` on the default embedded model, ``--runs`` times (median and
    spread), split into interpreter and imports, collection, model load, forward passes and
    everything else; its ratio to the *floors*: a bare ``import torch, transformer_lens``, a bare
    warm load, and the forward floor (the distinct forward passes the suite executed, replayed once
    each, batched as the suite batched them). Also one run with an empty cache (the first run).
(b) sweep: the batched sweep over every block, attention layer, MLP and head vs. two loops of one
    pass per component: the *fair* loop unembeds only the answer position, as the batched sweep and
    a careful user do; the *naive* loop unembeds every position (Gemma: 262,144 logits a position).
    Both must agree with the batched sweep within ``BATCH_ATOL``.
(c) load time: cold (GGUF conversion into an empty cache) and warm loads of each embedded model.
(d) peak RSS of the suite, warm and cold, vs. the model's own weights plus one full activation cache.
(e) how suite wall time grows with the number of behaviours, the prompt length and the model.
(f) a family claim over 32 items vs. the same claim on one prompt.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PROMPT, ANSWER = "January February March April", " May"


def _versions() -> str:
    v = {d: importlib.metadata.version(d) for d in ("torch", "transformer-lens", "transformers", "pytest")}
    return ", ".join(f"{k} {x}" for k, x in v.items())


def _machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu}), Python {platform.python_version()}"


def _python(code: str, env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _median_spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.median(values):.1f} ({min(values):.1f}–{max(values):.1f})"


# --------------------------------------------------------------------------- floors and loads

IMPORT_CODE = """
import json, time
t0 = time.perf_counter()
import torch, transformer_lens
print(json.dumps(dict(wall=time.perf_counter() - t0)))
"""

LOAD_CODE = """
import json, resource, time
t0 = time.perf_counter()
import torch, transformer_lens
torch.set_num_threads({threads})
t1 = time.perf_counter()
import pytest_annotate
lab = pytest_annotate.load_model({name!r}, device="cpu")
t2 = time.perf_counter()
print(json.dumps(dict(wall=t2 - t0, imports=t1 - t0, load=t2 - t1, stages=lab.timing.__dict__,
                      peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))
"""


def bench_imports(runs: int) -> list[float]:
    return [_python(IMPORT_CODE, {})["wall"] for _ in range(runs)]


def bench_load(threads: int, quick: bool) -> list[dict]:
    rows = []
    for name in ("gemma-3-270m", "smollm2-135m"):
        _python(LOAD_CODE.format(threads=threads, name=name), {})  # the shared cache is filled
        with tempfile.TemporaryDirectory() as cold_cache:
            kinds = ([] if quick else [("cold", {"PYTEST_ANNOTATE_CACHE": cold_cache})]) + [("warm", {}), ("warm", {})]
            for label, env in kinds:
                rows.append({"model": name, "kind": label, **_python(LOAD_CODE.format(threads=threads, name=name), env)})
    return rows


# --------------------------------------------------------------------------- the suite

def run_suite(threads: int, *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> dict:
    """One ``pytest`` process, timed from before the interpreter starts to after it exits."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        record = fh.name
    # HYPOTHESIS_PROFILE=ci: derandomized, so every run of the benchmark draws the same examples.
    full_env = {**os.environ, "BENCH_RECORD": record, "HYPOTHESIS_PROFILE": "ci",
                "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", **(env or {})}
    t_spawn = time.time()
    proc = subprocess.run([sys.executable, "-m", "pytest", *args, "-q", "-p", "record_forwards", "--threads",
                           str(threads), "-p", "no:randomly"], cwd=cwd, env=full_env, check=False,
                          capture_output=True, text=True)
    t_exit = time.time()
    try:
        rec = json.loads(Path(record).read_text())
    except (OSError, ValueError):
        raise SystemExit(f"pytest {' '.join(args)} wrote no record:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    finally:
        Path(record).unlink(missing_ok=True)
    st = rec["stamps"]
    wall = t_exit - t_spawn
    forwards = sum(p["seconds"] for p in rec["passes"])
    phases = {
        "interpreter and imports": st["session_start"] - t_spawn,
        "collection": st["collection_end"] - st["session_start"],
        "model load": rec["load_s"],
        "forward passes": forwards,
    }
    phases["everything else"] = wall - sum(phases.values())
    return {**rec, "process_wall_s": wall, "phases": phases, "tail": proc.stdout.strip().splitlines()[-1:]}


def forward_floor(passes: list[dict], threads: int) -> tuple[float, int, float]:
    """Replay once each distinct forward the suite executed: same batch, length and kind (full logits,
    cache of the same hook names, answer positions only, stopped before the unembedding), on
    random tokens. Repeats (memo evictions) are overhead and are not replayed.

    Returns (seconds, passes replayed, MB of one full activation cache of the longest prompt).
    """
    import torch

    import pytest_annotate

    torch.set_num_threads(threads)
    lab = pytest_annotate.load_model("gemma-3-270m", device="cpu")
    gen = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        lab.bridge(torch.randint(1000, 20000, (1, 8), generator=gen))  # warm-up
        distinct = [p for p in passes if not p["repeat"]]
        total, n = _replay(lab, distinct, gen), len(distinct)
        longest = max((p["positions"] for p in passes), default=8)
        _, cache = lab.bridge.run_with_cache(torch.randint(1000, 20000, (1, longest), generator=gen))
        cache_mb = sum(v.numel() * v.element_size() for v in cache.values()) / 2**20
    return total, n, cache_mb


# --------------------------------------------------------------------------- sweeps

def bench_sweep(threads: int) -> dict:
    import torch

    import pytest_annotate
    from pytest_annotate.interventions.ablations import ablate
    from pytest_annotate.interventions.components import all_components
    from pytest_annotate.scoring.answers import score_answer
    from pytest_annotate.scoring.sweeps import BATCH_ATOL, score_interventions, sweep

    torch.set_num_threads(threads)
    lab = pytest_annotate.load_model("gemma-3-270m", device="cpu")
    kinds = ("block", "attn", "mlp", "head")
    score_answer(lab, PROMPT, ANSWER)  # the clean run, shared by all three
    lab.clear_memo()
    t0 = time.perf_counter()
    batched = {k: sweep(lab, PROMPT, ANSWER, k) for k in kinds}
    t_batched = time.perf_counter() - t0
    passes_batched = sum(r.forward_passes for r in batched.values())
    components = [(k, c) for k in kinds for c in all_components(lab, k)]

    def loop(score) -> tuple[float, float]:
        lab.clear_memo()
        t0 = time.perf_counter()
        values = {}
        with torch.inference_mode():
            for k, c in components:
                values[(k, str(c))] = score(ablate(lab, c, "zero"))
        seconds = time.perf_counter() - t0
        return seconds, max(abs(batched[k][c].log_prob - v) for (k, c), v in values.items())

    # Fair: one pass per component through the same engine, unembedding the answer position only.
    t_fair, diff_fair = loop(lambda iv: score_interventions(lab, PROMPT, ANSWER, [iv]).scores[0].joint_logprob)
    # Naive: one full forward per component, every position unembedded.
    t_naive, diff_naive = loop(lambda iv: iv.score(lab, PROMPT, ANSWER).joint_logprob)
    return {"components": len(components), "batched_s": t_batched, "batched_passes": passes_batched,
            "fair_s": t_fair, "naive_s": t_naive, "fair_speedup": t_fair / t_batched,
            "naive_speedup": t_naive / t_batched, "diff_fair": diff_fair, "diff_naive": diff_naive,
            "atol": BATCH_ATOL}


# --------------------------------------------------------------------------- scaling

SCALING_TEST = '''
import pytest
from pytest_annotate import check_top_token

PROMPTS = {prompts!r}

@pytest.mark.parametrize("i", range(len(PROMPTS)))
def test_top_token(model, i):
    check_top_token(model, PROMPTS[i], " the")
'''


def _scaling_prompts(n: int, words: int) -> list[str]:
    vocab = "alpha beta gamma delta river stone cloud paper glass north south light night music table green".split()
    return [" ".join(vocab[(i * 7 + j * 3) % len(vocab)] for j in range(words)) + f" {i}" for i in range(n)]


def bench_scaling(threads: int) -> list[dict]:
    """Suite wall time against the number of behaviours, the prompt length and the model."""
    models = [("induction series (2 layers)", str(ROOT / "examples" / "induction_series" / "checkpoints"),
               ["--checkpoint", "3500"]),
              ("smollm2-135m", "smollm2-135m", []), ("gemma-3-270m", "gemma-3-270m", [])]
    rows = []
    for label, model, extra in models:
        for n, words in ((8, 12), (32, 12), (8, 96)):
            with tempfile.TemporaryDirectory() as tmp:
                Path(tmp, "test_scaling.py").write_text(SCALING_TEST.format(prompts=_scaling_prompts(n, words)))
                Path(tmp, "pytest.ini").write_text("[pytest]\n")
                r = run_suite(threads, "test_scaling.py", f"--model={model}", "--device", "cpu", *extra, cwd=Path(tmp))
            rows.append({"model": label, "tests": n, "words": words, "wall": r["process_wall_s"],
                         "load": r["load_s"], "forwards": r["phases"]["forward passes"],
                         "per_test": (r["process_wall_s"] - r["phases"]["interpreter and imports"] - r["load_s"]) / n,
                         "exit": r["exitstatus"]})
    return rows


# --------------------------------------------------------------------------- family claims

FAMILY_SIZE = 32


def bench_family(threads: int, repeats: int = 3) -> list[dict]:
    """Wall time of a claim over 32 items vs. the same claim on one prompt (median of ``repeats``)."""
    import statistics

    import torch

    import pytest_annotate as pa
    from pytest_annotate.families import windows

    torch.set_num_threads(threads)
    lab = pa.load_model("gemma-3-270m", device="cpu")
    family = windows("months-w3-5", "months", (3, 4, 5)).sample(FAMILY_SIZE)
    claims = {
        "top-1 rate": (
            lambda: pa.check_top_token_rate(lab, family, min_rate=0.5, split="all"),
            lambda: pa.check_top_token(lab, PROMPT, ANSWER),
        ),
        "necessity of L3, 5 random blocks as controls (zero ablation)": (
            lambda: pa.check_necessity_family(lab, family, "L3", ablation="zero", split="all"),
            lambda: pa.check_necessity(lab, PROMPT, ANSWER, "L3", ablation="zero"),
        ),
    }
    rows = []
    for name, (over_family, one_prompt) in claims.items():
        over_family(), one_prompt()  # warm-up: first-call costs belong to neither
        times: dict[str, list[float]] = {"family": [], "single": [], "family_bare": [], "single_bare": []}
        shapes: dict[str, list] = {}
        for _ in range(repeats):  # interleaved, so that load on a shared machine hits both alike
            for which, fn in (("family", over_family), ("single", one_prompt)):
                lab.clear_memo()  # the single-prompt check would otherwise answer from the memo
                before = len(lab.stats.passes)
                t0 = time.perf_counter()
                fn()
                times[which].append(time.perf_counter() - t0)
                shapes[which] = lab.stats.passes[before:]
                times[f"{which}_bare"].append(_bare_passes(lab, shapes[which]))
        fam, one = statistics.median(times["family"]), statistics.median(times["single"])
        fam_bare, one_bare = statistics.median(times["family_bare"]), statistics.median(times["single_bare"])
        rows.append({"claim": name, "items": len(family), "family_s": fam, "family_passes": len(shapes["family"]),
                     "family_rows": sum(p.batch for p in shapes["family"]),
                     "family_padded": sum(p.batch * p.positions for p in shapes["family"]),
                     "single_s": one, "single_passes": len(shapes["single"]),
                     "single_rows": sum(p.batch for p in shapes["single"]), "ratio": fam / one,
                     "family_bare_s": fam_bare, "single_bare_s": one_bare, "bare_ratio": fam_bare / one_bare,
                     "family_tokens": sum(len(lab.tokens(it.prompt)) for it in family),
                     "single_tokens": len(lab.tokens(PROMPT))})
    return rows


def _bare_passes(lab, passes) -> float:
    """Seconds to run forward passes of these shapes and kinds bare (:func:`_replay`): the floor under a
    claim's forward passes, with none of its machinery."""
    import dataclasses

    import torch

    with torch.inference_mode():
        return _replay(lab, [dataclasses.asdict(p) for p in passes], torch.Generator().manual_seed(0))


def _replay(lab, passes: list[dict], gen) -> float:
    """Seconds to run each recorded pass (``ForwardPass`` fields) again on random tokens: same batch,
    length and kind (full logits, a cache of the same hook names, answer positions only, or stopped
    before the unembedding), with no other hook."""
    import torch

    from pytest_annotate.scoring.head_scores import _stop
    from pytest_annotate.scoring.sweeps import _keep_last_positions

    total = 0.0
    for p in passes:
        toks = torch.randint(1000, 20000, (p["batch"], p["positions"]), generator=gen)
        t0 = time.perf_counter()
        if p["kind"] == "cache":
            names = None if p["names"] is None else (lambda name, _n=frozenset(p["names"]): name in _n)
            lab.bridge.run_with_cache(toks, names_filter=names)
        elif p["kind"] == "answer_logits":
            keep = _keep_last_positions(p["answer_positions"])
            lab.bridge.run_with_hooks(toks, fwd_hooks=[("unembed.hook_in", keep)])
        elif p["kind"] == "no_unembed":
            lab.bridge.run_with_hooks(toks, fwd_hooks=[("unembed.hook_in", _stop)])
        else:
            lab.bridge(toks)
        total += time.perf_counter() - t0
    return total


def family_table(rows: list[dict]) -> list[str]:
    lines = [
        f"## (f) A claim over {FAMILY_SIZE} items vs. the same claim on one prompt (target <= 3x)", "",
        "Every item judged (`split=\"all\"`), median of 3 interleaved repeats after a warm-up. Tokens: the prompts' "
        "tokens, BOS included (the family's in all, the one prompt's). Rows: the rows of the forward passes (item x "
        "intervention: the clean run, the component and each control). Bare floor: the same passes' shapes run "
        "with random tokens and no hook but the answer slice, i.e. the forward passes alone, with none of the "
        "claim's machinery; when the claim's ratio is the floor's, the difference is compute.", "",
        "| claim | items | family (s) | passes, rows, padded tokens | one prompt (s) | passes, rows | ratio | "
        "bare floor: family / one prompt (s) | floor ratio | tokens: family / one prompt |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {r['claim']} | {r['items']} | {r['family_s']:.2f} | {r['family_passes']}, {r['family_rows']}, "
              f"{r['family_padded']} | {r['single_s']:.2f} | {r['single_passes']}, {r['single_rows']} | "
              f"**{r['ratio']:.1f}x** | {r['family_bare_s']:.2f} / {r['single_bare_s']:.2f} | {r['bare_ratio']:.1f}x | "
              f"{r['family_tokens']} / {r['single_tokens']} = {r['family_tokens'] / r['single_tokens']:.0f}x |"
              for r in rows]
    return lines


# --------------------------------------------------------------------------- report

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3, help="warm runs of the suite (median and spread)")
    ap.add_argument("--quick", action="store_true", help="skip the cold loads and the cold suite run")
    ap.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    ap.add_argument("--family-only", action="store_true", help="run only (f), print it, write nothing")
    args = ap.parse_args()
    if args.family_only:
        print("\n".join(family_table(bench_family(args.threads))))
        return
    load_avg = os.getloadavg()[0]

    loads = bench_load(args.threads, args.quick)
    imports = bench_imports(args.runs)
    suites = [run_suite(args.threads, "behaviours/") for _ in range(args.runs)]
    cold = None
    if not args.quick:
        with tempfile.TemporaryDirectory() as cold_cache:
            cold = run_suite(args.threads, "behaviours/", env={"PYTEST_ANNOTATE_CACHE": cold_cache})
    floor_s, distinct, cache_mb = forward_floor(suites[0]["passes"], args.threads)
    sweep_r = bench_sweep(args.threads)
    scaling = bench_scaling(args.threads)
    family = bench_family(args.threads)

    import_s = statistics.median(imports)
    warm_load_s = statistics.median([r["load"] for r in loads if r["model"] == "gemma-3-270m" and r["kind"] == "warm"])
    walls = [s["process_wall_s"] for s in suites]
    floors = import_s + warm_load_s + floor_s
    ratios = [w / floors for w in walls]
    weights_mb = suites[0]["weights_mb"]
    budget = weights_mb + cache_mb

    lines = [
        "# Benchmark results", "",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"- machine: {_machine()}; load average at start {load_avg:.1f}",
        f"- versions: {_versions()}",
        f"- threads: {args.threads}; command: `./venv-run python bench/run.py --threads {args.threads} --runs {args.runs}"
        f"{' --quick' if args.quick else ''}`" + ("; --quick: no cold loads, no cold suite run" if args.quick else ""),
        "- every time below is wall-clock, from the interpreter's start to its exit unless a row says otherwise", "",
        f"## (a) `pytest behaviours/` (default model), {args.runs} warm runs: process wall over the floors (target <= 1.3)", "",
        "| process wall (s) | floors (s) = import + warm load + forward floor | ratio (median, min–max) | exit |",
        "|---|---|---|---|",
        f"| {_median_spread(walls)} | {floors:.1f} = {import_s:.1f} + {warm_load_s:.1f} + {floor_s:.1f} | "
        f"**{statistics.median(ratios):.2f}** ({min(ratios):.2f}–{max(ratios):.2f}) | "
        f"{', '.join(str(s['exitstatus']) for s in suites)} |", "",
        "Where the process's time goes (median of the runs, seconds):", "",
        "| " + " | ".join(suites[0]["phases"]) + " |", "|" + "---|" * len(suites[0]["phases"]),
        "| " + " | ".join(_median_spread([s["phases"][k] for s in suites]) for k in suites[0]["phases"]) + " |", "",
        f"Forward passes: {suites[0]['requested']} requested, {suites[0]['executed']} executed "
        f"({distinct} distinct, {suites[0]['repeats']} repeats after memo evictions); the forward floor replays the "
        f"distinct ones bare in {floor_s:.1f} s. The bare `import torch, transformer_lens` takes {import_s:.1f} s, "
        f"the bare warm load of Gemma 3 270M {warm_load_s:.1f} s (after those imports).", "",
    ]
    if cold is not None:
        lines += [
            "First run, empty cache (GGUF conversion and first compat processing included):", "",
            "| process wall (s) | model load (s) | of which conversion (s) | peak RSS (MB) | exit |",
            "|---|---|---|---|---|",
            f"| {cold['process_wall_s']:.1f} | {cold['load_s']:.1f} | {cold['convert_s']:.1f} | "
            f"{cold['peak_rss_mb']:.0f} | {cold['exitstatus']} |", "",
        ]
    lines += [
        "## (b) Sweep over every block, attention layer, MLP and head: batched vs. one pass per component "
        f"(target >= 5x over the fair loop; agreement within BATCH_ATOL = {sweep_r['atol']:g})", "",
        "| components | batched (s, passes) | fair loop (s): answer position unembedded | speed-up | "
        "naive loop (s): every position unembedded | speed-up | max abs diff fair / naive (log-prob) |",
        "|---|---|---|---|---|---|---|",
        f"| {sweep_r['components']} | {sweep_r['batched_s']:.1f} ({sweep_r['batched_passes']}) | {sweep_r['fair_s']:.1f} | "
        f"**{sweep_r['fair_speedup']:.1f}x** | {sweep_r['naive_s']:.1f} | {sweep_r['naive_speedup']:.1f}x | "
        f"{sweep_r['diff_fair']:.1e} / {sweep_r['diff_naive']:.1e} |", "",
        "The fair loop is what a careful user writes (the same engine, one component a pass); the naive loop, "
        "which earlier versions of this benchmark compared against, also pays for unembedding every position "
        "into Gemma's 262,144-token vocabulary, so part of its gap is that slicing, not batching.", "",
        "## (c) Load time (cold target <= 25 s, warm <= 6.1 s for gemma-3-270m)", "",
        "| model | kind | process wall (s) | imports | load | convert | HF load | boot | processing | peak RSS (MB) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in loads:
        st = r["stages"]
        lines.append(f"| {r['model']} | {r['kind']} | {r['wall']:.1f} | {r['imports']:.1f} | {r['load']:.1f} | "
                     f"{st['convert']:.1f} | {st['hf_load']:.1f} | {st['boot']:.1f} | {st['processing']:.1f} | "
                     f"{r['peak_rss_mb']:.0f} |")
    lines += [
        "", "## (d) Peak memory of the suite (target <= 1.5 x (weights + one full cache))", "",
        "| run | peak RSS (MB) | weights (MB) | one full cache (MB) | ratio to weights+cache |",
        "|---|---|---|---|---|",
        f"| warm | {max(s['peak_rss_mb'] for s in suites):.0f} | {weights_mb:.0f} | {cache_mb:.0f} | "
        f"**{max(s['peak_rss_mb'] for s in suites) / budget:.2f}** |",
    ]
    if cold is not None:
        lines.append(f"| cold | {cold['peak_rss_mb']:.0f} | {weights_mb:.0f} | {cache_mb:.0f} | "
                     f"**{cold['peak_rss_mb'] / budget:.2f}** |")
    lines += [
        "", "## (e) How suite wall time grows", "",
        "One generated test file of top-token checks (distinct prompts), one process each; per test = (process "
        "wall - interpreter and imports - load) / tests.", "",
        "| model | tests | words per prompt | process wall (s) | load (s) | forwards (s) | per test (s) | exit |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in scaling:
        lines.append(f"| {r['model']} | {r['tests']} | {r['words']} | {r['wall']:.1f} | {r['load']:.1f} | "
                     f"{r['forwards']:.1f} | {r['per_test']:.2f} | {r['exit']} |")
    lines += ["", *family_table(family), ""]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
