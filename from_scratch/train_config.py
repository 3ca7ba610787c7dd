"""What defines a mini-GPT training run (:class:`TrainConfig`), checked when it is made.

A run is the tokenizer's vocabulary size, the model's shape (a small GPT-2-style decoder: learned
positions, LayerNorm, GELU, tied embeddings), the optimisation (AdamW with warm-up and cosine decay)
and the data split. ``from_scratch.train`` trains one; ``from_scratch.checkpoint`` saves it beside the
weights, so that a resumed run can check it is the same run.
"""

from __future__ import annotations

from dataclasses import dataclass

from from_scratch.gpt import GPTConfig

EOT = "<|endoftext|>"  # separates documents in the token stream; also the start token when sampling


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a run. The defaults train in about 5 minutes on 2 idle CPU cores."""

    # tokenizer
    vocab_size: int = 4096  # 256 bytes + merges + <|endoftext|>
    # model: a small GPT-2-style decoder (learned positions, LayerNorm, GELU, tied embeddings)
    context_length: int = 128
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    # optimisation
    batch_size: int = 16
    steps: int = 1200
    lr: float = 3e-3
    min_lr: float = 3e-4
    warmup_steps: int = 100
    weight_decay: float = 0.5  # strong decay: 54 notes are few; 0.1 overfit more (1.77 vs 1.75 bits/byte)
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    # evaluation and checkpoints
    eval_interval: int = 100  # evaluate (and write a checkpoint) every this many updates
    eval_batches: int = 8  # batches per split for the loss estimates during training
    # data
    val_fraction: float = 0.1
    seed: int = 1337

    def __post_init__(self):
        problems = []
        if self.vocab_size < 257:
            problems.append(f"vocab_size must be at least 257 (256 bytes + {EOT}), got {self.vocab_size}")
        for name in ("context_length", "d_model", "n_layers", "n_heads", "batch_size", "steps", "eval_interval",
                     "eval_batches"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.n_heads >= 1 and self.d_model % self.n_heads:
            problems.append(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        if not 0 < self.min_lr <= self.lr:
            problems.append(f"need 0 < min_lr <= lr, got min_lr {self.min_lr}, lr {self.lr}")
        if self.warmup_steps < 0 or self.weight_decay < 0 or self.grad_clip <= 0:
            problems.append("need warmup_steps >= 0, weight_decay >= 0 and grad_clip > 0")
        if self.seed < 0:
            problems.append(f"seed must be >= 0, got {self.seed}")
        if not 0 < self.val_fraction < 1:
            problems.append(f"val_fraction must be between 0 and 1, got {self.val_fraction}")
        if problems:
            raise ValueError("invalid TrainConfig: " + "; ".join(problems))

    @classmethod
    def quick(cls, **overrides) -> TrainConfig:
        """A tiny run for tests and smoke checks: a few seconds on 2 CPU cores."""
        tiny = dict(vocab_size=512, context_length=32, d_model=32, n_layers=2, n_heads=2, batch_size=8, steps=60,
                    lr=3e-3, min_lr=3e-4, warmup_steps=10, eval_interval=20, eval_batches=4)
        return cls(**{**tiny, **overrides})

    def model_config(self, vocab_size: int) -> GPTConfig:
        """The GPT for a tokenizer of ``vocab_size`` ids (training may stop short of ``self.vocab_size``)."""
        return GPTConfig(vocab_size=vocab_size, context_length=self.context_length, d_model=self.d_model,
                         n_layers=self.n_layers, n_heads=self.n_heads, norm="layernorm", mlp="gelu",
                         positions="learned", bias=True, tie_embeddings=True)
