"""The component-name parser: one grammar, canonical names, and errors that list what is valid."""

from __future__ import annotations

from typing import get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_annotate.interventions.components import COMPONENT_KINDS, Component, ComponentKind, ModelShape, all_components, format_components, parse_component, parse_components
from pytest_annotate.errors import ComponentError

GPT2_SMALL = ModelShape(n_layers=12, n_heads=12, positional="standard", model_id="gpt2-small")
GEMMA_VALID = "Valid: L0..L17, attn0..attn17, MLP0..MLP17, L0H0..L17H3, embed, ranges like L0-L7"


def names(spec, shape=GPT2_SMALL) -> list[str]:
    return [str(c) for c in parse_components(spec, shape)]


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("L9", ["L9"]),
        ("attn9", ["attn9"]),
        ("MLP9", ["MLP9"]),
        ("mlp9", ["MLP9"]),
        ("Attn9", ["attn9"]),
        ("L5H5", ["L5H5"]),
        ("l5h5", ["L5H5"]),
        ("embed", ["embed"]),
        ("pos_embed", ["pos_embed"]),
        ("L0-L3", ["L0", "L1", "L2", "L3"]),
        ("L0-3", ["L0", "L1", "L2", "L3"]),
        ("L0 - L3", ["L0", "L1", "L2", "L3"]),
        ("attn0-2", ["attn0", "attn1", "attn2"]),
        ("attn0-attn2", ["attn0", "attn1", "attn2"]),
        ("MLP0-MLP2", ["MLP0", "MLP1", "MLP2"]),
        ("MLP7-8", ["MLP7", "MLP8"]),
        ("L4-L4", ["L4"]),
    ],
)
def test_every_written_form_parses_to_its_canonical_name(written, expected):
    assert names(written) == expected


def test_lists_and_separators_keep_order_and_drop_repeats():
    assert names("L0-L1 + MLP9, L5H5 L0") == ["L0", "L1", "MLP9", "L5H5"]
    assert names(["L0-L1", "MLP9"]) == ["L0", "L1", "MLP9"]
    assert names([Component("mlp", 9), "L1"]) == ["MLP9", "L1"]


def test_every_component_round_trips_through_its_name():
    for kind in COMPONENT_KINDS:
        for comp in all_components(GPT2_SMALL, kind):
            assert parse_component(str(comp), GPT2_SMALL) == comp


@given(st.sets(st.sampled_from([c for k in ("block", "attn", "mlp", "head") for c in all_components(GPT2_SMALL, k)]),
               min_size=1, max_size=20))
def test_formatted_sets_parse_back_to_the_same_set(components):
    text = format_components(components)
    assert set(parse_components(text, GPT2_SMALL)) == components


def test_format_compresses_runs_into_ranges():
    assert format_components(parse_components("L0-L7, MLP9", GPT2_SMALL)) == "L0-L7 + MLP9"
    assert format_components(parse_components("L4 L8 L10 L11", GPT2_SMALL)) == "L4 + L8 + L10-L11"
    assert format_components(parse_components("MLP0-7 attn0-7", GPT2_SMALL)) == "attn0-attn7 + MLP0-MLP7"


def test_hook_names_are_transformer_lens_names():
    shape = GPT2_SMALL
    assert parse_component("MLP9", shape).hook_name == "blocks.9.hook_mlp_out"
    assert parse_component("attn9", shape).hook_name == "blocks.9.hook_attn_out"
    assert parse_component("L5H5", shape).hook_name == "blocks.5.attn.hook_z"
    assert parse_component("L9", shape).hook_points == ("blocks.9.hook_resid_pre", "blocks.9.hook_resid_post")
    assert parse_component("embed", shape).hook_name == "hook_embed"
    assert parse_component("pos_embed", shape).hook_name == "hook_pos_embed"


@pytest.mark.parametrize("lab_name", ["model", "tiny_gpt2"])
def test_every_hook_point_exists_on_the_loaded_models(lab_name, request):
    lab = request.getfixturevalue(lab_name)
    kinds = [k for k in COMPONENT_KINDS if k != "pos_embed" or ModelShape.of(lab).has_pos_embed]
    hook_dict = lab.bridge.hook_dict  # a property that rebuilds its alias map on every access
    missing = [h for k in kinds for c in all_components(lab, k) for h in c.hook_points if h not in hook_dict]
    assert missing == []


def test_the_kind_literal_is_the_single_source_of_truth():
    assert get_args(ComponentKind) == COMPONENT_KINDS
    with pytest.raises(ComponentError, match="valid kinds: embed, pos_embed, block, attn, mlp, head"):
        Component("layer", 3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("L99", "layer 99 is out of range: gemma-3-270m-q4_k_m has 18 layers (0..17)"),
        ("L5H40", "head 40 is out of range: gemma-3-270m-q4_k_m has 4 heads per layer (0..3)"),
        ("MLP", "'MLP' needs a layer number, e.g. MLP9"),
        ("attn-1", "layers are numbered from 0; there is no negative layer"),
        ("X3", "'X3' is not a component name"),
        ("L0-L99", "layer 99 is out of range"),
        ("L7-L0", "the range runs backwards"),
        ("L0-MLP7", "a range joins two names of the same kind"),
        ("layer3", "write blocks as L3"),
    ],
)
def test_bad_names_are_rejected_with_the_valid_names_for_the_model(model, bad, why):
    with pytest.raises(ComponentError) as info:
        parse_components(bad, model)
    message = str(info.value)
    assert repr(bad) in message
    assert why in message
    if bad not in ("L7-L0",):
        assert GEMMA_VALID in message


def test_component_errors_are_value_errors(model):
    with pytest.raises(ValueError):
        parse_components("L99", model)


def test_pos_embed_is_rejected_for_rotary_models_and_accepted_for_learned_positions(model, tiny_gpt2):
    with pytest.raises(ComponentError, match="uses rotary position embeddings") as info:
        parse_components("pos_embed", model)
    assert "pos_embed" not in str(info.value).split("Valid:")[1]
    assert names("pos_embed", tiny_gpt2) == ["pos_embed"]
    assert "pos_embed" in ModelShape.of(tiny_gpt2).valid_names()


def test_parse_component_wants_exactly_one():
    with pytest.raises(ComponentError, match="names 8 components"):
        parse_component("L0-L7", GPT2_SMALL)


def test_empty_and_odd_inputs_are_rejected():
    with pytest.raises(ComponentError, match="no component given"):
        parse_components("", GPT2_SMALL)
    with pytest.raises(ComponentError, match="not 9"):
        parse_components([9], GPT2_SMALL)  # type: ignore[list-item]


def test_the_range_examples_in_error_messages_fit_the_model(tiny_gpt2):
    valid = ModelShape.of(tiny_gpt2).valid_names()  # 2 layers
    assert "ranges like L0-L1, attn0-1, MLP0-MLP1" in valid and "L7" not in valid
    with pytest.raises(ComponentError, match=r"ranges like L0-L1, attn0-1, MLP0-MLP1"):
        parse_components("L5", ModelShape.of(tiny_gpt2))
