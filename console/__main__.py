"""``python -m console`` is the ``childsafe`` command."""

import sys

from console.cli import main

sys.exit(main())
