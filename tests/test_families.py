"""Prompt families: items, the hash split and its stability, the builders and their errors."""

from __future__ import annotations

import doctest
import itertools
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pytest_annotate
import pytest_annotate.families
from pytest_annotate.families import (
    Family,
    FamilyError,
    FamilyItem,
    from_jsonl,
    from_list,
    from_strategy,
    from_template,
    ioi,
    windows,
)
from pytest_annotate.strategies import (
    IOI_NAMES,
    IOI_TEMPLATES,
    SEQUENCES,
    CountingPrompt,
    NameSwap,
    counting_sequences,
    name_swaps,
)

DETERMINISTIC = settings(database=None, derandomize=True, deadline=None, max_examples=60)

POOL = tuple(FamilyItem(f"{i} {i + 1} {i + 2}", f" {i + 3}", meta={"i": str(i)}) for i in range(200))


def family(items=POOL, **kwargs) -> Family:
    return Family("pool", 1, tuple(items), **kwargs)


# --------------------------------------------------------------------------- items


def test_item_id_is_a_stable_hash_of_what_the_model_is_asked() -> None:
    item = FamilyItem("When Mary and John went to the store, John gave a drink to", " Mary", wrong=" John")
    assert item.item_id == "f38c26e1ed92"  # sha256 of the key: changing it reshuffles every split
    assert FamilyItem(item.prompt, item.answer, wrong=item.wrong, meta={"template": "0"}).item_id == item.item_id
    assert FamilyItem(item.prompt, item.answer).item_id != item.item_id
    assert FamilyItem(item.prompt, " John", wrong=" Mary").item_id != item.item_id


def test_items_compare_by_content_and_meta_is_read_only() -> None:
    a = FamilyItem("1 2 3", " 4", meta={"kind": "digits"})
    meta = {"kind": "digits"}
    b = FamilyItem("1 2 3", " 4", meta=meta)
    meta["kind"] = "changed"  # the item keeps its own copy
    assert a == b and hash(a) == hash(b) and b.meta["kind"] == "digits"
    assert a != FamilyItem("1 2 3", " 4") and a.key == FamilyItem("1 2 3", " 4").key
    with pytest.raises(TypeError):
        a.meta["kind"] = "x"  # type: ignore[index]
    with pytest.raises(AttributeError):
        a.prompt = "x"  # type: ignore[misc]


def test_item_round_trips_through_its_dict() -> None:
    item = FamilyItem("p q", " r", corrupted="p z", wrong=" s", meta={"t": "1"})
    assert item.to_dict() == {"prompt": "p q", "answer": " r", "corrupted": "p z", "wrong": " s", "meta": {"t": "1"}}
    assert FamilyItem(**item.to_dict()) == item
    assert FamilyItem("p", "q").to_dict() == {"prompt": "p", "answer": "q"}
    assert str(item) == "'p q' -> ' r' (not ' s'); corrupted 'p z'"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"prompt": "", "answer": " a"}, "prompt is empty"),
    ({"prompt": "p", "answer": ""}, "answer is empty: give the expected continuation, with its leading space"),
    ({"prompt": 3, "answer": " a"}, r"prompt is 3 \(int\): give a string"),
    ({"prompt": "p", "answer": " a", "wrong": " a"}, "wrong is the same as answer"),
    ({"prompt": "p", "answer": " a", "corrupted": "p"}, "corrupted is the same as prompt"),
    ({"prompt": "p", "answer": " a", "corrupted": ""}, "corrupted is '': give a non-empty string, or None"),
    ({"prompt": "p", "answer": " a", "meta": {"width": 3}}, "meta\\['width'\\] = 3: meta keys and values are strings"),
    ({"prompt": "p", "answer": " a", "meta": ["x"]}, "give a mapping of strings to strings"),
])  # fmt: skip
def test_bad_items_say_what_is_wrong(kwargs: dict, message: str) -> None:
    with pytest.raises(FamilyError, match=message):
        FamilyItem(**kwargs)


