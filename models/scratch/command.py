"""`sysdl scratch overfit | converge | profile`: the from-scratch numpy CNN as a job.

    sysdl scratch overfit                # 100 training images to >= 99%, and the test gap
    sysdl scratch converge               # SGD-momentum / AdaGrad / Adam convergence figure
    sysdl scratch profile                # time per layer: numpy vs Numba vs PyTorch; one epoch each
    sysdl scratch profile --quick        # tiny sizes: a smoke test of the whole path
"""

from __future__ import annotations

from pathlib import Path

from models.shared import command
from models.shared.artifacts import RUNS

SUBCOMMANDS = {
    "overfit": "fit 100 training images to >= 99%% and report the test gap",
    "converge": "SGD-momentum / AdaGrad / Adam convergence figure",
    "profile": "time per layer: numpy vs Numba vs PyTorch; one epoch each",
}


def add_arguments(parser) -> None:
    scratch = parser.add_subparsers(dest="scratch_command", required=True, metavar="SCRATCH_COMMAND")
    for name, text in SUBCOMMANDS.items():
        q = scratch.add_parser(name, help=text, formatter_class=command.HelpFormatter)
        command.add_data_flags(q, val_size=5000 if name == "converge" else 0)
        q.add_argument("--backend", default="numba", choices=["numpy", "numba"], help="which layers run")
        q.add_argument("--out-dir", default=str(RUNS), help="where tables and figures go")
        command.add_run_flags(q, track=name == "converge")
        command.add_quick_flag(q, "tiny sizes: a smoke test of the whole path")
        if name == "overfit":
            q.add_argument("--samples", type=int, default=100, help="training images to memorise")
            q.add_argument("--max-epochs", type=int, default=300, help="give up after this many epochs")
        elif name == "converge":
            q.add_argument("--optimizers", nargs="+", default=["sgd-momentum", "adagrad", "adam"],
                           help="the optimizers to compare")
            q.add_argument("--epochs", type=int, default=5, help="epochs per optimizer")
            q.add_argument("--train-images", type=int, default=10_000, help="training images used")
        else:
            q.add_argument("--batch", type=int, default=128, help="images per timed call")
            q.add_argument("--repeats", type=int, default=10, help="timed calls per layer (median)")
            q.add_argument("--epoch-images", type=int, default=60_000, help="images in the timed epoch")


def main(args) -> int:
    from models.data.datasets import load_dataset

    data = load_dataset(args.dataset, args.data_dir, download=args.download, val_size=args.val_size, seed=0)
    if args.quick:
        for name, small in (("epochs", 1), ("train_images", 256), ("batch", 16), ("repeats", 2),
                            ("epoch_images", 512), ("max_epochs", 60)):
            if hasattr(args, name):
                setattr(args, name, small)
    return {"overfit": _overfit, "converge": _converge, "profile": _profile}[args.scratch_command](args, data)


def _overfit(args, data) -> int:
    from models.scratch import train
    result = train.overfit(data, samples=args.samples, backend=args.backend,
                           max_epochs=args.max_epochs, progress=not args.no_progress)
    state = "reached" if result["reached"] else "did NOT reach"
    print(f"{result['samples']} training images: training accuracy {result['train_acc']:.4f} after "
          f"{result['epochs']} epochs ({state} 99%); test accuracy {result['test_acc']:.4f}, "
          f"{100 * result['gap']:.1f} points behind.")
    if result["gap"] > 0.05:
        print("It overfits, as it should: a few hundred thousand parameters memorise so few images "
              "long before they describe the classes.")
    return 0 if result["reached"] else 1


def _converge(args, data) -> int:
    import pandas as pd
    from models.scratch import train
    out = Path(args.out_dir)
    results = train.converge(data, args.optimizers, epochs=args.epochs, train_images=args.train_images,
                             backend=args.backend, track=not args.no_track, progress=not args.no_progress)
    table = pd.DataFrame([{"optimizer": name, **history[-1]} for name, history in results.items()])
    print(table.round(4).to_string(index=False))
    path = train.plot_convergence(results, out / "scratch_convergence.png")
    table.to_csv(out / "scratch_convergence.csv", index=False)
    print(f"figure: {path}\ntable:  {out / 'scratch_convergence.csv'}")
    return 0


def _profile(args, data) -> int:
    from models.scratch import profile
    from models.training.provenance import provenance
    from sysdl_kernels.runtime import configure_cpu_runtime
    from sysdl_kernels.scratch.epoch import epoch_times
    from sysdl_kernels.scratch.net import ScratchConfig

    out = Path(args.out_dir)
    configure_cpu_runtime()
    x = data.train.x[:args.batch].numpy()
    table = profile.layer_table(profile.run_profile(x, args.repeats))
    print(f"time per layer, ms for a batch of {len(x)} (median of {args.repeats})\n{table.round(3).to_string()}")
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "scratch_profile.csv")
    print(f"bar chart: {profile.plot_layers(table, out / 'scratch_profile.png')}")
    n = args.epoch_images
    epochs = epoch_times(data.train.x[:n].numpy(), data.train.y[:n].numpy(), ScratchConfig(image_size=x.shape[-1]))
    ratio = epochs["numba scratch"] / epochs["pytorch cpu"]
    print(f"one epoch over {n} images: numba scratch {epochs['numba scratch']:.2f} s, PyTorch CPU "
          f"{epochs['pytorch cpu']:.2f} s; ratio {ratio:.2f}x")
    print("provenance:", provenance())
    return 0


if __name__ == "__main__":
    raise SystemExit(command.run_module("models.scratch.command"))
