"""Exercises made from each note's structure, deterministically, each with its solution and citation.

Five kinds, all read off what the notes already contain:

- ``cloze``: a defined term blanked out of its defining sentence (the front matter's ``definition`` and
  ``definitions``), answered in words; the note's own alternative name ("sigmoid (logistic function)") counts too;
- ``formula``: a display equation ``LHS = ... = RHS`` of "Definition and derivation" with its right-hand side
  asked for; only equations the grader can read symbolically are used;
- ``next-step``: in a chain of equalities, which step comes next, as multiple choice; the wrong options are the
  right step with one plausible slip (a sign, an exponent, a fraction turned over), each checked to differ;
- ``why``: a sentence "<claim> because <reason>" turned into "Why ...?", graded against the reason;
- ``numeric``: the note's ``python exercise`` block with fresh seeded numbers (:mod:`rag.practice.numeric`).

An exercise's id (``slug:kind:hash``) stays the same while its source text does, so a learner's schedule
survives edits elsewhere in the note.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from rag.artifacts import StorageError, write_atomic
from rag.chunking import chunk_note
from rag.compose import _DEPENDENT_START, NoteBook, Sentence, prose_sentences
from rag.corpus import Note, load_corpus
from rag.practice.grading import LETTERS, grade_formula
from rag.practice.mathparse import UnreadableMath, read_formula
from rag.settings import get_settings
from rag.support import content_words

KINDS = ("cloze", "formula", "next-step", "why", "numeric")
BLANK = "_____"


@dataclass
class Exercise:
    id: str  # slug:kind:hash of its source text
    kind: str  # one of KINDS
    source: str  # the note, e.g. corpus/calculus/chain_rule.md
    title: str  # the note's title
    cite: str  # where in the note: "Activation Functions › Definition and derivation › Sigmoid"
    prompt: str  # Markdown with $...$ math
    solution: str  # what a right answer is, Markdown
    answer: str = ""  # the gold: a formula (LaTeX), a term, a letter, a reason
    accepted: list[str] = field(default_factory=list)  # cloze: every accepted term
    choices: list[str] = field(default_factory=list)  # next-step: the options (LaTeX), in order A, B, ...
    key_terms: list[str] = field(default_factory=list)  # why: words a right reason says
    tolerance: float = 0.0  # numeric
    seed: int | None = None  # numeric: the seed its numbers came from

    @property
    def slug(self) -> str:
        return self.id.split(":", 1)[0]

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _id(note: Note, kind: str, text: str) -> str:
    return f"{note.slug}:{kind}:{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def _cite(s: Sentence, note: Note) -> str:
    return " › ".join(p for p in (note.title, s.section, s.subsection) if p)


# --------------------------------------------------------------------------- cloze

def cloze_exercises(note: Note) -> list[Exercise]:
    """One cloze per defined term whose defining sentence names it in words, outside its math."""
    defined = {note.title.split(":")[0].split("(")[0].strip(): note.definition, **note.definitions}
    out = []
    for term, sentence in defined.items():
        candidates = [term, *(a for a in note.aliases if a.lower() != term.lower())]
        found = next(((m, name) for name in candidates
                      if (m := re.search(rf"(?<![\w$\\]){re.escape(name)}s?(?![\w])", _prose(sentence), re.I))), None)
        if found is None or found[0].start() > len(sentence) // 2:
            continue
        m, name = found
        synonym = re.match(r"\s*\(([^)$]{3,40})\)", sentence[m.end():])
        blanked = sentence[:m.start()] + BLANK + sentence[m.end():]
        if synonym:  # "The sigmoid (logistic function) is": the synonym would give the answer away
            blanked = blanked.replace(synonym.group(0), "", 1)
        if re.search(re.escape(name), _prose(blanked), re.I):
            continue  # the sentence says the term again
        accepted = [name, *([synonym.group(1)] if synonym else [])]  # not the front matter's key: it may be
        # another name ("truncated BPTT" for a blank that reads "Truncated _____")
        out.append(Exercise(_id(note, "cloze", sentence), "cloze", note.source, note.title,
                            f"{note.title} › In short", f"Fill in the blank: {blanked}",
                            f"**{name}**: {sentence}", name, list(dict.fromkeys(accepted))))
    return out


def _prose(text: str) -> str:
    """The text with its math blanked (same length), so a term inside $...$ is not matched."""
    return re.sub(r"\$[^$]*\$", lambda m: "§" * len(m.group(0)), text)


# --------------------------------------------------------------------------- formulas and derivation steps

def display_parts(sentence: Sentence) -> tuple[str, str, list[str]] | None:
    """(introduction, first equation's LaTeX, its parts split at top-level '=') of a sentence with display math."""
    if "$$" not in sentence.text:
        return None
    intro, display = sentence.text.split("$$", 1)
    display = display.split("$$", 1)[0]
    display = re.sub(r"\\(?:begin|end)\{(?:aligned|align\*?|split)\}|\\\\|&", " ", display)
    display = re.split(r"\\q?quad|\\text|,\s*(?:\\;|\\,|$)", display)[0].strip().rstrip(".,; ")
    parts = _split_top_level(display, "=")
    if len(parts) < 2 or any(not p.strip() for p in parts):
        return None
    return intro.strip(), display, [p.strip() for p in parts]


def _split_top_level(text: str, sep: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += {"{": 1, "(": 1, "[": 1, "}": -1, ")": -1, "]": -1}.get(ch, 0)
        if ch == sep and depth == 0 and text[i - 1:i] not in ("\\", "!", "<", ">"):
            parts.append(text[start:i])
            start = i + 1
    return [*parts, text[start:]]


def readable(latex: str) -> bool:
    """Can the grader read this as a formula with at least one variable (not a bare number or one symbol)?"""
    try:
        expr = read_formula(latex)
    except (UnreadableMath, TypeError, ValueError, RecursionError):
        return False
    return bool(expr.free_symbols or expr.atoms(*_applied())) and not expr.is_Symbol


_LETTER = (r"(?:\\(?:mathbf|boldsymbol|bm)\{\\?[A-Za-z]+\}|\\(?:alpha|beta|gamma|delta|epsilon|eta|theta|lambda|mu|"
           r"nu|xi|pi|rho|sigma|tau|phi|varphi|chi|psi|omega|kappa|Phi|Sigma|Gamma|Lambda)(?![A-Za-z])|"
           r"(?<![\\A-Za-z])[A-Za-z](?![A-Za-z]))(?:_\{[^{}]*\}|_[A-Za-z0-9])?")
_NOT_LETTERS = re.compile(r"\\(?:operatorname|mathrm|text|mathbb|mathcal)\{[^{}]*\}")


def in_terms_of(latex: str) -> str:
    """"Write the right-hand side in terms of $x$, $\\sigma$.": the letters the answer uses, as the note writes
    them, so the question says which notation it expects."""
    letters = list(dict.fromkeys(re.findall(_LETTER, _NOT_LETTERS.sub(" ", latex))))
    letters = [t for t in letters if t not in ("d", "e")]  # d of dx, Euler's e
    return "Write the right-hand side" + (f" in terms of {', '.join(f'${t}$' for t in letters)}." if letters else ".")


def _applied():
    from sympy.core.function import AppliedUndef
    return (AppliedUndef,)


def formula_exercises(note: Note, sentences: list[Sentence]) -> list[Exercise]:
    out = []
    for s in sentences:
        parsed = display_parts(s) if s.section == "Definition and derivation" else None
        if parsed is None:
            continue
        intro, display, parts = parsed
        lhs, rhs = parts[0], parts[-1]
        if not readable(rhs) or rhs.replace(" ", "") in lhs.replace(" ", "") or len(lhs) > 80:
            continue
        if not intro or _DEPENDENT_START.match(intro) or re.match(r"(?:therefore|consequently)\b", intro, re.I):
            continue  # "Then ... $$x^T A x = ?$$": without what came before, the question is ambiguous
        out.append(Exercise(_id(note, "formula", display), "formula", note.source, note.title, _cite(s, note),
                            f"{intro}\n\n$$\n{lhs} = \\;?\n$$\n\n{in_terms_of(rhs)}",
                            f"$$\n{display}\n$$", rhs))
    return out


def definition_formula_exercises(note: Note) -> list[Exercise]:
    """A formula the front matter's definitions state inline ("... has derivative $\\sigma'(x) = ...$"), asked
    for in its own sentence."""
    out = []
    for sentence in [note.definition, *note.definitions.values()]:
        for m in re.finditer(r"\$([^$]+)\$", sentence):
            parts = [p.strip() for p in _split_top_level(m.group(1), "=")]
            if len(parts) < 2 or len(parts[0]) > 60 or not readable(parts[-1]) or not readable(parts[0]):
                continue
            asked = sentence[:m.start()] + f"${parts[0]} = \\;?$" + sentence[m.end():]
            out.append(Exercise(_id(note, "formula", sentence + m.group(1)), "formula", note.source, note.title,
                                f"{note.title} › In short", f"Complete the formula:\n\n{asked}\n\n"
                                f"{in_terms_of(parts[-1])}", sentence, parts[-1]))
    return out


def slips(step: str) -> list[str]:
    """The step with one plausible slip each: a sign, an exponent, a fraction turned over, a 1 - that became 1 +."""
    out = []
    depth, signs = 0, []
    for i, ch in enumerate(step):
        depth += {"{": 1, "(": 1, "}": -1, ")": -1}.get(ch, 0)
        if ch in "+-" and depth == 0 and step[:i].strip() and step[:i].rstrip()[-1] not in "{(^_=":
            signs.append(i)
    if signs:
        i = signs[0]
        out.append(step[:i] + ("+" if step[i] == "-" else "-") + step[i + 1:])
    if (m := re.search(r"\^\{(-?\d+)\}|\^(\d)", step)) is not None:
        n = int(m.group(1) or m.group(2))
        out.append(step[:m.start()] + f"^{{{n + 1 if n != -1 else 1}}}" + step[m.end():])
    if (m := re.search(r"\\frac\{([^{}]+)\}\{([^{}]+)\}", step)) is not None:
        top, bottom = m.group(1), m.group(2)
        turned = f"{{{bottom}}}" if top.strip() == "1" else f"\\frac{{{bottom}}}{{{top}}}"
        out.append(step[:m.start()] + turned + step[m.end():])
    if "1-" in step.replace(" ", ""):
        out.append(re.sub(r"1\s*-", "1+", step, count=1))
    squeezed = {step.replace(" ", "")}
    unique = []
    for o in out:
        if o.replace(" ", "") not in squeezed:
            squeezed.add(o.replace(" ", ""))
            unique.append(o)
    return unique


def next_step_exercises(note: Note, sentences: list[Sentence]) -> list[Exercise]:
    out = []
    for s in sentences:
        parsed = display_parts(s) if s.section == "Definition and derivation" else None
        if parsed is None or len(parsed[2]) < 3:
            continue
        intro, display, parts = parsed
        right = parts[-1]
        wrong = [w for w in slips(right) if _surely_differs(w, right)][:3]
        if len(wrong) < 2:
            continue
        key = int(hashlib.sha1(display.encode()).hexdigest(), 16)
        options = sorted([right, *wrong], key=lambda o: hashlib.sha1(f"{key}{o}".encode()).hexdigest())
        shown = " = ".join(parts[:-1])
        listing = "\n".join(f"- **{LETTERS[i]}**: ${o}$" for i, o in enumerate(options))
        letter = LETTERS[options.index(right)]
        out.append(Exercise(_id(note, "next-step", display), "next-step", note.source, note.title, _cite(s, note),
                            f"Which step comes next?\n\n$$\n{shown} = \\;?\n$$\n\n{listing}",
                            f"**{letter}**:\n\n$$\n{display}\n$$", letter, choices=options))
    return out


def _surely_differs(candidate: str, right: str) -> bool:
    """A slip is a wrong option only if it really is wrong: read and compared where the grader can read it."""
    try:
        verdict = grade_formula(candidate, right)
    except (UnreadableMath, TypeError, ValueError, RecursionError):
        return candidate.replace(" ", "") != right.replace(" ", "")
    differs = candidate.replace(" ", "") != right.replace(" ", "")
    return verdict.correct is False or (verdict.correct is None and differs)


# --------------------------------------------------------------------------- why

# A reason and what it explains, in the ways the notes say it.
_CLAIM_BECAUSE = re.compile(r"^(?P<claim>[^;]+?),?\s+(?:because|since)\s+(?P<reason>.+)$")
_BECAUSE_CLAIM = re.compile(r"^Because\s+(?P<reason>[^,]+),\s+(?P<claim>.+)$")
_REASON_SO = re.compile(r"^(?P<reason>[^;]+?),\s+so\s+(?!that\b)(?P<claim>.+)$")
WHY_SECTIONS = ("Intuition", "Definition and derivation", "How it is used in ML")


def reason_pairs(text: str) -> list[tuple[str, str]]:
    """(claim, reason) pairs a sentence states: "C because R", "Because R, C", "R, so C"."""
    masked = _prose(text)
    pairs = []
    for pattern in (_CLAIM_BECAUSE, _BECAUSE_CLAIM, _REASON_SO):
        m = pattern.match(masked)
        if m:
            pairs.append((text[m.start("claim"):m.end("claim")].strip().rstrip("."),
                          text[m.start("reason"):m.end("reason")].strip().rstrip(".")))
    return pairs


def why_exercises(note: Note, sentences: list[Sentence], spread) -> list[Exercise]:
    """"C because R" -> "Why is it that C?", graded against R. The key terms are the reason's words that the claim
    does not say and that weigh most in this note (tf-idf: often here, rare elsewhere; ``spread(stem)`` is in how
    many notes a word occurs)."""
    weigh = _term_weights(note, spread)
    out = []
    for s in sentences:
        if s.section not in WHY_SECTIONS or s.bullet or "$$" in s.text:
            continue
        for claim, reason in reason_pairs(s.text)[:1]:
            prose = _prose(reason)
            if not _plain_claim(claim) or not 4 <= len(prose.replace("§", " ").split()) <= 40 \
                    or prose.count("§") > len(prose) / 3:
                continue
            out.append(Exercise(_id(note, "why", s.text), "why", note.source, note.title, _cite(s, note),
                                f"Why is it that {_mid_sentence(claim, note)}?", s.text, reason,
                                key_terms=_key_terms(prose, claim, weigh)))
    return out


def _term_weights(note: Note, spread):
    """stem -> its tf-idf weight in this note: often here, rare in the other notes."""
    counts = collections.Counter(content_words(_prose(note.body)))
    return lambda stem: counts[stem] * math.log(100 / (1 + spread(stem)))


def _key_terms(reason: str, question: str, weigh, keep: int = 2) -> list[str]:
    """The reason's words that the question does not say and that weigh most in the note."""
    asked = set(content_words(question))
    words = [w for w in dict.fromkeys(re.findall(r"[A-Za-z][A-Za-z-]{3,}", reason))
             if content_words(w) and not set(content_words(w)) & asked]
    return sorted(words, key=lambda w: -weigh(content_words(w)[0]))[:keep]


def _mid_sentence(phrase: str, note: Note) -> str:
    """The phrase as it reads inside a sentence: lower-cased first letter, unless it is a name or an acronym."""
    keep = phrase[:2].isupper() or phrase.split()[0] in note.aliases or phrase.split()[0] == note.title.split()[0]
    return phrase if keep else phrase[0].lower() + phrase[1:]


_PITFALL = re.compile(r"^[-*]\s+\*\*(?P<name>[^*]{3,80}?)[.:]?\*\*\s*(?P<colon>[:.—-]?)\s*(?P<what>.+)$")


def pitfall_exercises(note: Note, sentences: list[Sentence], spread) -> list[Exercise]:
    """A pitfall bullet ("**Unscaled features**: the feature with the largest units dominates the distance.
    Standardise ...") -> "What goes wrong with unscaled features, and why?", graded against its first sentence."""
    weigh = _term_weights(note, spread)
    out = []
    for s in sentences:
        m = _PITFALL.match(s.text) if s.section == "Pitfalls and failure modes" and s.bullet else None
        if m is None:
            continue
        what = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", prose_sentences(m.group("what"))[0]).rstrip(".")
        if not m.group("colon") and what[:1].islower():  # "**Unscaled features** distort dot products ..."
            what = f"{m.group('name')} {what}"
        prose = _prose(what)
        if not 4 <= len(prose.replace("§", " ").split()) <= 40 or prose.count("§") > len(prose) / 3:
            continue
        name = m.group("name").strip().rstrip(":")
        out.append(Exercise(_id(note, "why", s.text), "why", note.source, note.title, _cite(s, note),
                            f"A pitfall of *{note.title}*: **{_mid_sentence(name, note)}**. What goes wrong, and why?",
                            s.text.lstrip("-* "), what, key_terms=_key_terms(prose, name, weigh)))
    return out


_IMPERATIVE = {"ask", "take", "compute", "consider", "let", "suppose", "imagine", "picture", "start", "write", "note",
               "think", "try", "add", "put", "use", "run", "set", "give", "pick", "multiply", "divide", "feed", "train",
               "average", "roll", "flip", "draw", "fit", "plot", "see", "look", "call", "keep", "make", "replace"}


def _plain_claim(claim: str) -> bool:
    """A claim that reads as a statement on its own: five words or more, not "This ...", not an imperative or a
    quotation, mostly words rather than math."""
    words = claim.split()
    prose = _prose(claim)
    return (5 <= len(words) <= 30 and not _DEPENDENT_START.match(claim) and words[0].lower() not in _IMPERATIVE
            and not re.search(r"[\"“”?:;]", prose) and prose.count("§") < len(prose) / 3
            and not claim.startswith(("$", "*")) and not _CONTEXT_WORDS.search(prose)
            and not claim.lower().startswith(("that ", "which ", "and ", "or ", "if ", "when ", "for ")))


# Words that point back at something the claim does not say: "no single line passes through all of *them*".
_CONTEXT_WORDS = re.compile(r"\b(?:it|they|them|these|those|this|here|there|above|below|former|latter)\b", re.I)


# --------------------------------------------------------------------------- all of them

@dataclass
class ExerciseBook:
    """Every exercise of the notes, by id, and the notes they came from."""

    notes: dict[str, Note]
    exercises: dict[str, Exercise]

    def of_note(self, note: str) -> list[Exercise]:
        """The exercises of one note, given by slug, source path or title."""
        found = [n for n in self.notes.values() if note in (n.slug, n.source, n.title)]
        if not found:
            raise ValueError(f"no note '{note}' (give its slug, e.g. 'chain_rule', or its path)")
        return [e for e in self.exercises.values() if e.source == found[0].source]


def note_exercises(note: Note, book: NoteBook) -> list[Exercise]:
    sentences = book.sentences(note.source)
    found = [*cloze_exercises(note), *definition_formula_exercises(note), *formula_exercises(note, sentences),
             *next_step_exercises(note, sentences),
             *why_exercises(note, sentences, book.spread), *pitfall_exercises(note, sentences, book.spread)]
    if note.exercise_blocks:
        block = note.exercise_blocks[0]
        caption = block.code.splitlines()[0].lstrip("# ").strip()
        found.append(Exercise(f"{note.slug}:numeric:{hashlib.sha1(block.code.encode()).hexdigest()[:8]}", "numeric",
                              note.source, note.title, f"{note.title} › Worked example", caption, ""))
    return list({e.id: e for e in found}.values())


def build_exercises(notes: list[Note] | None = None, *, cache: bool = True) -> ExerciseBook:
    """Every exercise of the notes. They are kept in ``MATHRAG_HOME/practice/exercises.json`` under a key made
    of the notes' text and the generator's own code, so a later call (the next CLI command) reads them instead
    of making them again (0.1 s instead of 2 s); anything changed makes them anew."""
    notes = notes if notes is not None else load_corpus()
    path, key = get_settings().home / "practice" / "exercises.json", _cache_key(notes)
    kept = _read_kept(path, key) if cache else None
    if kept is None:
        book = NoteBook.build(notes, [c for n in notes for c in chunk_note(n)])
        kept = [e for n in notes for e in note_exercises(n, book)]
        if cache:
            _keep(path, key, kept)
    return ExerciseBook({n.source: n for n in notes}, {e.id: e for e in kept})


CACHE_FORMAT = 1
_GENERATOR_CODE = ("exercises.py", "mathparse.py", "grading.py")


def _cache_key(notes: list[Note]) -> str:
    h = hashlib.sha256(f"format {CACHE_FORMAT}".encode())
    for name in _GENERATOR_CODE:
        h.update((Path(__file__).parent / name).read_bytes())
    for n in sorted(notes, key=lambda n: n.source):
        h.update(n.source.encode() + b"\0" + n.path.read_bytes())
    return h.hexdigest()


def _read_kept(path: Path, key: str) -> list[Exercise] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [Exercise(**e) for e in data["exercises"]] if data.get("key") == key else None
    except (OSError, ValueError, TypeError, KeyError):
        return None  # none kept, another key, or a damaged file: make them again


def _keep(path: Path, key: str, exercises: list[Exercise]) -> None:
    with contextlib.suppress(StorageError, OSError):  # a read-only home keeps nothing; the exercises are right
        write_atomic(path, json.dumps({"key": key, "format": CACHE_FORMAT, "count": len(exercises),
                                       "exercises": [e.to_dict() for e in exercises]}))