def test_answers_without_a_leading_space_are_allowed() -> None:
    assert FamilyItem("The year is 19", "84").answer == "84"  # token-level checks belong to the Lab


# --------------------------------------------------------------------------- families


def test_family_is_a_sequence_of_items() -> None:
    f = family(POOL[:5])
    assert len(f) == 5 and list(f) == list(POOL[:5]) and f[2] == POOL[2]
    assert POOL[3] in f and POOL[9] not in f and "0 1 2" not in f
    assert f.prompts[0] == "0 1 2" and f.answers[0] == " 3"
    assert repr(f) == f"Family('pool', version=1, 5 items, fingerprint={f.fingerprint!r})"
    assert f == family(list(POOL[:5])) and hash(f) == hash(family(POOL[:5]))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"items": ()}, "has no items"),
    ({"items": (POOL[0], POOL[1], FamilyItem(POOL[0].prompt, POOL[0].answer))},
     r"items\[2\] is the same item as items\[0\]"),
    ({"items": (("1 2", " 3"),)}, r"items\[0\] is a tuple, not a FamilyItem; build items with FamilyItem"),
    ({"items": POOL[:2], "heldout_fraction": 1.0}, "strictly between 0 and 1"),
    ({"items": POOL[:2], "version": True}, "version=True"),
    ({"items": POOL[:2], "name": " "}, "non-empty name"),
])  # fmt: skip
def test_bad_families_say_what_is_wrong(kwargs: dict, message: str) -> None:
    args = {"name": "pool", "version": 1, **kwargs}
    with pytest.raises(FamilyError, match=message):
        Family(**args)


def test_split_partitions_the_family() -> None:
    f = family()
    dev, held = f.split()
    assert len(dev) + len(held) == len(f)
    assert set(dev.items).isdisjoint(held.items) and set(dev.items) | set(held.items) == set(f.items)
    assert (dev.part, held.part) == ("dev", "held-out") and (f.dev, f.heldout) == (dev, held)
    assert list(dev) == [item for item in f if item in dev]  # family order is kept
    assert abs(len(held) - 100) <= 3 * math.sqrt(200 * 0.25)
    # A side split again is itself: dev of dev is dev, and it has no held-out items.
    assert f.dev.dev == dev and f.heldout.heldout == held
    with pytest.raises(FamilyError, match=r"family 'pool' \(\d+ items, dev\) has no held-out items"):
        _ = dev.heldout


def test_split_fraction_is_respected_on_a_large_family() -> None:
    f = ioi()
    for fraction in (0.2, 0.5, 0.7):
        held = len(f.split(fraction)[1])
        assert abs(held - fraction * len(f)) <= 3 * math.sqrt(len(f) * fraction * (1 - fraction))


@DETERMINISTIC
@given(
    subset_a=st.sets(st.integers(0, len(POOL) - 1), min_size=1),
    subset_b=st.sets(st.integers(0, len(POOL) - 1), min_size=1),
    order=st.randoms(use_true_random=False),
)
def test_an_item_keeps_its_side_whatever_else_is_in_the_family(subset_a, subset_b, order) -> None:
    # Insertion, removal and reordering of other items never move an item between dev and held-out.
    a_items = [POOL[i] for i in sorted(subset_a)]
    b_items = [POOL[i] for i in subset_b]
    order.shuffle(b_items)
    a, b = Family("a", 1, tuple(a_items)), Family("b", 7, tuple(b_items))
    for item in set(a_items) & set(b_items):
        assert a.is_heldout(item) == b.is_heldout(item) == family().is_heldout(item)


def test_raising_the_fraction_only_moves_items_from_dev_to_heldout() -> None:
    f = family()
    held = [set(f.split(x)[1].items) for x in (0.1, 0.3, 0.5, 0.8)]
    assert all(a <= b for a, b in itertools.pairwise(held))


