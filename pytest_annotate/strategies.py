"""Hypothesis strategies for behaviour claims: one ``@given`` test states a finding for a whole family of prompts.

* :func:`counting_sequences`: ``("January February March", " April")`` for digits, number words,
  months, weekdays and letters, from any start;
* :func:`name_swaps`: IOI-style ``(prompt, correct, incorrect)`` triples;
* :func:`repeated_random_tokens`: BOS + random tokens repeated, for induction.

They are built so that hypothesis shrinks a failure to the smallest prompt that still fails:
draws are ordered so that the simplest choice comes first (the first kind in ``kind``, shorter
sequences, earlier starts, the first template and the first names), which is where hypothesis
shrinks to. A property over a model reads as the finding it states:

>>> @settings(max_examples=20, deadline=None)                             # doctest: +SKIP
... @given(seq=counting_sequences("months", min_len=5))
... def test_next_month_is_top1(model, seq):
...     assert_top_token(model, seq.prompt, seq.answer)

The strategies that need a model's vocabulary take a :class:`~pytest_annotate.lab.Lab`; since a
``@given`` decorator runs before fixtures exist, draw them inside the test with ``st.data()``
(``seq = data.draw(repeated_random_tokens(model, min_len=5, max_len=20))``), or give the token ids
at decoration time (``repeated_random_tokens(range(1000, 30000), bos=2)``).
"""

from __future__ import annotations

import random
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, get_args

from hypothesis import strategies as st

from pytest_annotate.lab import Lab

# --------------------------------------------------------------------------- counting

CountingKind = Literal["digits", "number_words", "months", "weekdays", "letters"]
"""The kinds of counting sequence; the single source of truth for their names."""
COUNTING_KINDS: tuple[CountingKind, ...] = get_args(CountingKind)

SEQUENCES: Mapping[CountingKind, tuple[str, ...]] = {
    "digits": tuple("0123456789"),
    "number_words": (
        "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty",
    ),
    "months": (
        "January", "February", "March", "April", "May", "June",
        "July", "August", "September", "October", "November", "December",
    ),
    "weekdays": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "letters": tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
}  # fmt: skip
"""The items of each kind, in order. Prompts join them with spaces; the answer is the next one with a leading space."""

CYCLIC: frozenset[CountingKind] = frozenset({"months", "weekdays"})
"""Kinds that go round (December -> January): only these wrap, and only with ``wrap=True``."""


class CountingPrompt(NamedTuple):
    """A counting prompt and the item that comes next: ``("1 2 3 4", " 5")``."""

    prompt: str
    answer: str


def _kinds(kind: str | Iterable[str]) -> tuple[CountingKind, ...]:
    kinds = (kind,) if isinstance(kind, str) else tuple(kind)
    bad = [k for k in kinds if k not in COUNTING_KINDS]
    if bad or not kinds:
        raise ValueError(
            f"unknown counting kind(s) {bad or kinds!r}; valid kinds: {', '.join(COUNTING_KINDS)} "
            "(one, or a tuple of them)"
        )
    return tuple(dict.fromkeys(kinds))  # type: ignore[arg-type]


