"""Tests of models/scratch."""
