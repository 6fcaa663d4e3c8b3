"""`sysdl report sweep`: tables and figures of the hyperparameter sweeps, read from MLflow.

    sysdl report sweep                  # after `sysdl sweep model` and `sysdl sweep train`
    sysdl report sweep --quick          # the --quick sweeps' experiments, into runs/quick/sweep_report
    sysdl report sweep --no-extra       # never train: a situation no run shows is only reported
    python -m models.reports.sweep_report --quick

Everything comes from the tracking store (the FINISHED runs of the sweep experiments, one per
configuration hash; shards' runs alike), never from a sweep's memory. It writes to OUT_DIR:

  top3.md / top3.csv            the three best configurations of both sweeps: ranked like the
                                sweeps decide (validation accuracy, then the smaller overfitting
                                gap), with test accuracy and overfitting gap beside; a
                                configuration run by both sweeps is one row
  runs.md / runs.csv            every run, best first within each sweep
  pareto.png, pareto_front.csv  test accuracy against training time for every model, frontier marked
                                (runs that diverged or stayed at chance are drawn apart, off it)
  main_effects.md / .csv / .png mean, spread (std, min, max) of test accuracy per value of each
                                hyperparameter of each sweep
  situation_<name>.png          loss against epochs of one real run per situation, labelled with
                                its configuration, beside the reference (the best run)
  situations.md / .csv          which run shows each situation, the evidence, grid run or extra run

The situations are each one setting moved away from the reference (the best run of the train
sweep; for overfitting, the best of the model sweep), with every other hyperparameter equal:
  learning rate too high / too small, momentum too high, batch size too small: the run's
  validation accuracy is at least 2 points below the reference's (batch: 1 point, or the same
  accuracy for twice the training time), or its loss diverged; the one closest to the reference
  that shows it is plotted;
  overfitting of a large model: among the larger half of the model sweep's networks, the one with
  the largest gap between training and test accuracy, if that gap is at least 4 points.
Where no grid run shows a situation, the report trains the one extra configuration that does
(the reference with lr x 40, lr / 100, momentum 0.995, batch 4; the largest network with 4x
the hidden units and no weight decay or flips) into the experiment ``sweep-extra``, says so, and
plots it; a later report finds it there and does not train it again.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from models.shared.tables import write_table
from models.sweeps.sweep import (TAG_GRID, TAG_HASH, TAG_LABEL, TAG_SITUATION, TAG_STOP, GRIDS, Job, RunSpec,
                          default_out_dir, experiment_name, run_jobs)
from models.shared import command
from models.shared.artifacts import QUICK_SWEEP_REPORT_DIR, SWEEP_REPORT_DIR

MARGIN = 0.02            # validation accuracy this far below the reference's: the setting hurts
GAP = 0.04               # training minus test accuracy of an overfitting network
TABLE_COLUMNS = ["sweep", "configuration", "final_val_acc", "final_test_acc", "final_train_acc", "overfit_gap",
                 "train_time_s", "epochs_run", "stop", "time_to_90_train_acc_s", "model_params", "hash"]
HISTORY_KEYS = ("train_loss", "val_loss", "test_loss", "train_acc", "val_acc", "step_loss")

# ----------------------------------------------------------------------------------------------
# Runs from the store
# ----------------------------------------------------------------------------------------------


def load_runs(experiments: list[str]):
    """The FINISHED sweep runs of ``experiments``: one row per configuration (the latest run of a
    hash), with metrics, factor values, the spec and its fields (``model.*``, ``train.*``)."""
    import pandas as pd

    from models.training import tracking
    rows = []
    for experiment in experiments:
        for run in tracking.find_runs(experiment):
            if run["status"] != "FINISHED" or TAG_HASH not in run["tags"]:
                continue
            spec = json.loads(run["params"]["config_json"])
            row = {"experiment": experiment, "run_id": run["run_id"], "start_time": run["start_time"],
                   "sweep": run["tags"][TAG_GRID], "hash": run["tags"][TAG_HASH],
                   "configuration": run["tags"].get(TAG_LABEL, ""), "stop": run["tags"].get(TAG_STOP, ""),
                   "situation": run["tags"].get(TAG_SITUATION), "spec": spec, **run["metrics"]}
            row.update({k: v for k, v in run["params"].items() if k.startswith("factor.")})
            row.update({f"{part}.{k}": v for part in ("model", "train") for k, v in spec[part].items()})
            rows.append(row)
    if not rows:
        raise ValueError(f"no finished sweep runs in the experiments {experiments}; run `sysdl sweep model` "
                         f"and `sysdl sweep train` first (with --quick for the --quick report)")
    frame = pd.DataFrame(rows).sort_values("start_time")
    return frame.drop_duplicates(["experiment", "hash"], keep="last").reset_index(drop=True)


def ranked(frame):
    """Best first: validation accuracy, then the smaller overfitting gap, then the hash."""
    return frame.assign(_neg_val=-frame["final_val_acc"]).sort_values(
        ["_neg_val", "overfit_gap", "hash"]).drop(columns="_neg_val")


def best_run(frame, sweep: str):
    rows = frame[frame["sweep"] == sweep]
    return ranked(rows).iloc[0] if len(rows) else None


# ----------------------------------------------------------------------------------------------
# Tables, Pareto plot, main effects
# ----------------------------------------------------------------------------------------------


def _table(frame):
    table = frame.reindex(columns=TABLE_COLUMNS)
    for column in ("epochs_run", "model_params"):
        table[column] = table[column].astype("Int64")
    table["time_to_90_train_acc_s"] = table["time_to_90_train_acc_s"].map(
        lambda t: "not reached" if t != t else f"{t:.1f}")                        # NaN: never reached
    return table


def write_tables(frame, out: Path) -> dict:
    grid_runs = frame[frame["sweep"] != "extra"]
    # The train sweep repeats the model sweep's training setup on its best network: the same
    # configuration (hash) is then in both sweeps and is one entry of the top 3, named by both.
    sweeps = grid_runs.groupby("hash")["sweep"].agg(lambda names: " + ".join(sorted(set(names))))
    unique = ranked(grid_runs.sort_values("sweep", kind="stable")).drop_duplicates("hash")
    top3 = _table(unique.head(3).assign(sweep=lambda rows: rows["hash"].map(sweeps)))
    top3.insert(0, "rank", range(1, len(top3) + 1))
    write_table(top3, out, "top3", floatfmt=".4f")
    order = {"model": 0, "train": 1, "extra": 2}
    every = ranked(frame).assign(_sweep=frame["sweep"].map(order)).sort_values("_sweep", kind="stable")
    write_table(_table(every), out, "runs", floatfmt=".4f")
    return {"top3": top3, "runs": every}


def learned(frame):
    """True for runs whose test accuracy is more than 2 points above chance (1 / classes): a
    diverged run, or one stuck at chance, is no trade-off between time and accuracy."""
    chance = 1.0 / frame["model.num_classes"].astype(float)
    return (frame["final_test_acc"] > chance + 0.02) & (frame["stop"] != "diverged")


def plot_pareto(frame, out: Path):
    """Test accuracy against training time, every model; the frontier (no model both faster and
    more accurate) marked among the runs that learned; right panel: the top of the range."""
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    from models.shared.figures import new_figure, save
    from models.shared.tables import pareto_front

    ok = learned(frame)
    front = pareto_front(frame[ok], "train_time_s", "final_test_acc").sort_values("train_time_s")
    fig, axes = new_figure((12, 5), ncols=2)
    top = frame["final_test_acc"].max()
    for ax, low in zip(axes, (None, top - 0.04)):
        for sweep, marker in (("model", "o"), ("train", "^"), ("extra", "s")):
            rows = frame[(frame["sweep"] == sweep) & ok]
            ax.scatter(rows["train_time_s"], rows["final_test_acc"], marker=marker, s=22, alpha=0.7,
                       label=f"{sweep} sweep ({len(rows)})" if sweep != "extra" else f"extra runs ({len(rows)})")
        failed = frame[~ok]
        ax.scatter(failed["train_time_s"], failed["final_test_acc"], marker="x", s=22, color="0.4",
                   label=f"diverged or at chance ({len(failed)}), off the frontier")
        ax.step(front["train_time_s"], front["final_test_acc"], where="post", color="black", lw=1.2,
                label="Pareto frontier")
        ax.scatter(front["train_time_s"], front["final_test_acc"], s=70, facecolors="none", edgecolors="black")
        ax.set(xscale="log", xlabel="training time, s (log; excludes evaluation)", ylabel="test accuracy")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))    # 20, 50, 100, 200 s
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.grid(alpha=0.3, which="both")
        if low is not None:
            ax.set_ylim(low, top + 0.005)
            ax.set_title(f"the top 4 points of accuracy ({(frame['final_test_acc'] >= low).sum()} runs)")
        else:
            ax.set_title("every model of the sweeps")
    axes[0].legend(fontsize=8)
    front[["sweep", "configuration", "train_time_s", "final_test_acc", "final_val_acc", "hash"]].to_csv(
        out / "pareto_front.csv", index=False)
    return save(fig, out / "pareto.png"), front


def main_effects(frame, quick: bool = False):
    """Per sweep, per hyperparameter (axis), per value: test accuracy's mean, std, min, max, count."""
    import pandas as pd
    rows = []
    for sweep in ("model", "train"):
        runs = frame[frame["sweep"] == sweep]
        if not len(runs):
            continue
        for axis, labels in _axis_labels(sweep, quick).items():
            column = f"factor.{axis}"
            for position, label in enumerate(labels):
                acc = runs.loc[runs[column] == label, "final_test_acc"] if column in runs else pd.Series([])
                if len(acc):
                    rows.append({"sweep": sweep, "hyperparameter": axis, "value": label, "order": position,
                                 "mean_test_acc": acc.mean(), "std": acc.std(ddof=0), "min": acc.min(),
                                 "max": acc.max(), "runs": len(acc)})
    return pd.DataFrame(rows)


