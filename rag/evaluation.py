"""Measure retrieval and answers against the development question set.

The question set (``rag/data/dev_questions.jsonl``) names, for each question,
the note(s) that answer it and the key terms a correct answer contains; some
questions are deliberately outside the notes. From it:

- retrieval, per mode: recall@k (a chunk of a gold note among the first k),
  MRR (mean of 1 / rank of the first gold chunk), nDCG@10 (gold chunks as
  relevant, binary gains), note coverage@k (the share of a question's gold
  notes that have a chunk among the first k) and search latency; ``hybrid+spread``
  is the hybrid ranking with notes taking turns (``spread_over_notes``), the
  reference the graph modes must beat on questions that span notes;
- the same on the multi-hop set (``rag/data/multihop_questions.jsonl``: each
  question needs two to four notes), where note coverage@k is the measure
  that counts: finding one of the notes is not enough;
- answers, for one generator: key-term coverage (share of key terms present in
  the answer), citation precision (share of citations whose chunk contains a
  key term), how often a gold note is cited, refusal accuracy on questions the
  notes do not cover, false refusals on those they do, and latency.

Results are written under ``MATHRAG_HOME/reports/`` as JSON, a Markdown table
and a bar chart (PNG).
"""

from __future__ import annotations

import json
import math
import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rag.answering import READ_NEXT, Answer, answer
from rag.artifacts import write_atomic
from rag.compose import ASKS, TROUBLE, WHY_NOT, classify
from rag.mathnorm import pattern_found
from rag.options import DEFAULT_GENERATOR, AskOptions
from rag.retriever import MODES, Retriever
from rag.settings import Settings, get_settings
from rag.support import CITATION_RE, split_sentences
from rag.text import clean_question

DATASET = Path(__file__).resolve().parent / "data" / "dev_questions.jsonl"
MULTIHOP = Path(__file__).resolve().parent / "data" / "multihop_questions.jsonl"
KS = (1, 5, 10)


@dataclass
class Question:
    id: str
    question: str
    notes: list[str]
    key_terms: list[str]
    kind: str
    asks: str = ""  # hand label of what the question asks for (rag.compose.ASKS)
    gold: list[str] = field(default_factory=list)  # a correct answer matches at least one (rag.mathnorm)
    must_not: list[str] = field(default_factory=list)  # ... and none of these (a typical confusion)
    why: str = ""  # the gold fact, in words, for a person reading the report
    problem: str = ""  # a known problem with the question, if any

    @property
    def answerable(self) -> bool:
        return bool(self.notes)


def load_questions(path: Path = DATASET) -> list[Question]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                try:
                    rows.append(Question(**json.loads(line)))
                except (ValueError, TypeError) as exc:
                    raise ValueError(f"{path}:{n}: not a valid question ({exc})") from None
    return rows


def gold_found(q: Question, text: str) -> bool:
    """The answer states the gold fact (one of ``gold``) and none of the typical confusions (``must_not``).
    The "Read next" link is not the answer: a heading it names ("Steepest ascent via Cauchy-Schwarz") does
    not count as stating the fact."""
    text = text.split("\n\n" + READ_NEXT)[0]
    return any(pattern_found(p, text) for p in q.gold) and not any(pattern_found(p, text) for p in q.must_not)


# Openings that do not answer: the note describing itself, the check's prose, a link line.
_NOT_AN_ANSWER = re.compile(r"^\W*(?:this note|the note|the check|this check|defines |explains |derives |covers |"
                            r"see |read next)", re.I)