def test_salt_gives_a_different_split() -> None:
    plain, salted = family(), family(salt="round-2")
    assert plain.heldout.items != salted.heldout.items
    assert salted.heldout.heldout.items == salted.heldout.items  # the salt travels with the subsets


def test_a_side_that_would_be_empty_is_an_error() -> None:
    one = family(POOL[:1])
    side = "held-out" if not one.is_heldout(POOL[0]) else "dev"
    with pytest.raises(FamilyError, match=f"has no {side} items at held-out fraction 0.5: every item hashed"):
        one.split()


def test_sample_is_seeded_ordered_and_stable_under_insertion() -> None:
    f = family()
    s = f.sample(20, seed=3)
    assert len(s) == 20 and s == f.sample(20, seed=3) and s.items != f.sample(20, seed=4).items
    assert list(s) == [item for item in f if item in s]
    assert s.part == "sample of 20 (seed 3)" and f.heldout.sample(5).part == "held-out, sample of 5 (seed 0)"
    smaller = family(POOL[:150]).sample(20, seed=3)
    bigger = family(POOL[:151]).sample(20, seed=3)
    assert len(set(smaller.items) - set(bigger.items)) <= 1
    with pytest.raises(FamilyError, match="give 1 <= n <= 200"):
        f.sample(201)


def test_filter_keeps_matching_items() -> None:
    f = family()
    evens = f.filter(lambda item: int(item.meta["i"]) % 2 == 0, part="even starts")
    assert len(evens) == 100 and evens.part == "even starts"
    with pytest.raises(FamilyError, match="kept none of the 200 items of family 'pool'"):
        f.filter(lambda item: False)


def test_union_dedupes_and_keeps_each_items_side() -> None:
    a, b = family(POOL[:10]), Family("other", 2, POOL[5:15], description="more")
    u = a + b
    assert len(u) == 15 and u.items == POOL[:15]
    assert (u.name, u.version, u.description) == ("pool+other", "1+2", "more")
    assert all(u.is_heldout(item) == a.is_heldout(item) for item in a)
    assert family(POOL[:10]) + family(POOL[:10]) == family(POOL[:10])
    assert a.dev + a.heldout == Family("pool", 1, a.dev.items + a.heldout.items)
    with pytest.raises(FamilyError, match="items would change sides"):
        a + family(POOL[:3], salt="x")
    with pytest.raises(TypeError):
        a + [POOL[0]]  # type: ignore[operator]


def test_fingerprint_sees_every_change_but_order() -> None:
    f = family(POOL[:20])
    assert f.fingerprint == family(POOL[:20][::-1]).fingerprint
    assert f.fingerprint != Family("pool", 2, POOL[:20]).fingerprint
    assert f.fingerprint != Family("renamed", 1, POOL[:20]).fingerprint
    assert f.fingerprint != family(POOL[:19]).fingerprint
    relabelled = (FamilyItem(POOL[0].prompt, POOL[0].answer, meta={"i": "zero"}), *POOL[1:20])
    assert f.fingerprint != family(relabelled).fingerprint
    assert windows("months-w3", "months", 3).fingerprint == "206d105610a369cc"  # pinned: snapshots store it


def test_summary_reports_size_split_and_examples() -> None:
    f = windows("months-w3", "months", 3)
    held = len(f.heldout)
    text = f.summary(examples=2)
    assert text.splitlines() == [
        f"months-w3 v1: 12 items ({12 - held} dev, {held} held-out at fraction 0.5), fingerprint {f.fingerprint}",
        "  Every run of 3 consecutive months (cyclic, December -> January): the next one.",
        "  'January February March' -> ' April'",
        "  'February March April' -> ' May'",
        "  ... 10 more",
    ]
    assert f.heldout.summary().startswith("months-w3 v1 [held-out]: ")


# --------------------------------------------------------------------------- windows


