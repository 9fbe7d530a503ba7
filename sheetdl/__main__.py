"""``python -m sheetdl``: the command line, for when the ``sheetdl`` script is not on PATH."""
import sys

from .cli import main

sys.exit(main())
