"""Tests of models/analysis."""