def opens_directly(reply: Answer, asks: str) -> bool:
    """Whether the answer's first sentence answers: it cites a passage that is not the note's summary, its
    check or links, nor (unless asked for) a worked-example fragment or a pitfall bullet, and it does not
    describe the note. A pitfall is asked for by a failure question, a why-not question, and a why or how
    question about the learner's own trouble ("*my* model ...")."""
    sentences = split_sentences(reply.text)
    if not sentences or _NOT_AN_ANSWER.match(sentences[0]):
        return False
    numbers = [int(n) for m in CITATION_RE.finditer(sentences[0]) for n in m.group(1).split(",")]
    if not numbers or not 1 <= numbers[0] <= len(reply.hits):
        return False
    heading = reply.hits[numbers[0] - 1].heading
    section = heading.split(" > ")[1] if " > " in heading else "summary"
    if section in ("summary", "Numerical check", "See also", "References"):
        return False
    if section == "Worked example" and asks != "example":
        return False
    why_not = asks == "why" and bool(WHY_NOT.search(reply.question))  # "Why does the CLT not apply to ...?"
    # "*My* CNN gives a different prediction ... Why?": the pitfall that describes the learner's trouble answers.
    trouble = asks in ("why", "how") and bool(TROUBLE.search(reply.question))
    return not (section == "Pitfalls and failure modes" and asks != "failure" and not why_not and not trouble)


def term_found(term: str, text: str) -> bool:
    """A key term (alternatives separated by '|') occurs in the text, ignoring case."""
    low = text.lower()
    return any(alt.strip().lower() in low for alt in term.split("|") if alt.strip())


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


# --------------------------------------------------------------------------- retrieval


def evaluate_retrieval(retriever: Retriever, questions: list[Question], modes=MODES, k_max: int = 10,
                       progress: bool = True) -> dict:
    answerable = [q for q in questions if q.answerable]
    chunks_per_note: dict[str, int] = {}
    for c in retriever.index.chunks:
        chunks_per_note[c.source] = chunks_per_note.get(c.source, 0) + 1
    vectors, embed_s = _query_vectors(retriever, answerable)
    results = {}
    for mode in modes:
        recalls = {k: 0 for k in KS}
        coverage: dict[int, list[float]] = {k: [] for k in KS}
        rr, ndcg, latencies, misses = [], [], [], []
        for i, q in enumerate(tqdm(answerable, desc=f"retrieval ({mode})", disable=not progress, leave=False)):
            start = time.perf_counter()
            base, _, option = mode.partition("+")  # "hybrid+spread": the hybrid ranking with notes taking turns
            hits = retriever.search(q.question, k=k_max, mode=base, query_vector=vectors[i],
                                    **({"spread": True} if option == "spread" else {}))
            latencies.append(time.perf_counter() - start + (embed_s[i] if base != "bm25" else 0.0))
            gold = set(q.notes)
            relevant = [h.source in gold for h in hits]
            first = next((i for i, r in enumerate(relevant) if r), None)
            for k in KS:
                recalls[k] += first is not None and first < k
                coverage[k].append(len(gold & {h.source for h in hits[:k]}) / len(gold))
            rr.append(1.0 / (first + 1) if first is not None else 0.0)
            dcg = sum(1.0 / math.log2(i + 2) for i, r in enumerate(relevant) if r)
            ideal_n = min(k_max, sum(chunks_per_note.get(n, 0) for n in gold))
            idcg = sum(1.0 / math.log2(i + 2) for i in range(ideal_n))
            ndcg.append(dcg / idcg if idcg else 0.0)
            if first is None or first >= 5:
                misses.append({"id": q.id, "question": q.question, "gold": q.notes,
                               "top": [h.source for h in hits[:3]]})
        n = len(answerable)
        results[mode] = {
            **{f"recall@{k}": recalls[k] / n for k in KS},
            **{f"coverage@{k}": statistics.fmean(coverage[k]) for k in KS},
            "mrr": statistics.fmean(rr),
            "ndcg@10": statistics.fmean(ndcg),
            "latency_p50_ms": 1000 * percentile(latencies, 50),
            "latency_p95_ms": 1000 * percentile(latencies, 95),
            "questions": n,
            "misses@5": misses,
        }
    return results


