"""Parameter-server training (models/distributed/parameter_server.py) against single-process SGD
in float64 for several (p servers, w workers), in one spawned gloo job of 5 ranks; the shards and
shares it cuts; and a killed worker (or, slow, server) ending the others with a named error in
bounded time. The rank functions are module-level so spawn can pickle them."""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import tempfile
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils import parameters_to_vector

from models.data.datasets import synthetic_splits
from models.distributed.launch import _init, launch
from models.distributed.parameter_server import (ParameterServerError, PSJob, build_model, each_point,
                                                 global_batch, shard_bounds)

SMALL_CNN = {"conv1_channels": 3, "conv2_channels": 4, "hidden_units": 12}
# 14 examples: 3 workers get shares of 5, 5 and 4 (uneven on purpose); 2 steps so momentum counts
JOB = PSJob(model="fashion-cnn", model_config=SMALL_CNN, dataset="synthetic", global_batch=14, steps=2,
            warmup=0, lr=0.1, momentum=0.9, weight_decay=5e-4, dtype="float64", timeout=30.0)
SYNC_POINTS = [("sync", 1, 1), ("sync", 2, 2), ("sync", 2, 3), ("sync", 4, 1)]
ASYNC_POINTS = [("async", 2, 1), ("async", 2, 3)]   # 2 x 3: workers meet the servers in any order


def sgd_reference(job: PSJob, data, steps: int) -> torch.Tensor:
    """torch.optim.SGD in one process on the same global batches."""
    model = build_model(job)
    optimizer = torch.optim.SGD(model.parameters(), lr=job.lr, momentum=job.momentum,
                                weight_decay=job.weight_decay)
    for step in range(steps):
        chosen = global_batch(step, len(data.y), job.global_batch, job.seed)
        optimizer.zero_grad()
        F.cross_entropy(model(data.x[chosen].double()), data.y[chosen]).backward()
        optimizer.step()
    return parameters_to_vector(model.parameters()).detach()


def _every_point(rank: int, world: int, job: PSJob, points, data) -> list:
    return [(point.mode, point.servers, point.workers, point.result) for point in each_point(job, points, data)]


@pytest.fixture(scope="module")
def ran():
    """Every point of SYNC_POINTS and ASYNC_POINTS, each rank's results, from one 5-rank job."""
    data = synthetic_splits(n_train=64, n_test=1).train
    results = launch(_every_point, 5, (JOB, SYNC_POINTS + ASYNC_POINTS, data), backend="gloo", threads=1)
    return data, results


def results_of(results, mode, servers, workers):
    found = [entry[3] for rank_results in results for entry in rank_results
             if entry[:3] == (mode, servers, workers) and entry[3] is not None]
    assert len(found) == servers + workers
    return [r for r in found if r.role == "server"], [r for r in found if r.role == "worker"]


@pytest.mark.parametrize("mode, servers, workers", SYNC_POINTS + [("async", 2, 1)])
def test_synchronous_steps_give_single_process_sgd(ran, mode, servers, workers):
    from tests.oracle import assert_close         # here: spawned ranks import this module, not hypothesis
    data, results = ran
    expected = sgd_reference(JOB, data, JOB.warmup + JOB.steps)
    server_results, worker_results = results_of(results, mode, servers, workers)
    shards = torch.cat([r.parameters for r in sorted(server_results, key=lambda r: r.index)])
    where = f"{mode} p={servers} w={workers}"
    assert_close(shards, expected, what=f"{where}: the servers' shards")
    for worker in worker_results:
        assert_close(worker.parameters, expected, what=f"{where}: worker {worker.index}'s parameters")
    initial = parameters_to_vector(build_model(JOB).parameters()).detach()
    assert (expected - initial).abs().max() > 1e-3             # the steps moved the parameters


def test_asynchronous_servers_apply_every_push(ran):
    _, results = ran
    server_results, worker_results = results_of(results, "async", 2, 3)
    total = JOB.warmup + JOB.steps
    assert [s.updates for s in server_results] == [3 * total] * 2
    assert all(w.updates == total for w in worker_results)
    assert all(torch.isfinite(s.parameters).all() for s in server_results)


def test_times_are_recorded_for_every_timed_step(ran):
    _, results = ran
    server_results, worker_results = results_of(results, "sync", 2, 3)
    for result in server_results + worker_results:
        assert result.times.shape == (JOB.steps, 3) and (result.times >= 0).all()
        assert result.times.sum() > 0


def test_shards_are_balanced_by_size():
    for parameters in (1, 7, 1000, 12_345):
        for servers in (1, 2, 3, 4):
            bounds = shard_bounds(parameters, servers)
            sizes = [b - a for a, b in zip(bounds, bounds[1:])]
            assert bounds[0] == 0 and bounds[-1] == parameters and max(sizes) - min(sizes) <= 1


def test_a_batch_too_small_for_the_workers_is_refused():
    from models.distributed.parameter_server import check_point
    with pytest.raises(ValueError, match="--global-batch >= 4"):
        check_point(1, 4, PSJob(global_batch=3))


# ---- a rank that dies -------------------------------------------------------------------------

def _doomed_rank(rank: int, world: int, servers: int, init_file: str, events, job: PSJob) -> None:
    from dataclasses import replace
    torch.set_num_threads(1)
    _init(rank, world, "gloo", f"file://{init_file}", 60.0)
    data = synthetic_splits(n_train=64, n_test=1).train
    point = [("sync", servers, world - servers)]
    for _ in each_point(replace(job, steps=1), point, data):
        pass                                        # all ranks up and talking (the job's 30 s waits)
    events.put(("ready", rank, ""))
    started = time.monotonic()
    try:
        for _ in each_point(replace(job, steps=10**6, timeout=3.0), point, data):
            pass
    except ParameterServerError as error:
        events.put(("failed", rank, f"{time.monotonic() - started:.1f}|{error}"))
    events.close()
    events.join_thread()                            # the queue's feeder thread flushes first
    os._exit(0)                                     # skip destroy_process_group: a peer is gone


@pytest.mark.parametrize("victim, role", [(2, "worker 1"),                 # the server, then worker 0, stop
                                          pytest.param(0, "server 0", marks=pytest.mark.slow)])
def test_a_killed_rank_makes_the_others_fail_naming_it(victim, role):
    world, servers, timeout = 3, 1, 3.0
    context = multiprocessing.get_context("spawn")
    events = context.Queue()
    with tempfile.TemporaryDirectory() as scratch:
        init_file = str(Path(scratch) / "store")
        ranks = [context.Process(target=_doomed_rank, args=(rank, world, servers, init_file, events, JOB))
                 for rank in range(world)]
        for process in ranks:
            process.start()
        try:
            ready = {events.get(timeout=90)[1] for _ in range(world)}
            assert ready == set(range(world))
            time.sleep(0.3)                         # well inside the loop of steps
            os.kill(ranks[victim].pid, signal.SIGKILL)
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
            for process in ranks:
                process.join(timeout=10)
                if process.is_alive():
                    process.kill()
    assert set(failures) == set(range(world)) - {victim}
    assert elapsed < timeout * 4 + 10
    for text in failures.values():
        assert "parameter server job:" in text and "within 3 s" in text
    assert any(role in text for text in failures.values())      # someone names the dead rank
