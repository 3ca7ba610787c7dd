"""How fast a LoRA run trains: tokens per second over the optimisation steps, and model FLOPs utilisation.

MFU = (model FLOPs per token x tokens per second) / the device's peak FLOP/s. The peak is measured on
the spot, as the FLOP/s of a large matrix product in the run's dtype (a CPU's datasheet peak is rarely
reached and a laptop's clock moves), once before training and once after, keeping the higher one so that
utilisation is not flattered. The FLOPs per token follow PaLM's count, adapted to LoRA
(:func:`flops_per_token`). The run card (``finetune.lora``) records all of it; ``mathrag bench``'s
finetune suite reads it from there.
"""

from __future__ import annotations

import math
import time

from finetune.presets import LoraRun


def matmul_peak_flops(n: int = 1024, repeats: int = 8, device: str = "cpu", dtype=None) -> float:
    """FLOP/s of a large matrix product on the device the run trains on, now: the reference for utilisation
    (float32 on a CPU; the training dtype on a GPU, where a larger product is needed to fill the chip)."""
    import torch

    dtype = dtype or torch.float32
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    torch.mm(a, b)  # warm up
    best = math.inf
    for _ in range(repeats):
        if device != "cpu":
            torch.cuda.synchronize()
        start = time.perf_counter()
        torch.mm(a, b)
        if device != "cpu":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def peak_flops(run: LoraRun) -> float:
    """The matmul FLOP/s of the device the run trains on, in its training dtype, measured now."""
    import torch

    on_gpu = torch.cuda.is_available()
    return matmul_peak_flops(8192 if on_gpu else 1024, device="cuda" if on_gpu else "cpu",
                             dtype=torch.bfloat16 if on_gpu and run.bf16 else torch.float32)


def flops_per_token(total_params: int, trainable_params: int, layers: int = 0, width: int = 0,
                    seq_len: float = 0.0) -> float:
    """Model FLOPs per trained token, counted as PaLM's MFU does but for LoRA:

    - the weight matmuls: forward 2N, backward through the activations 2N (every layer passes the
      gradient on), weight gradients 2N_lora for the trainable adapters only: ``4N + 2N_lora``;
    - attention's sequence terms, q k^T and the weighted sum of v: forward 4 L T d per token, backward
      twice that: ``12 L T d`` (L layers, T the sequence length, d the width of the queries).
    """
    return 4 * total_params + 2 * trainable_params + 12 * layers * seq_len * width


def lora_flops_per_token(model, train_set: list[dict], total: int, trainable: int) -> float:
    """:func:`flops_per_token` of this model, at the mean length of the training examples."""
    config = model.get_base_model().config
    mean_len = sum(len(x["input_ids"]) for x in train_set) / len(train_set)
    return flops_per_token(total, trainable, config.num_hidden_layers, config.num_attention_heads * config.head_dim,
                           mean_len)


def step_timer():
    """A Trainer callback that times the optimisation steps only, leaving out evaluation, checkpoint
    writing, start-up and the first (warm-up) step, and counts the tokens those steps trained on."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.steps, self.seconds, self.tokens = 0, 0.0, 0
            self._start, self._tokens_after_first = None, None

        def on_step_begin(self, args, state, control, **kwargs):
            self._start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if self._start is None:
                return
            if self._tokens_after_first is None:  # the warm-up step: remember where counting starts
                self._tokens_after_first = state.num_input_tokens_seen
            else:
                self.steps += 1
                self.seconds += time.perf_counter() - self._start
                self.tokens = state.num_input_tokens_seen - self._tokens_after_first
            self._start = None

    return StepTimer()


def throughput_metrics(trainer, timer, seconds: float, peak: float, run: LoraRun, fpt: float) -> dict:
    """The run card's throughput: tokens trained, tokens per second and MFU (``peak``: FLOP/s before training)."""
    tokens = trainer.state.num_input_tokens_seen
    # Throughput over the timed steps (not eval or saving); a run of one step falls back to wall time.
    tokens_per_s = timer.tokens / timer.seconds if timer.seconds > 0 else tokens / max(seconds, 1e-9)
    peak = max(peak, peak_flops(run))  # measured before and after: the higher one, so utilisation is not flattered
    return {"tokens": tokens, "tokens_per_s": tokens_per_s, "flops_per_token": fpt, "matmul_peak_gflops": peak / 1e9,
            "mfu": fpt * tokens_per_s / peak}
