"""asv benchmarks of sysdl, one module per kernel family (see README, "Tracking speedups")."""
