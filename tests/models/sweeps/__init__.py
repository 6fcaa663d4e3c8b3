"""Tests of models/sweeps."""
