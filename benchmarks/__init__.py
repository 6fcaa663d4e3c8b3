"""asv benchmarks of sysdl, one module per kernel family (see README, "Tracking speedups")."""

import os

# As in models/cli.py: keep numpy's idle OpenBLAS threads from spinning against Numba's.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
