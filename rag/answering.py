"""From a question to a cited answer.

1. Clean the question (``rag.text``) and retrieve ``k`` chunks.
2. Decide whether the notes cover the question at all. They do not when even
   the best chunk is barely similar (cosine below ``MIN_SIMILARITY``), or when
   it is only moderately similar (below ``CLEAR_SIMILARITY``) and at least
   ``UNKNOWN_SHARE`` of the question's terms occur nowhere in the notes, among
   them a word that is not common English ("How does the Viterbi algorithm
   ...": the notes never say "Viterbi"), or it names something the notes
   mention but never teach ("What is a Kalman filter?"); these two rules
   apply to short questions only (``NAMING_TERMS``), since a long one
   describes a problem in the learner's own words. A word the notes never
   use in front of a term they teach names a technique of its own
   ("speculative decoding") and is declined too, as is a hyphenated name no
   note writes ("the *p-value* of a t-test", "the *E-step*") and a word the
   notes never teach in front of a head noun that names a technique ("a
   *diffusion* model", "the *Viterbi* algorithm"). Then nothing is
   improvised: the answer says so and names the nearest notes.
3. Otherwise compose the answer from the notes' structure (``rag.compose``): a
   direct first sentence, the key formula when one is asked for, at most three
   sentences that help, each cited, and the section to read next. Chunks it
   uses that were not retrieved are appended to the hits, so every ``[n]``
   names a passage. This is the default generator, ``composed``.
4. A language model, when one is chosen, answers from numbered context: large
   models get the whole chunks ``[1] .. [k]``, a small one (the embedded 135M
   SmolLM2) the composed answer's sentences, which it restates far better than
   it finds an answer in 4,000 characters of LaTeX. A sentence it left without
   a citation gets the number of the chunk that clearly supports it.
5. Every answer, whatever wrote it, is checked sentence by sentence against
   the passages it cites (``rag.support``); an unsupported sentence is replaced
   by the passage's own closest sentence or removed, and ``Answer.support``
   says what happened. A model answer with no supported sentence is replaced
   by the composed one, with a notice. (``grounding``, the share of an
   answer's content words found in the context, is still reported, and used by
   the fine-tuning evaluation.)

The notes are treated as data: a sentence in a retrieved passage that speaks
to the assistant ("ignore previous instructions ...") is withheld from the
model's context and from the support check (``rag.text.withhold_instructions``),
and the answer carries a notice naming the note.

``stream_answer`` yields the growing :class:`Answer` as text arrives (``done``
is False until the last one); ``answer`` returns the final one.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from functools import lru_cache

import numpy as np

from rag.compose import NoteBook, chunk_sentences, classify, compose, may_answer
from rag.corpus import load_corpus, strip_code
from rag.generators import (
    NOT_COVERED,
    ContextChunk,
    ExtractiveGenerator,
    get_generator,
    remember_sentence_vectors,
    sentence_vectors,
)
from rag.models import embedder_identity, load_embedder
from rag.options import DEFAULT_GENERATOR, AskOptions, check_mode
from rag.retriever import Hit, Retriever
from rag.sentence_store import load_vectors, save_vectors, sentence_key
from rag.settings import get_settings
from rag.support import REPLACE_SIMILARITY, ConceptTable, Support, concepts_from_notes, enforce, join_sentences
from rag.support import content_words as content_words  # re-exported: the fine-tuning evaluation reads it
from rag.text import clean_question, withhold_instructions

# Coverage: below MIN_SIMILARITY (cosine of question and best chunk) the notes do not cover a question; below
# CLEAR_SIMILARITY they do not either when UNKNOWN_SHARE of its terms never occur in the notes. Calibrated on
# the development questions (see `mathrag eval`: refusal accuracy against false refusals).
MIN_SIMILARITY = 0.29
CLEAR_SIMILARITY = 0.55
UNKNOWN_SHARE = 0.10
# Only a question of at most this many terms is declined for a name the notes do not teach: a short question
# names its topic ("How does the Viterbi algorithm ...?"), a long one describes a problem in the learner's
# words ("... what happens to a chatbot's word choices if I turn the randomness knob ...").
NAMING_TERMS = 12
# A sentence without a citation is attributed to a chunk only above this similarity.
ATTRIBUTION_SIMILARITY = 0.55
# Share of an answer's content words that must occur in the question or context.
MIN_GROUNDING = 0.65
MIN_CONTENT_WORDS = 4
READ_NEXT = "Read next:"  # opens the line that links the section to read next (a link, not the answer)
CITATION_RE = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
SYSTEM_PROMPT = (
    "You are a patient math tutor. Answer the question using only the numbered notes. "
    "Be short and precise, write math in LaTeX between $ signs, and cite the note you used after each "
    "sentence like [1]. If the notes do not contain the answer, reply exactly: " + NOT_COVERED
)


@dataclass
class Citation:
    number: int
    source: str
    heading: str
    chunk_id: str
    title: str


@dataclass
class Answer:
    question: str
    text: str
    citations: list[Citation] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    generator: str = ""
    mode: str = "hybrid"
    covered: bool = True
    grounding: float | None = None  # share of content words supported by the context (None: not checked)
    fallback: str | None = None  # the backend whose answer replaced an unsupported one
    asks: str = ""  # what the question asks for (rag.compose.classify)
    support: dict | None = None  # the sentence-level support check (rag.support.Support.to_dict)
    notices: list[str] = field(default_factory=list)
    done: bool = False
    seconds: float = 0.0
    first_token_seconds: float | None = None

    def to_dict(self) -> dict:
        data = asdict(self)
        data["hits"] = [h.to_dict() for h in self.hits]
        return data


@lru_cache(maxsize=1)
def _default_retriever(home: str) -> Retriever:
    return Retriever.load()


def get_retriever() -> Retriever:
    """The process-wide retriever over ``MATHRAG_HOME`` (loaded, and built if needed, once)."""
    return _default_retriever(str(get_settings().home))


# --------------------------------------------------------------------------- prompts


def _history(history: list[dict] | None) -> list[dict]:
    turns = []
    for turn in (history or [])[-4:]:
        if turn.get("role") in ("user", "assistant") and isinstance(turn.get("content"), str):
            turns.append({"role": turn["role"], "content": turn["content"][:1500]})
    return turns


def build_messages(question: str, hits: list[Hit], history: list[dict] | None = None) -> list[dict]:
    """Chat messages for a capable model: rules, earlier turns, numbered chunks and the question."""
    notes = "\n\n".join(f"[{i}] {h.heading}\n{h.text}" for i, h in enumerate(hits, start=1))
    return [{"role": "system", "content": SYSTEM_PROMPT}, *_history(history),
            {"role": "user", "content": f"Notes:\n\n{notes}\n\nQuestion: {question}"}]


def build_condensed_messages(question: str, facts: str, history: list[dict] | None = None) -> list[dict]:
    """Chat messages for a small model: the question's best sentences, already cited, then the question."""
    return [*_history(history),
            {"role": "user", "content": f"{facts}\n\nUsing only the text above, answer briefly: {question}"}]


