"""Training: the loop, checkpoints, MLflow tracking, provenance, resumable runs keyed by a
configuration hash (shared by the sweeps and the studies), and the `sysdl train` and
`sysdl bench-train` commands."""
