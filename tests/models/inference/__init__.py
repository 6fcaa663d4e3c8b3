"""Tests of models.inference: the inference benchmark."""
