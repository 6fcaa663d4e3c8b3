"""`sysdl triton-report`: every shipped Triton kernel and configuration compiled for sm_80 and sm_90
on this machine, GPU or not, with registers, spills, shared memory and occupancy per configuration.

    sysdl triton-report                      # both targets: table printed, runs/triton_report/triton_report.{csv,md}
    sysdl triton-report --targets 90         # H100/H200 only
    python -m models.gpu.triton_report       # the same without the console script

The compiling is sysdl_kernels.triton_compile (its docstring says how occupancy and the tile's
arithmetic intensity are computed). Flagged: configurations that spill registers to local
memory or cannot keep two blocks on an SM; a configuration that does not compile, or needs more
shared memory than a block may have, fails the command (exit 1): the GPU would reject it. About a
minute per target the first time (Triton caches the results, so a second run takes seconds).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from models.shared.artifacts import TRITON_REPORT_DIR

COLUMNS = ["kernel", "config", "target", "registers", "spill_bytes", "shared_bytes", "blocks_per_sm",
           "warps_per_sm", "occupancy", "limited_by", "tile_flops_per_byte", "flags"]


def report_table(rows: list[dict]):
    """The rows as a frame in COLUMNS order, kernels grouped, each kernel's configurations by target."""
    import pandas as pd
    frame = pd.DataFrame(rows)[COLUMNS + ["launchable"]]
    return frame.sort_values(["kernel", "target"], kind="stable").reset_index(drop=True)


def summary(frame) -> list[str]:
    """One line per (kernel, target): how many configurations, how many flagged and why."""
    lines = []
    for (kernel, target), rows in frame.groupby(["kernel", "target"], sort=False):
        flagged = rows[rows["flags"] != ""]
        spills = int((rows["spill_bytes"] > 0).sum())
        one_block = int((rows["blocks_per_sm"] < 2).sum())
        lines.append(f"{kernel} on {target}: {len(rows)} configuration{'s' * (len(rows) != 1)} compiled, "
                     f"{len(flagged)} flagged ({spills} spill, {one_block} below two blocks per SM); "
                     f"best occupancy {rows['occupancy'].max():.0%}")
    return lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from sysdl_kernels.triton_compile import SM_LIMITS
    parser.add_argument("--targets", type=int, nargs="+", choices=sorted(SM_LIMITS), default=sorted(SM_LIMITS),
                        help="CUDA compute capabilities to compile for (80: A100, 90: H100/H200)")
    parser.add_argument("--out-dir", default=str(TRITON_REPORT_DIR), help="where triton_report.csv and .md go")


def main(args) -> int:
    from models.shared.tables import write_table
    from sysdl_kernels.triton_compile import SM_LIMITS, CompileError, compile_all
    try:
        rows = compile_all(tuple(args.targets), progress=True)
    except CompileError as err:
        print(f"error: a shipped Triton kernel does not compile: {err}")
        return 1
    frame = report_table(rows)
    lines = summary(frame)
    footer = ("Registers per thread, spill bytes (the per-thread stack frame), shared memory per block (static + "
              "Triton's pipeline buffers), theoretical blocks and warps per SM ("
              + "; ".join(limits.name for limits in (SM_LIMITS[t] for t in args.targets))
              + "), tile FLOPs per byte loaded. Flags: spills, fewer than two blocks per SM.\n\n" + "\n".join(
                  f"- {line}" for line in lines))
    table = frame.drop(columns=["launchable"])
    write_table(table, Path(args.out_dir), "triton_report", title="# Triton kernels compiled for GPU targets",
                footer=footer, floatfmt=".3g")
    print(table.to_markdown(index=False, floatfmt=".3g"))
    print("\n".join(lines))
    unlaunchable = frame[~frame["launchable"]]
    if len(unlaunchable):
        print(f"error: {len(unlaunchable)} configuration(s) cannot launch: "
              + "; ".join(f"{r.kernel} {r.config} {r.target}: {r.flags}" for r in unlaunchable.itertuples()))
        return 1
    print(f"wrote {Path(args.out_dir) / 'triton_report.md'} and .csv")
    return 0


if __name__ == "__main__":
    from models.shared.command import run_module
    raise SystemExit(run_module("models.gpu.triton_report"))
