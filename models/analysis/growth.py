"""`sysdl growth`: how each implementation's time grows with its FLOPs, and where that stops being linear.

For three kernel families, sweeps the problem size, times every implementation, fits time against
FLOPs and says where each leaves its linear regime and why: its working set against this
machine's L1, L2 and L3 sizes.

    sysdl growth                                  # conv, gemm and matmulnet; runs/growth/
    sysdl growth --family gemm --passes 3         # one family, the fastest of three passes
    sysdl growth --threads 1 --out-dir runs/g1    # one core: the per-core caches, no waiting on a sibling
    sysdl growth --quick --out-dir /tmp/growth    # three small sizes per sweep, 1 repeat: seconds
    python -m models.analysis.growth              # the same without the console script

Three families, each swept along the axes in ``SWEEPS``, each point timed for every implementation:
  * conv: nn.Conv2d (F.conv2d), torch-im2col (sysdl_kernels.conv.conv2d_torch) and numba
    (sysdl_kernels.numba_layers.conv2d, direct loops on numpy arrays); FLOPs = 2 N O OH OW C KH KW;
  * gemm: the fused GEMM + bias + ReLU, torch (addmm, then relu_) and sysdl's Numba GEMM
    (numba_gemm.gemm_bias_act); FLOPs = 2 M N K;
  * matmulnet: the Fashion-MNIST CNN as an nn.Module and as MatmulNet (CPU backend), seeded
    weights of a pruned config (4-2-25) or of widths scaled down from the base config; FLOPs
    from the config's cost (FashionCNNConfig.cost(): GEMMs, bias adds and ReLUs).
The working set of a point is its inputs, weights and outputs at 4 bytes (fp32); for the network,
every layer's output. Each implementation is checked against the first before it is timed.

Timing: after a checked call and a warm-up, the median of ``--repeats`` samples, the
implementations interleaved (A B C, A B C, ...: sysdl_kernels.runtime.interleaved) so noise on
this shared machine falls on all of them alike. A call shorter than MIN_SAMPLE_SECONDS is
repeated within a sample (``calls`` in the points table) so the clock's resolution and the
loop's own cost do not dominate it; the time per call is the sample over the calls. The whole
list of points is measured ``--passes`` times, one pass after the other, and each point keeps
its fastest pass: another process busy on the second core stalls every two-thread call by
scheduler slices (measured here: calls of 20 us to 5 ms on a quiet machine took 8, 24 or 32 ms
for a minute or more), and a pass a minute later usually misses that burst. ``pass_spread`` in
the points table says how far the passes disagreed.

The fit (a model, labelled so everywhere): per (family, sweep, implementation),
    time = overhead + FLOPs / rate
by non-negative least squares on the relative error (the sizes span decades; plain least squares
would fit only the largest points), on the sweep's linear regime: the largest set of its points
that lie within DEVIATION (25%) of one line (every line through two of the points is tried),
refitted on those points until the set stops changing. So a few sizes that have left the linear
regime do not drag the line that defines it. Points more than DEVIATION off the final line are
flagged; an implementation leaves its linear regime at the first size from which every larger
size is flagged, and the finding names its working set there against L1d, L2 and L3
(sysdl_kernels.peaks.cpu_facts()["caches"]). Two or more flagged sizes at the start instead say
from which size on the line holds (fixed costs the overhead term does not capture). A step
smaller than about twice the band can sit inside it, the line splitting it; so each
implementation's largest fall of the measured rate from one size to the next (over FALL, 20%) is
named beside the finding, with the working sets on either side.

Writes to --out-dir (default runs/growth): growth_points.{csv,md} (every measurement),
growth_fits.{csv,md} (fitted rates and overheads, and the regime findings), growth.md (both with
the machine and versions) and growth_<family>.png (a column per sweep: log-log time against
FLOPs and, below, GFLOP/s against FLOPs; the fitted lines; dotted lines where the working set
crosses a cache size). A folder that already
holds growth results is not replaced silently: --overwrite measures again in its place.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.shared.artifacts import GROWTH_DIR
from models.shared.errors import UserError

FAMILIES = ("conv", "gemm", "matmulnet")
DEVIATION = 0.25              # |measured / fit - 1| above this flags a point
FALL = 0.20                   # a drop of the measured rate from one size to the next worth naming
MIN_SAMPLE_SECONDS = 2e-3     # a timed sample repeats a shorter call until it lasts this long
FULL_REPEATS, QUICK_REPEATS = 9, 1
FULL_PASSES, QUICK_PASSES = 2, 1
PRUNED = (4, 2, 25)           # conv1, conv2 channels and hidden units of the stand-in pruned CNN
WIDTH_BATCH = 1000            # images per call in the matmulnet width sweep (--quick: QUICK_WIDTH_BATCH)
QUICK_WIDTH_BATCH = 100
BYTES = 4                     # fp32


@dataclass(frozen=True)
class Sweep:
    family: str
    name: str
    fixed: str                    # what stays fixed, for titles and the docs
    sizes: tuple[int, ...]        # the full run's sizes, increasing
    quick: tuple[int, ...]        # --quick's


SWEEPS = (
    Sweep("conv", "batch", "N at 16->16 channels, 26x26, 3x3 (the Fashion CNN's conv2)",
          (1, 2, 4, 8, 16, 32, 64, 128, 256), (1, 2, 4)),
    Sweep("conv", "channels", "C = O at batch 32, 26x26, 3x3", (4, 8, 16, 24, 32, 48, 64, 96, 128), (4, 6, 8)),
    Sweep("conv", "image", "H = W at batch 16, 16->16 channels, 3x3",
          (8, 12, 16, 20, 26, 32, 40, 56, 80, 112), (8, 10, 12)),
    Sweep("gemm", "square", "M = N = K", (32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048),
          (32, 48, 64)),
    Sweep("gemm", "K", "K at M = 1000, N = 100 (fc1-like)",
          (64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384), (64, 128, 256)),
    Sweep("matmulnet", "batch", "images per call, pruned 4-2-25 CNN", (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
          (1, 2, 4)),
    Sweep("matmulnet", "width", f"% of the base widths 16-16-100, batch {WIDTH_BATCH} ({QUICK_WIDTH_BATCH} --quick)",
          (6, 12, 25, 38, 50, 75, 100), (6, 12, 25)),
)


@dataclass
class Case:
    """One point of a sweep: its work, and a callable per implementation (the first is the oracle)."""
    label: str
    flops: float
    working_set: int                              # bytes: inputs + weights + outputs, fp32
    runs: dict = field(default_factory=dict)      # implementation -> fn() returning its output

# ---- the three families ----------------------------------------------------------------------


def conv_case(sweep: str, size: int, quick: bool = False) -> Case:
    import torch
    import torch.nn.functional as F
    from sysdl_kernels import flops
    from sysdl_kernels.conv import conv2d_torch
    from sysdl_kernels.numba_layers import conv2d as numba_conv2d
    n, c, hw = {"batch": (size, 16, 26), "channels": (32, size, 26), "image": (16, 16, size)}[sweep]
    cost = flops.analyze([flops.Conv(c, 3)], (c, hw, hw))[0]            # C -> O = C, 3x3
    gen = torch.Generator().manual_seed(size)
    x = torch.randn(n, c, hw, hw, generator=gen)                        # (N, C, H, W)
    w, b = torch.randn(c, c, 3, 3, generator=gen) * 0.1, torch.randn(c, generator=gen)
    xn, wn, bn = x.numpy(), w.numpy(), b.numpy()
    label = {"batch": f"N {n}", "channels": f"C=O {c}", "image": f"{hw}x{hw}"}[sweep]
    return Case(label, n * cost.gemm_flops, BYTES * (n * (cost.input_activations + cost.activations) + cost.params),
                {"nn.Conv2d": lambda: F.conv2d(x, w, b), "torch-im2col": lambda: conv2d_torch(x, w, b),
                 "numba": lambda: numba_conv2d(xn, wn, bn)})


def gemm_case(sweep: str, size: int, quick: bool = False) -> Case:
    import torch
    from sysdl_kernels import flops
    from sysdl_kernels.numba_gemm import gemm_bias_act
    m, n, k = (size, size, size) if sweep == "square" else (1000, 100, size)
    cost = flops.analyze([flops.Linear(n)], (k,))[0]                     # one row: (K,) -> (N,)
    gen = torch.Generator().manual_seed(size)
    a, w, b = torch.randn(m, k, generator=gen), torch.randn(n, k, generator=gen), torch.randn(n, generator=gen)
    out_torch, out_numba = torch.empty(m, n), np.empty((m, n), np.float32)
    an, wn, bn = a.numpy(), w.numpy(), b.numpy()
    label = f"M=N=K {size}" if sweep == "square" else f"K {k}"
    return Case(label, m * cost.gemm_flops, BYTES * (m * (k + n) + cost.params),
                {"torch addmm+relu": lambda: torch.addmm(b, a, w.T, out=out_torch).relu_(),
                 "numba": lambda: gemm_bias_act(an, wn, bn, relu=True, out=out_numba)})


def matmulnet_case(sweep: str, size: int, quick: bool = False) -> Case:
    import torch
    from models.nets.fashion_cnn import FashionCNN, FashionCNNConfig
    from sysdl_kernels.flops import totals
    from sysdl_kernels.matmul_net import MatmulNet
    base = FashionCNNConfig()
    if sweep == "batch":
        (c1, c2, hidden), batch = PRUNED, size
    else:
        c1, c2, hidden = (max(1, round(v * size / 100)) for v in (base.conv1_channels, base.conv2_channels,
                                                                  base.hidden_units))
        batch = QUICK_WIDTH_BATCH if quick else WIDTH_BATCH
    config = base.replace(conv1_channels=c1, conv2_channels=c2, hidden_units=hidden)
    torch.manual_seed(0)                                # seeded stand-in weights: time does not depend on them
    model = FashionCNN(config).eval()
    net = MatmulNet(model.state_dict(), config.to_dict())
    x = torch.randn(batch, config.in_channels, config.image_size, config.image_size,
                    generator=torch.Generator().manual_seed(size))
    costs = config.cost()
    stored = sum(c.activations for c in costs if c.kind in ("conv", "linear") or c.kind.endswith("pool"))
    working = BYTES * (batch * (costs[0].input_activations + stored) + sum(c.params for c in costs))
    label = f"batch {batch}" if sweep == "batch" else f"{c1}-{c2}-{hidden}"

    def module():
        with torch.inference_mode():
            return model(x)
    return Case(label, batch * totals(costs)["flops"], working, {"nn.Module": module, "MatmulNet": lambda: net(x)})


# One signature for all three; only matmulnet has a --quick size of its own (its width sweep's batch).
BUILDERS = {"conv": conv_case, "gemm": gemm_case, "matmulnet": matmulnet_case}

# ---- measuring -------------------------------------------------------------------------------


def _array(output) -> np.ndarray:
    return np.asarray(output.detach().numpy() if hasattr(output, "detach") else output, dtype=np.float64)


def check(case: Case) -> None:
    """Every implementation's output against the first's (also their first, compiling call)."""
    outputs = {name: _array(fn()) for name, fn in case.runs.items()}
    (oracle_name, oracle), *others = outputs.items()
    scale = max(1.0, float(np.abs(oracle).max(initial=0.0)))
    for name, out in others:
        if out.shape != oracle.shape or not np.allclose(out, oracle, rtol=1e-3, atol=1e-4 * scale):
            raise RuntimeError(f"{case.label}: {name} disagrees with {oracle_name} (max abs difference "
                               f"{np.abs(out - oracle).max() if out.shape == oracle.shape else out.shape}); "
                               "a wrong kernel is a bug, not a timing")


def time_case(case: Case, repeats: int) -> dict[str, tuple[float, float, int]]:
    """implementation -> (median and best seconds per call, calls per sample), interleaved after a warm-up."""
    from sysdl_kernels.runtime import interleaved_per_call
    check(case)
    per_call, calls = interleaved_per_call(case.runs, repeats, MIN_SAMPLE_SECONDS, warmup=1)
    return {name: (statistics.median(per_call[name]), min(per_call[name]), calls[name]) for name in case.runs}


def measure(families, quick: bool, repeats: int, passes: int = 1, progress: bool = True):
    """One row per (point, implementation): the points table before the fit. Every point is
    measured once per pass, the passes one after another over the whole sweep list, and each
    implementation keeps its fastest pass (``pass_spread``: slowest / fastest - 1)."""
    import pandas as pd
    from tqdm.auto import tqdm
    sweeps = [s for s in SWEEPS if s.family in families]
    points = [(s, size) for s in sweeps for size in (s.quick if quick else s.sizes)]
    rows = []
    for sweep, size in tqdm(points * passes, desc="growth", unit="point", disable=not progress):
        case = BUILDERS[sweep.family](sweep.name, size, quick)
        for name, (seconds, best, calls) in time_case(case, repeats).items():
            rows.append({"family": sweep.family, "sweep": sweep.name, "size": size, "label": case.label,
                         "implementation": name, "flops": case.flops, "working_set_bytes": case.working_set,
                         "seconds": seconds, "gflops": case.flops / seconds / 1e9, "best_seconds": best,
                         "calls": calls})
    frame = pd.DataFrame(rows)
    keys = ["family", "sweep", "size", "implementation"]
    by_point = frame.groupby(keys, sort=False)["seconds"]
    fastest = frame.loc[by_point.idxmin()].reset_index(drop=True)
    spread = (by_point.max() / by_point.min() - 1).rename("pass_spread").reset_index()
    return fastest.merge(spread, on=keys, how="left")


# ---- the fit and the linear regime ------------------------------------------------------------


@dataclass(frozen=True)
class LineFit:
    """time = overhead + flops / rate: a fit, not a measurement."""
    rate: float              # FLOP/s
    overhead: float          # seconds

    def seconds(self, flops):
        return self.overhead + np.asarray(flops, dtype=float) / self.rate


def fit_line(flops, seconds) -> LineFit:
    """Non-negative least squares on the relative error of time = overhead + flops / rate."""
    from scipy.optimize import nnls
    f, t = np.asarray(flops, dtype=float), np.asarray(seconds, dtype=float)
    design = np.column_stack([np.ones_like(t), f]) / t[:, None]          # each row divided by its time
    (overhead, per_flop), _ = nnls(design, np.ones_like(t))
    return LineFit(1.0 / per_flop if per_flop > 0 else float("inf"), float(overhead))


@dataclass
class Regime:
    fit: LineFit
    deviation: np.ndarray        # measured / fit - 1, per point
    flagged: np.ndarray          # |deviation| > limit
    fitted: np.ndarray           # the points the final fit used
    leaves_at: int | None        # first index from which every point is flagged; None: stays linear


def _candidate_lines(f, t):
    """Every line through two points (overhead >= 0, rate > 0), through one point and the origin,
    or flat at one point's time."""
    for i in range(len(t)):
        yield LineFit(f[i] / t[i], 0.0)
        yield LineFit(float("inf"), float(t[i]))
        for j in range(i + 1, len(t)):
            if f[j] != f[i]:
                per_flop = (t[j] - t[i]) / (f[j] - f[i])
                if per_flop > 0 and t[i] - per_flop * f[i] >= 0:
                    yield LineFit(1 / per_flop, float(t[i] - per_flop * f[i]))


