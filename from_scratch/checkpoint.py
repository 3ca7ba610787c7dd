"""Mini-GPT checkpoints: writing them so that a crash never leaves a mixed one, and reading them back
with every file checked.

A checkpoint folder holds ``model.safetensors`` (the weights), ``optimizer.safetensors`` (AdamW's
first and second moments m and v, one pair per parameter), ``config.json`` (model and training
config, step, AdamW's step counters, metrics), ``tokenizer.txt`` (``BPETokenizer.save``),
``metrics.json`` (every loss recorded) and ``loss_curve.png``. Nothing is pickled.

Every file is written to a temporary name, flushed and renamed into place; ``config.json`` is
written last and names the step that both safetensors files must carry in their metadata. A folder
cut off half-way through saving therefore holds files of two different steps, which reading detects:
:class:`CheckpointError` names the file. Because the batches of update t depend only on (seed, t),
the weights, m, v and the step counters are all that ``train(..., resume=True)`` needs to reach the
same final weights as a run that was never interrupted (:func:`resume_state`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from from_scratch.gpt import GPT, GPTConfig
from from_scratch.tokenizer import BPETokenizer
from from_scratch.train_config import EOT, TrainConfig

FORMAT = "from_scratch mini-gpt checkpoint v1"
CHECKPOINT_FILES = ("config.json", "model.safetensors", "optimizer.safetensors", "tokenizer.txt", "metrics.json")


class CheckpointError(ValueError):
    """A checkpoint that is missing, truncated, corrupt or does not fit the run; the message names the file."""


def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Write through ``write(temporary path)``, flush it to disk, then rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_json(path: Path, obj: Any) -> None:
    _write_atomic(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8"))


def _param_names(model: GPT) -> dict[int, str]:
    """id(parameter) -> name; a tied matrix gets its first name (tok_emb.weight, not lm_head.weight)."""
    return {id(p): name for name, p in model.named_parameters()}


def _optimizer_tensors(model: GPT, optimizer: torch.optim.AdamW) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """AdamW's state as plain tensors '<param>.exp_avg', '<param>.exp_avg_sq' and step counters per parameter."""
    names = _param_names(model)
    tensors, steps = {}, {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            state = optimizer.state.get(p)
            if state:
                name = names[id(p)]
                tensors[f"{name}.exp_avg"] = state["exp_avg"].contiguous()
                tensors[f"{name}.exp_avg_sq"] = state["exp_avg_sq"].contiguous()
                steps[name] = int(state["step"])
    return tensors, steps


def plot_losses(history: dict[str, list], path: Path, title: str = "") -> None:
    """Training loss per update and the evaluated train/validation losses vs step, as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # no pyplot: no global state, no GUI
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4.5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if history["train"]:
        steps, losses = zip(*[(r["step"], r["loss"]) for r in history["train"]], strict=True)
        ax.plot(steps, losses, color="tab:blue", alpha=0.3, lw=0.8, label="train loss (one batch)")
    if history["eval"]:
        steps = [r["step"] for r in history["eval"]]
        ax.plot(steps, [r["train_loss"] for r in history["eval"]], "o-", color="tab:blue", ms=3,
                label="train loss (estimate)")
        ax.plot(steps, [r["val_loss"] for r in history["eval"]], "o-", color="tab:orange", ms=3,
                label="validation loss (estimate)")
    if history.get("final"):
        final = history["final"]
        ax.plot([final["step"]], [final["val_loss"]], "*", color="tab:red", ms=12,
                label=f"validation, every token: {final['val_loss']:.3f} ({final['val_bpb']:.3f} bits/byte)")
    ax.set_xlabel("step (update)")
    ax.set_ylabel("cross-entropy (nats per token)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if history["train"] or history["eval"]:
        ax.legend()
    fig.tight_layout()
    _write_atomic(path, lambda tmp: fig.savefig(tmp, format="png"))


def _plot_title(model: GPT, step: int, last_eval: dict | None, final: dict | None) -> str:
    c = model.config
    title = f"mini GPT, {model.n_params / 1e6:.2f}M parameters (d={c.d_model}, L={c.n_layers}, T={c.context_length})"
    if final:
        title += f"\nstep {step}: validation {final['val_loss']:.3f} nats/token, {final['val_bpb']:.3f} bits/byte"
    elif last_eval:
        title += f"\nstep {step}: validation loss {last_eval['val_loss']:.3f}"
    return title


def save_checkpoint(out: Path, model: GPT, optimizer: torch.optim.AdamW, tokenizer: BPETokenizer,
                    config: TrainConfig, step: int, history: dict[str, list], info: dict[str, Any]) -> None:
    """Write the checkpoint of ``step`` into ``out``, every file atomically, config.json last."""
    out.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT, "step": str(step)}
    _write_atomic(out / "tokenizer.txt", tokenizer.save)
    weights = {name: p.detach().contiguous() for name, p in model.named_parameters()}
    _write_atomic(out / "model.safetensors", lambda tmp: save_file(weights, tmp, metadata=meta))
    moments, adam_steps = _optimizer_tensors(model, optimizer)
    _write_atomic(out / "optimizer.safetensors", lambda tmp: save_file(moments, tmp, metadata=meta))
    _write_json(out / "metrics.json", {"step": step, **history})
    last_eval = history["eval"][-1] if history["eval"] else None
    plot_losses(history, out / "loss_curve.png", _plot_title(model, step, last_eval, history.get("final")))
    _write_json(out / "config.json", {
        "format": FORMAT,
        "step": step,
        "model": dataclasses.asdict(model.config),
        "train": dataclasses.asdict(config),
        "optimizer": {"type": "AdamW", "step": adam_steps},
        "metrics": {"last_eval": last_eval, "final": history.get("final")},
        **info,
    })


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: not a complete checkpoint (train one first)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON (truncated or corrupt?): {exc}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} does not hold a JSON object")
    return data


def _read_safetensors(path: Path, step: int) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint file, checking that it belongs to checkpoint ``step``."""
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: not a complete checkpoint")
    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {key: f.get_tensor(key).clone() for key in f.keys()}  # noqa: SIM118 (safe_open has no iter)
    except Exception as exc:  # safetensors raises its own error types for a bad header or a short file
        raise CheckpointError(f"{path} is not a readable safetensors file (truncated or corrupt?): "
                              f"{type(exc).__name__}: {exc}") from None
    if meta.get("format") != FORMAT or meta.get("step") != str(step):
        raise CheckpointError(f"{path} belongs to step {meta.get('step')} but config.json to step {step} "
                              "(was saving interrupted?); train again without resuming")
    return tensors


def _read_checkpoint(folder: Path) -> tuple[dict, GPT, BPETokenizer, TrainConfig]:
    """config.json, the model with its weights, the tokenizer and the training config of a checkpoint folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"no checkpoint folder at {folder}; train one first (mathrag scratch train)")
    info = _read_json(folder / "config.json")
    try:
        if info.get("format") != FORMAT:
            raise ValueError(f"format is {info.get('format')!r}, expected {FORMAT!r}")
        step = int(info["step"])
        config = TrainConfig(**info["train"])
        model_config = GPTConfig(**info["model"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{folder / 'config.json'} is not a checkpoint config: {exc}") from None
    path = folder / "tokenizer.txt"
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: not a complete checkpoint")
    try:
        tokenizer = BPETokenizer.load(path)
    except Exception as exc:  # a cut-off file fails in many ways deep inside the parser
        raise CheckpointError(f"{path} is not a readable tokenizer (truncated or corrupt?): "
                              f"{type(exc).__name__}: {exc}") from None
    if EOT not in tokenizer.special_tokens or tokenizer.vocab_size != model_config.vocab_size:
        raise CheckpointError(f"{path} does not match the model: vocabulary of {tokenizer.vocab_size} ids, "
                              f"model expects {model_config.vocab_size} (with {EOT})")
    path = folder / "model.safetensors"
    weights = _read_safetensors(path, step)
    with torch.random.fork_rng(devices=[]):  # the initial values are overwritten; leave the global RNG alone
        model = GPT(model_config)
    params = dict(model.named_parameters())  # a tied matrix once, under its first name
    if set(weights) != set(params) or any(weights[k].shape != p.shape for k, p in params.items()):
        raise CheckpointError(f"{path} does not hold the weights of the model described in config.json")
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(weights[name])  # in place, so tied parameters stay tied
    return info, model.eval(), tokenizer, config


def load_checkpoint(folder: str | os.PathLike[str]) -> tuple[GPT, BPETokenizer, TrainConfig]:
    """(model in eval mode, tokenizer, training config) of a checkpoint folder written by ``train``.

    Raises ``CheckpointError`` (a ``ValueError``) naming the file when one is missing, truncated or corrupt.
    """
    _, model, tokenizer, config = _read_checkpoint(Path(folder))
    return model, tokenizer, config


def read_train_config(folder: str | os.PathLike[str]) -> TrainConfig:
    """The training config saved in a checkpoint folder's config.json."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"no checkpoint in {folder}: {path} is missing; train one first")
    try:
        return TrainConfig(**_read_json(path)["train"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a checkpoint config: {exc}") from None


def resume_config(out: Path, config: TrainConfig | None) -> TrainConfig:
    """The checkpoint's training config, with ``steps`` from ``config``; any other difference is an error."""
    saved = read_train_config(out)
    if config is None:
        return saved
    differ = [f"{k}: checkpoint {v!r}, asked {getattr(config, k)!r}"
              for k, v in dataclasses.asdict(saved).items() if k != "steps" and getattr(config, k) != v]
    if differ:
        raise CheckpointError(f"{out / 'config.json'} was trained with another configuration ("
                              + "; ".join(differ) + "); resume with the same settings or use another folder")
    return dataclasses.replace(saved, steps=config.steps)


def resume_state(out: Path, split_info: dict) -> tuple:
    """Everything saved in ``out`` that a resumed run needs, after checking it belongs to these documents."""
    info, model, tokenizer, _ = _read_checkpoint(out)
    if info.get("data") != split_info:
        raise CheckpointError(f"{out / 'config.json'}: the documents (or their split) differ from the ones this "
                              "checkpoint was trained on; train again without resuming")
    step = int(info["step"])
    moments = _read_safetensors(out / "optimizer.safetensors", step)
    metrics = _read_json(out / "metrics.json")
    if metrics.get("step") != step:
        raise CheckpointError(f"{out / 'metrics.json'} belongs to step {metrics.get('step')}, "
                              f"config.json to step {step}")
    history = {"train": metrics.get("train", []), "eval": metrics.get("eval", [])}
    return model.train(), tokenizer, step, moments, info["optimizer"]["step"], history


def load_optimizer_state(optimizer: torch.optim.AdamW, model: GPT, moments: dict[str, torch.Tensor],
                          adam_steps: dict[str, int], path: Path) -> None:
    names = _param_names(model)
    state_dict = optimizer.state_dict()  # parameters are numbered in param_groups order
    order = [p for group in optimizer.param_groups for p in group["params"]]
    state = {}
    try:
        for index, p in enumerate(order):
            name = names[id(p)]
            if name in adam_steps:
                state[index] = {"step": torch.tensor(float(adam_steps[name])),
                                "exp_avg": moments[f"{name}.exp_avg"], "exp_avg_sq": moments[f"{name}.exp_avg_sq"]}
                if state[index]["exp_avg"].shape != p.shape:
                    raise KeyError(f"{name}.exp_avg has the wrong shape")
    except KeyError as exc:
        raise CheckpointError(f"{path} does not match the model: {exc}") from None
    optimizer.load_state_dict({"state": state, "param_groups": state_dict["param_groups"]})