@pytest.mark.parametrize(("kind", "width", "cyclic", "size"), [
    ("months", 3, None, 12), ("months", 3, False, 9), ("months", 11, None, 12), ("weekdays", 3, None, 7),
    ("weekdays", 6, False, 1), ("digits", 3, None, 7), ("digits", 1, None, 9), ("number_words", 3, None, 17),
    ("letters", 3, None, 23), ("letters", range(3, 6), None, 23 + 22 + 21), ("months", [2, 3], None, 24),
])  # fmt: skip
def test_window_family_sizes(kind: str, width, cyclic, size: int) -> None:
    assert len(windows("w", kind, width, cyclic=cyclic)) == size


def test_windows_are_consecutive_runs_and_the_next_word() -> None:
    f = windows("m", "months", 3)
    months = SEQUENCES["months"]
    for item in f:
        words = item.prompt.split(" ")
        start = months.index(words[0])
        assert words == [months[(start + i) % 12] for i in range(3)]
        assert item.answer == " " + months[(start + 3) % 12]
        assert item.meta == {"kind": "months", "width": "3", "first": words[0], "wraps": "yes" if start + 3 >= 12 else "no"}
    assert f[-1].prompt == "December January February" and f[-1].answer == " March"
    assert len(f.filter(lambda item: item.meta["wraps"] == "no")) == 9


def test_windows_over_any_sequence() -> None:
    f = windows("colours", ["red", "orange", "yellow", "green"], 2, cyclic=True)
    assert len(f) == 4 and f[-1].prompt == "green red" and f[-1].answer == " orange"
    assert f[0].meta["kind"] == "custom"
    assert f.description == "Every run of 2 consecutive words (cyclic, green -> red): the next one."


@pytest.mark.parametrize(("args", "kwargs", "message"), [
    (("monthz", 3), {}, "unknown sequence 'monthz'. Did you mean 'months'"),
    (("digits", 3), {"cyclic": True}, "digits do not go round"),
    (("months", 12), {}, "width=12: give a whole number from 1 to 11 for 12 words"),
    (("months", 0), {}, "width=0"),
    (("months", []), {}, "no widths given"),
    ((["a", "b", "a"], 1), {}, "'a' appears twice"),
    ((["a"], 1), {}, "give at least 2"),
    ((["a", ""], 1), {}, "give non-empty strings"),
])  # fmt: skip
def test_windows_errors(args: tuple, kwargs: dict, message: str) -> None:
    with pytest.raises(FamilyError, match=message):
        windows("w", *args, **kwargs)


# --------------------------------------------------------------------------- IOI


def test_ioi_covers_every_template_and_ordered_pair_of_names() -> None:
    f = ioi()
    assert len(f) == len(IOI_TEMPLATES) * len(IOI_NAMES) * (len(IOI_NAMES) - 1) == 2772
    for item in f.sample(300):
        io, s, c = item.meta["IO"], item.meta["S"], item.meta["C"]
        assert (item.answer, item.wrong) == (" " + io, " " + s) and c not in (io, s)
        assert item.prompt == IOI_TEMPLATES[int(item.meta["template"])].format(IO=io, S=s)
        clean, corrupt = item.prompt.split(" "), item.corrupted.split(" ")  # type: ignore[union-attr]
        changed = [i for i, (x, y) in enumerate(zip(clean, corrupt, strict=True)) if x != y]
        assert len(changed) == 1 and clean[changed[0]].startswith(s) and corrupt[changed[0]].startswith(c)
        assert changed[0] == max(i for i, w in enumerate(clean) if w.startswith(s))  # the last mention of S


