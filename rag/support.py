"""Check every sentence of an answer against the passage it cites.

An answer is only as good as its worst sentence: one invented formula with a
citation looks checked to a learner. So, whatever wrote the answer (the
composer, a small model, a large one behind an API), each sentence is judged
on its own against the passages it cites (``[n]``):

1. **Verbatim.** A sentence that occurs in its passage (citations and spacing
   aside) is supported.
2. **Math.** Every formula in it (``$...$``, ``$$...$$``, or a plain-text one
   such as ``1 + e^(-x)``) must occur in the cited passage once both are in
   canonical form (``rag.mathnorm``: ``\\frac{a}{b}`` = ``a/b``, ``\\left`` and
   spacing ignored), and every number must occur in it too.
3. **Words.** At least ``MIN_WORD_SUPPORT`` of its content words (stemmed,
   stop words removed) must occur in the cited passage.
4. **Concepts.** A sentence of the form "X is ..." whose description matches
   what the notes say of another concept Y better than what they say of X is
   unsupported: "The Jacobian is the matrix of second derivatives" has every
   word in a passage that defines both, and is still wrong (that is the Hessian).

A sentence that cites nothing is unsupported. :func:`enforce` then rebuilds the
answer one sentence at a time: a supported sentence stays; an unsupported one is
replaced by the cited passage's own closest sentence when one is close, or
removed; :class:`Support` counts what happened, for the line shown under
every answer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache

from rag.mathnorm import normalize_math
from rag.text import link_text

CITATION_RE = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
MIN_WORD_SUPPORT = 0.8
REPLACE_SIMILARITY = 0.6  # an unsupported sentence is swapped for its passage's sentence only this close
# Words that carry no content in an answer, on top of BM25's English stop words.
FILLER = frozenset({
    "answer", "answers", "question", "notes", "note", "text", "given", "which", "where", "when", "what",
    "while", "whose", "has", "have", "had", "also", "thus", "hence", "therefore", "because", "since", "so",
    "such", "like", "just", "only", "very", "more", "most", "less", "many", "much", "use", "used", "using",
    "way", "result", "results", "means", "mean", "called", "call", "make", "makes", "made", "get", "gets",
    "simply", "indeed", "here", "above", "below", "following", "explanation", "simple", "briefly", "words",
    "defined", "define", "defines", "definition", "refers", "refer", "known", "term",
})
MATH_RE = re.compile(r"\$\$.+?\$\$|\$[^$\n]+?\$", re.S)
# A formula written without dollars: operands joined by an operator, e.g. "1 + e^(-x)", "s*(1-s)", "a/b".
PLAIN_FORMULA_RE = re.compile(
    r"(?<![\w\\])(?:[A-Za-z0-9_.'\\()\[\]{}|σθμλβαηε]+\s*[-+*/=^]\s*)+[A-Za-z0-9_.'\\()\[\]{}|σθμλβαηε]+")
NUMBER_RE = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.]*\w)")
DEFINES_RE = re.compile(r"^\s*(?:the|a|an)?\s*(?P<subject>[A-Za-z][\w\s'-]{1,60}?)\s+"
                        r"(?:is|are|means|refers to|is defined as|is called)\s+(?P<rest>.+)$", re.I | re.S)


@dataclass
class SentenceCheck:
    text: str
    cited: list[int]
    supported: bool
    reason: str = ""  # why not, in a few words
    replacement: str | None = None  # the passage's own sentence shown instead


@dataclass
class Support:
    """What the check found, sentence by sentence, and the one-line summary shown under the answer."""

    sentences: list[SentenceCheck] = field(default_factory=list)

    @property
    def checked(self) -> int:
        return len(self.sentences)

    @property
    def supported(self) -> int:
        return sum(s.supported for s in self.sentences)

    @property
    def replaced(self) -> int:
        return sum(not s.supported and s.replacement is not None for s in self.sentences)

    @property
    def removed(self) -> int:
        return sum(not s.supported and s.replacement is None for s in self.sentences)

    @property
    def rate(self) -> float:
        return self.supported / self.checked if self.checked else 1.0

    def summary(self) -> str:
        if not self.checked:
            return "No sentences to check."
        line = (f"{self.supported} of {self.checked} sentence{'s' * (self.checked != 1)} supported by the "
                "passages they cite")
        changes = []
        if self.replaced:
            changes.append(f"{self.replaced} replaced by the notes' own sentence")
        if self.removed:
            changes.append(f"{self.removed} removed")
        return line + (f"; unsupported: {', '.join(changes)}." if changes else ".")

    def to_dict(self) -> dict:
        return {"checked": self.checked, "supported": self.supported, "replaced": self.replaced,
                "removed": self.removed, "summary": self.summary(),
                "sentences": [asdict(s) for s in self.sentences]}


# --------------------------------------------------------------------------- words and sentences


@lru_cache(maxsize=1)
def _stop_words() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN) | FILLER


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    from rag.index import stemmer

    return stemmer().stemWord(word)


def content_words(text: str) -> list[str]:
    """Stemmed content words, numbers and non-ASCII symbols (e.g. θ) of a text, math markup left out."""
    text = re.sub(r"\\[A-Za-z]+", " ", text)  # \frac, \mathbf: markup, not words
    words = re.findall(r"[a-z]{2,}|\d+(?:\.\d+)?|[^\x00-\x7f\s]", text.lower())
    stop = _stop_words()
    return [_stem(w) for w in words if w not in stop]


def _mask_math(text: str) -> str:
    """The text with math spans replaced by same-length filler, so sentence ends inside math are ignored."""
    return MATH_RE.sub(lambda m: "§" * len(m.group(0)), text)


def split_sentences(text: str) -> list[str]:
    """The sentences of an answer, in order; display math and a lone ``[n]`` stay with the sentence before,
    and a list item is one piece however many sentences it has.

    Joining the pieces with single spaces or blank lines gives the answer back (up to spacing).
    """
    pieces: list[str] = []
    for block in re.split(r"\n\s*\n", text.strip()):
        block = block.strip()
        if not block:
            continue
        if pieces and (block.startswith("$$") or CITATION_RE.fullmatch(block)):
            pieces[-1] += "\n\n" + block
            continue
        masked = _mask_math(block)
        lines = re.split(r"\n(?=\s*(?:[-*]|\d+\.)\s)", masked)  # list items are sentences of their own
        offset = 0
        for line in lines:
            cut = 0
            bullet = re.match(r"\s*(?:[-*]|\d+\.)\s", line)
            for m in ([] if bullet else re.finditer(r"(?<=[.!?])(?:\s*\[\d+(?:\s*,\s*\d+)*\])?\s+(?=[A-Z$(\\*])",
                                                    line)):
                end = m.start() + len(m.group(0).rstrip())
                pieces.append(block[offset + cut: offset + end].strip())
                cut = m.end()
            rest = block[offset + cut: offset + len(line)].strip()
            if rest:
                pieces.append(rest)
            offset += len(line) + 1
    merged: list[str] = []
    for piece in pieces:  # "$$ ... $$ which is ...": a sentence that goes on after its display math
        if merged and re.match(r"[a-z,;]", piece) and merged[-1].rstrip().endswith("$$"):
            merged[-1] += "\n\n" + piece
        else:
            merged.append(piece)
    return merged


def cited_numbers(sentence: str) -> list[int]:
    return [int(n) for m in CITATION_RE.finditer(sentence) for n in re.split(r"\s*,\s*", m.group(1))]


def _plain(text: str) -> str:
    """Text for the verbatim test: no citations, Markdown emphasis or spacing differences."""
    text = CITATION_RE.sub(" ", link_text(text))
    text = re.sub(r"[*_`]", "", text)
    return re.sub(r"\s+", " ", text).strip().rstrip(".").strip().lower()


def formulas(sentence: str) -> list[str]:
    """The math of a sentence: its ``$...$`` spans, and formulas written in plain text outside them."""
    found = [m.group(0).strip("$").strip() for m in MATH_RE.finditer(sentence)]
    prose = MATH_RE.sub(" ", CITATION_RE.sub(" ", sentence))
    for m in PLAIN_FORMULA_RE.finditer(prose):
        candidate = m.group(0).strip(" .,;:")
        # Hyphenated words ("first-order", "bias-variance") are words, not formulas.
        if re.fullmatch(r"[A-Za-z]+(?:-[A-Za-z]+)+", candidate) or not re.search(r"[-+*/=^]", candidate):
            continue
        found.append(candidate)
    return [f for f in found if normalize_math(f)]


def numbers(text: str) -> set[float]:
    prose = MATH_RE.sub(" ", CITATION_RE.sub(" ", text))
    return {float(n) for n in NUMBER_RE.findall(prose)}


# --------------------------------------------------------------------------- concepts the notes define


@dataclass(frozen=True)
class Concept:
    """A named concept and the sentence that defines it, with the note it belongs to."""

    name: str
    source: str
    sentence: str

    @property
    def words(self) -> frozenset[str]:
        return frozenset(content_words(self.sentence)) - frozenset(content_words(self.name))


class ConceptTable:
    """Every concept the notes define (front-matter definitions and bold terms), by name, for the concept test."""

    def __init__(self, concepts: Sequence[Concept]):
        self.concepts = list(concepts)
        self.by_name: dict[str, list[Concept]] = {}
        for c in self.concepts:
            self.by_name.setdefault(_name_key(c.name), []).append(c)

    def lookup(self, subject: str) -> list[Concept]:
        key = _name_key(subject)
        found = self.by_name.get(key, [])
        if not found and key.endswith(" matrix"):  # "the Jacobian matrix" names the Jacobian
            found = self.by_name.get(key[: -len(" matrix")], [])
        return found

    def conflict(self, sentence: str) -> str | None:
        """The other concept a definitional sentence describes ("X is <what the notes say of Y>"), or None."""
        m = DEFINES_RE.match(MATH_RE.sub(" ", CITATION_RE.sub(" ", sentence)))
        if not m:
            return None
        own = self.lookup(m.group("subject"))
        if not own:
            return None
        described = set(content_words(m.group("rest")))
        own_words = frozenset().union(*(c.words for c in own))
        sources = {c.source for c in own}
        for other in self.concepts:
            if other.source not in sources or _name_key(other.name) == _name_key(own[0].name):
                continue
            theirs = (other.words - own_words) & described
            mine = (own_words - other.words) & described
            if len(theirs) >= 1 and len(theirs) > len(mine) and len(theirs & _DISTINCTIVE) >= 1:
                return other.name
        return None


# Words that tell sibling concepts apart ("first" vs "second" derivatives, "scalar" vs "vector" function,
# L1 vs L2 penalties, ...): a conflict needs at least one of them, not just any extra word.
_DISTINCTIVE = frozenset(_w for _w in (
    "first", "second", "third", "scalar", "vector", "matrix", "absolut", "squar", "sum", "product", "maximum",
    "minimum", "max", "min", "posit", "negat", "left", "right", "row", "column", "larg", "small", "lower",
    "upper", "mean", "varianc", "bias", "true", "fals", "precis", "recal", "convex", "concav", "symmetr",
    "diagon", "ortho", "invers", "transpos", "linear", "quadrat", "l1", "l2", "zero", "one", "sparse",
    "determinist", "random", "prior", "posterior", "likelihood", "joint", "condit", "margin", "entropi",
    "curvatur", "slope", "gradient", "hessian", "jacobian", "deriv", "integr",
))


def _name_key(name: str) -> str:
    name = re.sub(r"[^a-z0-9 ]+", " ", name.lower())
    name = re.sub(r"^(?:the|a|an) ", "", re.sub(r"\s+", " ", name).strip())
    return name


def concepts_from_notes(notes) -> list[Concept]:
    """Concepts of the notes: each title and alias with the note's definition, each ``definitions`` entry,
    and each bold term of "Definition and derivation" with the sentence it is bold in."""
    concepts: list[Concept] = []
    for note in notes:
        others = [*note.definitions, *re.findall(r"\*\*([^*]{2,40})\*\*", note.body)]
        first = note.aliases[0] if note.aliases else note.title
        # The note's definition names its main concept, unless it defines several at once
        # ("The Jacobian ... and the Hessian ..."): then it says nothing specific about either.
        if note.definition and not any(_name_key(o) != _name_key(first) and _name_key(o) in _name_key(
                note.definition) for o in others):
            for name in (note.title, first):
                concepts.append(Concept(name, note.source, note.definition))
        for term, sentence in note.definitions.items():
            concepts.append(Concept(term, note.source, sentence))
        section = re.search(r"^## Definition and derivation\n(.*?)(?=^## )", note.body, re.S | re.M)
        if section:
            for sentence in re.split(r"(?<=[.!?])\s+", section.group(1)):
                for term in re.findall(r"\*\*([^*]{2,40})\*\*", sentence):
                    if not term.endswith("."):
                        concepts.append(Concept(term, note.source, re.sub(r"\s+", " ", sentence)))
    return concepts


# --------------------------------------------------------------------------- the check


def check_sentence(sentence: str, passages: Sequence[str], concepts: ConceptTable | None = None) -> SentenceCheck:
    """Whether ``sentence`` is supported by the passages it cites (``passages[n - 1]`` is chunk ``[n]``)."""
    cited = [n for n in cited_numbers(sentence) if 1 <= n <= len(passages)]
    if not cited:
        return SentenceCheck(sentence, [], False, "cites no passage")
    context = "\n\n".join(passages[n - 1] for n in cited)
    if _plain(sentence) and _plain(sentence) in _plain(context):
        return SentenceCheck(sentence, cited, True)
    canonical = normalize_math(context)
    for formula in formulas(sentence):
        if normalize_math(formula) not in canonical:
            return SentenceCheck(sentence, cited, False, f"formula {formula!r} is not in the cited passage")
    known_numbers = numbers(context) | {float(x) for x in re.findall(r"\d+(?:\.\d+)?", context)}
    missing_numbers = sorted(numbers(sentence) - known_numbers)
    if missing_numbers:
        return SentenceCheck(sentence, cited, False, f"number {missing_numbers[0]:g} is not in the cited passage")
    words = content_words(MATH_RE.sub(" ", CITATION_RE.sub(" ", sentence)))
    if len(words) < 2 and not formulas(sentence):
        return SentenceCheck(sentence, cited, False, "too short to check")
    known = set(content_words(context))
    share = sum(w in known for w in words) / len(words) if words else 1.0
    if share < MIN_WORD_SUPPORT:
        missing = [w for w in dict.fromkeys(words) if w not in known][:3]
        return SentenceCheck(sentence, cited, False, f"words not in the cited passage: {', '.join(missing)}")
    if concepts is not None and (other := concepts.conflict(sentence)):
        return SentenceCheck(sentence, cited, False, f"describes {other}, not what it names")
    return SentenceCheck(sentence, cited, True)


def enforce(text: str, passages: Sequence[str], concepts: ConceptTable | None = None,
            replacement=None) -> tuple[str, Support]:
    """The answer with each unsupported sentence replaced or removed, and what the check found.

    ``replacement(sentence, number)`` may return the cited passage's own sentence closest to an
    unsupported one (already cited), or None to remove it.
    """
    support = Support()
    kept: list[str] = []
    for sentence in split_sentences(text):
        check = check_sentence(sentence, passages, concepts)
        if not check.supported and replacement is not None and check.cited:
            swap = replacement(sentence, check.cited[0])
            if swap and _plain(swap) not in {_plain(k) for k in kept}:
                check.replacement = swap
        support.sentences.append(check)
        if check.supported:
            kept.append(sentence)
        elif check.replacement:
            kept.append(check.replacement)
    return join_sentences(kept), support


LIST_ITEM = re.compile(r"\s*(?:[-*]|\d+\.)\s")


def join_sentences(sentences: Sequence[str]) -> str:
    """Sentences back into an answer: display math, and a list item with what follows it, set apart by a
    blank line; prose sentences joined by a space."""
    out, before = "", ""
    for s in sentences:
        if not out:
            out = s
        elif "$$" in s or re.search(r"\$\$\s*(?:\[[\d, ]+\])?$", out) or LIST_ITEM.match(s) or LIST_ITEM.match(before):
            out += "\n\n" + s
        else:
            out += " " + s
        before = s
    return out.strip()
