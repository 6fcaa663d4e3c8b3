"""All-reduce strategies written on torch.distributed point-to-point operations, DDP comm hooks
for each, and the alpha-beta cost model of each (nccl-tests' algbw / busbw conventions).

    import torch.distributed as dist
    from sysdl_kernels.collectives import all_reduce, register_comm_hook
    all_reduce(tensor, "ring")                                  # in place, SUM, default group
    all_reduce(tensor, "hierarchical", op="avg", group_size=2)  # groups of 2 ranks stand for nodes
    register_comm_hook(ddp_model, "recursive_doubling")         # DDP averages gradients with it

Strategies (n ranks, m bytes; alpha: latency of one message, beta: seconds per byte; the
critical path's message count and bytes are ``cost_terms``):

    reduce_broadcast     all send to rank 0, which adds and sends the sum back    2(n-1) a + 2(n-1) m b
    ring                 reduce-scatter, then all-gather, around a ring            2(n-1) a + 2(n-1)/n m b
    recursive_doubling   log2 n pairwise exchanges of the whole vector             log2 n (a + m b)
    rabenseifner         recursive-halving reduce-scatter + doubling all-gather    2 log2 n a + 2(n-1)/n m b
    tree                 binary-tree reduce to rank 0, broadcast back down it       ~4 log2 n (a + m b)
    hierarchical         reduce inside groups of ``group_size`` ranks (the "nodes"), ring among the
                         group leaders, broadcast inside the groups
    backend              dist.all_reduce itself (gloo on CPU, nccl on GPU): the baseline

Non-powers of two: recursive doubling and Rabenseifner first fold the n - 2^k extra ranks into
their neighbours (one extra exchange before, one after). Lengths need not divide by n: blocks
differ by at most one element; empty blocks send nothing. Every strategy leaves bit-identical
results on all ranks (each element's sum is formed on one rank, or symmetrically as a + b = b + a).

Failure handling: every wait is bounded by ``timeout`` seconds (default 30, or
$SYSDL_COLLECTIVE_TIMEOUT) and a peer that died or went silent raises ``CollectiveError`` naming
the strategy, the rank and the peer. With ``check=True`` (the default) the ranks first compare
what each was given (one small all_gather): a non-contiguous tensor, a tensor on the wrong device
for the backend, an unsupported dtype, or shapes / dtypes / ops / strategies that differ between
ranks raise ``ValueError`` on every rank instead of hanging. Timed loops and DDP hooks, whose
buffers agree by construction, pass ``check=False``.
"""

from __future__ import annotations

import math
import os
import zlib
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

STRATEGIES = ("reduce_broadcast", "ring", "recursive_doubling", "rabenseifner", "tree",
              "hierarchical", "backend")
OPS = ("sum", "avg")
DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
DEFAULT_TIMEOUT = 30.0            # seconds: a dead peer is reported in seconds, not minutes
DEFAULT_GROUP_SIZE = 2            # ranks per "node" for the hierarchical strategy
DEFAULT_RING_CHUNK_BYTES = 0      # 0: one message per ring step (see ring_all_reduce)


class CollectiveError(RuntimeError):
    """A collective could not complete: a peer died, timed out or the transport failed."""


def default_timeout() -> float:
    return float(os.environ.get("SYSDL_COLLECTIVE_TIMEOUT", DEFAULT_TIMEOUT))


# ----------------------------------------------------------------------------------------------
# Point-to-point plumbing: bounded waits, errors that name the collective
# ----------------------------------------------------------------------------------------------


def wait_bounded(works, timeout: timedelta, fail) -> None:
    """Wait for each posted (work, what, peer) at most ``timeout``; a failed or late one raises
    ``fail(what, peer[, exc])``, the caller's error naming both ends."""
    for work, what, peer in works:
        try:
            completed = work.wait(timeout)
        except RuntimeError as exc:
            raise fail(what, peer, exc) from exc
        if completed is False:
            raise fail(what, peer)


