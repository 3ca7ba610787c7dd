"""Read a learner's formula, typed as LaTeX (``\\sigma(x)\\bigl(1-\\sigma(x)\\bigr)``) or as plain text
(``s*(1-s)``, ``e^(-x)/(1+e^(-x))^2``), into a SymPy expression.

The reading is a small translation to SymPy's own expression syntax, then :func:`sympy.parse_expr` with implicit
multiplication: ``2x`` is ``2*x`` and ``s(1-s)`` is ``s*(1-s)``. Names the notes use for functions are real
functions, so forms a mathematician calls equal are equal here too:

    sigma(x) = 1 / (1 + e^{-x})        Phi(x) = (1 + erf(x / sqrt 2)) / 2        phi(x) = e^{-x^2/2} / sqrt(2 pi)

(``\\varphi`` is ``phi``; ``e`` is Euler's number, ``\\ln`` and ``\\log`` the natural logarithm.) A name of two or
more letters followed by ``(`` that is not known is an unknown function of its argument (``GELU(x)``); a one-letter
name followed by ``(`` multiplies (``s(1-s)``).

What cannot be read raises :class:`UnreadableMath` with a message that says what was wrong, so a grader can tell
the learner instead of calling the answer wrong.
"""

from __future__ import annotations

import keyword
import re
import warnings
from tokenize import TokenError

import sympy as sp
from sympy.parsing.sympy_parser import (
    convert_xor,
    implicit_multiplication_application,
    parse_expr,
    standard_transformations,
)


class UnreadableMath(ValueError):
    """The text is not a formula this reader understands; the message says why."""


X = sp.Symbol("x")
FUNCTIONS = {
    "sigma": sp.Lambda(X, 1 / (1 + sp.exp(-X))),
    "Phi": sp.Lambda(X, (1 + sp.erf(X / sp.sqrt(2))) / 2),
    "phi": sp.Lambda(X, sp.exp(-X**2 / 2) / sp.sqrt(2 * sp.pi)),
    "ReLU": sp.Lambda(X, sp.Max(0, X)),
    "exp": sp.exp, "log": sp.log, "ln": sp.log, "sqrt": sp.sqrt, "erf": sp.erf,
    "sin": sp.sin, "cos": sp.cos, "tan": sp.tan, "tanh": sp.tanh, "sinh": sp.sinh, "cosh": sp.cosh,
    "arctan": sp.atan, "Max": sp.Max, "Min": sp.Min, "Abs": sp.Abs,
}
CONSTANTS = {"e": sp.E, "pi": sp.pi}  # not "E": the notes write \\mathbb{E} for an expectation
_TRANSFORMS = (*standard_transformations, implicit_multiplication_application, convert_xor)

_GREEK = ("alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu nu xi omicron rho "
          "sigma tau upsilon chi psi omega Gamma Delta Theta Lambda Xi Pi Sigma Upsilon Psi Omega Phi pi").split()
_UNICODE = {"σ": "sigma", "Φ": "Phi", "φ": "phi", "π": "pi", "λ": "lambda", "μ": "mu", "θ": "theta", "α": "alpha",
            "β": "beta", "γ": "gamma", "ε": "epsilon", "η": "eta", "·": "*", "×": "*", "−": "-", "–": "-",
            "²": "^2", "³": "^3", "√": "sqrt", "÷": "/"}
# Spacing and sizing that change nothing: \left( \bigl( \, \; \quad \displaystyle ...
_NOISE = re.compile(r"\\(?:left|right|[bB]ig{1,2}[lr]?|displaystyle|textstyle|quad|qquad|[,;:!])(?![a-zA-Z])|\\ |"
                    r"\$+|&")
_WRAPPERS = re.compile(r"\\(?:operatorname|mathrm|mathit|text|mathbf|boldsymbol|bm|mathbb)\s*\{([^{}]*)\}")
_WORDS = {r"\cdot": "*", r"\times": "*", r"\div": "/", r"\ln": "log", r"\log": "log", r"\exp": "exp",
          r"\varphi": "phi", r"\phi": "phi", r"\infty": "oo", **{f"\\{f}": f for f in ("sin", "cos", "tan", "tanh",
          "sinh", "cosh", "arctan")}, r"\max": "Max", r"\min": "Min"}
