"""LoRA supervised fine-tuning of the answering model (``mathrag finetune lora``), and merging.

LoRA in one line: a frozen weight ``W`` (d_out x d_in) is used as ``W + (alpha / r) B A`` with
``A`` (r x d_in) and ``B`` (d_out x r) trained and ``r`` small, so a 135M-parameter model learns through
a few hundred thousand parameters; ``B`` starts at zero, so training starts from the base model exactly.

The pieces, all from the libraries:

- the base model is the cached float32 SmolLM2-135M-Instruct (``rag.generators.ensure_smollm2``);
- ``peft.LoraConfig`` / ``get_peft_model`` wrap the chosen projections;
- the Hugging Face ``Trainer`` runs the loop: batches grouped by length, optional gradient
  checkpointing, evaluation and checkpoints every N steps, ``--resume`` from the last checkpoint,
  and one process or many (``accelerate launch`` / ``torchrun``) with no code change.

The loss is on the assistant's tokens only. SmolLM2's chat template has no generation markers, so
:func:`encode` masks the labels itself: the prompt is the template applied to every message but the
last with ``add_generation_prompt=True``; the answer's tokens, plus the ``<|im_end|>`` that closes
the turn, are the only ones with labels.

Output: ``MATHRAG_HOME/adapters/<name>/`` holds ``adapter_config.json`` and
``adapter_model.safetensors`` (``PeftModel.from_pretrained`` loads them), ``run_card.json`` (settings,
data hash, metrics) and ``loss_curve.png``. Checkpoints live under ``MATHRAG_HOME/finetune/runs/<name>/``.
The generator ``smollm2+lora:<name>`` answers with the adapter in ``mathrag ask``, ``eval`` and the app.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import asdict
from pathlib import Path

from finetune.data import Example, data_dir, ensure_data, load_examples
from finetune.presets import LoraRun
from finetune.throughput import lora_flops_per_token, peak_flops, step_timer, throughput_metrics
from rag.artifacts import file_sha256, staged_folder, write_atomic
from rag.models import GENERATOR_MODEL_ID
from rag.settings import Settings, get_settings

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class FinetuneError(ValueError):
    """A run that cannot start or cannot go on; the message says why and what to do, in one line."""


def adapters_dir(settings: Settings | None = None) -> Path:
    return (settings or get_settings()).home / "adapters"


def runs_dir(settings: Settings | None = None) -> Path:
    return (settings or get_settings()).home / "finetune" / "runs"


def check_name(name: str) -> str:
    if not NAME_RE.match(name or ""):
        raise FinetuneError(f"adapter name '{name}' must be 1-64 letters, digits, '.', '_' or '-'")
    return name


# --------------------------------------------------------------------------- data -> token ids


def encode(tokenizer, messages: list[dict], max_length: int) -> dict | None:
    """input_ids and labels (-100 on the prompt) of one conversation; None when longer than max_length."""
    prompt = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=True,
                                           return_dict=True)["input_ids"]
    answer = tokenizer(messages[-1]["content"] + tokenizer.eos_token + "\n", add_special_tokens=False)["input_ids"]
    ids = list(prompt) + list(answer)
    if len(ids) > max_length:
        return None
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": [-100] * len(prompt) + list(answer)}


def encode_all(tokenizer, examples: list[Example], run: LoraRun, limit: int = 0) -> tuple[list[dict], int]:
    """The examples of the run's styles that fit ``max_length``, encoded; and how many did not fit."""
    chosen = [e for e in examples if e.style in run.styles]
    encoded = [encode(tokenizer, e.messages, run.max_length) for e in chosen]
    kept = [x for x in encoded if x is not None]
    return (kept[:limit] if limit else kept), len(encoded) - len(kept)



# --------------------------------------------------------------------------- training


