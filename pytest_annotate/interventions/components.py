"""Component names as researchers write them, parsed once and checked against the model.

=============  =========================================  ===================================
written        meaning                                    canonical ``str()``
=============  =========================================  ===================================
``L9``         block 9 (attention and MLP)                ``L9``
``attn9``      block 9's attention layer                  ``attn9``
``MLP9``       block 9's MLP (``mlp9`` too)               ``MLP9``
``L5H5``       head 5 of block 5's attention              ``L5H5``
``embed``      the token embedding                        ``embed``
``pos_embed``  learned position embeddings (GPT-2 style)  ``pos_embed``
``L0-L7``      blocks 0 to 7 (``L0-7`` too)               ``L0``, ..., ``L7``
``attn0-7``    attention layers 0 to 7 (``attn0-attn7``)  ``attn0``, ..., ``attn7``
``MLP0-MLP8``  MLPs 0 to 8 (``MLP0-8``)                   ``MLP0``, ..., ``MLP8``
=============  =========================================  ===================================

Names are case-insensitive. Several names may be given as a list, or in one string separated
by commas, ``+`` or spaces (``"L0-L7 + MLP9"``). Anything else, and anything out of range for
the loaded model, raises :class:`~pytest_annotate.errors.ComponentError` listing what is valid.

>>> shape = ModelShape(n_layers=12, n_heads=12, positional="standard", model_id="gpt2-small")
>>> [str(c) for c in parse_components("L0-L2 + mlp9, L5H5", shape)]
['L0', 'L1', 'L2', 'MLP9', 'L5H5']
>>> parse_component("MLP9", shape).hook_name
'blocks.9.hook_mlp_out'
>>> format_components(parse_components("L0-L7, MLP9", shape))
'L0-L7 + MLP9'
>>> parse_component("L12", shape)
Traceback (most recent call last):
...
pytest_annotate.errors.ComponentError: 'L12': layer 12 is out of range: gpt2-small has 12 layers (0..11). Valid: L0..L11, attn0..attn11, MLP0..MLP11, L0H0..L11H11, embed, pos_embed, ranges like L0-L7, attn0-7, MLP5-MLP11.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Union, get_args

from transformer_lens.utilities import get_act_name

from pytest_annotate.errors import ComponentError

if TYPE_CHECKING:
    from pytest_annotate.lab import Lab

ComponentKind = Literal["embed", "pos_embed", "block", "attn", "mlp", "head"]
"""The kinds of component; the single source of truth for kind names."""
COMPONENT_KINDS: tuple[ComponentKind, ...] = get_args(ComponentKind)
LAYER_KINDS: tuple[ComponentKind, ...] = ("block", "attn", "mlp", "head")
"""Kinds that live in a layer (everything but the embeddings)."""

ComponentSpec = Union[str, "Component", Iterable[Union[str, "Component"]]]
"""What the parser accepts: a name, a list of names, or Component values."""

_PREFIX = {"block": "L", "attn": "attn", "mlp": "MLP"}
# The position scheme of models without learned positions, for the pos_embed error message.
_POSITIONAL_WORDS = {
    "rotary": "rotary position embeddings (applied to queries and keys inside attention)",
    "alibi": "ALiBi attention biases",
    "shortformer": "shortformer position embeddings (added to queries and keys only)",
}


@dataclass(frozen=True)
class ModelShape:
    """What the parser needs to know about a model: its size and its position scheme."""

    n_layers: int
    n_heads: int
    positional: str = "standard"
    """TransformerLens's ``positional_embedding_type``: ``standard`` means learned positions."""
    model_id: str = "the model"

    @classmethod
    def of(cls, model: Lab | ModelShape) -> ModelShape:
        if isinstance(model, ModelShape):
            return model
        return cls(
            n_layers=model.n_layers,
            n_heads=model.n_heads,
            positional=str(getattr(model.cfg, "positional_embedding_type", "standard")),
            model_id=model.model_id,
        )

    @property
    def has_pos_embed(self) -> bool:
        return self.positional == "standard"

    def valid_names(self) -> str:
        """The valid names, as the error messages list them."""
        last, heads = self.n_layers - 1, self.n_heads - 1
        names = [f"L0..L{last}", f"attn0..attn{last}", f"MLP0..MLP{last}", f"L0H0..L{last}H{heads}", "embed"]
        if self.has_pos_embed:
            names.append("pos_embed")
        if last >= 1:  # examples inside this model's range
            names.append(f"ranges like L0-L{min(last, 7)}, attn0-{min(last, 7)}, MLP{last // 2}-MLP{last}")
        return ", ".join(names)


