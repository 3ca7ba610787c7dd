"""Attention heatmaps: where each token of a text looks, head by head, inside the from-scratch GPT.

For one layer, head h of a causal self-attention computes, for the tokens x_1..x_T,

    A_h = softmax(Q_h K_h^T / sqrt(d_head) + causal mask)        (T, T); row i sums to 1

so A_h[i, j] is the share of token i's attention that goes to token j (j <= i). This module runs
a text through :mod:`from_scratch.gpt` up to the chosen layer, takes those weights
(``GPT.attention_maps``) and draws them: one heatmap per head, rows = the token that looks,
columns = the token looked at, plus a grid of all heads of the layer.

Two models can be looked into:

- ``smollm2``: SmolLM2-135M-Instruct's weights run by the project's own code (the model behind
  the ``scratch`` generator, shared with it, so the app holds one copy); 30 layers of 9 heads.
- a checkpoint folder written by ``mathrag scratch train`` (the mini GPT trained on the notes).

Used by ``mathrag scratch attention`` (PNG files) and by the app's "Inside the model" tab.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from rag.artifacts import write_atomic

SMOLLM2 = "smollm2"
MAX_TOKENS = 96  # beyond this a heatmap's labels cannot be read; the CLI and app say so instead of squeezing


class AttentionError(ValueError):
    """A text, layer, head or model that cannot be shown; the message says which and why."""


@dataclass(frozen=True)
class AttentionMaps:
    """The attention weights of one layer for one text."""

    model: str  # "smollm2" or the checkpoint folder
    text: str
    layer: int
    n_layers: int
    tokens: list[str]  # one printable label per position
    weights: np.ndarray  # (n_heads, T, T); weights[h, i, j] = attention of token i to token j

    @property
    def n_heads(self) -> int:
        return self.weights.shape[0]

    def top_links(self, head: int, n: int = 5) -> list[tuple[str, str, float]]:
        """The n most telling (query token, key token, weight) links of a head.

        Links are ranked by lift over a uniform row, w[i, j] * (i + 1): token 3 giving 0.5 to a token
        is unremarkable (a uniform row gives 0.25 each), token 40 giving it 0.5 is a strong choice.
        Column 0 is skipped: many heads park most of their attention on the first token (an
        "attention sink"), which says little about the text.
        """
        w = self.weights[head].copy()  # (T, T)
        w[:, 0] = 0.0
        lift = w * np.arange(1, len(w) + 1)[:, None]  # (T, T)
        order = np.argsort(lift, axis=None, kind="stable")[::-1][:n]
        rows, cols = np.unravel_index(order, w.shape)
        return [(self.tokens[i], self.tokens[j], float(w[i, j])) for i, j in zip(rows, cols, strict=True)
                if w[i, j] > 0]


@lru_cache(maxsize=4)
def _checkpoint(folder: str):
    from from_scratch.checkpoint import CheckpointError, load_checkpoint

    try:
        model, tokenizer, _ = load_checkpoint(folder)
    except CheckpointError as exc:
        raise AttentionError(str(exc)) from None
    return model, tokenizer


def load_model(source: str = SMOLLM2):
    """(model, tokenizer, ids of a prefix every text gets) for ``smollm2`` or a checkpoint folder; cached."""
    if source == SMOLLM2:
        from rag.generators import GeneratorError, get_generator

        try:
            generator = get_generator("scratch")
        except GeneratorError as exc:
            raise AttentionError(str(exc)) from None
        return generator.model, generator.tokenizer, []
    from from_scratch.train_config import EOT

    model, tokenizer = _checkpoint(str(Path(source).expanduser().resolve()))
    return model, tokenizer, [tokenizer.special_tokens[EOT]]  # documents began with <|endoftext|> in training


def token_label(tokenizer, token_id: int) -> str:
    """A token as a short readable label: spaces as '·', newlines as '↵', other bytes escaped."""
    special = {v: k for k, v in tokenizer.special_tokens.items()}
    if token_id in special:
        return special[token_id]
    text = tokenizer.decode_bytes([token_id]).decode("utf-8", errors="backslashreplace")
    return text.replace(" ", "·").replace("\n", "↵").replace("\t", "⇥") or "∅"


def compute(text: str, layer: int, source: str = SMOLLM2, max_tokens: int = MAX_TOKENS) -> AttentionMaps:
    """The attention weights of ``layer`` (negative counts from the last) for ``text``."""
    if not text or not text.strip():
        raise AttentionError("the text is empty; give a sentence to look at")
    model, tokenizer, prefix = load_model(source)
    n_layers = len(model.blocks)
    if not -n_layers <= layer < n_layers:
        raise AttentionError(f"layer {layer} does not exist; this model has layers 0 to {n_layers - 1}")
    ids = prefix + tokenizer.encode(text, allowed_special="all" if source == SMOLLM2 else "none")
    limit = min(max_tokens, model.config.context_length)
    if len(ids) > limit:
        raise AttentionError(f"the text is {len(ids)} tokens long; a heatmap shows at most {limit} "
                             "(shorten the text)")
    weights = model.attention_maps(ids, layer).float().numpy()  # (n_heads, T, T)
    return AttentionMaps(model=source, text=text, layer=layer % n_layers, n_layers=n_layers,
                         tokens=[token_label(tokenizer, i) for i in ids], weights=weights)


# --------------------------------------------------------------------------- drawing


def _draw(ax, maps: AttentionMaps, head: int, labels: bool) -> object:
    T = len(maps.tokens)
    masked = np.ma.masked_where(np.triu(np.ones((T, T), bool), k=1), maps.weights[head])  # the future: blank
    image = ax.imshow(masked, cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
    if labels:
        size = 8 if T <= 32 else 6 if T <= 64 else 4.5
        ax.set_xticks(range(T), maps.tokens, rotation=90, fontsize=size)
        ax.set_yticks(range(T), maps.tokens, fontsize=size)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    return image


def _model_name(maps: AttentionMaps) -> str:
    return "SmolLM2-135M (from_scratch)" if maps.model == SMOLLM2 else f"mini GPT ({Path(maps.model).name})"


def head_figure(maps: AttentionMaps, head: int):
    """One head as a labelled heatmap (a matplotlib Figure, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not 0 <= head < maps.n_heads:
        raise AttentionError(f"head {head} does not exist; layer {maps.layer} has heads 0 to {maps.n_heads - 1}")
    side = min(11.0, 3.0 + 0.16 * len(maps.tokens))
    fig = Figure(figsize=(side + 1.2, side), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = _draw(ax, maps, head, labels=True)
    ax.set_xlabel("attended-to token (key)")
    ax.set_ylabel("attending token (query)")
    ax.set_title(f"{_model_name(maps)} · layer {maps.layer} · head {head}", fontsize=10)
    fig.colorbar(image, ax=ax, shrink=0.8, label="attention weight")
    return fig


def grid_figure(maps: AttentionMaps):
    """Every head of the layer side by side (labels only when the text is short)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = min(maps.n_heads, 3 if maps.n_heads in (3, 6, 9) else 4)
    rows = -(-maps.n_heads // cols)
    labels = len(maps.tokens) <= 16
    fig = Figure(figsize=(3.6 * cols + 1, 3.6 * rows + 0.6), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    image = None
    for h, ax in enumerate(axes.flat):
        if h >= maps.n_heads:
            ax.axis("off")
            continue
        image = _draw(ax, maps, h, labels=labels)
        ax.set_title(f"head {h}", fontsize=9)
    fig.suptitle(f"{_model_name(maps)} · layer {maps.layer} of 0..{maps.n_layers - 1} · {len(maps.tokens)} tokens",
                 fontsize=10)
    fig.colorbar(image, ax=axes, shrink=0.6, label="attention weight")
    return fig


def figure_to_array(fig) -> np.ndarray:
    """A Figure as an RGB image (H, W, 3) uint8, for the app's gr.Image."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "text"


def save(maps: AttentionMaps, out: str | os.PathLike[str], heads: list[int] | None = None) -> list[Path]:
    """Write ``layer<L>_head<h>.png`` per head, ``layer<L>_all_heads.png`` and ``attention.json`` into ``out``.

    Each file is written under a temporary name and renamed, so a folder never holds a half-written PNG;
    attention.json (the manifest: text, tokens, layer, files) is written last.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    heads = list(range(maps.n_heads)) if heads is None else heads
    figures = [(f"layer{maps.layer}_head{h}.png", head_figure(maps, h)) for h in heads]
    figures.append((f"layer{maps.layer}_all_heads.png", grid_figure(maps)))
    written = []
    for name, fig in figures:
        written.append(write_atomic(out / name, lambda tmp, fig=fig: fig.savefig(tmp, format="png")))
    manifest = {"model": maps.model, "text": maps.text, "layer": maps.layer, "n_layers": maps.n_layers,
                "n_heads": maps.n_heads, "tokens": maps.tokens, "files": [p.name for p in written]}
    write_atomic(out / "attention.json", json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return written


def default_out_dir(home: Path, maps: AttentionMaps) -> Path:
    model = SMOLLM2 if maps.model == SMOLLM2 else Path(maps.model).name
    return home / "scratch" / "attention" / f"{model}-{_slug(maps.text)}"


@lru_cache(maxsize=8)
def model_shape(source: str = SMOLLM2) -> tuple[int, int]:
    """(layers, heads per layer) of a model, read from its file's header without loading the weights."""
    if source == SMOLLM2:
        import gguf

        from rag.models import generator_gguf_path

        fields = gguf.GGUFReader(generator_gguf_path()).fields
        return int(fields["llama.block_count"].contents()), int(fields["llama.attention.head_count"].contents())
    path = Path(source) / "config.json"
    try:
        model = json.loads(path.read_text(encoding="utf-8"))["model"]
        return int(model["n_layers"]), int(model["n_heads"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AttentionError(f"{path} is not a readable checkpoint config: {exc}") from None


def available_sources(home: Path, smollm2: bool) -> list[tuple[str, str]]:
    """(label, source) of the models that can be looked into here: SmolLM2 when installed, a trained mini GPT."""
    sources = [("SmolLM2-135M, run by from_scratch", SMOLLM2)] if smollm2 else []
    checkpoint = home / "scratch" / "mini-gpt"
    if (checkpoint / "config.json").is_file():
        sources.append(("mini GPT trained on the notes", str(checkpoint)))
    return sources
