"""Compose an answer from the notes' own structure: a direct sentence first, the formula when asked, a link.

Every note has the same shape (In short, Intuition, Definition and derivation,
Worked example, How it is used in ML, Pitfalls and failure modes, Numerical
check), and each kind of question is answered by particular sections:

| the question asks for | answered from |
|---|---|
| ``definition`` (what is X) | the note's one-sentence definition ("In short"), then the Definition section |
| ``formula`` (the formula, derivative, update rule) | the Definition section's display equations |
| ``why`` | Intuition, Definition, How it is used |
| ``how`` (how it works, how to compute) | Definition, How it is used, Intuition |
| ``compare`` (X vs Y) | the definitions of both |
| ``example`` | Worked example |
| ``failure`` (when it goes wrong) | Pitfalls |

:func:`classify` recognises the kind with a few ordered rules (measured by
``mathrag eval`` against hand labels). :func:`compose` then:

1. finds the concept the question names and its note ("the derivative of the
   *sigmoid*" -> the sigmoid), and takes the sentences of that note and of the
   best retrieved notes, three at most;
2. scores every sentence by its similarity to the question, alone and through
   its chunk (whose embedding carries its heading), the share of the
   question's words it says, a bonus for the sections that answer this kind of
   question, for naming the concept and for its note's retrieval rank; the
   numerical check, "See also", link lines, the front-matter summary (a
   description of the note) and, unless asked for, worked-example fragments
   and pitfall bullets are never candidates; a pitfall is, though, when a
   why or how question describes the learner's own trouble in a word its
   bold head says ("Why do I have to centre the data?" -> "**Forgetting to
   centre.** ...") or in several words of its text, and it then leads;
3. leads with the one sentence that answers directly: the concept's
   definition for "what is", the best sentence with its display equation for a
   formula, for "why" the argument (the best sentence that gives a reason
   rather than a definition, opened by its subsection's claim when that is
   close to the question too, with the step it depends on and the conclusion
   it leads to: "Since $e^{z_i+c} = e^c e^{z_i}$ ..."); a conclusion that
   cannot stand alone ("Hence ...") comes with its premise; adds at most
   three sentences of the same note that help (the rest of the lead's
   paragraph first, then the key equation, a reason, an example) and do not
   repeat one already chosen, in reading order; an example question is
   answered instead by the worked example itself, from its setup through its
   result, taken from the note whose example uses the question's numbers;
4. cites each sentence's passage and ends with the exact section to read next.

Every sentence is a note's own sentence, so the support check
(``rag.support``) passes it verbatim.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

import numpy as np

from rag.chunking import IN_SHORT, Chunk
from rag.corpus import Note
from rag.mathnorm import normalize_math
from rag.support import content_words
from rag.text import link_text

ASKS = ("definition", "formula", "why", "how", "compare", "example", "failure")

# Ordered rules: the first that matches decides.
_RULES: list[tuple[str, re.Pattern]] = [
    ("failure", re.compile(r"\b(?:fail\w*|go(?:es)? wrong|went wrong|going wrong|what'?s wrong|what is wrong|"
                           r"what happened|did I (?:forget|do wrong|miss)|what did I|the cause|crash\w*|blows? up|"
                           r"nans?|never (?:stops|converges|settles)|got (?:way )?worse|is useless|bug\b|pitfalls?|"
                           r"break(?:s)? down|problems? with|"
                           r"goes? bad|when (?:should I )?not|dangers?|downsides?|drawbacks?|what goes wrong|"
                           r"misconceptions?|can go wrong|numerical(?:ly)? (?:issues?|problems?|unstable))\b", re.I)),
    ("compare", re.compile(r"\b(?:difference between|differ(?:s|ent)? from|differ\b|versus|vs\.?|compare[ds]?|"
                           r"comparison|relat(?:ed|ion|ionship) (?:to|between|with)|connection between|"
                           r"connected to|same as|instead of)\b", re.I)),
    # "an example", "example of": asking for one; not "an *adversarial* example" or "training examples" (a thing).
    ("example", re.compile(r"\b(?:(?:an?|another|some|one|concrete|simple|small|numerical|numeric|toy) examples?|"
                           r"examples? (?:of|with|for|where|using|in which)|worked|for instance|show me|"
                           r"walk (?:me )?through|work through|"
                           r"step by step for|evaluate .* at|fit .* to the points|"
                           r"what (?:is|are) .* (?:at|for) (?:x|t|n|p|k) ?=)\b|\(\d+, ?\d+\)|\d+/\d+, \d+/\d+|"
                           r"\bof a (?:single|fair)\b", re.I)),
    ("why", re.compile(r"^\s*why\b|\bwhy\b|\bwhat(?: is|'s) the (?:point|reason|purpose|intuition)\b|\breason\b|"
                       r"\bpurpose\b|\bmotivat\w+|where does .* come from|\bis that a\b|\bisn'?t\b", re.I)),
    ("formula", re.compile(r"\b(?:formula|derivative|differentiat\w*|equation|expression|closed[- ]form|"
                           r"update rule|rule for|gradient of|(?:jacobian|hessian) of|partial derivative|"
                           r"write (?:down|out)|"
                           r"(?:how (?:do|does|can) (?:you|I|we|one) )?(?:compute|calculate)\b|"
                           r"how is .* (?:computed|calculated|defined)|in terms of|identity|theorem|"
                           r"expansion|(?:newton|learning) (?:step|rule)|mass function|objective|decomposition|"
                           r"hinge loss|how many|how much|largest learning rate|what weight|estimate of|"
                           r"(?:more|fewer|extra) parameters|number of parameters|parameter count|"
                           r"(?:the )?(?:map|mle|maximum likelihood) estimate|"
                           r"(?:variance|expectation|mean|entropy|loss|probability|density|norm) of)", re.I)),
    ("how", re.compile(r"^\s*how\b|\bwhat happens\b|\bsteps?\b|\bprocedure\b|\balgorithm\b|\bwork\b|\bworks\b|"
                       r"\bhow (?:do|does|can|could|should|would|to) (?:I|we|you|it|one|they)\b|\bis there a\b|"
                       r"\bwhat (?:should|can|could) I\b|\bcan I\b|\bway to\b", re.I)),
]

# Section bonuses per kind of question (added to cosine similarity; sections not listed get 0).
_SECTION_BONUS: dict[str, dict[str, float]] = {
    "definition": {IN_SHORT: 0.25, "Definition and derivation": 0.12, "Intuition": 0.05},
    "formula": {"Definition and derivation": 0.15, IN_SHORT: 0.08, "How it is used in ML": 0.02},
    "why": {"Intuition": 0.10, "Definition and derivation": 0.08, "How it is used in ML": 0.06, IN_SHORT: 0.02},
    "how": {"Definition and derivation": 0.10, "How it is used in ML": 0.08, "Intuition": 0.06, IN_SHORT: 0.04},
    "compare": {IN_SHORT: 0.15, "Definition and derivation": 0.10, "Intuition": 0.06, "How it is used in ML": 0.04},
    "example": {"Worked example": 0.25, "Definition and derivation": 0.02},
    "failure": {"Pitfalls and failure modes": 0.25, "How it is used in ML": 0.02},
}
# Never an answer: the check's prose, link lists, the note's description of itself.
_NEVER_SECTIONS = {"Numerical check", "See also", "References", "summary"}
_ONLY_WHEN_ASKED = {"Worked example": "example", "Pitfalls and failure modes": "failure"}
_DEPENDENT_START = re.compile(r"^(?:so|then|thus|hence|this|that|these|those|it|its|they|here|there|but|and|or|yet|"
                              r"also|now|next|finally|first|second|similarly|likewise|again|in (?:short|"
                              r"particular|other words))\b", re.I)
_ABOUT_THE_NOTE = re.compile(r"^(?:this note|the note|the check|this check|defines |explains |derives |"
                             r"covers |shows how|see )", re.I)
# A question asking for a derivative, and the notation of one in a sentence's math (f'(x), d/dx, partial, nabla).
_DERIVATIVE_ASKED = re.compile(r"\b(?:derivative|differentiat\w*|gradient|slope|jacobian|hessian)\b", re.I)
_DERIVATIVE_MATH = re.compile(r"\$[^$]*(?:'\s*\(|\\frac\{\s*(?:d|\\partial)|\\partial|\\nabla|\\prime)[^$]*\$")
# A sentence that gives a reason ("because", "so", "cancels", ...) answers a why question better than one
# that describes the concept.
# A definition that says why ("... because averages started from zero ...") may be the argument; one that
# only draws a consequence (", so only r(d_in + d_out) parameters train") says what, not why.
_BECAUSE_WORDS = r"because|since|so that|which is why|that is why|the reason"
_BECAUSE = re.compile(rf"\b(?:{_BECAUSE_WORDS})\b", re.I)
_REASON = re.compile(rf"\b(?:{_BECAUSE_WORDS}|therefore|hence|cancels?|otherwise|as a result|this is why)\b", re.I)
_SO = re.compile(r",\s+so\b")  # "... neither step can increase $J$, so it stops": a reason too, but a weak sign
WHY_REASON_BONUS = 0.08
TROUBLE_BONUS = 0.15
HEADING_BONUS, HEADING_SHARE = 0.20, 0.5  # a why question's words in a subsection heading
TROUBLE_MARGIN = 0.10
MAX_EXTRA = 3  # sentences after the lead
REPEAT_SHARE = 0.7  # an extra sentence sharing this much of its words with a chosen one is left out
LEXICAL_WEIGHT = 0.25  # for the share of the question's words a sentence (or its subsection heading) says


def classify(question: str) -> str:
    """What the question asks for: one of ``ASKS`` (``definition`` when no rule matches)."""
    if re.search(r"(?:^|[.?!]\s+)why\b", question, re.I) and not _RULES[0][1].search(question):
        return "why"  # "Why ... instead of ...?" (or "... instead of ... . Why?") asks for a reason, not a comparison
    for kind, pattern in _RULES:
        if pattern.search(question):
            return kind
    return "definition"


# --------------------------------------------------------------------------- the notes as sentences


@dataclass
class Sentence:
    text: str
    chunk: Chunk
    section: str  # the H2 section ("In short", "Definition and derivation", ...)
    subsection: str  # the H3 heading, or ""
    bullet: bool = False
    bare: bool = False  # display math without its introducing sentence
    opens: bool = False  # the first sentence of a paragraph

    @property
    def has_display(self) -> bool:
        return "$$" in self.text

    @property
    def has_formula(self) -> bool:
        return "$$" in self.text or bool(re.search(r"\$[^$]*[=<>≤≥][^$]*\$", self.text))


def chunk_sentences(chunk: Chunk) -> list[Sentence]:
    """The sentences of a chunk; display math stays with the sentence that introduces it, bullets stand alone."""
    parts = chunk.heading.split(" > ")
    section = parts[1] if len(parts) > 1 else "summary"
    subsection = parts[2] if len(parts) > 2 else ""
    out: list[Sentence] = []
    for block in re.split(r"\n\s*\n", link_text(chunk.text)):
        block = block.strip()
        if not block or block.startswith(("```", "|", "#")):
            continue
        if block.startswith("$$"):  # display math belongs to the sentence that introduces it
            if out and not out[-1].bullet:
                out[-1].text += "\n\n" + block
            else:  # ... which sits at the end of the previous chunk: the display stands alone (never a lead)
                out.append(Sentence(block, chunk, section, subsection, bare=True))
            continue
        continues = bool(out) and out[-1].has_display and not out[-1].bullet and bool(re.match(r"[a-z,;]", block))
        for j, item in enumerate(re.split(r"\n(?=\s*(?:[-*]|\d+\.)\s)", block)):
            if re.match(r"\s*(?:[-*]|\d+\.)\s", item):
                out.append(Sentence(re.sub(r"\s+", " ", item).strip(), chunk, section, subsection, bullet=True))
                continue
            for n, sentence in enumerate(prose_sentences(item)):
                if continues:  # "..., $$ ... $$ which is ...": the sentence goes on after the display
                    out[-1].text += "\n\n" + sentence
                    continues = False
                else:
                    out.append(Sentence(sentence, chunk, section, subsection, opens=j == n == 0))
    return [s for s in out if len(s.text) > 20 and not s.text.rstrip().endswith("?")]


def prose_sentences(text: str) -> list[str]:
    """Sentences of a prose paragraph (sentence ends inside ``$...$`` do not count)."""
    flat = re.sub(r"\s+", " ", text).strip()
    masked = re.sub(r"\$[^$]*\$", lambda m: "§" * len(m.group(0)), flat)
    cuts = [m for m in re.finditer(r"(?<=[.!?])\s+(?=[A-Z$(*])", masked)]
    starts = [0, *(m.end() for m in cuts)]
    ends = [*(m.start() for m in cuts), len(flat)]
    return [flat[a:b].strip() for a, b in zip(starts, ends, strict=True) if flat[a:b].strip()]


@dataclass
class NoteBook:
    """The notes and their chunks, by source: what the composer reads."""

    notes: dict[str, Note]
    chunks: dict[str, list[Chunk]]
    _sentences: dict[str, list[Sentence]] = field(default_factory=dict)
    _spread: dict[str, int] = field(default_factory=dict)
    _positions: dict[int, int] = field(default_factory=dict)  # id(sentence) -> its place in its note
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def build(cls, notes: list[Note], chunks: list[Chunk]) -> NoteBook:
        by_source: dict[str, list[Chunk]] = {}
        for c in chunks:
            by_source.setdefault(c.source, []).append(c)
        return cls({n.source: n for n in notes}, by_source)

    def sentences(self, source: str) -> list[Sentence]:
        with self._lock:
            if source not in self._sentences:
                self._sentences[source] = [s for c in self.chunks.get(source, []) for s in chunk_sentences(c)]
                self._positions.update((id(s), n) for n, s in enumerate(self._sentences[source]))
            return self._sentences[source]

    def position(self, sentence: Sentence) -> int | None:
        """Where a sentence stands in its note's reading order (None for a sentence not of the notes)."""
        self.sentences(sentence.chunk.source)
        return self._positions.get(id(sentence))

    def spread(self, word: str) -> int:
        """In how many notes a (stemmed) content word occurs: "loss" in most, "centre" in a few."""
        with self._lock:
            if not self._spread:
                for note in self.notes.values():
                    for w in set(content_words(note.body)):
                        self._spread[w] = self._spread.get(w, 0) + 1
            return self._spread.get(word, 0)

    def names(self, source: str) -> list[str]:
        """What a learner may call the note's concepts: the title (and its parts), aliases, defined terms."""
        note = self.notes.get(source)
        if note is None:
            return []
        title = re.sub(r"\([^)]*\)", "", note.title)
        pieces = re.split(r"(:|,| and | vs\.? |&)", title)  # parts, with the separators between them
        parts = [re.sub(r"^(?:the|a|an)\s+", "", p.strip(), flags=re.I) for p in pieces[::2]]  # "the Normal ..."
        parts = [_shared_head(p, after, note.body) if sep == " and " else p
                 for p, sep, after in zip(parts, [*pieces[1::2], ""], [*parts[1:], ""], strict=True)]
        parts = [p for p in parts if len(p) > 2]
        return list(dict.fromkeys([note.title, *parts, *note.aliases, *note.definitions]))


