"""``python -m app`` serves the chat, like ``mathrag chat``."""

import sys

from rag.cli import main

sys.exit(main(["chat", *sys.argv[1:]]))