def retrieval_query(question: str, history: list[dict] | None) -> str:
    """A follow-up ("and its derivative?") is searched together with the previous question."""
    previous = [t["content"] for t in (history or []) if t.get("role") == "user" and isinstance(t.get("content"), str)]
    return f"{previous[-1][:500]}\n{question}" if previous else question


# --------------------------------------------------------------------------- checking the answer


def resolve_citations(text: str, hits: list[Hit]) -> tuple[str, list[Citation]]:
    """Drop citation numbers that name no provided chunk; list the valid ones in order of first use."""
    used: list[int] = []

    def keep(match: re.Match) -> str:
        numbers = [int(n) for n in re.split(r"\s*,\s*", match.group(1))]
        valid = [n for n in numbers if 1 <= n <= len(hits)]
        used.extend(n for n in valid if n not in used)
        return "[" + ", ".join(map(str, valid)) + "]" if valid else ""

    cleaned = CITATION_RE.sub(keep, text)
    cleaned = re.sub(r"[ \t]+([.,;:])", r"\1", re.sub(r"[ \t]{2,}", " ", cleaned)).strip()
    citations = [Citation(n, hits[n - 1].source, hits[n - 1].heading, hits[n - 1].chunk_id, hits[n - 1].title)
                 for n in used]
    return cleaned, citations


