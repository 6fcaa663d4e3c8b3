"""Tests of sysdl_kernels/."""
