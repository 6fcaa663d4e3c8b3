"""`sysdl optimus`: the Optimus performance models (Peng et al., EuroSys 2018) on sysdl's logs.

    sysdl optimus loss                          # latest finished `sysdl train` run, per-epoch train_loss
    sysdl optimus loss --run-id ID --metric step_loss --target 0.3
    sysdl optimus loss --experiment sweep-model --target 0.3
    sysdl optimus loss --csv curve.csv --target 0.3          # columns step (or epoch), loss
    sysdl optimus regress --csv logs.csv --depth 8 --device cuda --target 0.3
    sysdl optimus regress --experiment sweep-model --depth 4 --device cpu
    sysdl optimus speed                         # `sysdl ps-bench`'s measured speeds x the latest run's steps
    sysdl optimus speed --csv speeds.csv --batch 128 --steps 7000 --hold-out 3,2 2,4
    sysdl optimus speed --illustrative          # ILLUSTRATIVE speeds (made up), labelled so
    python -m models.analysis.optimus loss ...           # the same without the console script

loss: fits l(k) = 1 / (b0 k + b1) + b2 (b >= 0) to one training curve and reports R^2, the mean
absolute percentage error and the steps (or epochs) to each target loss, k* = (1/(l* - b2) - b1) / b0;
a target at or below b2 is unreachable and said so. Without --target: 0.9, 0.75 and 0.5 x the
last measured loss. A fit with R^2 below MIN_R2 (a flat, noisy or short curve) predicts nothing:
a warning, no steps in the table, exit status 1 (and `speed` asks for --steps instead). k is the
MLflow step of the metric: the epoch (1, 2, ...) for train_loss, the number of SGD steps done
for step_loss (a minibatch's loss, noisy).

regress: fits that curve to every log, then regresses log b0, log b1 and b2 (linear: it often
sits at 0) on [1, depth, device indicators] by least squares
(sysdl_kernels.perf_model.fit_coefficient_regression) and predicts a new model's curve and
epochs to target from its depth and device. What our data supports: the default store holds
CPU runs of one network family (FashionCNN: conv, conv, fc, fc; depth 4 unless a run logs a
``model.depth`` param; the sweeps vary widths and kernels, not depth), so from MLflow alone the
regression has no depth or device term and predicts the mean curve (it says so). A CSV of logs
with ``log, depth, device, epoch|step, loss`` columns from several depths and devices is what
gives those terms meaning; a device absent from the logs is refused, not guessed.

speed: fits the synchronous parameter-server step time
    step_time(w, p) = t0 M/w + t1 + t2 w/p + t3 w + t4 p     (t >= 0, NNLS; terms in perf_model)
to measured (workers, ps, steps_per_s): by default `sysdl ps-bench`'s CSV (its synchronous rows;
M from its global_batch column), or --csv FILE; a configuration measured several times counts
once, at the median of its repeats. Some (w, p) configurations are held out of the fit
(--hold-out, or every HOLD_OUT_EVERY-th while MIN_FIT_CONFIGURATIONS stay in) and the model's
error on them is reported: the check that it predicts speeds it was not fitted to. Then time to
target = steps to target / speed(w, p) against the workers for 2 and 4 parameter servers, up to
EXTRAPOLATE_WORKERS x the most workers measured: predicted by the fitted model, solid over the
workers measured with that p and dashed beyond (extrapolation; a p never measured is dashed
throughout), with the measured points marked (steps / measured speed). --illustrative fits an
ILLUSTRATIVE table generated from made-up coefficients instead (labelled so in every output).
Steps to target come from --steps, or from the loss model of a run (--target; default: the
run's last measured loss; epochs x the run's steps per epoch). Synchronous training takes the
same steps whatever w and p (one step is single-process SGD on the global batch), so the steps
carry over when the parameter-server job's global batch M is the logged run's batch: ps-bench
uses `sysdl train`'s by default.

Writes tables (CSV) and figures (PNG) under --out-dir (default runs/optimus).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from models.shared.artifacts import OPTIMUS_DIR, PS_BENCH_DIR

TRAIN_EXPERIMENT = "fashion-cnn"            # `sysdl train --experiment` default (models/training/command.py)
MIN_DEFAULT_POINTS = 4                      # a run picked by default must over-determine the 3 coefficients
DEFAULT_DEPTH = 4                           # FashionCNN: conv, conv, fc, fc
DEFAULT_TARGET_FRACTIONS = (0.9, 0.75, 0.5)  # of the last measured loss, when no --target is given
MIN_R2 = 0.25                               # below it the loss model explains too little of a curve
                                            # (flat, noisy, too short) for its steps to mean anything
ILLUSTRATIVE_BATCH = 128                    # M, examples per synchronous step
CURVE_SERVERS = (2, 4)                      # the time-to-target curves: p = 2 and p = 4 servers
EXTRAPOLATE_WORKERS = 2                     # the curves run to this x the most workers measured
HOLD_OUT_EVERY = 4                          # default held-out points: every 4th configuration ...
MIN_FIT_CONFIGURATIONS = 6                  # ... while this many (one more than the coefficients) fit
# Made-up step-time coefficients (seconds per unit of each term) for the illustrative speeds:
# 0.4 ms per example of compute, 5 ms fixed, 8 ms per model moved per server link, 1 ms per
# worker and 2 ms per server of overhead. Not measured on anything.
ILLUSTRATIVE_THETA = (4e-4, 5e-3, 8e-3, 1e-3, 2e-3)


@dataclass
class Curve:
    """One training curve: loss at k steps or epochs (``unit``) and where it came from."""
    k: list[float]
    loss: list[float]
    unit: str                                # "epoch" or "step"
    source: str
    steps_per_epoch: float | None = None


# ---- reading curves -----------------------------------------------------------------------

def read_table(path: str | Path, columns: str):
    """The CSV at ``path`` as a DataFrame; ValueError naming the file when it cannot be read
    (``columns`` says what it should hold)."""
    import pandas as pd
    try:
        return pd.read_csv(path, comment="#")
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file; expected a CSV with columns {columns}") from None
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path}: the file is empty; expected a header line ({columns}) and rows") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path}: not a readable CSV ({reason}); expected columns {columns}") from None


def numeric(frame, path: str | Path, columns) -> None:
    """Make ``columns`` of ``frame`` numbers in place; ValueError naming the file, the data row
    and the cell that is not one, or a table without rows."""
    import pandas as pd
    if frame.empty:
        raise ValueError(f"{path}: a header but no rows; expected one row per point")
    for column in columns:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() & frame[column].notna()
        if bad.any():
            row = int(bad.to_numpy().argmax())
            raise ValueError(f"{path}: data row {row + 1}, column {column}: {frame[column].iloc[row]!r} "
                             f"is not a number")
        frame[column] = values


def read_csv_curve(path: str | Path):
    """A DataFrame with a k column (``step`` or ``epoch``) and ``loss``; returns (frame, unit)."""
    frame = read_table(path, "step (or epoch) and loss")
    unit = next((c for c in ("step", "epoch") if c in frame.columns), None)
    if unit is None or "loss" not in frame.columns:
        raise ValueError(f"{path}: expected columns 'step' (or 'epoch') and 'loss', found {list(frame.columns)}")
    numeric(frame, path, [unit, "loss"])
    return frame, unit


def csv_curve(path: str | Path) -> Curve:
    frame, unit = read_csv_curve(path)
    return Curve(frame[unit].tolist(), frame["loss"].tolist(), unit, str(path))


def _steps_per_epoch(history: dict) -> float | None:
    """Logged by `sysdl sweep`; for `sysdl train` runs, whose step_loss has one point per SGD
    step, the steps logged over the epochs logged."""
    if history.get("steps_per_epoch"):
        return history["steps_per_epoch"][-1][1]
    if history.get("step_loss") and history.get("train_loss"):
        return round((history["step_loss"][-1][0] + 1) / history["train_loss"][-1][0])
    return None


def run_curve(run_id: str, metric: str, uri: str | None = None) -> Curve:
    from models.training import tracking
    history = tracking.metric_history(run_id, [metric, "train_loss", "step_loss", "steps_per_epoch"], uri)
    points = history[metric]
    if not points:
        raise ValueError(f"run {run_id} has no {metric!r} metric in {tracking.tracking_uri(uri)}; "
                         "use --metric train_loss (per epoch) or step_loss (per step)")
    unit = "epoch" if metric == "train_loss" else "step"
    return Curve([s for s, _ in points], [v for _, v in points], unit, f"run {run_id} {metric}",
                 _steps_per_epoch(history))


def finished_runs(experiment: str, uri: str | None = None) -> list[dict]:
    """The experiment's FINISHED runs, newest first."""
    from models.training import tracking
    runs = [r for r in tracking.find_runs(experiment, uri=uri) if r["status"] == "FINISHED"]
    return sorted(runs, key=lambda r: r["start_time"], reverse=True)


