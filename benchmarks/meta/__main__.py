import sys

from benchmarks.meta.write import main

sys.exit(main())