def _axis_labels(sweep: str, quick: bool) -> dict[str, list[str]]:
    from models.sweeps.sweep import value_label
    return {axis: [value_label(v) for v in values] for axis, values in GRIDS[sweep].axes_for(quick).items()}


def plot_main_effects(effects, frame, out: Path):
    """One panel per hyperparameter: every run's test accuracy (dots), mean +- std (bar)."""
    from models.shared.figures import new_figure, save
    panels = list(effects.groupby(["sweep", "hyperparameter"], sort=False))
    ncols = 4
    nrows = max(1, math.ceil(len(panels) / ncols))
    fig, axes = new_figure((4 * ncols, 3.4 * nrows), nrows=nrows, ncols=ncols)
    axes = list(getattr(axes, "flat", [axes]))
    for ax, ((sweep, axis), rows) in zip(axes, panels):
        rows = rows.sort_values("order")
        runs = frame[frame["sweep"] == sweep]
        for x, label in enumerate(rows["value"]):
            acc = runs.loc[runs[f"factor.{axis}"] == label, "final_test_acc"]
            ax.scatter([x + 0.08 * ((i % 5) - 2) for i in range(len(acc))], acc, s=8, alpha=0.4, color="grey")
        ax.errorbar(range(len(rows)), rows["mean_test_acc"], yerr=rows["std"], fmt="o-", capsize=4, color="C0")
        ticks = [v.replace(", ", "\n").replace("momentum=", "mom.=") for v in rows["value"]]   # 4 fit side by side
        ax.set_xticks(range(len(rows)), ticks, fontsize=8)
        ax.set_xlim(-0.5, len(rows) - 0.5)
        ax.set(title=f"{sweep} sweep: {axis}", ylabel="test accuracy")
        ax.grid(alpha=0.3)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    return save(fig, out / "main_effects.png")


