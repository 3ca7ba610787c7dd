"""Benchmark suite ``scratch``: the project's own tokenizer and model against the libraries they replace.

Each figure is a ratio against a reference measured side by side in the same run:

- encoding the whole corpus: ``from_scratch`` BPE vs the Hugging Face ``tokenizers``
  (Rust) tokenizer configured the same way (SmolLM2's digit split + byte-level);
  the ids must be identical. Target >= 0.3x.
- BPE training at vocab 4,096 on the corpus: the incremental heap trainer vs the
  naive one that recounts every pair after each merge; the merges must be
  identical. Target >= 20x. (``--quick`` trains to 512 on a quarter of the notes.)
- generation: ``from_scratch`` GPT with its KV cache vs ``transformers``'
  ``generate`` on the same prompt and weights, greedy, same number of tokens;
  the tokens must be identical. Target >= 1.2x.
- the mini-GPT trained on the notes (``mathrag scratch train``): its validation
  bits per byte on the held-out notes, against gzip -9 on the same notes (how
  many times fewer bits the model needs), when a checkpoint exists.
"""

from __future__ import annotations

import json
import statistics
import time

from bench.framework import Ratio, headline, ratios, report, suite
from rag.corpus import load_corpus
from rag.settings import Settings


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _reference_tokenizer():
    from tokenizers import Tokenizer, pre_tokenizers

    from rag.generators import ensure_smollm2

    tok = Tokenizer.from_file(str(ensure_smollm2() / "tokenizer.json"))
    # transformers' GGUF loader drops SmolLM2's digit split; put it back so both sides tokenize alike.
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.encode_special_tokens = True  # special-token strings in the notes are plain text on both sides
    return tok


@suite("scratch")
def bench_scratch(settings: Settings, quick: bool = False) -> dict:
    texts = [n.body for n in load_corpus(settings.corpus_dir, root=settings.corpus_dir.parent)]
    result: dict = {"encode": _bench_encode(texts, quick), "train": _bench_train(texts, quick),
                    "generate": _bench_generate(texts, quick), "mini_gpt": _mini_gpt(settings)}
    copy = _copy_loss_curve(settings, result["mini_gpt"])
    if copy is not None:
        result["mini_gpt"]["loss_curve"] = copy.name
        result["_files"] = [str(copy)]
    return result


def _bench_encode(texts: list[str], quick: bool) -> dict:
    """Encoding the corpus: ours (a fresh chunk cache each round) vs the Rust tokenizer; ids must match."""
    from from_scratch.tokenizer import BPETokenizer

    chars = sum(len(t) for t in texts)
    ref = _reference_tokenizer()
    loaded = BPETokenizer.from_gguf()
    ours_ids = [loaded.encode(t, allowed_special="none") for t in texts]
    ref_ids = [e.ids for e in ref.encode_batch(texts, add_special_tokens=False)]
    repeat = 1 if quick else 3
    ours_times = []
    for _ in range(repeat):  # a fresh copy each round: its chunk cache starts empty
        fresh = loaded.with_pattern(loaded.pattern)
        ours_times.append(_best(lambda tok=fresh: [tok.encode(t, allowed_special="none") for t in texts], 1))
    ours_s = min(ours_times)
    ref_s = _best(lambda: [ref.encode(t, add_special_tokens=False) for t in texts], repeat)
    return {"chars": chars, "ours_chars_per_s": chars / ours_s, "tokenizers_chars_per_s": chars / ref_s,
            "ratio": ref_s / ours_s, "identical_ids": ours_ids == ref_ids, "target": ">= 0.3x"}