def test_ioi_sample_and_custom_inputs() -> None:
    assert ioi(n=50) == ioi(n=50) and set(ioi(n=50, seed=1).items) != set(ioi(n=50).items)
    assert set(ioi(n=50).items) <= set(ioi().items)
    f = ioi("mini", templates=["{IO} met {S}; {S} thanked"], names=["Ann", "Bo", "Cy"])
    assert len(f) == 6 and f[0].corrupted == "Ann met Bo; Cy thanked"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"names": ["Ann", "Bo"]}, "at least 3 different names"),
    ({"templates": []}, "templates is empty"),
    ({"templates": ["{IO} met {S}"]}, r"\{S\} at least twice"),
    ({"templates": ["{IO} met {S} and {S} and {X}"]}, "no other placeholders"),
    ({"n": 0}, "give 1 <= n <= 2772"),
])  # fmt: skip
def test_ioi_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(FamilyError, match=message):
        ioi(**kwargs)


# --------------------------------------------------------------------------- templates and lists


def test_from_template_takes_every_combination_of_slots() -> None:
    f = from_template("ab", "{a}-{b}", {"a": ["x", "y"], "b": ["1", "2", "3"]}, answer=" {b}{a}", wrong=" no")
    assert f.prompts == ("x-1", "x-2", "x-3", "y-1", "y-2", "y-3")
    assert f[0].answer == " 1x" and f[0].wrong == " no" and f[0].meta == {"a": "x", "b": "1"}


def test_from_template_takes_rows_functions_where_and_meta() -> None:
    rows = [{"country": "France", "capital": "Paris"}, {"country": "Peru", "capital": "Lima"}]
    f = from_template(
        "capitals", "The capital of {country} is", rows, answer=lambda r: " " + r["capital"],
        corrupted="The capital of Spain is", where=lambda r: r["country"] != "Peru", meta={"source": "atlas"},
    )  # fmt: skip
    assert len(f) == 1 and f[0].answer == " Paris" and f[0].corrupted == "The capital of Spain is"
    assert f[0].meta == {"country": "France", "capital": "Paris", "source": "atlas"}


@pytest.mark.parametrize(("args", "kwargs", "message"), [
    (("{x} is", {"x": ["a", "a"]}), {"answer": " b"}, r"slots \{'x': 'a'\} is the same item as slots \{'x': 'a'\}"),
    (("{x} is", {"x": []}), {"answer": " b"}, r"slots\['x'\] is empty"),
    (("{x} is", {"x": "ab"}), {"answer": " b"}, "give a list of values"),
    (("{x} is", {}), {"answer": " b"}, "slots is empty"),
    (("{x} is", []), {"answer": " b"}, "slots is an empty list"),
    (("{x} is", {"x": [1]}), {"answer": " b"}, "slot 'x' = 1: slot names and values are strings"),
    (("{x} is", {"x": ["a"]}), {"answer": " {y}"}, r"answer ' \{y\}' uses \{y\}, which is not a slot"),
    (("{x.y} is", {"x": ["a"]}), {"answer": " b"}, "give a plain slot name"),
    (("{x is", {"x": ["a"]}), {"answer": " b"}, "not a valid format string"),
    (("{x} is", {"x": ["a"]}), {"answer": " b", "where": lambda r: False}, "where= kept none of the 1"),
    (("{x} is", {"x": ["a"]}), {"answer": ""}, r"slots \{'x': 'a'\}: answer is empty"),
    (("{x} is", {"x": ["a"]}), {"answer": 3}, "give a format string over the slots or a function"),
])  # fmt: skip
def test_from_template_errors(args: tuple, kwargs: dict, message: str) -> None:
    with pytest.raises(FamilyError, match=message):
        from_template("t", *args, **kwargs)


def test_from_list_takes_tuples_mappings_items_and_strategy_values() -> None:
    f = from_list("mixed", [
        ("1 2 3", " 4"), ("When A and B met, B thanked", " A", " B"), {"prompt": "x", "answer": " y", "meta": None},
        FamilyItem("p", " q"), CountingPrompt("Monday Tuesday", " Wednesday"), NameSwap("A met B; B thanked", " A", " B"),
    ])  # fmt: skip
    assert len(f) == 6 and f[1].wrong == " B" and f[2].meta == {}
    assert f[4] == FamilyItem("Monday Tuesday", " Wednesday") and f[5].wrong == " B"


