"""One canonical spelling for math, so two ways of writing a formula compare equal.

A learner, a model and a note may write the same expression differently:
``\\frac{a}{b}`` or ``a/b``, ``\\dfrac``, ``\\left(`` or ``\\bigl(``, ``σ`` or
``\\sigma``, ``x^{2}`` or ``x²``, with or without spaces and ``\\,``. The support
check (``rag.support``) and the answer-quality evaluation compare formulas in
this canonical form, :func:`normalize_math`:

1. Unicode symbols become their LaTeX names (``σ`` -> ``\\sigma``, ``−`` -> ``-``, ``²`` -> ``^2``).
2. Sizing and spacing commands go (``\\left``, ``\\bigl``, ``\\,``, ``\\cdot``, spaces, ``$``).
3. Font commands keep only their argument (``\\mathbf{x}`` -> ``x``, ``\\operatorname{softmax}`` -> ``softmax``).
4. ``\\frac{A}{B}`` becomes ``(A)/(B)``.
5. Parentheses, braces and backslashes go, and ``^\\top`` is ``^T`` (``e^{-x}`` and ``e^(-x)`` -> ``e^-x``,
   ``\\frac{1}{2}`` and ``1/2`` -> ``1/2``). Grouping is lost on purpose: it is written too many ways to compare,
   and the symbols and operators are what a wrong formula gets wrong.

The result is not meant to be read, only compared: ``normalize_math(a) in normalize_math(b)``.
"""

from __future__ import annotations

import re
import unicodedata

UNICODE = {
    "α": r"\alpha", "β": r"\beta", "γ": r"\gamma", "δ": r"\delta", "ε": r"\epsilon", "ϵ": r"\epsilon",
    "ζ": r"\zeta", "η": r"\eta", "θ": r"\theta", "ι": r"\iota", "κ": r"\kappa", "λ": r"\lambda", "μ": r"\mu",
    "ν": r"\nu", "ξ": r"\xi", "π": r"\pi", "ρ": r"\rho", "σ": r"\sigma", "τ": r"\tau", "φ": r"\phi",
    "ϕ": r"\phi", "χ": r"\chi", "ψ": r"\psi", "ω": r"\omega", "Γ": r"\Gamma", "Δ": r"\Delta", "Θ": r"\Theta",
    "Λ": r"\Lambda", "Σ": r"\Sigma", "Φ": r"\Phi", "Ψ": r"\Psi", "Ω": r"\Omega", "∇": r"\nabla",
    "∂": r"\partial", "∑": r"\sum", "∏": r"\prod", "∫": r"\int", "√": r"\sqrt", "∞": r"\infty",
    "−": "-", "–": "-", "×": r"\times", "·": "", "⋅": "", "≤": r"\le", "≥": r"\ge", "≠": r"\ne",
    "≈": r"\approx", "→": r"\to", "⊤": r"\top", "ᵀ": r"^\top", "⊙": r"\odot", "∈": r"\in", "∝": r"\propto",
    "²": "^2", "³": "^3", "⁻¹": "^-1", "¹": "^1", "₀": "_0", "₁": "_1", "₂": "_2", "ᵢ": "_i", "ⱼ": "_j",
    "‖": r"\|", "∣": "|", "“": '"', "”": '"', "’": "'",
}
# Commands that only size, space or multiply: dropped.
DROP = re.compile(
    r"\\(?:left|right|bigl|bigr|Bigl|Bigr|biggl|biggr|Biggl|Biggr|big|Big|bigg|Bigg|middle|displaystyle|textstyle"
    r"|cdot|quad|qquad|limits|nolimits)(?![A-Za-z])|\\[,;:! ]|~|\$")
# Commands whose argument is the content: \mathbf{x} -> x.
FONT = re.compile(r"\\(?:mathbf|boldsymbol|bm|mathrm|mathit|mathsf|mathtt|mathcal|mathbb|operatorname\*?|text"
                  r"|textbf|textit|textrm|vec|hat|bar|tilde)\s*")
