"""pytest-annotate: regression tests for the behaviour of transformer language models.

Everything a behaviour needs is importable from here, the one import point:

>>> import pytest_annotate as pa
>>> pa.assert_top_token                          # doctest: +ELLIPSIS
<function assert_top_token at ...>
>>> from pytest_annotate import keep_only, ablate, assert_layer_necessary
>>> lab = pa.load_model("gemma-3-270m", device="cpu")   # doctest: +SKIP
>>> pa.assert_top_token(lab, "January February March April", " May")   # doctest: +SKIP

The package's layers, from the bottom (each imports only from layers below it):
``errors``, ``results`` (the result contract) -> ``models/`` -> ``lab`` -> ``interventions/``
-> ``scoring/`` -> ``checks/``, ``algebra/``, ``strategies`` -> ``snapshot/``, ``report/``
-> ``plugin/`` (the only part that imports pytest).

Exports are resolved lazily: pytest loads this package as a plugin in every session, and importing
torch eagerly would add seconds to each start, even for sessions that never load a model.
"""

from __future__ import annotations

import importlib
import os

# MKL picks its matmul kernel by row count, so a batched sweep row and a single run round
# differently (up to 9e-5 on a Gemma logit). Conditional numerical reproducibility makes them
# bit-identical, at no measured cost. It only takes effect before the first matmul of the
# process, which is why it is set on import (pytest imports this package as a plugin, early).
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")
from typing import TYPE_CHECKING, Any  # noqa: E402