# ----------------------------------------------------------------------------------------------
# The situations
# ----------------------------------------------------------------------------------------------


def _diverged(row) -> bool:
    return row["stop"] == "diverged" or not math.isfinite(row.get("final_train_loss", math.nan))


def _worse(row, ref, margin: float = MARGIN) -> str | None:
    if _diverged(row):
        return f"the training loss diverged (stopped after epoch {int(row['epochs_run'])})"
    if row["final_val_acc"] <= ref["final_val_acc"] - margin:
        return f"validation accuracy {row['final_val_acc']:.4f} vs {ref['final_val_acc']:.4f} for the reference"
    return None


def _too_slow(row, ref) -> str | None:
    if _diverged(row) or row["final_val_acc"] > ref["final_val_acc"] - MARGIN:
        return None
    return (f"validation accuracy {row['final_val_acc']:.4f} vs {ref['final_val_acc']:.4f}; training loss still "
            f"{row['final_train_loss']:.3f} after {int(row['epochs_run'])} epochs vs {ref['final_train_loss']:.3f}")


def _noisy_or_slow(row, ref) -> str | None:
    worse = _worse(row, ref, MARGIN / 2)
    if worse:
        return worse
    if row["train_time_s"] >= 2 * ref["train_time_s"] and row["final_val_acc"] <= ref["final_val_acc"]:
        return (f"no better validation accuracy ({row['final_val_acc']:.4f} vs {ref['final_val_acc']:.4f}) for "
                f"{row['train_time_s'] / ref['train_time_s']:.1f}x the training time")
    return None


