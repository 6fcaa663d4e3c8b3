"""Parameter-server training on torch.distributed point-to-point messages (gloo): p server
processes hold the parameters in shards and apply the optimizer; w worker processes compute
gradients on their share of each global batch, push them to the servers and pull the new shards.

    for point in each_point(job, [("sync", 2, 3)]):     # on every rank of a launch()ed job
        ...                                             # point.result: this rank's timings
    sysdl ps-bench --servers 1 2 --workers 1 2 3        # the benchmark built on it (ps_bench.py)

Roles, by rank in the point's process group of p + w ranks: ranks 0 .. p-1 are servers,
p .. p+w-1 workers. The flat parameter vector (model.parameters() in order) is cut into p
contiguous shards of near-equal size (``shard_bounds``: they differ by at most one element);
server s owns shard s and runs torch.optim.SGD on it (SGD is elementwise, so a shard's update is
the same arithmetic as the whole model's). The global batch of M examples (``global_batch``) is
cut into w near-equal shares, one per worker.

One synchronous step (the default; what Optimus models):
    worker j   compute   forward + backward on its m_j examples (mean loss), gradient x m_j / M
               push      send shard s of that gradient to server s, for every s
               pull      receive every server's updated shard; the model takes the new vector
    server s   wait      receive the w gradient shards, add them in worker order: the gradient
                         of the mean loss over all M examples
               update    optimizer.step() on the shard
               send      the shard to every worker
so one synchronous step with any p and w gives single-process SGD's parameters on the same
global batch, to rounding (tests/models/distributed/test_parameter_server.py, float64).

Asynchronous (mode "async"): each server applies every gradient shard as it arrives (its
worker's mean-loss gradient, unscaled: one SGD step per push) and answers that worker alone at
once; workers never wait for one another. With one worker it is the synchronous step again.

Before the first step every worker pulls the servers' shards, so all start from the servers'
parameters. Buffers (batch-norm statistics) stay on each worker, as in data parallelism without
SyncBatchNorm; the equivalence holds for networks without batch norm (the Fashion CNN).

Failure handling: every wait is bounded by ``job.timeout`` seconds and a peer that died, hung or
disagrees raises ParameterServerError naming this rank's role, the peer's and the step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from typing import TYPE_CHECKING

from sysdl_kernels.collectives import block_bounds, wait_bounded

if TYPE_CHECKING:
    import torch

MODES = ("sync", "async")
MODELS = ("fashion-cnn", "resnet18", "resnet50", "tiny")     # the Fashion CNN; fashion_resnet's
GRADIENT_TAG, PARAMETER_TAG = 1, 2                          # message tags: pushes, pulls
WORKER_TIMES = ("compute_s", "push_s", "pull_s")            # seconds per step, each worker
SERVER_TIMES = ("wait_s", "update_s", "send_s")             # seconds per step, each server


class ParameterServerError(RuntimeError):
    """A parameter-server step could not complete: a peer died, hung or the transport failed."""


@dataclass(frozen=True)
class PSJob:
    """Everything that defines a parameter-server training run but p, w (the grid's)."""
    model: str = "fashion-cnn"       # MODELS: the Fashion CNN, or a ResNet of `sysdl scaling`
    dataset: str = "fashion-mnist"   # "fashion-mnist" or "synthetic"
    data_dir: str | None = None      # Fashion-MNIST's directory (None: the usual places)
    global_batch: int = 128          # M, examples per synchronous step, all workers together
    steps: int = 10                  # timed steps
    warmup: int = 2                  # untimed steps first
    mode: str = "sync"               # MODES
    lr: float = 0.05                 # SGD learning rate (constant)
    momentum: float = 0.9            # SGD momentum (heavy ball)
    weight_decay: float = 5e-4       # L2 penalty, applied by the servers' optimizer
    dtype: str = "float32"           # "float32" or "float64" (the equivalence test's)
    seed: int = 0                    # initial weights and the batches' order
    timeout: float = 60.0            # s: the longest wait for one message from a peer
    model_config: dict | None = field(default=None, hash=False)   # FashionCNNConfig fields

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")

    def settings(self) -> dict:
        """The fields that make two measurements comparable (all but the mode, a grid axis)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "mode"}


@dataclass
class PointResult:
    """One rank's part of a (mode, p, w) run."""
    role: str                        # "server" or "worker"
    index: int                       # server s or worker j
    times: "torch.Tensor"            # (steps, 3) seconds: WORKER_TIMES or SERVER_TIMES columns
    parameters: "torch.Tensor"       # worker: the whole flat vector; server: its shard
    updates: int                     # server: gradient shards applied; worker: steps taken


def shard_bounds(parameters: int, servers: int) -> list[int]:
    """Offsets of the servers' shards of the flat parameter vector (sizes differ by <= 1)."""
    return block_bounds(parameters, servers)


def global_batch(step: int, examples: int, batch: int, seed: int):
    """The indices of step ``step``'s global batch: the first ``batch`` of a permutation seeded
    by (seed, step), so every worker and the single-process reference draw the same."""
    import torch
    generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
    return torch.randperm(examples, generator=generator)[:batch]


def build_model(job: PSJob):
    """The job's network, seeded, in its dtype."""
    import torch
    from models.nets.fashion_cnn import FashionCNN, FashionCNNConfig
    torch.manual_seed(job.seed)
    if job.model == "fashion-cnn":
        model = FashionCNN(FashionCNNConfig(**(job.model_config or {})))
    else:                                             # torchvision takes seconds to import
        from models.nets.fashion_resnet import fashion_resnet
        model = fashion_resnet(job.model)
    return model.to(getattr(torch, job.dtype))


def check_point(servers: int, workers: int, job: PSJob, examples: int | None = None) -> None:
    if servers < 1 or workers < 1:
        raise ValueError(f"a parameter-server job needs >= 1 server and >= 1 worker, got p={servers}, w={workers}")
    if job.global_batch < workers:
        raise ValueError(f"global batch {job.global_batch} gives {workers} workers no example each; "
                         f"use --global-batch >= {workers} or fewer workers")
    if examples is not None and examples < job.global_batch:
        raise ValueError(f"global batch {job.global_batch} is larger than the {examples} training examples")


class _Messenger:
    """Bounded isend / irecv within one process group; failures name both ends and the step."""

    def __init__(self, group, servers: int, timeout: float):
        import torch.distributed as dist
        self.group, self.servers = group, servers
        self.rank = dist.get_rank(group)
        self.timeout = timedelta(seconds=timeout)
        self.step = -1

    def who(self, rank: int) -> str:
        return f"server {rank}" if rank < self.servers else f"worker {rank - self.servers}"

    def fail(self, what: str, peer: int | None, exc: BaseException | None = None) -> ParameterServerError:
        whom = "any worker" if peer is None else f"{self.who(peer)} (group rank {peer})"
        reason = f": {str(exc).splitlines()[0]}" if exc is not None and str(exc) else ""
        when = "before the first step" if self.step < 0 else f"at step {self.step}"
        return ParameterServerError(
            f"parameter server job: {self.who(self.rank)} (group rank {self.rank}) could not {what} {whom} "
            f"within {self.timeout.total_seconds():g} s {when} (a peer died, hung or runs another job){reason}")

    def send(self, tensor, peer: int, tag: int, what: str):
        import torch.distributed as dist
        try:
            return dist.isend(tensor, group=self.group, group_dst=peer, tag=tag), what, peer
        except RuntimeError as exc:
            raise self.fail(what, peer, exc) from exc

    def recv(self, tensor, peer: int | None, tag: int, what: str):
        import torch.distributed as dist
        try:
            if peer is None:                              # any source: the asynchronous server
                return dist.irecv(tensor, group=self.group, tag=tag), what, None
            return dist.irecv(tensor, group=self.group, group_src=peer, tag=tag), what, peer
        except RuntimeError as exc:
            raise self.fail(what, peer, exc) from exc

    def wait(self, *posted) -> None:
        wait_bounded(posted, self.timeout, self.fail)


def _flat_gradient(model, scale: float):
    import torch
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                      for p in model.parameters()]) * scale


