r"""Training a mini GPT from scratch: data, objective, AdamW, schedule, evaluation, checkpoints.

The whole pipeline, on a handful of documents ``(name, text)``:

    documents --split by document--> train / validation
    train texts --BPE training--> tokenizer (4096 ids, <|endoftext|> among them)
    each document -> [<|endoftext|>] + encode(text); concatenated: one token stream per split
    random windows of context+1 tokens -> (inputs, targets shifted by one) -> GPT -> loss -> AdamW

Training objective: next-token cross-entropy
--------------------------------------------
A batch holds B windows ``w`` of T + 1 consecutive tokens from the training stream; the inputs
are ``w[0:T]`` and the targets ``w[1:T+1]``, so position t must predict the token after it.
With logits z_{b,t} (one score per vocabulary token) the loss is the mean negative log-likelihood

    L = -(1 / (B T)) sum_{b,t} log softmax(z_{b,t})[w_{b,t+1}]          (in nats)

The causal mask makes each of the T predictions see only its own prefix, so one forward pass
trains T predictions per window. A window may span two documents; the ``<|endoftext|>`` token
between them tells the model that a new document starts (as in GPT-2 and nanoGPT).

AdamW, with the decoupled weight decay written out
--------------------------------------------------
For update t = 1, 2, ... with gradient g_t (after clipping), learning rate eta_t, moments
beta1 = 0.9, beta2 = 0.95, eps = 1e-8 and weight decay lambda:

    m_t     = beta1 m_{t-1} + (1 - beta1) g_t                 running mean of the gradient
    v_t     = beta2 v_{t-1} + (1 - beta2) g_t^2               running mean of its square (elementwise)
    m_hat_t = m_t / (1 - beta1^t),  v_hat_t = v_t / (1 - beta2^t)        bias correction (m_0 = v_0 = 0)
    theta_t = theta_{t-1} - eta_t lambda theta_{t-1}  -  eta_t m_hat_t / (sqrt(v_hat_t) + eps)
              \__ decay: shrink towards 0 __/           \__ Adam step: about eta_t per coordinate __/

The decay is *decoupled*: it acts on theta directly instead of being added to the gradient as
an L2 penalty (lambda theta in g_t), where Adam would divide it by sqrt(v_hat) and so decay the
weights with large gradients least. As in nanoGPT, every parameter with 2 or more dimensions is
decayed (the attention and MLP matrices, and the token and position embeddings, which are
matrices too); vectors (biases and LayerNorm gains and shifts) are not: shrinking a gain towards
0 would just fight the normalisation. ``torch.optim.AdamW`` does exactly this update; its state
per parameter is m (``exp_avg``), v (``exp_avg_sq``) and the counter t (``step``).

Before each update the gradient is clipped by its global norm over all parameters:
g <- g min(1, c / ||g||) with c = 1.0, so one unlucky batch cannot throw the weights far.

Learning rate: linear warmup, then cosine decay
-----------------------------------------------
With S updates in all, W of them warmup, eta_max = ``lr`` and eta_min = ``min_lr``:

    eta_t = eta_max t / W                                                 for t <= W
    eta_t = eta_min + (eta_max - eta_min) (1 + cos(pi (t - W) / (S - W))) / 2      for W < t <= S

Warmup keeps the first updates small while Adam's v is still a poor estimate; the cosine then
glides from eta_max (t = W) to eta_min (t = S), so the last updates make fine adjustments.

Bits per byte
-------------
The final evaluation runs over *every* token of the validation documents. Each document is read
as [<|endoftext|>] + its tokens in non-overlapping windows of ``context_length`` inputs, so every
token is predicted exactly once, from the preceding tokens of its window. Then

    bits per byte = (sum over all validation tokens of -ln p(token | context)) / (number of UTF-8 bytes) / ln 2

i.e. the total validation loss in nats, divided by the number of UTF-8 bytes of the validation
texts, converted to bits. A loss per token depends on the tokenizer (a token of 4 bytes is
harder to guess than one of 2); per byte it does not, so models with different tokenizers and
vocabulary sizes can be compared: bits per byte = loss per token x (tokens / bytes) / ln 2.
8 bits per byte is no knowledge at all (a uniform guess over the 256 byte values). On the held-out
notes gzip -9 (each note on its own) reaches 3.3 bits per byte; the default run here about 1.75.

Determinism and resuming
------------------------
The split is a function of the document names and the seed: each name is hashed together with
the seed, and the ``val_fraction`` of documents with the smallest hashes are held out, so
validation documents are never seen in training (nor by the tokenizer), whatever order the
documents come in. The weights are initialised from ``seed``; the batch of update t is drawn from
a generator seeded with (seed, t), so batches do not depend on what ran before. A checkpoint
therefore only needs the weights, AdamW's m and v (``optimizer.safetensors``) and its step
counters (``config.json``): ``train(..., resume=True)`` continues from it to the same final
weights as an uninterrupted run. Writing and checking the checkpoint folder is
:mod:`from_scratch.checkpoint`'s work; what defines a run is :class:`from_scratch.train_config.TrainConfig`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from from_scratch.checkpoint import (
    CHECKPOINT_FILES,
    load_optimizer_state,
    resume_config,
    resume_state,
    save_checkpoint,
)
from from_scratch.gpt import GPT
from from_scratch.tokenizer import BPETokenizer
from from_scratch.train_config import EOT, TrainConfig

_TRAIN_BATCHES, _EVAL_BATCHES = 1, 2  # tags that keep the random streams of training and evaluation apart


# --------------------------------------------------------------------------- data


def split_documents(documents: Sequence[tuple[str, str]], val_fraction: float, seed: int,
                    ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(train, validation) documents, each list sorted by name; at least one document on each side.

    A document's rank is sha256("<seed>:<name>"); the round(val_fraction * n) documents of smallest
    rank are held out. The choice depends only on the names and the seed, not on the order given.
    """
    names = [name for name, _ in documents]
    if len(set(names)) != len(names):
        duplicate = next(n for n in names if names.count(n) > 1)
        raise ValueError(f"document names must be unique; {duplicate!r} appears more than once")
    if len(documents) < 2:
        raise ValueError(f"need at least 2 documents (one for training, one for validation), got {len(documents)}")
    n_val = min(max(1, round(val_fraction * len(documents))), len(documents) - 1)

    def rank(doc: tuple[str, str]) -> str:
        return hashlib.sha256(f"{seed}:{doc[0]}".encode()).hexdigest()

    by_rank = sorted(documents, key=rank)
    val, train = by_rank[:n_val], by_rank[n_val:]
    return sorted(train), sorted(val)