def _overfits(row, ref) -> str | None:
    if row["overfit_gap"] < GAP:
        return None
    return (f"training accuracy {row['final_train_acc']:.4f} vs test {row['final_test_acc']:.4f} (gap "
            f"{row['overfit_gap']:.4f}); {int(row['model_params']):,} parameters")


@dataclass(frozen=True)
class Situation:
    name: str
    title: str
    field: str | None                     # the one training setting moved from the reference (None: the network)
    direction: int                        # +1: larger than the reference's, -1: smaller
    check: Callable                       # (run, reference) -> the evidence that the run shows it, or None
    extra: Callable[[dict], dict]         # the extra run's settings, from its base spec
    why: str                              # what the plot shows, and why


SITUATIONS = (
    Situation("lr_too_high", "learning rate too high", "lr", +1, _worse, lambda s: {"lr": s["train"]["lr"] * 40},
              "each step overshoots the valley it aims at: the loss stalls high or blows up to NaN"),
    Situation("lr_too_small", "learning rate too small", "lr", -1, _too_slow,
              lambda s: {"lr": s["train"]["lr"] / 100},
              "every step is sound but tiny: the loss falls steadily and slowly, far from done at the budget"),
    Situation("momentum_too_high", "momentum too high", "momentum", +1, _worse, lambda s: {"momentum": 0.995},
              "momentum beta sums past gradients into steps 1 / (1 - beta) times larger and keeps moving "
              "after the slope turns: the loss oscillates or diverges"),
    Situation("batch_too_small", "batch size too small", "batch_size", -1, _noisy_or_slow,
              lambda s: {"batch_size": 4},
              "few images per step give noisy gradients (the step-loss band is wide) at the same lr, and many "
              "small steps use the cores badly: each epoch takes longer"),
    Situation("overfitting", "overfitting of a large model", None, 0, _overfits,
              lambda s: {"hidden_units": s["model"]["hidden_units"] * 4, "weight_decay": 0.0, "hflip": False},
              "training accuracy keeps rising to ~100% while validation loss turns up: the network has the "
              "capacity to memorise the training images, and their noise, rather than the classes"),
)


def _one_change(frame, ref, field: str):
    """Runs whose spec equals the reference's except for train.``field``."""
    def key(spec: dict) -> str:
        return json.dumps({**spec, "train": {k: v for k, v in spec["train"].items() if k != field}}, sort_keys=True)
    target = key(ref["spec"])
    return frame[[key(spec) == target for spec in frame["spec"]]]


def _candidates(frame, situation: Situation, ref):
    """The grid runs that may show ``situation``, the most moderate first."""
    if situation.field is None:                   # overfitting: the larger half of the model sweep's networks
        runs = frame[frame["sweep"] == "model"]
        return runs[runs["model_params"] >= runs["model_params"].median()].sort_values(
            "overfit_gap", ascending=False)
    column = f"train.{situation.field}"
    runs = _one_change(frame[frame["sweep"] != "extra"], ref, situation.field)
    runs = runs[(runs[column] - ref[column]) * situation.direction > 0]
    return runs.assign(_distance=(runs[column] - ref[column]).abs()).sort_values("_distance")


def find_situation(frame, situation: Situation, ref):
    """(the grid run that shows it, the evidence), or (None, None)."""
    for _, row in _candidates(frame, situation, ref).iterrows():
        evidence = situation.check(row, ref)
        if evidence:
            return row, evidence
    return None, None


