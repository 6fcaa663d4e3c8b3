"""Tests of models/data."""