def attribute_uncited(text: str, hits: list[Hit]) -> str:
    """Append ``[n]`` to sentences that cite nothing but clearly come from chunk n."""
    parts = re.split(r"(?<=[.!?])(\s+)", text)
    sentences = [(i, s) for i, s in enumerate(parts)
                 if len(s.strip()) > 25 and not CITATION_RE.search(s) and "$$" not in s]
    if not sentences or not hits:
        return text
    model = load_embedder()
    svecs = model.encode([s for _, s in sentences], normalize_embeddings=True, show_progress_bar=False)
    hvecs = model.encode([h.text for h in hits], normalize_embeddings=True, show_progress_bar=False)
    sims = svecs @ hvecs.T

    def cite(i: int, number: int) -> None:
        stripped = parts[i].rstrip()
        end = stripped[-1] if stripped[-1] in ".!?" else ""
        parts[i] = stripped[: len(stripped) - len(end)] + f" [{number}]" + end

    for (i, _), row in zip(sentences, sims, strict=True):
        best = int(np.argmax(row))
        if row[best] >= ATTRIBUTION_SIMILARITY:
            cite(i, best + 1)
    if not CITATION_RE.search("".join(parts)):
        # No sentence clearly comes from one chunk: cite, once, the chunk that best supports the whole
        # answer, if any supports it at all.
        whole = model.encode(["".join(parts)], normalize_embeddings=True, show_progress_bar=False)[0] @ hvecs.T
        best = int(np.argmax(whole))
        if whole[best] >= MIN_SIMILARITY:
            cite(sentences[-1][0], best + 1)
    return "".join(parts)


def grounding(text: str, question: str, hits: list[Hit]) -> float:
    """Share of the answer's new content words (those not already in the question) found in the chunks.

    Words echoed from the question prove nothing, so they are left out; an
    answer that adds fewer than ``MIN_CONTENT_WORDS`` new words scores 0.
    """
    asked = set(content_words(question))
    words = [w for w in content_words(CITATION_RE.sub(" ", text)) if w not in asked]
    if len(words) < MIN_CONTENT_WORDS:
        return 0.0
    known = set(content_words(" ".join(h.text + " " + h.heading for h in hits)))
    return sum(w in known for w in words) / len(words)


def covers(retriever: Retriever, question: str, best_similarity: float, lib: Library | None = None) -> bool:
    """Whether the notes plausibly answer the question (see the module docstring)."""
    if best_similarity < MIN_SIMILARITY:
        return False
    if best_similarity >= CLEAR_SIMILARITY:
        return True
    terms, unknown = retriever.terms(question)
    if len(terms) > NAMING_TERMS:
        return True  # a long question describes its problem; an unfamiliar word in it is the learner's own
    if terms and len(unknown) / len(terms) >= UNKNOWN_SHARE and rare_words(question, set(unknown)):
        return False
    if lib is None:
        return True
    if unknown_compound(question, lib.compounds) or untaught_technique(question, lib.taught):
        return False
    # A name the notes mention but never teach ("What is a Kalman filter?", "... a GAN ..."): a capitalised
    # word or an acronym of the question, or a word that is not common English, outside the taught vocabulary.
    untaught = {t for t in terms if t not in lib.taught}
    if unknown_modifier(question, set(unknown), lib.concepts_named):
        return False
    return not (any(t not in lib.taught for t in named_terms(question)) or rare_words(question, untaught))