def _most_within(f, t, limit: float) -> np.ndarray:
    """The largest set of points within ``limit`` of one candidate line (ties: the closer set)."""
    best_key, best = None, np.ones(len(t), dtype=bool)
    for line in _candidate_lines(f, t):
        deviation = t / line.seconds(f) - 1
        inside = np.abs(deviation) <= limit
        key = (int(inside.sum()), -float(np.sum(deviation[inside] ** 2)))
        if best_key is None or key > best_key:
            best_key, best = key, inside
    return best


def linear_regime(flops, seconds, limit: float = DEVIATION, rounds: int = 5) -> Regime:
    """The fit on the sweep's linear regime: the largest set of points within ``limit`` of one line,
    refitted by least squares on those points until the set stops changing; the points more than
    ``limit`` off the final line are flagged. Points in sweep order (increasing size)."""
    f, t = np.asarray(flops, dtype=float), np.asarray(seconds, dtype=float)
    keep = _most_within(f, t, limit) if len(t) > 2 else np.ones(len(t), dtype=bool)
    for _ in range(rounds):
        keep = keep if keep.sum() >= 2 else np.ones(len(t), dtype=bool)
        fit = fit_line(f[keep], t[keep])
        deviation = t / fit.seconds(f) - 1
        flagged = np.abs(deviation) > limit
        if np.array_equal(~flagged, keep):
            break
        keep = ~flagged
    first = len(flagged) - int(np.argmin(flagged[::-1])) if not flagged.all() else 0   # after the last unflagged
    return Regime(fit, deviation, flagged, keep, first if first < len(flagged) else None)


