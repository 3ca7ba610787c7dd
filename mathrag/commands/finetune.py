"""``mathrag finetune``: make the data, train a LoRA adapter or an embedder, compare before and after.

Examples::

    mathrag finetune data                          # synthesise train/validation JSONL from the notes
    mathrag finetune lora --preset cpu-quick       # LoRA SFT of SmolLM2 -> MATHRAG_HOME/adapters/notes/
    mathrag finetune lora --name notes --resume    # continue an interrupted run
    mathrag finetune embed                         # fine-tune the MiniLM embedder
    mathrag finetune eval --adapter notes          # before/after table, JSON + Markdown + PNG
    mathrag finetune merge notes                   # the base model with the adapter merged in
    mathrag ask "What is SVD?" --generator smollm2+lora:notes
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path


def cmd_data(args: argparse.Namespace) -> int:
    from finetune.data import build_dataset, data_dir
    from rag.settings import get_settings

    out = Path(args.out) if args.out else data_dir(get_settings())
    manifest = build_dataset(seed=args.seed, out=out, progress=not args.json)
    print(json.dumps(manifest, indent=2) if args.json else data_summary(manifest, out, args.seed))
    return 0


def data_summary(manifest: dict, out: Path, seed: int) -> str:
    """What ``finetune data`` wrote, for a person: the files, and each split's examples by kind and style."""
    lines = [f"wrote {out}/train.jsonl and validation.jsonl (split by note, seed {seed})"]
    for part in ("train", "validation"):
        m = manifest[part]
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(m["kinds"].items()))
        styles = ", ".join(f"{k} {v}" for k, v in sorted(m["styles"].items()))
        lines.append(f"  {part}: {m['examples']} examples from {len(m['notes'])} notes ({kinds}; {styles})")
    return "\n".join(lines)


# LoRA settings that the command line can override; the flag is the field name with dashes.
LORA_FLAGS = {"max_length": int, "max_train_examples": int, "rank": int, "alpha": int, "dropout": float,
              "epochs": float, "max_steps": int, "batch_size": int, "grad_accum": int, "learning_rate": float,
              "seed": int, "eval_steps": int, "eval_examples": int, "save_steps": int, "logging_steps": int}