SYNONYMS = [  # same symbol, other spelling
    (re.compile(r"\\(?:dfrac|tfrac|cfrac)(?![A-Za-z])"), r"\\frac"),
    (re.compile(r"\\(?:varepsilon)(?![A-Za-z])"), r"\\epsilon"),
    (re.compile(r"\\(?:varphi)(?![A-Za-z])"), r"\\phi"),
    (re.compile(r"\\(?:leq|leqslant)(?![A-Za-z])"), r"\\le"),
    (re.compile(r"\\(?:geq|geqslant)(?![A-Za-z])"), r"\\ge"),
    (re.compile(r"\\(?:neq)(?![A-Za-z])"), r"\\ne"),
    (re.compile(r"\\(?:lVert|rVert|Vert)(?![A-Za-z])"), r"\\|"),
    (re.compile(r"\\(?:lvert|rvert|vert)(?![A-Za-z])"), "|"),
    (re.compile(r"\\(?:intercal|mathsf\{T\}|T(?![A-Za-z]))"), r"\\top"),
    (re.compile(r"\\(?:exp)(?![A-Za-z])"), "exp"),
]


def _frac_to_slash(text: str) -> str:
    """``\\frac{A}{B}`` -> ``(A)/(B)``, innermost first, for balanced braces."""
    while True:
        start = text.find("\\frac")
        if start < 0:
            return text
        i = start + 5
        args = []
        for _ in range(2):
            while i < len(text) and text[i] == " ":
                i += 1
            if i < len(text) and text[i] == "{":
                depth, j = 0, i
                for j in range(i, len(text)):
                    depth += {"{": 1, "}": -1}.get(text[j], 0)
                    if depth == 0:
                        break
                args.append(text[i + 1 : j])
                i = j + 1
            elif i < len(text):  # \frac12: single-character arguments
                args.append(text[i])
                i += 1
        if len(args) < 2:
            return text[:start] + text[start + 5 :]
        text = text[:start] + f"({args[0]})/({args[1]})" + text[i:]


def normalize_math(text: str) -> str:
    """The canonical form of ``text`` (a formula, or prose with formulas) used for comparison."""
    text = unicodedata.normalize("NFC", text)
    text = text.replace("⁻¹", "^-1")
    text = "".join(UNICODE.get(ch, ch) for ch in text)
    for pattern, repl in SYNONYMS:
        text = pattern.sub(repl, text)
    text = DROP.sub("", text)
    previous = None
    while previous != text:  # \mathbf{x} -> x, innermost first
        previous = text
        text = re.sub(FONT.pattern + r"\{([^{}]*)\}", r"\1", text)
    text = FONT.sub("", text)
    text = re.sub(r"\\sqrt\s*\[", r"\\sqrt[", text)
    text = _frac_to_slash(text)
    text = re.sub(r"\s+", "", text).replace("\\top", "T")
    # Grouping goes too: a formula's parentheses and braces are spelled too many ways to compare
    # (``e^{-x}``, ``e^(-x)``, ``\frac{1}{2}`` -> ``(1)/(2)``, ``1/2``), and what is compared is the symbols.
    text = re.sub(r"[(){}*]", "", text)
    text = re.sub(r"\|+", "|", text.replace("\\", ""))  # \| and || are both a norm bar
    return text.lower()


def formula_in(formula: str, text: str) -> bool:
    """Whether ``formula`` occurs in ``text`` once both are in canonical form."""
    needle = normalize_math(formula)
    return bool(needle) and needle in normalize_math(text)


def pattern_found(pattern: str, text: str) -> bool:
    """A gold pattern: ``re:<regex>`` searched in the raw text (ignoring case), else a canonical substring."""
    if pattern.startswith("re:"):
        return re.search(pattern[3:], text, flags=re.IGNORECASE | re.S) is not None
    return formula_in(pattern, text)