def _bench_train(texts: list[str], quick: bool) -> dict:
    """BPE training: the incremental heap trainer vs the naive recount; merges must match."""
    from from_scratch.bpe_train import train_bpe, train_bpe_naive
    from from_scratch.tokenizer import BPETokenizer

    vocab = 512 if quick else 4096
    texts = texts[: len(texts) // 4] if quick else texts  # --quick: a quarter of the notes (the naive recount
    counts = BPETokenizer().count_pretokens("\n".join(texts))  # is the slow side by design)
    start = time.perf_counter()
    fast = train_bpe(counts, vocab - 256)
    fast_s = time.perf_counter() - start
    start = time.perf_counter()
    naive = train_bpe_naive(counts, vocab - 256)
    naive_s = time.perf_counter() - start
    return {"vocab_size": vocab, "fast_s": fast_s, "naive_s": naive_s, "ratio": naive_s / fast_s,
            "identical_merges": [m.pair for m in fast] == [m.pair for m in naive], "target": ">= 20x"}


def _bench_generate(texts: list[str], quick: bool) -> dict:
    """Greedy generation: the from_scratch GPT vs transformers, same prompt and weights; tokens must match."""
    import torch
    from transformers import AutoModelForCausalLM

    from from_scratch.gpt import from_smollm2
    from from_scratch.tokenizer import BPETokenizer
    from rag.generators import ensure_smollm2

    torch.manual_seed(0)
    ours = from_smollm2().eval()
    hf = AutoModelForCausalLM.from_pretrained(str(ensure_smollm2()), dtype=torch.float32).eval()
    tokenizer = BPETokenizer.from_gguf()
    # about 5 chunks' worth of prompt (--quick: about 2)
    prompt = tokenizer.encode(texts[0][: 600 if quick else 1500], allowed_special="none")
    new = 16 if quick else 64

    def run_ours():
        return list(ours.generate(prompt, max_new_tokens=new, temperature=0.0))

    def run_hf():
        ids = torch.tensor([prompt])
        with torch.inference_mode():
            out = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new, min_new_tokens=new,
                              do_sample=False, pad_token_id=0)
        return out[0, len(prompt):].tolist()

    ours_tokens, hf_tokens = run_ours(), run_hf()  # also warms both up
    runs = 1 if quick else 2
    ours_t = statistics.median(_best(run_ours, 1) for _ in range(runs))
    hf_t = statistics.median(_best(run_hf, 1) for _ in range(runs))
    return {"prompt_tokens": len(prompt), "new_tokens": new, "ours_tokens_per_s": new / ours_t,
            "transformers_tokens_per_s": new / hf_t, "ratio": hf_t / ours_t,
            "identical_greedy_tokens": ours_tokens == hf_tokens, "target": ">= 1.2x"}


def _copy_loss_curve(settings: Settings, mini_gpt: dict):
    """Copy the training run's loss curve beside the report, when the run exists; its path, else None."""
    import shutil

    curve = settings.home / "scratch" / "mini-gpt" / "loss_curve.png"
    if "val_bpb" not in mini_gpt or not curve.is_file():
        return None
    copy = settings.reports_dir / "bench_scratch_loss.png"
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(curve, copy)
    return copy


def _mini_gpt(settings: Settings) -> dict:
    """The trained mini GPT's validation bits per byte, against gzip -9 on the same held-out notes."""
    import gzip

    config = settings.home / "scratch" / "mini-gpt" / "config.json"
    if not config.is_file():
        return {"note": "no checkpoint: run `mathrag scratch train`"}
    info = json.loads(config.read_text(encoding="utf-8"))
    final = info.get("metrics", {}).get("final")
    if not final:
        return {"note": f"the checkpoint in {config.parent} is not trained to the end"}
    bodies = {n.source: n.body for n in load_corpus(settings.corpus_dir, root=settings.corpus_dir.parent)}
    held_out = [bodies[name] for name in info["data"]["val_documents"] if name in bodies]
    gzip_bits = sum(8 * len(gzip.compress(b.encode("utf-8"), compresslevel=9)) for b in held_out)
    gzip_bpb = gzip_bits / sum(len(b.encode("utf-8")) for b in held_out) if held_out else float("nan")
    return {"val_bpb": final["val_bpb"], "val_loss": final["val_loss"], "steps": info["step"],
            "n_params": info["n_params"], "val_notes": len(held_out), "gzip_bpb": gzip_bpb,
            "ratio": gzip_bpb / final["val_bpb"]}


