"""Tests of models.gpu: the GPU room's commands."""
