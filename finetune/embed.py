"""Fine-tuning the embedder on the notes' own questions (``mathrag finetune embed``), and measuring it.

The retrieval layer finds chunks by the cosine similarity of MiniLM embeddings. Here MiniLM is trained
on (question, gold chunk) pairs from the synthesised data (``finetune.data``): the question of every
non-negative example, and the text the index embeds for the chunk holding its answer
(``Chunk.embedding_text()``). Negatives (questions the notes do not answer) have no gold chunk and
are skipped; repeated pairs are kept once.

The loss uses in-batch negatives (``MultipleNegativesRankingLoss``, also called InfoNCE). For a
batch of pairs ``(q_1, c_1) .. (q_B, c_B)``, every other chunk in the batch serves as a wrong answer
for ``q_i``::

    loss = -(1/B) * sum_i log( exp(scale * s(q_i, c_i)) / sum_j exp(scale * s(q_i, c_j)) )

with ``s`` the cosine similarity and ``scale = 20``: the cross-entropy of a softmax over the batch's
chunks whose correct class is ``j = i``. No negatives need labelling, and a bigger batch gives more
(and harder) negatives. Two questions about the same chunk in one batch would each count the other's
chunk (their own) as a negative, so batches are drawn without duplicates (``BatchSamplers.NO_DUPLICATES``).

The pieces, all from the libraries: ``datasets.Dataset`` holds the pairs, and sentence-transformers'
``SentenceTransformerTrainer`` (the Hugging Face ``Trainer`` underneath) runs the loop.

Output: ``MATHRAG_HOME/embedders/<name>/``, an ordinary sentence-transformers folder (weights as
``model.safetensors``) plus ``mathrag_run.json``: the settings, the sha256 of ``train.jsonl``, the base
model's id, and recall@1, recall@5 and MRR on the validation notes before and after training. It is
written into a temporary folder beside the target and renamed into place. ``MATHRAG_EMBEDDER=<name>``
makes the index (and every query) use it; the index then rebuilds, as its manifest names the embedder.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from finetune.data import Example, ensure_data, load_examples
from finetune.lora import NAME_RE
from rag.artifacts import file_sha256, staged_folder
from rag.chunking import Chunk, chunk_corpus
from rag.corpus import load_corpus
from rag.models import EMBEDDING_MODEL_ID, embedders_dir, embedding_model_dir
from rag.settings import Settings, get_settings

RUN_CARD = "mathrag_run.json"
SCALE = 20.0  # MultipleNegativesRankingLoss's default: 1 / temperature


@dataclass
class EmbedRun:
    """The settings of one embedding fine-tuning run (recorded in the run card)."""

    epochs: float = 1
    batch_size: int = 32
    learning_rate: float = 2e-5
    max_steps: int = -1  # > 0 stops after that many optimizer steps, whatever the epochs
    seed: int = 0
    warmup_ratio: float = 0.1
    loss: str = "MultipleNegativesRankingLoss"
    scale: float = SCALE


# --------------------------------------------------------------------------- data


def corpus_chunks(settings: Settings) -> dict[str, Chunk]:
    """chunk id -> chunk, for every chunk of the corpus (chunked as the index does)."""
    notes = load_corpus(settings.corpus_dir, root=settings.corpus_dir.parent)
    return {c.chunk_id: c for c in chunk_corpus(notes)}


def _answerable(examples: list[Example], chunks: dict[str, Chunk], path: str) -> list[Example]:
    """The examples with a gold chunk; one whose chunk is not in the corpus -> a one-line ValueError."""
    kept = [e for e in examples if e.kind != "negative" and e.gold_chunk]
    missing = sorted({e.gold_chunk for e in kept if e.gold_chunk not in chunks})
    if missing:
        raise ValueError(f"{path}: {len(missing)} gold chunks (e.g. {missing[0]}) are not in the corpus at the "
                         "moment; rebuild the data with `mathrag finetune data`")
    return kept


def training_pairs(examples: list[Example], chunks: dict[str, Chunk], path: str = "examples") -> list[tuple[str, str]]:
    """(question, text the embedder reads for the gold chunk), negatives skipped, each pair once, in order."""
    pairs = {(e.question, chunks[e.gold_chunk].embedding_text()): None for e in _answerable(examples, chunks, path)}
    return list(pairs)



# --------------------------------------------------------------------------- evaluation


def _metrics(model, chunks: dict[str, Chunk], examples: list[Example], path: str = "examples") -> dict:
    """recall@1, recall@5 and MRR of the gold chunk among all chunks, by exact cosine similarity."""
    questions = list({(e.question, e.gold_chunk): None for e in _answerable(examples, chunks, path)})
    if not questions:
        raise ValueError(f"{path}: no question with a gold chunk to evaluate on")
    ids = list(chunks)
    row = {cid: i for i, cid in enumerate(ids)}
    docs = model.encode([chunks[c].embedding_text() for c in ids], batch_size=64, normalize_embeddings=True,
                        show_progress_bar=False, convert_to_numpy=True)
    queries = model.encode([q for q, _ in questions], batch_size=64, normalize_embeddings=True,
                           show_progress_bar=False, convert_to_numpy=True)
    sims = queries @ docs.T  # cosine: both sides are unit vectors
    gold = np.array([row[g] for _, g in questions])
    gold_score = sims[np.arange(len(questions)), gold]
    rank = 1 + (sims > gold_score[:, None]).sum(axis=1)  # 1 = the gold chunk scores highest
    return {"questions": len(questions), "chunks": len(ids), "recall@1": float(np.mean(rank <= 1)),
            "recall@5": float(np.mean(rank <= 5)), "mrr": float(np.mean(1.0 / rank))}


def _load(path: Path):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(path), device="cpu")


def evaluate_embedder(settings: Settings | None, model_path_or_None: str | Path | None,
                      examples: list[Example]) -> dict:
    """Retrieval of each question's gold chunk among all chunks of the corpus: recall@1, recall@5, MRR
    (and how many questions and chunks). ``None`` evaluates the base MiniLM, a path any sentence-transformers
    folder (a fine-tuned one is ``rag.models.embedders_dir(settings) / name``)."""
    settings = settings or get_settings()
    path = embedding_model_dir() if model_path_or_None is None else Path(model_path_or_None).expanduser()
    if not (path / "modules.json").is_file():
        raise ValueError(f"{path} holds no sentence-transformers model")
    return _metrics(_load(path), corpus_chunks(settings), examples)


# --------------------------------------------------------------------------- training


def _embedder_target(settings: Settings, name: str, batch_size: int, overwrite: bool) -> Path:
    """Where embedder ``name`` is saved; a bad name, a batch too small or an existing embedder -> ValueError."""
    if not NAME_RE.match(name or ""):
        raise ValueError(f"embedder name '{name}' must be 1-64 letters, digits, '.', '_' or '-'")
    if batch_size < 2:
        raise ValueError("in-batch negatives need a batch size of at least 2")
    target = embedders_dir(settings) / name
    if target.exists() and not overwrite:
        raise ValueError(f"an embedder named '{name}' exists ({target}); pass overwrite=True (--overwrite) to "
                         "replace it, or choose another name")
    return target


def _training_arguments(run: EmbedRun, output_dir: Path, pairs: int, progress: bool):
    """The trainer's settings: the run's schedule, batches without duplicate pairs, no evaluation or checkpoints."""
    import torch
    from sentence_transformers import SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers

    return SentenceTransformerTrainingArguments(
        output_dir=str(output_dir), seed=run.seed, data_seed=run.seed, num_train_epochs=run.epochs,
        max_steps=run.max_steps, per_device_train_batch_size=run.batch_size, learning_rate=run.learning_rate,
        warmup_steps=run.warmup_ratio, lr_scheduler_type="linear", batch_sampler=BatchSamplers.NO_DUPLICATES,
        eval_strategy="no", save_strategy="no", logging_steps=max(1, pairs // run.batch_size // 4),
        report_to="none", disable_tqdm=not progress, use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0)


def _trainer(model, args, pairs: list[tuple[str, str]], progress: bool):
    """A sentence-transformers trainer of ``model`` on the (anchor, positive) pairs with in-batch negatives."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from transformers import PrinterCallback

    class _Trainer(SentenceTransformerTrainer):
        def add_model_card_callback(self, default_args_dict: dict) -> None:
            """No README model card is written (``mathrag_run.json`` is the record): nothing to collect for it."""

    dataset = Dataset.from_dict({"anchor": [q for q, _ in pairs], "positive": [c for _, c in pairs]})
    trainer = _Trainer(model=model, args=args, train_dataset=dataset,
                       loss=MultipleNegativesRankingLoss(model, scale=SCALE))
    if not progress:
        trainer.remove_callback(PrinterCallback)  # it prints every log line when tqdm is off
    return trainer


