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

Under torchrun every wait is bounded by ``timeout``: before the process group is made, a rank
that will be a client of the TCP store at MASTER_ADDR:MASTER_PORT first connects to it from a
helper thread (torch's own client waits forever, whatever its timeout, on a port where something
else listens; it waits without holding the GIL, so the rank can give up on it). A port that
accepts connections but does not answer the store's handshake within STORE_ANSWER_SECONDS, no
store within ``timeout``, or a failed init ends as one DistributedInitError (a UserError: one
line, exit status 2) naming the address and what to do.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

from models.shared.errors import UserError

DEFAULT_INIT_TIMEOUT = 60.0     # seconds for the ranks to meet and for the backend's own ops
STORE_ANSWER_SECONDS = 5.0      # a listening store answers its handshake in milliseconds
_FIX_ADDRESS = ("check MASTER_ADDR / MASTER_PORT (torchrun --master-addr / --master-port; "
                "choose a free port), and that rank 0 or torchrun's agent is running there")


class DistributedInitError(RuntimeError, UserError):
    """The ranks could not meet; the message names the address and what to do."""


def launched_by_torchrun() -> bool:
    return all(name in os.environ for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR"))


def threads_per_rank(world: int, cores: int | None = None) -> int:
    """The machine's cores split between the ranks on it (at least one each)."""
    cores = cores or os.cpu_count() or 1
    return max(1, cores // max(1, world))


def default_backend() -> str:
    import torch
    return "nccl" if torch.cuda.is_available() else "gloo"


def _accepts_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2.0):
            return True
    except OSError:
        return False


def check_store(host: str, port: int, timeout: float) -> None:
    """Return once a torch.distributed TCP store answers at host:port; DistributedInitError if
    none does within ``timeout`` s, or if something listens there but does not answer the store's
    handshake within STORE_ANSWER_SECONDS (another service's port)."""
    import torch.distributed as dist
    address, outcome = f"{host}:{port}", {}

    def connect():
        try:   # world_size None: a probe, not a rank; the store counts no extra worker
            dist.TCPStore(host, port, None, False, timedelta(seconds=timeout), wait_for_workers=False)
        except Exception as err:                     # noqa: BLE001 - reported below, by name
            outcome["error"] = err

    probe = threading.Thread(target=connect, name="sysdl-store-probe", daemon=True)
    deadline = time.monotonic() + timeout
    remaining = lambda: max(0.0, deadline - time.monotonic())     # noqa: E731
    probe.start()
    probe.join(min(timeout, STORE_ANSWER_SECONDS))   # a store that is up answers at once
    if probe.is_alive() and _accepts_connections(host, port):
        probe.join(min(STORE_ANSWER_SECONDS, remaining()))          # or it came up just now
    else:
        probe.join(remaining())                      # rank 0 or torchrun's agent may be starting
    if probe.is_alive() and _accepts_connections(host, port):
        raise DistributedInitError(
            f"something listens at {address} but it is not a torch.distributed store (no answer to the "
            f"store's handshake): MASTER_PORT is probably another service's port; {_FIX_ADDRESS}")
    if probe.is_alive() or "error" in outcome:
        reason = str(outcome.get("error", "nothing listens there")).splitlines()[0]
        raise DistributedInitError(f"no torch.distributed store answered at {address} within {timeout:g} s "
                                   f"({reason}); {_FIX_ADDRESS}")


def _env_store_client(rank: int) -> tuple[str, int] | None:
    """(MASTER_ADDR, MASTER_PORT) when this rank joins the env:// store as a client (every rank
    under torchrun's agent, ranks > 0 otherwise); None when it starts the store or none is named."""
    host, port = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT", "")
    agent_store = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    if not host or not port.isdigit() or (rank == 0 and not agent_store):
        return None
    return host, int(port)


def _init(rank: int, world: int, backend: str, init_method: str | None, timeout: float) -> None:
    import torch
    import torch.distributed as dist
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)) % torch.cuda.device_count())
    kwargs = {"backend": backend, "timeout": timedelta(seconds=timeout)}
    if init_method is not None:
        kwargs.update(init_method=init_method, rank=rank, world_size=world)
        dist.init_process_group(**kwargs)
        return
    client = _env_store_client(rank)
    if client is not None:
        check_store(*client, timeout)
    address = f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}"
    try:
        dist.init_process_group(**kwargs)
    except dist.DistError as err:
        reason = str(err).splitlines()[0]
        if "EADDRINUSE" in reason:
            raise DistributedInitError(f"rank 0 cannot start the store at {address}: the port is in use by "
                                       f"another process; choose a free MASTER_PORT (torchrun --master-port)") from None
        raise DistributedInitError(f"the ranks did not meet at {address} within {timeout:g} s ({reason}); "
                                   f"start all WORLD_SIZE ranks; {_FIX_ADDRESS}") from None


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