# ---- caches ----------------------------------------------------------------------------------


def cache_levels(caches: list[dict]) -> list[tuple[str, int, str]]:
    """(name, bytes, scope) of the data caches, smallest first: L1d, L2, L3 as /sys lists them."""
    levels = []
    for cache in sorted(caches, key=lambda c: c["level"]):
        if cache["type"].lower() == "instruction":
            continue
        name = f"L{cache['level']}" + ("d" if cache["type"].lower() == "data" else "")
        shared = any(mark in str(cache.get("shared_by", "")) for mark in ",-")
        levels.append((name, int(cache["bytes"]), "shared" if shared else "per core"))
    return levels


def size_text(n: float) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.3g} {unit}"
    return f"{int(n)} B"


def against_caches(working_set: int, levels) -> str:
    """'working set 3.1 MiB > L2 2 MiB per core (fits L3 300 MiB shared)'."""
    text = f"working set {size_text(working_set)}"
    if not levels:
        return text + " (cache sizes not exposed here)"
    larger = [lv for lv in levels if lv[1] < working_set]
    fits = next((lv for lv in levels if lv[1] >= working_set), None)
    if not larger:
        return f"{text} fits {fits[0]} {size_text(fits[1])} {fits[2]}"
    name, size, scope = larger[-1]
    return f"{text} > {name} {size_text(size)} {scope}" + (
        f" (fits {fits[0]} {size_text(fits[1])} {fits[2]})" if fits else ": from main memory")