# A hyphenated name: a one-letter part ("t-test", "p-value", "E-step", "Q-learning") or capitalised parts
# ("Metropolis-Hastings"); a learner's own hyphenation ("look-up-the-closest-examples") is neither.
_HYPHENATED = re.compile(r"(?<![\w-])[A-Za-z0-9]+(?:-[A-Za-z0-9]+)+(?![\w-])")


def hyphenated(text: str) -> list[str]:
    """The hyphenated words of a text, an en dash read as a hyphen ("Gram–Schmidt" -> "Gram-Schmidt")."""
    return _HYPHENATED.findall(text.replace("–", "-"))


def unknown_compound(question: str, compounds: frozenset[str]) -> str | None:
    """A hyphenated name of the question that no note ever writes: a technique of its own ("the *p-value* of a
    t-test", "the *E-step* of EM")."""
    for word in hyphenated(question):
        parts = word.split("-")
        named = any(len(p) == 1 and p.isalpha() for p in parts) or all(p[:1].isupper() for p in parts)
        if named and word.lower() not in compounds:
            return word
    return None


# Head nouns that turn the word before them into the name of a technique: "*diffusion* model", "*Viterbi*
# algorithm", "*Fourier* transform".
TECHNIQUE_HEADS = frozenset({"model", "network", "algorithm", "method", "filter", "transform", "equation",
                             "theorem", "test", "trick", "layer", "process", "machine", "autoencoder", "decoding",
                             "search"})


def untaught_technique(question: str, taught: frozenset[str]) -> str | None:
    """A word the notes never teach in front of a head noun that names a technique ("a *diffusion* model",
    where the notes mention diffusion models in passing and teach none): the technique is not taught here."""
    for first, head in modifier_pairs(question):
        first, head = (re.sub(r"'s$", "", w.lower()) for w in (first, head))
        if (head in TECHNIQUE_HEADS or head[:-1] in TECHNIQUE_HEADS) and content_words(first) \
                and _stem(first) not in taught:
            return first
    return None


def unknown_modifier(question: str, unknown: set[str], named: frozenset[str]) -> str | None:
    """A word the notes never use that names a kind of a concept they teach ("*speculative* decoding", where
    "greedy decoding" is a note's alias): a technique of its own, not taught here. The word right after it must
    be a term of a note's title or aliases (``named``), and the word itself not a function word ("*my* loss");
    "go strange when", "rein it in", "downhill arrows" in a learner's paraphrase do not qualify."""
    for first, second in modifier_pairs(question):
        if _stem(first) in unknown and content_words(second) and _stem(second) in named:
            return first
    return None


def modifier_pairs(question: str) -> list[tuple[str, str]]:
    """The question's adjacent words (first, second) whose first is not a function word: the first may name a
    kind of the second ("*speculative* decoding", "a *diffusion* model")."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    words = re.findall(r"[A-Za-z][A-Za-z']*", question)
    return [(a, b) for a, b in zip(words, words[1:], strict=False) if a.lower() not in ENGLISH_STOP_WORDS]


def _stem(word: str) -> str:
    from rag.index import stemmer

    return stemmer().stemWord(word.lower())


def rare_words(question: str, unknown: set[str]) -> list[str]:
    """The question's words whose terms the notes never use and that are not common English either (not a
    whole word of the embedder's vocabulary): "quicksort", "Viterbi", "timestep" count; "told", "super",
    "salary" in a learner's paraphrase do not."""
    from rag.index import stemmer

    vocab = getattr(load_embedder().tokenizer, "vocab", {})
    stem = stemmer()

    def common(word: str) -> bool:  # the word or its stem ("plunges" -> "plunge") is a whole word
        return any(form in vocab for form in (word, re.sub(r"(?:es|ed|ing|ly)$", "", word), re.sub(r"s$", "", word)))

    return [w for w in re.findall(r"[A-Za-z]{2,}", question)
            if stem.stemWord(w.lower()) in unknown and not common(w.lower())]