def latest_curve(experiment: str, metric: str, uri: str | None = None) -> Curve:
    """The newest FINISHED run of ``experiment`` with at least MIN_DEFAULT_POINTS of ``metric``."""
    from models.training import tracking
    runs = finished_runs(experiment, uri)
    for skipped, run in enumerate(runs):
        curve = run_curve(run["run_id"], metric, uri) if metric in run["metrics"] else None
        if curve and len(curve.k) >= MIN_DEFAULT_POINTS:
            if skipped:
                print(f"note: skipped {skipped} newer run(s) with fewer than {MIN_DEFAULT_POINTS} {metric} points")
            return curve
    raise ValueError(f"no FINISHED run in experiment {experiment!r} of {tracking.tracking_uri(uri)} has "
                     f"{MIN_DEFAULT_POINTS}+ {metric!r} points: run `sysdl train`, or pass --run-id / --csv")


def curve_from_args(args, csv_path: str | None) -> Curve:
    if csv_path:
        return csv_curve(csv_path)
    if args.run_id:
        return run_curve(args.run_id, args.metric, args.uri)
    return latest_curve(args.experiment, args.metric, args.uri)


# ---- loss -------------------------------------------------------------------------------

def target_table(fit, targets: list[float], unit: str, steps_per_epoch: float | None):
    """Steps (or epochs) to each target; an unreachable one reads 'unreachable' with the reason."""
    import pandas as pd
    from sysdl_kernels.perf_model import UnreachableTargetError
    rows = []
    for target in targets:
        row = {"target_loss": target}
        if poor_fit(fit):
            row[f"{unit}s_to_target"], row["note"] = float("nan"), f"no prediction: R^2 {fit.r2:.3f} < {MIN_R2}"
            rows.append(row)
            continue
        try:
            k = fit.steps_to(target)
            row[f"{unit}s_to_target"] = k
            if unit == "step" and steps_per_epoch:
                row["epochs_to_target"] = k / steps_per_epoch
            elif unit == "epoch" and steps_per_epoch:
                row["steps_to_target"] = k * steps_per_epoch
            row["extrapolated"] = k > fit.k_max
            if k == 0:
                row["note"] = "the fitted curve starts below it"
        except UnreachableTargetError:
            row[f"{unit}s_to_target"], row["note"] = float("nan"), f"unreachable: at or below b2 = {fit.b2:.4g}"
        rows.append(row)
    return pd.DataFrame(rows)