def _shared_head(part: str, after: str, body: str) -> str:
    """A one-word title part that shares the next part's head noun: "Vector" of "Vector and Matrix Norms" is
    "Vector Norms" (a singular word before a plural head), "Batch" of "Batch and Layer Normalization" is "Batch
    Normalization" (as the note says it); "Tokenization" of "Tokenization and Byte-Pair Encoding" and
    "Convolution" of "Convolution and Convolutional Networks" stay themselves."""
    words = after.split()
    if " " in part or len(words) < 2:
        return part
    head = words[-1]
    joined = f"{part} {head}"
    # A singular modifier before a plural head ("Vector and Matrix *Norms*") or the note's own usage.
    modifies = head.endswith("s") and not part.endswith("s") and not after.lower().startswith(part.lower())
    return joined if modifies or re.search(rf"\b{re.escape(joined)}", body, re.I) else part


def named_term(question: str, note: Note | None, names: list[str]) -> str | None:
    """The concept a question names in a note: a term the note defines by name ("the *GELU* activation
    function"), unless it is only part of a longer name said ("maximum *likelihood* estimation"); else the
    longest name said."""
    longest = named_in(question, names)
    defined = named_in(question, list(note.definitions)) if note is not None else None
    if not defined or not longest or len(longest) <= len(defined):
        return defined or longest
    inside = defined.lower() in longest.lower()  # "maximum *likelihood* estimation"
    first = _said_at(question, longest) < _said_at(question, defined)  # "the *Bellman expectation equation*
    return longest if inside or first else defined  # ... derived from the *return*": the subject comes first