def counting_sequences(
    kind: CountingKind | Iterable[CountingKind] = COUNTING_KINDS,
    *,
    min_len: int = 3,
    max_len: int | None = None,
    wrap: bool = False,
) -> st.SearchStrategy[CountingPrompt]:
    """``(prompt, answer)`` pairs: a run of ``min_len..max_len`` consecutive items from any start, and the next item.

    Runs never repeat an item, so a run is at most one shorter than its sequence (11 months). With
    ``wrap=False`` (the default) runs stop at the sequence's end: no run of months passes December
    (``"October November"`` -> ``" December"`` is the last). With ``wrap=True``, months and weekdays
    go round (``"November December"`` -> ``" January"``); digits, number words and letters never wrap.

    Shrinks towards the first kind given, then the earliest answer, then the shortest run ending there:
    a failure shrinks to the shortest run that still fails, starting as early as it can.

    >>> from hypothesis import find
    >>> find(counting_sequences("months"), lambda s: s.answer == " December")
    CountingPrompt(prompt='September October November', answer=' December')
    >>> find(counting_sequences("months", wrap=True), lambda s: s.answer == " January")
    CountingPrompt(prompt='October November December', answer=' January')
    """
    kinds = _kinds(kind)
    if isinstance(min_len, bool) or not isinstance(min_len, int) or min_len < 1:
        raise ValueError(f"min_len={min_len!r}: give a whole number of items >= 1")
    shortest = min(kinds, key=lambda k: len(SEQUENCES[k]))
    longest_run = len(SEQUENCES[shortest]) - 1
    if min_len > longest_run:
        raise ValueError(
            f"min_len={min_len} is longer than the longest run of {shortest} ({longest_run} items, so that the "
            f"answer is not in the prompt); give min_len <= {longest_run}"
        )
    if max_len is not None and (isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < min_len):
        raise ValueError(f"max_len={max_len!r}: give a whole number >= min_len={min_len}, or None for the longest runs")
    if wrap and not CYCLIC.intersection(kinds):
        raise ValueError(
            f"wrap=True has no effect on {', '.join(kinds)}: only {' and '.join(sorted(CYCLIC))} go round; "
            "drop wrap=True"
        )

    @st.composite
    def draw_counting(draw: st.DrawFn) -> CountingPrompt:
        # Draw order is shrink order: the kind, then the answer's index, then the run's length. Drawing
        # the answer before the length (not the start) lets a failure that depends on the answer shrink
        # to the shortest run ending there ("September October November" -> " December"); hypothesis
        # lowers one draw at a time, and with (length, start) it would stay at "January ... November".
        k = draw(st.sampled_from(kinds))
        items = SEQUENCES[k]
        n_items = len(items)
        longest = min(max_len or n_items - 1, n_items - 1)
        if wrap and k in CYCLIC:
            # Answers from index min_len on come first, so runs that do not wrap are the simpler ones.
            end = (min_len + draw(st.integers(0, n_items - 1))) % n_items
            length = draw(st.integers(min_len, longest))
        else:
            end = draw(st.integers(min_len, n_items - 1))
            length = draw(st.integers(min_len, min(longest, end)))
        run = [items[(end - length + i) % n_items] for i in range(length + 1)]
        return CountingPrompt(" ".join(run[:-1]), " " + run[-1])

    return draw_counting()


# --------------------------------------------------------------------------- IOI name swaps

IOI_TEMPLATES: tuple[str, ...] = (
    "When {IO} and {S} went to the store, {S} gave a drink to",
    "When {S} and {IO} went to the store, {S} gave a drink to",
    "When {IO} and {S} went to the park, {S} gave a ball to",
    "Then, {IO} and {S} had a long argument. Afterwards {S} said to",
    "Then, {S} and {IO} had a long argument. Afterwards {S} said to",
    "After {IO} and {S} went to the office, {S} gave a book to",
)
"""Indirect-object templates (Wang et al. 2022): ``{IO}`` is the answer, ``{S}`` the repeated subject."""

IOI_NAMES: tuple[str, ...] = (
    "Mary", "John", "Alice", "Bob", "Tom", "James", "Sarah", "Emma", "Michael", "David", "Anna", "Paul",
    "Lisa", "Mark", "Kate", "Peter", "Susan", "Daniel", "Laura", "Kevin", "Rachel", "Steve",
)  # fmt: skip
"""First names that are one token with a leading space for GPT-2 and Gemma 3."""


class NameSwap(NamedTuple):
    """An IOI prompt, the correct answer (the indirect object) and the incorrect one (the subject)."""

    prompt: str
    correct: str
    incorrect: str


def name_swaps(
    templates: Sequence[str] = IOI_TEMPLATES, names: Sequence[str] = IOI_NAMES
) -> st.SearchStrategy[NameSwap]:
    """IOI-style ``(prompt, correct, incorrect)`` triples: ``{IO}`` and ``{S}`` filled with two different names.

    The answers carry a leading space (``" Mary"``, ``" John"``). Shrinks towards the first template
    and the first two names.

    >>> from hypothesis import find
    >>> find(name_swaps(), lambda s: "Kate" in s.prompt)
    NameSwap(prompt='When Kate and Mary went to the store, Mary gave a drink to', correct=' Kate', incorrect=' Mary')
    """
    templates, names = tuple(templates), tuple(dict.fromkeys(names))
    if not templates:
        raise ValueError(f"templates is empty: give at least one, e.g. {IOI_TEMPLATES[0]!r}")
    for t in templates:
        if "{IO}" not in t or "{S}" not in t:
            raise ValueError(
                f"template {t!r} needs both {{IO}} (the indirect object, the correct answer) and {{S}} (the subject)"
            )
    if len(names) < 2:
        raise ValueError(f"names={names!r}: give at least two different names")

    @st.composite
    def draw_swap(draw: st.DrawFn) -> NameSwap:
        template = draw(st.sampled_from(templates))
        io = draw(st.sampled_from(names))
        s = draw(st.sampled_from([n for n in names if n != io]))
        return NameSwap(template.format(IO=io, S=s), " " + io, " " + s)

    return draw_swap()


