"""The concepts of the knowledge graph, and finding them in text.

No language model is needed: small local models extract entities poorly, and the notes already
say what their concepts are.

- **Note concepts**: one per note. Name = the note's title; aliases = the front matter's
  ``aliases``, the title without its parenthesis and the acronym inside it
  ("Singular Value Decomposition (SVD)" -> "Singular Value Decomposition", "SVD").
- **Term concepts**: the terms a note defines: the **bold** terms of its "Intuition" and
  "Definition and derivation" sections (run-in labels such as "**Cost.**" are skipped), with an
  acronym written right after a term ("**mean squared error** (MSE)") as its alias. A term that
  names a note concept (same name or alias) is that note concept, not a new node.

A concept is found in text by its name or any alias, case-insensitively, on word boundaries,
with an optional plural "s"/"es" ("singular value" also finds "singular values"). The matcher
is one compiled regular expression: alternatives sorted longest first, so "gradient descent"
wins over "gradient" at the same place.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from rag.corpus import Note

DEFINITION_SECTIONS = ("Intuition", "Definition and derivation")
_BOLD = re.compile(r"\*\*([^*\n]{2,60}?)\*\*(?:\s*\(([A-Z][A-Za-z0-9-]{1,9})\))?")
_PAREN = re.compile(r"^(.*?)\s*\(([^()]*)\)\s*$")
_ACRONYM = re.compile(r"^[A-Z][A-Za-z0-9-]*[A-Z0-9][A-Za-z0-9-]*$")  # SVD, KL, LoRA, ReLU, t-SNE-like
MIN_ALIAS_CHARS = 2


def normalize(name: str) -> str:
    """The key two spellings of a concept share: lower case, single spaces, no surrounding punctuation."""
    return re.sub(r"\s+", " ", name.replace("\u2019", "'")).strip(" .,:;'\"").lower()


def note_id(slug: str) -> str:
    return f"note:{slug}"


def term_id(name: str) -> str:
    return "term:" + re.sub(r"[^a-z0-9]+", "-", normalize(name)).strip("-")


@dataclass
class Concept:
    """A node of the graph that is a concept: a whole note, or a term a note defines."""

    id: str  # note:<slug> or term:<normalized-name>
    kind: str  # "note" | "term"
    name: str
    aliases: list[str] = field(default_factory=list)
    area: str = ""
    description: str = ""  # a note's summary; a term's defining sentence
    sources: list[str] = field(default_factory=list)  # notes that define it (a note concept: itself)

    def names(self) -> list[str]:
        """The name and aliases, each once (by normalized form)."""
        seen, out = set(), []
        for n in [self.name, *self.aliases]:
            if len(n) >= MIN_ALIAS_CHARS and normalize(n) not in seen:
                seen.add(normalize(n))
                out.append(n)
        return out


def note_concept(note: Note) -> Concept:
    aliases = list(note.aliases)
    m = _PAREN.match(note.title)
    if m:
        aliases.append(m.group(1))  # the title without "(...)"
        if _ACRONYM.match(m.group(2).strip()):
            aliases.append(m.group(2).strip())
    if ":" in note.title:  # "LoRA: Low-Rank Adaptation" -> "LoRA", "Low-Rank Adaptation"
        aliases += [part.strip() for part in note.title.split(":", 1)]
    concept = Concept(note_id(note.slug), "note", note.title, aliases, note.area, note.summary, [note.source])
    concept.aliases = [a for a in concept.names() if a != note.title]  # each spelling once
    return concept


def sections(body: str) -> list[tuple[str, str]]:
    """(level-2 heading, text) pairs of a note body, in order; text before the first "## " is skipped."""
    parts = re.split(r"^## +(.+?)\s*$", body, flags=re.M)
    return [(parts[i].strip(), parts[i + 1]) for i in range(1, len(parts) - 1, 2)]


def _sentence_around(text: str, start: int, end: int) -> str:
    """The sentence of ``text`` holding the span, Markdown emphasis removed, at most 300 characters."""
    left = max(text.rfind(". ", 0, start), text.rfind("\n\n", 0, start))
    right_candidates = [i for i in (text.find(". ", end), text.find("\n\n", end)) if i != -1]
    right = min(right_candidates) + 1 if right_candidates else len(text)
    sentence = " ".join(text[left + 1:right].replace("**", "").split())
    return sentence if len(sentence) <= 300 else sentence[:297] + "..."


def defined_terms(note: Note) -> list[tuple[str, str | None, str]]:
    """(term, acronym or None, defining sentence) for the bold terms of the note's definition sections."""
    found: list[tuple[str, str | None, str]] = []
    seen: set[str] = set()
    for heading, text in sections(note.body):
        if heading not in DEFINITION_SECTIONS:
            continue
        for m in _BOLD.finditer(text):
            term = m.group(1).strip()
            if term.endswith((".", ":", "?", "!")) or "$" in term or "\\" in term or not re.search(r"[A-Za-z]", term):
                continue  # run-in labels ("**Cost.**") and formulas are not terms
            if len(term.split()) > 6:
                continue
            acronym = m.group(2)
            inner = re.search(r"\s*\(([A-Z][A-Za-z0-9-]{1,9})\)", term)  # "mean squared error (MSE) loss"
            if inner:
                acronym = acronym or inner.group(1)
                term = (term[:inner.start()] + term[inner.end():]).strip()
            if len(term) < 3 or normalize(term) in seen:
                continue
            seen.add(normalize(term))
            found.append((term, acronym, _sentence_around(text, m.start(), m.end())))
    return found


