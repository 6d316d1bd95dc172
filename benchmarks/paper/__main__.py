"""``python -m benchmarks.paper OUT``: see :mod:`benchmarks.paper`."""

import sys

from benchmarks.paper import main

sys.exit(main())