def _loss_curve(history: list[dict], path: Path, title: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    train = [(h["step"], h["loss"]) for h in history if "loss" in h]
    val = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    fig = Figure(figsize=(6.4, 4), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if train:
        steps, losses = zip(*train, strict=True)
        ax.plot(steps, losses, color="#1f77b4", alpha=0.35, label="training loss (logged)")
        smooth, mean = [], losses[0]
        for loss in losses:  # exponential moving average: batches differ in length, so single logs jump
            mean = 0.7 * mean + 0.3 * loss
            smooth.append(mean)
        ax.plot(steps, smooth, color="#1f77b4", label="training loss (moving average)")
    if val:
        ax.plot(*zip(*val, strict=True), "o-", color="#ff7f0e", label="validation loss (step 0: the base model)")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token, answer tokens)")
    ax.set_title(title)
    ax.legend()
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png"))


def _oom_hint(run: LoraRun) -> str:
    return (f"out of memory with batch size {run.batch_size} and max length {run.max_length}: try --batch-size "
            f"{max(1, run.batch_size // 2)} --grad-accum {run.grad_accum * 2}, --gradient-checkpointing, or a "
            "smaller --max-length")


def _resume_policy(name: str, run: LoraRun, target: Path, checkpoints: Path, *, resume: bool,
                   overwrite: bool) -> LoraRun:
    """The settings to train with: the interrupted run's on ``resume``; an existing adapter needs ``overwrite``."""
    if resume:
        from transformers.trainer_utils import get_last_checkpoint

        last = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
        if last is None:
            raise FinetuneError(f"nothing to resume for '{name}': no checkpoint under {checkpoints}")
        saved = json.loads((checkpoints / "run.json").read_text())
        return LoraRun(**saved["run"])  # the interrupted run's settings, so it ends where it would have
    if target.exists() or checkpoints.exists():
        if not overwrite:
            raise FinetuneError(f"an adapter named '{name}' exists ({target}); pass --overwrite to replace it, "
                                "--resume to continue it, or choose another --name")
        shutil.rmtree(checkpoints, ignore_errors=True)
    return run


def _data_files(settings: Settings, train_file: Path | None, validation_file: Path | None,
                progress: bool) -> tuple[Path, Path]:
    """The training and validation files: the ones given, else the synthesised ones (made first if missing)."""
    if train_file is None or validation_file is None:
        ensure_data(settings, progress)
    return (train_file or data_dir(settings) / "train.jsonl",
            validation_file or data_dir(settings) / "validation.jsonl")


def _lora_model(base: Path, run: LoraRun) -> tuple[object, int, int]:
    """(model, trainable parameters, all parameters): the base model with fresh LoRA adapters on the run's targets."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(run.seed)  # the adapters' initial A matrices are random
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=run.rank, lora_alpha=run.alpha, lora_dropout=run.dropout,
                                             target_modules=run.target_modules, task_type="CAUSAL_LM"))
    if run.gradient_checkpointing:
        model.enable_input_require_grads()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return model, trainable, total


def _training_arguments(run: LoraRun, checkpoints: Path, has_validation: bool, progress: bool):
    """The Trainer's settings for the run: schedule, evaluation and checkpoints every N steps, device, logging."""
    import torch
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(checkpoints), seed=run.seed, data_seed=run.seed,
        per_device_train_batch_size=run.batch_size, per_device_eval_batch_size=run.batch_size,
        gradient_accumulation_steps=run.grad_accum, learning_rate=run.learning_rate,
        num_train_epochs=run.epochs, max_steps=run.max_steps, warmup_steps=run.warmup_ratio,
        weight_decay=run.weight_decay, lr_scheduler_type="cosine",
        activation_checkpointing=run.gradient_checkpointing, bf16=run.bf16 and torch.cuda.is_available(),
        eval_strategy="steps" if has_validation else "no", eval_steps=run.eval_steps,
        eval_on_start=has_validation, logging_steps=run.logging_steps,  # also on resume: same RNG use, same end
        save_strategy="steps", save_steps=run.save_steps, save_total_limit=2,
        train_sampling_strategy="group_by_length", include_num_input_tokens_seen="non_padding",
        report_to=[], disable_tqdm=not progress, use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0, remove_unused_columns=False)


