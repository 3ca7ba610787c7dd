"""Options several commands share, written once: ``--json``, ``--k``, ``--mode``."""

from __future__ import annotations

import argparse

from mathrag.retrievers import ALL_MODES


def add_json(p: argparse.ArgumentParser, what: str = "the result") -> None:
    p.add_argument("--json", action="store_true", help=f"print {what} as JSON")


def add_search(p: argparse.ArgumentParser, k_help: str) -> None:
    """``--k`` and ``--mode``, as ``search`` and ``ask`` take them."""
    p.add_argument("--k", type=int, default=5, help=f"{k_help} (default 5)")
    p.add_argument("--mode", default="hybrid", choices=ALL_MODES, help="retrieval mode (default hybrid)")
