"""asv benchmarks of sysdl, one module per kernel family (see README, "Tracking speedups")."""

from sysdl_kernels.runtime import set_process_environment

# Before the benchmark modules import numpy, as `sysdl` does: see set_process_environment.
set_process_environment()