@report("scratch")
def markdown(result: dict) -> list[str]:
    e, t, g = result["encode"], result["train"], result["generate"]
    return [
        "## scratch", "", "| measure | ours | reference | ratio | same output | target |", "|---|---|---|---|---|---|",
        f"| encode the corpus | {e['ours_chars_per_s'] / 1e6:.2f} M chars/s | tokenizers (Rust) "
        f"{e['tokenizers_chars_per_s'] / 1e6:.2f} M chars/s | {e['ratio']:.2f}x | {e['identical_ids']} | >= 0.3x |",
        f"| train BPE to {t['vocab_size']} | {t['fast_s']:.2f} s | naive recount {t['naive_s']:.1f} s | "
        f"{t['ratio']:.0f}x | {t['identical_merges']} | >= 20x |",
        f"| generate {g['new_tokens']} tokens after {g['prompt_tokens']} | {g['ours_tokens_per_s']:.1f} tokens/s | "
        f"transformers {g['transformers_tokens_per_s']:.1f} tokens/s | {g['ratio']:.2f}x | "
        f"{g['identical_greedy_tokens']} | >= 1.2x |",
        _mini_gpt_row(result["mini_gpt"]),
        *(["", f"![mini-GPT loss curve]({result['mini_gpt']['loss_curve']})"] if "loss_curve" in result["mini_gpt"]
          else []),
    ]


def _mini_gpt_row(m: dict) -> str:
    if "val_bpb" not in m:
        return f"| mini-GPT on the held-out notes | {m['note']} | | | | |"
    return (f"| mini-GPT on {m['val_notes']} held-out notes ({m['n_params'] / 1e6:.2f}M parameters, {m['steps']} "
            f"steps) | {m['val_bpb']:.3f} bits/byte | gzip -9 {m['gzip_bpb']:.3f} bits/byte | {m['ratio']:.2f}x "
            "fewer bits | | |")


@headline("scratch")
def _headline(result: dict) -> list[tuple[str, str, str]]:
    e, t, g = result["encode"], result["train"], result["generate"]
    same = "identical" if e["identical_ids"] and t["identical_merges"] and g["identical_greedy_tokens"] else "DIFFER"
    return [("our BPE encoding vs `tokenizers` (Rust)", f"{e['ratio']:.2f}x, outputs {same}", ">= 0.3x"),
            ("our BPE training vs the naive recount", f"{t['ratio']:.0f}x", ">= 20x"),
            ("our GPT's greedy generation vs `transformers`", f"{g['ratio']:.2f}x", ">= 1.2x")]


@ratios("scratch")
def _ratios(result: dict) -> list[Ratio]:
    e, t, g, m = result["encode"], result["train"], result["generate"], result["mini_gpt"]
    rows = [Ratio("BPE encoding vs tokenizers (Rust)", e["ratio"], 0.3, True,
                  f"{e['ours_chars_per_s'] / 1e6:.2f} vs {e['tokenizers_chars_per_s'] / 1e6:.2f} M chars/s"),
            Ratio(f"BPE training to {t['vocab_size']} vs naive recount", t["ratio"], 20, True,
                  f"{t['fast_s']:.2f} vs {t['naive_s']:.1f} s"),
            Ratio("GPT greedy generation vs transformers", g["ratio"], 1.2, True,
                  f"{g['ours_tokens_per_s']:.1f} vs {g['transformers_tokens_per_s']:.1f} tokens/s")]
    if "ratio" in m:
        rows.append(Ratio("mini-GPT bits/byte vs gzip -9 (fewer bits)", m["ratio"], None, True,
                          f"{m['val_bpb']:.2f} vs {m['gzip_bpb']:.2f} bits/byte"))
    return rows
