"""CPU vs GPU per kernel family: measured where a GPU ran the cases, predicted where none did.

    sysdl bench-table                          # writes bench_<family>_gpu.md / .csv / .png too
    sysdl bench-table --gpu A100 --ppp 0.3     # predict for another GPU, at another PPP

One row per case and implementation, from the long frame of models.reports.bench_results:

    CPU (<machine>)                  median time on the CPU machine (the machine with CPU times only;
                                     an implementation with none, e.g. Triton or TF32 (CUDA only),
                                     is compared with the family's baseline there, named in brackets)
    GPU <machine> (measured)         median CUDA time on each machine that ran the cases on a GPU
    CPU/GPU <machine> (measured)     CPU time / that GPU time
    PPP <machine> (measured)         the PPP at which the prediction equals the measured time
                                     (perf_model.exact_ppp against the --gpu device's peaks)
    GPU <gpu> (predicted, PPP p)     PALEO (perf_model.layer_seconds): FLOPs / (p x peak FLOP/s) +
                                     bytes / (p x bandwidth), with the case's work from the results
                                     and the --gpu device's datasheet peaks (its TF32 tensor-core
                                     peak for "<name> tf32" implementations)
    CPU/GPU <gpu> (predicted)        CPU time / predicted time

Rows: every (case, implementation) measured somewhere, and those of implementations no machine
measured (the GPU-only ones, before a GPU ran) with their predictions. A prediction is never
written into a measured column: the CSV has one row per (case,
implementation, CPU machine, GPU) with ``kind`` "measured" or "predicted", and the chart draws
predicted bars hatched and hollow. The prediction is the case's (its work and precision), not
the implementation's: it is the same for every fp32 implementation of one case.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from models.reports.bench_results import (GPU_HINT, baseline_of, format_ratio, format_seconds, is_gpu, precision_of,
                                          provenance, ratio, write_family_files)

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_GPU = "H200"
NUMBER_COLUMNS = ["case", "implementation", "precision", "cpu_machine", "cpu_implementation", "cpu_seconds",
                  "gpu", "kind", "gpu_seconds", "cpu_over_gpu", "ppp", "flops", "bytes"]


@dataclass
class GpuTable:
    """One family's CPU-vs-GPU table: ``cells`` for reading, ``numbers`` (long, with ``kind``) for CSV."""
    family: str
    gpu: str                            # the --gpu device the predictions are for
    cells: pd.DataFrame                 # columns case, implementation, then strings (see the module docstring)
    numbers: pd.DataFrame               # NUMBER_COLUMNS: one row per measured or predicted GPU time
    provenance: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Prediction:
    """The PALEO model the predicted columns use: a perf_model Device at a stated PPP."""
    key: str                            # perf_model.DEVICES key, e.g. "H200"
    ppp: float

    @property
    def device(self):
        from sysdl_kernels.perf_model import DEVICES
        return DEVICES[self.key]

    def seconds(self, flops: float, moved: float, precision: str, ppp: float | None = None) -> float:
        """Predicted seconds; NaN without work, or for TF32 on a device without tensor cores."""
        from sysdl_kernels.perf_model import layer_seconds
        if math.isnan(flops) or math.isnan(moved) or not self.has(precision):
            return math.nan
        return layer_seconds(flops, moved, self.device.at_precision(precision), self.ppp if ppp is None else ppp)

    def has(self, precision: str) -> bool:
        return precision == "ieee" or self.device.tf32_flops is not None

    def describe(self) -> str:
        device = self.device
        tf32 = f", TF32 tensor cores {device.tf32_flops / 1e12:g}" if device.tf32_flops else ""
        return (f"predicted: PALEO (sysdl_kernels.perf_model.layer_seconds), FLOPs / (PPP x peak) + bytes / "
                f"(PPP x bandwidth) at PPP {self.ppp:g}, {device.name}: fp32 {device.peak_flops / 1e12:g}{tf32} "
                f"TFLOP/s, {device.bandwidth / 1e12:g} TB/s, from the {device.source}; FLOPs and bytes per case "
                "from the results")


def make_prediction(gpu: str = DEFAULT_GPU, ppp: float | None = None) -> Prediction:
    """The model for ``--gpu`` / ``--ppp``: ppp defaults to the device's default_ppp."""
    from sysdl_kernels.perf_model import DEVICES
    if gpu not in DEVICES:
        raise ValueError(f"unknown GPU {gpu!r}: choose one of {', '.join(DEVICES)} (sysdl_kernels.perf_model)")
    ppp = DEVICES[gpu].default_ppp if ppp is None else ppp
    if not 0 < ppp <= 1:
        raise ValueError(f"--ppp must be in (0, 1], a fraction of the peaks, got {ppp}")
    return Prediction(gpu, ppp)


