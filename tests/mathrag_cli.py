"""Run the ``mathrag`` command inside the test process.

``run_mathrag(*args)`` calls :func:`mathrag.cli.main` with the arguments a user would type and returns what a
subprocess would: the exit status, stdout and stderr as text. The code path is the command's own, from argument
parsing to the last line printed; only the process boundary is left out, so the models the session has loaded
once (the embedder, SmolLM2) are reused instead of loaded again by every command (about 10 s each).

The console script itself (its entry point, Ctrl-C, a closed pipe, the MCP stdio server) is still run as a real
process in the tests that are about it.
"""

from __future__ import annotations

import contextlib
import gc
import io
import os
import subprocess
import sys


@contextlib.contextmanager
def _environment(env: dict[str, str] | None):
    """``env`` for the call (when given); whatever the command sets (``--corpus``) is undone after it."""
    saved = dict(os.environ)
    if env is not None:
        os.environ.clear()
        os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_mathrag(*args: str, env: dict[str, str] | None = None, stdin: str = "") -> subprocess.CompletedProcess:
    """``mathrag ARGS`` in this process -> CompletedProcess(args, returncode, stdout, stderr); ``env`` replaces the
    environment for the call, as ``subprocess.run(env=...)`` would."""
    from mathrag.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved_stdin = sys.stdin
    sys.stdin = io.StringIO(stdin)
    # The test process holds millions of objects a real `mathrag` process has not; frozen, the garbage collector
    # skips them, so a command that allocates much (BPE training in pure Python) runs at its own speed.
    gc.freeze()
    try:
        with _environment(env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse's --help, --version and usage errors
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
                if isinstance(exc.code, str):
                    print(exc.code, file=sys.stderr)
    finally:
        sys.stdin = saved_stdin
        gc.unfreeze()
    return subprocess.CompletedProcess(["mathrag", *args], code or 0, out.getvalue(), err.getvalue())