def named_terms(question: str) -> list[str]:
    """BM25 terms of the question's names: capitalised words past the first, and acronyms."""
    from rag.index import tokenize

    words = re.findall(r"[A-Za-z][\w'-]*", question)
    names = [w for i, w in enumerate(words) if (i > 0 and w[0].isupper()) or re.fullmatch(r"[A-Z]{2,}s?", w)]
    if not names:
        return []
    tokens = tokenize([" ".join(n.replace("-", " ") for n in names)])
    vocab = {i: w for w, i in tokens.vocab.items()}
    return [vocab[i] for i in tokens.ids[0]] if tokens.ids else []


def nearest_notes(hits: list[Hit], n: int = 3) -> str:
    seen: dict[str, Hit] = {}
    for h in hits:
        seen.setdefault(h.source, h)
    return "; ".join(f"{h.title} ({h.source})" for h in list(seen.values())[:n])


# --------------------------------------------------------------------------- answering


@dataclass
class Library:
    """What answering reads besides the index: the notes as sentences, the concepts they define, and the
    words they teach (titles, aliases, definitions, Intuition, Definition and derivation, Worked example)."""

    book: NoteBook
    concepts: ConceptTable
    taught: frozenset[str] = frozenset()
    concepts_named: frozenset[str] = frozenset()  # terms of titles and aliases
    compounds: frozenset[str] = frozenset()  # the hyphenated words the notes write ("top-k"), lower-cased
    rows: dict[str, int] | None = None  # chunk id -> row of the index's vectors


TAUGHT_SECTIONS = ("Intuition", "Definition and derivation", "Worked example")


def taught_terms(notes) -> frozenset[str]:
    """BM25 terms of what the notes teach, as opposed to what they only mention in passing
    ("Kalman filters" in a list of uses of Bayes' theorem) or in the code that draws a figure."""
    texts = []
    for n in notes:
        texts += [n.title, " ".join(n.aliases), n.definition, *n.definitions, *n.definitions.values()]
        for section in TAUGHT_SECTIONS:
            m = re.search(rf"^## {section}\n(.*?)(?=^## )", n.body, re.S | re.M)
            texts.append("\n".join(line for _, line in strip_code(m.group(1))) if m else "")  # prose, not code
    return _terms(texts)


def concept_terms(notes) -> frozenset[str]:
    """BM25 terms of the notes' names for their concepts: titles and aliases ("decoding" of "greedy decoding")."""
    return _terms([f"{n.title} {' '.join(n.aliases)}" for n in notes])


def _terms(texts: list[str]) -> frozenset[str]:
    from rag.index import tokenize

    tokens = tokenize(texts)
    words = {i: w for w, i in tokens.vocab.items()}
    return frozenset(words[i] for ids in tokens.ids for i in ids)


_LIBRARIES: dict[int, tuple[object, Library]] = {}


def library(retriever: Retriever) -> Library:
    """The notes behind ``retriever``'s index, parsed once per index (a refreshed index gets a new one)."""
    index = retriever.index
    cached = _LIBRARIES.get(id(index))
    if cached is not None and cached[0] is index:
        return cached[1]
    corpus_dir = retriever.settings.corpus_dir
    notes = load_corpus(corpus_dir, root=corpus_dir.parent)
    compounds = frozenset(w.lower() for n in notes for w in hyphenated(n.body))
    lib = Library(NoteBook.build(notes, index.chunks), ConceptTable(concepts_from_notes(notes)), taught_terms(notes),
                  concept_terms(notes), compounds)
    _LIBRARIES.clear()
    _LIBRARIES[id(index)] = (index, lib)
    _kept_vectors(retriever, _choosable(lib))  # an earlier run's sentence vectors, so no answer embeds them again
    return lib


def _choosable(lib: Library) -> list[str]:
    """The sentences the composer may choose (not the checks' prose), each once."""
    return list(dict.fromkeys(s.text for source in lib.book.chunks for s in lib.book.sentences(source)
                              if may_answer(s)))


