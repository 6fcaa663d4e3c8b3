"""`sysdl ps-bench`: parameter-server training speed (steps/s) over a grid of servers x workers.

Compute, push, update and pull are timed apart; `sysdl optimus speed` fits the speeds
(docs/parameter-server.md).

    sysdl ps-bench                                   # Fashion CNN, p 1 2 4 x w 1 2 3 4, 3 rounds, synchronous
    sysdl ps-bench --quick                           # synthetic data, p 1 2 x w 1 2 3, 3 steps, 1 round (CI)
    sysdl ps-bench --model resnet18 --servers 1 2 --workers 1 2 --out-dir runs/ps_bench_resnet18
    sysdl ps-bench --modes sync async                # the asynchronous mode too, same grid
    torchrun --nnodes 2 --nproc-per-node 4 --node-rank R --master-addr HOST --master-port 29500 \\
        --no-python sysdl ps-bench --servers 2 4 --workers 2 4     # ranks from torchrun (docs)

One job of max(p + w) ranks (spawned here, or torchrun's) runs every grid point in turn on its
first p + w ranks (models/distributed/parameter_server.py: servers first, then workers; the
others wait). Each point trains ``--warmup`` untimed steps, then ``--steps`` timed ones, from the
same seeded weights and batches; the grid is measured ``--rounds`` times over, one whole round
after the other, so that a burst of load from another job falls on one round of a few points
rather than on every round of one (the tables take the median over rounds). A synchronous step lasts as long as its slowest worker:
step_s is the median over steps of the slowest worker's step, steps_per_s = 1 / step_s. The
parts, each the median over steps of the slowest rank's: compute_s (forward + backward on the
worker's share), push_s (gradient shards sent), pull_s (from the push until every updated shard
is back: it holds the servers' wait for the other workers and their update), update_s (the
server's optimizer step) and server_wait_s (a server's wait for all w pushes). Asynchronous
points: steps_per_s = sum over workers of (share of the batch) / (its median step), the global
batches' worth of examples applied per second.

Every process runs ``--threads`` torch threads (default 1): p + w processes share the machine's
cores, and more than the cores time-slice them (docs/parameter-server.md says what that means for
the fit). Each finished (point, round) is appended at once to OUT/ps_bench.csv (atomically), so a
killed run loses only the point in progress and the next run with the same settings measures only
what is missing (more --rounds or a larger grid extend a CSV the same way); a grid that is
complete is refused unless --overwrite. After the grid, every row without one gets an MLflow run
(experiment ``--experiment``), and OUT/ps_bench.md (medians over rounds and their spread) and
OUT/ps_bench.png are written.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from models.shared import command
from models.shared.artifacts import PS_BENCH_DIR
from models.shared.command import at_least
from models.shared.errors import UserError

EXPERIMENT = "ps-bench"
TAG_HASH = "sysdl.ps_bench.hash"        # the measurement settings' hash: rows and runs are matched on it
TAG_POINT = "sysdl.ps_bench.point"      # "sync p2 w3 round 0"
CSV_NAME = "ps_bench.csv"
FULL_SETTINGS = {"model": "fashion-cnn", "dataset": "fashion-mnist", "servers": [1, 2, 4], "workers": [1, 2, 3, 4],
                 "global_batch": None, "steps": 20, "warmup": 3, "rounds": 3}   # batch None: `sysdl train`'s
QUICK_SETTINGS = {**FULL_SETTINGS, "dataset": "synthetic", "servers": [1, 2], "workers": [1, 2, 3],
                  "global_batch": 32, "steps": 3, "warmup": 1, "rounds": 1}
TIME_COLUMNS = ("step_s", "compute_s", "push_s", "update_s", "pull_s", "server_wait_s")
POINT = ["mode", "ps", "workers"]
KEY = [*POINT, "round"]


class FinishedGridError(UserError):
    """The CSV already holds what this run would measure."""


SETTINGS = command.QuickSettings(FULL_SETTINGS, QUICK_SETTINGS)


def resolve_settings(args) -> None:
    """Fill in every setting the user left unset: --quick's small ones or the full run's."""
    from models.training.loop import TrainConfig
    SETTINGS.resolve(args)
    if args.global_batch is None:       # the batch of `sysdl train`, whose loss curve gives steps to target
        args.global_batch = TrainConfig().batch_size


def grid(modes, servers, workers, rounds: int, world: int | None = None) -> list[tuple[str, int, int, int]]:
    """Every (mode, p, w, round), round after round; with ``world`` (torchrun's) only those that fit."""
    points = [(mode, p, w, r) for r in range(rounds) for mode in modes for p in servers for w in workers]
    return [point for point in points if world is None or point[1] + point[2] <= world]


def measurement_settings(job, threads: int) -> dict:
    """What makes two rows comparable: the job's settings but where and how long to wait, and the threads."""
    settings = {k: v for k, v in job.settings().items() if k not in ("data_dir", "timeout", "model_config")}
    return {**settings, "threads": threads}


# ---- the CSV: one row per finished point ---------------------------------------------------

def read_rows(path: Path):
    import pandas as pd
    return pd.read_csv(path) if path.exists() and path.stat().st_size else None


def append_row(path: Path, row: dict) -> None:
    """Add one point's row; the file is replaced atomically, so a kill leaves it whole."""
    import pandas as pd
    from models.training.checkpoint import atomic_write
    frame = read_rows(path)
    frame = pd.DataFrame([row]) if frame is None else pd.concat([frame, pd.DataFrame([row])], ignore_index=True)
    atomic_write(path, lambda fh: fh.write(frame.to_csv(index=False).encode()))


def points_to_measure(path: Path, points, settings_hash: str, overwrite: bool) -> list:
    """The points of ``points`` not yet in the CSV. A CSV of other settings, or one that already
    holds every point, is refused unless ``overwrite`` (which starts the CSV afresh)."""
    frame = read_rows(path)
    if frame is None:
        return list(points)
    if overwrite:
        path.unlink()
        return list(points)
    if set(frame["settings_hash"]) != {settings_hash}:
        raise UserError(f"{path} holds points measured with other settings (model, data, batch, steps, threads, "
                        f"...): pass --overwrite to replace them, or --out-dir DIR to keep both")
    done = set(zip(*(frame[column] for column in KEY)))
    todo = [point for point in points if point not in done]
    if not todo:
        raise FinishedGridError(f"{path} already holds every point of this grid ({len(points)}): pass --overwrite "
                                f"to measure them again, or --out-dir DIR")
    return todo


# ---- one point's row ------------------------------------------------------------------------

def point_row(point, round_: int, job, threads: int, parameters: int) -> dict:
    """The CSV row of a finished point from its ranks' times (see the module docstring)."""
    from sysdl_kernels.collectives import block_bounds
    servers, workers = point.times["server"], point.times["worker"]          # (p, steps, 3), (w, steps, 3)
    slowest = lambda times, column: times[:, :, column].max(dim=0).values.median().item()   # noqa: E731
    shares = block_bounds(job.global_batch, point.workers)
    if point.mode == "sync":
        step_s = workers.sum(dim=2).max(dim=0).values.median().item()
    else:
        per_worker = workers.sum(dim=2).median(dim=1).values                 # (w,) median step each
        rate = sum((b - a) / job.global_batch / t for a, b, t in zip(shares, shares[1:], per_worker.tolist()))
        step_s = 1.0 / rate
    return {"mode": point.mode, "ps": point.servers, "workers": point.workers, "round": round_,
            "steps_per_s": 1.0 / step_s, "step_s": step_s, "compute_s": slowest(workers, 0), "push_s": slowest(workers, 1),
            "update_s": slowest(servers, 1), "pull_s": slowest(workers, 2), "server_wait_s": slowest(servers, 0),
            "images_per_s": job.global_batch / step_s, "global_batch": job.global_batch,
            "worker_batch": max(b - a for a, b in zip(shares, shares[1:])), "model": job.model,
            "dataset": job.dataset, "parameters": parameters, "steps": job.steps, "warmup": job.warmup,
            "threads": threads}


def _bench_rank(rank: int, world: int, job, points, csv_path: str, settings_hash: str, progress: bool,
                refusal: str | None = None) -> int:
    """On every rank: the grid's points in turn; rank 0 appends each finished point's row. The
    points are rank 0's (under torchrun only its host holds the CSV that says what is done), and
    so is ``refusal``, rank 0's user error about that CSV: every rank raises it, none waits."""
    import torch
    import torch.distributed as dist
    from torch.nn.utils import parameters_to_vector
    from tqdm import tqdm
    from models.distributed.parameter_server import build_model, each_point
    shared = [points, refusal]
    dist.broadcast_object_list(shared, src=0)
    points, refusal = shared
    if refusal is not None:
        raise UserError(refusal if rank == 0 else f"rank 0 refused: {refusal}")
    threads = torch.get_num_threads()
    parameters = parameters_to_vector(build_model(job).parameters()).numel() if rank == 0 else 0
    bar = tqdm(total=len(points), desc="ps-bench", unit="point", disable=rank != 0 or not progress)
    for point, (*_, round_) in zip(each_point(job, [key[:3] for key in points]), points):
        if rank == 0:
            row = point_row(point, round_, job, threads, parameters)
            append_row(Path(csv_path), {**row, "settings_hash": settings_hash})
            bar.set_postfix_str(f"{point.mode} p{point.servers} w{point.workers} round {round_}: "
                                f"{row['steps_per_s']:.3g} steps/s")
        bar.update()
    bar.close()
    return len(points)


# ---- after the grid: MLflow, tables, figure -------------------------------------------------

def log_missing_runs(frame, settings: dict, settings_hash: str, experiment: str) -> int:
    """One MLflow run per row that has no FINISHED run with its figures yet (a resumed grid logs
    only what is new; a grid measured again with --overwrite logs its new figures)."""
    from models.training import tracking
    logged = {(run["tags"].get(TAG_POINT), run["metrics"].get("steps_per_s"))
              for run in tracking.find_runs(experiment, {TAG_HASH: settings_hash}) if run["status"] == "FINISHED"}
    added = 0
    for row in frame.to_dict("records"):
        point = f"{row['mode']} p{row['ps']} w{row['workers']} round {row['round']}"
        metrics = {k: row[k] for k in ("steps_per_s", "images_per_s", *TIME_COLUMNS)}
        if (point, metrics["steps_per_s"]) in logged:
            continue
        params = {**settings, **{column: row[column] for column in KEY}}
        with tracking.start_run(experiment, point, params, {TAG_HASH: settings_hash, TAG_POINT: point}) as run:
            run.log_metrics(metrics)
        added += 1
    return added


def plot(frame, path: Path) -> Path:
    """Left: steps/s against workers, one line per server count and mode; right: where the
    slowest worker's step goes, per (p, w)."""
    from models.shared.figures import new_figure, save
    fig, (speed_ax, parts_ax) = new_figure((13, 4.2), 1, 2)
    for (mode, servers), group in frame.groupby(["mode", "ps"]):
        group = group.sort_values("workers")
        speed_ax.plot(group["workers"], group["steps_per_s"], "o-" if mode == "sync" else "s--",
                      label=f"{mode}, p = {servers}")
    speed_ax.set(xlabel="workers w", ylabel="steps / s (measured)", title="parameter-server training speed")
    speed_ax.set_xticks(sorted(set(frame["workers"])))
    speed_ax.grid(alpha=0.3)
    speed_ax.legend(fontsize=7)
    sync = frame[frame["mode"] == "sync"].sort_values(["ps", "workers"])
    labels = [f"p{p} w{w}" for p, w in zip(sync["ps"], sync["workers"])]
    bottom = None
    for column in ("compute_s", "push_s", "pull_s"):
        values = sync[column].to_numpy() * 1e3
        parts_ax.bar(labels, values, bottom=bottom, label=column.removesuffix("_s"))
        bottom = values if bottom is None else bottom + values
    parts_ax.plot(labels, sync["update_s"].to_numpy() * 1e3, "k_", ms=14, label="update (server, within pull)")
    parts_ax.set(ylabel="ms per step (slowest worker, medians)", title="synchronous step: where the time goes")
    parts_ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    parts_ax.legend(fontsize=7)
    return save(fig, path)


def over_rounds(frame):
    """One row per point: the median over its rounds of every measured column, the rounds, and the
    spread of steps/s over them ((max - min) / median, in %)."""
    grouped = frame.groupby(POINT)
    medians = grouped[["worker_batch", "steps_per_s", "images_per_s", *TIME_COLUMNS]].median()
    spread = grouped["steps_per_s"].agg(lambda s: 100 * (s.max() - s.min()) / s.median())
    return medians.assign(rounds=grouped.size(), spread_pct=spread).reset_index()


def report(frame, out_dir: Path, title: str) -> list[Path]:
    frame = over_rounds(frame).sort_values(POINT).reset_index(drop=True)
    shown = frame[[*POINT, "worker_batch", "rounds", "steps_per_s", "spread_pct", "images_per_s",
                   *TIME_COLUMNS]].copy()
    for column in TIME_COLUMNS:
        shown[column] = shown[column] * 1e3
    shown.columns = [c.replace("_s", "_ms") if c in TIME_COLUMNS else c for c in shown.columns]
    text = f"{title}\n\n{shown.to_markdown(index=False, floatfmt='.4g')}\n"
    (out_dir / "ps_bench.md").write_text(text)
    print(text)
    return [out_dir / "ps_bench.md", plot(frame, out_dir / "ps_bench.png")]


def main(args) -> int:
    from models.distributed.launch import launch, launched_by_torchrun
    from models.distributed.parameter_server import PSJob, check_point
    from models.training.provenance import provenance
    from models.training.resumable import config_hash
    resolve_settings(args)
    job = PSJob(model=args.model, dataset=args.dataset, data_dir=args.data_dir, global_batch=args.global_batch,
                steps=args.steps, warmup=args.warmup, lr=args.lr, momentum=args.momentum,
                weight_decay=args.weight_decay, seed=args.seed, timeout=args.timeout)
    for workers in args.workers:
        check_point(1, workers, job)
    world = int(os.environ["WORLD_SIZE"]) if launched_by_torchrun() else None
    points = grid(args.modes, args.servers, args.workers, args.rounds, world)
    if not points:
        raise UserError(f"no (p, w) of the grid fits in torchrun's {world} ranks: give --servers and --workers "
                        f"with p + w <= {world}")
    skipped = len(grid(args.modes, args.servers, args.workers, args.rounds)) - len(points)
    if skipped:
        print(f"note: {skipped} point(s) need p + w > torchrun's {world} ranks and are skipped")
    threads = args.threads or 1
    settings = measurement_settings(job, threads)
    settings_hash = config_hash(settings)
    out_dir = Path(args.out_dir)
    csv_path = out_dir / CSV_NAME
    is_writer = not launched_by_torchrun() or os.environ["RANK"] == "0"
    refusal = None                                    # rank 0's user error, told to every torchrun rank
    try:
        try:
            todo = points_to_measure(csv_path, points, settings_hash, args.overwrite) if is_writer else points
        except FinishedGridError:
            if (out_dir / "ps_bench.md").exists():
                raise
            todo = []                                 # killed after the last point: the report is what is left
    except UserError as error:
        if not world:
            raise
        refusal, todo = str(error), []                # the other ranks would wait for rank 0 until the timeout
    if is_writer and refusal is None:
        out_dir.mkdir(parents=True, exist_ok=True)
        print(f"ps-bench: {len(points)} (point, round)s, {len(points) - len(todo)} already in {csv_path}, "
              f"{len(todo)} to measure; {threads} thread(s) per process")
    if todo or world:                                 # under torchrun every rank joins, rank 0 says what to do
        size = world or max(p + w for _, p, w, _ in todo)
        launch(_bench_rank, size, (job, todo, str(csv_path), settings_hash, not args.no_progress, refusal),
               backend="gloo", threads=threads, timeout=max(60.0, args.timeout))
    if not is_writer:
        return 0
    frame = read_rows(csv_path)
    if not args.no_track:
        added = log_missing_runs(frame, settings, settings_hash, args.experiment)
        print(f"MLflow: {added} new run(s) in experiment {args.experiment!r}")
    info = provenance()
    title = (f"# parameter-server training, {job.model} on {job.dataset}, global batch {job.global_batch}, "
             f"{threads} thread(s) per process, {info.get('cpu', '')} ({info.get('cores', '?')} cores), "
             f"torch {info.get('torch', '')}; medians of {job.steps} steps after {job.warmup}, then over rounds")
    for path in report(frame, out_dir, title):
        print(f"wrote {path}")
    print(f"wrote {csv_path}  (fit it: sysdl optimus speed --csv {csv_path})")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from models.distributed.parameter_server import MODES, MODELS, PSJob
    from models.training.loop import TrainConfig
    parser.add_argument("--servers", type=at_least(1), nargs="+", default=None,
                        help=SETTINGS.help("servers", "parameter-server counts p"))
    parser.add_argument("--workers", type=at_least(1), nargs="+", default=None,
                        help=SETTINGS.help("workers", "worker counts w"))
    parser.add_argument("--modes", nargs="+", default=["sync"], choices=MODES,
                        help="sync: servers wait for all w gradients (Optimus's model); async: each applied on arrival")
    parser.add_argument("--model", default=None, choices=MODELS,
                        help=SETTINGS.help("model", "the network: the Fashion CNN or a ResNet of `sysdl scaling`"))
    parser.add_argument("--global-batch", type=at_least(1), default=None,
                        help=f"M, examples per step, all workers together (default {TrainConfig().batch_size}, "
                             f"`sysdl train`'s; --quick: {QUICK_SETTINGS['global_batch']})")
    parser.add_argument("--steps", type=at_least(1), default=None, help=SETTINGS.help("steps", "timed steps per point"))
    parser.add_argument("--rounds", type=at_least(1), default=None,
                        help=SETTINGS.help("rounds", "times the whole grid is measured (tables: the median)"))
    parser.add_argument("--warmup", type=at_least(0), default=None, help=SETTINGS.help("warmup", "untimed steps first"))
    parser.add_argument("--lr", type=float, default=PSJob.lr, help="SGD learning rate")
    parser.add_argument("--momentum", type=float, default=PSJob.momentum, help="SGD momentum")
    parser.add_argument("--weight-decay", type=float, default=PSJob.weight_decay, help="L2 penalty")
    parser.add_argument("--seed", type=int, default=PSJob.seed, help="initial weights and batch order (default 0)")
    parser.add_argument("--timeout", type=float, default=PSJob.timeout,
                        help="seconds a rank waits for one message before it names the peer and stops")
    command.add_threads_flag(parser, "torch threads per process (default 1: the p + w processes share the cores)")
    command.add_dataset_flag(parser, default=None, what=SETTINGS.help("dataset", "the images to train on"))
    command.add_data_dir_flag(parser)
    command.add_run_flags(parser)
    parser.add_argument("--experiment", default=EXPERIMENT, help="MLflow experiment, one run per point")
    parser.add_argument("--overwrite", action="store_true",
                        help="measure afresh in place of a CSV with other settings or a finished grid")
    parser.add_argument("--out-dir", default=str(PS_BENCH_DIR), help="where the CSV, table and figure go")
    command.add_quick_flag(parser, "synthetic data, p 1 2 x w 1 2 3, batch 32, 3 steps, 1 round (CI)")


if __name__ == "__main__":
    from models.shared.command import run_module
    raise SystemExit(run_module("models.distributed.ps_bench"))
