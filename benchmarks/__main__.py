"""``python -m benchmarks``: see :mod:`benchmarks.commands.cli`."""

import sys

from benchmarks.commands.cli import main

sys.exit(main())
