"""``python -m solvent`` is the ``solvent`` command."""

import sys

from solvent.cli import main

sys.exit(main())
