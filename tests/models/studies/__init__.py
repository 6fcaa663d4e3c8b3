"""Tests of models/studies."""