def _query_vectors(retriever: Retriever, questions: list[Question]) -> tuple[list[np.ndarray], list[float]]:
    """Each question embedded once, as a search embeds it, and the seconds it took: every mode then
    searches with that vector, and each mode's latency counts the embedding once (BM25 needs none)."""
    vectors, seconds = [], []
    for q in questions:
        start = time.perf_counter()
        vectors.append(retriever.embed_query(clean_question(q.question)[0])[0])
        seconds.append(time.perf_counter() - start)
    return vectors, seconds


# --------------------------------------------------------------------------- answers


def evaluate_answers(retriever: Retriever, questions: list[Question], options: AskOptions | None = None, *,
                     limit: int | None = None, progress: bool = True, shown: int = 20, **choices) -> dict:
    """Answer quality for one set of :class:`AskOptions` (or any of them as keywords: ``generator="extractive"``):
    the gold statement, sentence support, a direct opening, refusals, replacements and time; and ``shown``
    answers in full, for a person to read."""
    options = (options or AskOptions()).but(**choices)
    answerable, outside = _answer_sample(questions, limit)
    tally = _AnswerTally()
    for q in tqdm(answerable + outside, desc=f"answers ({options.generator})", disable=not progress, leave=False):
        reply = answer(q.question, options, retriever=retriever)
        tally.add_reply(reply)
        if not q.answerable:
            tally.add_outside(q, reply)
            continue
        tally.add_answerable(q, reply)
        # Spread the examples over the whole set rather than showing its first questions.
        if len(tally.examples) < shown and answerable.index(q) % max(1, len(answerable) // shown) == 0:
            tally.examples.append(_example(q, reply))
    return {**tally.summary(options.generator, options.mode, len(answerable), len(outside)), "k": options.k}


def _answer_sample(questions: list[Question], limit: int | None) -> tuple[list[Question], list[Question]]:
    """The answerable and out-of-scope questions to ask, at most ``limit`` of them in all."""
    answerable = [q for q in questions if q.answerable]
    outside = [q for q in questions if not q.answerable]
    if limit:
        # Keep the mix: the same share of out-of-scope questions as in the full set.
        n_out = max(1, round(limit * len(outside) / len(questions)))
        answerable, outside = answerable[: limit - n_out], outside[:n_out]
    return answerable, outside


def _example(q: Question, reply: Answer) -> dict:
    """One answer in full, with its support check, gold verdict and citations, for the report."""
    check = reply.support or {}
    return {"id": q.id, "question": q.question, "answer": reply.text,
            "support": check.get("summary", ""), "gold": q.why,
            "gold_found": bool(q.gold) and gold_found(q, reply.text),
            "citations": [f"[{c.number}] {c.source} › {c.heading.split(' > ', 1)[-1]}" for c in reply.citations]}


@dataclass
class _AnswerTally:
    """Counts gathered over one generator's answers, turned into rates by :meth:`summary`."""

    latencies: list[float] = field(default_factory=list)
    first_tokens: list[float] = field(default_factory=list)
    groundings: list[float] = field(default_factory=list)
    fallbacks: int = 0
    replaced: int = 0
    refused_outside: int = 0
    wrong_refusals: list[str] = field(default_factory=list)  # out-of-scope questions that were answered
    false_refusals: int = 0
    sentences: int = 0
    supported: int = 0
    direct: int = 0
    gold_total: int = 0
    gold_hits: int = 0
    misses: list[dict] = field(default_factory=list)
    coverage: list[float] = field(default_factory=list)
    cited_all: int = 0
    cited_ok: int = 0
    gold_cited: int = 0
    examples: list[dict] = field(default_factory=list)

    def add_reply(self, reply: Answer) -> None:
        """Time, grounding and replacements: counted for every question."""
        self.latencies.append(reply.seconds)
        if reply.first_token_seconds is not None:
            self.first_tokens.append(reply.first_token_seconds)
        if reply.grounding is not None:
            self.groundings.append(reply.grounding)
        self.fallbacks += reply.fallback is not None
        check = reply.support or {}
        self.replaced += reply.fallback is not None or bool(check.get("replaced") or check.get("removed"))

    def add_outside(self, q: Question, reply: Answer) -> None:
        """A question the notes do not cover: the answer should be a refusal."""
        self.refused_outside += not reply.covered
        if reply.covered:
            self.wrong_refusals.append(q.question)

    def add_answerable(self, q: Question, reply: Answer) -> None:
        """A question the notes cover: refusal, support, opening, gold fact, key terms and citations."""
        check = reply.support or {}
        if not reply.covered:
            self.false_refusals += 1
        self.sentences += check.get("checked", 0)
        self.supported += check.get("supported", 0)
        self.direct += reply.covered and opens_directly(reply, q.asks or classify(q.question))
        if q.gold:
            self.gold_total += 1
            ok = reply.covered and gold_found(q, reply.text)
            self.gold_hits += ok
            if not ok:
                self.misses.append({"id": q.id, "question": q.question, "gold": q.why or q.gold[0]})
        self.coverage.append(sum(term_found(t, reply.text) for t in q.key_terms) / len(q.key_terms))
        for c in reply.citations:
            self.cited_all += 1
            self.cited_ok += any(term_found(t, reply.hits[c.number - 1].text) for t in q.key_terms)
        self.gold_cited += any(c.source in q.notes for c in reply.citations)

    def summary(self, generator: str, mode: str, n: int, n_outside: int) -> dict:
        """The rates over ``n`` answerable and ``n_outside`` out-of-scope questions, as ``evaluate_answers`` returns."""
        total = n + n_outside
        return {
            "generator": generator,
            "mode": mode,
            "questions": total,
            "gold_recall": self.gold_hits / self.gold_total if self.gold_total else None,
            "gold_questions": self.gold_total,
            "supported_sentence_rate": self.supported / self.sentences if self.sentences else None,
            "direct_opening_rate": self.direct / n if n else 0.0,
            "key_term_coverage": statistics.fmean(self.coverage) if self.coverage else 0.0,
            "citation_precision": self.cited_ok / self.cited_all if self.cited_all else 0.0,
            "gold_note_cited": self.gold_cited / n if n else 0.0,
            "refusal_accuracy": self.refused_outside / n_outside if n_outside else float("nan"),
            "false_refusal_rate": self.false_refusals / n if n else 0.0,
            "fallback_rate": self.fallbacks / total,
            "replaced_rate": self.replaced / total,
            "mean_grounding": statistics.fmean(self.groundings) if self.groundings else None,
            "latency_p50_s": percentile(self.latencies, 50),
            "latency_p95_s": percentile(self.latencies, 95),
            "first_token_p50_s": percentile(self.first_tokens, 50) if self.first_tokens else None,
            "gold_misses": self.misses,
            "answered_outside": self.wrong_refusals,
            "examples": self.examples,
        }


def evaluate_classifier(questions: list[Question]) -> dict:
    """How often ``rag.compose.classify`` agrees with the hand labels of what a question asks for."""
    labelled = [q for q in questions if q.asks in ASKS]
    confusion: dict[str, dict[str, int]] = {}
    for q in labelled:
        row = confusion.setdefault(q.asks, {})
        guess = classify(q.question)
        row[guess] = row.get(guess, 0) + 1
    right = sum(row.get(label, 0) for label, row in confusion.items())
    return {"questions": len(labelled), "accuracy": right / len(labelled) if labelled else None,
            "confusion": confusion}


# --------------------------------------------------------------------------- report



def markdown_report(summary: dict) -> str:
    lines = [f"# Evaluation ({summary['date']})", "",
             f"{summary['questions']} questions ({summary['answerable']} answerable, "
             f"{summary['questions'] - summary['answerable']} outside the notes), {summary['chunks']} chunks."]
    lines += _retrieval_table(summary["retrieval"])
    if summary.get("retrieval_multihop"):
        lines += _multihop_table(summary["retrieval_multihop"], summary["multihop_questions"])
    if summary.get("answers"):
        lines += _answers_table(summary["answers"])
    clf = summary.get("classifier")
    if clf and clf.get("accuracy") is not None:
        lines += _classifier_table(clf)
    for a in summary.get("answers", []):
        lines += _answer_failures(a)
    if summary.get("answers"):
        lines += _examples_in_full(summary["answers"][0])
    misses = summary["retrieval"].get("hybrid", {}).get("misses@5", [])
    if misses:
        lines += ["", "## Hybrid misses at 5", ""]
        lines += [f"- `{m['id']}` {m['question']} (gold {', '.join(m['gold'])}; got {', '.join(m['top'])})"
                  for m in misses]
    return "\n".join(lines) + "\n"


def _rate(value: float | None) -> str:
    """A rate with three decimals, or '-' where it was not measured."""
    return "-" if value is None else f"{value:.3f}"


def _retrieval_table(retrieval: dict) -> list[str]:
    """The report's retrieval section: one row per mode."""
    lines = ["", "## Retrieval", "", "| mode | recall@1 | recall@5 | recall@10 | MRR | nDCG@10 | p50 ms | p95 ms |",
             "|---|---|---|---|---|---|---|---|"]
    for mode, r in retrieval.items():
        lines.append(f"| {mode} | {r['recall@1']:.3f} | {r['recall@5']:.3f} | {r['recall@10']:.3f} | {r['mrr']:.3f} "
                     f"| {r['ndcg@10']:.3f} | {r['latency_p50_ms']:.1f} | {r['latency_p95_ms']:.1f} |")
    return lines


def _multihop_table(retrieval: dict, questions: int) -> list[str]:
    """The report's multi-hop retrieval section: note coverage per mode."""
    lines = ["", f"## Multi-hop retrieval ({questions} questions, each needing 2-4 notes)",
             "", "Note coverage@k: the share of a question's notes with a chunk among the first k.", "",
             "| mode | coverage@5 | coverage@10 | recall@5 (any note) | MRR | p50 ms |",
             "|---|---|---|---|---|---|"]
    for mode, r in retrieval.items():
        lines.append(f"| {mode} | {r['coverage@5']:.3f} | {r['coverage@10']:.3f} | {r['recall@5']:.3f} "
                     f"| {r['mrr']:.3f} | {r['latency_p50_ms']:.1f} |")
    return lines


def _answers_table(answers: list[dict]) -> list[str]:
    """The report's answers section: what each measure means, then one row per generator."""
    lines = ["", "## Answers", "",
             "Gold recall: the answer states the question's gold fact (a formula or claim, after LaTeX "
             "normalisation) and none of its typical confusions. Supported: sentences supported by the "
             "passage they cite. Direct: the first sentence answers (not a description of the note, its check, "
             "a pitfall or an example fragment). Replaced: answers in which the support check replaced or "
             "removed a sentence, or the whole answer.", "",
             "| generator | gold recall | supported | direct | refusal acc. | false refusals | replaced "
             "| p50 s | p95 s | first token p50 s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for a in answers:
        lines.append(f"| {a['generator']} | {_rate(a['gold_recall'])} | {_rate(a['supported_sentence_rate'])} "
                     f"| {_rate(a['direct_opening_rate'])} | {_rate(a['refusal_accuracy'])} "
                     f"| {_rate(a['false_refusal_rate'])} | {_rate(a['replaced_rate'])} "
                     f"| {a['latency_p50_s']:.2f} | {a['latency_p95_s']:.2f} | {_rate(a['first_token_p50_s'])} |")
    return lines


def _classifier_table(clf: dict) -> list[str]:
    """The report's section on the question classifier: its accuracy and confusion matrix."""
    lines = ["", f"## What the question asks for ({clf['questions']} hand-labelled questions)", "",
             f"Rule-based classifier accuracy: {clf['accuracy']:.3f}.", "",
             "| label | " + " | ".join(ASKS) + " |", "|---" * (len(ASKS) + 1) + "|"]
    for label in ASKS:
        row = clf["confusion"].get(label, {})
        lines.append(f"| {label} | " + " | ".join(str(row.get(g, 0)) for g in ASKS) + " |")
    return lines


def _answer_failures(a: dict) -> list[str]:
    """The report's lists of one generator's missed gold statements and answered out-of-scope questions."""
    lines = []
    if a.get("gold_misses"):
        lines += ["", f"## {a['generator']}: gold statement missed ({len(a['gold_misses'])})", ""]
        lines += [f"- `{m['id']}` {m['question']} (gold: {m['gold']})" for m in a["gold_misses"]]
    if a.get("answered_outside"):
        lines += ["", f"## {a['generator']}: out-of-scope questions answered ({len(a['answered_outside'])})", ""]
        lines += [f"- {q}" for q in a["answered_outside"]]
    return lines


def _examples_in_full(a: dict) -> list[str]:
    """The report's section with one generator's example answers in full, each with its verdict."""
    lines = ["", f"## {len(a['examples'])} answers in full ({a['generator']})", ""]
    for e in a["examples"]:
        verdict = "gold found" if e["gold_found"] else "gold not found"
        lines += [f"### `{e['id']}` {e['question']}", "", e["answer"], "",
                  f"*{e['support']} {verdict} ({e['gold']}).*", ""]
    return lines


def plot_retrieval(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = list(summary["retrieval"])
    metrics = ["recall@1", "recall@5", "recall@10", "mrr", "ndcg@10"]
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(modes)
    for i, mode in enumerate(modes):
        values = [summary["retrieval"][mode][m] for m in metrics]
        xs = [j + i * width for j in range(len(metrics))]
        bars = ax.bar(xs, values, width, label=mode)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks([j + width * (len(modes) - 1) / 2 for j in range(len(metrics))], metrics)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("score")
    ax.set_title(f"Retrieval on {summary['answerable']} development questions")
    ax.legend(loc="lower right")
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)


def run_eval(settings: Settings | None = None, *, generators: tuple[str, ...] = (DEFAULT_GENERATOR,),
             options: AskOptions | None = None, limit: int | None = None, modes=(*MODES, "hybrid+spread"),
             retriever=None, progress: bool = True, dataset: Path = DATASET, multihop: Path | None = MULTIHOP) -> dict:
    """Retrieval for each of ``modes`` on the development and multi-hop sets, and answers for each generator
    on the development set, asked with ``options`` (k, answer mode, length, temperature). ``retriever`` must
    serve every mode (default: ``rag.Retriever``)."""
    options = options or AskOptions()
    settings = settings or get_settings()
    modes = tuple(modes)
    questions = load_questions(dataset)
    retriever = retriever or Retriever.load(settings, progress=progress)
    start = time.perf_counter()
    summary = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "questions": len(questions),
        "answerable": sum(q.answerable for q in questions),
        "chunks": len(retriever.index),
        "retrieval": evaluate_retrieval(retriever, questions, modes, progress=progress),
        "answers": [evaluate_answers(retriever, questions, options.but(generator=g), limit=limit, progress=progress)
                    for g in generators],
        "classifier": evaluate_classifier(questions),
    }
    if multihop is not None and multihop.is_file():
        hard = load_questions(multihop)
        summary["multihop_questions"] = len(hard)
        summary["retrieval_multihop"] = evaluate_retrieval(retriever, hard, modes, progress=progress)
    summary["seconds"] = time.perf_counter() - start
    out = settings.reports_dir
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "eval.json", json.dumps(summary, indent=2).encode())
    write_atomic(out / "eval.md", markdown_report(summary).encode())
    plot_retrieval(summary, out / "eval_retrieval.png")
    summary["files"] = [str(out / n) for n in ("eval.json", "eval.md", "eval_retrieval.png")]
    return summary
