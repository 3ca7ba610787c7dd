"""``python -m mathrag ...`` runs the ``mathrag`` command."""

import sys

from mathrag.cli import main

sys.exit(main())