def named_in(question: str, names: list[str]) -> str | None:
    """The longest of ``names`` that the question says (whole words, ignoring case and plurals)."""
    best = None
    for name in names:
        if _said_at(question, name) >= 0 and (best is None or len(name) > len(best)):
            best = name
    return best


def _said_at(question: str, name: str) -> int:
    """Where the question says ``name`` (whole words, ignoring case and plurals); -1 where it does not."""
    pattern = r"(?<![\w-])" + re.escape(name.lower()).replace(r"\ ", r"[\s-]+") + r"(?:s|es)?(?![\w-])"
    found = re.search(pattern, question.lower())
    return found.start() if found else -1


# --------------------------------------------------------------------------- composing


@dataclass
class Composed:
    """A composed answer: its sentences with the chunks they come from, and the section to read next."""

    asks: str
    source: str
    concept: str | None
    sentences: list[Sentence]
    read_next: Chunk | None


# "The derivative (gradient, Jacobian, Hessian) of X": the question is about X's derivative.
_OPERATION_OF = re.compile(r"\b(derivative|gradient|jacobian|hessian)s? of (?:the |a |an )?(.+)", re.I)


def choose_note(question: str, hit_sources: list[str], book: NoteBook) -> tuple[str, str | None]:
    """(source, concept): the note the question is about and the concept it names there."""
    named = {s: named_term(question, book.notes.get(s), book.names(s)) for s in dict.fromkeys(hit_sources)}
    candidates = [(s, n) for s, n in named.items() if n]
    if candidates:
        # The note whose concept the question names most specifically; ties go to the better-ranked note.
        rank = {s: i for i, s in enumerate(dict.fromkeys(hit_sources))}

        def strength(sn: tuple[str, str]) -> tuple:
            source, name = sn
            note = book.notes.get(source)
            main = note is not None and name.lower() in {note.title.lower(), *(a.lower() for a in note.aliases)}
            return len(name), main, -rank[source]

        of = _OPERATION_OF.search(question)
        if of:  # "the Jacobian of the softmax": the softmax's note, where its Jacobian is derived
            on_object = [sn for sn in candidates if named_in(of.group(2), [sn[1]])]
            candidates = on_object or candidates
        source, concept = max(candidates, key=strength)
        common = source != hit_sources[0] and not of and _common_word(concept, book)
        if (rank[source] <= 2 or len(concept) >= 6) and not common:
            return source, concept
    return hit_sources[0], named.get(hit_sources[0])


