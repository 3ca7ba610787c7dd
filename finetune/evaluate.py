"""Before/after evaluation of fine-tuning on the validation notes (``mathrag finetune eval``).

The validation examples come from notes no training example saw. For the generator, each example's
prompt (numbered or condensed context + question, exactly as the app builds it) is answered greedily by
the base model and by the adapter, through the same generator objects the app uses:

- key-term coverage: the share of the example's key terms (the defined term, the bold terms of the
  reference) found in the answer;
- answer recall: the share of the reference answer's content words (stemmed) found in the answer;
- cites the gold chunk: the answer cites the number of the chunk that holds the answer, and every
  number it cites names a provided chunk (citation validity);
- passes the guard: the answer would be shown in the app (grounding >= ``MIN_GROUNDING`` and at least
  one citation) instead of being replaced by the notes' own sentences;
- refusal accuracy: on the negatives (context without the answer), the reply is the refusal; the
  false-refusal rate is the same reply on the others;
- perplexity of the reference answers, exp(mean negative log-likelihood per answer token),
  teacher-forced on every validation example (lower is better).

For an embedder, recall@1/5 and MRR of the gold chunk among all chunks, for the validation questions
(``finetune.embed.evaluate_embedder``). Results: ``MATHRAG_HOME/reports/finetune_eval.{json,md,png}``.
"""

from __future__ import annotations

import json
import math
import re
import statistics
import time
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from finetune.data import Example, ensure_data, load_examples
from rag.answering import CITATION_RE, MIN_GROUNDING, NOT_COVERED, content_words, grounding
from rag.artifacts import write_atomic
from rag.chunking import Chunk, chunk_corpus
from rag.corpus import load_corpus
from rag.evaluation import term_found
from rag.generators import get_generator
from rag.retriever import Hit
from rag.settings import Settings, get_settings

GENERATOR_METRICS = ("key_term_coverage", "answer_recall", "cites_gold", "citations_valid", "passes_guard",
                     "refusal_accuracy", "false_refusal_rate", "reference_perplexity")


def _hits(example: Example, chunks: dict[str, Chunk]) -> list[Hit]:
    return [Hit(text=c.text, source=c.source, heading=c.heading, title=c.title, score=0.0, chunk_id=c.chunk_id)
            for c in (chunks[i] for i in example.context_chunks)]


def reference_perplexity(generator_spec: str, examples: list[Example], settings: Settings) -> float:
    """exp(mean NLL per reference-answer token), teacher-forced, over the examples."""
    import torch

    from finetune.lora import encode

    gen = get_generator(generator_spec, settings)
    total, count = 0.0, 0
    with torch.inference_mode():
        for e in examples:
            item = encode(gen.tokenizer, e.messages, max_length=10_000)
            ids = torch.tensor([item["input_ids"]])
            labels = torch.tensor([item["labels"]])
            logits = gen.model(input_ids=ids).logits[:, :-1]
            target = labels[:, 1:]
            mask = target != -100
            nll = torch.nn.functional.cross_entropy(logits[mask], target[mask], reduction="sum")
            total, count = total + float(nll), count + int(mask.sum())
    return math.exp(total / max(count, 1))


def evaluate_generator(generator_spec: str, examples: list[Example], settings: Settings, *,
                       max_new_tokens: int = 160, progress: bool = True) -> dict:
    """The generator metrics above for one generator on the examples."""
    notes = load_corpus(settings.corpus_dir, root=settings.corpus_dir.parent)
    chunks = {c.chunk_id: c for c in chunk_corpus(notes)}
    gen = get_generator(generator_spec, settings)
    terms, recalls, gold, valid, guard, refused_neg, refused_pos, samples = [], [], [], [], [], [], [], []
    start = time.perf_counter()
    for e in tqdm(examples, desc=f"answers ({generator_spec})", disable=not progress, leave=False):
        text = "".join(gen.stream(e.messages[:-1], max_new_tokens=max_new_tokens, temperature=0.0)).strip()
        refused = text.startswith(NOT_COVERED) or text.lower().startswith("the notes do not")
        if e.kind == "negative":
            refused_neg.append(refused)
        else:
            refused_pos.append(refused)
            terms.append(statistics.fmean(term_found(t, text) for t in e.key_terms) if e.key_terms else 0.0)
            reference = set(content_words(CITATION_RE.sub(" ", e.answer)))
            said = set(content_words(CITATION_RE.sub(" ", text)))
            recalls.append(len(reference & said) / len(reference) if reference else 0.0)
            cited = [int(n) for m in CITATION_RE.finditer(text) for n in re.split(r"\s*,\s*", m.group(1))]
            gold.append(e.gold_number in cited)
            valid.append(bool(cited) and all(1 <= n <= len(e.context_chunks) for n in cited))
            hits = _hits(e, chunks)
            guard.append(bool(cited) and grounding(text, e.question, hits) >= MIN_GROUNDING)
        if len(samples) < 4:
            samples.append({"kind": e.kind, "question": e.question, "answer": text, "reference": e.answer})
    seconds = time.perf_counter() - start

    def mean(xs):
        return statistics.fmean(xs) if xs else float("nan")

    return {"generator": generator_spec, "examples": len(examples), "key_term_coverage": mean(terms),
            "answer_recall": mean(recalls), "cites_gold": mean(gold), "citations_valid": mean(valid),
            "passes_guard": mean(guard), "refusal_accuracy": mean(refused_neg),
            "false_refusal_rate": mean(refused_pos),
            "reference_perplexity": reference_perplexity(generator_spec, examples, settings),
            "seconds_per_answer": seconds / max(len(examples), 1), "samples": samples}


