"""Tests of models/reports."""