# ---------------------------------------------------------------------------------------------
# Numbers


def _origins(rows, gpu: bool) -> list[tuple[str, str]]:
    """(source, machine) pairs with a measured time on a GPU (gpu=True) or on the CPU."""
    measured = rows[rows["seconds"].notna() & (rows["device"].map(is_gpu) == gpu)]
    return list(dict.fromkeys(zip(measured["source"], measured["machine"])))


def cpu_origins(rows) -> list[tuple[str, str]]:
    """The CPU machines: those with CPU times and no GPU times (else every one with CPU times)."""
    gpus = set(_origins(rows, gpu=True))
    cpus = _origins(rows, gpu=False)
    return [o for o in cpus if o not in gpus] or cpus


def _items(rows) -> list[tuple[str, str]]:
    """The table's (case, implementation) rows, in benchmark order: those measured somewhere, and,
    of an implementation no machine measured (a GPU-only one before a GPU ran), those whose work
    is known; a TF32 one only where the case has arithmetic (im2col has no TF32 variant)."""
    measured = rows["seconds"].notna()
    never_ran = ~rows["implementation"].isin(set(rows.loc[measured, "implementation"]))
    no_arithmetic = (rows["implementation"].map(precision_of) == "tf32") & ~(rows["flops"] > 0)
    shown = rows[measured | (never_ran & rows["flops"].notna() & ~no_arithmetic)]
    cases, implementations = ({name: i for i, name in enumerate(dict.fromkeys(rows[column]))}
                              for column in ("case", "implementation"))
    items = dict.fromkeys(zip(shown["case"], shown["implementation"]))
    return sorted(items, key=lambda item: (cases[item[0]], implementations[item[1]]))


def _work(rows, cpus) -> dict[tuple[str, str], tuple[float, float]]:
    """(case, implementation) -> (FLOPs, bytes), the CPU machines' records first (inference's work
    depends on the checkpoint each machine had)."""
    first = {origin: rank for rank, origin in enumerate(cpus)}
    known = rows[rows["flops"].notna() & rows["bytes"].notna()]
    rank = [first.get(origin, len(first)) for origin in zip(known["source"], known["machine"])]
    known = known.assign(rank=rank).sort_values("rank", kind="stable").drop_duplicates(["case", "implementation"])
    return {(r.case, r.implementation): (r.flops, r.bytes) for r in known.itertuples()}


def _cpu_time(times: dict, cpu, case: str, implementation: str, baseline: str) -> tuple[str, float]:
    """(implementation timed, seconds) on the CPU machine: its own time, else the baseline's."""
    if cpu is None:
        return "", math.nan
    own = times.get((*cpu, case, implementation, "cpu"), math.nan)
    if not math.isnan(own):
        return implementation, own
    return baseline, times.get((*cpu, case, baseline, "cpu"), math.nan)


def _records(rows, baseline: str, prediction: Prediction) -> list[dict]:
    """NUMBER_COLUMNS rows: per item and CPU machine, one per measuring GPU machine, one predicted."""
    from sysdl_kernels.perf_model import exact_ppp
    times = {(r.source, r.machine, r.case, r.implementation, r.device): r.seconds for r in rows.itertuples()}
    cpus, gpus = cpu_origins(rows), _origins(rows, gpu=True)
    work = _work(rows, cpus)
    records = []
    for case, implementation in _items(rows):
        precision = precision_of(implementation)
        flops, moved = work.get((case, implementation), (math.nan, math.nan))
        predicted = prediction.seconds(flops, moved, precision)
        at_full_peak = prediction.seconds(flops, moved, precision, ppp=1.0)
        for cpu in cpus or [None]:
            timed, cpu_seconds = _cpu_time(times, cpu, case, implementation, baseline)
            common = {"case": case, "implementation": implementation, "precision": precision,
                      "cpu_machine": cpu[1] if cpu else "", "cpu_implementation": timed, "cpu_seconds": cpu_seconds,
                      "flops": flops, "bytes": moved}
            for gpu in gpus:
                measured = times.get((*gpu, case, implementation, "cuda"), math.nan)
                if not math.isnan(measured):
                    records.append({**common, "gpu": gpu[1], "kind": "measured", "gpu_seconds": measured,
                                    "cpu_over_gpu": ratio(cpu_seconds, measured),
                                    "ppp": exact_ppp(at_full_peak, measured)})
            records.append({**common, "gpu": prediction.key, "kind": "predicted", "gpu_seconds": predicted,
                            "cpu_over_gpu": ratio(cpu_seconds, predicted), "ppp": prediction.ppp})
    return records


