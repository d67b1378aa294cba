"""Write the published GPT-2 small / Pythia figures as the committed snapshot baseline.

The hub is unreachable where these behaviours were written, so their snapshots cannot be
recorded by running the models. This script writes, in the snapshot extension's own format,
the numbers the sources published (seeds 000, 001, 002, 003 in /work/shared/seeds/), each file
marked with a comment line saying they are published values, not yet re-measured. A run on the
real model compares against them within the tests' tolerances; ``--snapshot-update`` replaces
them with measured values (and drops the comment).

    python tools/write_published_snapshots.py        # rewrites the files; idempotent
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


def write(model_id: str, test_file: str, name: str, value: object, source: str) -> Path:
    """One snapshot file: ``snapshots/<model_id>/<test file minus .py>/<name>.snap``."""
    test = name.split(".")[0] if "[" not in name else name.rsplit("]", 1)[0] + "]"
    header = SnapshotHeader(model=model_id, dtype="float32", test=f"{test_file}::{test}", type=type(value).__name__)
    text = dumps(header, flatten(value))
    head, body = text.split("\n\n", 1)
    note = f"# published values ({source}), not yet re-measured\n"
    path = ROOT / "snapshots" / model_id / Path(test_file).with_suffix("") / f"{file_safe(name, 250)}.snap"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{head}\n\n{note}{body}", encoding="utf-8")
    return path


def main() -> None:
    written: list[Path] = []
    # --- GPT-2 small, seed 001 (counting) and seed 003 (induction)
    counting_file = "behaviours/gpt2_small/test_gpt2_counting.py"
    counting = _load(counting_file)
    for row in counting.PUBLISHED:
        written.append(write("gpt2-small", counting_file, f"test_counting_prediction[{row.id}]", row.published,
                             f"seed 001, row {row.row}"))
    induction_file = "behaviours/gpt2_small/test_gpt2_induction.py"
    ind = _load(induction_file)
    source = "seed 003"
    written += [
        write("gpt2-small", induction_file, "test_l5h5_is_the_top_induction_head",
              ind.PublishedHeadScore("L5H5", "induction", 0, 0.91), source),
        write("gpt2-small", induction_file, "test_l4h11_is_the_previous_token_head",
              ind.PublishedHeadRank("L4H11", "previous_token", 0), source),
        write("gpt2-small", induction_file, "test_repeated_half_is_predicted",
              ind.PublishedRepeatedSequence(-13.898, -0.644, 0.0, 0.93), source),
        write("gpt2-small", induction_file, "test_k_composition_circuit_of_l4h11_and_l5h5",
              ind.PublishedKComposition("L4H11", "L5H5", 0.2283), source),
    ]
    # --- Pythia-70m, seed 002 (head_df rows and the test_prompt printout)
    roles_file = "behaviours/pythia_70m/test_pythia70m_head_roles.py"
    roles = _load(roles_file)
    source = "seed 002"
    written += [
        write("pythia-70m", roles_file, "test_l3h0_is_the_most_inductive_mover",
              roles.PublishedHeadScores("induction", 0.086132, 0.152611, 0.394634), source),
        write("pythia-70m", roles_file, "test_l3h3_copies_its_input_token",
              roles.PublishedHeadScores("copying, vocab basis", 0.997116, 0.975877, 0.926991), source),
        write("pythia-70m", roles_file, "test_l3h3_copies_its_input_token.1",
              roles.PublishedHeadScores("copying, residual basis", 0.499663, -0.095355, -0.230723), source),
        write("pythia-70m", roles_file, "test_ioi_prompt_is_not_solved",
              roles.PublishedTop3((roles.PublishedTopToken(",", 21.60, 0.2710),
                                   roles.PublishedTopToken(" and", 20.92, 0.1378),
                                   roles.PublishedTopToken(".", 20.90, 0.1350))), source),
    ]
    # --- Pythia-160m-deduped, raw numerics, seed 000
    dublin_file = "behaviours/pythia_160m/test_pythia160m_dublin.py"
    dublin = _load(dublin_file)
    source = "seed 000"
    top5 = [(" the", 786.61, 0.2266), (" a", 784.93, 0.0422), (" Belfast", 784.57, 0.0294),
            (" Dublin", 784.47, 0.0267), (" now", 784.44, 0.0259)]
    written += [
        write("pythia-160m-deduped+raw", dublin_file, "test_dublin_is_fourth_after_the_capital_of_ireland_is",
              dublin.PublishedAnswer(" Dublin", 3, 784.47, 0.0267), source),
        write("pythia-160m-deduped+raw", dublin_file, "test_top5_predictions",
              dublin.PublishedTop5(tuple(dublin.PublishedToken(*t) for t in top5)), source),
    ]
    for path in written:
        print(path.relative_to(ROOT))


if __name__ == "__main__":
    main()
