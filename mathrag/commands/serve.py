"""``mathrag serve``: only the OpenAI-compatible API over the notes (see :mod:`app.openai_api`).

``mathrag chat`` serves the same API under ``/v1`` next to the app; this command serves it alone, for a chat client
or another tool, with no browser interface::

    mathrag serve                      # http://127.0.0.1:8000/v1, this machine only
    mathrag serve --host 0.0.0.0 --api-key "$KEY"    # other machines too, each request with the key
"""

from __future__ import annotations

import argparse
import ipaddress

from mathrag.commands.options import API_KEY_ENV, add_address


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_serve(args: argparse.Namespace) -> int:
    if not is_loopback(args.host) and not args.api_key:
        raise ValueError(f"serving on {args.host} answers other machines: give --api-key (or set ${API_KEY_ENV})")
    if not 0 < args.port < 65536:
        raise ValueError(f"port must be from 1 to 65535, not {args.port}")
    from app.server import serve_api

    print("mathrag: loading the index and the models...", flush=True)
    serve_api(host=args.host, port=args.port, api_key=args.api_key, concurrency=args.concurrency)
    return 0


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve the notes as an OpenAI-compatible API (127.0.0.1:8000/v1)",
                       description="Serve POST /v1/chat/completions and GET /v1/models: model 'mathrag' answers "
                                   "from the notes with citations; each local language model is served by name.")
    add_address(p, 8000)
    p.add_argument("--concurrency", type=int, default=2, help="answers computed at the same time (default 2)")
    p.set_defaults(func=cmd_serve)