@dataclass(frozen=True)
class Component:
    """One named part of the model: ``Component("mlp", 9)`` is ``MLP9``.

    ``layer`` is ``None`` for the embeddings; ``head`` is set only for heads.
    """

    kind: ComponentKind
    layer: int | None = None
    head: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in COMPONENT_KINDS:
            raise ComponentError(f"unknown component kind {self.kind!r}; valid kinds: {', '.join(COMPONENT_KINDS)}")
        if (self.layer is None) != (self.kind in ("embed", "pos_embed")):
            raise ComponentError(f"a {self.kind} component {'needs' if self.layer is None else 'has no'} a layer")
        if (self.head is None) != (self.kind != "head"):
            raise ComponentError(f"a {self.kind} component {'needs' if self.head is None else 'has no'} a head index")

    def __str__(self) -> str:
        if self.kind in ("embed", "pos_embed"):
            return self.kind
        if self.kind == "head":
            return f"L{self.layer}H{self.head}"
        return f"{_PREFIX[self.kind]}{self.layer}"

    def __repr__(self) -> str:
        return f"Component({str(self)!r})"

    @property
    def sort_key(self) -> tuple[int, int, int]:
        """Order of appearance in the forward pass: embeddings, then per layer attn, heads, MLP, block."""
        order = {"embed": 0, "pos_embed": 1, "attn": 0, "head": 1, "mlp": 2, "block": 3}[self.kind]
        return (-1 if self.layer is None else self.layer, order, -1 if self.head is None else self.head)

    @property
    def hook_name(self) -> str:
        """The hook point an ablation of this component writes.

        Blocks write ``hook_resid_post`` (from ``hook_resid_pre`` of the same pass), attention
        layers ``hook_attn_out`` and MLPs ``hook_mlp_out`` (in Gemma these sit after the post-norms,
        so they are exactly what the sublayer adds to the residual stream), heads their slice of
        ``attn.hook_z``.
        """
        if self.kind == "embed":
            return get_act_name("embed")
        if self.kind == "pos_embed":
            return get_act_name("pos_embed")
        name = {"block": "resid_post", "attn": "attn_out", "mlp": "mlp_out", "head": "z"}[self.kind]
        return get_act_name(name, self.layer)

    @property
    def hook_points(self) -> tuple[str, ...]:
        """Every hook point an ablation of this component reads or writes."""
        if self.kind == "block":
            return (get_act_name("resid_pre", self.layer), self.hook_name)
        return (self.hook_name,)


# --------------------------------------------------------------------------- parsing

_SINGLE = re.compile(r"^(?:(?P<block>l)(?P<bl>\d+)(?:h(?P<head>\d+))?|(?P<sub>attn|mlp)(?P<sl>\d+))$", re.IGNORECASE)
_RANGE = re.compile(
    r"^(?P<kind>l|attn|mlp)(?P<start>\d+)\s*-\s*(?:(?P<kind2>l|attn|mlp))?(?P<stop>\d+)$", re.IGNORECASE
)
_SEPARATORS = re.compile(r"[\s,+]+")


def parse_components(spec: ComponentSpec, model: Lab | ModelShape) -> tuple[Component, ...]:
    """Parse names (``"L0-L7 + MLP9"``, ``["L5H5", "attn3"]``...) into components, in order, no repeats.

    Raises :class:`ComponentError` naming the bad name and listing the valid ones for ``model``.
    """
    shape = ModelShape.of(model)
    out: list[Component] = []
    for item in _items(spec):
        for comp in _parse_item(item, shape):
            if comp not in out:
                out.append(comp)
    if not out:
        raise ComponentError(f"no component given (got {spec!r}); name at least one. Valid: {shape.valid_names()}.")
    return tuple(out)


def parse_component(name: str | Component, model: Lab | ModelShape) -> Component:
    """Parse exactly one component name (no ranges, no lists)."""
    comps = parse_components(name, model)
    if len(comps) != 1:
        raise ComponentError(
            f"{name!r} names {len(comps)} components ({format_components(comps)}); give exactly one, e.g. 'MLP9'"
        )
    return comps[0]


def all_components(model: Lab | ModelShape, kind: ComponentKind) -> tuple[Component, ...]:
    """Every component of one kind, in forward order: ``all_components(lab, "head")`` is the 72 heads of Gemma."""
    shape = ModelShape.of(model)
    if kind == "head":
        return tuple(Component("head", layer, h) for layer in range(shape.n_layers) for h in range(shape.n_heads))
    if kind in ("block", "attn", "mlp"):
        return tuple(Component(kind, layer) for layer in range(shape.n_layers))
    if kind == "embed":
        return (Component("embed"),)
    if kind == "pos_embed":
        return (_pos_embed(shape, "pos_embed"),)
    raise ComponentError(f"unknown component kind {kind!r}; valid kinds: {', '.join(COMPONENT_KINDS)}")


def format_components(components: Iterable[Component]) -> str:
    """Canonical short text for a set of components: blocks, then attention layers, MLPs and heads,
    each in layer order, with runs of consecutive layers written as ranges.

    >>> shape = ModelShape(12, 12)
    >>> format_components(parse_components("MLP9 L0-L7 attn10 attn11", shape))
    'L0-L7 + attn10-attn11 + MLP9'
    """
    order = {"embed": 0, "pos_embed": 1, "block": 2, "attn": 3, "mlp": 4, "head": 5}
    comps = sorted(dict.fromkeys(components), key=lambda c: (order[c.kind], c.sort_key))
    parts: list[str] = []
    i = 0
    while i < len(comps):
        c = comps[i]
        j = i
        if c.kind in _PREFIX:
            while (
                j + 1 < len(comps)
                and comps[j + 1].kind == c.kind
                and comps[j + 1].layer == comps[j].layer + 1  # type: ignore[operator]
            ):
                j += 1
        if j > i:
            parts.append(f"{c}-{comps[j]}")
        else:
            parts.append(str(c))
        i = j + 1
    return " + ".join(parts)


