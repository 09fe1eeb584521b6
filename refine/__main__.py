"""Entry point for ``python -m refine``."""

import sys

from refine.cli import main

sys.exit(main())