_POWER_OF_FUNCTION = re.compile(r"\b(sin|cos|tan|tanh|sinh|cosh|log)\s*\^\s*\(?\s*(\d+)\s*\)?\s*\(([^()]*)\)")
UNSUPPORTED = re.compile(r"\\(?:sum|prod|int|lim|nabla|partial|top|mid|lVert|rVert|\||mathcal|hat|bar|tilde|vec|"
                         r"begin|end|le|ge|leq|geq|neq|approx|in|to|forall|exists|det|operatorname\*)(?![a-zA-Z])")


def latex_to_plain(text: str) -> str:
    """The formula in SymPy's plain syntax (``\\frac{a}{b}`` -> ``((a)/(b))``, ``x^{2}`` -> ``x^(2)``, ...)."""
    s = text.strip().rstrip(".,;")
    s = re.sub(r"√\s*([A-Za-z0-9.]+|\([^()]*\))", r"sqrt(\1)", s)  # √n, √(2π)
    for char, word in _UNICODE.items():
        s = s.replace(char, f" {word}" if word.isalpha() else word)  # "σ_1" -> " sigma_1", one name
    bad = UNSUPPORTED.search(s)
    if bad:
        raise UnreadableMath(f"'{bad.group(0)}' is beyond what the grader reads; write a single scalar formula")
    s = _NOISE.sub(" ", s)
    s = re.sub(r"\\[dt]frac", r"\\frac", s)
    while (m := _WRAPPERS.search(s)) is not None:  # "U\mathbf{x}_t" -> "U x_t": two factors, not one name
        s = s[:m.start()] + " " + m.group(1) + s[m.end():]
    for word, plain in _WORDS.items():
        s = re.sub(re.escape(word) + r"(?![a-zA-Z])", f" {plain}" if plain.isalpha() else f" {plain} ", s)
    s = _commands_with_arguments(s)
    s = re.sub(r"\\(" + "|".join(_GREEK) + r")(?![a-zA-Z])", r" \1", s)  # "\beta_t" -> " beta_t", one name
    unknown = re.search(r"\\[a-zA-Z]*", s)
    if unknown:
        raise UnreadableMath(f"unknown LaTeX command '{unknown.group(0)}'")
    s = re.sub(r"_\{([^{}]*)\}", lambda m: "_" + _subscript(m.group(1)), s)  # h_{t-1} -> h_tm1, one name
    if re.search(r"[)\]}]\s*_", s):
        raise UnreadableMath("a subscript on a bracket")
    s = re.sub(r"([A-Za-z0-9)])\s*''", r"\1_pprime", s)  # f''(x) and f'(x): names, not Python strings
    s = re.sub(r"([A-Za-z0-9)])\s*'", r"\1_prime", s)
    if "'" in s or '"' in s:
        raise UnreadableMath("a quote mark where a formula was expected")
    s = s.replace("{", "(").replace("}", ")").replace("[", "(").replace("]", ")")
    s = _POWER_OF_FUNCTION.sub(r"(\1(\3))^(\2)", s)  # tanh^(2)(x) -> (tanh(x))^(2)
    return re.sub(r"\s+", " ", s).strip()


def _subscript(text: str) -> str:
    """A subscript as part of a name: "t-1" -> "tm1", "t+1" -> "tp1", "i,j" -> "ij"."""
    name = re.sub(r"[^A-Za-z0-9]", "", text.replace("-", "m").replace("+", "p"))
    if not name:
        raise UnreadableMath(f"a subscript '{text}' that cannot be part of a name")
    return name


def _commands_with_arguments(s: str) -> str:
    """\\frac{a}{b} -> ((a)/(b)) and \\sqrt{a} -> sqrt(a), with nested braces (``\\frac{e^{-x}}{(1+e^{-x})^{2}}``)."""
    out, i = [], 0
    while (m := re.compile(r"\\(frac|sqrt)(?![a-zA-Z])").search(s, i)) is not None:
        out.append(s[i:m.start()])
        first, j = _argument(s, m.end())
        if m.group(1) == "sqrt":
            out.append(f"(sqrt({_commands_with_arguments(first)}))")
        else:
            second, j = _argument(s, j)
            out.append(f"(({_commands_with_arguments(first)})/({_commands_with_arguments(second)}))")
        i = j
    return "".join(out) + s[i:]