def poor_fit(fit) -> bool:
    """A fit whose R^2 is below MIN_R2 (a predicted curve, R^2 NaN, is judged by its logs)."""
    return fit.r2 < MIN_R2


def poor_fit_warning(fit, source: str) -> str:
    return (f"warning: the loss model fits {source} poorly (R^2 {fit.r2:.3f}, below {MIN_R2}): the curve "
            f"does not fall like 1 / (b0 k + b1) + b2 (flat, noisy or too short), so it predicts no steps "
            f"to target; fit a longer curve, or train_loss rather than the noisier step_loss")


def fit_table(fit, source: str, unit: str):
    import pandas as pd
    return pd.DataFrame([{"source": source, "k": unit, "b0": fit.b0, "b1": fit.b1, "b2": fit.b2,
                          "r2": fit.r2, "mape_pct": fit.mape, "points": fit.n_points, "k_max": fit.k_max}])


def plot_loss(fit, targets: list[float], unit: str, path: Path, title: str, curve: Curve | None = None) -> Path:
    """The fit over the measured range (solid) against the measured points, and its prediction
    beyond (dashed) to the farthest reachable target (at most 10x the measured range)."""
    import numpy as np
    from models.shared.figures import new_figure, save
    fig, ax = new_figure((7, 4))
    reach = [k for k in (_safe_steps(fit, t) for t in targets) if k is not None]
    k_end = min(max([1.5 * fit.k_max, *(1.05 * k for k in reach)]), 10 * fit.k_max)
    k_start = min(curve.k) if curve else 0.0
    inside, beyond = np.linspace(k_start, fit.k_max, 200), np.linspace(fit.k_max, k_end, 200)
    if curve is not None:
        marker = "o" if len(curve.k) <= 60 else ","
        ax.plot(curve.k, curve.loss, marker, color="0.3", ms=4, label="measured")
        ax.plot(inside, fit.predict(inside), "-", color="C0", label=f"fit (R^2 {fit.r2:.3f}, MAPE {fit.mape:.1f}%)")
    else:
        ax.plot(inside, fit.predict(inside), "-", color="C0", label="predicted, over the logs' range")
    ax.plot(beyond, fit.predict(beyond), "--", color="C0", label="prediction beyond")
    ax.axhline(fit.b2, color="C3", lw=0.8, ls=":", label=f"asymptote b2 = {fit.b2:.3g}")
    for target in targets:
        ax.axhline(target, color="C2", lw=0.6, alpha=0.6)
    ax.set(xlabel=unit + "s", ylabel="training loss")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save(fig, path)


def _safe_steps(fit, target: float) -> float | None:
    from sysdl_kernels.perf_model import UnreachableTargetError
    try:
        return fit.steps_to(target)
    except UnreachableTargetError:
        return None