class _Link:
    """The point-to-point calls of one collective on one rank. Peers are ranks of ``group``."""

    def __init__(self, name: str, group, timeout: float):
        self.name = name
        self.group = group if group is not None else dist.group.WORLD
        self.rank = dist.get_rank(self.group)
        self.timeout = timedelta(seconds=timeout)

    def fail(self, what: str, peer: int | None, exc: BaseException | None = None) -> CollectiveError:
        reason = f": {exc}" if exc is not None else ""
        whom = "the other ranks" if peer is None else f"rank {peer}"
        return CollectiveError(
            f"{self.name} all-reduce: rank {self.rank} could not {what} {whom} within "
            f"{self.timeout.total_seconds():g} s (a peer died, hung or disagrees on the collective)"
            f"{reason}")

    def start(self, sends=(), recvs=()) -> list:
        """Post isend / irecv for (tensor, peer) pairs; empty tensors send nothing."""
        works = []
        for tensor, peer in sends:        # sends first: measured 3x faster exchanges with 4 ranks
            if tensor.numel():            # on 2 cores than posting the receive first
                works.append(self._post(dist.isend, tensor, peer, "send to"))
        for tensor, peer in recvs:
            if tensor.numel():
                works.append(self._post(dist.irecv, tensor, peer, "receive from"))
        return works

    def _post(self, call, tensor, peer, what):
        try:
            if call is dist.irecv:
                work = call(tensor, group=self.group, group_src=peer)
            else:
                work = call(tensor, group=self.group, group_dst=peer)
        except RuntimeError as exc:
            raise self.fail(what, peer, exc) from exc
        return work, what, peer

    def wait(self, works: list) -> None:
        wait_bounded(works, self.timeout, self.fail)

    def exchange(self, send=None, to=None, recv=None, frm=None) -> None:
        """Send ``send`` to ``to`` while receiving ``recv`` from ``frm``; wait for both."""
        self.wait(self.start([(send, to)] if send is not None else (),
                             [(recv, frm)] if recv is not None else ()))


def block_bounds(length: int, blocks: int) -> list[int]:
    """Offsets of ``blocks`` near-equal blocks of ``length`` elements (sizes differ by <= 1)."""
    base, extra = divmod(length, blocks)
    bounds = [0]
    for index in range(blocks):
        bounds.append(bounds[-1] + base + (1 if index < extra else 0))
    return bounds


# ----------------------------------------------------------------------------------------------
# The strategies: each reduces the flat tensor x among ``ranks`` (group ranks); ``me`` indexes it
# ----------------------------------------------------------------------------------------------


def _reduce_to_root(x, link, ranks, me, root=0):
    """Every rank sends x to ranks[root], which adds them in rank order."""
    if len(ranks) == 1:
        return
    if me != root:
        link.exchange(send=x, to=ranks[root])
        return
    others = [index for index in range(len(ranks)) if index != root]
    buffers = [torch.empty_like(x) for _ in others]       # all receives in flight at once
    works = [link.start(recvs=[(buf, ranks[index])]) for buf, index in zip(buffers, others)]
    for work, buf in zip(works, buffers):
        link.wait(work)
        x += buf


def _broadcast_from_root(x, link, ranks, me, root=0):
    if len(ranks) == 1:
        return
    if me != root:
        link.exchange(recv=x, frm=ranks[root])
        return
    link.wait(link.start(sends=[(x, ranks[index]) for index in range(len(ranks)) if index != root]))


def reduce_broadcast_all_reduce(x, link, ranks, me):
    _reduce_to_root(x, link, ranks, me)
    _broadcast_from_root(x, link, ranks, me)


