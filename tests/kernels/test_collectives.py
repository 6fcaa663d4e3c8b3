"""All-reduce strategies against dist.all_reduce (gloo, 2 / 3 / 4 spawned processes), the DDP
comm hooks against DDP's default hook, clear errors for bad input, and a bounded, named failure
when a rank dies mid-collective. The rank functions are module-level so spawn can pickle them."""

from __future__ import annotations

import math
import multiprocessing
import os
import queue
import signal
import tempfile
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from models.distributed.launch import _init, launch
from sysdl_kernels.collectives import (STRATEGIES, CollectiveError, all_reduce, block_bounds,
                                       busbw, cost_terms, register_comm_hook)

LENGTHS = (0, 1, 7, 1000, 2**20 + 3)
TOLERANCE = {torch.float32: {"rtol": 1e-5, "atol": 1e-5},   # sums of n normals, any order
             torch.float64: {"rtol": 1e-12, "atol": 1e-12}}


def _variants():
    """(strategy, group_size): hierarchical with groups of 2 and of 3 ranks."""
    for strategy in STRATEGIES:
        for group_size in ((2, 3) if strategy == "hierarchical" else (2,)):
            yield strategy, group_size


def _compare_every_strategy(rank: int, world: int) -> int:
    checked = 0
    for strategy, group_size in _variants():
        for dtype in (torch.float32, torch.float64):
            for op in ("sum", "avg"):
                for length in LENGTHS:
                    generator = torch.Generator().manual_seed(7919 * rank + length)
                    tensor = torch.randn(length, dtype=dtype, generator=generator)
                    expected = tensor.clone()
                    dist.all_reduce(expected)
                    if op == "avg":
                        expected /= world
                    address = tensor.data_ptr()
                    result = all_reduce(tensor, strategy, op, group_size=group_size)
                    where = f"{strategy} (groups of {group_size}) {op} {dtype} length {length}, rank {rank}"
                    assert result is tensor and tensor.data_ptr() == address, f"{where}: not in place"
                    torch.testing.assert_close(tensor, expected, **TOLERANCE[dtype], msg=where)
                    everyone = [torch.empty_like(tensor) for _ in range(world)]
                    dist.all_gather(everyone, tensor)
                    assert all(torch.equal(other, tensor) for other in everyone), \
                        f"{where}: ranks ended with different bits"
                    checked += 1
    # a 2-D tensor reduces as its flat view
    matrix = torch.full((3, 5), float(rank + 1))
    all_reduce(matrix, "rabenseifner")
    assert torch.equal(matrix, torch.full((3, 5), world * (world + 1) / 2))
    return checked


@pytest.mark.parametrize("world", [2, 3, 4])
def test_every_strategy_matches_dist_all_reduce(world):
    counts = launch(_compare_every_strategy, world, backend="gloo")
    per_rank = (len(list(_variants()))) * 2 * 2 * len(LENGTHS)
    assert counts == [per_rank] * world


def _chunked_ring(rank: int, world: int) -> None:
    for length in (0, 5, 1001, 2**16 + 9):
        tensor = torch.arange(length, dtype=torch.float64) * (rank + 1)
        all_reduce(tensor, "ring", chunk_bytes=512)
        assert torch.equal(tensor, torch.arange(length, dtype=torch.float64) * world * (world + 1) / 2)


def test_ring_with_pieces_in_flight():
    launch(_chunked_ring, 3, backend="gloo")


def _bad_inputs(rank: int, world: int) -> dict:
    seen = {}
    cases = {
        "non-contiguous": lambda: torch.zeros(4, 6)[:, ::2] if rank == 1 else torch.zeros(4, 3),
        "shape": lambda: torch.zeros(10 + rank),
        "device": lambda: torch.zeros(8, device="meta") if rank == 0 else torch.zeros(8),
        "dtype": lambda: torch.zeros(8, dtype=torch.int64),
    }
    for name, make in cases.items():
        with pytest.raises(ValueError) as caught:
            all_reduce(make(), "ring")
        seen[name] = str(caught.value)
    with pytest.raises(ValueError, match="unknown all-reduce strategy"):
        all_reduce(torch.zeros(3), "butterfly")
    return seen


def test_bad_input_is_refused_on_every_rank():
    messages = launch(_bad_inputs, 2, backend="gloo")
    for seen in messages:                     # both ranks raise, and say who and what
        assert "rank 1: the tensor is not contiguous" in seen["non-contiguous"]
        assert "disagree" in seen["shape"] and "10 elements" in seen["shape"] and "11 elements" in seen["shape"]
        assert "rank 0: the tensor is on the wrong device" in seen["device"]
        assert "dtype" in seen["dtype"]
    assert "meta" in messages[0]["device"] and "gloo backend needs cpu" in messages[0]["device"]


def _train(model, inputs, targets, steps: int):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for step in range(steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(inputs[step]), targets[step])
        loss.backward()
        optimizer.step()
    module = getattr(model, "module", model)
    return [parameter.detach().clone() for parameter in module.parameters()]