def run_worker(messenger: _Messenger, index: int, workers: int, job: PSJob, model, data) -> PointResult:
    """Worker ``index``: ``job.warmup + job.steps`` steps; times of the timed ones."""
    import torch
    import torch.nn.functional as F
    from torch.nn.utils import parameters_to_vector, vector_to_parameters
    servers = messenger.servers
    flat = parameters_to_vector(model.parameters()).detach().clone()
    bounds = shard_bounds(flat.numel(), servers)
    share = block_bounds(job.global_batch, workers)[index:index + 2]
    scale = (share[1] - share[0]) / job.global_batch if job.mode == "sync" else 1.0
    dtype = getattr(torch, job.dtype)

    def post_pull():
        return [messenger.recv(flat[bounds[s]:bounds[s + 1]], s, PARAMETER_TAG, "pull parameters from")
                for s in range(servers)]

    def finish_pull(posted):
        messenger.wait(*posted)
        vector_to_parameters(flat, model.parameters())

    finish_pull(post_pull())                          # start from the servers' parameters
    times = torch.zeros(job.steps, len(WORKER_TIMES), dtype=torch.float64)
    for step in range(job.warmup + job.steps):
        messenger.step = step
        start = time.perf_counter()
        chosen = global_batch(step, len(data.y), job.global_batch, job.seed)[share[0]:share[1]]
        images, labels = data.x[chosen].to(dtype), data.y[chosen]
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(images), labels).backward()
        gradient = _flat_gradient(model, scale)
        computed = time.perf_counter()
        # The pulls are posted before the pushes: a server's answer then lands whatever the order
        # in which the servers take the pushes (asynchronous servers answer one worker each time).
        pulls = post_pull()
        messenger.wait(*[messenger.send(gradient[bounds[s]:bounds[s + 1]], s, GRADIENT_TAG,
                                        "push gradients to") for s in range(servers)])
        pushed = time.perf_counter()
        finish_pull(pulls)
        if step >= job.warmup:
            times[step - job.warmup] = torch.tensor([computed - start, pushed - computed,
                                                     time.perf_counter() - pushed])
    return PointResult("worker", index, times, flat, job.warmup + job.steps)