def _argument(s: str, i: int) -> tuple[str, int]:
    """The argument of a LaTeX command that starts at ``s[i]`` (a {group} or one character), and where it ends."""
    while i < len(s) and s[i] == " ":
        i += 1
    if i >= len(s):
        raise UnreadableMath("a \\frac or \\sqrt without its {arguments}")
    if s[i] != "{":
        return s[i], i + 1
    depth = 0
    for j in range(i, len(s)):
        depth += {"{": 1, "}": -1}.get(s[j], 0)
        if depth == 0:
            return s[i + 1:j], j + 1
    raise UnreadableMath("a { is never closed")


MAX_CHARS = 400
_MATH_CHARS = re.compile(r"[A-Za-z0-9_ +\-*/^().,<>=]*")


def _only_math(plain: str) -> None:
    """SymPy reads the text with Python's eval, so only arithmetic on names and numbers may reach it: no quotes,
    no attribute access, no dunder names, no keywords (every name is bound to a symbol or a known function)."""
    if len(plain) > MAX_CHARS:
        raise UnreadableMath(f"the formula is longer than {MAX_CHARS} characters")
    if not _MATH_CHARS.fullmatch(plain):
        bad = next(c for c in plain if not _MATH_CHARS.fullmatch(c))
        raise UnreadableMath(f"the character '{bad}' has no place in a formula here")
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", plain))
    if re.search(r"\.\s*[A-Za-z_]", plain) or any(w.startswith("_") or "__" in w for w in words):
        raise UnreadableMath("names may not start with '_' or follow a '.'")
    if words & set(keyword.kwlist) - {"lambda"}:
        raise UnreadableMath(f"'{sorted(words & set(keyword.kwlist))[0]}' is a word, not math")


def _parse(plain: str, local: dict, text: str, evaluate: bool):
    """SymPy's reading of the (checked) plain text; whatever goes wrong in the parser is an unreadable answer."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SymPy's deprecation notes about odd input ("(1, 2)^2")
            return parse_expr(plain, local_dict=local, transformations=_TRANSFORMS, evaluate=evaluate)
    except (Exception, TokenError) as exc:  # noqa: BLE001 - the parser raises IndexError, TypeError, ... on junk
        raise UnreadableMath(f"cannot read '{text.strip()}' as a formula ({type(exc).__name__})") from None


MAX_EXPONENT = 100  # a learner's formula has small powers; (x+1)^10000 would stall SymPy


def _no_huge_powers(expr) -> None:
    """Refuse a power whose exponent is a number above MAX_EXPONENT or a tower of numbers (10^10^10)."""
    for power in sp.preorder_traversal(expr):
        if isinstance(power, sp.Pow):
            e = power.exp
            if (e.is_Number and abs(e) > MAX_EXPONENT) or (not e.free_symbols and e.has(sp.Pow)):
                raise UnreadableMath(f"the exponent is too large to check (at most {MAX_EXPONENT})")


def read_formula(text: str, names: dict[str, sp.Basic] | None = None) -> sp.Expr:
    """The SymPy expression ``text`` writes; ``names`` are extra meanings (``{"s": sigma(x)}``)."""
    if not text or not text.strip():
        raise UnreadableMath("the answer is empty")
    plain = latex_to_plain(text)
    if not plain:
        raise UnreadableMath("the answer has no formula in it")
    if plain.count("(") != plain.count(")"):
        raise UnreadableMath("its brackets do not balance")
    _only_math(plain)
    plain = re.sub(r"\blambda\b", "lamda", plain)  # a Python keyword; SymPy's own spelling
    local = {**CONSTANTS, **FUNCTIONS, **(names or {})}
    for name in ("sigma", "Phi", "phi"):  # "sigma/sqrt(n)": a standard deviation, not the sigmoid
        if re.search(rf"\b{name}\b(?!\s*\()", plain):
            plain = re.sub(rf"\b{name}\b(?!\s*\()", f"{name}_", plain)
            local[f"{name}_"] = sp.Symbol(name)
    for name in set(re.findall(r"\b([A-Za-z][A-Za-z0-9_]+)\s*\(", plain)) - set(local):
        local[name] = sp.Function(name)  # GELU(x): an unknown function, the same on both sides
    for name in set(re.findall(r"\b[A-Za-z][A-Za-z0-9_]*\b", plain)) - set(local):
        local[name] = sp.Symbol(name)
    _no_huge_powers(_parse(plain, local, text, evaluate=False))  # 9^9^9^9 is refused before anything computes it
    expr = _parse(plain, local, text, evaluate=True)
    if not isinstance(expr, sp.Expr):
        raise UnreadableMath(f"'{text.strip()}' is not a single formula (it reads as {type(expr).__name__})")
    return expr
