"""Run the ``mathrag`` command with a pause before each new version is published: a fault-injection harness.

    python -m reliability.pause_publish SECONDS index

A versioned store (``rag.artifacts.VersionedStore``) writes a version into a ``.partial``
folder, syncs it, and publishes it by renaming the folder. This harness wraps ``os.replace`` in
the process so that renaming a ``.partial`` folder first waits ``SECONDS``: the version is then
complete on disk and not yet published, the worst moment for a ``kill -9``. The product itself
carries no hook for it.
"""

import os
import runpy
import sys
import time

_replace = os.replace


def _paused_replace(src, dst, *args, **kwargs):
    if str(src).endswith(".partial") and os.path.isdir(src):
        time.sleep(PAUSE)
    return _replace(src, dst, *args, **kwargs)


if __name__ == "__main__":
    PAUSE = float(sys.argv[1])
    os.replace = _paused_replace
    sys.argv = ["mathrag", *sys.argv[2:]]
    runpy.run_module("mathrag", run_name="__main__")