def run_server(messenger: _Messenger, index: int, workers: int, job: PSJob, model) -> PointResult:
    """Server ``index``: holds its shard and applies the workers' gradients to it with SGD."""
    import torch
    from torch.nn.utils import parameters_to_vector
    flat = parameters_to_vector(model.parameters()).detach()
    bounds = shard_bounds(flat.numel(), messenger.servers)
    shard = torch.nn.Parameter(flat[bounds[index]:bounds[index + 1]].clone())
    optimizer = torch.optim.SGD([shard], lr=job.lr, momentum=job.momentum, weight_decay=job.weight_decay)
    worker_ranks = list(range(messenger.servers, messenger.servers + workers))
    _send_shard(messenger, shard, worker_ranks)       # the workers' first pull
    serve = _serve_async if job.mode == "async" else _serve_sync
    times = serve(messenger, shard, optimizer, worker_ranks, job)
    return PointResult("server", index, times, shard.data, (job.warmup + job.steps) * workers)


def _send_shard(messenger: _Messenger, shard, ranks) -> None:
    messenger.wait(*[messenger.send(shard.data, rank, PARAMETER_TAG, "send parameters to") for rank in ranks])


def _serve_sync(messenger: _Messenger, shard, optimizer, worker_ranks, job: PSJob):
    """Each step: all w gradient shards, their sum (in worker order: the same every run), one
    SGD step, the new shard to every worker. Returns (steps, SERVER_TIMES) seconds."""
    import torch
    buffers = [torch.empty_like(shard.data) for _ in worker_ranks]
    times = torch.zeros(job.steps, len(SERVER_TIMES), dtype=torch.float64)
    for step in range(job.warmup + job.steps):
        messenger.step = step
        start = time.perf_counter()
        messenger.wait(*[messenger.recv(buffer, rank, GRADIENT_TAG, "receive gradients from")
                         for buffer, rank in zip(buffers, worker_ranks)])
        received = time.perf_counter()
        gradient = buffers[0].clone()
        for buffer in buffers[1:]:
            gradient += buffer
        shard.grad = gradient
        optimizer.step()
        updated = time.perf_counter()
        _send_shard(messenger, shard, worker_ranks)
        if step >= job.warmup:
            times[step - job.warmup] = torch.tensor([received - start, updated - received,
                                                     time.perf_counter() - updated])
    return times


