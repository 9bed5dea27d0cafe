"""``python tools/benchmark.py ...``: the benchmark, kept at its documented path; the code is the
package :mod:`tools.bench` (also ``python -m tools.bench``)."""
import sys

from tools.bench import LiveTensorMemory, count_flops, main

__all__ = ["LiveTensorMemory", "count_flops", "main"]

if __name__ == "__main__":
    sys.exit(main())
