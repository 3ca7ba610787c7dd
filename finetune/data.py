"""Grounded question-answer data synthesised from the notes (``mathrag finetune data``).

No language model writes this data: every answer is a sentence of the notes, so it is correct by
construction, and every question is made from the note's own structure. Seeded, so the same notes
always give the same files.

Kinds of example (``kind``):

- ``definition``: a term set in bold in a sentence that defines it ("Its **singular value
  decomposition** is ...") -> "What is the singular value decomposition?"; the answer is that sentence.
- ``why``: the opening of an *Intuition* section -> "What is the intuition behind SVD?".
- ``formula``: a displayed equation with the sentence introducing it -> "What is the formula for ...?".
- ``negative`` (one in ten): one of the questions above asked over context from other notes only;
  the answer is the refusal the app uses ("The notes do not cover this."). Kept rare on purpose: the
  refusal is one fixed sentence, so a larger share teaches a small model to refuse everything.

Every example is written in the retrieval-augmented form the app sends to a model (``style``):

- ``condensed`` (what the embedded 135M model gets): the context sentences closest to the question,
  chosen by the same extractive step as at answer time and tagged ``[n]``, then the question (the
  answer's own sentences are always kept among them);
- ``full`` (what larger models get): the system prompt, numbered chunks ``[1] .. [k]``, the question.

The gold chunk sits at a random position among distractors, so the citation number must be read from
the context, not guessed. The split is by note: a validation note's text never appears in a training
example, neither as the answer nor as a distractor. Files, under ``MATHRAG_HOME/finetune/data/``:
``train.jsonl``, ``validation.jsonl`` (one example per line: ``messages`` in chat form plus provenance)
and ``manifest.json`` (counts per kind and style, the notes of each split, a hash of each file).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from rag.answering import NOT_COVERED, SYSTEM_PROMPT, build_condensed_messages, build_messages
from rag.artifacts import write_atomic
from rag.chunking import Chunk, chunk_corpus
from rag.corpus import Note, load_corpus
from rag.generators import ExtractiveGenerator, context_sentences
from rag.retriever import Hit
from rag.settings import Settings, get_settings

FORMAT = 1
KINDS = ("definition", "why", "formula", "negative")
STYLES = ("condensed", "full")
VALIDATION_SHARE = 0.15  # of the notes of each area, at least one per area
CONTEXT_CHUNKS = 3  # gold chunk + distractors, as numbered context
NEGATIVE_SHARE = 0.1
CONDENSED_SHARE = 0.7
MAX_ANSWER_CHARS = 500
GENERIC_HEADINGS = re.compile(r"^(definition|derivation|definition and derivation|worked example|intuition|"
                              r"numerical check|in ml|where it shows up in ml|summary|example|examples)", re.I)
DEFINING = re.compile(r"\b(is|are|means|called|denotes|defined|measures|gives|equals)\b|=")


class DataError(ValueError):
    """A dataset that cannot be read; the message names the file and line."""


@dataclass
class Example:
    id: str
    kind: str
    style: str
    split: str
    note: str  # the source of the note the question is about, e.g. corpus/linear_algebra/svd.md
    question: str
    answer: str  # the reference answer (the assistant's message)
    key_terms: list[str]  # words a good answer contains
    gold_chunk: str | None  # chunk id holding the answer (None for negatives)
    gold_number: int | None  # its citation number in the context
    context_chunks: list[str]  # chunk ids of the numbered context, in order
    messages: list[dict] = field(default_factory=list)  # system/user/assistant, the assistant last

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


def data_dir(settings: Settings | None = None) -> Path:
    return (settings or get_settings()).home / "finetune" / "data"


# --------------------------------------------------------------------------- the split


def split_notes(notes: list[Note], share: float = VALIDATION_SHARE, seed: int = 0) -> dict[str, str]:
    """source -> "train" | "validation": a seeded share of every area's notes is held out."""
    by_area: dict[str, list[Note]] = {}
    for n in notes:
        by_area.setdefault(n.area, []).append(n)
    split = {}
    for _area, members in sorted(by_area.items()):
        ranked = sorted(members, key=lambda n: hashlib.sha1(f"{seed}:{n.source}".encode()).hexdigest())
        held = max(1, round(share * len(members))) if len(members) > 1 else 0
        for i, n in enumerate(ranked):
            split[n.source] = "validation" if i < held else "train"
    return split


