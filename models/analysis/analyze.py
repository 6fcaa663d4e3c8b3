"""`sysdl analyze`: per-layer analytic cost of classic CNNs (and ours), and receptive fields.

For every layer of a network from sysdl_kernels.cnn_zoo (plus our Fashion-MNIST CNN at its
default config): output shape, activations (elements, and bytes at --dtype-bytes), weights
(without biases), parameters (with biases), multiply-adds, FLOPs (2 x MACs for conv/linear,
plus the other ops, see sysdl_kernels.flops) and the bytes a roofline model reads and writes;
then the network's totals and the share of its FLOPs spent in conv layers. Nothing is run:
the numbers come from the layer descriptions (tests/models/analysis/test_analyze.py checks them against
torchvision and torch.utils.flop_counter).

    sysdl analyze vgg19                                 # table + totals, runs/analyze/vgg19.{csv,md,png}
    sysdl analyze inception_naive inception_reduced     # two tables and a side-by-side summary
    sysdl analyze all --totals-only                     # every network's totals, runs/analyze/summary.*
    sysdl analyze --receptive-field 5 3                 # 5 stride-1 3x3 convs: formula vs N*F - N + 1
    sysdl analyze --receptive-field 3 3 --stride 2      # strided: formula vs the geometric closed form
    python -m models.analysis.analyze vgg19                      # the same without the console script
"""

from __future__ import annotations

import argparse
import difflib
from pathlib import Path
from models.shared.artifacts import ANALYZE_DIR

WEIGHTED_KINDS = ("conv", "linear")           # the layers drawn in the per-layer chart


def networks() -> dict:
    """name -> (layers, input shape): the zoo plus the Fashion-MNIST CNN at its default config."""
    from models.nets.fashion_cnn import FashionCNNConfig
    from sysdl_kernels.cnn_zoo import ZOO
    config = FashionCNNConfig()
    specs, names = config.layer_specs()
    fashion = (list(zip(names, specs)), (config.in_channels, config.image_size, config.image_size))
    return {**ZOO, "fashion_cnn": fashion}


def network_names() -> list[str]:
    from sysdl_kernels.cnn_zoo import ZOO
    return [*ZOO, "fashion_cnn"]


def select(requested: list[str]) -> list[str]:
    """The requested network names in order, ``all`` expanded; a clear error for unknown names."""
    known = network_names()
    chosen = []
    for name in requested:
        if name == "all":
            chosen += [n for n in known if n not in chosen]
        elif name in known:
            chosen += [name] if name not in chosen else []
        else:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ValueError(f"unknown model {name!r}{hint}; choose from {', '.join(known)} or all")
    return chosen


def layer_table(costs: list, dtype_bytes: int = 4):
    """One row per layer: the LayerCost numbers and the memory traffic at ``dtype_bytes``."""
    import pandas as pd
    from sysdl_kernels.flops import bytes_read, bytes_written
    return pd.DataFrame([{
        "layer": c.name, "kind": c.kind, "output": "x".join(map(str, c.output_shape)),
        "activations": c.activations, "activation_bytes": c.activations * dtype_bytes,
        "weights": c.weights, "params": c.params, "macs": c.macs, "flops": c.flops,
        "bytes_read": bytes_read(c, dtype_bytes), "bytes_written": bytes_written(c, dtype_bytes),
    } for c in costs])


def summary_row(name: str, input_shape, costs: list, dtype_bytes: int = 4) -> dict:
    """A network's totals as one row: counts, GFLOPs, conv share, activation memory."""
    from sysdl_kernels.flops import memory_bytes, totals
    total = totals(costs)
    return {"network": name, "input": "x".join(map(str, input_shape)),
            "output": "x".join(map(str, costs[-1].output_shape)), "params": total["params"],
            "weights": total["weights"], "macs": total["macs"], "gflops": total["flops"] / 1e9,
            "conv_flops_share": total["conv_flops_share"], "activations": total["activations"],
            "activation_MB": total["activations"] * dtype_bytes / 1e6,
            "traffic_MB": sum(memory_bytes(c, dtype_bytes) for c in costs) / 1e6}


def to_markdown(frame) -> str:
    """Markdown with thousands separators on integers."""
    return frame.to_markdown(index=False, intfmt=",", floatfmt=",.3f")


def totals_line(row: dict) -> str:
    return (f"{row['network']} ({row['input']}): {row['params']:,} params ({row['weights']:,} weights), "
            f"{row['macs']:,} MACs, {row['gflops']:.3f} GFLOPs, {100 * row['conv_flops_share']:.1f}% of "
            f"FLOPs in conv layers; {row['activations']:,} activations ({row['activation_MB']:.1f} MB), "
            f"{row['traffic_MB']:.1f} MB of memory traffic")