@pytest.mark.parametrize(("items", "message"), [
    ([], r"from_list\('l'\) gives no items"),
    ([("a", " b"), ("a", " b")], r"items\[1\] is the same item as items\[0\]"),
    ([("a",)], r"items\[0\]: \('a',\) is not an item"),
    ([{"prompt": "a", "anwser": " b"}], r"items\[0\]: unknown field 'anwser'. Did you mean 'answer'\?"),
    ([{"prompt": "a"}], r"items\[0\]: 'answer' is missing"),
])  # fmt: skip
def test_from_list_errors(items: list, message: str) -> None:
    with pytest.raises(FamilyError, match=message):
        from_list("l", items)


# --------------------------------------------------------------------------- JSONL


def write(tmp_path: Path, *lines: str) -> Path:
    p = tmp_path / "fam.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def test_jsonl_round_trip(tmp_path: Path) -> None:
    f = Family("ioi-mini", "2024-06", ioi(n=8).items, description="eight IOI items", heldout_fraction=0.4, salt="s")
    p = tmp_path / "ioi.jsonl"
    f.to_jsonl(p)
    back = from_jsonl(p)
    assert back == f and back.fingerprint == f.fingerprint
    assert json.loads(p.read_text().splitlines()[0]) == {
        "family": "ioi-mini", "version": "2024-06", "description": "eight IOI items", "heldout_fraction": 0.4, "salt": "s",
    }  # fmt: skip


def test_jsonl_without_header_is_named_after_the_file(tmp_path: Path) -> None:
    p = write(tmp_path, '{"prompt": "1 2 3", "answer": " 4"}', "", '{"prompt": "A B C", "answer": " D", "wrong": " C"}')
    f = from_jsonl(p)
    assert (f.name, f.version, len(f), f[1].wrong) == ("fam", 1, 2, " C")
    g = from_jsonl(p, name="succ", version=3, heldout_fraction=0.25, salt="x")
    assert (g.name, g.version, g.heldout_fraction, g.salt) == ("succ", 3, 0.25, "x")


@pytest.mark.parametrize(("lines", "message"), [
    (['{"prompt": "a", "answer": " b"}', '{"prompt": "c" "answer": " d"}'],
     r"fam.jsonl:2: not valid JSON \(Expecting ',' delimiter at column 16\); each line is one JSON object"),
    (['["a", " b"]'], "fam.jsonl:1: a JSON list, not an object"),
    (['{"prompt": "a", "anwser": " b"}'], "fam.jsonl:1: unknown field 'anwser'. Did you mean 'answer'"),
    (['{"family": "f"}', '{"prompt": "a"}'], "fam.jsonl:2: 'answer' is missing; an item needs 'prompt' and 'answer'"),
    (['{"prompt": "a", "answer": 4}'], "fam.jsonl:1: 'answer' is 4: give a string"),
    (['{"prompt": "a", "answer": " b", "meta": "x"}'], "fam.jsonl:1: 'meta' is \"x\": give an object of strings"),
    (['{"prompt": "a", "answer": " b", "meta": {"n": 1}}'], r"fam.jsonl:1: meta\['n'\] = 1"),
    (['{"prompt": "a", "answer": " b"}', '{"family": "f"}'], "fam.jsonl:2: a header .* must be the first line"),
    (['{"family": "f", "verion": 2}'], "fam.jsonl:1: unknown header field 'verion'. Did you mean 'version'"),
    (['{"family": "f"}'], "fam.jsonl: no items"),
    ([""], "fam.jsonl: no items"),
    (['{"prompt": "a", "answer": " b"}', "", '{"prompt": "a", "answer": " b"}'],
     "fam.jsonl: line 3 is the same item as line 1"),
    (['{"family": "f", "version": true}', '{"prompt": "a", "answer": " b"}'], "fam.jsonl: version=True"),
    (['{"family": 3}', '{"prompt": "a", "answer": " b"}'], "header field 'family' is 3: give a string"),
    (['{"prompt": "a", "answer": ""}'], "fam.jsonl:1: answer is empty"),
])  # fmt: skip
def test_jsonl_errors_name_the_file_and_line(tmp_path: Path, lines: list[str], message: str) -> None:
    with pytest.raises(FamilyError, match=message):
        from_jsonl(write(tmp_path, *lines))


