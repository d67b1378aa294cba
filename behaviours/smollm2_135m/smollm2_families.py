"""The prompt families SmolLM2-135M's findings are judged over (values, not tests).

SmolLM2 continues comma-separated lists far more reliably than space-separated ones, so its
successor families use commas: ``"January, February, March,"`` -> ``" April"``. Every threshold in
this folder was chosen on the dev items (each test's docstring gives the dev measurement) and is
judged on the held-out items, with a 95% interval.
"""

from __future__ import annotations

from pytest_annotate import Family, from_list
from pytest_annotate.strategies import CYCLIC, SEQUENCES


def comma_windows(kind: str, widths: range) -> Family:
    """Every window of ``widths`` consecutive items of a counting kind, comma-separated, answer the next."""
    seq, cyclic = SEQUENCES[kind], kind in CYCLIC
    items = []
    for w in widths:
        for start in range(len(seq)) if cyclic else range(len(seq) - w):
            words = [seq[(start + i) % len(seq)] for i in range(w + 1)]
            items.append((", ".join(words[:-1]) + ",", " " + words[-1]))
    return from_list(f"{kind}-commas", items,
                     description=f"every window of {widths.start}-{widths.stop - 1} {kind}, comma-separated: the next one")


MONTHS = comma_windows("months", range(3, 6))
LETTERS = comma_windows("letters", range(3, 6))
NUMBER_WORDS = comma_windows("number_words", range(3, 6))

_CAPITALS = [
    ("France", "Paris"), ("Japan", "Tokyo"), ("Ireland", "Dublin"), ("Italy", "Rome"), ("Germany", "Berlin"),
    ("Spain", "Madrid"), ("Russia", "Moscow"), ("China", "Beijing"), ("Egypt", "Cairo"), ("Greece", "Athens"),
    ("Portugal", "Lisbon"), ("Austria", "Vienna"), ("Poland", "Warsaw"), ("Norway", "Oslo"),
    ("Sweden", "Stockholm"), ("Finland", "Helsinki"), ("Denmark", "Copenhagen"), ("Hungary", "Budapest"),
    ("Canada", "Ottawa"), ("Australia", "Canberra"), ("Peru", "Lima"), ("Kenya", "Nairobi"),
    ("Thailand", "Bangkok"), ("Turkey", "Ankara"), ("Iran", "Tehran"), ("Iraq", "Baghdad"), ("Belgium", "Brussels"),
    ("Netherlands", "Amsterdam"), ("Switzerland", "Bern"), ("Cuba", "Havana"), ("Chile", "Santiago"),
    ("Vietnam", "Hanoi"),
]
#: "The capital of X is" -> " Y" for 32 countries whose capital's name is one word.
CAPITALS = from_list("capitals", [(f"The capital of {country} is", f" {city}") for country, city in _CAPITALS],
                     description="The capital of <country> is -> <city>, 32 countries")