COMMON_SPREAD = 25  # a word in this many notes or more ("derivative", "gradient") names no one note


def _common_word(concept: str, book: NoteBook) -> bool:
    """A one-word concept that many notes use: it does not move the answer off the best-retrieved note
    ("the outer function's *derivative*" in a question the chain-rule note answers)."""
    words = content_words(concept)
    return len(words) == 1 and book.spread(words[0]) >= COMMON_SPREAD


@dataclass(frozen=True)
class Trouble:
    """The learner's own trouble that a why or how question describes ("*my* CNN gives a different
    prediction ... depending on the other images in the batch"): its specific words (in few notes), which a
    pitfall's bold head may say, and all its words, of which a pitfall's text may say several."""

    rare: frozenset[str] = frozenset()
    said: frozenset[str] = frozenset()


def may_answer(sentence: Sentence) -> bool:
    """Whether a sentence may answer any question: not the check's prose, a link list or the note's
    description of itself."""
    return sentence.section not in _NEVER_SECTIONS and not _ABOUT_THE_NOTE.match(sentence.text)


def _allowed(sentence: Sentence, asks: str, trouble: Trouble | None = None) -> bool:
    """Whether a sentence may answer this kind of question; ``trouble`` is the learner's trouble that the
    question describes, if any (:func:`trouble_words`)."""
    if not may_answer(sentence):
        return False
    if trouble is not None and _names_the_trouble(sentence, trouble):
        return True  # "Why do you have to centre the data?" is answered by "**Forgetting to centre.** ..."
    needed = _ONLY_WHEN_ASKED.get(sentence.section)
    if needed == "example" and asks == "why" and _general_reason(sentence):
        return True  # the worked example's lesson: "A slightly biased estimator beats ... because ..."
    if needed and needed != asks:
        return False
    if sentence.bullet and asks not in ("failure", "example", "how") and sentence.section != "How it is used in ML" \
            and not (asks == "why" and _BECAUSE.search(sentence.text)):  # "- **Order.** ... because ..." gives one
        return False
    return not re.fullmatch(r"[-*]?\s*\[[^\]]+\]\([^)]+\).*", sentence.text)  # a link line


# A learner describing their own trouble: "Why do *I have to* centre ...", "*my* weights keep growing".
TROUBLE = re.compile(r"\b(?:my|I|I'm|have to|has to|must|should|can'?t|cannot|need to|keeps?)\b")
SYMPTOM_WORDS = 3  # a pitfall whose text says this many words of the learner's trouble describes it
TROUBLE_SPREAD = 12  # a word of the trouble occurs in at most this many notes ("centre" yes, "loss" no)


def trouble_words(question: str, asks: str, asked: set[str], book: NoteBook) -> Trouble:
    """For a why or how question about the learner's own trouble, its words beyond the note's name
    (:class:`Trouble`); none for other questions."""
    if asks not in ("why", "how") or not TROUBLE.search(question):
        return Trouble()
    return Trouble(frozenset(w for w in asked if book.spread(w) <= TROUBLE_SPREAD), frozenset(asked))


def _general_reason(sentence: Sentence) -> bool:
    """A sentence that gives a reason in words, with no numbers: a lesson, not a step."""
    return not sentence.bullet and bool(_REASON.search(sentence.text)) and not re.search(r"\d", sentence.text)


def _names_the_trouble(sentence: Sentence, trouble: Trouble) -> bool:
    """A pitfall bullet about the learner's trouble: its bold head says one of the trouble's specific words
    ("**Forgetting to centre.**"), or its text says several of the trouble's words ("batch norm in training
    mode ... so predictions depend on which other examples share the batch")."""
    if sentence.section != "Pitfalls and failure modes":
        return False
    head = re.match(r"[-*]\s*\*\*(.+?)\*\*(.*)", sentence.text, re.S)
    if head is None:
        return False
    return bool(trouble.rare & set(content_words(head.group(1)))) or len(
        trouble.said & set(content_words(head.group(2)))) >= SYMPTOM_WORDS


def _mentions(text: str, concept: str | None) -> bool:
    return bool(concept) and named_in(text, [concept]) is not None


# A sentence's score: how close it is to the question, alone and through its chunk (the chunk's embedding
# carries its heading and neighbours), the question's words it says, its section's fit to the kind of
# question, and which retrieved note it is in. Weights chosen on the development questions (gold recall).
SENTENCE_WEIGHT, CHUNK_WEIGHT, SECTION_WEIGHT = 0.5, 0.5, 0.25
NOTE_PRIOR = (0.15, 0.08, 0.0)  # bonus for sentences of the first, second and third retrieved note
EXTRA_MARGIN = 0.25  # an extra sentence scores at most this far below the best


# A why question about a failure: "why does it *not* work", "why *can't* I", "why *shouldn't* I".
WHY_NOT = re.compile(r"\b(?:not|never|cannot|fails?)\b|n't\b", re.I)


def score_sentences(question: str, asks: str, hit_sources: list[str], book: NoteBook, qvec: np.ndarray,
                    encode, chunk_similarity=None):
    """(named source, concept, sources, pool, scores): the candidate sentences of the (at most three) notes
    the answer may come from, and each one's score; None when there is none."""
    if not hit_sources:
        return None
    named_source, concept = choose_note(question, hit_sources, book)
    sources = list(dict.fromkeys([named_source, *hit_sources]))[:3]
    # The question's own words, beyond the note's name: "bias correction" in "Why does Adam need bias correction?"
    asked = {src: set(content_words(question)) - set(content_words(" ".join(book.names(src)[:1]))) for src in sources}
    ask = _Asked(asks, list(dict.fromkeys(hit_sources)), asked,
                 {src: trouble_words(question, asks, asked[src], book) for src in sources},
                 named_source, concept, bool(_DERIVATIVE_ASKED.search(question)))
    why_not = asks == "why" and bool(WHY_NOT.search(question))  # "Why does the CLT *not* apply to ...?"
    pool = [s for src in sources for s in book.sentences(src) if _allowed(s, asks, ask.trouble[src])
            or (why_not and s.section == "Pitfalls and failure modes" and _allowed(s, "failure"))]
    if not pool:
        return None
    sims = encode([s.text for s in pool]) @ qvec
    chunk_sims = chunk_similarity([s.chunk.chunk_id for s in pool]) if chunk_similarity else np.zeros(len(pool))
    scores = [_score(s, float(sim), float(csim), ask) for s, sim, csim in zip(pool, sims, chunk_sims, strict=True)]
    pool, scores = _close_troubles(pool, scores, ask)
    return named_source, concept, sources, pool, scores


