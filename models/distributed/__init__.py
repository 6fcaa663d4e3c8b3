"""Distributed jobs on torch.distributed: process launching, the all-reduce benchmark, data-parallel scaling."""
