"""Tests of models/pruning."""
