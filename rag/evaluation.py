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
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from rag.answering import answer
from rag.artifacts import write_atomic
from rag.plugins import all_modes, load_retriever
from rag.retriever import MODES, Retriever
from rag.settings import Settings, get_settings

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
    results = {}
    for mode in modes:
        recalls = {k: 0 for k in KS}
        coverage: dict[int, list[float]] = {k: [] for k in KS}
        rr, ndcg, latencies, misses = [], [], [], []
        for q in tqdm(answerable, desc=f"retrieval ({mode})", disable=not progress, leave=False):
            start = time.perf_counter()
            base, _, option = mode.partition("+")  # "hybrid+spread": the hybrid ranking with notes taking turns
            hits = retriever.search(q.question, k=k_max, mode=base, **({"spread": True} if option == "spread" else {}))
            latencies.append(time.perf_counter() - start)
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


# --------------------------------------------------------------------------- answers


def evaluate_answers(retriever: Retriever, questions: list[Question], generator: str = "extractive",
                     mode: str = "hybrid", k: int = 5, limit: int | None = None, progress: bool = True) -> dict:
    answerable = [q for q in questions if q.answerable]
    outside = [q for q in questions if not q.answerable]
    if limit:
        # Keep the mix: the same share of out-of-scope questions as in the full set.
        n_out = max(1, round(limit * len(outside) / len(questions)))
        answerable, outside = answerable[: limit - n_out], outside[:n_out]
    coverage, cited_ok, cited_all, gold_cited, latencies, first_tokens, groundings = [], 0, 0, 0, [], [], []
    false_refusals, refused_outside, fallbacks, examples = 0, 0, 0, []
    for q in tqdm(answerable + outside, desc=f"answers ({generator})", disable=not progress, leave=False):
        reply = answer(q.question, retriever=retriever, generator=generator, mode=mode, k=k)
        latencies.append(reply.seconds)
        if reply.first_token_seconds is not None:
            first_tokens.append(reply.first_token_seconds)
        if reply.grounding is not None:
            groundings.append(reply.grounding)
        fallbacks += reply.fallback is not None
        if not q.answerable:
            refused_outside += not reply.covered
            continue
        if not reply.covered:
            false_refusals += 1
        coverage.append(sum(term_found(t, reply.text) for t in q.key_terms) / len(q.key_terms))
        for c in reply.citations:
            cited_all += 1
            cited_ok += any(term_found(t, reply.hits[c.number - 1].text) for t in q.key_terms)
        gold_cited += any(c.source in q.notes for c in reply.citations)
        if len(examples) < 3:
            examples.append({"question": q.question, "answer": reply.text,
                             "citations": [f"[{c.number}] {c.source}" for c in reply.citations]})
    n = len(answerable)
    return {
        "generator": generator,
        "mode": mode,
        "questions": n + len(outside),
        "key_term_coverage": statistics.fmean(coverage) if coverage else 0.0,
        "citation_precision": cited_ok / cited_all if cited_all else 0.0,
        "gold_note_cited": gold_cited / n if n else 0.0,
        "refusal_accuracy": refused_outside / len(outside) if outside else float("nan"),
        "false_refusal_rate": false_refusals / n if n else 0.0,
        "fallback_rate": fallbacks / (n + len(outside)),
        "mean_grounding": statistics.fmean(groundings) if groundings else None,
        "latency_p50_s": percentile(latencies, 50),
        "latency_p95_s": percentile(latencies, 95),
        "first_token_p50_s": percentile(first_tokens, 50) if first_tokens else None,
        "examples": examples,
    }


# --------------------------------------------------------------------------- report



def markdown_report(summary: dict) -> str:
    lines = [f"# Evaluation ({summary['date']})", "",
             f"{summary['questions']} questions ({summary['answerable']} answerable, "
             f"{summary['questions'] - summary['answerable']} outside the notes), {summary['chunks']} chunks.", "",
             "## Retrieval", "", "| mode | recall@1 | recall@5 | recall@10 | MRR | nDCG@10 | p50 ms | p95 ms |",
             "|---|---|---|---|---|---|---|---|"]
    for mode, r in summary["retrieval"].items():
        lines.append(f"| {mode} | {r['recall@1']:.3f} | {r['recall@5']:.3f} | {r['recall@10']:.3f} | {r['mrr']:.3f} "
                     f"| {r['ndcg@10']:.3f} | {r['latency_p50_ms']:.1f} | {r['latency_p95_ms']:.1f} |")
    if summary.get("retrieval_multihop"):
        lines += ["", f"## Multi-hop retrieval ({summary['multihop_questions']} questions, each needing 2-4 notes)",
                  "", "Note coverage@k: the share of a question's notes with a chunk among the first k.", "",
                  "| mode | coverage@5 | coverage@10 | recall@5 (any note) | MRR | p50 ms |",
                  "|---|---|---|---|---|---|"]
        for mode, r in summary["retrieval_multihop"].items():
            lines.append(f"| {mode} | {r['coverage@5']:.3f} | {r['coverage@10']:.3f} | {r['recall@5']:.3f} "
                         f"| {r['mrr']:.3f} | {r['latency_p50_ms']:.1f} |")
    for a in summary.get("answers", []):
        lines += ["", f"## Answers: {a['generator']} ({a['mode']}, {a['questions']} questions)", "",
                  "| metric | value |", "|---|---|"]
        for key in ("key_term_coverage", "citation_precision", "gold_note_cited", "refusal_accuracy",
                    "false_refusal_rate", "fallback_rate", "mean_grounding", "latency_p50_s", "latency_p95_s",
                    "first_token_p50_s"):
            value = a[key]
            lines.append(f"| {key.replace('_', ' ')} | {'-' if value is None else f'{value:.3f}'} |")
    misses = summary["retrieval"].get("hybrid", {}).get("misses@5", [])
    if misses:
        lines += ["", "## Hybrid misses at 5", ""]
        lines += [f"- `{m['id']}` {m['question']} (gold {', '.join(m['gold'])}; got {', '.join(m['top'])})"
                  for m in misses]
    return "\n".join(lines) + "\n"


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


def eval_modes() -> tuple[str, ...]:
    """The modes ``mathrag eval`` measures by default: the vector modes, hybrid+spread, then the plugins'."""
    return (*MODES, "hybrid+spread", *all_modes(MODES)[len(MODES):])


def run_eval(settings: Settings | None = None, *, generators: tuple[str, ...] = ("extractive",),
             limit: int | None = None, modes=None, progress: bool = True, dataset: Path = DATASET,
             multihop: Path | None = MULTIHOP) -> dict:
    """Retrieval for every mode (those of installed plugins too) on the development and multi-hop sets,
    and answers for each generator on the development set."""
    settings = settings or get_settings()
    modes = tuple(modes or eval_modes())
    questions = load_questions(dataset)
    retriever = load_retriever(modes, settings, progress=progress)
    start = time.perf_counter()
    summary = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "questions": len(questions),
        "answerable": sum(q.answerable for q in questions),
        "chunks": len(retriever.index),
        "retrieval": evaluate_retrieval(retriever, questions, modes, progress=progress),
        "answers": [evaluate_answers(retriever, questions, generator=g, limit=limit, progress=progress)
                    for g in generators],
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
