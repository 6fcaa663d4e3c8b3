"""Pruning: iterative structured pruning with retraining (`sysdl prune`), resumable sessions."""
