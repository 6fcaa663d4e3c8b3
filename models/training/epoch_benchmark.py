"""Epoch time of sysdl's training loop against a plain PyTorch loop: same network, same math.

    sysdl bench-train                 # 6 rounds on the real data, ~1.5 minutes on 2 cores
    sysdl bench-train --profile       # also the top ops of each loop under torch.profiler
    sysdl bench-train --quick         # synthetic data, seconds (CI)

Both loops train the same FashionCNN from the same initial weights, with the same SGD with
momentum, weight decay and learning-rate schedule, batch size and data order (``epoch_data``
is shared), and then evaluate the test set, as an epoch of `sysdl train` does. They run in two
separate processes, so process-wide settings of one (threads, allocator) cannot help the
other, and they alternate epoch by epoch in an A B B A order so that machine noise falls on
both. The first epoch of each is a warm-up and is not counted. The figure is the median over
epochs of sysdl's epoch time divided by the plain loop's.

The plain loop is the textbook ``nn.Sequential`` (conv, ReLU, conv, ReLU, Flatten, Linear,
ReLU, Linear) with a copy of the same initial weights. What sysdl does differently: a fused SGD
step; ReLU in place on the conv outputs; fc1 as a whole-map convolution on oneDNN on CPUs where
MKL's sgemm is not at full width (``dense_on_feature_map`` in models/nets/fashion_cnn.py: the
same sum; on AMD it was the biggest win, on Intel the plain linear is faster and is used);
evaluation under inference_mode in batches of 256; loss and accuracy accumulated as tensors rather
than ``.item()`` per step; and glibc told to keep large blocks mapped between steps
(sysdl_kernels/runtime.py).
"""

from __future__ import annotations

import copy
import json
import multiprocessing as mp
import queue
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from models.shared import command
from models.shared.artifacts import BENCH_TRAIN_JSON

LOOPS = ("plain", "sysdl")


def add_arguments(parser) -> None:
    parser.add_argument("--rounds", type=int, default=6, help="timed epochs per loop (after one warm-up)")
    command.add_quick_flag(parser, "synthetic data and 2 rounds (smoke test)")
    parser.add_argument("--profile", action="store_true", help="print torch.profiler's top ops per loop")
    command.add_threads_flag(parser, "torch threads in each loop (default: all cores)")
    parser.add_argument("--out", default=str(BENCH_TRAIN_JSON), help="JSON with times and provenance")
    command.add_data_dir_flag(parser)


def plain_network(model) -> torch.nn.Sequential:
    """The textbook nn.Sequential of the same network, holding a copy of ``model``'s weights."""
    net = nn.Sequential(model.conv1, nn.ReLU(), model.conv2, nn.ReLU(), nn.Flatten(), model.fc1,
                        nn.ReLU(), model.fc2)
    return copy.deepcopy(net)


