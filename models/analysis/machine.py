"""`sysdl machine`: this machine's limits, measured once and saved with its name.

    sysdl machine                      # measure, print, save runs/machine/<name>.json (+ .md)
    sysdl machine --name ci-box        # under another name (default: the host name, as asv's)
    sysdl machine --show               # print the saved figures without measuring again
    python -m models.analysis.machine  # the same without the console script

What is measured and how (sysdl_kernels/peaks.py has the details):
  * the theoretical fp32 FMA peak, cores x fp32 lanes x FMA units x 2 x clock, each factor with
    where it was found (/proc/cpuinfo, /sys, sysdl's table of known cores);
  * fp32 GEMM rates (2048 x 2048) by each path sysdl uses: torch.mm, F.linear, numpy's @ and
    sysdl's Numba GEMM, median of 5;
  * bandwidth from a STREAM-style triad with the working set in each cache level and in main
    memory, all threads at once.
About 30 s. The same figures are recorded by asv (benchmarks/bench_machine.py) beside every
benchmark run, which is what `sysdl bench-table` reads its roofline from; this command is for
reading them, and for a file that can be compared across machines. A saved file is never
replaced silently: --overwrite to measure again under the same name.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from models.shared.artifacts import MACHINE_DIR
from models.shared.errors import UserError


def measure(threads: int) -> dict:
    """Every figure, in FLOP/s and bytes/s, with the facts and sources behind the theoretical peak."""
    from sysdl_kernels import peaks
    from sysdl_kernels.runtime import configure_cpu_runtime, warn_if_busy
    runtime = configure_cpu_runtime(threads)
    warn_if_busy("sysdl machine")
    facts = peaks.cpu_facts()
    return {"threads": runtime["torch_threads"], "facts": facts,
            "theoretical_fma_peak": peaks.theoretical_fma_peak(facts, runtime["torch_threads"]),
            "gemm": peaks.gemm_rates(), "bandwidth": peaks.cache_bandwidths(facts, runtime["numba_threads"]),
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def lines(name: str, figures: dict) -> list[str]:
    """The figures as markdown: the peak's factors with their sources, then the measured rates."""
    facts = figures["facts"]
    peak = figures["theoretical_fma_peak"]
    out = [f"# {name}: {facts['cpu']}, {figures['threads']} threads (measured {figures['measured_at']})", "",
           "| figure | value | how it was found |", "|---|---|---|",
           f"| cores | {figures['threads']} | {facts['cores_source']} (threads used) |",
           f"| fp32 lanes per vector | {facts['fp32_lanes']} | {facts['fp32_lanes_source']} |",
           f"| FMA units per core | {facts['fma_units']} | {facts['fma_units_source']} |",
           f"| clock | {facts['clock_hz'] / 1e9:.2f} GHz | {facts['clock_source']} |",
           f"| **theoretical fp32 FMA peak** | **{peak / 1e9:.1f} GFLOP/s** | cores x lanes x FMA units x 2 x clock |"]
    for path, rate in figures["gemm"].items():
        out.append(f"| fp32 GEMM 2048^3, {path} | {rate / 1e9:.1f} GFLOP/s ({rate / peak:.0%} of the peak) | "
                   "measured, median of 5 |")
    for level, rate in figures["bandwidth"].items():
        out.append(f"| triad bandwidth, {level} | {rate / 1e9:.1f} GB/s | measured, all threads, median |")
    caches = ", ".join(f"L{c['level']} {c['type'].lower()} {c['bytes'] >> 10} KiB" for c in facts["caches"])
    out += ["", f"Caches (per core unless shared): {caches or 'not exposed'}."]
    if max(figures["gemm"].values()) > peak:
        out.append("A GEMM ran above the theoretical peak: the clock read here is lower than the one the "
                   "cores ran at (turbo), so the peak is an underestimate.")
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from models.shared.command import add_threads_flag
    parser.add_argument("--name", default=platform.node() or "this-machine",
                        help="the machine's name, as asv's (default: the host name)")
    parser.add_argument("--out-dir", default=str(MACHINE_DIR), help="where <name>.json and <name>.md go")
    parser.add_argument("--show", action="store_true", default=False, help="print the saved figures, measure nothing")
    parser.add_argument("--overwrite", action="store_true", default=False,
                        help="measure again in place of a saved file of the same name")
    add_threads_flag(parser)


def main(args) -> int:
    path = Path(args.out_dir) / f"{args.name}.json"
    if args.show:
        if not path.exists():
            raise UserError(f"no saved figures at {path}: run `sysdl machine --name {args.name}` first")
        print("\n".join(lines(args.name, json.loads(path.read_text()))))
        return 0
    if path.exists() and not args.overwrite:
        raise UserError(f"{path} exists (measured before): `sysdl machine --show` prints it, --overwrite measures again")
    figures = measure(args.threads or os.cpu_count() or 1)
    text = "\n".join(lines(args.name, figures))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=1))
    path.with_suffix(".md").write_text(text + "\n")
    print(text)
    print(f"\nsaved {path} and {path.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    from models.shared.command import run_module
    raise SystemExit(run_module("models.analysis.machine"))
