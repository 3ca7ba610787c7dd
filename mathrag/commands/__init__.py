"""The subcommands of ``mathrag``, one module each.

Each module has ``register(sub)``, which adds its parser to the subcommands
``sub`` and points ``func`` at the function that runs it. Modules import their
heavy libraries inside those functions, so ``mathrag --help`` stays fast.
"""
