"""How far a snapshotted number may move before the snapshot fails.

Every leaf of a snapshot has a *kind*, and every kind a :class:`Band`:

============  ==============================================  ==========================
kind          fields (by name, unless ``metadata={"kind": …}``)  default band (float32)
============  ==============================================  ==========================
``exact``     ``rank``, ``*_rank(s)``, ``token_id(s)``; every    equal
              ``str``/``bool``/``None``; ``int`` by default
``verdict``   ``passed``, ``verdict``                          equal (and drives drift)
``prob``      ``prob(s)``, ``*_prob(s)``, ``p_*``, ``accuracy``  ``|Δ| ≤ 2e-3``
``logit``     ``logit(s)``, ``*_logit(s)``, ``logit_diff``,      ``|Δ| ≤ max(1e-3, 1e-3·|x|)``
              ``loss``, ``log_prob(s)``
``float``     any other ``float``                              ``|Δ| ≤ max(1e-5, 1e-4·|x|)``
============  ==============================================  ==========================

Bands are symmetric (``|x|`` is the larger magnitude of the two values, as in
:func:`math.isclose`), so swapping the snapshot and the new run never changes a verdict.

Runs in low precision widen every non-exact band by :data:`DTYPE_FACTORS`: ×50 for
bfloat16, ×10 for float16. The float32 bands above are not set by float32's own rounding
(ε = 2⁻²⁴ ≈ 6e-8) but by the noise of different kernels, thread counts and BLAS builds,
which reaches ~1e-4 relative on logits after a dozen layers. bfloat16 keeps 8 mantissa bits
(ε = 2⁻⁸ ≈ 3.9e-3) and float16 11 bits (ε = 2⁻¹¹ ≈ 4.9e-4): 8× apart, which the factors
keep (50 / 10 ≈ 5, rounded to round numbers). Scaling our float32 bands by the raw ε
ratio (65 536× / 8 192×) would accept any value at all, so the factors are set to what a
bfloat16 forward pass actually moves: logits by a few percent (1e-3 × 50 = 5 %) and
probabilities by a few points (2e-3 × 50 = 0.1 absolute).

>>> tol = Tolerance.default()
>>> tol.band("prob", "prob").allows(0.700, 0.7019)
True
>>> tol.band("prob", "prob").allows(0.700, 0.7021)
False
>>> tol.for_dtype("bfloat16").band("prob", "prob").allows(0.70, 0.75)
True
>>> tol.with_overrides({"top_tokens.*.prob": 0.02}).band("top_tokens.3.prob", "prob")
Band(abs=0.02, rel=0.0)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from typing import Literal, TypeAlias, get_args

from pytest_annotate.snapshot.errors import ToleranceError

#: The kinds a snapshot leaf can have; the single source of truth for kind names.
Kind: TypeAlias = Literal["exact", "verdict", "prob", "logit", "float"]
KINDS: tuple[Kind, ...] = get_args(Kind)
#: Kinds compared with ``==``: never widened, never given a band by default.
EXACT_KINDS: frozenset[str] = frozenset({"exact", "verdict"})

#: Band widening per dtype of the run (or of the run that recorded the snapshot): see
#: the module docstring for why these numbers.
DTYPE_FACTORS: Mapping[str, float] = {
    "float64": 1.0,
    "float32": 1.0,
    "float16": 10.0,
    "bfloat16": 50.0,
}

#: What a user may give as an override: a number (the kind's main width: ``abs`` for
#: ``prob`` and ``exact``, ``rel`` for ``logit`` and ``float``), a ``{"abs": …, "rel": …}``
#: dict (missing keys keep the default), or a :class:`Band`.
ToleranceValue: TypeAlias = "float | int | Mapping[str, float] | Band"
ToleranceSpec: TypeAlias = "Mapping[str, ToleranceValue]"


@dataclass(frozen=True)
class Band:
    """A symmetric tolerance band: ``|new - old| <= max(abs, rel * max(|old|, |new|))``.

    >>> Band(abs=1e-3, rel=1e-3).allowed(10.0, 10.02)
    0.01002
    >>> Band().allows(3, 3), Band().allows(3, 4)
    (True, False)
    """

    abs: float = 0.0
    rel: float = 0.0

    def allowed(self, old: float, new: float) -> float:
        """The largest ``|new - old|`` this band accepts for these two values."""
        return max(self.abs, self.rel * max(abs(old), abs(new)))

    def allows(self, old: float, new: float) -> bool:
        """Whether ``new`` is within this band of ``old`` (NaN equals only NaN)."""
        if math.isnan(old) or math.isnan(new):
            return math.isnan(old) and math.isnan(new)
        if math.isinf(old) or math.isinf(new):
            return old == new
        return abs(new - old) <= self.allowed(old, new)

    def scaled(self, factor: float) -> Band:
        """This band widened ``factor`` times."""
        return Band(abs=self.abs * factor, rel=self.rel * factor)

    @property
    def is_exact(self) -> bool:
        return self.abs == 0.0 and self.rel == 0.0

    def describe(self) -> str:
        """A short human form: ``exact``, ``±0.002``, ``±1e-3·|x| (≥1e-3)``.

        >>> Band(abs=0.002).describe(), Band(abs=1e-3, rel=1e-3).describe()
        ('±0.002', '±0.001·|x| (≥0.001)')
        """
        if self.is_exact:
            return "exact"
        if self.rel == 0.0:
            return f"±{self.abs:g}"
        if self.abs == 0.0:
            return f"±{self.rel:g}·|x|"
        return f"±{self.rel:g}·|x| (≥{self.abs:g})"


DEFAULT_BANDS: Mapping[Kind, Band] = {
    "exact": Band(),
    "verdict": Band(),
    "prob": Band(abs=2e-3),
    "logit": Band(abs=1e-3, rel=1e-3),
    "float": Band(abs=1e-5, rel=1e-4),
}

# Name rules, checked in this order (first match wins). Patterns are matched against the
# field's name (the last non-index part of its path), case-insensitively.
_NAME_RULES: tuple[tuple[Kind, tuple[str, ...]], ...] = (
    ("verdict", ("passed", "verdict")),
    ("exact", ("rank", "ranks", "*_rank", "*_ranks", "token_id", "token_ids", "*_token_id", "*_token_ids")),
    (
        "logit",
        (
            "logit", "logits", "*_logit", "*_logits", "logit_*", "loss", "*_loss", "losses",
            "log_prob", "log_probs", "*_log_prob", "*_log_probs", "logprob", "logprobs",
        ),
    ),
    ("prob", ("prob", "probs", "*_prob", "*_probs", "p_*", "accuracy", "*_accuracy")),
)  # fmt: skip


def kind_for_name(name: str) -> Kind | None:
    """The kind a field name implies, or ``None`` when the name says nothing.

    >>> [kind_for_name(n) for n in ("rank", "answer_rank", "log_prob", "p_correct", "x")]
    ['exact', 'exact', 'logit', 'prob', None]
    """
    lowered = name.lower()
    for kind, patterns in _NAME_RULES:
        if any(fnmatchcase(lowered, pattern) for pattern in patterns):
            return kind
    return None


def kind_for(name: str, value: object, explicit: str | None = None) -> Kind:
    """The kind of one leaf: ``explicit`` (from field metadata) wins, then the name rules;
    ``str``/``bool``/``None`` are always compared exactly, and an unnamed ``int`` too.

    >>> kind_for("logit", 3.5), kind_for("count", 3), kind_for("score", 0.5)
    ('logit', 'exact', 'float')
    >>> kind_for("score", 0.5, explicit="prob")
    'prob'
    """
    if explicit is not None:
        return check_kind(explicit)
    by_name = kind_for_name(name)
    if by_name is not None:
        return by_name
    return "float" if isinstance(value, float) else "exact"


def check_kind(kind: str) -> Kind:
    """Return ``kind`` if it is a valid kind name, else raise :class:`ToleranceError`."""
    if kind not in KINDS:
        raise ToleranceError(f"unknown tolerance kind {kind!r}; valid kinds: {', '.join(KINDS)}")
    return kind


def dtype_factor(*dtypes: str | None) -> float:
    """The widening for values computed in any of ``dtypes`` (the widest wins).

    >>> dtype_factor("float32"), dtype_factor("float32", "bfloat16"), dtype_factor(None)
    (1.0, 50.0, 1.0)
    """
    factors = [DTYPE_FACTORS.get(d.removeprefix("torch."), 1.0) for d in dtypes if d]
    return max(factors, default=1.0)


@dataclass(frozen=True)
class _Partial:
    """A ``{"abs": …, "rel": …}`` override, frozen (``None`` keeps the default)."""

    abs: float | None = None
    rel: float | None = None


def _freeze(value: ToleranceValue) -> ToleranceValue | _Partial:
    if isinstance(value, Mapping):
        return _Partial(abs=value.get("abs"), rel=value.get("rel"))
    return value


def _apply(base: Band, kind: Kind, value: ToleranceValue | _Partial, key: str) -> Band:
    """Turn one user override into a band, starting from ``base``."""
    if isinstance(value, Band):
        return value
    if isinstance(value, _Partial):
        band = Band(
            abs=base.abs if value.abs is None else float(value.abs),
            rel=base.rel if value.rel is None else float(value.rel),
        )
        if band.abs < 0 or band.rel < 0:
            raise ToleranceError(f"tolerance for {key!r} must be >= 0, got {value!r}")
        return band
    if isinstance(value, bool):
        raise ToleranceError(f"tolerance for {key!r} must be a number, a dict or a Band, not a bool")
    if isinstance(value, (int, float)):
        if value < 0 or math.isnan(value):
            raise ToleranceError(f"tolerance for {key!r} must be >= 0, got {value!r}")
        if kind in ("logit", "float"):
            return replace(base, rel=float(value))
        return Band(abs=float(value), rel=base.rel)
    if isinstance(value, Mapping):
        unknown = set(value) - {"abs", "rel"}  # validated before freezing
        if unknown:
            raise ToleranceError(f"tolerance for {key!r}: unknown keys {sorted(unknown)}; use 'abs' and 'rel'")
        band = Band(abs=float(value.get("abs", base.abs)), rel=float(value.get("rel", base.rel)))
        if band.abs < 0 or band.rel < 0:
            raise ToleranceError(f"tolerance for {key!r} must be >= 0, got {dict(value)!r}")
        return band
    raise ToleranceError(
        f"tolerance for {key!r} must be a number, a {{'abs': …, 'rel': …}} dict or a Band, "
        f"not {type(value).__name__}"
    )


def _path_matches(pattern: str, path: str, name: str) -> bool:
    """Dotted glob match: ``*`` matches one path part, ``**`` any number of parts; a
    pattern without a dot matches the field name wherever it is (like .gitignore)."""
    if "." not in pattern and pattern != "**":
        return fnmatchcase(name, pattern)
    return _match_parts(pattern.split("."), path.split(".") if path else [])


def _match_parts(pattern: list[str], parts: list[str]) -> bool:
    if not pattern:
        return not parts
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_match_parts(rest, parts[i:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatchcase(parts[0], head) and _match_parts(rest, parts[1:])


@dataclass(frozen=True)
class Tolerance:
    """Default bands per kind, overrides by kind or by dotted path glob, and a widening.

    Build one with :meth:`default`, then derive: :meth:`with_overrides` (later overrides
    win; path overrides beat kind overrides) and :meth:`for_dtype`.

    >>> tol = Tolerance.default().with_overrides({"logit": 0.01, "logit_diff": {"abs": 0.1}})
    >>> tol.band("logit", "logit"), tol.band("diffs.logit_diff", "logit")
    (Band(abs=0.001, rel=0.01), Band(abs=0.1, rel=0.01))
    """

    bands: tuple[tuple[Kind, Band], ...] = tuple(DEFAULT_BANDS.items())
    overrides: tuple[tuple[str, ToleranceValue | _Partial], ...] = ()
    factor: float = 1.0
    dtypes: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def default(cls) -> Tolerance:
        """The float32 defaults of the table in this module's docstring."""
        return cls()

    def with_overrides(self, spec: ToleranceSpec | None = None, /, **by_name: ToleranceValue) -> Tolerance:
        """A copy with more overrides. Keys are kind names (``"prob"``) or dotted path
        globs (``"top_tokens.*.prob"``); a key without a dot that is not a kind matches a
        field of that name anywhere."""
        items = [*(spec or {}).items(), *by_name.items()]
        for key, value in items:
            if not isinstance(key, str) or not key:
                raise ToleranceError(f"tolerance keys must be kind names or dotted paths, got {key!r}")
            _apply(DEFAULT_BANDS["float"], "float", value, key)  # validate early
        bands = dict(self.bands)
        path_overrides = list(self.overrides)
        for key, value in items:
            if key in KINDS:
                kind = check_kind(key)
                bands[kind] = _apply(bands[kind], kind, _freeze(value), key)
            else:
                path_overrides.append((key, _freeze(value)))
        return replace(self, bands=tuple(bands.items()), overrides=tuple(path_overrides))

    def for_dtype(self, *dtypes: str | None) -> Tolerance:
        """A copy widened for values computed in ``dtypes`` (see :data:`DTYPE_FACTORS`)."""
        named = tuple(d for d in dtypes if d)
        return replace(self, factor=dtype_factor(*named), dtypes=named)

    def base_band(self, path: str, name: str, kind: Kind) -> Band:
        """The band before dtype widening."""
        band = dict(self.bands)[kind]
        for pattern, value in self.overrides:
            if _path_matches(pattern, path, name):
                band = _apply(band, kind, value, pattern)
        return band

    def band(self, path: str, kind: Kind, name: str | None = None) -> Band:
        """The band for the leaf at dotted ``path`` of ``kind``, widened for the dtype
        (``exact`` and ``verdict`` bands are never widened: a rank that may move by 1 in
        float32 may move by 1 in bfloat16 too).

        ``name`` is the field name used by dot-less patterns; it defaults to the last
        non-numeric part of ``path``.
        """
        if name is None:
            name = field_name(path)
        band = self.base_band(path, name, kind)
        if kind in EXACT_KINDS:
            return band
        return band.scaled(self.factor)


def field_name(path: str) -> str:
    """The name that kinds and dot-less patterns see: the last non-index part of a path.

    >>> field_name("top_tokens.3.prob"), field_name("logits.0.7"), field_name("")
    ('prob', 'logits', '')
    """
    for part in reversed(path.split(".")):
        if part and not part.lstrip("-").isdigit():
            return part
    return ""