def extra_job(situation: Situation, frame, ref) -> Job:
    """The one configuration that shows ``situation`` when the grid does not: the reference moved
    further than the grid goes, or (overfitting) the largest network made larger, unregularised."""
    if situation.field is None:
        runs = frame[frame["sweep"] == "model"]
        base = runs.sort_values(["model_params", "hash"]).iloc[-1]["spec"]
    else:
        base = ref["spec"]
    spec = RunSpec.from_dict(base).with_settings(situation.extra(base))
    return Job(spec, "extra", SITUATIONS.index(situation), {"situation": situation.name},
               tags={TAG_SITUATION: situation.name})


def plot_situation(situation: Situation, row, ref, evidence: str, out: Path) -> Path:
    """Loss (left) and accuracy (right) against epochs, the run beside the reference."""
    from models.training import tracking
    from models.shared.figures import new_figure, save
    fig, (loss_ax, acc_ax) = new_figure((13, 4.8), ncols=2)
    for run, colour, name in ((ref, "grey", "reference"), (row, "C3", situation.title)):
        history = tracking.metric_history(run["run_id"], HISTORY_KEYS)
        steps = history["step_loss"]
        loss_ax.plot([s / run["steps_per_epoch"] for s, _ in steps], [_finite(v) for _, v in steps], color=colour,
                     lw=0.6, alpha=0.35)
        for key, style in (("train_loss", "o-"), ("val_loss", "s--")):
            loss_ax.plot([s for s, _ in history[key]], [_finite(v) for _, v in history[key]], style, color=colour,
                         ms=4, label=f"{name}: {key.replace('_', ' ')}")
        for key, style in (("train_acc", "o-"), ("val_acc", "s--")):
            acc_ax.plot([s for s, _ in history[key]], [v for _, v in history[key]], style, color=colour, ms=4,
                        label=f"{name}: {key.replace('_', ' ').replace('acc', 'accuracy')}")
    loss_ax.set(yscale="log", xlabel="epoch (faint: step losses, window means)", ylabel="cross-entropy")
    acc_ax.set(xlabel="epoch", ylabel="accuracy")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    source = "extra run trained by `sysdl report sweep`" if row["sweep"] == "extra" else f"{row['sweep']} sweep run"
    fig.suptitle(f"{situation.title} ({source}): {row['configuration']}\nreference: {ref['configuration']}\n"
                 f"{evidence}", fontsize=9)
    return save(fig, out / f"situation_{situation.name}.png")


def _finite(value: float) -> float:
    return value if math.isfinite(value) else math.nan


def situations(frame, out: Path, extra_experiment: str, runner: Callable | None, log=print):
    """A run for every situation (a grid run, else the extra run ``runner(jobs)`` trains; no
    runner: reported as not shown), each plotted; returns the situations table."""
    import pandas as pd
    best_train = best_run(frame, "train")
    refs = {s.name: best_run(frame, "model") if s.field is None or best_train is None else best_train
            for s in SITUATIONS}
    found = {s.name: find_situation(frame, s, refs[s.name]) for s in SITUATIONS}
    missing = [s for s in SITUATIONS if found[s.name][0] is None]
    if missing and runner is not None:
        jobs = [extra_job(s, frame, refs[s.name]) for s in missing]
        log(f"no grid run shows: {', '.join(s.title for s in missing)}. Training the extra configuration for each "
            f"into experiment {extra_experiment!r} (one already there is reused)")
        runner(jobs)
        extras = _optional_runs(extra_experiment)
        for situation, job in zip(missing, jobs):
            rows = extras[extras["hash"] == job.hash] if extras is not None else []
            if not len(rows):
                log(f"the extra run for {situation.title} did not finish (see the error above)")
                continue
            row = rows.iloc[0]
            evidence = situation.check(row, refs[situation.name]) or "by the rule it does not show it clearly"
            found[situation.name] = (row, evidence)
    rows = []
    for situation in SITUATIONS:
        row, evidence = found[situation.name]
        if row is None:
            rows.append({"situation": situation.title, "source": "not shown by any run (no extra run trained)"})
            continue
        plot = plot_situation(situation, row, refs[situation.name], evidence, out)
        rows.append({"situation": situation.title, "source": "extra run" if row["sweep"] == "extra"
                     else f"{row['sweep']} sweep", "configuration": row["configuration"], "evidence": evidence,
                     "what it shows": situation.why, "plot": plot.name, "hash": row["hash"]})
    table = pd.DataFrame(rows)
    write_table(table, out, "situations", floatfmt=".4f")
    return table


