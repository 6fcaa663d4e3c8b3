"""Reports from finished jobs: the pruning and sweep reports, the benchmark tables (`sysdl bench-table`)."""