# --------------------------------------------------------------------------- repeated random tokens


@dataclass(frozen=True)
class RepeatedTokens:
    """BOS (if any) followed by a random segment repeated ``repeats`` times, as token ids."""

    tokens: tuple[int, ...]
    segment_len: int
    repeats: int
    offset: int
    """Where the first copy starts: 1 after a BOS token, else 0."""

    @property
    def segment(self) -> tuple[int, ...]:
        return self.tokens[self.offset : self.offset + self.segment_len]

    @property
    def induction_positions(self) -> tuple[int, ...]:
        """Positions whose next token an induction head can copy from an earlier copy.

        Every position of the second and later copies but the last token of the sequence; the
        position just before the second copy starts is excluded (its next token is unpredictable
        when the segment is random).
        """
        first = self.offset + self.segment_len
        return tuple(range(first, len(self.tokens) - 1))

    @property
    def induction_targets(self) -> tuple[int, ...]:
        """The next token at each of :attr:`induction_positions`."""
        return tuple(self.tokens[p + 1] for p in self.induction_positions)


_ORDINARY: weakref.WeakKeyDictionary[Lab, tuple[int, ...]] = weakref.WeakKeyDictionary()
_TEXTS: weakref.WeakKeyDictionary[Lab, tuple[str, ...]] = weakref.WeakKeyDictionary()


def ordinary_token_ids(lab: Lab) -> tuple[int, ...]:
    """The ids of a model's ordinary tokens, in id order: no special or added tokens (BOS, ``<unused…>``,
    image tokens), no byte pieces or partial characters, and no whitespace-only tokens.

    Computed once per Lab (decoding the whole vocabulary: ~3 s for Gemma's 262,144 tokens).
    """
    if lab not in _ORDINARY:
        tokenizer = lab.bridge.tokenizer
        skip = set(getattr(tokenizer, "added_tokens_decoder", {}) or {}) | set(tokenizer.all_special_ids)
        texts = token_texts(lab)
        _ORDINARY[lab] = tuple(
            i for i, text in enumerate(texts)
            if i not in skip and text.strip() and text.isprintable() and "\ufffd" not in text
        )  # fmt: skip
    return _ORDINARY[lab]


def token_texts(lab: Lab) -> tuple[str, ...]:
    """Every token id's text, ``texts[i] == tokenizer.decode([i])``; decoded once per Lab."""
    if lab not in _TEXTS:
        _TEXTS[lab] = tuple(_decode_each(lab.bridge.tokenizer, lab.d_vocab))
    return _TEXTS[lab]


def _decode_each(tokenizer: Any, n: int) -> list[str]:
    """``tokenizer.batch_decode([[0], [1], ..., [n - 1]])``, in one call into a fast tokenizer's Rust
    backend where there is one (2x faster for Gemma's 262k tokens: transformers' per-item Python
    wrapper is most of the cost); tests/test_strategies.py checks both give the same texts."""
    ids = [[i] for i in range(n)]
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or not hasattr(backend, "decode_batch"):
        return list(tokenizer.batch_decode(ids))
    texts = backend.decode_batch(ids, skip_special_tokens=False)
    if getattr(tokenizer, "clean_up_tokenization_spaces", False):
        texts = [tokenizer.clean_up_tokenization(t) for t in texts]
    return texts