# --------------------------------------------------------------------------- questions from the notes


def _plain(text: str) -> str:
    """A sentence as an answer: bold markers and line breaks removed."""
    return re.sub(r"\s+", " ", text.replace("**", "")).strip()


QUESTION_WORDS = ("why", "how", "what", "when", "where", "which", "does", "is ", "can")
PROPER_NAMES = frozenset("Gaussian Bernoulli Bayes Bayesian Jensen Cauchy Laplace Taylor Hessian Jacobian "
                         "Lagrange Lagrangian Kullback Markov Newton Euler Poisson Shannon Adam Xavier He "
                         "Frobenius Euclidean Gram Fisher Boltzmann Huber Glorot".split())
LEADING_WORDS = ("one ", "two ", "the ", "a ", "an ", "this ", "each ", "every ", "its ", "our ")


def _lower_first(phrase: str) -> str:
    """"Several variables" -> "several variables", but "Adam", "SVD" and "Jensen's inequality" stay."""
    first = phrase.split(" ", 1)[0]
    if len(first) > 1 and first[0].isupper() and first[1:].islower() and " " in phrase \
            and not first.endswith("'s") and first not in PROPER_NAMES:
        return phrase[0].lower() + phrase[1:]
    return phrase


def _short_title(chunk: Chunk) -> str:
    """The note's title inside a question: "Decision Trees: Impurity and ..." -> "Decision Trees"."""
    title = re.split(r"[:(]", chunk.title, maxsplit=1)[0].strip() or chunk.title
    return re.sub(r"^(The|A|An) ", lambda m: m.group(1).lower() + " ", title)  # "... behind the Chain Rule"


def _topic(chunk: Chunk) -> str | None:
    """What a chunk's formula is about: its last specific heading (None when only generic headings,
    or a heading phrased as a question, name it)."""
    parts = [p.strip() for p in chunk.heading.split(">")]
    for part in reversed(parts[1:]):
        low = part.lower()
        if GENERIC_HEADINGS.match(part) or low.startswith(("step", "check")) or low.startswith(QUESTION_WORDS):
            continue
        return re.sub(r"^\d+[.)]\s*", "", part)
    return None


def _term_ok(term: str) -> bool:
    if " " not in term and term.islower() and len(term) < 5:  # "soft", "sum": words, not terms
        return False
    if term.lower().startswith(LEADING_WORDS):  # "One gradient step", "the trick": a phrase, not a term
        return False
    return 3 <= len(term) <= 60 and "$" not in term and any(c.isalpha() for c in term) and term.count(" ") <= 6


def _definition_question(term: str, rng: random.Random) -> str:
    term = _lower_first(term)
    template = rng.choice(["What is {a}{t}?", "Define {t}.", "What does {t} mean?", "What is meant by {t}?"])
    article = "" if term[0].isupper() or term[0].isdigit() else "the "
    return template.format(t=term, a=article)


def _formula_question(chunk: Chunk, rng: random.Random) -> tuple[str, str]:
    """(question, topic) for the displayed equation of a chunk."""
    title, topic = _short_title(chunk), _topic(chunk)
    if topic is None or topic.lower() == title.lower():
        template = rng.choice(["What is the key formula of {n}?", "Write down the main equation of {n}.",
                               "Which equation defines {n}?"])
        return template.format(n=title), title
    template = rng.choice(["In {n}, what is the formula for {t}?", "Write down the equation for {t} in {n}.",
                           "How is {t} written as an equation, in {n}?"])
    return template.format(n=title, t=_lower_first(topic)), topic


