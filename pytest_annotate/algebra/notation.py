r"""How the algebra writes tokens and terms, in plain text and in LaTeX.

Plain text follows the notebook the notation comes from: tokens as Python literals
(``embed(' is')``, ``unembed(' Dublin')``), a block's contribution as ``ΔB^3``. LaTeX follows its
intended rendering: an input token underlined (:math:`\underline{\text{is}}`), an output token
overlined (:math:`\overline{\text{Dublin}}`), leading and trailing spaces dropped as the notebook
does (the plain text keeps them).

================  ======================  ==========================================  ===============
term              text                    LaTeX                                       component
================  ======================  ==========================================  ===============
token embedding   ``embed(' is')``        ``\underline{\text{is}}``                   ``embed``
learned position  ``pos(5)``              ``\mathrm{pos}_{5}``                        ``pos_embed``
block 3           ``ΔB^3``                ``\Delta B^{3}(\underline{\text{is}})``     ``L3``
attention 3       ``Δattn^3``             ``\Delta \mathrm{attn}^{3}(…)``             ``attn3``
MLP 3             ``ΔMLP^3``              ``\Delta \mathrm{MLP}^{3}(…)``              ``MLP3``
head 3.1          ``Δhead^3.1``           ``\Delta \mathrm{head}^{3.1}(…)``           ``L3H1``
attention bias 3  ``b_O^3``               ``b_O^{3}``                                  ``attn3.b_O``
================  ======================  ==========================================  ===============

>>> token_latex(" Dublin"), token_latex("a_b")
('\\text{Dublin}', '\\text{a\\_b}')
"""

from __future__ import annotations

from collections.abc import Sequence

from pytest_annotate.scoring.decomposition import Term

#: Sums with more terms than this are shown with the middle elided (``.terms`` has them all).
MAX_SHOWN_TERMS = 40
_SHOWN_AT_EACH_END = 4

_LATEX_ESCAPES = {
    "\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "$": r"\$", "&": r"\&", "#": r"\#",
    "%": r"\%", "_": r"\_", "^": r"\^{}", "~": r"\~{}",
}


def token_text(token: str) -> str:
    """A token as a Python literal, so that leading spaces show: ``' is'``."""
    return repr(token)


def token_latex(token: str) -> str:
    """A token as LaTeX text, surrounding whitespace dropped (``' Dublin'`` → ``\\text{Dublin}``)."""
    shown = token.strip() or token.replace(" ", "␣").replace("\n", "\\n").replace("\t", "\\t") or "∅"
    return r"\text{" + "".join(_LATEX_ESCAPES.get(ch, ch) for ch in shown) + "}"


def input_latex(token: str) -> str:
    r"""An input token: ``\underline{\text{is}}``."""
    return r"\underline{" + token_latex(token) + "}"


def output_latex(token: str) -> str:
    r"""An output token: ``\overline{\text{Dublin}}``."""
    return r"\overline{" + token_latex(token) + "}"


def residual_text(token: str) -> str:
    """The residual stream after the last block at ``token``: ``T(embed(' is'))``."""
    return f"T(embed({token_text(token)}))"


def residual_latex(token: str) -> str:
    return f"T({input_latex(token)})"


def term_text(term: Term, token: str, position: int) -> str:
    """A residual-stream term in plain text (see the module's table)."""
    if term.kind == "embed":
        return f"embed({token_text(token)})"
    if term.kind == "pos_embed":
        return f"pos({position})"
    if term.kind == "block":
        return f"ΔB^{term.layer}"
    if term.kind == "attn":
        return f"Δattn^{term.layer}"
    if term.kind == "mlp":
        return f"ΔMLP^{term.layer}"
    if term.kind == "head":
        return f"Δhead^{term.layer}.{term.head}"
    return f"b_O^{term.layer}"


def term_latex(term: Term, token: str, position: int) -> str:
    """A residual-stream term in LaTeX (see the module's table)."""
    arg = f"({input_latex(token)})"
    if term.kind == "embed":
        return input_latex(token)
    if term.kind == "pos_embed":
        return rf"\mathrm{{pos}}_{{{position}}}"
    if term.kind == "block":
        return rf"\Delta B^{{{term.layer}}}" + arg
    if term.kind == "attn":
        return rf"\Delta \mathrm{{attn}}^{{{term.layer}}}" + arg
    if term.kind == "mlp":
        return rf"\Delta \mathrm{{MLP}}^{{{term.layer}}}" + arg
    if term.kind == "head":
        return rf"\Delta \mathrm{{head}}^{{{term.layer}.{term.head}}}" + arg
    return rf"b_O^{{{term.layer}}}"


def join_terms(parts: Sequence[str], *, ellipsis: str = "…", plus: str = " + ") -> str:
    """Join terms with ``+``, eliding the middle of very long sums."""
    if len(parts) <= MAX_SHOWN_TERMS:
        return plus.join(parts)
    hidden = len(parts) - 2 * _SHOWN_AT_EACH_END
    middle = f"{ellipsis} ({hidden} more terms) {ellipsis}" if ellipsis == "…" else ellipsis
    return plus.join([*parts[:_SHOWN_AT_EACH_END], middle, *parts[-_SHOWN_AT_EACH_END:]])


def fmt_number(x: float) -> str:
    """A logit or inner product as the notebook prints it: two decimals."""
    return f"{x:.2f}"