@dataclass
class _Asked:
    """What the scoring of one question's sentences needs to know about it."""

    asks: str
    ranked: list[str]  # the retrieved notes, best first
    asked: dict[str, set[str]]  # source -> the question's own words beyond that note's name
    trouble: dict[str, Trouble]  # source -> the learner's trouble, as the question describes it
    named_source: str
    concept: str | None
    derivative: bool  # a derivative, gradient, Jacobian or Hessian was asked for


def _score(s: Sentence, sim: float, csim: float, q: _Asked) -> float:
    """One sentence's score: its and its chunk's similarity to the question, and what the question asks for."""
    src, asks = s.chunk.source, q.asks
    rank = q.ranked.index(src) if src in q.ranked else len(NOTE_PRIOR) - 1
    score = SENTENCE_WEIGHT * sim + CHUNK_WEIGHT * csim
    score += SECTION_WEIGHT * _SECTION_BONUS.get(asks, {}).get(s.section, 0.0)
    score += NOTE_PRIOR[min(rank, len(NOTE_PRIOR) - 1)]
    if q.asked[src]:
        said = set(content_words(s.text + " " + s.subsection))
        score += LEXICAL_WEIGHT * len(q.asked[src] & said) / len(q.asked[src])
    if asks == "why" and s.subsection.lower().startswith("why"):
        score += 0.05
    if asks == "why" and q.asked[src]:  # the note's own subsection on what is asked ("KL is never negative")
        heading = len(q.asked[src] & set(content_words(s.subsection))) / len(q.asked[src])
        score += HEADING_BONUS * (heading >= HEADING_SHARE)
    if asks == "why" and (_REASON.search(s.text) or _SO.search(s.text)):
        score += WHY_REASON_BONUS  # a sentence that gives a reason
    if _names_the_trouble(s, q.trouble[src]):
        score += TROUBLE_BONUS  # the pitfall the question is about
    concept = q.concept if src == q.named_source else None
    if concept and (_mentions(s.text, concept) or _mentions(s.subsection, concept)):
        score += 0.05
    if asks in ("definition", "compare", "formula") and concept and re.search(
            r"\*\*" + re.escape(concept) + r"s?\*\*", s.text, re.I):
        score += 0.15  # the sentence where the concept is defined (bold)
        if asks == "formula" and s.has_display:
            score += 0.15  # ... with its display equation: what a formula question asks for
    if asks == "formula":
        score += 0.12 * s.has_display + 0.05 * s.has_formula
        if q.derivative and _DERIVATIVE_MATH.search(s.text):
            score += 0.10  # a derivative was asked for, and this formula is one
    return score


def _close_troubles(pool: list[Sentence], scores: list[float], q: _Asked) -> tuple[list[Sentence], list[float]]:
    """A pitfall let in for the learner's trouble stays only if it is close to the question on its own merits
    ("In-place edits" shares only "place" with "... a variable that is used in two places ...")."""
    let_in = [_names_the_trouble(s, q.trouble[s.chunk.source]) and _ONLY_WHEN_ASKED.get(s.section) != q.asks
              for s in pool]
    others = [sc for sc, li in zip(scores, let_in, strict=True) if not li]
    keep = [not (li and others and sc - TROUBLE_BONUS < max(others) - TROUBLE_MARGIN)
            for sc, li in zip(scores, let_in, strict=True)]
    return ([s for s, k in zip(pool, keep, strict=True) if k],
            [sc for sc, k in zip(scores, keep, strict=True) if k])


def compose(question: str, asks: str, hit_sources: list[str], book: NoteBook, qvec: np.ndarray,
            encode, chunk_similarity=None) -> Composed | None:
    """The composed answer's sentences (see the module docstring); None when the notes have no usable sentence.

    ``qvec`` is the question's normalized embedding; ``encode(texts)`` embeds sentences (normalized rows);
    ``chunk_similarity(chunk_ids)`` gives the question's cosine with whole chunks (their context), if known.
    """
    scored = score_sentences(question, asks, hit_sources, book, qvec, encode, chunk_similarity)
    if scored is None:
        return None
    named_source, concept, sources, pool, scores = scored
    shown = _worked_example(question, pool, scores, book) if asks == "example" else None
    if shown:
        source = shown[0].chunk.source
        return Composed(asks, source, concept if source == named_source else None, shown, shown[0].chunk)
    order = sorted(range(len(pool)), key=lambda i: -scores[i])
    note = book.notes.get(named_source if concept else pool[order[0]].chunk.source)
    lead = _lead(asks, concept if note is not None and note.source == named_source else None, note, pool, order,
                 scores)
    lead, pinned, follows = _settle_lead(lead, asks, pool, order, scores, book,
                                         note.source if note else pool[order[0]].chunk.source)
    source = lead.chunk.source
    chosen = [lead, *pinned, *follows]
    extras, goes_on = _candidates(question, asks, lead, bool(pinned or follows), pool, order, scores, book,
                                  concept if source == named_source else None)
    for i in extras:
        if len(chosen) > MAX_EXTRA + (goes_on in chosen):  # the lead's paragraph goes on: one sentence, as it were
            break
        if not any(_repeats(pool[i].text, c.text) for c in chosen):
            chosen.append(pool[i])
    # The lead (and the conclusion it leads to) first, then the rest in reading order of their notes.
    def place(s: Sentence) -> tuple[bool, int]:
        at = book.position(s)
        return s.chunk.source != source, 1 << 30 if at is None else at

    rest = [*follows, *sorted(chosen[1 + len(pinned) + len(follows):], key=place)]
    if pinned:  # an argument reads in the note's order: a step of its passage chosen on its own joins it,
        steps = [s for s in rest if _same_passage(s, lead)]  # with the steps between (at most ARGUMENT_SPAN)
        block = sorted([lead, *pinned, *steps], key=place)
        first, last = book.position(block[0]), book.position(block[-1])
        if first is not None and last is not None and last - first < ARGUMENT_SPAN:
            block = [s for s in book.sentences(source)[first:last + 1] if _same_passage(s, lead)]
        lead, *block = block
        rest = [*block, *(s for s in rest if s not in steps)]
    read_next = next((s.chunk for s in [*rest, lead] if s.section != IN_SHORT and s.chunk.source == source), None)
    if read_next is None:
        read_next = next((c for c in book.chunks.get(source, []) if "Definition and derivation" in c.heading), None)
    return Composed(asks, source, concept, [lead, *rest], read_next)