def _save_model(model, folder: Path) -> None:
    """Write the trained model into ``folder`` as sentence-transformers does, without the trainer's scratch files."""
    shutil.rmtree(folder / "trainer", ignore_errors=True)
    model.save(str(folder), create_model_card=False, safe_serialization=True)  # the run card is ours
    if not (folder / "model.safetensors").is_file():
        raise RuntimeError(f"{folder}: sentence-transformers wrote no model.safetensors")


def _training_record(trainer, result, pairs: int, seconds: float) -> dict:
    """The run card's account of the training: pairs, steps, seconds, the mean loss and every logged one."""
    return {"pairs": pairs, "steps": trainer.state.global_step, "seconds": round(seconds, 2),
            "train_loss": result.training_loss,
            "losses": [h["loss"] for h in trainer.state.log_history if "loss" in h]}


def _run_card(name: str, target: Path, base: Path, run: EmbedRun, train_file: Path, validation_file: Path,
              training: dict, before: dict, after: dict) -> dict:
    """The run card (``mathrag_run.json``): settings, data and its sha256, the training, and retrieval before/after."""
    return {
        "name": name, "path": str(target), "base_model": EMBEDDING_MODEL_ID, "base_path": str(base),
        "config": asdict(run),
        "data": {"train_file": str(train_file), "train_sha256": file_sha256(train_file),
                 "validation_file": str(validation_file), "validation_sha256": file_sha256(validation_file)},
        **training, "before": before, "after": after, "created": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def train_embedder(settings: Settings | None = None, name: str = "notes", *, epochs: float = 1, batch_size: int = 32,
                   learning_rate: float = 2e-5, max_steps: int = -1, seed: int = 0, overwrite: bool = False,
                   train_file: Path | None = None, progress: bool = True) -> dict:
    """Fine-tune MiniLM on the (question, gold chunk) pairs of ``train.jsonl`` and save it as
    ``MATHRAG_HOME/embedders/<name>/``; returns the run card (also written as ``mathrag_run.json``)."""
    settings = settings or get_settings()
    run = EmbedRun(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, max_steps=max_steps, seed=seed)
    target = _embedder_target(settings, name, batch_size, overwrite)

    train_file = Path(train_file) if train_file else ensure_data(settings, progress) / "train.jsonl"
    validation_file = train_file.with_name("validation.jsonl")
    train_examples, val_examples = load_examples(train_file), load_examples(validation_file)
    chunks = corpus_chunks(settings)
    pairs = training_pairs(train_examples, chunks, str(train_file))
    if len(pairs) < 2:
        raise ValueError(f"{train_file}: {len(pairs)} (question, chunk) pairs; in-batch negatives need at least 2")

    base = embedding_model_dir()
    model = _load(base)  # a fresh copy: the process-wide embedder (rag.models.load_embedder) stays as it is
    before = _metrics(model, chunks, val_examples, str(validation_file))

    with staged_folder(target) as tmp:
        trainer = _trainer(model, _training_arguments(run, tmp / "trainer", len(pairs), progress), pairs, progress)
        start = time.perf_counter()
        result = trainer.train()
        seconds = time.perf_counter() - start
        model.eval()
        after = _metrics(model, chunks, val_examples, str(validation_file))
        _save_model(model, tmp)
        training = _training_record(trainer, result, len(pairs), seconds)
        card = _run_card(name, target, base, run, train_file, validation_file, training, before, after)
        (tmp / RUN_CARD).write_text(json.dumps(card, indent=2), encoding="utf-8")
    return card


def list_embedders(settings: Settings | None = None) -> list[dict]:
    """The run cards of the saved embedders, newest first (name, created, path, recall before/after)."""
    cards = []
    for path in sorted(embedders_dir(settings).glob(f"*/{RUN_CARD}")):
        card = json.loads(path.read_text(encoding="utf-8"))
        cards.append({"name": card["name"], "created": card["created"], "path": str(path.parent),
                      "recall@5_before": card["before"]["recall@5"], "recall@5_after": card["after"]["recall@5"]})
    return sorted(cards, key=lambda c: c["created"], reverse=True)
