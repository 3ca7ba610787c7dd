"""Grading a learner's answer the way a mathematician would, and saying which grader judged.

- **Formulas** are equal when SymPy simplifies their difference to zero; where it cannot, they are compared at
  random points (the numerical spot-check), and a point where they differ is shown. Names the learner defines
  count: ``s(1-s), s = sigma(x)`` is read with ``s`` replaced.
- **Numbers** are right within the exercise's stated tolerance; ``3/16``, ``\\frac{3}{16}`` and ``0.1875`` are the
  same number.
- **Words** (a cloze) are compared after normalisation (case, hyphens, articles, a plural ``s``) against the term
  and its accepted synonyms.
- **Choices** take the option's letter.
- **Reasons** ("why") are judged by the meaning (embedding cosine with the note's sentence) and by the key terms a
  right reason cannot avoid.

An answer that cannot be read (empty, unbalanced, unknown LaTeX) gets ``correct=None`` and a message that says
what was wrong: it is not a wrong answer, and it does not count as a review.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

import numpy as np
import sympy as sp

from rag.practice.mathparse import UnreadableMath, read_formula
from rag.support import content_words

SPOT_POINTS = 8  # random points of the numerical spot-check
SPOT_RANGE = (0.2, 1.8)  # positive, away from 0 and 1: logs, roots and 1/(1-x) are defined there
SPOT_RTOL = 1e-7
WHY_SIMILAR = 0.55  # the least cosine between a reason and the note's sentence that can be right


@dataclass(frozen=True)
class Verdict:
    correct: bool | None  # None: the answer could not be judged (see message)
    grader: str  # which grader judged: "symbolic (SymPy)", "numeric spot-check", "number", ...
    message: str  # one line for the learner

    @property
    def judged(self) -> bool:
        return self.correct is not None


# --------------------------------------------------------------------------- formulas

_DEFINES = re.compile(r"(?:,|;|\bwhere\b|\bwith\b)\s*([A-Za-z\\][A-Za-z0-9_\\{}]*)\s*=\s*")


def split_definitions(answer: str) -> tuple[str, dict[str, str]]:
    """("s(1-s)", {"s": "sigma(x)"}) from "s(1-s), where s = sigma(x)"; the formula itself is what follows the
    last "=" of its first part ("\\sigma'(x) = s(1-s)" -> "s(1-s)")."""
    parts = _DEFINES.split(answer)
    main, names = parts[0], {}
    for name, value in zip(parts[1::2], parts[2::2], strict=True):
        names[name.strip().lstrip("\\")] = value.strip().rstrip(".,;")
    return main.split("=")[-1].strip(), names


def grade_formula(answer: str, gold: str, rng_seed: int = 0) -> Verdict:
    """Is ``answer`` the same formula as ``gold`` (both LaTeX or plain)?"""
    try:
        main, defined = split_definitions(answer)
        names = {}
        for name, value in defined.items():
            names[name] = read_formula(value, names)
        given = read_formula(main, names)
    except UnreadableMath as exc:
        return Verdict(None, "formula reader", f"Could not read the answer: {exc}.")
    expected = read_formula(gold)
    extra = sorted(str(s) for s in given.free_symbols - expected.free_symbols)
    if extra:
        return Verdict(False, "formula reader", f"Not the formula asked for: it uses {', '.join(extra)}, which that "
                       "formula does not have (if a letter stands for something, say so: 's(1-s), s = sigma(x)').")
    differs = _differs_at(given, expected, rng_seed)
    if differs is not None:
        point, a, b = differs
        return Verdict(False, "numeric spot-check", f"Not the same formula: at {point} it gives {a:.6g}, "
                       f"the expected one gives {b:.6g}.")
    if _simplifies_to_zero(given - expected):
        return Verdict(True, "symbolic (SymPy)", "Correct: SymPy simplifies the difference to 0.")
    if differs is None and _evaluable(given, expected):
        return Verdict(True, "numeric spot-check", f"Correct: equal at {SPOT_POINTS} random points "
                       "(SymPy could not simplify the difference to 0, so this is a numerical check).")
    return Verdict(False, "symbolic (SymPy)", "Not the same formula: the difference does not simplify to 0.")


def _simplifies_to_zero(diff: sp.Expr) -> bool:
    try:
        return sp.simplify(diff) == 0
    except Exception:  # noqa: BLE001 - SymPy gives up in many ways; then the answer is not shown equal
        return False


def _evaluable(*exprs: sp.Expr) -> bool:
    return not any(e.atoms(sp.core.function.AppliedUndef) for e in exprs)


def _differs_at(given: sp.Expr, expected: sp.Expr, seed: int) -> tuple[str, float, float] | None:
    """A point where the two formulas take different values (and both values), or None."""
    if not _evaluable(given, expected):
        return None
    symbols = sorted(given.free_symbols | expected.free_symbols, key=str)
    rng = random.Random(seed)
    for _ in range(SPOT_POINTS):
        point = {s: sp.Float(round(rng.uniform(*SPOT_RANGE), 3)) for s in symbols}
        a, b = _value(given, point), _value(expected, point)
        if a is None or b is None:
            continue
        if abs(a - b) > SPOT_RTOL * max(1.0, abs(a), abs(b)):
            where = ", ".join(f"{s} = {float(v):g}" for s, v in point.items()) or "every point"
            return where, a, b
    return None


def _value(expr: sp.Expr, point: dict) -> float | None:
    try:
        v = complex(expr.evalf(subs=point))
    except Exception:  # noqa: BLE001 - no value here (a pole, a complex branch, an unknown function)
        return None
    return v.real if abs(v.imag) < 1e-12 and np.isfinite(v.real) else None


# --------------------------------------------------------------------------- numbers, words, choices

def read_number(answer: str) -> float:
    """The number the answer writes: ``0.1875``, ``3/16``, ``\\frac{3}{16}``, ``1.2e-3``, ``18.75%``."""
    text = answer.strip().replace(",", "") if re.fullmatch(r"[\d,.\s]+", answer.strip()) else answer.strip()
    percent = text.endswith("%")
    text = text.rstrip("%").strip()
    if re.fullmatch(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?", text):
        value = float(text)
    else:
        expr = read_formula(text)
        if expr.free_symbols:
            names = ", ".join(map(str, expr.free_symbols))
            raise UnreadableMath(f"'{answer.strip()}' is not a number (it has {names})")
        value = _value(expr, {})
        if value is None:
            raise UnreadableMath(f"'{answer.strip()}' is not a real number")
    return value / 100 if percent else value


def grade_number(answer: str, gold: float, tolerance: float) -> Verdict:
    try:
        value = read_number(answer)
    except UnreadableMath as exc:
        return Verdict(None, "number reader", f"Could not read the answer: {exc}.")
    off = abs(value - gold)
    if off <= tolerance:
        return Verdict(True, "number", f"Correct: {value:g} is within ±{tolerance:g} of {gold:.6g}.")
    return Verdict(False, "number", f"Not right: {value:g} is {off:.3g} away from the answer "
                   f"(a right answer is within ±{tolerance:g}).")


def normalise_words(text: str) -> str:
    text = re.sub(r"[-‐–_/]", " ", text.lower())
    text = re.sub(r"[^\w\s]", "", text)
    words = [w for w in text.split() if w not in {"a", "an", "the"}]
    return " ".join(w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in words)


def grade_cloze(answer: str, accepted: list[str]) -> Verdict:
    if not answer.strip():
        return Verdict(None, "cloze", "The answer is empty: type the missing word or words.")
    said = normalise_words(answer)
    if said in {normalise_words(a) for a in accepted}:
        return Verdict(True, "cloze (normalised words)", f"Correct: '{answer.strip()}'.")
    return Verdict(False, "cloze (normalised words)", f"Not the term the note uses here ('{answer.strip()}').")


LETTERS = "ABCDEFGH"


def grade_choice(answer: str, correct: int, options: int) -> Verdict:
    letter = answer.strip().upper().rstrip(").")
    if letter.isdigit() and 1 <= int(letter) <= options:
        letter = LETTERS[int(letter) - 1]
    if len(letter) != 1 or letter not in LETTERS[:options]:
        return Verdict(None, "choice", f"Answer with one letter, {LETTERS[0]} to {LETTERS[options - 1]}.")
    if LETTERS.index(letter) == correct:
        return Verdict(True, "choice", f"Correct: {letter}.")
    return Verdict(False, "choice", f"Not {letter}: the next step is {LETTERS[correct]}.")


# --------------------------------------------------------------------------- reasons

def readable_prose(text: str) -> str:
    """What the embedder can compare: long math spans (numbers, derivations) left out, short ones kept."""
    return re.sub(r"\$[^$]{16,}\$", " ", text).strip()


def grade_why(answer: str, gold: str, key_terms: list[str], encode, context: str = "") -> Verdict:
    """A reason is right when it means what the note says (cosine >= WHY_SIMILAR with the reason, or with the
    whole sentence ``context`` that states it) and says at least one of its key terms. ``encode(texts)`` gives
    normalised embedding rows."""
    words = re.findall(r"[A-Za-z]{2,}", answer)
    if len(words) < 3:
        return Verdict(None, "meaning", "Write the reason as a sentence (a few words at least).")
    golds = [g for g in dict.fromkeys([readable_prose(gold), readable_prose(context)]) if g]
    a, *g = encode([answer, *golds])
    similarity = max(float(np.dot(a, v)) for v in g)
    said = set(content_words(answer))
    hits = [t for t in key_terms if set(content_words(t)) <= said]
    grader = f"meaning (cosine {similarity:.2f}) and key terms"
    if similarity >= WHY_SIMILAR and (hits or not key_terms):
        return Verdict(True, grader, f"Correct: it says what the note says"
                       f"{' (' + ', '.join(hits) + ')' if hits else ''}.")
    missing = f"; the note's reason turns on: {', '.join(key_terms)}" if not hits and key_terms else ""
    return Verdict(False, grader, f"Not the note's reason (cosine {similarity:.2f}, at least {WHY_SIMILAR} "
                   f"needed){missing}.")