def crossed(before: int, after: int, levels) -> list[str]:
    """The cache levels the working set fitted at ``before`` and exceeds at ``after``."""
    return [name for name, size, _ in levels if before <= size < after]


def _how_far(deviation) -> str:
    """'26%-125% slower than the fit' (faster, or 'off' when both)."""
    low, high = f"{np.abs(deviation).min():.0%}", f"{np.abs(deviation).max():.0%}"
    spread = low if low == high else f"{low}-{high}"
    side = "slower than" if (deviation > 0).all() else "faster than" if (deviation < 0).all() else "off"
    return f"{spread} {side} the fit"


def finding(labels, working_sets, regime: Regime, levels) -> str:
    """One line: where the implementation's linear regime starts and ends, and its working set where
    it ends. A run of two or more flagged sizes at the start means the line follows the larger sizes."""
    flagged, deviation, n = regime.flagged, regime.deviation, len(regime.flagged)
    if flagged.all():
        return f"no linear regime in this sweep: every size {_how_far(deviation)}"
    start = int(np.argmin(flagged))                      # the first size on the line
    start = start if start >= 2 else 0
    end = n if regime.leaves_at is None else regime.leaves_at
    parts = [f"linear from {labels[start]} on (below it {_how_far(deviation[:start])})" if start else
             "linear over the sweep" if end == n else ""]
    if end < n:
        parts.append(f"leaves it at {labels[end]}, {_how_far(deviation[end:])} from there; "
                     + against_caches(working_sets[end], levels))
        levels_crossed = crossed(working_sets[end - 1], working_sets[end], levels)
        parts.append(f"crosses {', '.join(levels_crossed)} from {labels[end - 1]}" if levels_crossed else
                     "no cache size crossed from the size before")
    isolated = [f"{labels[i]} ({deviation[i]:+.0%})" for i in np.flatnonzero(flagged[start:end]) + start]
    if isolated:
        parts.append(f"isolated deviations: {', '.join(isolated)}")
    return "; ".join(part for part in parts if part)


