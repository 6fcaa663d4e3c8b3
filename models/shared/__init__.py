"""What every room may use: artifact paths, command-line helpers (shared flags, user errors), figures and tables.

Imports nothing else of models/."""
