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
import time
from pathlib import Path

from bench.framework import Ratio, headline, ratios, report, suite
from finetune.lora import train_lora
from finetune.presets import preset
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
    mean_len = m["tokens"] / max(1, m["steps"] * run.batch_size * run.grad_accum)
    where = None if quick else where_time_goes(settings, run, round(mean_len))
    return {"where_time_goes": where, "steps": m["steps"], "train_examples": card["data"]["train_examples"],
            "seconds": m["seconds"],
            "tokens_per_s": m["tokens_per_s"], "flops_per_token": m["flops_per_token"],
            "matmul_peak_gflops": m["matmul_peak_gflops"], "mfu": m["mfu"], "mfu_target": MFU_TARGET,
            "base_eval_loss": m["base_eval_loss"], "final_eval_loss": m["final_eval_loss"],
            "trainable_parameters": card["parameters"]["trainable"],
            "_files": [str(curve)]}


# Operators that are matrix multiplies (their FLOPs are what MFU counts) and attention's fused kernel.
MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::addmv", "aten::mv", "aten::dot")


def where_time_goes(settings: Settings, run, seq_len: int, steps: int = 2) -> dict:
    """Profile LoRA training steps of the same shape: the share of CPU time in matrix multiplies.

    MFU counts matmul FLOPs over a matmul's peak, so time spent elsewhere (norms, activations,
    softmax, the optimizer, Python) is what keeps it low; this says how much there is.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from torch.profiler import ProfilerActivity, profile
    from transformers import AutoModelForCausalLM

    from rag.generators import ensure_smollm2

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(ensure_smollm2(settings)), dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=run.rank, lora_alpha=run.alpha, lora_dropout=run.dropout,
                                             target_modules=run.target_modules, task_type="CAUSAL_LM"))
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=run.learning_rate)
    ids = torch.randint(0, model.config.vocab_size, (run.batch_size, seq_len))

    def step():
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    step()  # warm up
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    wall = time.perf_counter() - start
    by_op = {e.key: e.self_cpu_time_total for e in prof.key_averages()}
    total = sum(by_op.values()) or 1.0
    matmul = sum(t for k, t in by_op.items() if k in MATMUL_OPS)
    attention = sum(t for k, t in by_op.items() if "scaled_dot_product" in k)
    others = sorted(((k, t) for k, t in by_op.items() if k not in MATMUL_OPS and "scaled_dot_product" not in k),
                    key=lambda kv: -kv[1])[:6]
    return {"batch": run.batch_size, "seq_len": seq_len, "steps": steps, "seconds_per_step": round(wall / steps, 3),
            "matmul_share": round(matmul / total, 3), "attention_share": round(attention / total, 3),
            "top_other_ops": [{"op": k, "share": round(t / total, 3)} for k, t in others]}


def _why(result: dict) -> list[str]:
    w = result.get("where_time_goes")
    if not w or result["mfu"] >= result["mfu_target"]:
        return []
    ops = ", ".join(f"{o['op'].removeprefix('aten::')} {o['share']:.0%}" for o in w["top_other_ops"][:4])
    short = 100 * (result["mfu_target"] - result["mfu"])
    dropout = next((o["share"] for o in w["top_other_ops"] if o["op"] == "aten::bernoulli_"), 0)
    return ["", f"Why MFU misses {result['mfu_target']:.0%} by {short:.0f} points: profiling training steps of the "
            f"same shape (batch {w['batch']} x {w['seq_len']} tokens, {w['seconds_per_step']:.2f} s a step) puts "
            f"{w['matmul_share']:.0%} of the CPU time in matrix multiplies and {w['attention_share']:.0%} in "
            f"attention's kernel. The rest goes to work MFU does not count, led by {ops}. Those run at memory "
            "speed, and a short sequence gives the matmuls little to amortise them over. Longer sequences, larger "
            "batches or a GPU raise the matmul share."
            + (f" `bernoulli_` is LoRA dropout drawing its random masks: {dropout:.0%} of the step, which "
               "`--dropout 0` saves." if dropout >= 0.02 else "")]


@report("finetune")
def markdown(result: dict) -> list[str]:
    r = result
    achieved = r["flops_per_token"] * r["tokens_per_s"] / 1e9
    return ["## finetune", "", "| measure | value | reference | ratio | target |", "|---|---|---|---|---|",
            f"| LoRA training ({r['steps']} steps, {r['trainable_parameters']:,} trainable) | {r['tokens_per_s']:.0f} "
            f"tokens/s = {achieved:.0f} GFLOP/s | float32 matmul peak {r['matmul_peak_gflops']:.0f} GFLOP/s | "
            f"MFU {r['mfu']:.0%} | >= {r['mfu_target']:.0%} |",
            f"| validation loss, answer tokens | {r['final_eval_loss']:.3f} | base model {r['base_eval_loss']:.3f} | "
            f"{r['final_eval_loss'] / r['base_eval_loss']:.2f}x | lower |", *_why(r), "",
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