def questions_from_chunk(chunk: Chunk, rng: random.Random) -> list[tuple[str, str, str, list[str]]]:
    """(kind, question, answer, key terms) found in one chunk."""
    found = []
    sentences = context_sentences(chunk.text)
    seen_terms = set()
    for s in sentences:  # definitions: a bold term in a defining sentence
        if "$$" in s or len(s) > MAX_ANSWER_CHARS or not DEFINING.search(s):
            continue
        if re.search(r"(^|\s)- \*\*", s):  # a list of bold items is no definition
            continue
        for term in re.findall(r"\*\*([^*]+)\*\*", s)[:1]:
            if term.rstrip().endswith((".", ":", "!", "?")):  # a bold lead-in sentence, not a term
                continue
            term = term.strip().rstrip(",;")
            if not _term_ok(term) or term.lower() in seen_terms:
                continue
            seen_terms.add(term.lower())
            found.append(("definition", _definition_question(term, rng), _plain(s), [term]))
    opening = []
    for sentence in sentences[:2]:  # an intuition's opening, up to a sentence that announces a list
        if sentence.rstrip().endswith(":") or "- **" in sentence:
            break
        opening.append(sentence)
    if chunk.heading.rstrip().lower().endswith("intuition") and opening:
        answer = _plain(" ".join(opening))
        if len(answer) <= MAX_ANSWER_CHARS and "$$" not in answer:
            template = rng.choice(["What is the intuition behind {t}?", "Explain {t} intuitively.",
                                   "What is the idea of {t}, in plain words?"])
            found.append(("why", template.format(t=_short_title(chunk)), answer,
                          _bold(" ".join(opening)) or [_short_title(chunk)]))
    for s in sentences:  # formulas: a sentence introducing displayed math
        if "$$" in s and len(s) <= MAX_ANSWER_CHARS and not s.lstrip().startswith("$$"):
            intro = s.split("$$", 1)[0]
            if len(intro) < 25:
                continue
            question, topic = _formula_question(chunk, rng)
            found.append(("formula", question, s.replace("**", "").strip(), _bold(intro) or [topic]))
            break  # one formula per chunk keeps the mix balanced
    return found


def _bold(text: str) -> list[str]:
    """The terms a passage sets in bold: what an answer drawn from it should name."""
    return list(dict.fromkeys(t.strip().rstrip(".,:;") for t in re.findall(r"\*\*([^*]+)\*\*", text)
                              if _term_ok(t.strip().rstrip(".,:;"))))[:4]


# --------------------------------------------------------------------------- context and messages


def _hit(c: Chunk) -> Hit:
    return Hit(text=c.text, source=c.source, heading=c.heading, title=c.title, score=0.0, chunk_id=c.chunk_id,
               area=c.area)


