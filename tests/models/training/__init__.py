"""Tests of models/training."""