# ---------------------------------------------------------------------------------------------
# Cells and notes


def _labels(numbers, prediction: Prediction) -> dict[tuple, str]:
    """(kind, gpu, cpu machine or None for a time) -> column label, in reading order: the CPU
    times, then per measuring GPU its time, CPU/GPU and PPP, then the prediction and its CPU/GPU."""
    cpus = list(dict.fromkeys(numbers["cpu_machine"]))
    gpus = list(dict.fromkeys(numbers.loc[numbers["kind"] == "measured", "gpu"]))
    on = (lambda cpu: f" [{cpu}]") if len(cpus) > 1 else (lambda cpu: "")
    labels = {("cpu", None, cpu): f"CPU ({cpu})" for cpu in cpus if cpu}
    for gpu in gpus:
        labels[("measured", gpu, None)] = f"GPU {gpu} (measured)"
        labels.update({("measured", gpu, cpu): f"CPU/GPU {gpu} (measured){on(cpu)}" for cpu in cpus if cpu})
        labels[("ppp", gpu, None)] = f"PPP {gpu} (measured, vs {prediction.key})"
    labels[("predicted", prediction.key, None)] = f"GPU {prediction.key} (predicted, PPP {prediction.ppp:g})"
    labels.update({("predicted", prediction.key, cpu): f"CPU/GPU {prediction.key} (predicted){on(cpu)}"
                   for cpu in cpus if cpu})
    return labels


def _cpu_cell(record) -> str:
    time = format_seconds(record["cpu_seconds"])
    named = record["cpu_implementation"]
    return time if named == record["implementation"] or time == "n/a" else f"{time} ({named})"


def _cells(numbers, prediction: Prediction) -> pd.DataFrame:
    """Columns case, implementation, then one string column per _labels entry ("n/a" where empty)."""
    import pandas as pd
    labels = _labels(numbers, prediction)
    rows: dict[tuple[str, str], dict[str, str]] = {}
    for record in numbers.to_dict("records"):
        row = rows.setdefault((record["case"], record["implementation"]), {})
        cpu, gpu, kind = record["cpu_machine"], record["gpu"], record["kind"]
        if cpu:
            row[labels[("cpu", None, cpu)]] = _cpu_cell(record)
            row[labels[(kind, gpu, cpu)]] = format_ratio(record["cpu_over_gpu"])
        row[labels[(kind, gpu, None)]] = format_seconds(record["gpu_seconds"])
        if kind == "measured":
            row[labels[("ppp", gpu, None)]] = "n/a" if math.isnan(record["ppp"]) else f"{record['ppp']:.2f}"
    index = pd.MultiIndex.from_tuples(list(rows), names=["case", "implementation"])
    cells = pd.DataFrame(list(rows.values()), index=index).reindex(columns=list(labels.values()))
    return cells.fillna("n/a").reset_index()


def _notes(numbers, baseline: str, prediction: Prediction) -> list[str]:
    measured = numbers["kind"] == "measured"
    notes = []
    if not measured.any():
        notes.append(f"no GPU has been measured yet (no cuda timings in these results): every GPU number below is "
                     f"a prediction for the {prediction.key}; {GPU_HINT}")
    notes.append(prediction.describe())
    if measured.any():
        notes.append(f"measured PPP: the PPP at which the {prediction.key} prediction equals the measured time "
                     f"(perf_model.exact_ppp); a fraction of the {prediction.key}'s peaks only if that machine's "
                     "GPU is one (--gpu names it)")
    if not numbers["cpu_machine"].astype(bool).any():
        notes.append("no cpu results: the CPU columns are missing (run the benchmarks with device cpu too)")
    if (numbers["cpu_implementation"].astype(bool) & (numbers["cpu_implementation"] != numbers["implementation"])).any():
        notes.append(f"a CPU time with a name in brackets is {baseline}'s (the family's baseline): that "
                     "implementation has no CPU time (Triton and TF32 run on CUDA only)")
    predicted = numbers[numbers["kind"] == "predicted"]
    no_work = predicted["flops"].isna() | predicted["bytes"].isna()
    if no_work.any():
        notes.append(f"{no_work.sum()} of {len(predicted)} rows have no FLOPs and bytes in the results (results "
                     "from before the *Work benchmarks): no prediction there")
    if not prediction.has("tf32") and (predicted["precision"] == "tf32").any():
        notes.append(f"the {prediction.key} has no TF32 tensor cores: no prediction for the tf32 implementations")
    return notes