# ----------------------------------------------------------------------------------------------
# The report and its command line
# ----------------------------------------------------------------------------------------------


def sweep_report(out_dir: str | Path, quick: bool = False, experiments: dict | None = None,
                 runner: Callable | None = None, log=print) -> dict:
    """Write every table and figure; ``runner(jobs)`` trains the situations' extra runs (None:
    none are trained)."""
    import pandas as pd
    experiments = {g: (experiments or {}).get(g) or experiment_name(g, quick) for g in ("model", "train", "extra")}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frame = load_runs([experiments["model"], experiments["train"]])
    effects = main_effects(frame, quick)
    write_table(effects.drop(columns="order"), out, "main_effects", floatfmt=".4f")
    effects_plot = plot_main_effects(effects, frame, out)
    situation_table = situations(frame, out, experiments["extra"], runner, log)
    extras = _optional_runs(experiments["extra"])
    everything = frame if extras is None else pd.concat([frame, extras], ignore_index=True)
    tables = write_tables(everything, out)
    pareto, front = plot_pareto(everything, out)
    return {**tables, "effects": effects, "front": front, "situations": situation_table,
            "plots": [pareto, effects_plot, *sorted(out.glob("situation_*.png"))]}


def _optional_runs(experiment: str):
    """load_runs of one experiment, or None when it holds no finished sweep run."""
    try:
        return load_runs([experiment])
    except ValueError:
        return None


def add_arguments(parser) -> None:
    """The options of `sysdl report sweep` (its handler is ``main``)."""
    command.add_quick_flag(parser, "report the --quick sweeps (their experiments)")
    parser.add_argument("--out-dir", default=None, help="where tables and figures go (default runs/sweep_report, "
                        "runs/quick/sweep_report with --quick)")
    for grid in ("model", "train", "extra"):
        parser.add_argument(f"--{grid}-experiment", default=None,
                            help=f"MLflow experiment of the {grid} runs (default {experiment_name(grid)})")
    parser.add_argument("--no-extra", action="store_true", help="do not train the extra run of a situation "
                        "that no grid run shows; only report it")
    command.add_threads_flag(parser, "torch threads for the extra runs (default: all cores)")
    parser.add_argument("--checkpoint-dir", default=None, help="checkpoints of unfinished extra runs (default the "
                        "sweeps' out dir)")
    command.add_data_dir_flag(parser, "where the IDX files are, for the extra runs")
    command.add_download_flag(parser)
    command.add_run_flags(parser, track=False)


def main(args) -> int:
    """`sysdl report sweep`."""
    out = Path(args.out_dir) if args.out_dir else (QUICK_SWEEP_REPORT_DIR if args.quick else SWEEP_REPORT_DIR)
    experiments = {"model": args.model_experiment, "train": args.train_experiment, "extra": args.extra_experiment}
    extra_experiment = args.extra_experiment or experiment_name("extra", args.quick)
    checkpoints = Path(args.checkpoint_dir) if args.checkpoint_dir else default_out_dir(args.quick)

    def runner(jobs: list[Job]) -> None:
        run_jobs(jobs, extra_experiment, jobs[0].spec.data, checkpoints / extra_experiment, threads=args.threads,
                 data_dir=args.data_dir, download=args.download, progress=not args.no_progress)

    result = sweep_report(out, args.quick, experiments, None if args.no_extra else runner)
    print("top 3 (by validation accuracy, then the smaller overfitting gap):")
    print(result["top3"].to_string(index=False))
    print("\nsituations:")
    print(result["situations"].reindex(columns=["situation", "source", "configuration"]).to_string(index=False))
    print(f"\nwritten to {out}: " + ", ".join(p.name for p in sorted(out.iterdir())))
    return 0


if __name__ == "__main__":
    sys.exit(command.run_module("models.reports.sweep_report"))