def largest_fall(labels, gflops, working_sets, levels, threshold: float = FALL) -> str:
    """The largest drop of the measured rate from one size to the next, if more than ``threshold``:
    a step the 25% band of the fit can hide when the line splits it (measured, not fitted)."""
    rates = np.asarray(gflops, dtype=float)
    if len(rates) < 2:
        return ""
    falls = 1 - rates[1:] / rates[:-1]
    i = int(np.argmax(falls))
    if falls[i] <= threshold:
        return ""
    levels_crossed = crossed(working_sets[i], working_sets[i + 1], levels)
    crossing = f", crossing {', '.join(levels_crossed)}" if levels_crossed else ""
    return (f"measured rate falls {falls[i]:.0%} from {labels[i]} to {labels[i + 1]} ({rates[i]:.0f} -> "
            f"{rates[i + 1]:.0f} GFLOP/s; working set {size_text(working_sets[i])} -> "
            f"{size_text(working_sets[i + 1])}{crossing})")


def fit_all(points, levels):
    """Per (family, sweep, implementation): the fit, the flags on the points, and the finding."""
    import pandas as pd
    points = points.copy()
    rows = []
    for (family, sweep, name), group in points.groupby(["family", "sweep", "implementation"], sort=False):
        group = group.sort_values("size")
        regime = linear_regime(group["flops"], group["seconds"])
        points.loc[group.index, "fit_seconds"] = regime.fit.seconds(group["flops"])
        points.loc[group.index, "deviation"] = regime.deviation
        points.loc[group.index, "flagged"] = regime.flagged
        rows.append({"family": family, "sweep": sweep, "implementation": name,
                     "fit_rate_GFLOPs": regime.fit.rate / 1e9, "fit_overhead_us": regime.fit.overhead * 1e6,
                     "points_fitted": f"{int(regime.fitted.sum())}/{len(group)}",
                     "max_measured_GFLOPs": group["gflops"].max(),
                     "regime": finding(list(group["label"]), list(group["working_set_bytes"]), regime, levels),
                     "largest_fall": largest_fall(list(group["label"]), group["gflops"],
                                                  list(group["working_set_bytes"]), levels)})
    return points, pd.DataFrame(rows)