def _train(trainer, run: LoraRun, resume: bool) -> tuple[object, float]:
    """(the Trainer's result, wall seconds): the training loop, with running out of memory as a FinetuneError."""
    import torch

    start = time.perf_counter()
    try:
        result = trainer.train(resume_from_checkpoint=True if resume else None)
    except torch.OutOfMemoryError:
        raise FinetuneError(_oom_hint(run)) from None
    except RuntimeError as exc:
        if "out of memory" in str(exc).lower() or "can't allocate memory" in str(exc).lower():
            raise FinetuneError(_oom_hint(run)) from None
        raise
    return result, time.perf_counter() - start


def _loss_metrics(trainer, result, has_validation: bool) -> dict:
    """The run card's losses: training, last logged, every validation one, and the final validation loss."""
    history = trainer.state.log_history
    evals = [h["eval_loss"] for h in history if "eval_loss" in h]
    last_eval = next((h for h in reversed(history) if "eval_loss" in h), None)
    if last_eval is not None and last_eval.get("step") == trainer.state.global_step:
        final_eval = last_eval["eval_loss"]  # already evaluated at the last step
    else:
        final_eval = trainer.evaluate()["eval_loss"] if has_validation else None
    return {"train_loss": result.training_loss,
            "last_logged_loss": next((h["loss"] for h in reversed(history) if "loss" in h), None),
            "eval_losses": evals, "base_eval_loss": evals[0] if evals else None,  # step 0, also when resumed
            "final_eval_loss": final_eval}


def _run_card(name: str, preset_name: str, run: LoraRun, data: dict, parameters: dict, metrics: dict) -> dict:
    """The run card (``run_card.json``): what was trained, from which base and data, and how it went."""
    return {"name": name, "base_model": GENERATOR_MODEL_ID, "preset": preset_name, "run": asdict(run),
            "data": data, "parameters": parameters, "metrics": metrics,
            "created": time.strftime("%Y-%m-%d %H:%M:%S")}


def _data_record(train_file: Path, validation_file: Path, train_set: list[dict], val_set: list[dict],
                 too_long: int) -> dict:
    """The run card's data: the files, the training file's sha256, and how many examples were used or left out."""
    return {"train_file": str(train_file), "train_sha256": file_sha256(train_file),
            "validation_file": str(validation_file), "train_examples": len(train_set),
            "left_out_too_long": too_long, "validation_examples": len(val_set)}


