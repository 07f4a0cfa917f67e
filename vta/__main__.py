"""``python -m vta`` is the `vta` command."""

import sys

from .cli import main

sys.exit(main())
