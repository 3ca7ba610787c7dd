"""Options several commands share, written once: ``--json``, ``--k``, ``--mode``, a model's length and temperature,
where a server listens and the key its API asks for."""

from __future__ import annotations

import argparse
import os

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


API_KEY_ENV = "MATHRAG_API_KEY"


def add_address(p: argparse.ArgumentParser, port: int) -> None:
    """``--host`` (default 127.0.0.1: this machine only) and ``--port``, as ``chat`` and ``serve`` take them."""
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=port, help=f"port (default {port})")
    p.add_argument("--api-key", default=os.environ.get(API_KEY_ENV) or None,
                   help=f"what every /v1 request must carry as 'Authorization: Bearer KEY' (default: ${API_KEY_ENV}; "
                        "without a key, /v1 answers this machine only)")