def _settle_lead(lead: Sentence, asks: str, pool: list[Sentence], order: list[int], scores: list[float],
                 book: NoteBook, source: str) -> tuple[Sentence, list[Sentence], list[Sentence]]:
    """(lead, pinned, follows): the lead with what it cannot stand without. ``pinned`` is an argument or a
    conclusion, read in the note's order; ``follows`` is the lead chosen first, when the sentence that opens its
    paragraph leads instead."""
    if asks == "why":
        lead, pinned = _argument(pool, order, scores, source, book, asks) or (lead, [])
        return lead, pinned, []
    lead, pinned = _with_conclusion(lead, pool[order[0]], scores[pool.index(lead)] if lead in pool else 0.0,
                                    scores[order[0]], book, asks)
    before = None if pinned else _formula_before(lead, book)  # "... ridge multiplies it by the shrinkage
    if before in pool and scores[pool.index(before)] >= scores[order[0]] - PARAGRAPH_MARGIN:  # factor $...$."
        return before, [lead], []  # before "Well-determined directions ... are barely touched"
    opening = None if pinned else _paragraph_opening(lead, book, asks)
    if opening in pool and lead in pool and scores[pool.index(opening)] >= scores[pool.index(lead)] - OPENING_MARGIN:
        return opening, [], [lead]  # "Every string is a sequence of bytes ..." before "An é is two bytes ..."
    return lead, pinned, []


def _candidates(question: str, asks: str, lead: Sentence, pinned: bool, pool: list[Sentence], order: list[int],
                scores: list[float], book: NoteBook, concept: str | None) -> tuple[list[int], Sentence | None]:
    """The sentences that may follow the lead (pool indices, best first), and the one that continues the
    lead's paragraph (first among them when it scores close enough). They come from the lead's note (for a
    comparison, also from the other note the question names); ``concept`` is the one the question names in
    that note, if any."""
    source = lead.chunk.source
    same = [i for i in order if pool[i].chunk.source == source or (asks == "compare" and named_in(
        question, book.names(pool[i].chunk.source)))]
    if concept and asks in ("definition", "formula"):
        # About the concept asked for, not its neighbours (the tanh after the sigmoid's derivative).
        asked_terms = [t for t in book.names(source) if named_in(question, [t])] or [concept]
        words = set(content_words(question)) - set(content_words(book.names(source)[0]))
        same = [i for i in same if _on_topic(pool[i], asked_terms, book.notes[source], words)]
    extras = [i for i in same if pool[i] is not lead and scores[i] >= scores[order[0]] - EXTRA_MARGIN
              and not (pool[i].bare and asks not in ("formula", "how", "example"))
              and not _DEPENDENT_START.match(pool[i].text) and pool[i].text not in lead.text]
    if asks in ("formula", "definition", "how") and not lead.has_display:
        display = [i for i in same if pool[i].has_display and pool[i] is not lead
                   and pool[i].section == "Definition and derivation" and scores[i] >= scores[order[0]] - 0.25]
        extras = display[:1] + [i for i in extras if i not in display[:1]]
    goes_on = _next_in_paragraph(lead, book)  # "Dense search ... can miss rare names." -> "**BM25** scores ..."
    if goes_on is not None and goes_on in pool and not pinned and scores[pool.index(goes_on)] >= (
            scores[order[0]] - PARAGRAPH_MARGIN):
        extras = [pool.index(goes_on), *(i for i in extras if pool[i] is not goes_on)]
    return extras, goes_on


EXAMPLE_SPAN = 8  # a worked example is shown from its setup through its result, at most this many sentences
EXAMPLE_STEPS = 5  # ... at least this many (where the part has them): the setup alone is not the working
EXAMPLE_MARGIN = 0.10  # ... and through every sentence that scores this close to its best one


def _worked_example(question: str, pool: list[Sentence], scores: list[float], book: NoteBook) -> list[Sentence] | None:
    """For an example question: the worked example that fits it, shown in the note's order from the
    start of its part (a bold head such as "**Single variable.**", else the section's start) through its
    working, to the end of a paragraph, as a teacher works it on the board. The note is the one, of all the
    notes, whose worked example uses the points the question gives ($(0, 1), (1, 3), \\dots$ of a fit); else
    the retrieved note whose example shares most of its numbers; else the best-scoring one."""
    score_of = {id(s): sc for s, sc in zip(pool, scores, strict=True)}
    candidates = [s for s in pool if s.section == "Worked example"]
    asked = _number_pairs(question)
    fit = {src: len(asked & _number_pairs(_example_text(src, book))) for src in {s.chunk.source for s in candidates}}
    best = _example_with_numbers(question, book)  # the points the question gives, worked in some note
    if best is None and not candidates:
        return None
    best = best or max(candidates, key=lambda s: (fit[s.chunk.source] if max(fit.values()) >= 2 else 0,
                                                  score_of[id(s)]))
    own, at = book.sentences(best.chunk.source), book.position(best)
    if at is None:
        return None
    part = [k for k in range(len(own)) if own[k].section == "Worked example" and own[k].subsection == best.subsection]
    start = max((k for k in part if k <= at and own[k].text.startswith("**")), default=part[0])
    if at - start >= EXAMPLE_SPAN:  # a long part: from the paragraph the best sentence is in
        start = max((k for k in part if start <= k <= at and own[k].opens), default=at)
    part = [k for k in part if k >= start]
    part = part[:next((n for n, k in enumerate(part) if n and own[k].text.startswith("**")), EXAMPLE_SPAN)]
    close = [k for k in part if score_of.get(id(own[k]), -1.0) >= score_of.get(id(best), 0.0) - EXAMPLE_MARGIN]
    end = max(at, start + EXAMPLE_STEPS - 1, *close)
    end = next((k - 1 for k in part if k > end and own[k].opens), part[-1])  # the end of its paragraph
    return own[start:end + 1]


def _example_text(source: str, book: NoteBook) -> str:
    """The text of a note's worked example."""
    return " ".join(s.text for s in book.sentences(source) if s.section == "Worked example")


