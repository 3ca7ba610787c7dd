"""Settings of a LoRA run, and the named presets they start from.

A preset is a starting point; every field can be overridden on the command line
(``mathrag finetune lora --preset cpu-quick --max-steps 40 --rank 4``).

- ``cpu-quick``: the condensed-context examples only (what the embedded model sees in the app),
  short sequences, attention projections only; ten to twelve minutes on two CPU cores.
- ``cpu-full``: every example and both prompt styles, attention and MLP projections, two epochs.
- ``gpu``: the same data as ``cpu-full`` with larger batches, bfloat16 and more epochs; launch it
  unchanged on several GPUs with ``accelerate launch`` or ``torchrun`` (the Trainer handles them).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

ATTENTION = ["q_proj", "k_proj", "v_proj", "o_proj"]
ALL_LINEAR = [*ATTENTION, "gate_proj", "up_proj", "down_proj"]


@dataclass
class LoraRun:
    # the data
    styles: list[str] = field(default_factory=lambda: ["condensed", "full"])
    max_length: int = 1024  # tokens; longer examples are left out (counted in the run card)
    max_train_examples: int = 0  # 0: all
    # the adapter
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: list(ATTENTION))
    # the optimisation
    epochs: float = 1.0
    max_steps: int = -1  # > 0 overrides epochs
    batch_size: int = 4
    grad_accum: int = 1
    learning_rate: float = 2e-4
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    gradient_checkpointing: bool = False
    bf16: bool = False
    seed: int = 0
    # evaluation and checkpoints
    eval_steps: int = 20
    eval_examples: int = 48  # validation examples scored for the loss curve (0: all)
    save_steps: int = 20
    logging_steps: int = 5

    def override(self, **values) -> LoraRun:
        """A copy with the given fields changed (None values are ignored); unknown names -> ValueError."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown LoRA setting '{unknown[0]}'; choose from {', '.join(sorted(known))}")
        return replace(self, **{k: v for k, v in values.items() if v is not None})


PRESETS: dict[str, LoraRun] = {
    "cpu-quick": LoraRun(styles=["condensed"], max_length=384, rank=8, alpha=16, target_modules=list(ATTENTION),
                         max_steps=120, batch_size=4, learning_rate=3e-4, eval_steps=40, eval_examples=32,
                         save_steps=40),
    "cpu-full": LoraRun(max_length=1024, rank=16, alpha=32, target_modules=list(ALL_LINEAR), epochs=2.0,
                        batch_size=4, grad_accum=2, learning_rate=2e-4, eval_steps=50, save_steps=50),
    "gpu": LoraRun(max_length=2048, rank=16, alpha=32, target_modules=list(ALL_LINEAR), epochs=3.0,
                   batch_size=16, learning_rate=2e-4, bf16=True, eval_steps=50, eval_examples=0, save_steps=100),
}


def preset(name: str) -> LoraRun:
    if name not in PRESETS:
        raise ValueError(f"unknown preset '{name}'; choose one of {', '.join(PRESETS)}")
    return replace(PRESETS[name])