def repeated_random_tokens(
    vocab: Lab | Sequence[int],
    *,
    min_len: int = 5,
    max_len: int = 50,
    repeats: int = 2,
    bos: bool | int | None = None,
    unique: bool = True,
    shuffle: bool = True,
) -> st.SearchStrategy[RepeatedTokens]:
    """BOS + a random segment of ``min_len..max_len`` tokens, repeated ``repeats`` times: the induction task.

    ``vocab`` is a Lab (tokens are drawn from its :func:`ordinary_token_ids`) or the token ids to draw
    from (``range(1000, 30000)``). ``bos``, as for :meth:`Lab.tokens`: ``None`` follows the Lab's BOS
    policy (with token ids: no BOS); ``True`` always prepends the Lab's BOS token (seed 002 built
    Pythia's induction inputs as ``cat([bos, r, r])``, though TransformerLens 4 gives Pythia no BOS);
    ``False``: no BOS; a whole number: that id as BOS (with token ids: ``bos=2`` for Gemma,
    ``bos=50256`` for GPT-2). ``unique=True`` draws a segment without repeated tokens, so every next
    token in a later copy is determined by the earlier copy.

    Shrinks towards shorter segments, then towards the first ids of ``vocab`` in a fixed shuffled
    order (``shuffle=True``, seed 0): a failure shrinks to a short segment of random-looking tokens.
    With ``shuffle=False`` it shrinks to consecutive ids, which are often not random-looking at all:
    Gemma 3 270M's first five ordinary tokens are ``! " # $ %``, which it does not copy (top-1
    accuracy 0.0 in the second copy, where it predicts ``proceed``), while it copies random
    segments (second-copy accuracy 0.75-0.93 for the shuffled minimal segments of 5-16 tokens).

    >>> from hypothesis import find
    >>> find(repeated_random_tokens(range(100, 200), bos=7, min_len=3, shuffle=False), lambda r: True)
    RepeatedTokens(tokens=(7, 100, 101, 102, 100, 101, 102), segment_len=3, repeats=2, offset=1)
    >>> find(repeated_random_tokens(range(100, 200), bos=7, min_len=3), lambda r: True).segment_len
    3
    """
    n_ctx = None
    if bos is not None and not isinstance(bos, (bool, int)):
        raise ValueError(f"bos={bos!r}: give None (the Lab's BOS policy), True, False or a BOS token id")
    bos_id: int | None = None if isinstance(bos, bool) or bos is None else int(bos)
    if isinstance(vocab, Lab):
        ids: Sequence[int] = ordinary_token_ids(vocab)
        if bos is True or (bos is None and vocab.has_bos):
            bos_id = vocab.bos_token_id
        n_ctx = vocab.n_ctx
    else:
        ids = vocab if isinstance(vocab, range) else tuple(int(i) for i in vocab)
        if bos is True:
            raise ValueError(
                "bos=True needs a Lab as vocab, to know its BOS token; with token ids, give the BOS id "
                "(e.g. bos=2 for Gemma, bos=50256 for GPT-2) or bos=None"
            )
    if len(ids) == 0:
        raise ValueError("vocab holds no token ids to draw from")
    if isinstance(min_len, bool) or not isinstance(min_len, int) or min_len < 2:
        raise ValueError(f"min_len={min_len!r}: an induction segment needs at least 2 tokens")
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < min_len:
        raise ValueError(f"max_len={max_len!r}: give a whole number >= min_len={min_len}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 2:
        raise ValueError(f"repeats={repeats!r}: give 2 or more (the segment and at least one copy)")
    if unique and len(ids) < max_len:
        raise ValueError(f"unique=True needs max_len <= the {len(ids)} token ids in vocab; got max_len={max_len}")
    offset = 0 if bos_id is None else 1
    if n_ctx is not None and offset + repeats * max_len > n_ctx:
        raise ValueError(
            f"{offset + repeats * max_len} tokens (BOS + {repeats} x max_len={max_len}) exceed the context of "
            f"{n_ctx}; give max_len <= {(n_ctx - offset) // repeats}"
        )

    def build(segment: list[int]) -> RepeatedTokens:
        prefix = () if bos_id is None else (bos_id,)
        return RepeatedTokens(prefix + tuple(segment) * repeats, len(segment), repeats, offset)

    if shuffle:
        ids = list(ids)
        random.Random(0).shuffle(ids)
    # Indices into `ids`, not ids: lists shrink by length first, then each index towards 0 (the first id).
    indices = st.lists(st.integers(0, len(ids) - 1), min_size=min_len, max_size=max_len, unique=unique)
    return indices.map(lambda ix: build([int(ids[i]) for i in ix]))
