"""Tests of models/nets."""