#: Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    # Models and the Lab
    "DEFAULT_MODEL": "pytest_annotate.models",
    "EMBEDDED": "pytest_annotate.models",
    "ModelSpec": "pytest_annotate.models",
    "ResolvedModel": "pytest_annotate.models",
    "load_model": "pytest_annotate.models",
    "resolve": "pytest_annotate.models",
    "Lab": "pytest_annotate.lab",
    "ForwardPass": "pytest_annotate.lab",
    "ForwardStats": "pytest_annotate.lab",
    "parity": "pytest_annotate.models.parity",
    "ParityReport": "pytest_annotate.models.parity",
    # Components and interventions
    "Component": "pytest_annotate.interventions.components",
    "ModelShape": "pytest_annotate.interventions.components",
    "parse_component": "pytest_annotate.interventions.components",
    "parse_components": "pytest_annotate.interventions.components",
    "all_components": "pytest_annotate.interventions.components",
    "head_name": "pytest_annotate.interventions.heads",
    "parse_head": "pytest_annotate.interventions.heads",
    "Intervention": "pytest_annotate.interventions.ablations",
    "ablate": "pytest_annotate.interventions.ablations",
    "skip": "pytest_annotate.interventions.ablations",
    "keep_only": "pytest_annotate.interventions.ablations",
    "bypass_norm": "pytest_annotate.interventions.ablations",
    "reference_tokens": "pytest_annotate.interventions.ablations",
    "permuted_prompts": "pytest_annotate.interventions.ablations",
    "ABLATIONS": "pytest_annotate.interventions.ablations",
    # Reading and scoring
    "AnswerScore": "pytest_annotate.scoring.answers",
    "score_answer": "pytest_annotate.scoring.answers",
    "Prediction": "pytest_annotate.scoring.reading",
    "read_prediction": "pytest_annotate.scoring.reading",
    "SweepResult": "pytest_annotate.scoring.sweeps",
    "sweep": "pytest_annotate.scoring.sweeps",
    "score_interventions": "pytest_annotate.scoring.sweeps",
    "score_items": "pytest_annotate.scoring.items",
    "ResidualDecomposition": "pytest_annotate.scoring.decomposition",
    "decompose": "pytest_annotate.scoring.decomposition",
    "HeadScores": "pytest_annotate.scoring.head_scores",
    "RepeatedRandomTokens": "pytest_annotate.scoring.head_scores",
    "CopyingBasis": "pytest_annotate.scoring.head_scores",
    "head_scores": "pytest_annotate.scoring.head_scores",
    "ROLES": "pytest_annotate.scoring.head_scores",
    "circuit_weights": "pytest_annotate.scoring.weights",
    # Checks (each check_* has an assert_* twin)
    "check_top_token": "pytest_annotate.checks.predictions",
    "assert_top_token": "pytest_annotate.checks.predictions",
    "check_rank": "pytest_annotate.checks.predictions",
    "assert_rank": "pytest_annotate.checks.predictions",
    "check_prob": "pytest_annotate.checks.predictions",
    "assert_prob": "pytest_annotate.checks.predictions",
    "check_logit_diff": "pytest_annotate.checks.predictions",
    "assert_logit_diff": "pytest_annotate.checks.predictions",
    "TopTokenResult": "pytest_annotate.checks.predictions",
    "RankResult": "pytest_annotate.checks.predictions",
    "ProbResult": "pytest_annotate.checks.predictions",
    "LogitDiffResult": "pytest_annotate.checks.predictions",
    "check_logit_lens": "pytest_annotate.checks.logit_lens",
    "assert_first_top1_layer": "pytest_annotate.checks.logit_lens",
    "lens_logits": "pytest_annotate.checks.logit_lens",
    "LogitLensResult": "pytest_annotate.checks.logit_lens",
    "check_necessity": "pytest_annotate.checks.necessity",
    "assert_layer_necessary": "pytest_annotate.checks.necessity",
    "assert_layer_unnecessary": "pytest_annotate.checks.necessity",
    "check_sufficiency": "pytest_annotate.checks.necessity",
    "assert_circuit_sufficient": "pytest_annotate.checks.necessity",
    "negative_controls": "pytest_annotate.checks.necessity",
    "NecessityResult": "pytest_annotate.checks.necessity",
    "SufficiencyResult": "pytest_annotate.checks.necessity",
    "check_decomposition": "pytest_annotate.checks.decomposition",
    "assert_decomposition_sums": "pytest_annotate.checks.decomposition",
    "DecompositionResult": "pytest_annotate.checks.decomposition",
    "check_head_role": "pytest_annotate.checks.head_roles",
    "assert_head_role": "pytest_annotate.checks.head_roles",
    "HeadRoleResult": "pytest_annotate.checks.head_roles",
    "check_k_composition": "pytest_annotate.checks.composition",
    "assert_k_composition": "pytest_annotate.checks.composition",
    "k_composition_circuit": "pytest_annotate.checks.composition",
    "composition_scores": "pytest_annotate.checks.composition",
    "CompositionResult": "pytest_annotate.checks.composition",
    # Claims over families, judged with intervals (each check_* has an assert_* twin)
    "check_top_token_rate": "pytest_annotate.checks.families",
    "assert_top_token_rate": "pytest_annotate.checks.families",
    "check_rank_rate": "pytest_annotate.checks.families",
    "assert_rank_rate": "pytest_annotate.checks.families",
    "check_prob_rate": "pytest_annotate.checks.families",
    "assert_prob_rate": "pytest_annotate.checks.families",
    "check_logit_diff_effect": "pytest_annotate.checks.families",
    "check_logit_lens_rate": "pytest_annotate.checks.families",
    "assert_logit_lens_rate": "pytest_annotate.checks.families",
    "assert_logit_diff_effect": "pytest_annotate.checks.families",
    "check_necessity_family": "pytest_annotate.checks.families",
    "assert_necessary_family": "pytest_annotate.checks.families",
    "assert_unnecessary_family": "pytest_annotate.checks.families",
    "check_sufficiency_family": "pytest_annotate.checks.families",
    "assert_sufficient_family": "pytest_annotate.checks.families",
    "FamilyResult": "pytest_annotate.checks.families",
    "EffectFamilyResult": "pytest_annotate.checks.families",
    "check_head_role_family": "pytest_annotate.checks.family_roles",
    "assert_head_role_family": "pytest_annotate.checks.family_roles",
    "HeadRoleFamilyResult": "pytest_annotate.checks.family_roles",
    "check_decomposition_family": "pytest_annotate.checks.family_roles",
    "assert_decomposition_family": "pytest_annotate.checks.family_roles",
    "DecompositionFamilyResult": "pytest_annotate.checks.family_roles",
    "check_repeat_copying": "pytest_annotate.checks.copying",
    "assert_repeat_copying": "pytest_annotate.checks.copying",
    "CopyingResult": "pytest_annotate.checks.copying",
    "check_half_patching": "pytest_annotate.checks.patching",
    "assert_half_patching": "pytest_annotate.checks.patching",
    "HalfPatchingResult": "pytest_annotate.checks.patching",
    # Results
    "Result": "pytest_annotate.results",
    "asserting": "pytest_annotate.results",
    # Snapshots
    "Projection": "pytest_annotate.snapshot.projection",
    "each": "pytest_annotate.snapshot.projection",
    # Prompt families and statistics
    "Family": "pytest_annotate.families",
    "FamilyItem": "pytest_annotate.families",
    "FamilyError": "pytest_annotate.families",
    "from_template": "pytest_annotate.families",
    "windows": "pytest_annotate.families",
    "ioi": "pytest_annotate.families",
    "from_list": "pytest_annotate.families",
    "from_jsonl": "pytest_annotate.families",
    "from_strategy": "pytest_annotate.families",
    "rate_interval": "pytest_annotate.stats",
    "bootstrap_interval": "pytest_annotate.stats",
    "paired_test": "pytest_annotate.stats",
    "control_test": "pytest_annotate.stats",
    "holm": "pytest_annotate.stats",
    "judge": "pytest_annotate.stats",
    # The checks' own error rates, measured (calibration)
    "calibrate": "pytest_annotate.calibration",
    "Calibration": "pytest_annotate.calibration",
    "CalibrationRow": "pytest_annotate.calibration",
    "ClaimType": "pytest_annotate.calibration",
    "at_the_bound": "pytest_annotate.calibration",
    "induction_family": "pytest_annotate.families",
    # Hypothesis strategies
    "counting_sequences": "pytest_annotate.strategies",
    "name_swaps": "pytest_annotate.strategies",
    "repeated_random_tokens": "pytest_annotate.strategies",
    "ordinary_token_ids": "pytest_annotate.strategies",
    # Errors
    "AnnotateError": "pytest_annotate.errors",
    "ComponentError": "pytest_annotate.errors",
    "InterventionError": "pytest_annotate.errors",
    "ModelLoadError": "pytest_annotate.errors",
    "ModelSpecError": "pytest_annotate.errors",
    "PromptError": "pytest_annotate.errors",
    "VerdictError": "pytest_annotate.errors",
    "WeakClaimWarning": "pytest_annotate.errors",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from pytest_annotate.checks.composition import (
        CompositionResult,
        assert_k_composition,
        check_k_composition,
        composition_scores,
        k_composition_circuit,
    )
    from pytest_annotate.checks.copying import CopyingResult, assert_repeat_copying, check_repeat_copying
    from pytest_annotate.checks.decomposition import (
        DecompositionResult,
        assert_decomposition_sums,
        check_decomposition,
    )
    from pytest_annotate.checks.families import (
        EffectFamilyResult,
        FamilyResult,
        assert_logit_diff_effect,
        assert_logit_lens_rate,
        assert_necessary_family,
        assert_prob_rate,
        assert_rank_rate,
        assert_sufficient_family,
        assert_top_token_rate,
        assert_unnecessary_family,
        check_logit_diff_effect,
        check_logit_lens_rate,
        check_necessity_family,
        check_prob_rate,
        check_rank_rate,
        check_sufficiency_family,
        check_top_token_rate,
    )
    from pytest_annotate.checks.family_roles import (
        DecompositionFamilyResult,
        HeadRoleFamilyResult,
        assert_decomposition_family,
        assert_head_role_family,
        check_decomposition_family,
        check_head_role_family,
    )
    from pytest_annotate.checks.head_roles import (
        HeadRoleResult,
        assert_head_role,
        check_head_role,
    )
    from pytest_annotate.checks.logit_lens import (
        LogitLensResult,
        assert_first_top1_layer,
        check_logit_lens,
        lens_logits,
    )
    from pytest_annotate.checks.necessity import (
        NecessityResult,
        SufficiencyResult,
        assert_circuit_sufficient,
        assert_layer_necessary,
        assert_layer_unnecessary,
        check_necessity,
        check_sufficiency,
        negative_controls,
    )
    from pytest_annotate.checks.patching import HalfPatchingResult, assert_half_patching, check_half_patching
    from pytest_annotate.checks.predictions import (
        LogitDiffResult,
        ProbResult,
        RankResult,
        TopTokenResult,
        assert_logit_diff,
        assert_prob,
        assert_rank,
        assert_top_token,
        check_logit_diff,
        check_prob,
        check_rank,
        check_top_token,
    )
    from pytest_annotate.errors import (
        AnnotateError,
        ComponentError,
        InterventionError,
        ModelLoadError,
        ModelSpecError,
        PromptError,
        VerdictError,
        WeakClaimWarning,
    )
    from pytest_annotate.interventions.ablations import (
        ABLATIONS,
        Intervention,
        ablate,
        bypass_norm,
        keep_only,
        permuted_prompts,
        reference_tokens,
        skip,
    )
    from pytest_annotate.interventions.components import (
        Component,
        ModelShape,
        all_components,
        parse_component,
        parse_components,
    )
    from pytest_annotate.interventions.heads import head_name, parse_head
    from pytest_annotate.lab import ForwardPass, ForwardStats, Lab
    from pytest_annotate.models.parity import ParityReport, parity
    from pytest_annotate.models import (
        DEFAULT_MODEL,
        EMBEDDED,
        ModelSpec,
        ResolvedModel,
        load_model,
        resolve,
    )
    from pytest_annotate.results import Result, asserting
    from pytest_annotate.scoring.answers import AnswerScore, score_answer
    from pytest_annotate.scoring.decomposition import ResidualDecomposition, decompose
    from pytest_annotate.scoring.head_scores import (
        ROLES,
        CopyingBasis,
        HeadScores,
        RepeatedRandomTokens,
        head_scores,
    )
    from pytest_annotate.scoring.reading import Prediction, read_prediction
    from pytest_annotate.scoring.items import score_items
    from pytest_annotate.scoring.sweeps import SweepResult, score_interventions, sweep
    from pytest_annotate.scoring.weights import circuit_weights
    from pytest_annotate.snapshot.projection import Projection, each
    from pytest_annotate.families import (
        Family, FamilyError, FamilyItem, from_jsonl, from_list, from_strategy, from_template, induction_family, ioi,
        windows,
    )
    from pytest_annotate.stats import bootstrap_interval, control_test, holm, judge, paired_test, rate_interval
    from pytest_annotate.calibration import (
        Calibration,
        CalibrationRow,
        ClaimType,
        at_the_bound,
        calibrate,
    )
    from pytest_annotate.strategies import (
        counting_sequences,
        name_swaps,
        ordinary_token_ids,
        repeated_random_tokens,
    )


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'pytest_annotate' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
