"""Analytic models: per-layer cost tables (analyze), PALEO-style time prediction, the Optimus models."""
