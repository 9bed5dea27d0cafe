"""``python -m tools.bench ...``: the benchmark (see :mod:`tools.bench`)."""
import sys

from tools.bench.cli import main

sys.exit(main())
