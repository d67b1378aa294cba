"""Write the published GPT-2 small / Pythia figures as the committed snapshot baseline.

The hub is unreachable where these behaviours were written, so their snapshots cannot be
recorded by running the models. This script writes, in the snapshot extension's own format,
the numbers the sources published (seeds 000 to 003 of ``behaviours/SOURCES.md``), each file
marked with a comment line saying they are published values, not yet re-measured. A run on the
real model compares against them within the tests' tolerances; ``--snapshot-update`` replaces
them with measured values (and drops the comment).

Each value is built with the behaviour's own :class:`~pytest_annotate.Projection` (its
``record(...)`` from the published numbers), so the file holds exactly the fields, names and
kinds that the test's ``PROJECTION.of(result)`` compares against.

    python tools/write_published_snapshots.py           # rewrites the files; idempotent
    python tools/write_published_snapshots.py --check   # exit 1 if a file differs from what it would write
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from pytest_annotate.snapshot.extension import file_safe
from pytest_annotate.snapshot.serialize import flatten
from pytest_annotate.snapshot.textformat import SnapshotHeader, dumps

ROOT = Path(__file__).resolve().parent.parent


def _load(path: str):
    folder = str((ROOT / path).parent)
    sys.path.insert(0, folder)
    try:
        spec = importlib.util.spec_from_file_location(Path(path).stem, ROOT / path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up while building the class
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(folder)


def render(model_id: str, test_file: str, name: str, value: object, source: str) -> tuple[Path, str]:
    """One snapshot file's path (``snapshots/<model_id>/<test file minus .py>/<name>.snap``) and text."""
    test = name.split(".")[0] if "[" not in name else name.rsplit("]", 1)[0] + "]"
    header = SnapshotHeader(model=model_id, dtype="float32", test=f"{test_file}::{test}", type=type(value).__name__)
    text = dumps(header, flatten(value))
    head, body = text.split("\n\n", 1)
    note = f"# published values ({source}), not yet re-measured\n"
    path = ROOT / "snapshots" / model_id / Path(test_file).with_suffix("") / f"{file_safe(name, 250)}.snap"
    return path, f"{head}\n\n{note}{body}"


def published() -> list[tuple[Path, str]]:
    """Every published-baseline file, as :func:`render` makes it."""
    files: list[tuple[Path, str]] = []
    # --- GPT-2 small, seed 001 (counting) and seed 003 (induction)
    counting_file = "behaviours/gpt2_small/test_gpt2_counting.py"
    counting = _load(counting_file)
    for row in counting.PUBLISHED:
        files.append(render("gpt2-small", counting_file, f"test_counting_prediction[{row.id}]", row.published,
                            f"seed 001, row {row.row}"))
    induction_file = "behaviours/gpt2_small/test_gpt2_induction.py"
    ind = _load(induction_file)
    source = "seed 003"
    files += [
        render("gpt2-small", induction_file, "test_l5h5_is_the_top_induction_head",
               ind.HEAD_SCORE.record(head="L5H5", role="induction", rank=0, score=0.91), source),
        render("gpt2-small", induction_file, "test_l4h11_is_the_previous_token_head",
               ind.HEAD_RANK.record(head="L4H11", role="previous_token", rank=0), source),
        render("gpt2-small", induction_file, "test_repeated_half_is_predicted",
               ind.REPEATED_SEQUENCE.record(first_half_log_prob=-13.898, second_half_log_prob=-0.644,
                                            first_half_accuracy=0.0, second_half_accuracy=0.93), source),
        render("gpt2-small", induction_file, "test_k_composition_circuit_of_l4h11_and_l5h5",
               ind.K_COMPOSITION.record(prev_head="L4H11", ind_head="L5H5", accuracy=0.2283), source),
    ]
    # --- Pythia-70m, seed 002 (head_df rows and the test_prompt printout)
    roles_file = "behaviours/pythia_70m/test_pythia70m_head_roles.py"
    roles = _load(roles_file)
    source = "seed 002"
    top3 = [(",", 21.60, 0.2710), (" and", 20.92, 0.1378), (".", 20.90, 0.1350)]
    files += [
        render("pythia-70m", roles_file, "test_l3h0_is_the_most_inductive_mover",
               roles.MOVER_SCORES.record(role="induction", L3H3=0.086132, L4H2=0.152611, L3H0=0.394634), source),
        render("pythia-70m", roles_file, "test_l3h3_copies_its_input_token",
               roles.MOVER_SCORES.record(role="copying, vocab basis", L3H3=0.997116, L4H2=0.975877, L3H0=0.926991),
               source),
        render("pythia-70m", roles_file, "test_l3h3_copies_its_input_token.1",
               roles.MOVER_SCORES.record(role="copying, residual basis", L3H3=0.499663, L4H2=-0.095355,
                                         L3H0=-0.230723), source),
        render("pythia-70m", roles_file, "test_ioi_prompt_is_not_solved",
               roles.TOP3.of({"top_tokens": [dict(zip(("token", "logit", "prob"), t)) for t in top3]}), source),
    ]
    # --- Pythia-160m-deduped, raw numerics, seed 000
    dublin_file = "behaviours/pythia_160m/test_pythia160m_dublin.py"
    dublin = _load(dublin_file)
    source = "seed 000"
    top5 = [(" the", 786.61, 0.2266), (" a", 784.93, 0.0422), (" Belfast", 784.57, 0.0294),
            (" Dublin", 784.47, 0.0267), (" now", 784.44, 0.0259)]
    files += [
        render("pythia-160m-deduped+raw", dublin_file, "test_dublin_is_fourth_after_the_capital_of_ireland_is",
               dublin.ANSWER.record(token=" Dublin", rank=3, logit=784.47, prob=0.0267), source),
        render("pythia-160m-deduped+raw", dublin_file, "test_top5_predictions",
               dublin.TOP5.record(top=tuple(dublin.TOKEN.record(token=t, logit=logit, prob=p) for t, logit, p in top5)),
               source),
    ]
    return files


def main(argv: list[str] | None = None) -> int:
    check = "--check" in (sys.argv[1:] if argv is None else argv)
    stale = 0
    for path, text in published():
        if check:
            current = path.read_text(encoding="utf-8") if path.is_file() else None
            if current != text:
                stale += 1
                print(f"differs: {path.relative_to(ROOT)}")
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(path.relative_to(ROOT))
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
