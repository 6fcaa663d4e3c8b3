"""Where every job's outputs go, defined once: the main job's artifacts and each side job's folder.

    from models.shared.artifacts import MAIN
    MAIN.base            # runs/base.pt: what `sysdl train` writes and every later job reads
    MAIN.selected        # runs/pruned_selected.pt: what `sysdl report prune` selects

Paths are relative to the working directory, as the commands' defaults are; ``sysdl pipeline``
anchors them at the repository root. ``--quick`` runs of the main job write below runs/quick/
so that they never replace a finished artifact of the full run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RUNS = Path("runs")
ASV_RESULTS = Path(".asv/results")          # asv.conf.json's results_dir: this machine's asv results
# Results committed from other machines: `sysdl gpu-check` writes a GPU machine's asv results to
# COMMITTED_RESULTS/<machine>/asv/ (a copy of asv's results directory: benchmarks.json and
# <machine>/*.json), which `sysdl bench-table` reads beside ASV_RESULTS.
COMMITTED_RESULTS = Path("docs/results")


@dataclass(frozen=True)
class MainJobArtifacts:
    """The main job's artifacts below one root (runs/, or runs/quick/ for --quick)."""
    root: Path
    base: Path              # the trained base model (checkpoint)
    prune_dir: Path         # one folder per pruning session, each with state.json and step checkpoints
    selected: Path          # the pruned model `sysdl report prune` selects
    infer_csv: Path         # `sysdl infer-bench`'s timings
    bench_json: Path        # pytest-benchmark's JSON
    tables: Path            # `sysdl bench-table`'s tables and charts
    prune_control: Path     # `sysdl prune-control`: the scratch control and final retraining of the pruning front

    @classmethod
    def under(cls, root: str | Path) -> "MainJobArtifacts":
        root = Path(root)
        return cls(root, root / "base.pt", root / "prune", root / "pruned_selected.pt", root / "infer_bench.csv",
                   root / "bench.json", root / "bench_table", root / "prune_control")

    @property
    def prune_control_runs(self) -> Path:
        """Every finished run of `sysdl prune-control`, one row each (what `sysdl report prune` reads)."""
        return self.prune_control / "runs.csv"


MAIN = MainJobArtifacts.under(RUNS)
QUICK = MainJobArtifacts.under(RUNS / "quick")

# The side jobs' output folders (each a default of its command's --out-dir / --out).
BENCH_TRAIN_JSON = RUNS / "bench_train.json"
SWEEP_DIR, QUICK_SWEEP_DIR = RUNS / "sweep", QUICK.root / "sweep"
SWEEP_REPORT_DIR, QUICK_SWEEP_REPORT_DIR = RUNS / "sweep_report", QUICK.root / "sweep_report"
STUDIES_DIR = RUNS / "studies"
ALLREDUCE_DIR = RUNS / "allreduce"
SCALING_DIR = RUNS / "scaling"
PS_BENCH_DIR = RUNS / "ps_bench"          # `sysdl ps-bench`: ps_bench.csv, the speeds `sysdl optimus speed` fits
ANALYZE_DIR = RUNS / "analyze"
PREDICT_TIME_DIR = RUNS / "predict_time"
OPTIMUS_DIR = RUNS / "optimus"
TRITON_REPORT_DIR = RUNS / "triton_report"
MACHINE_DIR = RUNS / "machine"
GROWTH_DIR = RUNS / "growth"
EXPLORE_PAGE = RUNS / "explore" / "explore.html"     # `sysdl explore`'s self-contained page