# ---- outputs ---------------------------------------------------------------------------------


def crossing_flops(flops, working_sets, size: int) -> float | None:
    """The FLOPs at which a sweep's working set reaches ``size`` (log-log interpolation), if inside it."""
    ws, f = np.log(np.asarray(working_sets, float)), np.log(np.asarray(flops, float))
    if not (np.all(np.diff(ws) > 0) and ws[0] < np.log(size) <= ws[-1]):
        return None
    return float(np.exp(np.interp(np.log(size), ws, f)))


def _cache_lines(ax, ordered, levels) -> None:
    """Dotted verticals where the sweep's working set reaches each cache size."""
    for level, size, _ in levels:
        x = crossing_flops(ordered["flops"], ordered["working_set_bytes"], size)
        if x is not None:
            ax.axvline(x, ls=":", color="grey")
            ax.text(x, 0.98, f" {level} {size_text(size)}", transform=ax.get_xaxis_transform(), rotation=90,
                    va="top", ha="right", fontsize=7, color="grey")


def plot_family(family: str, points, fits, levels, path: Path) -> Path:
    """Per sweep, a column: time against FLOPs (top) and the rate against FLOPs (bottom, where a
    step the 25% band hides shows), measured points and the fitted line in both."""
    from models.shared.figures import new_figure, save
    sweeps = [s for s in SWEEPS if s.family == family and s.name in set(points["sweep"])]
    fig, axes = new_figure((5.2 * len(sweeps), 7.6), 2, len(sweeps))
    axes = np.asarray(axes).reshape(2, len(sweeps))
    colours = {name: f"C{i}" for i, name in enumerate(dict.fromkeys(points["implementation"]))}
    for (top, bottom), sweep in zip(axes.T, sweeps):
        mine = points[points["sweep"] == sweep.name]
        for name, group in mine.groupby("implementation", sort=False):
            group = group.sort_values("size")
            fit = fits[(fits["sweep"] == sweep.name) & (fits["implementation"] == name)].iloc[0]
            line = LineFit(fit["fit_rate_GFLOPs"] * 1e9, fit["fit_overhead_us"] / 1e6)
            xs = np.geomspace(group["flops"].min(), group["flops"].max(), 60)
            out = group[group["flagged"].astype(bool)]
            top.loglog(group["flops"], group["seconds"], "o", color=colours[name], ms=4, label=f"{name} (measured)")
            top.loglog(out["flops"], out["seconds"], "o", mfc="none", mec="red", ms=8)
            top.loglog(xs, line.seconds(xs), "--", color=colours[name], lw=1,
                       label=f"fit: {line.rate / 1e9:.0f} GFLOP/s + {line.overhead * 1e6:.0f} µs")
            bottom.semilogx(group["flops"], group["gflops"], "o-", color=colours[name], ms=4, lw=0.8, label=name)
            bottom.semilogx(xs, xs / line.seconds(xs) / 1e9, "--", color=colours[name], lw=1)
        ordered = mine.drop_duplicates("size").sort_values("size")
        for ax in (top, bottom):
            _cache_lines(ax, ordered, levels)
            ax.set_xlabel("FLOPs per call")
        top.set_title(f"{family}: {sweep.name} ({sweep.fixed})", fontsize=8)
        top.set_ylabel("median seconds per call")
        bottom.set_ylabel("GFLOP/s (measured: dots; fit: dashed)")
        bottom.set_ylim(bottom=0)
        top.legend(fontsize=6, loc="best")
        bottom.legend(fontsize=6, loc="best")
    fig.suptitle(f"{family}: median time per call (measured: dots) against time = overhead + FLOPs / rate "
                 f"(fit: dashed); red rings > {DEVIATION:.0%} off the fit; dotted: working set = a cache size",
                 fontsize=8)
    return save(fig, path)