def plot_layers(frame, title: str, path: Path) -> Path:
    """FLOPs and parameters of every conv / linear layer, log scale (they span 4-5 decades)."""
    from models.shared.figures import new_figure, save
    weighted = frame[frame["kind"].isin(WEIGHTED_KINDS)]
    positions = range(len(weighted))
    fig, (top, bottom) = new_figure(figsize=(max(7.0, 0.16 * len(weighted) + 2), 6), nrows=2)
    colors = ["tab:blue" if kind == "conv" else "tab:orange" for kind in weighted["kind"]]
    top.bar(positions, weighted["flops"], color=colors)
    top.set(yscale="log", ylabel="FLOPs", title=f"{title}: per conv (blue) / linear (orange) layer")
    bottom.bar(positions, weighted["params"], color=colors)
    bottom.set(yscale="log", ylabel="parameters")
    bottom.set_xticks(list(positions), weighted["layer"], rotation=90, fontsize=6)
    top.set_xticks([])
    return save(fig, path)


def receptive_field_table(n: int, f: int, stride: int = 1):
    """Receptive field after 1..n FxF convs of one stride: the general formula beside the closed form."""
    import pandas as pd
    from sysdl_kernels.flops import receptive_field, receptive_field_closed_form
    closed = "N*F - N + 1" if stride == 1 else "1 + (F-1)(S^N - 1)/(S - 1)"
    return pd.DataFrame([{"N": k, "F": f, "stride": stride,
                          "formula 1 + sum (k_i - 1) prod s_j": receptive_field([f] * k, [stride] * k),
                          f"closed form {closed}": receptive_field_closed_form(k, f, stride)}
                         for k in range(1, n + 1)])


def _analyze_one(name: str, layers, shape, args) -> dict:
    from sysdl_kernels.flops import analyze
    costs = analyze(layers, shape)
    frame = layer_table(costs, args.dtype_bytes)
    row = summary_row(name, shape, costs, args.dtype_bytes)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out_dir / f"{name}.csv", index=False)
    text = f"# {name}: per-layer cost of one forward pass ({args.dtype_bytes}-byte elements)\n\n" \
           f"{to_markdown(frame)}\n\n{totals_line(row)}\n"
    (out_dir / f"{name}.md").write_text(text)
    print(totals_line(row) if args.totals_only else text)
    plot_layers(frame, name, out_dir / f"{name}.png")
    print(f"wrote {out_dir / name}.csv, .md, .png")
    return row


def _comparison(rows: list[dict]) -> list[str]:
    """One line on what the 1x1 reductions buy, when both Inception forms were analysed."""
    by_name = {row["network"]: row for row in rows}
    if not {"inception_naive", "inception_reduced"} <= by_name.keys():
        return []
    naive, reduced = by_name["inception_naive"], by_name["inception_reduced"]
    return [f"1x1 dimension reduction: {naive['macs'] / reduced['macs']:.2f}x fewer MACs "
            f"({naive['macs']:,} -> {reduced['macs']:,}), {naive['params'] / reduced['params']:.2f}x fewer "
            f"params ({naive['params']:,} -> {reduced['params']:,}), output "
            f"{naive['output']} -> {reduced['output']}"]


def main(args) -> int:
    import pandas as pd
    if args.receptive_field and args.model:
        raise ValueError("give either MODEL names or --receptive-field N F, not both")
    if args.receptive_field:
        n, f = args.receptive_field
        if n < 1:
            raise ValueError(f"--receptive-field N F: N is the number of convs, at least 1; got {n}")
        print(to_markdown(receptive_field_table(n, f, args.stride)))
        return 0
    if not args.model:
        raise ValueError(f"name a model ({', '.join(network_names())} or all), or give --receptive-field N F")
    if args.dtype_bytes < 1:
        raise ValueError(f"--dtype-bytes is the size of one element (4 for float32, 2 for bf16), got {args.dtype_bytes}")
    zoo = networks()
    rows = []
    for name in select(args.model):
        layers, shape = zoo[name]
        rows.append(_analyze_one(name, layers, shape, args))
    if len(rows) > 1:
        summary = pd.DataFrame(rows)
        out_dir = Path(args.out_dir)
        summary.to_csv(out_dir / "summary.csv", index=False)
        text = to_markdown(summary)
        (out_dir / "summary.md").write_text(text + "\n")
        print(f"\n{text}\nwrote {out_dir / 'summary'}.csv, .md")
    for line in _comparison(rows):
        print(line)
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="*", metavar="MODEL",
                        help=f"one or more of {', '.join(network_names())}, or all")
    parser.add_argument("--receptive-field", type=int, nargs=2, metavar=("N", "F"), default=None,
                        help="print the receptive field of N FxF convs (general formula vs closed form)")
    parser.add_argument("--stride", type=int, default=1, help="stride of every conv for --receptive-field")
    parser.add_argument("--dtype-bytes", type=int, default=4, help="bytes per element (4: float32)")
    parser.add_argument("--totals-only", action="store_true", help="print totals, not the per-layer tables")
    parser.add_argument("--out-dir", default=str(ANALYZE_DIR), help="where tables and figures go")


if __name__ == "__main__":
    from models.shared.command import run_module
    raise SystemExit(run_module("models.analysis.analyze"))