# --------------------------------------------------------------------------- strategies


def test_from_strategy_is_deterministic_and_distinct() -> None:
    f = from_strategy("months-runs", counting_sequences("months"), 20, seed=0)
    assert len(f) == 20 and len(set(f.items)) == 20
    assert f == from_strategy("months-runs", counting_sequences("months"), 20, seed=0)
    assert f.items != from_strategy("months-runs", counting_sequences("months"), 20, seed=1).items
    assert all(item.answer.startswith(" ") for item in f)


def test_from_strategy_draws_the_same_items_in_another_process() -> None:
    # hypothesis's seeded run does not depend on hash randomization (PYTHONHASHSEED).
    code = (
        "from pytest_annotate.families import from_strategy; from pytest_annotate.strategies import name_swaps; "
        "print(from_strategy('s', name_swaps(), 25, seed=4).fingerprint)"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(Path(pytest_annotate.__file__).parents[1])}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == from_strategy("s", name_swaps(), 25, seed=4).fingerprint


def test_from_strategy_ignores_the_active_hypothesis_profile() -> None:
    before = from_strategy("s", name_swaps(), 15, seed=2)
    previous = settings.get_current_profile_name()
    settings.register_profile("families-test-tiny", max_examples=2, derandomize=True)
    try:
        settings.load_profile("families-test-tiny")
        assert from_strategy("s", name_swaps(), 15, seed=2) == before
    finally:
        settings.load_profile(previous)


def test_from_strategy_converts_name_swaps_and_custom_values() -> None:
    f = from_strategy("swaps", name_swaps(), 10)
    assert all(item.wrong is not None and item.wrong != item.answer for item in f)
    g = from_strategy(
        "ints", st.integers(0, 10**6), 12, seed=5, to_item=lambda i: FamilyItem(f"{i} +1 =", f" {i + 1}"),
    )  # fmt: skip
    assert len(g) == 12


def test_from_strategy_errors() -> None:
    with pytest.raises(FamilyError, match="gave only 45 distinct items in 45 draws; ask for n <= 45"):
        from_strategy("m", counting_sequences("months"), 50)
    with pytest.raises(FamilyError, match="drawn value 0: 0 is not an item.*give to_item="):
        from_strategy("ints", st.integers(0, 3), 2)
    with pytest.raises(FamilyError, match="to_item returned 'x', not a FamilyItem"):
        from_strategy("ints", st.integers(0, 3), 2, to_item=lambda i: "x")  # type: ignore[arg-type,return-value]
    with pytest.raises(FamilyError, match="give a hypothesis strategy"):
        from_strategy("ints", [1, 2], 2)  # type: ignore[arg-type]
    with pytest.raises(FamilyError, match="n=0"):
        from_strategy("m", counting_sequences("months"), 0)


@settings(max_examples=1, database=None)
@given(st.just(0))
def test_from_strategy_inside_a_given_test_says_where_to_build_the_family(_: int) -> None:
    with pytest.raises(FamilyError, match="cannot run inside a @given test: build the family at module level"):
        from_strategy("m", counting_sequences("months"), 3)


def test_docstring_examples_run() -> None:
    failures, _ = doctest.testmod(pytest_annotate.families, optionflags=doctest.ELLIPSIS)
    assert failures == 0