def _example_with_numbers(question: str, book: NoteBook) -> Sentence | None:
    """The first sentence stating the question's points in the worked example, in any note, that uses at least
    MIN_POINTS of the points the question gives ("fit a line to (0,1), (1,3), (2,4), (3,4)"): the retrieved
    notes may all work other numbers."""
    asked = _points(question)
    if len(asked) < MIN_POINTS:
        return None
    fit = {src: len(asked & _points(_example_text(src, book))) for src in book.notes}
    source = max(sorted(fit), key=fit.get)
    if fit[source] < MIN_POINTS:
        return None
    return next((s for s in book.sentences(source) if s.section == "Worked example" and asked & _points(s.text)),
                None)


MIN_POINTS = 3
_POINT = re.compile(r"\(\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*\)")


def _points(text: str) -> set[tuple[str, str]]:
    """The points "(x, y)" a text writes, as pairs of number strings."""
    return set(_POINT.findall(text))


def _number_pairs(text: str) -> set[tuple[str, str]]:
    """Consecutive numbers of a text, as pairs: "(0, 1), (1, 3)" gives (0, 1), (1, 1), (1, 3)."""
    numbers = re.findall(r"\d+(?:\.\d+)?", text.replace("{,}", ""))
    return set(zip(numbers, numbers[1:], strict=False))


PARAGRAPH_MARGIN = 0.35  # the lead's own paragraph goes on with a sentence that scores at most this far below


def _next_in_paragraph(lead: Sentence, book: NoteBook) -> Sentence | None:
    """The sentence that continues the lead's paragraph in its note, if any (not a new paragraph, bullet or
    display standing alone)."""
    own, at = book.sentences(lead.chunk.source), book.position(lead)
    if at is None or at + 1 >= len(own) or lead.bullet:
        return None
    after = own[at + 1]
    return None if after.opens or after.bullet or after.bare or not _same_passage(after, lead) else after


def _formula_before(lead: Sentence, book: NoteBook) -> Sentence | None:
    """The sentence before the lead in its paragraph when that one states a formula the lead, which has
    none, goes on from (the lead is a consequence in words: "Well-determined directions ... are barely
    touched" after "ridge multiplies it by the **shrinkage factor** $\\sigma_j^2/(\\sigma_j^2 + \\lambda)$")."""
    own, at = book.sentences(lead.chunk.source), book.position(lead)
    if at is None or at == 0 or lead.opens or lead.bullet or lead.section == IN_SHORT or lead.has_formula:
        return None
    before = own[at - 1]
    return before if _same_passage(before, lead) and before.has_formula and not before.bare else None


OPENING_MARGIN = 0.10  # a paragraph's opening sentence scores at most this far below the lead, its second


def _paragraph_opening(lead: Sentence, book: NoteBook, asks: str) -> Sentence | None:
    """The sentence that opens the lead's paragraph when the lead is its second sentence: the claim the lead
    goes on from ("Every string is a sequence of bytes, and all 256 bytes are in the vocabulary ..." before
    "An é is two bytes in UTF-8 ...")."""
    own, at = book.sentences(lead.chunk.source), book.position(lead)
    if at is None or at == 0 or lead.opens or lead.bullet or lead.bare or lead.section == IN_SHORT:
        return None
    before = own[at - 1]
    if not before.opens or before.bare or not _same_passage(before, lead) or not _allowed(before, asks):
        return None
    return before


ARGUMENT_MARGIN = 0.15  # the argument's best sentence scores at most this far below the best sentence
ARGUMENT_LIST = 3  # the items of a list the argument's sentence announces, at most
ANNOUNCE_WORDS = 8  # a sentence this short, followed by a list, only announces it
PREMISES = 2  # the sentences before the best one that may open its subsection's argument
ARGUMENT_SPAN = 5  # an argument shown in full spans at most this many sentences of one passage


def _argument(pool: list[Sentence], order: list[int], scores: list[float], source: str, book: NoteBook,
              asks: str) -> tuple[Sentence, list[Sentence]] | None:
    """For a why question: the best sentence of an argument in the note ``source`` (not a one-sentence
    definition or an intuition that gives no reason: they say what, not why) with its neighbours in the
    same passage that it depends on or that conclude from it ("... Then $BA = 0$ and the adapted model
    computes exactly what the base model computes.")."""
    best = next((pool[i] for i in order if pool[i].chunk.source == source and not pool[i].bare
                 and not (pool[i].section == IN_SHORT and not _BECAUSE.search(pool[i].text))
                 and not (pool[i].section == "Intuition" and not (
                     _REASON.search(pool[i].text) or _SO.search(pool[i].text)))), None)
    top = next((scores[i] for i in order if pool[i].section != IN_SHORT or pool[i].chunk.source != source),
               scores[order[0]])  # the note's own definitions say what, not why: the margin is to the rest
    if best is None or scores[pool.index(best)] < top - ARGUMENT_MARGIN:
        return None
    own, at = book.sentences(best.chunk.source), book.position(best)
    if at is None:
        return None
    window = [best]
    k = at
    while _DEPENDENT_START.match(own[k].text) and k > 0 and own[k - 1].chunk is best.chunk and len(window) < 3:
        k -= 1
        window.insert(0, own[k])
    first = at - len(window) + 1  # a short subsection is one argument: from its opening ("The Cauchy-Schwarz
    opening = first  # inequality says ...") to the best sentence ("..., the upper bound is reached at ...")
    while (best.subsection and opening > 0 and first - opening < PREMISES and _same_passage(own[opening - 1], best)
           and not own[opening - 1].bare):
        opening -= 1
    if opening < first and (opening == 0 or not _same_passage(own[opening - 1], best)):
        window = [*own[opening:first], *window]
    else:
        window = _with_claim(window, own, first, {id(s): sc for s, sc in zip(pool, scores, strict=True)})
    if at + 1 < len(own) and own[at + 1].chunk is best.chunk and _CONCLUDES.match(own[at + 1].text):
        window.append(own[at + 1])
    window = [s for s in window if _allowed(s, asks) or s is best]
    if _announces_list(best, own[at + 1:at + 1 + ARGUMENT_LIST]):  # "Three mechanisms are commonly cited."
        window += [s for s in own[at + 1:at + 1 + ARGUMENT_LIST] if s.bullet and _same_passage(s, best)]
    if not window or _DEPENDENT_START.match(window[0].text):
        return None
    return window[0], window[1:]


CLAIM_MARGIN = 0.10  # a subsection's opening claim scores at most this far below the argument's best sentence
CLAIM_SENTENCES = 2  # ... and is shown with at most this many sentences that go on from it ("Then ...")