def pick(examples: list[Example], limit: int | None, styles: list[str] | None) -> list[Example]:
    """A fixed, mixed subset: the chosen styles, negatives kept at their share."""
    chosen = [e for e in examples if not styles or e.style in styles]
    if limit and len(chosen) > limit:
        negatives = [e for e in chosen if e.kind == "negative"]
        n_neg = max(1, round(limit * len(negatives) / len(chosen))) if negatives else 0
        chosen = [e for e in chosen if e.kind != "negative"][: limit - n_neg] + negatives[:n_neg]
    return chosen


def run_finetune_eval(settings: Settings | None = None, *, adapter: str | None = None, embedder: str | None = None,
                      limit: int | None = 40, styles: list[str] | None = None, validation_file: Path | None = None,
                      max_new_tokens: int = 160, progress: bool = True) -> dict:
    """Before/after tables for an adapter and/or an embedder; writes the report files."""
    settings = settings or get_settings()
    if not adapter and not embedder:
        raise ValueError("name an --adapter, an --embedder, or both")
    examples = load_examples(validation_file or ensure_data(settings, progress) / "validation.jsonl")
    summary: dict = {"date": time.strftime("%Y-%m-%d %H:%M"), "validation_examples": len(examples)}
    if adapter:
        from finetune.lora import adapters_dir

        chosen = pick(examples, limit, styles)
        before = evaluate_generator("smollm2", chosen, settings, max_new_tokens=max_new_tokens, progress=progress)
        after = evaluate_generator(f"smollm2+lora:{adapter}", chosen, settings, max_new_tokens=max_new_tokens,
                                   progress=progress)
        card_path = adapters_dir(settings) / adapter / "run_card.json"
        card = json.loads(card_path.read_text()) if card_path.is_file() else {}
        summary["generator"] = {"adapter": adapter, "examples": len(chosen), "before": before, "after": after,
                                "training": card.get("metrics", {})}
    if embedder:
        from finetune.embed import evaluate_embedder
        from rag.models import embedder_dir

        tuned = embedder_dir(replace(settings, embedder=embedder))  # a name under MATHRAG_HOME/embedders, or a path
        questions = [e for e in examples if e.kind != "negative"]
        summary["embedder"] = {"name": embedder, "before": evaluate_embedder(settings, None, questions),
                               "after": evaluate_embedder(settings, tuned, questions)}
    summary["files"] = write_report(summary, settings.reports_dir)
    return summary


# --------------------------------------------------------------------------- report


def markdown(summary: dict) -> str:
    lines = [f"# Fine-tuning evaluation ({summary['date']})", "",
             "On the validation notes (never seen in training).", ""]
    g = summary.get("generator")
    if g:
        b, a = g["before"], g["after"]
        lines += [f"## Generator: smollm2 -> smollm2+lora:{g['adapter']} ({g['examples']} examples)", "",
                  "| metric | before | after | better |", "|---|---|---|---|"]
        for m in GENERATOR_METRICS:
            lower = m in ("false_refusal_rate", "reference_perplexity")
            better = (a[m] < b[m]) if lower else (a[m] > b[m])
            lines.append(f"| {m.replace('_', ' ')} | {b[m]:.3f} | {a[m]:.3f} | {'yes' if better else 'no'} |")
        t = g.get("training") or {}
        if t:
            lines += ["", f"Training: {t.get('steps')} steps in {t.get('seconds', 0):.0f} s, "
                      f"{t.get('tokens_per_s', 0):.0f} tokens/s, model FLOP utilisation {t.get('mfu', 0):.0%} of the "
                      f"measured float32 matmul peak ({t.get('matmul_peak_gflops', 0):.0f} GFLOP/s)."]
        lines += ["", "Samples (after):", ""]
        lines += [f"- *{s['question']}* -> {s['answer'][:300]}" for s in a["samples"]]
    e = summary.get("embedder")
    if e:
        lines += ["", f"## Embedder: base -> {e['name']}", "", "| metric | before | after |", "|---|---|---|"]
        for m in ("recall@1", "recall@5", "mrr"):
            lines.append(f"| {m} | {e['before'][m]:.3f} | {e['after'][m]:.3f} |")
    return "\n".join(lines) + "\n\n![before and after](finetune_eval.png)\n"


def _plot(summary: dict, path: Path) -> None:
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = []
    if "generator" in summary:
        g = summary["generator"]
        rows += [(m.replace("_", " "), g["before"][m], g["after"][m]) for m in GENERATOR_METRICS
                 if m != "reference_perplexity"]
    if "embedder" in summary:
        e = summary["embedder"]
        rows += [(f"embed {m}", e["before"][m], e["after"][m]) for m in ("recall@1", "recall@5", "mrr")]
    fig = Figure(figsize=(8, 0.45 * len(rows) + 1.2), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    y = np.arange(len(rows))
    ax.barh(y - 0.2, [r[1] for r in rows], height=0.4, label="before", color="#999999")
    ax.barh(y + 0.2, [r[2] for r in rows], height=0.4, label="after", color="#1f77b4")
    ax.set_yticks(y, [r[0] for r in rows])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_title("Fine-tuning: before and after, validation notes")
    ax.legend(loc="lower right")
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png"))


def write_report(summary: dict, out: Path) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for name, text in (("finetune_eval.json", json.dumps(summary, indent=2, default=str)),
                       ("finetune_eval.md", markdown(summary))):
        write_atomic(out / name, text)
        files.append(str(out / name))
    _plot(summary, out / "finetune_eval.png")
    return [*files, str(out / "finetune_eval.png")]