def train_tokenizer(texts: Sequence[str], vocab_size: int) -> BPETokenizer:
    """BPE on the texts joined by <|endoftext|> (no merge crosses a document boundary); EOT is the last id."""
    return BPETokenizer().train(EOT.join(texts), vocab_size, special_tokens=[EOT])


def token_stream(tokenizer: BPETokenizer, texts: Sequence[str]) -> np.ndarray:
    """[EOT] + tokens of each text, concatenated: (N,) int64. Special-token strings in a text are plain text."""
    eot = tokenizer.special_tokens[EOT]
    ids: list[int] = []
    for text in texts:
        ids.append(eot)
        ids.extend(tokenizer.encode(text, allowed_special="none"))
    return np.asarray(ids, dtype=np.int64)


def _rng(seed: int, purpose: int, index: int) -> np.random.Generator:
    """An independent random stream per (seed, purpose, index): batch t is the same however the run got to t."""
    return np.random.default_rng([seed, purpose, index])


def get_batch(data: np.ndarray, batch_size: int, context: int, rng: np.random.Generator,
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """batch_size random windows of context+1 tokens -> inputs (B, T) and targets (B, T), shifted by one."""
    if len(data) < context + 1:
        raise ValueError(f"a token stream of {len(data)} tokens is too short for windows of {context + 1} tokens")
    starts = rng.integers(0, len(data) - context, size=batch_size)  # (B,), start + context <= len - 1
    windows = torch.from_numpy(data[starts[:, None] + np.arange(context + 1)])  # (B, T+1)
    return windows[:, :-1], windows[:, 1:]


# --------------------------------------------------------------------------- optimisation


def lr_at(step: int, config: TrainConfig) -> float:
    """Learning rate of update ``step`` (1-based): linear warmup to ``lr``, then cosine down to ``min_lr``."""
    warmup, total = config.warmup_steps, config.steps
    if step <= warmup:
        return config.lr * step / warmup
    progress = (step - warmup) / max(1, total - warmup)  # 0 -> 1
    return config.min_lr + 0.5 * (config.lr - config.min_lr) * (1 + math.cos(math.pi * min(progress, 1.0)))


def make_optimizer(model: GPT, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on the parameters of 2+ dimensions (matrices, embeddings) only."""
    params = [p for p in model.parameters() if p.requires_grad]  # a tied matrix appears once
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(config.beta1, config.beta2), eps=1e-8)


def build_model(config: TrainConfig, vocab_size: int) -> GPT:
    """A freshly initialised GPT; the weights depend on ``config.seed`` only (the global RNG is left alone)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return GPT(config.model_config(vocab_size))


# --------------------------------------------------------------------------- evaluation


def bits_per_byte(total_nats: float, n_bytes: int) -> float:
    """Total loss in nats over a text -> bits per UTF-8 byte of that text: nats / bytes / ln 2."""
    return total_nats / n_bytes / math.log(2)


@dataclass(frozen=True)
class Evaluation:
    """Summed next-token loss over whole documents."""

    nats: float  # sum over every predicted token of -ln p(token | its context)
    tokens: int  # tokens predicted
    bytes: int  # UTF-8 bytes of the documents

    @property
    def loss(self) -> float:
        """Mean loss per token, in nats."""
        return self.nats / self.tokens

    @property
    def bits_per_byte(self) -> float:
        return bits_per_byte(self.nats, self.bytes)


@torch.no_grad()
def evaluate_texts(model: GPT, tokenizer: BPETokenizer, texts: Sequence[str], batch_size: int = 16) -> Evaluation:
    """Loss on every token of the texts: each read as [EOT] + tokens in non-overlapping windows of the context."""
    T, eot = model.config.context_length, tokenizer.special_tokens[EOT]
    windows: list[tuple[list[int], list[int]]] = []  # (inputs, targets), each of length <= T
    n_tokens = n_bytes = 0
    for text in texts:
        ids = tokenizer.encode(text, allowed_special="none")
        seq = [eot, *ids]  # the token at k + 1 is predicted from seq[.. k] inside its window
        windows += [(seq[k:k + T], seq[k + 1:k + T + 1]) for k in range(0, len(ids), T)]
        n_tokens += len(ids)
        n_bytes += len(text.encode("utf-8"))
    was_training = model.training
    model.eval()
    nats = 0.0
    for b in range(0, len(windows), batch_size):
        chunk = windows[b:b + batch_size]
        x = torch.zeros(len(chunk), T, dtype=torch.long)  # (B, T); padding after the end is never attended to
        y = torch.full((len(chunk), T), -100, dtype=torch.long)  # (B, T); -100: no target here
        for i, (inp, tgt) in enumerate(chunk):
            x[i, :len(inp)] = torch.tensor(inp)
            y[i, :len(tgt)] = torch.tensor(tgt)
        logits, _ = model(x)  # (B, T, V)
        nats += F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=-100, reduction="sum").item()
    model.train(was_training)
    return Evaluation(nats=nats, tokens=n_tokens, bytes=n_bytes)


@torch.no_grad()
def estimate_loss(model: GPT, data: np.ndarray, config: TrainConfig) -> float:
    """Mean loss over ``eval_batches`` random batches; the same windows at every evaluation (a smoother curve)."""
    was_training = model.training
    model.eval()
    losses = []
    for i in range(config.eval_batches):
        x, y = get_batch(data, config.batch_size, config.context_length, _rng(config.seed, _EVAL_BATCHES, i))
        losses.append(model(x, y)[1].item())
    model.train(was_training)
    return float(np.mean(losses))


# --------------------------------------------------------------------------- sampling


def sample(model: GPT, tokenizer: BPETokenizer, prompt: str = "", max_new_tokens: int = 200,
           temperature: float = 0.8, top_k: int | None = 50, seed: int | None = None) -> str:
    """The text the model writes after ``prompt`` (the continuation only), read as the start of a document.

    The model sees [EOT] + the prompt's tokens, as each training document began. Generation stops at
    <|endoftext|> or after max_new_tokens. When the context fills up, the last half of it is kept
    and generation goes on from there (a fresh prefill). ``seed`` makes the draws reproducible.
    """
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    eot, T = tokenizer.special_tokens[EOT], model.config.context_length
    keep = max(1, T // 2)
    window = [eot, *tokenizer.encode(prompt, allowed_special="none")]
    if len(window) >= T:
        window = window[-keep:]
    new: list[int] = []
    part = 0
    while len(new) < max_new_tokens:
        if len(window) >= T:
            window = window[-keep:]
        n = min(T - len(window), max_new_tokens - len(new))
        part_seed = None if seed is None else seed + part
        for token in model.generate(window, n, temperature=temperature, top_k=top_k, stop_ids=[eot], seed=part_seed):
            if token == eot:
                return tokenizer.decode(new)
            new.append(token)
            window.append(token)
        part += 1
    return tokenizer.decode(new)


# --------------------------------------------------------------------------- the training loop


def _data_digest(documents: Sequence[tuple[str, str]]) -> str:
    h = hashlib.sha256()
    for name, text in documents:
        h.update(json.dumps([name, text]).encode())
    return h.hexdigest()


@dataclass
class _Run:
    """What the steps of one training run share: where it writes, the model, its data and its optimizer."""

    out: Path
    config: TrainConfig
    model: GPT
    tokenizer: BPETokenizer
    optimizer: torch.optim.AdamW
    train_data: np.ndarray  # (N_train,)
    val_data: np.ndarray  # (N_val,)
    history: dict[str, list]  # "train": a row per update, "eval": a row per evaluation, later "final"
    info: dict[str, Any]  # the split and the sizes, saved in config.json
    progress: bool


def _token_streams(tokenizer: BPETokenizer, train_texts: Sequence[str], val_texts: Sequence[str],
                   config: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """The training and validation token streams, each long enough for a window of context + 1 tokens."""
    train_data = token_stream(tokenizer, train_texts)  # (N_train,)
    val_data = token_stream(tokenizer, val_texts)  # (N_val,)
    for split, data in (("training", train_data), ("validation", val_data)):
        if len(data) < config.context_length + 1:
            raise ValueError(f"the {split} documents give only {len(data)} tokens; need more than the context of "
                             f"{config.context_length} tokens (add documents or lower context_length)")
    return train_data, val_data


def _prepare_run(out: Path, config: TrainConfig, train_docs: Sequence[tuple[str, str]],
                 val_docs: Sequence[tuple[str, str]], resume: bool, progress: bool) -> tuple[_Run, int, float]:
    """Tokenizer, model and optimizer, made afresh or read from ``out``: (run, updates done, tokenizer seconds)."""
    split_info = {"train_documents": [n for n, _ in train_docs], "val_documents": [n for n, _ in val_docs],
                  "train_sha256": _data_digest(train_docs), "val_sha256": _data_digest(val_docs)}
    train_texts, val_texts = [t for _, t in train_docs], [t for _, t in val_docs]
    if resume:
        model, tokenizer, start, moments, adam_steps, history = resume_state(out, split_info)
        tokenizer_seconds = 0.0  # the checkpoint's tokenizer
    else:
        t0 = time.perf_counter()
        tokenizer = train_tokenizer(train_texts, config.vocab_size)
        tokenizer_seconds = time.perf_counter() - t0
        model = build_model(config, tokenizer.vocab_size).train()
        start, history = 0, {"train": [], "eval": []}
    train_data, val_data = _token_streams(tokenizer, train_texts, val_texts, config)
    optimizer = make_optimizer(model, config)
    if resume:
        load_optimizer_state(optimizer, model, moments, adam_steps, out / "optimizer.safetensors")
    info = {"data": split_info, "tokens": {"train": len(train_data), "val": len(val_data)},
            "n_params": model.n_params}
    run = _Run(out, config, model, tokenizer, optimizer, train_data, val_data, history, info, progress)
    return run, start, tokenizer_seconds


def _evaluate(run: _Run, step: int) -> dict:
    """Estimate the train and validation losses at ``step`` and record them in the history."""
    row = {"step": step, "train_loss": estimate_loss(run.model, run.train_data, run.config),
           "val_loss": estimate_loss(run.model, run.val_data, run.config)}
    run.history["eval"].append(row)
    if run.progress:
        tqdm.write(f"step {step:5d}: train loss {row['train_loss']:.4f}, validation loss {row['val_loss']:.4f}")
    return row


def _save(run: _Run, step: int) -> None:
    """Write the checkpoint of ``step`` into the run's folder."""
    save_checkpoint(run.out, run.model, run.optimizer, run.tokenizer, run.config, step, run.history, run.info)


def _training_loop(run: _Run, start: int, stop: int) -> None:
    """Updates start + 1 .. stop: one batch, one AdamW step each; evaluations and checkpoints on the way."""
    config, model, optimizer = run.config, run.model, run.optimizer
    bar = tqdm(total=config.steps, initial=start, desc="training", unit="step", disable=not run.progress)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for step in range(start + 1, stop + 1):  # step = the number of this update, 1-based
        lr = lr_at(step, config)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = get_batch(run.train_data, config.batch_size, config.context_length,
                         _rng(config.seed, _TRAIN_BATCHES, step))
        _, loss = model(x, y)  # x, y: (B, T); loss: mean next-token cross-entropy
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, config.grad_clip)  # norm before clipping
        optimizer.step()
        run.history["train"].append({"step": step, "loss": loss.item(), "lr": lr, "grad_norm": grad_norm.item()})
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.2e}", refresh=False)
        if step % config.eval_interval == 0 or step == config.steps:
            _evaluate(run, step)
        if (step % config.eval_interval == 0 or step == stop) and step < config.steps:  # the last one: below
            _save(run, step)
    bar.close()


def _final_evaluation(run: _Run, step: int, val_texts: Sequence[str], summary: dict[str, Any]) -> float:
    """Loss on every validation token, saved with the last checkpoint and added to ``summary``; returns seconds."""
    t0 = time.perf_counter()
    eval_batch = max(run.config.batch_size, 4096 // run.config.context_length)  # ~4096 tokens per forward pass
    final = evaluate_texts(run.model, run.tokenizer, val_texts, batch_size=eval_batch)
    run.history["final"] = {"step": step, "val_loss": final.loss, "val_bpb": final.bits_per_byte,
                            "val_nats": final.nats, "val_tokens": final.tokens, "val_bytes": final.bytes}
    _save(run, step)
    eval_seconds = time.perf_counter() - t0
    summary |= {"val_loss": final.loss, "val_bpb": final.bits_per_byte, "val_tokens": final.tokens,
                "val_bytes": final.bytes}
    if run.progress:
        tqdm.write(f"validation: {final.loss:.4f} nats/token, {final.bits_per_byte:.4f} bits/byte "
                   f"({final.tokens} tokens, {final.bytes} bytes)")
    return eval_seconds


def train(
    documents: Sequence[tuple[str, str]],
    config: TrainConfig | None = None,
    out: str | os.PathLike[str] = "mini-gpt",
    *,
    resume: bool = False,
    stop_at: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train a mini GPT on ``documents`` ((name, text) pairs); checkpoints and plots go to ``out``.

    resume: continue from the checkpoint in ``out`` (same documents; ``config`` must match it except
      ``steps``, and None means the checkpoint's). With the same ``steps`` the result equals an
      uninterrupted run; with more, training goes on under the cosine schedule of the new total.
    stop_at: stop after this update, as if interrupted, leaving a checkpoint to resume from.
    progress: show a tqdm bar and the evaluations.

    Returns a JSON-able summary: final validation loss (nats/token) and bits per byte, sizes, timings, files.
    """
    started = time.perf_counter()
    out = Path(out)
    config = resume_config(out, config) if resume else (config or TrainConfig())
    train_docs, val_docs = split_documents(documents, config.val_fraction, config.seed)
    run, start, tokenizer_seconds = _prepare_run(out, config, train_docs, val_docs, resume, progress)
    stop = config.steps if stop_at is None else min(stop_at, config.steps)

    if start == 0:
        _evaluate(run, 0)  # the loss of the untrained model: about ln(vocab size)
    t0 = time.perf_counter()
    _training_loop(run, start, stop)
    train_seconds = time.perf_counter() - t0
    last = stop if stop > start else start

    summary: dict[str, Any] = {"out": str(out), "step": last, "steps": config.steps, "finished": last == config.steps,
                               "n_params": run.model.n_params, "vocab_size": run.tokenizer.vocab_size,
                               "documents": {"train": len(train_docs), "val": len(val_docs)},
                               "tokens": run.info["tokens"]}
    eval_seconds = 0.0
    if last == config.steps:
        eval_seconds = _final_evaluation(run, last, [t for _, t in val_docs], summary)
    if run.history["eval"]:
        summary["last_eval"] = run.history["eval"][-1]
    summary["seconds"] = {"tokenizer": round(tokenizer_seconds, 2), "training": round(train_seconds, 2),
                          "final_eval": round(eval_seconds, 2), "total": round(time.perf_counter() - started, 2)}
    summary["files"] = [str(out / name) for name in (*CHECKPOINT_FILES, "loss_curve.png") if (out / name).exists()]
    return summary
