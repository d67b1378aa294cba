"""The pytest-annotate benchmark: one command, results in bench/RESULTS.md.

    ./venv-run python bench/run.py [--threads 1] [--quick]

It measures, as ratios where it can (the machine may be shared, so absolute times move):

(a) suite overhead: wall time of ``pytest behaviours/`` on the default embedded model, minus the
    model load, divided by the *forward floor*: the time to run, once each, the forward passes the
    suite actually executed (logged by an instrumented run), batched as the suite batched them.
(b) necessity sweep: the batched sweep over every block, attention layer, MLP and head vs. the
    one-pass-per-component loop (as TransformerLens's ``patching`` helpers and the source notebook
    do), on the same prompt; results must agree to 1e-5.
(c) load time: cold (GGUF conversion, into an empty cache) and warm loads of each embedded model.
(d) peak RSS of the suite vs. the model's own weights plus one full activation cache.
(e) family claims: a claim over 32 items (one batched pass per token length) vs. the same claim on
    one prompt, measured side by side (``--family-only`` runs just this and prints its table).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import platform
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


LOAD_CODE = """
import json, resource, time, torch
torch.set_num_threads({threads})
t0, c0 = time.perf_counter(), time.process_time()
import pytest_annotate
lab = pytest_annotate.load_model({name!r}, device="cpu")
print(json.dumps(dict(wall=time.perf_counter() - t0, cpu=time.process_time() - c0, stages=lab.timing.__dict__,
                      peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))
"""


def bench_load(threads: int, quick: bool) -> list[dict]:
    rows = []
    for name in ("gemma-3-270m", "smollm2-135m"):
        with tempfile.TemporaryDirectory() as cold_cache:
            for label, env in ((("cold", {"PYTEST_ANNOTATE_CACHE": cold_cache}),) if not quick else ()) + (
                ("warm", {}), ("warm", {})
            ):
                if label == "warm":
                    _python(LOAD_CODE.format(threads=threads, name=name), {})  # make sure the cache is filled
                r = _python(LOAD_CODE.format(threads=threads, name=name), env)
                rows.append({"model": name, "kind": label, **r})
    return rows


def bench_suite(threads: int) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        record = fh.name
    # HYPOTHESIS_PROFILE=ci: derandomized, so every run of the benchmark draws the same examples.
    env = {**os.environ, "BENCH_RECORD": record, "HYPOTHESIS_PROFILE": "ci",
           "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pytest", "behaviours/", "-q", "-p", "record_forwards", "--threads",
                    str(threads), "-p", "no:randomly"], cwd=ROOT, env=env, check=False, capture_output=True)
    wall = time.perf_counter() - t0
    rec = json.loads(Path(record).read_text())
    rec["process_wall_s"] = wall
    return rec


def forward_floor(passes: list[dict], threads: int) -> tuple[float, int, float]:
    """Replay once each distinct forward the suite executed: same batch, length and kind (full logits,
    cache of the same hook names, answer positions only, stopped before the unembedding), on
    random tokens. Repeats (memo evictions) are overhead and are not replayed.

    Returns (seconds, passes replayed, MB of one full activation cache of the longest prompt).
    """
    import torch

    import pytest_annotate
    from pytest_annotate.scoring.head_scores import _stop
    from pytest_annotate.scoring.sweeps import _keep_last_positions

    torch.set_num_threads(threads)
    lab = pytest_annotate.load_model("gemma-3-270m", device="cpu")
    gen = torch.Generator().manual_seed(0)
    total, n = 0.0, 0
    with torch.inference_mode():
        lab.bridge(torch.randint(1000, 20000, (1, 8), generator=gen))  # warm-up
        for p in passes:
            if p["repeat"]:
                continue
            toks = torch.randint(1000, 20000, (p["batch"], p["positions"]), generator=gen)
            t0 = time.perf_counter()
            if p["kind"] == "cache":
                names = None if p["names"] is None else (lambda name, _n=frozenset(p["names"]): name in _n)
                lab.bridge.run_with_cache(toks, names_filter=names)
            elif p["kind"] == "answer_logits":
                lab.bridge.run_with_hooks(toks, fwd_hooks=[("unembed.hook_in",
                                                            _keep_last_positions(p["answer_positions"]))])
            elif p["kind"] == "no_unembed":
                lab.bridge.run_with_hooks(toks, fwd_hooks=[("unembed.hook_in", _stop)])
            else:
                lab.bridge(toks)
            total += time.perf_counter() - t0
            n += 1
        longest = max((p["positions"] for p in passes), default=8)
        _, cache = lab.bridge.run_with_cache(torch.randint(1000, 20000, (1, longest), generator=gen))
        cache_mb = sum(v.numel() * v.element_size() for v in cache.values()) / 2**20
    return total, n, cache_mb


def bench_sweep(threads: int) -> dict:
    import torch

    import pytest_annotate
    from pytest_annotate.interventions.ablations import ablate
    from pytest_annotate.scoring.answers import score_answer
    from pytest_annotate.interventions.components import all_components
    from pytest_annotate.scoring.sweeps import sweep

    torch.set_num_threads(threads)
    lab = pytest_annotate.load_model("gemma-3-270m", device="cpu")
    kinds = ("block", "attn", "mlp", "head")
    score_answer(lab, PROMPT, ANSWER)  # the clean run, shared by both
    lab.clear_memo()
    t0 = time.perf_counter()
    batched = {k: sweep(lab, PROMPT, ANSWER, k) for k in kinds}
    t_batched = time.perf_counter() - t0
    passes_batched = sum(r.forward_passes for r in batched.values())
    lab.clear_memo()
    t0 = time.perf_counter()
    loop = {}
    n = 0
    for k in kinds:
        for c in all_components(lab, k):
            iv = ablate(lab, c, "zero")
            with torch.inference_mode():
                loop[(k, str(c))] = iv.score(lab, PROMPT, ANSWER).joint_logprob
            n += 1
    t_loop = time.perf_counter() - t0
    diff = max(abs(batched[k][c].log_prob - v) for (k, c), v in loop.items())
    return {"components": n, "batched_s": t_batched, "loop_s": t_loop, "speedup": t_loop / t_batched,
            "batched_passes": passes_batched, "loop_passes": n, "max_abs_diff": diff}


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
        times: dict[str, list[float]] = {"family": [], "single": []}
        passes: dict[str, int] = {}
        for _ in range(repeats):  # interleaved, so that load on a shared machine hits both alike
            for which, fn in (("family", over_family), ("single", one_prompt)):
                lab.clear_memo()  # the single-prompt check would otherwise answer from the memo
                before = lab.stats.executed
                t0 = time.perf_counter()
                fn()
                times[which].append(time.perf_counter() - t0)
                passes[which] = lab.stats.executed - before
        fam, one = statistics.median(times["family"]), statistics.median(times["single"])
        rows.append({"claim": name, "items": len(family), "family_s": fam, "family_passes": passes["family"],
                     "single_s": one, "single_passes": passes["single"], "ratio": fam / one})
    return rows


def family_table(rows: list[dict]) -> list[str]:
    lines = [
        f"## (e) A claim over {FAMILY_SIZE} items vs. the same claim on one prompt (target <= 3x)", "",
        "| claim | items | family (s) | passes | one prompt (s) | passes | ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {r['claim']} | {r['items']} | {r['family_s']:.2f} | {r['family_passes']} | {r['single_s']:.2f} | "
              f"{r['single_passes']} | **{r['ratio']:.1f}x** |" for r in rows]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="skip the cold loads (each converts a GGUF: minutes)")
    ap.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    ap.add_argument("--family-only", action="store_true", help="run only (e), print it, write nothing")
    args = ap.parse_args()
    if args.family_only:
        print("\n".join(family_table(bench_family(args.threads))))
        return

    loads = bench_load(args.threads, args.quick)
    suite = bench_suite(args.threads)
    floor_s, distinct, cache_mb = forward_floor(suite["passes"], args.threads)
    sweep_r = bench_sweep(args.threads)
    family_rows = bench_family(args.threads)

    suite_s = suite["session_s"] - suite["load_s"]
    overhead = suite_s / floor_s if floor_s else float("nan")
    in_situ = sum(p["seconds"] for p in suite["passes"])
    mem_budget = 1.5 * (suite["weights_mb"] + cache_mb)
    lines = [
        "# Benchmark results", "",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"- machine: {_machine()}; load average at start {os.getloadavg()[0]:.1f}",
        f"- versions: {_versions()}",
        f"- threads: {args.threads}; command: `./venv-run python bench/run.py --threads {args.threads}`", "",
        "## (a) Suite overhead over the forward floor (target <= 1.3)", "",
        "| suite wall (s, excl. load) | forward floor (s) | ratio | forwards requested | executed | distinct | "
        "repeats (memo evictions) | sequences | exit |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {suite_s:.1f} | {floor_s:.1f} | **{overhead:.2f}** | {suite['requested']} | {suite['executed']} | "
        f"{distinct} | {suite['repeats']} | {suite['executed_rows']} | {suite['exitstatus']} |", "",
        f"Where the rest goes: the same passes took {in_situ:.1f} s inside the suite (hooks, caches and "
        f"interventions included) against {floor_s:.1f} s replayed bare; the other {suite_s - in_situ:.1f} s are "
        "collection, tokenization, the checks' own arithmetic on the logits, snapshots and the per-test "
        "isolation checks.", "",
        "## (b) Necessity sweep: batched vs. one pass per component (target >= 5x, equal to 1e-5)", "",
        "| components | batched (s) | passes | loop (s) | passes | speed-up | max abs diff (log-prob) |",
        "|---|---|---|---|---|---|---|",
        f"| {sweep_r['components']} | {sweep_r['batched_s']:.1f} | {sweep_r['batched_passes']} | {sweep_r['loop_s']:.1f} | "
        f"{sweep_r['loop_passes']} | **{sweep_r['speedup']:.1f}x** | {sweep_r['max_abs_diff']:.1e} |", "",
        "## (c) Load time (warm target <= 10 s for gemma-3-270m)", "",
        "| model | kind | wall (s) | CPU (s) | convert | HF load | boot | processing | peak RSS (MB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in loads:
        st = r["stages"]
        lines.append(f"| {r['model']} | {r['kind']} | {r['wall']:.1f} | {r['cpu']:.1f} | {st['convert']:.1f} | "
                     f"{st['hf_load']:.1f} | {st['boot']:.1f} | {st['processing']:.1f} | {r['peak_rss_mb']:.0f} |")
    lines += [
        "", "## (d) Peak memory of the suite (target <= 1.5 x (weights + one full cache))", "",
        "| peak RSS (MB) | weights (MB) | one full cache (MB) | budget (MB) | ratio to weights+cache |",
        "|---|---|---|---|---|",
        f"| {suite['peak_rss_mb']:.0f} | {suite['weights_mb']:.0f} | {cache_mb:.0f} | {mem_budget:.0f} | "
        f"**{suite['peak_rss_mb'] / (suite['weights_mb'] + cache_mb):.2f}** |", "",
        *family_table(family_rows), "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