class SentenceVectors:
    """The embedder's vectors of every chunk's context sentences and of the questions, computed in two
    batches, so that the condensed context of thousands of examples costs seconds, not minutes. The
    sentences are chosen exactly as at answer time (``ExtractiveGenerator.compose``)."""

    def __init__(self, chunks: list[Chunk], questions: list[str], progress: bool = True):
        from rag.models import load_embedder

        model = load_embedder()
        self.sentences = {c.chunk_id: context_sentences(c.text) for c in chunks}
        flat = [s for c in chunks for s in self.sentences[c.chunk_id]]
        vectors = model.encode(flat, batch_size=64, normalize_embeddings=True, show_progress_bar=progress)
        self.vectors, start = {}, 0
        for c in chunks:
            n = len(self.sentences[c.chunk_id])
            self.vectors[c.chunk_id] = vectors[start:start + n]
            start += n
        unique = sorted(set(questions))
        qv = model.encode(unique, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
        self.questions = dict(zip(unique, qv, strict=True))

    def condensed(self, question: str, chunk_ids: list[str], extractive: ExtractiveGenerator,
                  answer: str | None = None, gold_number: int | None = None) -> str:
        """The facts the app would give the small model for this question and context. With ``answer``,
        the gold chunk's sentences that make up the answer rank first, so the facts always hold it (in
        the app, a question whose answer the extractive step misses cannot be answered anyway: training on
        such a context would teach the model to invent)."""
        import numpy as np

        candidates = [(i, s) for i, c in enumerate(chunk_ids, 1) for s in self.sentences[c]]
        if not candidates:
            return NOT_COVERED
        scores = np.concatenate([self.vectors[c] for c in chunk_ids]) @ self.questions[question]
        if answer is not None:
            wanted = _flat(answer)
            top = float(scores.max())
            for j, (number, sentence) in enumerate(candidates):
                if number == gold_number and _flat(sentence) and _flat(sentence) in wanted:
                    scores[j] = top
        return extractive.compose(candidates, scores)


def render(example: Example, chunks: dict[str, Chunk], vectors: SentenceVectors) -> list[dict] | None:
    """The chat messages of an example, or None when the condensed context lost the answer."""
    context = [chunks[c] for c in example.context_chunks]
    if example.style == "full":
        messages = build_messages(example.question, [_hit(c) for c in context])
    else:
        positive = example.kind != "negative"
        facts = vectors.condensed(example.question, example.context_chunks, ExtractiveGenerator(),
                                  answer=example.answer if positive else None, gold_number=example.gold_number)
        if positive and not answer_in(example.answer, example.gold_number, facts):
            return None  # more answer sentences than the facts hold: nothing complete to answer from
        messages = build_condensed_messages(example.question, facts)
    return [*messages, {"role": "assistant", "content": example.answer}]


def _flat(text: str) -> str:
    """Text with bold markers, citation numbers and line breaks taken out, for comparing passages."""
    return " ".join(CITATION_NUMBER.sub("", text.replace("**", "")).split())


CITATION_NUMBER = re.compile(r"\s*\[\d+(?:\s*,\s*\d+)*\]")


def answer_in(answer: str, number: int | None, facts: str) -> bool:
    """Whether every sentence and equation of a cited reference answer is in the condensed facts, so the
    answer can be read off the context the model is given."""
    flat = _flat(facts)
    return f"[{number}]" in facts and all(_flat(piece) in flat for piece in answer.split("$$") if _flat(piece))


def cite(answer: str, number: int) -> str:
    """The reference answer with its citation, where the app's answers put it."""
    if answer.endswith("$$"):
        return f"{answer}\n\n[{number}]"
    if answer.endswith("."):
        return f"{answer[:-1]} [{number}]."
    return f"{answer} [{number}]"


def synthesize(notes: list[Note], *, seed: int = 0, progress: bool = True) -> list[Example]:
    """Every example the notes give, deduplicated, split by note, in a seeded order."""
    rng = random.Random(seed)
    split = split_notes(notes, seed=seed)
    chunks = chunk_corpus(notes)
    by_id = {c.chunk_id: c for c in chunks}
    pool = {s: [c for c in chunks if split[c.source] == s] for s in ("train", "validation")}
    examples, seen = [], set()
    for chunk in tqdm(chunks, desc="synthesising questions", disable=not progress):
        part = split[chunk.source]
        for kind, question, answer, terms in questions_from_chunk(chunk, rng):
            key = (question.lower(), answer[:80])
            if key in seen:
                continue
            seen.add(key)
            negative = rng.random() < NEGATIVE_SHARE
            others = [c for c in pool[part] if c.source != chunk.source]
            if negative:  # context from other areas only, none of it mentioning the term
                others = [c for c in others if c.area != chunk.area
                          and not any(t.lower() in c.text.lower() for t in terms)] or others
                context = rng.sample(others, min(CONTEXT_CHUNKS, len(others)))
                gold_number = None
            else:
                context = rng.sample(others, min(CONTEXT_CHUNKS - 1, len(others)))
                gold_number = rng.randint(1, len(context) + 1)
                context.insert(gold_number - 1, chunk)
            example = Example(
                id=hashlib.sha1(f"{chunk.chunk_id}|{question}|{negative}".encode()).hexdigest()[:12],
                kind="negative" if negative else kind,
                style="condensed" if rng.random() < CONDENSED_SHARE else "full", split=part, note=chunk.source,
                question=question, answer=NOT_COVERED if negative else cite(answer, gold_number),
                key_terms=terms, gold_chunk=None if negative else chunk.chunk_id, gold_number=gold_number,
                context_chunks=[c.chunk_id for c in context])
            examples.append(example)
    vectors = SentenceVectors(chunks, [e.question for e in examples], progress=progress)
    for example in examples:
        messages = render(example, by_id, vectors)
        if messages is None:
            example.style = "full"  # keep the question: the whole chunks do hold the answer
            messages = render(example, by_id, vectors)
        example.messages = messages
    rng.shuffle(examples)
    return examples


# --------------------------------------------------------------------------- files



def write_dataset(examples: list[Example], out: Path, notes: list[Note], seed: int) -> dict:
    """``train.jsonl``, ``validation.jsonl`` and ``manifest.json`` under ``out``; returns the manifest."""
    files = {}
    for part in ("train", "validation"):
        text = "".join(e.to_json() + "\n" for e in examples if e.split == part)
        write_atomic(out / f"{part}.jsonl", text)
        files[f"{part}.jsonl"] = hashlib.sha256(text.encode()).hexdigest()
    split = split_notes(notes, seed=seed)
    counts = {part: {"examples": sum(e.split == part for e in examples),
                     "kinds": dict(Counter(e.kind for e in examples if e.split == part)),
                     "styles": dict(Counter(e.style for e in examples if e.split == part)),
                     "notes": sorted(s for s, p in split.items() if p == part)} for part in ("train", "validation")}
    manifest = {"format": FORMAT, "seed": seed, "system_prompt": SYSTEM_PROMPT, "files": files, **counts}
    write_atomic(out / "manifest.json", json.dumps(manifest, indent=2))
    return manifest


def build_dataset(settings: Settings | None = None, *, seed: int = 0, out: Path | None = None,
                  progress: bool = True) -> dict:
    """Synthesise the data from the corpus and write it; returns the manifest."""
    settings = settings or get_settings()
    notes = load_corpus(settings.corpus_dir, root=settings.corpus_dir.parent)
    if not notes:
        raise DataError(f"no notes under {settings.corpus_dir}")
    examples = synthesize(notes, seed=seed, progress=progress)
    return write_dataset(examples, out or data_dir(settings), notes, seed)


def ensure_data(settings: Settings | None = None, progress: bool = True) -> Path:
    """The default data folder, synthesised first (seed 0) when it holds no dataset yet, so that
    ``mathrag finetune lora`` works as a first command; a dataset already there is used as it is."""
    settings = settings or get_settings()
    folder = data_dir(settings)
    if not (folder / "train.jsonl").is_file() or not (folder / "validation.jsonl").is_file():
        if progress:
            print(f"no fine-tuning data under {folder} yet: synthesising it from the notes (mathrag finetune data)",
                  file=sys.stderr)
        build_dataset(settings, progress=progress)
    return folder


def load_examples(path: Path) -> list[Example]:
    """The examples of a JSONL file; a missing, empty or malformed file -> DataError naming file and line."""
    if not path.is_file():
        raise DataError(f"{path}: no such dataset (run `mathrag finetune data` first)")
    examples = []
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                example = Example(**record)
            except (json.JSONDecodeError, TypeError) as exc:
                raise DataError(f"{path}:{line_no}: not an example ({str(exc)[:80]})") from None
            roles = [m.get("role") for m in example.messages if isinstance(m, dict)]
            if not roles or roles[-1] != "assistant" or not all(isinstance(m.get("content"), str)
                                                                 for m in example.messages):
                raise DataError(f"{path}:{line_no}: messages must be chat turns ending with the assistant's")
            examples.append(example)
    if not examples:
        raise DataError(f"{path}: the dataset is empty")
    return examples