def cmd_loss(args) -> int:
    import pandas as pd
    from sysdl_kernels.perf_model import fit_loss_curve
    curve = curve_from_args(args, args.csv)
    fit = fit_loss_curve(curve.k, curve.loss)
    targets = args.target or [round(f * curve.loss[-1], 4) for f in DEFAULT_TARGET_FRACTIONS]
    spe = args.steps_per_epoch or curve.steps_per_epoch
    coefficients, table = fit_table(fit, curve.source, curve.unit), target_table(fit, targets, curve.unit, spe)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    coefficients.to_csv(out / "loss_fit.csv", index=False)
    table.to_csv(out / "loss_targets.csv", index=False)
    pd.DataFrame({curve.unit: curve.k, "loss": curve.loss, "fitted": fit.predict(curve.k)}).to_csv(
        out / "loss_curve.csv", index=False)
    print(f"l(k) = 1 / (b0 k + b1) + b2 fitted to {curve.source} (k in {curve.unit}s)\n")
    print(coefficients.drop(columns="source").to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print("\n" + table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    plot = plot_loss(fit, targets, curve.unit, out / "loss_fit.png", f"Optimus loss model: {curve.source}", curve)
    print(f"\ntables: {out / 'loss_fit.csv'}, {out / 'loss_targets.csv'}, {out / 'loss_curve.csv'}\nfigure: {plot}")
    if poor_fit(fit):
        print(poor_fit_warning(fit, curve.source), file=sys.stderr)
        return 1
    reachable = table[f"{curve.unit}s_to_target"].notna()
    return 0 if args.target is None or reachable.all() else 1


# ---- regress ------------------------------------------------------------------------------

def csv_logs(path: str | Path) -> list[dict]:
    """Long-form logs: one row per point with columns log, depth, device, step|epoch, loss."""
    frame, unit = read_csv_curve(path)
    missing = {"log", "depth", "device"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: a logs CSV needs columns log, depth, device, {unit}, loss; "
                         f"missing {sorted(missing)}")
    numeric(frame, path, ["depth"])
    return [{"log": str(name), "depth": float(group["depth"].iloc[0]), "device": str(group["device"].iloc[0]),
             "curve": Curve(group[unit].tolist(), group["loss"].tolist(), unit, f"{path}:{name}")}
            for name, group in frame.groupby("log", sort=False)]


def mlflow_logs(experiment: str, metric: str, depth_param: str, uri: str | None = None) -> list[dict]:
    """Every FINISHED run of ``experiment`` with enough points; depth from ``depth_param``
    (DEFAULT_DEPTH when absent: FashionCNN's four layers), device from ``train.device``."""
    logs = []
    for run in finished_runs(experiment, uri):
        if metric not in run["metrics"]:
            continue
        curve = run_curve(run["run_id"], metric, uri)
        if len(curve.k) >= MIN_DEFAULT_POINTS:
            logs.append({"log": run["run_id"], "depth": float(run["params"].get(depth_param, DEFAULT_DEPTH)),
                         "device": run["params"].get("train.device", "cpu"), "curve": curve})
    if len(logs) < 2:
        raise ValueError(f"experiment {experiment!r} has {len(logs)} FINISHED run(s) with {MIN_DEFAULT_POINTS}+ "
                         f"{metric!r} points; the regression needs at least 2 logs (or pass --csv)")
    return logs


def cmd_regress(args) -> int:
    import pandas as pd
    from sysdl_kernels.perf_model import LossFit, fit_coefficient_regression, fit_loss_curve, loss_curve
    logs = csv_logs(args.csv) if args.csv else mlflow_logs(args.experiment, args.metric, args.depth_param, args.uri)
    rows = []
    for log in logs:
        fit = fit_loss_curve(log["curve"].k, log["curve"].loss)
        rows.append({"log": log["log"], "depth": log["depth"], "device": log["device"], "b0": fit.b0,
                     "b1": fit.b1, "b2": fit.b2, "r2": fit.r2, "mape_pct": fit.mape, "k_max": fit.k_max})
    per_log = pd.DataFrame(rows)
    model = fit_coefficient_regression(per_log["depth"], per_log["device"], per_log[["b0", "b1", "b2"]])
    weights = pd.DataFrame(model.weights, index=["log b0", "log b1", "b2"], columns=list(model.features))
    b0, b1, b2 = model.predict(args.depth, args.device)
    k_max = float(per_log["k_max"].max())
    predicted = LossFit(b0, b1, b2, float("nan"), float("nan"), 0, k_max)
    unit = logs[0]["curve"].unit                      # one CSV column or one metric: the same for all
    targets = args.target or [round(float(loss_curve(k_max, b0, b1, b2)), 4)]
    table = target_table(predicted, targets, unit, None)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    per_log.to_csv(out / "regress_logs.csv", index=False)
    weights.to_csv(out / "regress_weights.csv")
    table.assign(depth=args.depth, device=args.device, b0=b0, b1=b1, b2=b2).to_csv(
        out / "regress_prediction.csv", index=False)
    fmt = lambda v: f"{v:.4g}"  # noqa: E731
    print(f"loss-curve coefficients of {len(per_log)} logs (k in {unit}s)")
    print(per_log.to_string(index=False, float_format=fmt))
    print(f"\nleast squares of log b0, log b1 and b2 on {', '.join(model.features)}")
    print(weights.to_string(float_format=fmt))
    for note in model.notes:
        print(f"note: {note}")
    for row in per_log[per_log["r2"] < MIN_R2].itertuples():
        print(f"warning: log {row.log} fits the loss model poorly (R^2 {row.r2:.3f}, below {MIN_R2}); "
              f"its coefficients pull the regression towards noise", file=sys.stderr)
    print(f"\npredicted for depth {args.depth:g} on {args.device}: b0 {b0:.4g}, b1 {b1:.4g}, b2 {b2:.4g}")
    print(table.to_string(index=False, float_format=fmt))
    plot = plot_loss(predicted, targets, unit, out / "regress_prediction.png",
                     f"predicted loss curve, depth {args.depth:g} on {args.device}")
    print(f"\ntables: {out / 'regress_logs.csv'}, {out / 'regress_weights.csv'}, "
          f"{out / 'regress_prediction.csv'}\nfigure: {plot}")
    return 0


# ---- speed ---------------------------------------------------------------------------------

def illustrative_speeds(seed: int = 0):
    """(workers, ps, steps_per_s) from ILLUSTRATIVE_THETA with 3% seeded noise: made up, not measured."""
    import numpy as np
    import pandas as pd
    from sysdl_kernels.perf_model import speed_terms
    workers, servers = np.meshgrid([1, 2, 4, 8, 12, 16], [1, 2, 4])
    workers, servers = workers.ravel(), servers.ravel()
    step_time = speed_terms(workers, servers, ILLUSTRATIVE_BATCH) @ np.array(ILLUSTRATIVE_THETA)
    noise = 1 + 0.03 * np.random.default_rng(seed).standard_normal(step_time.size)
    return pd.DataFrame({"workers": workers, "ps": servers, "steps_per_s": 1 / (step_time * noise),
                         "source": "illustrative (made-up coefficients, not measured)"})


def read_speeds(path: str | Path):
    """Measured speeds: columns workers, ps, steps_per_s (`sysdl ps-bench`'s CSV has them, with
    mode, round and global_batch); only synchronous rows, the ones the model describes, are kept."""
    frame = read_table(path, "workers, ps, steps_per_s")
    missing = {"workers", "ps", "steps_per_s"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: a speeds CSV needs columns workers, ps, steps_per_s; missing {sorted(missing)}")
    numeric(frame, path, ["workers", "ps", "steps_per_s"])
    if "mode" in frame.columns:
        frame = frame[frame["mode"] == "sync"]
        if frame.empty:
            raise ValueError(f"{path}: no synchronous rows (mode sync): the speed model is synchronous "
                             f"training's; measure them with `sysdl ps-bench --modes sync`")
    return frame.assign(source=str(path)).reset_index(drop=True)


def speeds_from_args(args):
    """(points, global batch M): --illustrative's made-up table, --csv, else `sysdl ps-bench`'s CSV."""
    if args.illustrative:
        return illustrative_speeds(), args.batch or ILLUSTRATIVE_BATCH
    path = Path(args.csv) if args.csv else PS_BENCH_DIR / "ps_bench.csv"
    if not args.csv and not path.exists():
        raise ValueError(f"no measured speeds at {path}: run `sysdl ps-bench` (or `sysdl ps-bench --quick`) first, "
                         f"or pass --csv FILE; --illustrative fits a made-up table instead")
    points = read_speeds(path)
    if args.batch:
        return median_over_repeats(points), args.batch
    batches = sorted(set(points["global_batch"])) if "global_batch" in points.columns else []
    if len(batches) != 1:
        found = f"global_batch values {batches}" if batches else "no global_batch column"
        raise ValueError(f"{path}: {found}; give the global batch M of these speeds with --batch")
    return median_over_repeats(points), float(batches[0])


def median_over_repeats(points):
    """One row per (workers, ps): the median speed of its repeats (`sysdl ps-bench --rounds`), so a
    burst of load on one repeat moves neither the fit nor the check."""
    grouped = points.groupby(["workers", "ps"], sort=True)
    return grouped["steps_per_s"].median().reset_index().assign(
        repeats=grouped.size().to_numpy(), source=points["source"].iloc[0])


def parse_configuration(text: str) -> tuple[int, int] | str:
    """'W,P' (workers, parameter servers) for --hold-out, or 'none'."""
    if text.strip().lower() == "none":
        return "none"
    try:
        workers, servers = (int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: write workers,servers, e.g. 3,2") from None
    return workers, servers


def held_out_configurations(points, chosen) -> list[tuple[int, int]]:
    """The (w, p) kept out of the fit: ``chosen`` (--hold-out; [] for none), else every
    HOLD_OUT_EVERY-th configuration in (p, w) order from the second, while at least
    MIN_FIT_CONFIGURATIONS stay in the fit."""
    from sysdl_kernels.perf_model import SPEED_TERMS
    configurations = sorted({(int(w), int(p)) for w, p in zip(points["workers"], points["ps"])},
                            key=lambda wp: (wp[1], wp[0]))
    if chosen is not None:
        unknown = [wp for wp in chosen if wp not in configurations]
        if unknown:
            raise ValueError(f"--hold-out {' '.join(f'{w},{p}' for w, p in unknown)}: not measured; the measured "
                             f"(workers, servers) are {' '.join(f'{w},{p}' for w, p in configurations)}")
        held = list(dict.fromkeys(chosen))
    else:
        held = []
        for wp in configurations[1::HOLD_OUT_EVERY]:
            if len(configurations) - len(held) - 1 < MIN_FIT_CONFIGURATIONS:
                break
            held.append(wp)
    if len(configurations) - len(held) < len(SPEED_TERMS):
        raise ValueError(f"{len(configurations) - len(held)} (workers, servers) configurations left to fit the "
                         f"{len(SPEED_TERMS)} coefficients; hold out fewer or measure more")
    return held


def held_out_errors(points, fit):
    """Measured against predicted speed on every point; relative error in %."""
    predicted = fit.speed(points["workers"], points["ps"])
    return points.assign(fitted_steps_per_s=predicted,
                         error_pct=100 * (predicted - points["steps_per_s"]) / points["steps_per_s"])


def steps_to_target(args) -> tuple[float, str]:
    """Steps to the target loss: --steps, else the loss model of the chosen curve (in steps)."""
    from sysdl_kernels.perf_model import fit_loss_curve
    if args.steps:
        return float(args.steps), "--steps"
    curve = curve_from_args(args, args.loss_csv)
    fit = fit_loss_curve(curve.k, curve.loss)
    if poor_fit(fit):
        raise ValueError(f"{poor_fit_warning(fit, curve.source).removeprefix('warning: ')}; "
                         f"or give the steps to target (--steps)")
    target = args.target[0] if args.target else curve.loss[-1]
    k = fit.steps_to(target)
    if curve.unit == "epoch":
        per_epoch = args.steps_per_epoch or curve.steps_per_epoch
        if not per_epoch:
            raise ValueError(f"{curve.source} counts epochs; pass --steps-per-epoch to turn them into steps")
        return k * per_epoch, (f"loss model of {curve.source} (R^2 {fit.r2:.3f}): {k:.3g} epochs x "
                               f"{per_epoch:g} steps to loss {target:.4g}")
    return k, f"loss model of {curve.source} (R^2 {fit.r2:.3f}) to loss {target:.4g}"


def time_table(fit, points, workers, steps: float):
    """Predicted speed and time to target against w for p = 2 and 4, flagged where w lies outside
    the workers measured with that p (extrapolated), beside the measured times where there are."""
    import numpy as np
    import pandas as pd
    from sysdl_kernels.perf_model import time_to_target
    times = pd.DataFrame({"workers": workers.astype(int)})
    for servers in CURVE_SERVERS:
        measured = points[points["ps"] == servers].groupby("workers")["steps_per_s"].mean()
        times[f"speed_p{servers}"] = fit.speed(workers, np.full_like(workers, servers))
        times[f"time_s_p{servers}"] = time_to_target(steps, fit, workers, np.full_like(workers, servers))
        times[f"extrapolated_p{servers}"] = ~times["workers"].between(measured.index.min(), measured.index.max()) \
            if len(measured) else True
        times[f"measured_time_s_p{servers}"] = steps / times["workers"].map(measured)
    return times


def _split_by_range(x, y, inside):
    """The curve as two lines: over the measured range, and beyond it (with the point where they
    meet, so the dashed line joins the solid one); NaN breaks each line where the other runs."""
    import numpy as np
    x, y, inside = np.asarray(x, dtype=float), np.asarray(y, dtype=float), np.asarray(inside, dtype=bool)
    beyond = ~inside
    meets = beyond.copy()
    meets[:-1] |= beyond[1:]
    meets[1:] |= beyond[:-1]
    return (x, np.where(inside, y, np.nan)), (x, np.where(meets, y, np.nan))


def plot_speed(points, fit, times, steps: float, path: Path, label: str, errors: str) -> Path:
    """Left: the speeds (filled: fitted, hollow: held out) and the fitted model per server count;
    right: time to target against w for p = 2 and 4 from the fitted model, with the measured
    points marked. Solid over the workers measured with that p, dashed beyond (extrapolation)."""
    import numpy as np
    from models.shared.figures import new_figure, save
    fig, (speed_ax, time_ax) = new_figure((12, 4.4), 1, 2)
    grid = np.arange(1, times["workers"].max() + 1, dtype=float)
    for index, (servers, group) in enumerate(points.groupby("ps")):
        color = f"C{index}"
        fitted, held = group[~group["held_out"]], group[group["held_out"]]
        speed_ax.plot(fitted["workers"], fitted["steps_per_s"], "o", color=color,
                      label=f"p = {servers}: measured, fitted")
        if len(held):
            speed_ax.plot(held["workers"], held["steps_per_s"], "s", mfc="none", color=color, ms=8,
                          label=f"p = {servers}: measured, held out")
        inside = (grid >= group["workers"].min()) & (grid <= group["workers"].max())
        (xi, yi), (xo, yo) = _split_by_range(grid, fit.speed(grid, np.full_like(grid, servers)), inside)
        speed_ax.plot(xi, yi, "-", color=color, alpha=0.8)
        speed_ax.plot(xo, yo, "--", color=color, alpha=0.6)
    for index, servers in enumerate(CURVE_SERVERS):
        color = f"C{index + 5}"
        (xi, yi), (xo, yo) = _split_by_range(times["workers"], times[f"time_s_p{servers}"],
                                             ~times[f"extrapolated_p{servers}"])
        for x, y, style, what in ((xi, yi, "-", "predicted (fitted model)"), (xo, yo, "--", "predicted, extrapolated")):
            if np.isfinite(y).any():
                time_ax.plot(x, y, style, color=color, label=f"p = {servers}: {what}")
        group = points[points["ps"] == servers]
        for held, marker in ((False, "o"), (True, "s")):
            chosen = group[group["held_out"] == held]
            if len(chosen):
                time_ax.plot(chosen["workers"], steps / chosen["steps_per_s"], marker, color=color, ms=7,
                             mfc="none" if held else color,
                             label=f"p = {servers}: measured{', held out' if held else ''}")
    speed_ax.set(xlabel="workers w", ylabel="steps / s", title=f"speed model against the points: {label}")
    time_ax.set(xlabel="workers w", ylabel="seconds to target",
                title=f"time to target = {steps:,.0f} steps / speed(w, p); held out: {errors}")
    for ax in (speed_ax, time_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
        ax.title.set_fontsize(8)
    return save(fig, path)


def cmd_speed(args) -> int:
    import numpy as np
    import pandas as pd
    from sysdl_kernels.perf_model import SPEED_TERMS, fit_speed_model
    points, batch = speeds_from_args(args)
    held = held_out_configurations(points, None if args.hold_out is None else
                                   [wp for wp in args.hold_out if wp != "none"])
    points["held_out"] = [(int(w), int(p)) in held for w, p in zip(points["workers"], points["ps"])]
    fitted = points[~points["held_out"]]
    fit = fit_speed_model(fitted["workers"], fitted["ps"], fitted["steps_per_s"], batch)
    points = held_out_errors(points, fit)
    errors = points.loc[points["held_out"], "error_pct"].abs()
    summary = (f"{len(errors)} point(s), mean |error| {errors.mean():.1f}%, max {errors.max():.1f}%" if len(errors)
               else "none")
    steps, steps_source = steps_to_target(args)
    top = int(points["workers"].max())
    workers = np.array(args.workers or range(1, EXTRAPOLATE_WORKERS * top + 1), dtype=float)
    times = time_table(fit, points, workers, steps)
    coefficients = pd.DataFrame({"term": SPEED_TERMS, "theta_s": fit.theta})
    label = points["source"].iloc[0]
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    points.to_csv(out / "speed_points.csv", index=False)
    coefficients.assign(batch=batch, r2=fit.r2, mape_pct=fit.mape, fitted_points=len(fitted),
                        held_out_points=len(errors), held_out_mean_abs_error_pct=errors.mean(),
                        held_out_max_abs_error_pct=errors.max()).to_csv(out / "speed_fit.csv", index=False)
    times.to_csv(out / "time_to_target.csv", index=False)
    fmt = lambda v: f"{v:.4g}"  # noqa: E731
    print(f"speeds: {label}; global batch M = {batch:g}")
    print(f"step_time(w, p) = t0 M/w + t1 + t2 w/p + t3 w + t4 p, NNLS on {len(fitted)} points: "
          f"R^2 {fit.r2:.4f}, MAPE {fit.mape:.2f}%")
    print(coefficients.to_string(index=False, float_format=fmt))
    shown = points[points["held_out"]][["workers", "ps", "steps_per_s", "fitted_steps_per_s", "error_pct"]]
    print(f"\nheld out of the fit: {summary}" + (f"\n{shown.to_string(index=False, float_format=fmt)}" if len(shown)
                                                 else " (too few points to spare any; --hold-out W,P names some)"))
    print(f"\nsteps to target: {steps:,.0f} ({steps_source}); predicted by the fitted model, "
          f"extrapolated_pN: w outside the workers measured with N servers")
    print(times.to_string(index=False, float_format=fmt))
    best = {s: int(times.loc[times[f"time_s_p{s}"].idxmin(), "workers"]) for s in CURVE_SERVERS}
    print("fastest (predicted): " + ", ".join(f"{best[s]} workers with {s} servers" for s in CURVE_SERVERS))
    plot = plot_speed(points, fit, times, steps, out / "time_to_target.png", label, summary)
    print(f"\ntables: {out / 'speed_points.csv'}, {out / 'speed_fit.csv'}, {out / 'time_to_target.csv'}")
    print(f"figure: {plot}")
    return 0


# ---- command line --------------------------------------------------------------------------

def _add_loss_source(parser: argparse.ArgumentParser, csv_flag: str) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--run-id", default=None, help="an MLflow run to fit")
    source.add_argument("--experiment", default=TRAIN_EXPERIMENT,
                        help=f"fit the newest FINISHED run of this experiment (default {TRAIN_EXPERIMENT}, "
                             "`sysdl train`'s)")
    source.add_argument(csv_flag, dest=csv_flag.lstrip("-").replace("-", "_"), default=None, metavar="FILE",
                        help="a CSV of the curve: columns step (or epoch) and loss")
    parser.add_argument("--metric", default="train_loss", choices=["train_loss", "step_loss"],
                        help="MLflow metric: train_loss (per epoch, k = epoch) or step_loss (k = SGD steps)")
    parser.add_argument("--steps-per-epoch", type=float, default=None,
                        help="to convert epochs to steps (default: from the run's logs)")
    parser.add_argument("--uri", default=None, help="MLflow tracking URI (default $MLFLOW_TRACKING_URI or "
                                                    "sqlite:///mlruns.db)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="optimus_command", required=True, metavar="MODEL")
    p = sub.add_parser("loss", help="fit l(k) = 1/(b0 k + b1) + b2 to a training curve; steps to a target loss")
    _add_loss_source(p, "--csv")
    p.add_argument("--target", type=float, nargs="+", default=None,
                   help="target losses (default 0.9, 0.75, 0.5 x the last measured loss)")
    p.set_defaults(optimus_func=cmd_loss)

    p = sub.add_parser("regress", help="regress the loss-model coefficients on depth and device; predict a model")
    p.add_argument("--csv", default=None, metavar="FILE", help="logs: columns log, depth, device, step|epoch, loss")
    p.add_argument("--experiment", default=TRAIN_EXPERIMENT, help="else every FINISHED run of this experiment")
    p.add_argument("--metric", default="train_loss", choices=["train_loss", "step_loss"],
                   help="the loss curve the model is fitted to")
    p.add_argument("--depth-param", default="model.depth", help=f"the run param holding depth "
                   f"(absent: {DEFAULT_DEPTH}, FashionCNN's layers)")
    p.add_argument("--depth", type=float, default=DEFAULT_DEPTH, help="the new model's depth")
    p.add_argument("--device", default="cpu", help="the new model's device (one seen in the logs)")
    p.add_argument("--target", type=float, nargs="+", default=None,
                   help="target losses (default: the predicted loss at the longest log's end)")
    p.add_argument("--uri", default=None, help="MLflow tracking URI (default $MLFLOW_TRACKING_URI or sqlite:///mlruns.db)")
    p.set_defaults(optimus_func=cmd_regress)

    p = sub.add_parser("speed", help="fit the parameter-server speed model to measured speeds, check it on held-out "
                                     "points; time to target vs workers, p = 2, 4")
    speeds = p.add_mutually_exclusive_group()
    speeds.add_argument("--csv", default=None, metavar="FILE",
                        help=f"measured speeds: columns workers, ps, steps_per_s (default: `sysdl ps-bench`'s "
                             f"{PS_BENCH_DIR / 'ps_bench.csv'})")
    speeds.add_argument("--illustrative", action="store_true",
                        help="fit an ILLUSTRATIVE table of made-up speeds instead of measured ones")
    p.add_argument("--batch", type=float, default=None,
                   help=f"global batch M (default: the CSV's global_batch; --illustrative: {ILLUSTRATIVE_BATCH})")
    p.add_argument("--hold-out", type=parse_configuration, nargs="+", default=None, metavar="W,P",
                   help=f"(workers, servers) kept out of the fit to measure its error, or 'none' (default: every "
                        f"{HOLD_OUT_EVERY}th configuration from the second while {MIN_FIT_CONFIGURATIONS} stay in)")
    p.add_argument("--workers", type=int, nargs="+", default=None,
                   help=f"worker counts to predict (default: 1 .. {EXTRAPOLATE_WORKERS} x the most measured)")
    p.add_argument("--steps", type=float, default=None, help="steps to target (default: from the loss model)")
    p.add_argument("--target", type=float, nargs=1, default=None,
                   help="target loss for the loss model (default: the curve's last measured loss)")
    _add_loss_source(p, "--loss-csv")
    p.set_defaults(optimus_func=cmd_speed)
    for p in sub.choices.values():
        p.add_argument("--out-dir", default=str(OPTIMUS_DIR), help="where tables and figures go")


def main(args) -> int:
    return args.optimus_func(args)


if __name__ == "__main__":
    from models.shared.command import run_module
    raise SystemExit(run_module("models.analysis.optimus"))