def _serve_async(messenger: _Messenger, shard, optimizer, worker_ranks, job: PSJob):
    """Every push, from whichever worker sends first: one SGD step, the new shard back to that
    worker alone. Returns (steps, SERVER_TIMES) seconds of the first worker's timed pushes."""
    import torch
    buffer = torch.empty_like(shard.data)
    pushes = {rank: 0 for rank in worker_ranks}
    times = torch.zeros(job.steps, len(SERVER_TIMES), dtype=torch.float64)
    for update in range((job.warmup + job.steps) * len(worker_ranks)):
        messenger.step = update // len(worker_ranks)
        start = time.perf_counter()
        posted = messenger.recv(buffer, None, GRADIENT_TAG, "receive gradients from")
        messenger.wait(posted)
        source = posted[0]._source_rank()             # gloo's receive-from-any names the sender
        received = time.perf_counter()
        shard.grad = buffer.clone()
        optimizer.step()
        updated = time.perf_counter()
        _send_shard(messenger, shard, [source])
        step, pushes[source] = pushes[source] - job.warmup, pushes[source] + 1
        if step >= 0 and source == worker_ranks[0]:
            times[step] = torch.tensor([received - start, updated - received, time.perf_counter() - updated])
    return times


def run_point(group, servers: int, job: PSJob, data) -> PointResult:
    """This rank's part of one run with ``servers`` servers and the group's other ranks as workers."""
    import torch.distributed as dist
    workers = dist.get_world_size(group) - servers
    check_point(servers, workers, job, len(data.y) if data is not None else None)
    messenger = _Messenger(group, servers, job.timeout)
    model = build_model(job)
    if messenger.rank < servers:
        return run_server(messenger, messenger.rank, workers, job, model)
    return run_worker(messenger, messenger.rank - servers, workers, job, model, data)


@dataclass
class Point:
    """One (mode, p, w) of a grid as every rank sees it; ``result`` is None on ranks outside it."""
    mode: str
    servers: int
    workers: int
    result: PointResult | None
    times: dict | None = None        # group rank 0 only: {"server": (p, steps, 3), "worker": (w, steps, 3)}


def _gather_times(group, result: PointResult, servers: int):
    """Every rank's timings to every rank of the group; rank 0 keeps them by role."""
    import torch
    import torch.distributed as dist
    everyone = [torch.empty_like(result.times) for _ in range(dist.get_world_size(group))]
    dist.all_gather(everyone, result.times.contiguous(), group=group)
    return {"server": torch.stack(everyone[:servers]), "worker": torch.stack(everyone[servers:])}


def each_point(job: PSJob, points, data=None):
    """On every rank of the job: run each (mode, p, w) of ``points`` on the first p + w ranks and
    yield a Point (the ranks beyond p + w wait, bounded, for the others to finish it). ``data``:
    a Split to train on, else the job's dataset, loaded once by the first rank that needs it."""
    import torch.distributed as dist
    rank, world = dist.get_rank(), dist.get_world_size()
    for mode, servers, workers in points:
        size = servers + workers
        if size > world:
            raise ValueError(f"p={servers} + w={workers} needs {size} ranks; this job has {world}")
        group = dist.new_group(list(range(size)))
        point = Point(mode, servers, workers, None)
        if rank < size:
            if data is None and rank >= servers:
                from models.data.datasets import load_dataset
                data = load_dataset(job.dataset, job.data_dir).train
            point.result = run_point(group, servers, replace(job, mode=mode), data if rank >= servers else None)
            times = _gather_times(group, point.result, servers)
            point.times = times if rank == 0 else None
        yield point
        if world > size:                              # the idle ranks waited through the point
            bound = job.timeout * (job.warmup + job.steps + 2)
            dist.monitored_barrier(timeout=timedelta(seconds=bound))
        if rank < size:
            dist.destroy_process_group(group)
