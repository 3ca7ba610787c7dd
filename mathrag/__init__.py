"""The ``mathrag`` command: the top of the house.

Every subcommand lives in :mod:`mathrag.commands`, one module per command, and
imports the layer it drives directly (``rag``, ``graphrag``, ``finetune``,
``app``, ``from_scratch``, and the measurement packages ``bench`` and
``reliability``). Nothing in the product imports this package.

    mathrag ask "What is the derivative of tanh?"
    python -m mathrag notes --check
"""

from rag import __version__

__all__ = ["__version__"]