def _kept_vectors(retriever: Retriever, texts: list[str]) -> dict[str, np.ndarray]:
    """The vectors of ``texts`` that an earlier run kept (text -> vector), put where answers find them."""
    stored = load_vectors(retriever.settings, embedder_identity(retriever.settings))
    kept = {t: stored[k] for t in texts if (k := sentence_key(t)) in stored}
    remember_sentence_vectors(load_embedder(), kept)
    return kept


def warm_sentences(retriever: Retriever, stop: threading.Event | None = None) -> int:
    """Embed every sentence the composer may choose (not the checks' prose), so no answer pays for it later;
    returns how many are ready.

    The vectors are read from ``MATHRAG_HOME/sentences`` when an earlier run kept them
    (:mod:`rag.sentence_store`), and only new or edited sentences are embedded, in small batches; then all
    are kept again. Returns early, keeping nothing, once ``stop`` is set (the process is exiting)."""
    texts = _choosable(library(retriever))
    kept = _kept_vectors(retriever, texts)
    missing = [t for t in texts if t not in kept]
    for start in range(0, len(missing), 64):
        if stop is not None and stop.is_set():
            return len(kept) + start
        _encode(missing[start:start + 64])
    if missing:  # new or edited sentences: keep the notes' sentences as they are now (removed ones go)
        vectors = _encode(texts)
        save_vectors(retriever.settings, embedder_identity(retriever.settings),
                     {sentence_key(t): v for t, v in zip(texts, vectors, strict=True)})
    return len(texts)


def _encode(texts: list[str]) -> np.ndarray:
    return sentence_vectors(load_embedder(), texts)


def cite(sentence: str, number: int) -> str:
    """``sentence`` with ``[number]`` before its closing period (on its own line after display math)."""
    sentence = sentence.rstrip()
    if sentence.endswith("$$"):
        return f"{sentence}\n\n[{number}]"
    if sentence.endswith((".", "!", "?")):
        return f"{sentence[:-1]} [{number}]{sentence[-1]}"
    return f"{sentence} [{number}]"


def _hit_of(chunk, similarity: float | None = None) -> Hit:
    return Hit(text=chunk.text, source=chunk.source, heading=chunk.heading, title=chunk.title, score=0.0,
               chunk_id=chunk.chunk_id, area=chunk.area, tags=list(chunk.tags), similarity=similarity)


def composed_answer(question: str, hits: list[Hit], lib: Library, qvec: np.ndarray,
                    chunk_sims=None) -> tuple[str, str, list[Hit]]:
    """(answer text, read-next line, hits): the composed answer, citing ``hits`` plus any chunk it used
    that was not retrieved (appended, so the numbers stay valid)."""
    asks = classify(question)
    composed = compose(question, asks, [h.source for h in hits], lib.book, qvec, _encode,
                       chunk_similarity=lambda ids: chunk_sims(ids, qvec))
    if composed is None:
        return ExtractiveGenerator().answer(question, [ContextChunk(i, h.text) for i, h in enumerate(hits, 1)]), \
            "", hits
    hits = list(hits)
    numbers = {h.chunk_id: i for i, h in enumerate(hits, start=1)}

    def number_of(chunk) -> int:
        if chunk.chunk_id not in numbers:
            hits.append(_hit_of(chunk))
            numbers[chunk.chunk_id] = len(hits)
        return numbers[chunk.chunk_id]

    parts = [cite(s.text, number_of(s.chunk)) for s in composed.sentences]
    text = join_sentences(parts)
    read_next = ""
    if composed.read_next is not None:
        section = " › ".join(composed.read_next.heading.split(" > ")[1:]) or "summary"
        read_next = f"{READ_NEXT} *{composed.read_next.title} › {section}* [{number_of(composed.read_next)}]"
    return text, read_next, hits