def train_lora(settings: Settings | None = None, name: str = "notes", run: LoraRun | None = None, *,
               preset_name: str = "custom", overwrite: bool = False, resume: bool = False,
               train_file: Path | None = None, validation_file: Path | None = None, progress: bool = True,
               callbacks: tuple = ()) -> dict:
    """Train a LoRA adapter on the synthesised data and save it; returns the run card."""
    from transformers import AutoTokenizer, DataCollatorForSeq2Seq, Trainer

    from rag.generators import ensure_smollm2

    settings = settings or get_settings()
    run = run or LoraRun()
    check_name(name)
    target = adapters_dir(settings) / name
    checkpoints = runs_dir(settings) / name
    run = _resume_policy(name, run, target, checkpoints, resume=resume, overwrite=overwrite)
    given = load_examples(train_file) if train_file else None  # a broken file is said before any data is made
    train_file, validation_file = _data_files(settings, train_file, validation_file, progress)
    train_examples = given if given is not None else load_examples(train_file)
    val_examples = load_examples(validation_file)

    base = ensure_smollm2(settings)
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    train_set, too_long = encode_all(tokenizer, train_examples, run, run.max_train_examples)
    val_set, _ = encode_all(tokenizer, val_examples, run, run.eval_examples)
    if not train_set:
        raise FinetuneError(f"{train_file}: no example of styles {run.styles} fits in {run.max_length} tokens")
    model, trainable, total = _lora_model(base, run)

    checkpoints.mkdir(parents=True, exist_ok=True)
    (checkpoints / "run.json").write_text(json.dumps({"run": asdict(run), "preset": preset_name}, indent=2))
    args = _training_arguments(run, checkpoints, bool(val_set), progress)
    timer = step_timer()
    trainer = Trainer(model=model, args=args, train_dataset=train_set, eval_dataset=val_set or None,
                      data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100),
                      callbacks=[timer, *callbacks])

    peak = peak_flops(run)
    result, seconds = _train(trainer, run, resume)
    losses = _loss_metrics(trainer, result, bool(val_set))  # may evaluate once more: before timing the peak again
    throughput = throughput_metrics(trainer, timer, seconds, peak, run,
                             lora_flops_per_token(model, train_set, total, trainable))
    metrics = {"steps": trainer.state.global_step, "seconds": seconds, "timed_steps": timer.steps,
               "step_seconds": timer.seconds, **losses, **throughput, "resumed": resume}
    card = _run_card(name, preset_name, run, _data_record(train_file, validation_file, train_set, val_set, too_long),
                     {"trainable": trainable, "total": total}, metrics)
    if trainer.is_world_process_zero():  # under torchrun / accelerate, one process writes the adapter
        _save_adapter(model, card, trainer.state.log_history, target)
    return card


def _save_adapter(model, card: dict, history: list[dict], target: Path) -> None:
    """Write adapter + run card + loss curve into a temporary folder beside ``target``, then swap it in."""
    with staged_folder(target) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        (tmp / "run_card.json").write_text(json.dumps(card, indent=2))
        _loss_curve(history, tmp / "loss_curve.png", f"LoRA '{card['name']}' ({card['preset']})")


# --------------------------------------------------------------------------- using an adapter


def load_adapter_model(settings: Settings | None, name: str, merge: bool = False):
    """(model, tokenizer): the base model with adapter ``name`` (merged into the weights if ``merge``)."""
    path = adapters_dir(settings) / check_name(name)
    if not (path / "adapter_config.json").is_file():  # said before the heavy imports
        raise FinetuneError(f"no adapter '{name}' under {path.parent}; train one with `mathrag finetune lora "
                            f"--name {name}`")
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rag.generators import ensure_smollm2

    base = ensure_smollm2(settings)
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    model = PeftModel.from_pretrained(model, str(path))
    if merge:
        model = model.merge_and_unload()
    return model.eval(), AutoTokenizer.from_pretrained(str(base))


def merge_adapter(settings: Settings | None, name: str, out: Path | None = None, overwrite: bool = False) -> Path:
    """Write the base model with the adapter merged into its weights, as a plain transformers folder
    (usable as the generator ``hf:<folder>`` or by any serving engine)."""
    settings = settings or get_settings()
    out = out or settings.models_dir / f"smollm2-lora-{check_name(name)}"
    if out.exists() and not overwrite:
        raise FinetuneError(f"{out} exists; pass --overwrite to replace it")
    model, tokenizer = load_adapter_model(settings, name, merge=True)
    with staged_folder(out) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        (tmp / "mathrag_manifest.json").write_text(json.dumps({"base": GENERATOR_MODEL_ID, "adapter": name},
                                                              indent=2))
    return out


def list_adapters(settings: Settings | None = None) -> list[dict]:
    """The run cards of the saved adapters, newest first."""
    cards = []
    for path in sorted(adapters_dir(settings).glob("*/run_card.json")):
        card = json.loads(path.read_text())
        cards.append({"name": card["name"], "preset": card["preset"], "created": card["created"],
                      "final_eval_loss": card["metrics"]["final_eval_loss"], "path": str(path.parent)})
    return sorted(cards, key=lambda c: c["created"], reverse=True)
