"""`python -m pipeline.store`: the store command line (see pipeline/store/cli.py)."""

import sys

from .cli import main

sys.exit(main())
