"""`sysdl allreduce-bench`: every all-reduce strategy against the backend's own dist.all_reduce
over message sizes, checked, then timed, printed as nccl-tests tables, with the alpha-beta fit.

    sysdl allreduce-bench                        # 4 local ranks, 4 KiB .. 64 MiB float32
    sysdl allreduce-bench --world 3 --quick      # 3 ranks, 3 sizes, 2 rounds (CI)
    torchrun --nproc-per-node 4 --no-python sysdl allreduce-bench   # ranks from torchrun (any hosts)

Sizes are the bytes each rank reduces and must be whole elements of --dtype: a size that is not
is refused, never rounded down behind the table's back. For every size each strategy's result is
first compared with dist.all_reduce of the same input (abort on a mismatch). Then ``--rounds``
rounds time every strategy in turn (the order rotates each round, so drifting background load
falls on all alike): a barrier, ``iters`` back-to-back calls on a zero tensor, the mean per call;
a round's time is the slowest rank's. Cells are medians over rounds. algbw = size / time,
busbw = algbw x 2(n-1)/n (nccl-tests). The alpha-beta model time = messages x alpha + bytes x
beta (each strategy's critical path: collectives.cost_terms) is fitted per strategy by least
squares on relative error. Writes ``OUT/allreduce.csv``, ``OUT/allreduce.md``,
``OUT/allreduce_fit.csv``, ``allreduce_bandwidth.png`` and ``allreduce_model.png`` (predicted
against measured).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from models.shared import command
from models.shared.command import at_least
from models.shared.artifacts import ALLREDUCE_DIR

DEFAULT_SIZES = tuple(4096 * 4**k for k in range(8))          # 4 KiB .. 64 MiB
QUICK_SIZES = (4096, 65536, 1 << 20)
DTYPE_BYTES = {"float32": 4, "float64": 8}                      # --dtype choices, bytes per element
ROUND_SECONDS = 0.05                                            # calls per round fill about this


def parse_size(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    text = text.strip().lower().removesuffix("ib").removesuffix("b")
    scale = units.get(text[-1:], 1)
    number = text[:-1] if text[-1:] in units else text
    try:
        size = int(float(number) * scale)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r}: write bytes, e.g. 4096, 4K, 64M") from None
    if size < 0:
        raise argparse.ArgumentTypeError(f"size must be >= 0 bytes, got {text!r}")
    return size


def check_sizes(sizes, dtype: str) -> None:
    """Every size must be whole elements: the bytes reduced are the bytes reported, never rounded."""
    itemsize = DTYPE_BYTES[dtype]
    partial = [size for size in sizes if size % itemsize]
    if partial:
        below = partial[0] // itemsize * itemsize
        raise ValueError(f"--sizes {' '.join(map(str, partial))}: not whole {itemsize}-byte {dtype} elements; "
                         f"give multiples of {itemsize} (e.g. {below or itemsize} or {below + itemsize})")


def _sync(device) -> None:
    import torch
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _measure(rank: int, world: int, settings: dict) -> list[dict]:
    """On every rank: check, then time every strategy at every size; rank 0's return is the table."""
    import torch
    import torch.distributed as dist
    from sysdl_kernels.collectives import all_reduce, expected_device_type
    from tqdm import tqdm

    device = torch.device("cuda", torch.cuda.current_device()) if expected_device_type() == "cuda" \
        else torch.device("cpu")
    dtype = getattr(torch, settings["dtype"])
    strategies, group_size = settings["strategies"], settings["group_size"]
    call = lambda tensor, strategy, check=False: all_reduce(   # noqa: E731
        tensor, strategy, group_size=group_size, chunk_bytes=settings["chunk_bytes"], check=check)
    rows = []
    sizes = tqdm(settings["sizes"], desc="allreduce-bench", unit="size", disable=rank != 0)
    for size in sizes:
        count = size // dtype.itemsize
        generator = torch.Generator().manual_seed(rank * 1_000_003 + count)
        data = torch.randn(count, dtype=dtype, generator=generator).to(device)
        expected = data.clone()
        dist.all_reduce(expected)
        tolerance = 1e-5 if dtype == torch.float32 else 1e-12
        for strategy in strategies:
            result = call(data.clone(), strategy, check=True)
            if not torch.allclose(result, expected, rtol=tolerance, atol=tolerance):
                worst = (result - expected).abs().max().item()
                raise RuntimeError(f"{strategy} at {size} bytes differs from dist.all_reduce by {worst:g}")
        zeros = torch.zeros(count, dtype=dtype, device=device)
        for strategy in strategies:                                   # warm-up
            call(zeros, strategy)
        _sync(device)
        start = time.perf_counter()
        call(zeros, "backend")
        _sync(device)
        probe = torch.tensor([time.perf_counter() - start], dtype=torch.float64, device=device)
        dist.all_reduce(probe, op=dist.ReduceOp.MAX)                 # every rank: same iters
        iters = int(min(settings["max_iters"], max(1, ROUND_SECONDS // max(probe.item(), 1e-7))))
        seconds = torch.zeros(settings["rounds"], len(strategies), dtype=torch.float64, device=device)
        for round_index in range(settings["rounds"]):
            order = strategies[round_index % len(strategies):] + strategies[:round_index % len(strategies)]
            for strategy in order:
                dist.barrier()
                start = time.perf_counter()
                for _ in range(iters):
                    call(zeros, strategy)
                _sync(device)
                seconds[round_index, strategies.index(strategy)] = (time.perf_counter() - start) / iters
        dist.all_reduce(seconds, op=dist.ReduceOp.MAX)               # a round lasts its slowest rank
        medians = seconds.median(dim=0).values.tolist()
        for strategy, median in zip(strategies, medians):
            rows.append({"bytes": size, "count": count, "type": settings["dtype"], "strategy": strategy,
                         "world": world, "group_size": group_size, "iters": iters,
                         "rounds": settings["rounds"], "time_us": median * 1e6, "device": device.type})
    return rows if rank == 0 else []


def tables(frame):
    """The nccl-tests columns, then the two pivots people read: time and busbw per strategy."""
    from sysdl_kernels.collectives import algbw, busbw
    frame = frame.copy()
    seconds = frame["time_us"] / 1e6
    frame["algbw_GBps"] = [algbw(b, s) / 1e9 if s > 0 else float("nan") for b, s in zip(frame["bytes"], seconds)]
    frame["busbw_GBps"] = [busbw(b, s, w) / 1e9 if s > 0 else float("nan")
                           for b, s, w in zip(frame["bytes"], seconds, frame["world"])]
    time_table = frame.pivot(index="bytes", columns="strategy", values="time_us")
    bus_table = frame.pivot(index="bytes", columns="strategy", values="busbw_GBps")
    return frame, time_table, bus_table


def fit_alpha_beta(frame, world: int, group_size: int):
    """Per strategy: alpha (s per message) and beta (s per byte) minimising the relative error of
    time = messages x alpha + bytes x beta over the sizes; negative fits are clamped to 0."""
    import numpy as np
    import pandas as pd
    from sysdl_kernels.collectives import cost_terms
    rows = []
    for strategy, group in frame.groupby("strategy", sort=False):
        terms = np.array([cost_terms(strategy, world, b, group_size) for b in group["bytes"]], dtype=float)
        measured = group["time_us"].to_numpy() / 1e6
        weights = 1.0 / measured
        solution, *_ = np.linalg.lstsq(terms * weights[:, None], np.ones_like(measured), rcond=None)
        alpha, beta = (max(0.0, value) for value in solution)
        predicted = terms @ np.array([alpha, beta])
        rows.append({"strategy": strategy, "alpha_us": alpha * 1e6,
                     "bandwidth_GBps": (1 / beta / 1e9) if beta > 0 else float("inf"),
                     "mean_abs_rel_error": float(np.mean(np.abs(predicted - measured) / measured))})
    return pd.DataFrame(rows)


def predicted_us(strategy: str, sizes, fit_row, world: int, group_size: int):
    from sysdl_kernels.collectives import cost_terms
    beta = 1 / (fit_row["bandwidth_GBps"] * 1e9) if fit_row["bandwidth_GBps"] != float("inf") else 0.0
    return [1e6 * (m * fit_row["alpha_us"] / 1e6 + b * beta)
            for m, b in (cost_terms(strategy, world, size, group_size) for size in sizes)]


def plot(frame, fit, world: int, group_size: int, out_dir: Path) -> list[Path]:
    from models.shared.figures import new_figure, save
    fig, (bus, latency) = new_figure((11, 4), 1, 2)
    model_fig, model_ax = new_figure((7, 4.5))
    for strategy, group in frame.groupby("strategy", sort=False):
        line = bus.plot(group["bytes"], group["busbw_GBps"], marker="o", label=strategy)[0]
        latency.plot(group["bytes"], group["time_us"], marker="o", color=line.get_color(), label=strategy)
        model_ax.plot(group["bytes"], group["time_us"], "o", color=line.get_color(), label=f"{strategy} measured")
        row = fit.set_index("strategy").loc[strategy]
        model_ax.plot(group["bytes"], predicted_us(strategy, group["bytes"], row, world, group_size), "-",
                      color=line.get_color(), alpha=0.7)
    for ax, label in ((bus, "busbw (GB/s)"), (latency, "time per all-reduce (us)"), (model_ax, "time (us)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("message size (bytes)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    latency.set_yscale("log")
    model_ax.set_yscale("log")
    bus.set_title(f"bus bandwidth, {world} ranks")
    latency.set_title("latency")
    bus.legend(fontsize=7)
    model_ax.set_title(f"alpha-beta model (lines) against measured (dots), {world} ranks")
    model_ax.legend(fontsize=6, ncol=2)
    return [save(fig, out_dir / "allreduce_bandwidth.png"), save(model_fig, out_dir / "allreduce_model.png")]


def headline(bus_table, time_table) -> list[str]:
    """The issue's two figures, when the sizes and strategies are there."""
    lines = []
    if {"ring", "backend"} <= set(bus_table.columns):
        big = bus_table.index.max()
        lines.append(f"ring busbw / backend busbw at {big} bytes: "
                     f"{bus_table.loc[big, 'ring'] / bus_table.loc[big, 'backend']:.2f}x")
    if {"ring", "recursive_doubling"} <= set(time_table.columns):
        small = time_table.index.min()
        lines.append(f"recursive doubling latency / ring latency at {small} bytes: "
                     f"{time_table.loc[small, 'recursive_doubling'] / time_table.loc[small, 'ring']:.2f}x")
    return lines


def main(args) -> int:
    import pandas as pd
    from models.distributed.launch import launch, launched_by_torchrun
    from models.training.provenance import provenance
    from sysdl_kernels.collectives import STRATEGIES
    strategies = list(args.strategies or STRATEGIES)
    unknown = set(strategies) - set(STRATEGIES)
    if unknown:
        raise SystemExit(f"unknown strategies {sorted(unknown)}; choose from {STRATEGIES}")
    if "backend" not in strategies:
        strategies.append("backend")                      # the baseline is always measured
    sizes = args.sizes or (QUICK_SIZES if args.quick else DEFAULT_SIZES)
    check_sizes(sizes, args.dtype)
    settings = {"sizes": list(sizes), "strategies": strategies, "group_size": args.group_size,
                "dtype": args.dtype, "rounds": 2 if args.quick else args.rounds, "max_iters": args.max_iters,
                "chunk_bytes": args.chunk_bytes}
    results = launch(_measure, args.world, (settings,), backend=args.backend)
    if launched_by_torchrun() and not results[0]:
        return 0                                          # not rank 0: rank 0 writes the tables
    frame, time_table, bus_table = tables(pd.DataFrame([row for rows in results for row in rows]))
    world = int(frame["world"].iloc[0])
    fit = fit_alpha_beta(frame, world, args.group_size)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out_dir / "allreduce.csv", index=False)
    fit.to_csv(out_dir / "allreduce_fit.csv", index=False)
    info = provenance()
    text = [f"# all-reduce, {world} ranks, {args.dtype}, backend baseline on {frame['device'].iloc[0]} "
            f"({info.get('cpu', '')}, torch {info.get('torch', '')})", "",
            f"message sizes are the bytes each rank reduces: whole {args.dtype} elements "
            f"({DTYPE_BYTES[args.dtype]} bytes each)", "",
            "## time per all-reduce (us, median over rounds of the slowest rank)", "",
            time_table.round(1).to_markdown(), "", "## busbw (GB/s)", "", bus_table.round(3).to_markdown(),
            "", "## alpha-beta fit", "", fit.round(3).to_markdown(index=False), "", *headline(bus_table, time_table)]
    (out_dir / "allreduce.md").write_text("\n".join(text) + "\n")
    print("\n".join(text))
    for path in plot(frame, fit, world, args.group_size, out_dir):
        print(f"wrote {path}")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from sysdl_kernels.collectives import DEFAULT_GROUP_SIZE, STRATEGIES
    parser.add_argument("--world", type=at_least(1), default=4, help="local ranks to spawn (ignored under torchrun)")
    parser.add_argument("--sizes", type=parse_size, nargs="+", default=None, metavar="BYTES",
                        help="message sizes, e.g. 4K 1M 64M, whole elements of --dtype "
                             "(default 4 KiB .. 64 MiB, x4 steps)")
    parser.add_argument("--strategies", nargs="+", default=None, choices=STRATEGIES,
                        help="the strategies to time (default: all)")
    parser.add_argument("--group-size", type=at_least(1), default=DEFAULT_GROUP_SIZE,
                        help="ranks per node for the hierarchical strategy")
    parser.add_argument("--chunk-bytes", type=parse_size, default=0, metavar="BYTES",
                        help="ring: send each step's block as pieces of this size, all in flight (0: one message)")
    parser.add_argument("--dtype", default="float32", choices=list(DTYPE_BYTES), help="element type reduced")
    parser.add_argument("--rounds", type=at_least(1), default=9, help="timed rounds per size (median)")
    parser.add_argument("--max-iters", type=at_least(1), default=50, help="most calls per round")
    parser.add_argument("--backend", default=None, choices=["gloo", "nccl"],
                        help="default: nccl with a GPU, else gloo")
    parser.add_argument("--out-dir", default=str(ALLREDUCE_DIR), help="where tables and figures go")
    command.add_quick_flag(parser, "3 sizes, 2 rounds (CI)")


if __name__ == "__main__":
    from models.shared.command import run_module
    raise SystemExit(run_module("models.distributed.allreduce_bench"))