def extract_concepts(notes: Sequence[Note]) -> tuple[list[Concept], dict[str, list[tuple[str, str]]]]:
    """All concepts of the notes, and for each note the (concept id, bold term) pairs it defines.

    Terms are merged by normalized name (and acronym) across notes; a term that is a note's name or
    alias maps to that note's concept.
    """
    concepts: dict[str, Concept] = {}
    by_name: dict[str, str] = {}  # normalized name or alias -> concept id
    for note in notes:
        c = note_concept(note)
        concepts[c.id] = c
    for c in concepts.values():  # note names first, so a term never steals a note's name
        for n in c.names():
            by_name.setdefault(normalize(n), c.id)
    defines: dict[str, list[tuple[str, str]]] = {}
    for note in notes:
        for term, acronym, sentence in defined_terms(note):
            key = normalize(term)
            cid = by_name.get(key) or (by_name.get(normalize(acronym)) if acronym else None)
            if cid is None:
                cid = term_id(term)
                concepts[cid] = Concept(cid, "term", term, [acronym] if acronym else [], note.area,
                                        sentence, [note.source])
                by_name[key] = cid
                if acronym:
                    by_name.setdefault(normalize(acronym), cid)
            elif concepts[cid].kind == "term" and note.source not in concepts[cid].sources:
                concepts[cid].sources.append(note.source)
            defines.setdefault(note.source, []).append((cid, term))
    return list(concepts.values()), defines


_WORD = re.compile(r"[^\W_]+(?:['\u2019-][^\W_]+)*")  # words, keeping "Kullback-Leibler" and "Jensen's" whole


def words(text: str) -> list[tuple[str, int, int]]:
    """(lower-cased word, start, end) for each word of the text."""
    return [(m.group(0).lower().replace("\u2019", "'"), m.start(), m.end()) for m in _WORD.finditer(text)]


def word_key(name: str) -> str:
    """A name as the matcher compares it: its words, lower case, one space apart."""
    return " ".join(w for w, _, _ in words(name))


class ConceptMatcher:
    """Find concepts in text by name or alias: case-insensitive, whole words, optional plural.

    The text is split into words once; at each word the longest run of up to ``max_words`` words
    that spells a name or alias is taken (trying the last word also without a plural "s"/"es").
    That is a dictionary lookup per (position, length): linear in the text, whatever the number
    of concepts, where one regular expression with a thousand alternatives is a hundred times slower.
    """

    def __init__(self, concepts: Iterable[Concept]):
        self.lookup: dict[str, str] = {}
        for c in sorted(concepts, key=lambda c: (c.kind != "note", c.id)):  # note concepts win a shared alias
            for n in c.names():
                key = word_key(n)
                if key:
                    self.lookup.setdefault(key, c.id)
        self.max_words = max((k.count(" ") + 1 for k in self.lookup), default=0)
        self.first_words = {k.split(" ", 1)[0] for k in self.lookup}  # most words start no name: skip them fast

    def _match(self, ws: list[str]) -> str | None:
        key = " ".join(ws)
        if key in self.lookup:
            return self.lookup[key]
        last = ws[-1]
        for suffix in ("es", "s"):
            if last.endswith(suffix) and len(last) > len(suffix) + 2:
                cid = self.lookup.get(" ".join([*ws[:-1], last[: -len(suffix)]]))
                if cid:
                    return cid
        return None

    def _could_start(self, word: str) -> bool:
        if word in self.first_words:
            return True
        return any(word.endswith(suffix) and word[: -len(suffix)] in self.first_words for suffix in ("es", "s"))

    def find(self, text: str) -> list[tuple[str, int, int]]:
        """(concept id, start, end) of each match, left to right, not overlapping."""
        ws = words(_strip_math_keep_offsets(text))
        out, i = [], 0
        while i < len(ws):
            if not self._could_start(ws[i][0]):
                i += 1
                continue
            for n in range(min(self.max_words, len(ws) - i), 0, -1):
                cid = self._match([w for w, _, _ in ws[i:i + n]])
                if cid:
                    out.append((cid, ws[i][1], ws[i + n - 1][2]))
                    i += n
                    break
            else:
                i += 1
        return out

    def counts(self, text: str) -> dict[str, int]:
        """How often each concept occurs in the text."""
        out: dict[str, int] = {}
        for cid, _, _ in self.find(text):
            out[cid] = out.get(cid, 0) + 1
        return out


def _strip_math_keep_offsets(text: str) -> str:
    """Blank out inline and display math (same length), so LaTeX commands never match a concept."""
    return re.sub(r"\$\$.*?\$\$|\$[^$\n]*\$", lambda m: " " * len(m.group(0)), text, flags=re.S)
