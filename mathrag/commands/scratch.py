"""``mathrag scratch``: train the from-scratch mini GPT on the notes, and sample from it.

``mathrag scratch train`` feeds every note (its path as the name, its Markdown body as the
text) to :func:`from_scratch.train.train`, which holds some notes out for validation, trains a
BPE tokenizer and a small GPT, and writes checkpoints, ``metrics.json`` and ``loss_curve.png``
to ``--out`` (default ``MATHRAG_HOME/scratch/mini-gpt``). ``mathrag scratch sample`` loads a
checkpoint and writes a continuation of ``--prompt``. ``mathrag scratch attention TEXT --layer L``
saves a heatmap per head of layer L (:mod:`app.attention_maps`) for SmolLM2 run by the project's
own code, or for a trained checkpoint.

torch is imported only when a subcommand runs, so ``mathrag --help`` stays fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from rag.corpus import load_corpus
from rag.settings import get_settings


def default_checkpoint_dir() -> Path:
    return get_settings().home / "scratch" / "mini-gpt"


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}m {seconds:02d}s" if minutes else f"{seconds}s"


def _passive_openmp() -> None:
    """Let idle OpenMP threads sleep instead of spin, if torch is not loaded yet (the setting is read then).

    With 2 cores and another busy process, spinning threads wait for each other's time slices:
    a training step took 10x longer (3.1 s instead of 0.39 s); when the machine is idle the cost is nil.
    """
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def cmd_train(args: argparse.Namespace) -> int:
    _passive_openmp()
    from from_scratch.checkpoint import read_train_config
    from from_scratch.train import train
    from from_scratch.train_config import TrainConfig

    settings = get_settings()
    out = Path(args.out) if args.out else default_checkpoint_dir()
    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps must be at least 1, got {args.steps}")
    if args.resume and not args.quick:
        config = read_train_config(out)  # go on with the checkpoint's settings
    else:
        config = TrainConfig.quick() if args.quick else TrainConfig()
    if args.steps is not None:
        config = dataclasses.replace(config, steps=args.steps)
    notes = load_corpus(settings.corpus_dir)
    if len(notes) < 2:
        raise ValueError(f"need at least 2 notes to train (one held out for validation); {settings.corpus_dir} "
                         f"has {len(notes)}")
    summary = train([(n.source, n.body) for n in notes], config, out, resume=args.resume, progress=not args.json)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"model: {summary['n_params'] / 1e6:.2f}M parameters, vocabulary {summary['vocab_size']}, "
          f"{summary['documents']['train']} training notes ({summary['tokens']['train']} tokens), "
          f"{summary['documents']['val']} held out")
    print(f"trained to step {summary['step']} of {summary['steps']} in {_duration(summary['seconds']['total'])}")
    if "val_bpb" in summary:
        print(f"validation: {summary['val_loss']:.4f} nats per token, {summary['val_bpb']:.4f} bits per byte "
              f"({summary['val_tokens']} tokens, {summary['val_bytes']} bytes)")
    print(f"checkpoint: {summary['out']}  (loss curve: {Path(summary['out']) / 'loss_curve.png'})")
    print(f"sample it:  mathrag scratch sample --checkpoint {summary['out']} --prompt 'The gradient'")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    _passive_openmp()
    from from_scratch.checkpoint import load_checkpoint
    from from_scratch.train import sample

    folder = Path(args.checkpoint) if args.checkpoint else default_checkpoint_dir()
    model, tokenizer, _ = load_checkpoint(folder)
    text = sample(model, tokenizer, args.prompt, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                  top_k=args.top_k or None, seed=args.seed)
    print(args.prompt + text)
    return 0


def cmd_attention(args: argparse.Namespace) -> int:
    _passive_openmp()
    from app import attention_maps as am

    source = args.checkpoint or am.SMOLLM2
    if args.checkpoint and not Path(args.checkpoint).is_dir():
        raise ValueError(f"no checkpoint folder at {args.checkpoint}; train one first (mathrag scratch train)")
    maps = am.compute(args.text, args.layer, source)
    heads = None if args.head is None else [args.head]
    out = Path(args.out) if args.out else am.default_out_dir(get_settings().home, maps)
    files = am.save(maps, out, heads)
    print(f"{len(maps.tokens)} tokens, layer {maps.layer} of 0..{maps.n_layers - 1}, {maps.n_heads} heads")
    for h in heads if heads is not None else range(maps.n_heads):
        links = ", ".join(f"{q}->{k} {w:.2f}" for q, k, w in maps.top_links(h, 3))
        print(f"  head {h}: strongest links besides the first token: {links or 'none'}")
    print(f"saved {len(files)} PNG files to {out}")
    return 0


def register(sub) -> None:
    """Add ``mathrag scratch train|sample|attention`` to the subcommands ``sub``."""
    p = sub.add_parser("scratch", help="train a mini GPT on the notes, sample from it, look at attention",
                       description="Train the from-scratch GPT (from_scratch/train.py) on the notes on this CPU, "
                                   "or sample from a trained checkpoint.")
    actions = p.add_subparsers(dest="scratch_command", metavar="ACTION", required=True)

    t = actions.add_parser("train", help="train the tokenizer and the mini GPT; write checkpoints and a loss curve",
                           description="Hold some notes out for validation, train a BPE tokenizer and a small GPT "
                                       "on the rest, report validation loss and bits per byte. The default run "
                                       "takes about 5 minutes on 2 CPU cores.")
    t.add_argument("--steps", type=int, default=None, help="number of updates (default: 1200; --quick: 60)")
    t.add_argument("--out", default=None, help="checkpoint folder (default: MATHRAG_HOME/scratch/mini-gpt)")
    t.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    t.add_argument("--quick", action="store_true", help="a tiny model and run (seconds), for tests")
    t.add_argument("--json", action="store_true", help="print the summary as JSON (no progress bar)")
    t.set_defaults(func=cmd_train)

    s = actions.add_parser("sample", help="write text with a trained mini GPT",
                           description="Continue a prompt with a checkpoint written by 'mathrag scratch train'.")
    s.add_argument("--checkpoint", default=None, help="checkpoint folder (default: MATHRAG_HOME/scratch/mini-gpt)")
    s.add_argument("--prompt", default="", help="text to continue (default: start a new document)")
    s.add_argument("--max-new-tokens", type=int, default=200, help="tokens to generate at most (default 200)")
    s.add_argument("--temperature", type=float, default=0.8, help="0 for greedy decoding (default 0.8)")
    s.add_argument("--top-k", type=int, default=50, help="sample among the k most likely tokens; 0: all (default 50)")
    s.add_argument("--seed", type=int, default=None, help="random seed, for a reproducible sample")
    s.set_defaults(func=cmd_sample)

    a = actions.add_parser("attention", help="save attention heatmaps (one PNG per head) for a text",
                           description="Run TEXT through SmolLM2 (the project's own GPT on its weights) or a "
                                       "trained checkpoint and save the attention weights of one layer: a "
                                       "heatmap per head and a grid of all heads, plus attention.json.")
    a.add_argument("text", help="the text to look at (at most 96 tokens)")
    a.add_argument("--layer", type=int, default=0, help="layer to show, from 0; negative counts from the last "
                                                        "(default 0)")
    a.add_argument("--head", type=int, default=None, help="only this head (default: every head)")
    a.add_argument("--checkpoint", default=None, help="a mini-GPT checkpoint folder instead of SmolLM2")
    a.add_argument("--out", default=None, help="folder for the PNGs (default: MATHRAG_HOME/scratch/attention/...)")
    a.set_defaults(func=cmd_attention)