def ring_all_reduce(x, link, ranks, me, chunk_bytes: int = DEFAULT_RING_CHUNK_BYTES):
    """Reduce-scatter then all-gather around the ring ranks[0] -> ranks[1] -> ... -> ranks[0].

    At reduce-scatter step s rank i sends block (i - s) and receives block (i - s - 1), which it
    adds into its own copy; after n - 1 steps it holds the full sum of block (i + 1), and n - 1
    all-gather steps pass the finished blocks on. With ``chunk_bytes`` > 0 every step's block goes
    as several messages, all in flight at once, and each piece is added as it arrives (overlap of
    the add with the transfer). One message per step measured fastest on loopback (README).
    """
    n = len(ranks)
    if n == 1 or x.numel() == 0:
        return
    bounds = block_bounds(x.numel(), n)
    right, left = ranks[(me + 1) % n], ranks[(me - 1) % n]
    block = lambda index: x[bounds[index % n]:bounds[index % n + 1]]   # noqa: E731
    scratch = torch.empty(bounds[1] - bounds[0], dtype=x.dtype, device=x.device)
    piece = max(1, chunk_bytes // x.element_size()) if chunk_bytes > 0 else x.numel()
    pieces = lambda size: [(lo, min(lo + piece, size)) for lo in range(0, size, piece)]  # noqa: E731
    for step in range(n - 1):
        outgoing, incoming = block(me - step), block(me - step - 1)
        received = scratch[:incoming.numel()]
        sends = link.start(sends=[(outgoing[lo:hi], right) for lo, hi in pieces(outgoing.numel())])
        spans = pieces(incoming.numel())
        recvs = [link.start(recvs=[(received[lo:hi], left)]) for lo, hi in spans]
        for (lo, hi), work in zip(spans, recvs):            # add each piece as it lands
            link.wait(work)
            incoming[lo:hi] += received[lo:hi]
        link.wait(sends)
    for step in range(n - 1):
        link.exchange(send=block(me + 1 - step), to=right, recv=block(me - step), frm=left)


def _fold_to_power_of_two(x, link, ranks, me):
    """Fold the n - 2^k extra ranks into their neighbours. Returns (participants, index) for the
    power-of-two phase, with index None on a rank that sits it out, and the undo function."""
    n = len(ranks)
    p = 1 << (n.bit_length() - 1)
    extra = n - p
    participants = [ranks[2 * j + 1] if j < extra else ranks[j + extra] for j in range(p)]
    if me < 2 * extra and me % 2 == 0:                      # gives its data away, waits
        link.exchange(send=x, to=ranks[me + 1])
        return participants, None, lambda: link.exchange(recv=x, frm=ranks[me + 1])
    if me < 2 * extra:                                      # odd: adds its neighbour's data
        received = torch.empty_like(x)
        link.exchange(recv=received, frm=ranks[me - 1])
        x += received
        return participants, me // 2, lambda: link.exchange(send=x, to=ranks[me - 1])
    return participants, me - extra, lambda: None


def recursive_doubling_all_reduce(x, link, ranks, me):
    """log2 p rounds; in round k rank r swaps its whole vector with rank r XOR 2^k and adds."""
    participants, index, unfold = _fold_to_power_of_two(x, link, ranks, me)
    if index is not None and x.numel():
        received = torch.empty_like(x)
        mask = 1
        while mask < len(participants):
            link.exchange(send=x, to=participants[index ^ mask],
                          recv=received, frm=participants[index ^ mask])
            x += received
            mask <<= 1
    unfold()


def rabenseifner_all_reduce(x, link, ranks, me):
    """Recursive halving reduce-scatter (each round halves the range a rank owns and exchanges the
    other half), then recursive doubling all-gather of the finished blocks."""
    participants, index, unfold = _fold_to_power_of_two(x, link, ranks, me)
    p = len(participants)
    if index is not None and x.numel() and p > 1:
        bounds = block_bounds(x.numel(), p)
        span = lambda lo, hi: x[bounds[lo]:bounds[hi]]      # noqa: E731  blocks lo..hi-1
        received = torch.empty(bounds[p // 2] - bounds[0], dtype=x.dtype, device=x.device)
        lo, hi = 0, p
        mask = p // 2
        while mask:
            mid = (lo + hi) // 2
            keep, give = ((lo, mid), (mid, hi)) if index & mask == 0 else ((mid, hi), (lo, mid))
            kept = span(*keep)
            link.exchange(send=span(*give), to=participants[index ^ mask],
                          recv=received[:kept.numel()], frm=participants[index ^ mask])
            kept += received[:kept.numel()]
            lo, hi = keep
            mask >>= 1
        mask = 1
        while mask < p:
            size = hi - lo
            theirs = (hi, hi + size) if index & mask == 0 else (lo - size, lo)
            link.exchange(send=span(lo, hi), to=participants[index ^ mask],
                          recv=span(*theirs), frm=participants[index ^ mask])
            lo, hi = min(lo, theirs[0]), max(hi, theirs[1])
            mask <<= 1
    unfold()


def tree_all_reduce(x, link, ranks, me):
    """Binary tree rooted at ranks[0] (children of i: 2i + 1, 2i + 2): sums flow up, the total
    flows back down."""
    n = len(ranks)
    children = [child for child in (2 * me + 1, 2 * me + 2) if child < n]
    parent = (me - 1) // 2 if me else None
    buffers = [torch.empty_like(x) for _ in children]
    works = [link.start(recvs=[(buf, ranks[child])]) for buf, child in zip(buffers, children)]
    for work, buf in zip(works, buffers):
        link.wait(work)
        x += buf
    if parent is not None:
        link.exchange(send=x, to=ranks[parent])
        link.exchange(recv=x, frm=ranks[parent])
    link.wait(link.start(sends=[(x, ranks[child]) for child in children]))


def hierarchical_all_reduce(x, link, ranks, me, group_size: int = DEFAULT_GROUP_SIZE):
    """Reduce inside each group of ``group_size`` consecutive ranks (a "node") to its first rank,
    ring all-reduce among those leaders, broadcast inside each group."""
    node = me // group_size
    members = ranks[node * group_size:(node + 1) * group_size]
    leaders = ranks[::group_size]
    _reduce_to_root(x, link, members, me - node * group_size)
    if me % group_size == 0:
        ring_all_reduce(x, link, leaders, node)
    _broadcast_from_root(x, link, members, me - node * group_size)


_P2P = {"reduce_broadcast": reduce_broadcast_all_reduce, "ring": ring_all_reduce,
        "recursive_doubling": recursive_doubling_all_reduce, "rabenseifner": rabenseifner_all_reduce,
        "tree": tree_all_reduce, "hierarchical": hierarchical_all_reduce}


# ----------------------------------------------------------------------------------------------
# Input checks, agreed between ranks before anyone sends
# ----------------------------------------------------------------------------------------------

_PROBLEMS = {1: "the tensor is not contiguous (call .contiguous() first)",
             2: "the tensor is on the wrong device for the backend",
             3: f"the dtype is not one of {[str(d).removeprefix('torch.') for d in DTYPES]}"}


def expected_device_type(group=None) -> str:
    return "cuda" if dist.get_backend(group) == "nccl" else "cpu"


def _local_problem(tensor: torch.Tensor, group) -> int:
    if not tensor.is_contiguous():
        return 1
    if tensor.device.type != expected_device_type(group):
        return 2
    if tensor.dtype not in DTYPES:
        return 3
    return 0


def _agree(tensor, strategy, op, group_size, link: _Link) -> None:
    """All ranks learn every rank's problem code, element count and signature; raise on all."""
    problem = _local_problem(tensor, link.group)
    signature = zlib.crc32(repr((tuple(tensor.shape), str(tensor.dtype), strategy, op,
                                 group_size)).encode())
    device = torch.device("cuda", torch.cuda.current_device()) if expected_device_type(
        link.group) == "cuda" else torch.device("cpu")
    mine = torch.tensor([problem, tensor.numel(), signature], dtype=torch.int64, device=device)
    world = dist.get_world_size(link.group)
    everyone = [torch.empty_like(mine) for _ in range(world)]
    try:
        work = dist.all_gather(everyone, mine, group=link.group, async_op=True)
        if work.wait(link.timeout) is False:
            raise link.fail("agree on the inputs with", None)
    except RuntimeError as exc:
        if isinstance(exc, CollectiveError):
            raise
        raise link.fail("agree on the inputs with", None, exc) from exc
    table = torch.stack(everyone).cpu().tolist()
    bad = [(rank, code) for rank, (code, _, _) in enumerate(table) if code]
    if bad:
        described = "; ".join(f"rank {rank}: {_PROBLEMS[code]}" for rank, code in bad)
        if problem == 2:
            described += (f" (rank {link.rank} got {tensor.device}, the "
                          f"{dist.get_backend(link.group)} backend needs {expected_device_type(link.group)})")
        raise ValueError(f"{link.name} all-reduce refused: {described}")
    if len({(numel, sig) for _, numel, sig in table}) > 1:
        counts = ", ".join(f"rank {rank}: {numel} elements" for rank, (_, numel, _) in enumerate(table))
        raise ValueError(
            f"{link.name} all-reduce refused: the ranks disagree on the tensor's shape, dtype, op "
            f"or strategy ({counts}; this rank: shape {tuple(tensor.shape)}, {tensor.dtype}, "
            f"op {op}, strategy {strategy}). Every rank must call it with the same arguments.")


# ----------------------------------------------------------------------------------------------
# Public entry
# ----------------------------------------------------------------------------------------------


def all_reduce(tensor: torch.Tensor, strategy: str = "ring", op: str = "sum", group=None, *,
               timeout: float | None = None, group_size: int = DEFAULT_GROUP_SIZE,
               chunk_bytes: int = DEFAULT_RING_CHUNK_BYTES, check: bool = True) -> torch.Tensor:
    """Sum (or average) ``tensor`` over the ranks of ``group`` in place with ``strategy``;
    returns the tensor. See the module docstring for the strategies and the checks."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown all-reduce strategy {strategy!r}; choose one of {STRATEGIES}")
    if op not in OPS:
        raise ValueError(f"op must be one of {OPS}, got {op!r}")
    if group_size < 1:
        raise ValueError(f"group_size must be >= 1, got {group_size}")
    if not dist.is_initialized():
        raise RuntimeError("torch.distributed is not initialised: call dist.init_process_group "
                           "(or launch with torchrun / models.distributed.launch) first")
    link = _Link(strategy, group, default_timeout() if timeout is None else timeout)
    if check:
        _agree(tensor, strategy, op, group_size, link)
    world = dist.get_world_size(link.group)
    flat = tensor.view(-1)
    if strategy == "backend":
        try:
            work = dist.all_reduce(flat, dist.ReduceOp.SUM, group=link.group, async_op=True)
            completed = work.wait(link.timeout)
        except RuntimeError as exc:
            raise link.fail("all_reduce with", None, exc) from exc
        if completed is False:
            raise link.fail("all_reduce with", None)
    else:
        extra = {"group_size": group_size} if strategy == "hierarchical" else (
            {"chunk_bytes": chunk_bytes} if strategy == "ring" else {})
        _P2P[strategy](flat, link, list(range(world)), link.rank, **extra)
    if op == "avg":
        flat.div_(world)
    return tensor


# ----------------------------------------------------------------------------------------------
# DDP comm hooks
# ----------------------------------------------------------------------------------------------


@dataclass
class HookState:
    strategy: str
    group: object = None
    timeout: float | None = None
    group_size: int = DEFAULT_GROUP_SIZE


def all_reduce_hook(state: HookState, bucket):   # no annotations: DDP compares them as objects
    """A DDP comm hook: average the bucket's gradients with ``state.strategy``, like DDP's default
    allreduce hook (sum, then divide by the world size)."""
    buffer = bucket.buffer()
    all_reduce(buffer, state.strategy, "avg", state.group, timeout=state.timeout,
               group_size=state.group_size, check=False)
    future = torch.futures.Future()
    future.set_result(buffer)
    return future


def register_comm_hook(model, strategy: str, group=None, timeout: float | None = None,
                       group_size: int = DEFAULT_GROUP_SIZE):
    """Make a DistributedDataParallel ``model`` all-reduce its gradients with ``strategy``."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown all-reduce strategy {strategy!r}; choose one of {STRATEGIES}")
    model.register_comm_hook(HookState(strategy, group, timeout, group_size), all_reduce_hook)
    return model


# ----------------------------------------------------------------------------------------------
# Bandwidth conventions and the alpha-beta cost model
# ----------------------------------------------------------------------------------------------


def algbw(nbytes: int, seconds: float) -> float:
    """Algorithm bandwidth in bytes/s: the message size over the time (nccl-tests)."""
    return nbytes / seconds


def busbw(nbytes: int, seconds: float, world: int) -> float:
    """Bus bandwidth: algbw x 2(n-1)/n, what each rank's link carries in an optimal all-reduce,
    so it compares with the hardware's bandwidth whatever n is (nccl-tests' PERFORMANCE.md)."""
    return algbw(nbytes, seconds) * 2 * (world - 1) / world


def cost_terms(strategy: str, world: int, nbytes: float, group_size: int = DEFAULT_GROUP_SIZE):
    """(messages, bytes) on the critical path: the model is time = messages x alpha + bytes x beta."""
    n = world
    if n == 1:
        return 0.0, 0.0
    p = 1 << (n.bit_length() - 1)
    fold = 0 if p == n else 2                                   # fold in, fold out
    rounds = math.log2(p)
    if strategy in ("ring", "backend"):
        return 2 * (n - 1), 2 * (n - 1) / n * nbytes
    if strategy == "reduce_broadcast":
        return 2 * (n - 1), 2 * (n - 1) * nbytes
    if strategy == "recursive_doubling":
        return rounds + fold, (rounds + fold) * nbytes
    if strategy == "rabenseifner":
        return 2 * rounds + fold, 2 * (p - 1) / p * nbytes + fold * nbytes
    if strategy == "tree":
        depth = int(math.log2(n))                               # levels below the root
        fan = min(2, n - 1)
        return 2 * depth * fan, 2 * depth * fan * nbytes
    if strategy == "hierarchical":
        leaders = math.ceil(n / group_size)
        local = min(group_size, n) - 1
        ring_messages, ring_bytes = cost_terms("ring", leaders, nbytes)
        return 2 * local + ring_messages, 2 * local * nbytes + ring_bytes
    raise ValueError(f"unknown all-reduce strategy {strategy!r}; choose one of {STRATEGIES}")
