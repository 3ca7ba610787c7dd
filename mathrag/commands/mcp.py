"""``mathrag mcp``: serve the notes to an MCP client over stdio (see :mod:`app.mcp_server`).

An MCP client starts this command itself; configure it with, for example::

    {"mcpServers": {"mathrag": {"command": "/path/to/mathrag/.venv/bin/mathrag", "args": ["mcp"]}}}
"""

from __future__ import annotations

import argparse


def cmd_mcp(args: argparse.Namespace) -> int:
    from app.mcp_server import build_server

    build_server().run(transport="stdio")
    return 0


def register(sub) -> None:
    p = sub.add_parser("mcp", help="serve the notes to an MCP client (search, ask, learning path, read) over stdio",
                       description="Speak MCP on stdin/stdout: tools search_notes, ask, learning_path, read_note. "
                                   "An MCP client starts this command; nothing listens on the network.")
    p.set_defaults(func=cmd_mcp)