def _replacement(hits: list[Hit]):
    """For the support check: the cited passage's own sentence closest to an unsupported one, or None."""
    model = load_embedder()

    def closest(sentence: str, number: int) -> str | None:
        hit = hits[number - 1]
        from rag.chunking import Chunk

        chunk = Chunk(hit.chunk_id, hit.text, hit.source, hit.heading, hit.title, hit.area)
        own = [s.text for s in chunk_sentences(chunk) if s.section not in ("Numerical check", "summary")]
        if not own:
            return None
        query = model.encode([sentence], normalize_embeddings=True, show_progress_bar=False)[0]
        sims = sentence_vectors(model, own) @ query
        best = int(np.argmax(sims))
        return cite(own[best], number) if sims[best] >= REPLACE_SIMILARITY else None

    return closest


def _refusal(result: Answer, hits: list[Hit], start: float) -> Answer:
    nearest = nearest_notes(hits)
    result.text = NOT_COVERED + (f" The nearest notes are: {nearest}." if nearest else "")
    result.covered, result.done = False, True
    result.support = Support().to_dict()
    result.seconds = time.perf_counter() - start
    return result


def stream_answer(
    question: str,
    options: AskOptions | None = None,
    *,
    retriever: Retriever | None = None,
    history: list[dict] | None = None,
    guard: bool = True,
    **choices,
) -> Iterator[Answer]:
    """Yield the answer as it grows; the last one has ``done=True``, resolved citations and its support check.

    ``options`` (:class:`rag.options.AskOptions`: k, mode, generator, max_new_tokens, temperature), or any of
    them as keywords: ``stream_answer(q, k=3)``. The phases: retrieve -> decline or go on -> withhold
    instructions -> compose -> generate -> verify. ``guard=False`` shows a model's answer as written (still
    checked, and the check still reported).
    """
    start = time.perf_counter()
    question, notices = clean_question(question)
    options = (options or AskOptions()).but(**choices)  # checked before any work, like the mode and generator
    retriever = retriever or get_retriever()
    check_mode(options.mode, retriever.modes)
    gen = get_generator(options.generator)

    lib = library(retriever)
    hits, best, qvec = _retrieve(retriever, lib, question, history, options.k, options.mode)
    result = Answer(question=question, text="", hits=hits, generator=gen.name, mode=options.mode, notices=notices,
                    asks=classify(question))
    if not covers(retriever, question, best, lib):
        yield _refusal(result, hits, start)
        return

    shown, hits = hits, _withhold(hits, result.notices)
    composed, read_next, hits = composed_answer(question, hits, lib, qvec, _chunk_similarity(retriever, lib))
    shown = shown + hits[len(shown):]  # chunks the composer added are cited too
    result.hits = shown

    text = yield from _generate(gen, question, qvec, composed, hits, history, result, start, options)
    if text is None:  # the model said the notes do not cover it
        yield _refusal(result, hits, start)
        return
    text = _verify(text, gen.name, composed, hits, lib, result, guard)
    if read_next and text and result.fallback in (None, DEFAULT_GENERATOR):
        text = f"{text}\n\n{read_next}"
    result.text, result.citations = resolve_citations(text, shown)
    result.done = True
    result.seconds = time.perf_counter() - start
    yield result


def _retrieve(retriever: Retriever, lib: Library, question: str, history: list[dict] | None, k: int,
              mode: str) -> tuple[list[Hit], float, np.ndarray]:
    """(hits, the best hit's cosine similarity with the question, the question's normalized embedding (384,)).

    The question is embedded once per answer: by the search, when it searched the question alone with its
    vector, else here; the composer and the extractive generator then reuse the vector.
    """
    query = retrieval_query(question, history)
    hits = retriever.search(query, k=k, mode=mode)
    qvec = hits.query_vector if query == question and hits.query_vector is not None else None
    if qvec is None:
        qvec = retriever.embed_query(question)[0]
    sims = [h.similarity for h in hits]
    if hits and any(s is None for s in sims):
        sims = _chunk_similarity(retriever, lib)([h.chunk_id for h in hits], qvec).tolist()
    return hits, max(sims, default=0.0), qvec