def _items(spec: ComponentSpec) -> list[str | Component]:
    if isinstance(spec, (str, Component)):
        spec = [spec]
    items: list[str | Component] = []
    for item in spec:
        if isinstance(item, Component):
            items.append(item)
        elif isinstance(item, str):
            items.extend(_split(item))
        else:
            raise ComponentError(f"a component name must be a string like 'MLP9' or a Component, not {item!r}")
    return items


def _split(text: str) -> list[str]:
    # Ranges may carry spaces around their dash ("L0 - L7"): glue those before splitting.
    text = re.sub(r"\s*-\s*", "-", text.strip())
    return [t for t in _SEPARATORS.split(text) if t]


def _parse_item(item: str | Component, shape: ModelShape) -> list[Component]:
    if isinstance(item, Component):
        _check(item, shape, str(item))
        return [item]
    low = item.lower()
    if low in ("embed", "pos_embed"):
        return [Component("embed")] if low == "embed" else [_pos_embed(shape, item)]
    m = _SINGLE.match(item)
    if m:
        if m["block"]:
            layer = int(m["bl"])
            comp = Component("head", layer, int(m["head"])) if m["head"] else Component("block", layer)
        else:
            comp = Component(m["sub"].lower(), int(m["sl"]))  # type: ignore[arg-type]
        _check(comp, shape, item)
        return [comp]
    m = _RANGE.match(item)
    if m:
        kind = {"l": "block", "attn": "attn", "mlp": "mlp"}[m["kind"].lower()]
        if m["kind2"] and m["kind2"].lower() != m["kind"].lower():
            raise ComponentError(
                f"{item!r}: a range joins two names of the same kind, like L0-L7, attn0-attn7 or MLP0-8. "
                f"Valid: {shape.valid_names()}."
            )
        start, stop = int(m["start"]), int(m["stop"])
        if stop < start:
            raise ComponentError(f"{item!r}: the range runs backwards; write the lower layer first, e.g. "
                                 f"{_PREFIX[kind]}{stop}-{_PREFIX[kind]}{start}")
        comps = [Component(kind, layer) for layer in range(start, stop + 1)]  # type: ignore[arg-type]
        for comp in (comps[0], comps[-1]):
            _check(comp, shape, item)
        return comps
    raise ComponentError(f"{item!r} is not a component name{_why(item)}. Valid: {shape.valid_names()}.")


def _why(item: str) -> str:
    low = item.lower()
    if low in ("l", "attn", "mlp", "block", "head"):
        return f": {item!r} needs a layer number, e.g. {item}9" if low != "head" else ": write heads as L5H5"
    if re.match(r"^(l|attn|mlp)-\d", low):
        return ": layers are numbered from 0; there is no negative layer"
    if re.match(r"^(layer|block|blocks)\s*\d+$", low):
        return f": write blocks as L{re.sub(r'[^0-9]', '', low)}"
    if re.match(r"^(l\d+)?(head|h)\d*$", low) or re.match(r"^l\d+\.?h\d+$", low):
        return ": write heads as L<layer>H<head>, e.g. L5H5"
    return ""


def _check(comp: Component, shape: ModelShape, written: str) -> None:
    if comp.kind == "pos_embed":
        _pos_embed(shape, written)
        return
    if comp.layer is not None and not 0 <= comp.layer < shape.n_layers:
        raise ComponentError(
            f"{written!r}: layer {comp.layer} is out of range: {shape.model_id} has {shape.n_layers} layers "
            f"(0..{shape.n_layers - 1}). Valid: {shape.valid_names()}."
        )
    if comp.head is not None and not 0 <= comp.head < shape.n_heads:
        raise ComponentError(
            f"{written!r}: head {comp.head} is out of range: {shape.model_id} has {shape.n_heads} heads per layer "
            f"(0..{shape.n_heads - 1}). Valid: {shape.valid_names()}."
        )


def _pos_embed(shape: ModelShape, written: str) -> Component:
    if not shape.has_pos_embed:
        scheme = _POSITIONAL_WORDS.get(shape.positional, f"{shape.positional!r} positions")
        raise ComponentError(
            f"{written!r}: {shape.model_id} has no learned position embedding: it uses {scheme}, "
            f"so there is no pos_embed to ablate. Valid: {shape.valid_names()}."
        )
    return Component("pos_embed")


def kinds_of(components: Sequence[Component]) -> str:
    """A plural noun for a set of components, for messages: ``"MLPs"``, ``"heads"``, ``"components"``."""
    kinds = {c.kind for c in components}
    if len(kinds) != 1:
        return "components"
    return {"block": "blocks", "attn": "attention layers", "mlp": "MLPs", "head": "heads",
            "embed": "embeddings", "pos_embed": "position embeddings"}[kinds.pop()]
