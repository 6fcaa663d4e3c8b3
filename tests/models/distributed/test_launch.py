"""models.distributed.launch under torchrun's environment when MASTER_ADDR:MASTER_PORT is wrong:
a port where a plain TCP server listens, and a port already taken. Each must end, within the
timeout, with one UserError naming the address; no process group is left behind."""

from __future__ import annotations

import socket
import threading

import pytest
import torch
import torch.distributed as dist

from models.distributed.launch import launch
from models.shared.errors import UserError

BOUND = 30.0        # s; a test waits at most this long for launch to give up


def _never_called(rank: int, world: int) -> None:
    raise AssertionError("the rank function must not run without a process group")


@pytest.fixture
def plain_server():
    """A TCP port that accepts connections and never answers: not a torch.distributed store."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def torchrun_env(monkeypatch, rank: int, port: int, agent_store: bool) -> None:
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(port))
    if agent_store:                 # torchrun's agent runs the store: rank 0 is a client too
        monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "True")
    else:
        monkeypatch.delenv("TORCHELASTIC_USE_AGENT_STORE", raising=False)


def launch_bounded(timeout: float) -> BaseException | None:
    """launch() in a thread, waited for at most BOUND seconds; what it raised."""
    outcome = {}

    def run():
        try:
            launch(_never_called, 2, backend="gloo", timeout=timeout, threads=torch.get_num_threads())
        except BaseException as err:      # noqa: BLE001 - handed to the test to judge
            outcome["error"] = err

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(BOUND)
    assert not thread.is_alive(), f"launch still waiting after {BOUND:g} s (its timeout: {timeout:g} s)"
    return outcome.get("error")


@pytest.mark.parametrize("rank, agent_store", [(1, False), (0, True)])
def test_a_port_that_is_not_a_store_ends_in_one_error_naming_it(monkeypatch, plain_server, rank, agent_store):
    torchrun_env(monkeypatch, rank, plain_server, agent_store)
    error = launch_bounded(timeout=3.0)
    assert isinstance(error, UserError), repr(error)
    text = str(error)
    assert f"127.0.0.1:{plain_server}" in text and "MASTER_PORT" in text and "\n" not in text
    assert "not a torch.distributed store" in text
    assert not dist.is_initialized()


def test_rank_0_on_a_taken_port_says_so(monkeypatch, plain_server):
    torchrun_env(monkeypatch, 0, plain_server, agent_store=False)    # rank 0 would start the store there
    error = launch_bounded(timeout=3.0)
    assert isinstance(error, UserError), repr(error)
    assert f"127.0.0.1:{plain_server}" in str(error) and "in use" in str(error)
    assert not dist.is_initialized()