def gpu_tables(frame, prediction: Prediction | None = None,
               baselines: dict[str, str] | None = None) -> dict[str, GpuTable]:
    """family -> GpuTable from a long frame (bench_results.load_asv / load_pytest_benchmark,
    concatenated). prediction: default the H200 at its default PPP."""
    import pandas as pd
    prediction = prediction or make_prediction()
    tables = {}
    for family, rows in frame.groupby("family", sort=False):
        rows = rows.reset_index(drop=True)
        baseline, _ = baseline_of(family, rows, baselines)
        numbers = pd.DataFrame(_records(rows, baseline, prediction), columns=NUMBER_COLUMNS)
        tables[family] = GpuTable(family, prediction.key, _cells(numbers, prediction), numbers, provenance(rows),
                                  _notes(numbers, baseline, prediction))
    return tables


# ---------------------------------------------------------------------------------------------
# Output


def to_markdown(table: GpuTable) -> str:
    lines = [f"## {table.family}: CPU vs GPU, median time per call (GPU times measured, or predicted for the "
             f"{table.gpu} where the column says so)", ""]
    lines += [f"- {line}" for line in table.provenance + table.notes]
    return "\n".join(lines + ["", table.cells.to_markdown(index=False), ""])


def _bars(numbers) -> dict[tuple[str, str], pd.Series]:
    """(label, kind) -> seconds per 'case | implementation': each CPU machine's own times (not the
    baseline's stood in), each measuring GPU's, the prediction."""
    labelled = numbers.assign(row=numbers["case"] + " | " + numbers["implementation"])
    own = labelled["cpu_machine"].astype(bool) & (labelled["cpu_implementation"] == labelled["implementation"])
    bars = {}
    for cpu, rows in labelled[own].groupby("cpu_machine", sort=False):
        bars[(f"CPU {cpu}", "cpu")] = rows.drop_duplicates("row").set_index("row")["cpu_seconds"]
    for (kind, gpu), rows in labelled.groupby(["kind", "gpu"], sort=False):
        bars[(f"GPU {gpu} ({kind})", kind)] = rows.drop_duplicates("row").set_index("row")["gpu_seconds"]
    return dict(sorted(bars.items(), key=lambda item: ("cpu", "measured", "predicted").index(item[0][1])))


def plot(table: GpuTable, path: str | Path) -> Path:
    """Horizontal bars per case and implementation (log time): CPU and measured GPU times solid,
    predicted GPU times hatched and hollow."""
    from models.shared.figures import new_figure, save
    numbers = table.numbers
    rows = list(dict.fromkeys(numbers["case"] + " | " + numbers["implementation"]))
    bars = _bars(numbers)
    height = 0.8 / max(len(bars), 1)
    fig, ax = new_figure((12, max(3.0, 0.22 * len(rows) * len(bars) + 1.5)))
    colors = iter(["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:gray"])
    for n, ((label, kind), seconds) in enumerate(bars.items()):
        color = next(colors, "black")
        style = dict(fill=False, hatch="///", edgecolor=color) if kind == "predicted" else dict(color=color)
        ax.barh([i + n * height for i in range(len(rows))], seconds.reindex(rows).to_numpy(), height=height,
                label=label, **style)
    ax.set_yticks([i + height * (len(bars) - 1) / 2 for i in range(len(rows))], rows, fontsize="small")
    ax.invert_yaxis()
    ax.set(xscale="log", xlabel="median seconds per call (log); hatched: predicted, not measured",
           title=f"{table.family}: CPU vs GPU")
    ax.grid(axis="x", alpha=0.3, which="both")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return save(fig, path)


def write_outputs(tables: dict[str, GpuTable], out_dir: str | Path) -> list[Path]:
    """bench_<family>_gpu.md / .csv / .png per family."""
    return write_family_files(tables, out_dir, "_gpu", to_markdown, plot)