def _regime_line(row) -> str:
    return row.regime + (f" ({row.largest_fall})" if row.largest_fall else "")


def write_outputs(points, fits, levels, out_dir: Path, header: list[str]) -> list[Path]:
    """Every table and plot, after removing an earlier run's (--overwrite), so no family's stale
    plot stays beside the new results."""
    from models.shared.tables import write_table
    for old in _results(out_dir):
        old.unlink()
    shown = points.assign(working_set=points["working_set_bytes"].map(size_text),
                          deviation=points["deviation"].map(lambda d: f"{d:+.0%}"),
                          pass_spread=points["pass_spread"].map(lambda d: f"{d:.0%}"))
    columns = ["family", "sweep", "label", "implementation", "flops", "working_set", "seconds", "gflops",
               "best_seconds", "calls", "pass_spread",
               "fit_seconds", "deviation", "flagged"]
    write_table(points, out_dir, "growth_points")
    (out_dir / "growth_points.md").write_text(
        "# growth: every point (seconds: median, best_seconds: fastest sample, both measured; fit_seconds "
        "and deviation: from the fit)\n\n"
        + shown[columns].to_markdown(index=False, floatfmt=".4g") + "\n")
    rates = fits.drop(columns=["regime", "largest_fall"])
    write_table(fits, out_dir, "growth_fits", title="# growth: fitted time = overhead + FLOPs / rate (a fit)",
                floatfmt=".1f")
    lines = [f"- {r.family}/{r.sweep}, {r.implementation}: {_regime_line(r)}" for r in fits.itertuples()]
    text = [*header, "", "## Fitted rates (least squares on the measured points; fits, not measurements)", "",
            rates.to_markdown(index=False, floatfmt=".1f"), "",
            "max_measured_GFLOPs: the highest of the sweep's measured (median) rates.", "",
            f"## Linear regime (within {DEVIATION:.0%} of the fit; in brackets the largest fall of the measured "
            f"rate from one size to the next, where over {FALL:.0%})", "", *lines]
    (out_dir / "growth.md").write_text("\n".join(text) + "\n")
    pngs = [plot_family(family, points[points["family"] == family], fits[fits["family"] == family], levels,
                        out_dir / f"growth_{family}.png") for family in dict.fromkeys(points["family"])]
    return [out_dir / "growth.md", out_dir / "growth_points.csv", out_dir / "growth_fits.csv", *pngs]

