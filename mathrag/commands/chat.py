"""``mathrag chat``: serve the Gradio app, and the OpenAI-compatible API under ``/v1`` on the same port (gradio is
imported only when it runs)."""

from __future__ import annotations

import argparse

from mathrag.commands.options import add_address


def serve(args: argparse.Namespace) -> int:
    from app.server import launch

    launch(host=args.host, port=args.port, share=args.share, queue_size=args.queue_size,
           concurrency=args.concurrency, watch=args.watch, block=True, api_key=args.api_key)
    return 0


def register(sub) -> None:
    p = sub.add_parser("chat", help="serve the chat app in your browser (Gradio, 127.0.0.1:7860)",
                       description="Serve the Gradio chat over the notes. Binds to 127.0.0.1 unless told "
                                   "otherwise; a public share link only with --share.")
    add_address(p, 7860)
    p.add_argument("--share", action="store_true", help="also open a temporary public gradio.live link")
    p.add_argument("--queue-size", type=int, default=32, help="requests that may wait; beyond it users are told "
                                                              "the app is busy (default 32)")
    p.add_argument("--concurrency", type=int, default=2, help="answers computed at the same time (default 2)")
    p.add_argument("--watch", type=float, default=5.0, metavar="SECONDS",
                   help="look for edited notes this often and update the index while serving (0: never; "
                        "default 5)")
    p.set_defaults(func=serve)
