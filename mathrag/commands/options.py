"""Options several commands share, written once: ``--json``, ``--k``, ``--mode``, a model's length and temperature."""

from __future__ import annotations

import argparse

from mathrag.retrievers import ALL_MODES


def add_json(p: argparse.ArgumentParser, what: str = "the result") -> None:
    p.add_argument("--json", action="store_true", help=f"print {what} as JSON")


def add_generation(p: argparse.ArgumentParser) -> None:
    """``--max-new-tokens`` and ``--temperature``, for a model generator, as ``ask`` and ``eval`` take them."""
    p.add_argument("--max-new-tokens", type=int, default=256, help="answer length limit in tokens (default 256)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 for greedy decoding (default)")


def add_search(p: argparse.ArgumentParser, k_help: str) -> None:
    """``--k`` and ``--mode``, as ``search`` and ``ask`` take them."""
    p.add_argument("--k", type=int, default=5, help=f"{k_help} (default 5)")
    p.add_argument("--mode", default="hybrid", choices=ALL_MODES, help="retrieval mode (default hybrid)")
