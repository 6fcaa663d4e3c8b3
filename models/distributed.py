"""Start a function on every rank of a torch.distributed job: under torchrun (one host or many)
or, without it, by spawning ``world`` local processes. Used by allreduce-bench, scaling and the
collective tests.

    results = launch(fn, world=4, args=(size,))   # fn(rank, world, *args) on every rank
    torchrun --nproc-per-node 4 --no-python sysdl allreduce-bench   # the same, ranks from torchrun

Under torchrun (RANK / WORLD_SIZE / MASTER_ADDR in the environment) the process group comes from
the environment and ``launch`` returns ``[fn(...)]`` for this rank only; nothing here assumes one
host. Spawned locally, the ranks meet through a FileStore in a temporary directory (no ports to
collide), each gets ``cores // world`` torch threads (at least 1), and ``launch`` returns every
rank's return value, in rank order. A rank that raises makes ``launch`` raise with its traceback.
"""

from __future__ import annotations

import os
import tempfile
from datetime import timedelta
from pathlib import Path

DEFAULT_INIT_TIMEOUT = 60.0     # seconds for the ranks to meet and for the backend's own ops


def launched_by_torchrun() -> bool:
    return all(name in os.environ for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR"))


def threads_per_rank(world: int, cores: int | None = None) -> int:
    """The machine's cores split between the ranks on it (at least one each)."""
    cores = cores or os.cpu_count() or 1
    return max(1, cores // max(1, world))


def default_backend() -> str:
    import torch
    return "nccl" if torch.cuda.is_available() else "gloo"


def _init(rank: int, world: int, backend: str, init_method: str | None, timeout: float) -> None:
    import torch
    import torch.distributed as dist
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)) % torch.cuda.device_count())
    kwargs = {"backend": backend, "timeout": timedelta(seconds=timeout)}
    if init_method is not None:
        kwargs.update(init_method=init_method, rank=rank, world_size=world)
    dist.init_process_group(**kwargs)


def _spawned(rank: int, fn, world: int, args: tuple, backend: str, init_file: str,
             result_dir: str, threads: int, timeout: float) -> None:
    import torch
    import torch.distributed as dist
    torch.set_num_threads(threads)
    _init(rank, world, backend, f"file://{init_file}", timeout)
    try:
        result = fn(rank, world, *args)
        torch.save(result, Path(result_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def launch(fn, world: int, args: tuple = (), backend: str | None = None,
           timeout: float = DEFAULT_INIT_TIMEOUT, threads: int | None = None) -> list:
    """Run ``fn(rank, world, *args)`` on every rank; see the module docstring."""
    import torch
    import torch.distributed as dist
    backend = backend or default_backend()
    if launched_by_torchrun():
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        torch.set_num_threads(threads or threads_per_rank(local))
        _init(rank, world, backend, None, timeout)
        try:
            return [fn(rank, world, *args)]
        finally:
            dist.destroy_process_group()
    if world < 1:
        raise ValueError(f"world must be >= 1, got {world}")
    import torch.multiprocessing as mp
    with tempfile.TemporaryDirectory(prefix="sysdl-dist-") as scratch:
        init_file = str(Path(scratch) / "store")
        mp.spawn(_spawned, nprocs=world, join=True,
                 args=(fn, world, args, backend, init_file, scratch,
                       threads or threads_per_rank(world), timeout))
        return [torch.load(Path(scratch) / f"rank{rank}.pt", weights_only=False)
                for rank in range(world)]