def cmd_lora(args: argparse.Namespace) -> int:
    from finetune.lora import train_lora
    from finetune.presets import preset

    values = {k: getattr(args, k) for k in LORA_FLAGS}
    if args.target_modules:
        values["target_modules"] = args.target_modules.split(",")
    if args.styles:
        values["styles"] = args.styles.split(",")
    if args.gradient_checkpointing:
        values["gradient_checkpointing"] = True
    run = preset(args.preset).override(**values)
    card = train_lora(name=args.name, run=run, preset_name=args.preset, overwrite=args.overwrite,
                      resume=args.resume, train_file=Path(args.train_file) if args.train_file else None,
                      validation_file=Path(args.validation_file) if args.validation_file else None,
                      progress=not args.json)
    if args.json:
        print(json.dumps(card, indent=2))
        return 0
    m = card["metrics"]
    val = "n/a" if m["final_eval_loss"] is None else f"{m['final_eval_loss']:.3f}"
    print(f"adapter '{args.name}' saved: {m['steps']} steps in {m['seconds']:.0f} s, training loss "
          f"{m['train_loss']:.3f}, validation loss {val}, "
          f"{m['tokens_per_s']:.0f} tokens/s ({m['mfu']:.0%} of the measured matmul peak)")
    print(f"use it: mathrag ask \"...\" --generator smollm2+lora:{args.name}")
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    from finetune.embed import train_embedder
    from rag.settings import get_settings

    card = train_embedder(get_settings(), args.name, epochs=args.epochs, batch_size=args.batch_size,
                          learning_rate=args.learning_rate, max_steps=args.max_steps, seed=args.seed,
                          overwrite=args.overwrite, progress=not args.json)
    if args.json:
        print(json.dumps(card, indent=2, default=str))
        return 0
    b, a = card["before"], card["after"]
    print(f"embedder '{args.name}' saved to {card['path']}: validation recall@5 {b['recall@5']:.3f} -> "
          f"{a['recall@5']:.3f}, MRR {b['mrr']:.3f} -> {a['mrr']:.3f}")
    print(f"use it for the index: MATHRAG_EMBEDDER={args.name} mathrag index")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from finetune.evaluate import markdown, run_finetune_eval

    summary = run_finetune_eval(adapter=args.adapter, embedder=args.embedder, limit=args.limit or None,
                                styles=args.styles.split(",") if args.styles else None,
                                max_new_tokens=args.max_new_tokens, progress=not args.json)
    print(json.dumps(summary, indent=2, default=str) if args.json else markdown(summary))
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from finetune.lora import merge_adapter

    out = merge_adapter(None, args.name, Path(args.out) if args.out else None, overwrite=args.overwrite)
    print(f"merged model written to {out}; use it with --generator hf:{out}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from finetune.lora import list_adapters

    cards = list_adapters()
    if args.json:
        print(json.dumps(cards, indent=2))
    elif not cards:
        print("no adapters yet: mathrag finetune lora --preset cpu-quick")
    for c in cards if not args.json else []:
        print(f"{c['name']:20s} {c['preset']:10s} {c['created']}  validation loss {c['final_eval_loss']}")
    return 0


def _add_data(actions) -> None:
    """The ``finetune data`` action: synthesise the train/validation data."""
    d = actions.add_parser("data", help="synthesise train/validation data from the notes (split by note)")
    d.add_argument("--seed", type=int, default=0, help="seed of the split and the sampling (default 0)")
    d.add_argument("--out", help="folder to write to (default MATHRAG_HOME/finetune/data)")
    d.add_argument("--json", action="store_true", help="print the manifest as JSON")
    d.set_defaults(func=cmd_data)


def _add_lora(actions) -> None:
    """The ``finetune lora`` action: a preset, and a flag per setting that overrides it."""
    from finetune.presets import PRESETS, LoraRun

    lo = actions.add_parser("lora", help="LoRA fine-tuning of SmolLM2 on the data",
                            description="Train a LoRA adapter on the synthesised data. A preset sets every "
                                        "value; any flag below overrides it.")
    lo.add_argument("--preset", default="cpu-quick", choices=list(PRESETS), help="starting settings "
                    "(default cpu-quick: ten to twelve minutes on two CPU cores)")
    lo.add_argument("--name", default="notes", help="adapter name (default notes)")
    lo.add_argument("--overwrite", action="store_true", help="replace an adapter of that name")
    lo.add_argument("--resume", action="store_true", help="continue the run of that name from its last checkpoint")
    lo.add_argument("--train-file", help="training JSONL (default MATHRAG_HOME/finetune/data/train.jsonl)")
    lo.add_argument("--validation-file", help="validation JSONL (default .../validation.jsonl)")
    defaults = {f.name: f for f in fields(LoraRun)}
    for name, kind in LORA_FLAGS.items():
        lo.add_argument("--" + name.replace("_", "-"), type=kind, default=None,
                        help=f"override the preset's {name.replace('_', ' ')}" if name in defaults else None)
    lo.add_argument("--target-modules", help="comma-separated projections, e.g. q_proj,v_proj")
    lo.add_argument("--styles", help="prompt styles to train on: condensed,full")
    lo.add_argument("--gradient-checkpointing", action="store_true", help="trade compute for memory")
    lo.add_argument("--json", action="store_true", help="print the run card as JSON")
    lo.set_defaults(func=cmd_lora)


def _add_embed(actions) -> None:
    """The ``finetune embed`` action: fine-tune the embedder."""
    e = actions.add_parser("embed", help="fine-tune the MiniLM embedder on (question, chunk) pairs")
    e.add_argument("--name", default="notes", help="embedder name (default notes)")
    e.add_argument("--epochs", type=float, default=1.0)
    e.add_argument("--batch-size", type=int, default=32)
    e.add_argument("--learning-rate", type=float, default=2e-5)
    e.add_argument("--max-steps", type=int, default=-1, help="stop after this many steps (default: epochs)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--overwrite", action="store_true", help="replace an embedder of that name")
    e.add_argument("--json", action="store_true", help="print the run card as JSON")
    e.set_defaults(func=cmd_embed)


def _add_eval(actions) -> None:
    """The ``finetune eval`` action: before/after on the validation notes."""
    ev = actions.add_parser("eval", help="before/after on the validation notes (JSON + Markdown + PNG)")
    ev.add_argument("--adapter", help="a LoRA adapter to compare with the base model")
    ev.add_argument("--embedder", help="a fine-tuned embedder to compare with the base one")
    ev.add_argument("--limit", type=int, default=40, help="answer this many validation examples (0: all)")
    ev.add_argument("--styles", help="only these prompt styles, e.g. condensed")
    ev.add_argument("--max-new-tokens", type=int, default=160, help="answer length limit in tokens (default 160)")
    ev.add_argument("--json", action="store_true", help="print the summary as JSON")
    ev.set_defaults(func=cmd_eval)


def _add_merge(actions) -> None:
    """The ``finetune merge`` action: the base model with an adapter merged in."""
    m = actions.add_parser("merge", help="write the base model with an adapter merged into its weights")
    m.add_argument("name", help="the adapter")
    m.add_argument("--out", help="folder (default MATHRAG_HOME/models/smollm2-lora-NAME)")
    m.add_argument("--overwrite", action="store_true")
    m.set_defaults(func=cmd_merge)


def _add_list(actions) -> None:
    """The ``finetune list`` action: the trained adapters."""
    li = actions.add_parser("list", help="the trained adapters")
    li.add_argument("--json", action="store_true")
    li.set_defaults(func=cmd_list)


def register(sub) -> None:
    p = sub.add_parser("finetune", help="fine-tune on the notes: data, LoRA, embedder, before/after eval",
                       description="Synthesise grounded QA data from the notes, fine-tune the answering model "
                                   "with LoRA or the embedder, and measure before and after.")
    actions = p.add_subparsers(dest="finetune_command", metavar="ACTION", required=True)
    for add in (_add_data, _add_lora, _add_embed, _add_eval, _add_merge, _add_list):
        add(actions)