# ---- the command -----------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from models.shared.command import add_quick_flag, add_run_flags, add_threads_flag, at_least
    parser.add_argument("--family", nargs="+", choices=FAMILIES, default=list(FAMILIES),
                        help="the kernel families to sweep")
    add_quick_flag(parser, "three small sizes per sweep and 1 repeat: a smoke run in seconds")
    parser.add_argument("--repeats", type=at_least(1), default=None,
                        help=f"timed samples per point, median taken (default: {FULL_REPEATS}, "
                             f"{QUICK_REPEATS} with --quick)")
    parser.add_argument("--passes", type=at_least(1), default=None,
                        help=f"times the whole list of points is measured, the fastest pass kept "
                             f"(default: {FULL_PASSES}, {QUICK_PASSES} with --quick)")
    add_threads_flag(parser, "torch and Numba threads (default: all cores)")
    parser.add_argument("--out-dir", default=str(GROWTH_DIR), help="where the tables and plots go")
    parser.add_argument("--overwrite", action="store_true", default=False,
                        help="measure again in place of growth results already in --out-dir")
    add_run_flags(parser, track=False)


def _results(out_dir: Path) -> list[Path]:
    """The files a growth run writes, where they exist."""
    patterns = ("growth.md", "growth_points.*", "growth_fits.*", "growth_*.png")
    return sorted(p for pattern in patterns for p in out_dir.glob(pattern)) if out_dir.is_dir() else []


def refuse_to_replace(out_dir: Path, overwrite: bool) -> None:
    found = [p.name for p in _results(out_dir)]
    if found and not overwrite:
        raise UserError(f"{out_dir} already holds growth results ({', '.join(found[:3])}"
                        f"{', ...' if len(found) > 3 else ''}): pass --overwrite to measure again in their place, "
                        "or --out-dir to write elsewhere")


def _load() -> str:
    import os
    return f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "unknown"


def main(args) -> int:
    from models.training.provenance import provenance
    from sysdl_kernels.peaks import cpu_facts
    from sysdl_kernels.runtime import configure_cpu_runtime
    out_dir = Path(args.out_dir)
    refuse_to_replace(out_dir, args.overwrite)
    repeats = args.repeats or (QUICK_REPEATS if args.quick else FULL_REPEATS)
    passes = args.passes or (QUICK_PASSES if args.quick else FULL_PASSES)
    runtime = configure_cpu_runtime(args.threads)
    levels = cache_levels(cpu_facts()["caches"])
    started, load_before = time.perf_counter(), _load()
    points = measure(args.family, args.quick, repeats, passes, progress=not args.no_progress)
    points, fits = fit_all(points, levels)
    info = provenance()
    caches = ", ".join(f"{name} {size_text(size)} {scope}" for name, size, scope in levels) or "not exposed"
    header = [f"# growth: time against work ({'--quick, ' if args.quick else ''}{info['cpu']})", "",
              f"torch {info['torch']} ({runtime['torch_threads']} threads), numpy {info['numpy']}, "
              f"Numba threads {runtime['numba_threads']}, commit {info['commit']}; caches: {caches}. "
              f"Median of {repeats} samples per point after a warm-up, implementations interleaved, the "
              f"fastest of {passes} pass{'es' if passes > 1 else ''}; "
              f"{time.perf_counter() - started:.0f} s of measuring; load average {load_before} before, {_load()} after "
              "(other processes on these cores add noise)."]
    written = write_outputs(points, fits, levels, out_dir, header)
    print("\n".join(header + [""] + [f"{r.family}/{r.sweep}, {r.implementation}: {r.fit_rate_GFLOPs:.1f} GFLOP/s "
                                       f"+ {r.fit_overhead_us:.1f} µs (fit); {_regime_line(r)}"
                                       for r in fits.itertuples()]))
    print("wrote " + ", ".join(map(str, written)))
    return 0


if __name__ == "__main__":
    from models.shared.command import run_module
    raise SystemExit(run_module("models.analysis.growth"))
