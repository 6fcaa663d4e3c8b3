"""Hyperparameter sweeps of the Fashion-MNIST CNN (`sysdl sweep`): grids as data, resumable MLflow runs."""