def _withhold(hits: list[Hit], notices: list[str]) -> list[Hit]:
    """The notes are data: a sentence in them that instructs the assistant is withheld from the model."""
    out = []
    for h in hits:
        text, withheld = withhold_instructions(h.text)
        out.append(dataclasses.replace(h, text=text) if withheld else h)
        if withheld:
            notices.append(f"{h.source} contains text addressed to the assistant; it was treated as data "
                           "and left out of the model's context")
    return out


def _chunk_similarity(retriever: Retriever, lib: Library):
    """chunk_sims(ids, q): the cosine of ``q`` with the stored vectors of those chunks."""
    index = retriever.index
    if lib.rows is None:
        lib.rows = {c.chunk_id: i for i, c in enumerate(index.chunks)}
    rows = lib.rows

    def chunk_sims(ids: list[str], q: np.ndarray) -> np.ndarray:
        return index.vectors[[rows[i] for i in ids]] @ q

    return chunk_sims


def _generate(gen, question: str, qvec: np.ndarray, composed: str, hits: list[Hit], history: list[dict] | None,
              result: Answer, start: float, options: AskOptions):
    """The answer's text before the check (None when a model says the notes do not cover it). A model's
    answer is yielded as it grows; the composed and extractive ones come at once."""
    context = [ContextChunk(i, h.text) for i, h in enumerate(hits, start=1)]
    if gen.name in (DEFAULT_GENERATOR, ExtractiveGenerator.name):
        text = composed if gen.name == DEFAULT_GENERATOR else ExtractiveGenerator().answer(question, context, qvec)
        result.first_token_seconds = time.perf_counter() - start
        return text
    if gen.condensed_context:
        messages = build_condensed_messages(question, composed, history)
    else:
        messages = build_messages(question, hits, history)
    pieces = []
    for piece in gen.stream(messages, max_new_tokens=options.max_new_tokens, temperature=options.temperature,
                            context=context):
        if result.first_token_seconds is None:
            result.first_token_seconds = time.perf_counter() - start
        pieces.append(piece)
        result.text = "".join(pieces)
        yield result
    text = "".join(pieces).strip()
    if not text or text.startswith(NOT_COVERED):
        return None
    result.grounding = grounding(text, question, hits)
    return attribute_uncited(text, hits)


def _verify(text: str, generator: str, composed: str, hits: list[Hit], lib: Library, result: Answer,
            guard: bool) -> str:
    """The text to show after every sentence is checked against the passage it cites (the check goes in
    ``result.support``). A model's answer with no supported sentence is replaced by the composed one."""
    passages = [f"{h.heading}\n{h.text}" for h in hits]  # the heading says what the passage is about
    checked, support = enforce(text, passages, lib.concepts, replacement=_replacement(hits))
    result.support = support.to_dict()
    if generator in (DEFAULT_GENERATOR, ExtractiveGenerator.name):
        return checked
    if not guard:
        return text  # shown as written; the check above is still reported
    if support.supported == 0:
        result.notices.append(f"none of {generator}'s {support.checked} sentences was supported by the passage "
                              "it cites; showing the notes' own sentences instead")
        result.fallback = DEFAULT_GENERATOR
        result.support = enforce(composed, passages, lib.concepts)[1].to_dict()
        return composed
    if support.supported < support.checked:
        result.notices.append(f"{support.checked - support.supported} of {generator}'s {support.checked} "
                              "sentences were not supported by the passage they cite and were "
                              + ("replaced by the notes' own sentence or " if support.replaced else "")
                              + "removed")
    return checked


def answer(question: str, options: AskOptions | None = None, **kwargs) -> Answer:
    """The final cited answer to ``question`` (see :func:`stream_answer` for the arguments)."""
    final = None
    for final in stream_answer(question, options, **kwargs):  # noqa: B007 - we want the last one
        pass
    assert final is not None
    return final
