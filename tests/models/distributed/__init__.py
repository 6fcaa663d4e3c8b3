"""Tests of models/distributed."""
