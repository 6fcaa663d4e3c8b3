"""`sysdl allreduce-bench`: the quick run end to end (spawned gloo ranks), the size parser, and
the alpha-beta fit recovering known latency and bandwidth, and the refused arguments (counts
below 1, sizes that are not whole elements)."""

from __future__ import annotations

import argparse

import pandas as pd
import pytest

from models.distributed.allreduce_bench import fit_alpha_beta, parse_size, tables
from sysdl_kernels.collectives import STRATEGIES, cost_terms


def test_parse_size_reads_units():
    assert parse_size("4096") == 4096
    assert parse_size("4K") == 4096 and parse_size("64MiB") == 64 << 20 and parse_size("1g") == 1 << 30
    with pytest.raises(argparse.ArgumentTypeError, match="bytes"):
        parse_size("lots")


def test_fit_recovers_alpha_and_beta_of_a_synthetic_machine():
    alpha, beta, world = 40e-6, 1 / 3e9, 4                    # 40 us per message, 3 GB/s
    rows = [{"bytes": size, "count": size // 4, "world": world, "strategy": strategy,
             "time_us": 1e6 * (lambda m, b: m * alpha + b * beta)(*cost_terms(strategy, world, size))}
            for strategy in ("ring", "recursive_doubling", "tree") for size in (4096, 1 << 20, 64 << 20)]
    fit = fit_alpha_beta(pd.DataFrame(rows), world, 2).set_index("strategy")
    assert fit["alpha_us"].to_numpy() == pytest.approx([40.0] * 3, rel=1e-6)
    assert fit["bandwidth_GBps"].to_numpy() == pytest.approx([3.0] * 3, rel=1e-6)
    assert fit["mean_abs_rel_error"].max() < 1e-9


def test_busbw_column_follows_nccl_tests():
    frame = pd.DataFrame([{"bytes": 1 << 20, "count": 1 << 18, "world": 4, "strategy": "ring", "time_us": 1000.0}])
    full, _, bus = tables(frame)
    assert full["algbw_GBps"].iloc[0] == pytest.approx((1 << 20) / 1e-3 / 1e9)
    assert bus.loc[1 << 20, "ring"] == pytest.approx(full["algbw_GBps"].iloc[0] * 1.5)


def test_quick_bench_writes_checked_tables_and_plots(tmp_path, capsys):
    from models.cli.main import main
    assert main(["allreduce-bench", "--world", "3", "--quick", "--out-dir", str(tmp_path)]) == 0
    frame = pd.read_csv(tmp_path / "allreduce.csv")
    assert set(frame["strategy"]) == set(STRATEGIES)
    assert sorted(set(frame["bytes"])) == [4096, 65536, 1 << 20]
    assert (frame["time_us"] > 0).all() and (frame["world"] == 3).all()
    fit = pd.read_csv(tmp_path / "allreduce_fit.csv")
    assert set(fit["strategy"]) == set(STRATEGIES) and (fit["alpha_us"] >= 0).all()
    for name in ("allreduce.md", "allreduce_bandwidth.png", "allreduce_model.png"):
        assert (tmp_path / name).stat().st_size > 0
    out = capsys.readouterr().out
    assert "busbw" in out and "ring busbw / backend busbw" in out


def bench_parser():
    from models.distributed.allreduce_bench import add_arguments
    from models.shared.command import new_parser
    parser = new_parser("sysdl allreduce-bench")
    add_arguments(parser)
    return parser


@pytest.mark.parametrize("flag", ["--world", "--group-size", "--rounds", "--max-iters"])
@pytest.mark.parametrize("value", ["0", "-2"])
def test_non_positive_counts_are_refused_naming_the_flag(flag, value, capsys):
    with pytest.raises(SystemExit) as exit_:
        bench_parser().parse_args([flag, value])
    assert exit_.value.code == 2
    assert flag in capsys.readouterr().err


def test_a_size_of_part_of_an_element_is_refused_not_rounded(tmp_path, capsys):
    from models.cli.main import main
    assert main(["allreduce-bench", "--world", "1", "--sizes", "4K", "7", "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--sizes" in err[0] and "7" in err[0] and "4-byte" in err[0]
    assert main(["allreduce-bench", "--world", "1", "--dtype", "float64", "--sizes", "12",
                 "--out-dir", str(tmp_path)]) == 2
    assert "8-byte" in capsys.readouterr().err
    assert not (tmp_path / "allreduce.csv").exists()