def _with_claim(window: list[Sentence], own: list[Sentence], first: int, score_of: dict[int, float]) -> list[Sentence]:
    """A why argument found deep in a subsection opens with the subsection's claim, when that is close to
    the question too: "Why is $B$ initialised to zero?" reads "$A$ is initialised randomly and $B = 0$.
    Then $BA = 0$ and the adapted model computes exactly what the base model computes." before the
    gradient argument. ``first`` is the place of ``window[0]`` in its note's sentences ``own``."""
    best = window[-1] if len(window) == 1 else next(s for s in window if id(s) in score_of)
    start = first
    while start > 0 and _same_passage(own[start - 1], best):
        start -= 1
    if not best.subsection or start == first or own[start].bare or score_of.get(id(own[start]), -1.0) < (
            score_of.get(id(best), 0.0) - CLAIM_MARGIN):
        return window
    claim = [own[start]]
    while len(claim) < CLAIM_SENTENCES and start + len(claim) < first and _DEPENDENT_START.match(
            own[start + len(claim)].text):
        claim.append(own[start + len(claim)])
    return [*claim, *window]


def _same_passage(a: Sentence, b: Sentence) -> bool:
    """Whether two sentences are of one passage: the same note's same (sub)section, whatever chunk."""
    return (a.chunk.source, a.section, a.subsection) == (b.chunk.source, b.section, b.subsection)


def _announces_list(sentence: Sentence, after: list[Sentence]) -> bool:
    """Whether a sentence only announces the list that follows it in its passage ("Three mechanisms are
    commonly cited.", "It fails in two ways:"): the reasons are the list's items."""
    words = len(re.findall(r"[A-Za-z]+", sentence.text))
    return (not sentence.bullet and bool(after) and after[0].bullet and _same_passage(after[0], sentence)
            and (sentence.text.rstrip().endswith(":") or words <= ANNOUNCE_WORDS))


_CONCLUDES = re.compile(r"^(?:so|thus|hence|therefore|then|since|because|this is why|that is why|which is why)\b", re.I)
CONCLUSION_GAP = 3  # a conclusion at most this many sentences after the lead follows it, with what is between
CONCLUSION_MARGIN = 0.05  # ... else it must beat the lead by this much to bring its own premise in as the lead


def _with_conclusion(lead: Sentence, best: Sentence, lead_score: float, best_score: float, book: NoteBook,
                     asks: str) -> tuple[Sentence, list[Sentence]]:
    """(lead, sentences pinned right after it). The best sentence may draw a conclusion that cannot stand
    alone ("Hence the gradient is orthogonal to every tangent direction ..."): if it comes shortly after
    the lead in the same passage, it follows the lead with the steps between; if it clearly beats the lead,
    the sentence it follows from leads instead."""
    if best is lead or best.bare or not _DEPENDENT_START.match(best.text) or lead.section == IN_SHORT:
        return lead, []
    own, at, start = book.sentences(best.chunk.source), book.position(best), book.position(lead)
    if at is None:
        return lead, []
    if start is not None and lead.chunk is best.chunk and 0 < at - start <= CONCLUSION_GAP:
        return lead, [s for s in own[start + 1:at + 1] if not s.bare]
    before = own[at - 1] if at else None
    if (before is None or before.chunk is not best.chunk or before.bullet != best.bullet or before.bare
            or _DEPENDENT_START.match(before.text) or not _allowed(before, asks)
            or best_score - lead_score < CONCLUSION_MARGIN):
        return lead, []
    return before, [best]


def _on_topic(sentence: Sentence, asked: list[str], note: Note, words: set[str] = frozenset()) -> bool:
    """Whether a sentence may follow the answer about the ``asked`` terms: not the one-sentence
    definition of a term not asked about, and, where the note gives an asked term a subsection of its own
    ("### Sigmoid"), not a sentence of a sibling subsection. A term or heading that says one of the
    question's own ``words`` (stemmed, beyond the note's names) is asked about too: "*cosine* decay" in
    "the formula for a *cosine* learning-rate schedule", "*Bayesian* reading" in "... as *Bayesian* MAP
    estimates"."""

    def is_asked(term: str) -> bool:
        return any(named_in(term, [a]) or named_in(a, [term]) for a in asked) or bool(words & set(content_words(term)))

    if sentence.section == IN_SHORT:
        term = next((t for t, d in note.definitions.items() if sentence.text == re.sub(r"\s+", " ", d)), None)
        return term is None or is_asked(term)
    if sentence.section != "Definition and derivation" or not sentence.subsection:
        return True
    own = [h for h in definition_subsections(note) if is_asked(h)]
    return not own or sentence.subsection in own


def definition_subsections(note: Note) -> list[str]:
    """The H3 headings of a note's Definition and derivation section."""
    m = re.search(r"^## Definition and derivation\n(.*?)(?=^## |\Z)", note.body, re.S | re.M)
    return re.findall(r"^### (.+?)\s*$", m.group(1), re.M) if m else []


def _repeats(a: str, b: str) -> bool:
    """Whether sentence ``a`` says nothing that ``b`` does not (the note's definition and its derivation
    often state the same fact): most of ``a``'s content words, and all of its formulas, are in ``b``."""
    wa, wb = set(content_words(a)), set(content_words(b))
    if not wa or not wb:
        return a == b
    new_math = [m for m in re.findall(r"\$[^$]+\$", a) if normalize_math(m) not in normalize_math(b)]
    return not new_math and len(wa & wb) / len(wa) >= REPEAT_SHARE


def _lead(asks: str, concept: str | None, note: Note | None, pool: list[Sentence], order: list[int],
          scores: list[float]) -> Sentence:
    """The sentence that answers directly."""
    short = [s for s in pool if s.section == IN_SHORT]
    if asks in ("definition", "compare", "how") and short and note is not None:
        wanted = None
        if concept:
            key = next((t for t in note.definitions if t.lower() == concept.lower()), None)
            if key:
                wanted = note.definitions[key]
        if wanted is None and (not concept or concept.lower() in {note.title.lower(), *[
                a.lower() for a in note.aliases[:2]]} or asks == "definition"):
            wanted = note.definition
        match = next((s for s in short if wanted and s.text == re.sub(r"\s+", " ", wanted)), None)
        if match is not None and (asks == "definition" or scores[pool.index(match)] >= scores[order[0]] - 0.1):
            return match
    for i in order:  # the best sentence that stands on its own (not an aside in parentheses)
        if not _DEPENDENT_START.match(pool[i].text) and not pool[i].bare and not pool[i].text.startswith("("):
            return pool[i]
    return pool[order[0]]
