"""Benchmark suite ``finetune`` (``mathrag bench --suite finetune``): how well LoRA training uses the machine.

A short LoRA run (the ``cpu-quick`` preset's settings, a few steps; ``--quick``
fewer) on a private copy of six notes, measuring against references taken in
the same run:

- throughput in tokens per second, and model FLOPs utilisation: the FLOPs the run
  needed per token (forward, backward through the frozen base, LoRA weight
  gradients, attention's sequence terms) times tokens/s, over the peak of a plain
  float32 matmul on the same device measured before and after training (the
  higher one);
- the validation loss on answer tokens at step 0 (the base model) and at the end;
- the loss curve, copied beside the report.

The full ``cpu-quick`` run (120 steps) takes about 12 minutes; its figures are in the
README. This suite is the part that fits in a benchmark run.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from finetune.lora import train_lora
from finetune.presets import preset
from rag.bench import Ratio, headline, ratios, report, suite
from rag.settings import Settings

# Two notes in each of three areas: fine-tuning holds out one note of every area for validation.
NOTES = ("linear_algebra/svd.md", "linear_algebra/pca.md", "calculus/gradient.md", "calculus/chain_rule.md",
         "information_theory/entropy.md", "information_theory/cross_entropy_kl.md")
MFU_TARGET = 0.40


@suite("finetune")
def bench_finetune(settings: Settings, quick: bool = False) -> dict:
    steps, examples = (4, 4) if quick else (16, 16)  # optimizer steps, validation examples
    with tempfile.TemporaryDirectory(prefix="mathrag-finetune-") as tmp:
        root = Path(tmp)
        corpus = root / "corpus"
        for rel in NOTES:
            (corpus / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(settings.corpus_dir / rel, corpus / rel)
        home = root / "home"
        home.mkdir()
        settings.models_dir.mkdir(parents=True, exist_ok=True)
        (home / "models").symlink_to(settings.models_dir.resolve(), target_is_directory=True)  # convert once
        private = Settings(home=home, corpus_dir=corpus)
        run = preset("cpu-quick").override(max_steps=steps, eval_steps=steps, save_steps=steps, eval_examples=examples,
                                           logging_steps=1)
        card = train_lora(private, "bench", run, preset_name="cpu-quick (bench)", progress=False)
        curve = settings.reports_dir / "bench_finetune_loss.png"
        curve.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(home / "adapters" / "bench" / "loss_curve.png", curve)
    m = card["metrics"]
    return {"steps": m["steps"], "train_examples": card["data"]["train_examples"], "seconds": m["seconds"],
            "tokens_per_s": m["tokens_per_s"], "flops_per_token": m["flops_per_token"],
            "matmul_peak_gflops": m["matmul_peak_gflops"], "mfu": m["mfu"], "mfu_target": MFU_TARGET,
            "base_eval_loss": m["base_eval_loss"], "final_eval_loss": m["final_eval_loss"],
            "trainable_parameters": card["parameters"]["trainable"],
            "_files": [str(curve)]}


@report("finetune")
def markdown(result: dict) -> list[str]:
    r = result
    achieved = r["flops_per_token"] * r["tokens_per_s"] / 1e9
    return ["## finetune", "", "| measure | value | reference | ratio | target |", "|---|---|---|---|---|",
            f"| LoRA training ({r['steps']} steps, {r['trainable_parameters']:,} trainable) | {r['tokens_per_s']:.0f} "
            f"tokens/s = {achieved:.0f} GFLOP/s | float32 matmul peak {r['matmul_peak_gflops']:.0f} GFLOP/s | "
            f"MFU {r['mfu']:.0%} | >= {r['mfu_target']:.0%} |",
            f"| validation loss, answer tokens | {r['final_eval_loss']:.3f} | base model {r['base_eval_loss']:.3f} | "
            f"{r['final_eval_loss'] / r['base_eval_loss']:.2f}x | lower |", "",
            "![LoRA loss curve](bench_finetune_loss.png)"]


@headline("finetune")
def _headline(result: dict) -> list[tuple[str, str, str]]:
    return [("LoRA training: model FLOPs utilisation vs a float32 matmul", f"{result['mfu']:.0%} "
             f"({result['tokens_per_s']:.0f} tokens/s)", f">= {result['mfu_target']:.0%}")]


@ratios("finetune")
def _ratios(result: dict) -> list[Ratio]:
    achieved = result["flops_per_token"] * result["tokens_per_s"] / 1e9
    return [Ratio("LoRA training FLOP/s vs float32 matmul peak (MFU)", result["mfu"], result["mfu_target"], True,
                  f"{achieved:.0f} vs {result['matmul_peak_gflops']:.0f} GFLOP/s"),
            Ratio("validation loss after vs before", result["final_eval_loss"] / result["base_eval_loss"], 1.0,
                  False, f"{result['final_eval_loss']:.2f} vs {result['base_eval_loss']:.2f}")]