def _plain_epoch(model, optimizer, scheduler, x, y, test, batch_size):
    """The baseline: the loop a PyTorch tutorial writes."""
    model.train()
    total, correct = 0.0, 0
    for i in range(0, len(y), batch_size):
        xb, yb = x[i:i + batch_size], y[i:i + batch_size]
        out = model(xb)
        loss = F.cross_entropy(out, yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        total += loss.item()
        correct += (out.argmax(1) == yb).sum().item()
    model.eval()
    hits = 0
    with torch.no_grad():
        for i in range(0, len(test.y), batch_size):
            hits += (model(test.x[i:i + batch_size]).argmax(1) == test.y[i:i + batch_size]).sum().item()
    return hits / len(test.y)


def _worker(loop: str, quick: bool, data_dir, threads, epochs: int, commands, results) -> None:
    from models.data.datasets import load_dataset
    from models.nets.fashion_cnn import FashionCNN
    from sysdl_kernels.runtime import configure_cpu_runtime
    from models.training.loop import TrainConfig, epoch_data, evaluate, make_optimizer, make_scheduler, train_epoch

    if loop == "sysdl":
        configure_cpu_runtime(threads)
    else:
        torch.set_num_threads(threads or torch.get_num_threads())
    data = load_dataset("synthetic" if quick else "fashion-mnist", data_dir)
    cfg = TrainConfig(epochs=epochs)
    torch.manual_seed(cfg.seed)
    model = FashionCNN()
    if loop == "plain":
        model = plain_network(model)
    steps = -(-len(data.train) // cfg.batch_size)
    if loop == "sysdl":
        optimizer, scheduler = make_optimizer(model, cfg, steps)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                    weight_decay=cfg.weight_decay)
        scheduler = make_scheduler(optimizer, cfg, steps)
    for epoch in iter(commands.get, None):
        profiler = None
        if epoch == "profile":
            from torch.profiler import ProfilerActivity, profile
            x, y = epoch_data(data.train, cfg, 0)
            x, y = x[:50 * cfg.batch_size], y[:50 * cfg.batch_size]
            profiler = profile(activities=[ProfilerActivity.CPU])
            profiler.__enter__()
        else:
            x, y = epoch_data(data.train, cfg, epoch)
        t0 = time.perf_counter()
        if loop == "sysdl":
            train_epoch(model, optimizer, scheduler, x, y, cfg.batch_size)
            _, acc = evaluate(model, data.test, cfg.eval_batch_size)
        else:
            acc = _plain_epoch(model, optimizer, scheduler, x, y, data.test, cfg.batch_size)
        elapsed = time.perf_counter() - t0
        if profiler is not None:
            profiler.__exit__(None, None, None)
            results.put(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
        else:
            results.put((elapsed, acc))


def main(args) -> int:
    import pandas as pd
    from models.training.provenance import provenance

    rounds = 2 if args.quick else args.rounds
    if rounds < 1:
        raise ValueError(f"--rounds must be >= 1, got {rounds}")
    if not args.quick:
        from sysdl_kernels.runtime import warn_if_busy
        warn_if_busy("sysdl bench-train")
    ctx = mp.get_context("spawn")
    workers = {}
    for loop in LOOPS:
        commands, results = ctx.Queue(), ctx.Queue()
        proc = ctx.Process(target=_worker, args=(loop, args.quick, args.data_dir, args.threads,
                                                 rounds + 1 + int(args.profile), commands, results))
        proc.start()
        workers[loop] = (proc, commands, results)

    def run(loop, epoch):
        proc, commands, results = workers[loop]
        commands.put(epoch)
        while True:                       # a worker that died (e.g. no data) must not hang us
            try:
                return results.get(timeout=5)
            except queue.Empty:
                if not proc.is_alive():
                    raise RuntimeError(f"the {loop} worker exited with code {proc.exitcode}; "
                                       f"its error is printed above") from None

    times = {loop: [] for loop in LOOPS}
    accs = {}
    try:
        for epoch in range(rounds + 1):
            order = LOOPS if epoch % 2 == 0 else LOOPS[::-1]   # A B, B A, ...
            for loop in order:
                elapsed, accs[loop] = run(loop, epoch)
                if epoch > 0:                                  # epoch 0 is the warm-up
                    times[loop].append(elapsed)
                print(f"epoch {epoch}{' (warm-up)' if epoch == 0 else ''} {loop:>5}: "
                      f"{elapsed:6.2f} s, test acc {accs[loop]:.4f}", flush=True)
        if args.profile:
            for loop in LOOPS:
                print(f"\n== torch.profiler, {loop} loop, 50 steps\n{run(loop, 'profile')}")
    finally:
        for proc, commands, _ in workers.values():
            commands.put(None)
            proc.join(timeout=30)
            if proc.is_alive():
                proc.terminate()

    ratios = [s / p for s, p in zip(times["sysdl"], times["plain"])]
    table = pd.DataFrame({"plain loop [s]": times["plain"], "sysdl [s]": times["sysdl"],
                          "sysdl / plain": ratios}, index=pd.RangeIndex(1, rounds + 1, name="epoch"))
    print(table.round(3).to_string())
    median_ratio = statistics.median(ratios)
    print(f"\nmedian epoch time: plain {statistics.median(times['plain']):.2f} s, sysdl "
          f"{statistics.median(times['sysdl']):.2f} s; sysdl / plain = {median_ratio:.3f} "
          f"(median of per-epoch ratios, {rounds} epochs, {'synthetic' if args.quick else 'Fashion-MNIST'})")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"times": times, "ratios": ratios, "median_ratio": median_ratio,
                               "test_acc": accs, "quick": args.quick, "provenance": provenance()},
                              indent=2))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    from models.shared.command import run_module
    raise SystemExit(run_module("models.training.epoch_benchmark"))
