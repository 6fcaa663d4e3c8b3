"""`sysdl gradcheck`: finite differences for every from-scratch layer and the whole network.

    sysdl gradcheck                      # numpy layers, float64, centred differences
    sysdl gradcheck --backend numba      # the Numba layers
"""

from __future__ import annotations

from models.shared import command


def add_arguments(parser) -> None:
    parser.add_argument("--backend", default="numpy", choices=["numpy", "numba"], help="which layers to check")
    parser.add_argument("--samples", type=int, default=20, help="entries checked per array")
    parser.add_argument("--seed", type=int, default=0, help="seed of the inputs and the sampled entries")
    parser.add_argument("--threshold", type=float, default=1e-6, help="largest relative error that passes")


def main(args) -> int:
    import pandas as pd
    from sysdl_kernels.scratch.gradcheck import gradcheck

    table = pd.DataFrame(gradcheck(backend=args.backend, seed=args.seed, samples=args.samples))
    print(table.to_string(index=False, formatters={"max_rel_error": "{:.2e}".format}))
    worst = table["max_rel_error"].max()
    verdict = "PASS" if worst < args.threshold else "FAIL"
    print(f"\nworst relative error {worst:.2e}: {verdict} (threshold {args.threshold:g}, float64, centred differences)")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    raise SystemExit(command.run_module("models.scratch.gradcheck"))