def _ddp_hooks(rank: int, world: int) -> list[str]:
    from torch.nn.parallel import DistributedDataParallel
    steps = 6
    generator = torch.Generator().manual_seed(100 + rank)     # every rank its own data
    inputs = torch.randn(steps, 16, 1, 9, 7, generator=generator)
    targets = torch.randint(0, 5, (steps, 16), generator=generator)

    def fresh():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Conv2d(1, 6, (3, 2)), torch.nn.ReLU(), torch.nn.Flatten(),
                                   torch.nn.Linear(6 * 7 * 6, 13), torch.nn.ReLU(), torch.nn.Linear(13, 5))

    reference = _train(DistributedDataParallel(fresh(), bucket_cap_mb=0.002), inputs, targets, steps)
    checked = []
    for strategy, group_size in _variants():
        model = DistributedDataParallel(fresh(), bucket_cap_mb=0.002)   # several buckets
        register_comm_hook(model, strategy, group_size=group_size)
        trained = _train(model, inputs, targets, steps)
        for got, want in zip(trained, reference):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6, msg=f"DDP with {strategy}")
        checked.append(strategy)
    return checked


def test_ddp_comm_hooks_train_like_the_default_hook():
    results = launch(_ddp_hooks, 3, backend="gloo")
    assert results[0] == [strategy for strategy, _ in _variants()]


def _doomed_rank(rank: int, world: int, init_file: str, events, timeout: float) -> None:
    torch.set_num_threads(1)
    _init(rank, world, "gloo", f"file://{init_file}", 60.0)
    tensor = torch.ones(2**18)
    all_reduce(tensor, "ring")                      # all ranks up and talking
    events.put(("ready", rank, ""))
    started = time.monotonic()
    try:
        while True:
            all_reduce(tensor.fill_(1.0), "ring", timeout=timeout, check=False)
    except CollectiveError as error:
        events.put(("failed", rank, f"{time.monotonic() - started:.1f}|{error}"))
    events.close()
    events.join_thread()                            # the queue's feeder thread flushes first
    os._exit(0)                                     # skip destroy_process_group: a peer is gone


@pytest.mark.parametrize("fault", [signal.SIGKILL, signal.SIGSTOP], ids=["dies", "hangs"])
def test_a_dead_or_hung_rank_makes_the_others_fail_naming_the_collective(fault):
    world, victim, timeout = 4, 2, 3.0
    context = multiprocessing.get_context("spawn")
    events = context.Queue()
    with tempfile.TemporaryDirectory() as scratch:
        init_file = str(Path(scratch) / "store")
        ranks = [context.Process(target=_doomed_rank, args=(rank, world, init_file, events, timeout))
                 for rank in range(world)]
        for process in ranks:
            process.start()
        try:
            ready = {events.get(timeout=60)[1] for _ in range(world)}
            assert ready == set(range(world))
            time.sleep(0.3)                         # well inside the loop of collectives
            os.kill(ranks[victim].pid, fault)
            killed_at = time.monotonic()
            failures = {}
            while len(failures) < world - 1:
                kind, rank, text = events.get(timeout=timeout * 4 + 10)
                if kind == "failed":
                    failures[rank] = text
            elapsed = time.monotonic() - killed_at
        except queue.Empty:
            pytest.fail("the surviving ranks did not report a failure in bounded time")
        finally:
            ranks[victim].kill()
            for process in ranks:
                process.join(timeout=10)
                if process.is_alive():
                    process.kill()
    assert set(failures) == set(range(world)) - {victim}
    assert elapsed < timeout * 4 + 10
    if fault == signal.SIGSTOP:                    # nobody hears a reset: the bounded wait fires
        assert elapsed >= timeout * 0.9
    for text in failures.values():
        assert "ring all-reduce: rank" in text and "within 3 s" in text


def test_block_bounds_cover_every_element_once():
    for length in (0, 1, 7, 1000, 2**20 + 3):
        for blocks in (1, 2, 3, 4, 7):
            bounds = block_bounds(length, blocks)
            sizes = [b - a for a, b in zip(bounds, bounds[1:])]
            assert bounds[0] == 0 and bounds[-1] == length and max(sizes) - min(sizes) <= 1


def test_cost_terms_follow_the_textbook_formulas():
    m = 1 << 20
    assert cost_terms("ring", 4, m) == (6, 1.5 * m)
    assert cost_terms("recursive_doubling", 4, m) == (2, 2 * m)
    assert cost_terms("recursive_doubling", 3, m) == (3, 3 * m)          # fold in + 1 round + fold out
    assert cost_terms("rabenseifner", 8, m) == (6, 1.75 * m)
    assert cost_terms("reduce_broadcast", 4, m) == (6, 6 * m)
    assert busbw(m, 1.0, 4) == pytest.approx(1.5 * m)
    assert math.isclose(busbw(m, 2.0, 2), m / 2)
