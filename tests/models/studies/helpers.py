"""Shared by the study tests: their arguments parsed as `sysdl study` parses them, and a fixture
that runs a test module on one torch thread (the machine is shared)."""

from __future__ import annotations

import argparse

import pytest
import torch

from models import studies

QUICK = ["--quick", "--threads", "1"]     # one thread: the networks are tiny and the machine shared


def study_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    studies.add_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.fixture
def one_thread():
    """One torch thread, restored afterwards: the setting is process-wide."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
