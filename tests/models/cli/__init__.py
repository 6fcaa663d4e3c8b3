"""Tests of models/cli."""
