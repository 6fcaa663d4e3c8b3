"""`sysdl explore`: the test set's predictions as one self-contained web page (a Facets-style explorer).

    sysdl explore                                    # runs/base.pt (+ runs/pruned_selected.pt when it exists)
                                                     #   on the 10,000 test images -> runs/explore/explore.html
    sysdl explore --pruned none --limit 2000         # the base model alone, on the first 2,000 test images
    sysdl explore --browser-check --screenshot docs/figures/explore.png
                                                     # then open it in headless chromium: load time, console
                                                     #   errors and a screenshot (models/reports/browser.py)
    python -m models.reports.explore --help

The page (docs/explore.md) is one HTML file that works offline: its styles and script are inlined
from explore_page.{html,css,js} beside this module, the predictions are embedded as JSON, and the
images are packed into one PNG sprite embedded as a data URI. It shows the confusion matrix (a
click opens the gallery of the images behind a cell), every image laid out by two facets and
coloured by a third, per-class precision and recall, the most confused pairs, and which images the
pruned model gets wrong that the base model got right (and the reverse); filters update every view.

The page is logged to MLflow as an artifact of each model's run: the run a checkpoint records
(``metrics["mlflow_run_id"]``), else the one finished run, among the experiments searched, whose
logged metrics equal every number in the checkpoint's metrics (a training run logs its summary,
a pruning step's run its record). That run is reopened to add the page and closed FINISHED again.
Where no model's run is found, the page goes to a run of its own in the ``explore`` experiment.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from models.shared import command
from models.shared.artifacts import EXPLORE_PAGE, MAIN
from models.shared.errors import UserError

# Fashion-MNIST's label names, in label order (Xiao et al., 2017, table 1).
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot")
TEMPLATE = ("explore_page.html", "explore_page.css", "explore_page.js")     # package data of models.reports
ARTIFACT_DIR = "explore"                     # the page's folder among a run's MLflow artifacts
SEARCHED_EXPERIMENTS = ("fashion-cnn", "prune")    # `sysdl train`'s and `sysdl prune`'s default experiments
MIN_MATCHED_METRICS = 3                      # fewer numbers than this in a checkpoint identify no run
CONFIDENCE_DIGITS = 4                        # decimals of the confidences embedded in the page


class ExploreError(RuntimeError, UserError):
    """A model or data set the explorer cannot show; the message says what to do."""


@dataclass
class Predictions:
    """One model's predictions on the explored images."""
    name: str                     # "base" or "pruned": how the page names it
    path: Path                    # its checkpoint
    description: str              # its layer sizes, for the page's header
    payload: dict                 # the checkpoint as loaded (its metrics identify its MLflow run)
    pred: torch.Tensor            # (N,) predicted class
    confidence: torch.Tensor      # (N,) softmax probability of the predicted class


@contextmanager
def one_line_checkpoint_errors():
    """A CheckpointError in one line: torch's reason for an unreadable file spans lines (and suggests
    weights_only=False); its first sentence says enough."""
    from models.training.checkpoint import CheckpointError
    try:
        yield
    except CheckpointError as err:
        lines = str(err).splitlines()
        if len(lines) == 1:
            raise
        raise CheckpointError(f"{lines[0].split('. ')[0]}; name a checkpoint that `sysdl train` or "
                              f"`sysdl report prune` wrote") from err


def load_checked(path: str | Path, images: torch.Tensor, num_classes: int, source: str):
    """(model, payload) of a checkpoint whose network takes these images and has their classes;
    CheckpointError for a missing or foreign file, ExploreError for a network that does not fit."""
    from models.training.checkpoint import load_model
    with one_line_checkpoint_errors():
        model, payload = load_model(path)
    cfg = model.config
    wanted, found = (cfg.in_channels, cfg.image_size, cfg.image_size), tuple(images.shape[1:])
    if wanted != found:
        raise ExploreError(f"{path}: the network takes {wanted[0]} channel(s) of {wanted[1]}x{wanted[2]} pixels, "
                           f"but the test images of {source} are {found[0]} channel(s) of {found[1]}x{found[2]}; "
                           f"explore it on the data it was trained on (--dataset, --data-dir) or pick a checkpoint "
                           f"trained on these images")
    if cfg.num_classes != num_classes:
        raise ExploreError(f"{path}: the network predicts {cfg.num_classes} classes, but {source} has "
                           f"{num_classes}; pick a checkpoint trained on these images")
    return model, payload


def predict(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 1000, bar=None):
    """(predicted class, its softmax probability), each (N,), in eval mode without gradients."""
    model.eval()
    preds, confidences = [], []
    with torch.inference_mode():
        for start in range(0, len(x), batch_size):
            probabilities = torch.softmax(model(x[start:start + batch_size]).float(), dim=1)   # (B, classes)
            confidence, pred = probabilities.max(dim=1)
            preds.append(pred)
            confidences.append(confidence)
            if bar is not None:
                bar.update(len(pred))
    return torch.cat(preds), torch.cat(confidences)


def display_pixels(x: torch.Tensor):
    """(N, C, H, W) normalised images -> uint8 (N, H, W) or (N, H, W, C), scaled by the split's own
    minimum and maximum: for Fashion-MNIST, whose images hold black and white pixels, exactly the
    original pixel values."""
    low, high = float(x.min()), float(x.max())
    scaled = ((x - low) / ((high - low) or 1.0) * 255).round().clamp(0, 255).to(torch.uint8)
    pixels = scaled.permute(0, 2, 3, 1).numpy()                                   # (N, H, W, C)
    return pixels[..., 0] if pixels.shape[-1] == 1 else pixels


def sprite_columns(n: int) -> int:
    """Tiles per row of the sprite: a square sheet (100 for the 10,000 test images)."""
    return max(1, math.ceil(math.sqrt(n)))


def sprite_png(pixels, columns: int) -> bytes:
    """One PNG holding every image: image i at column i % columns, row i // columns."""
    import numpy as np
    from PIL import Image

    n, h, w = pixels.shape[:3]
    rows = math.ceil(n / columns)
    sheet = np.zeros((rows * columns, *pixels.shape[1:]), dtype=np.uint8)
    sheet[:n] = pixels
    # (rows, columns, H, W[, C]) -> (rows, H, columns, W[, C]) -> one image
    sheet = sheet.reshape(rows, columns, *pixels.shape[1:]).swapaxes(1, 2).reshape(rows * h, columns * w,
                                                                                  *pixels.shape[3:])
    out = io.BytesIO()
    Image.fromarray(sheet).save(out, format="PNG", optimize=True)
    return out.getvalue()


def describe(model) -> str:
    cfg = model.config
    params = sum(p.numel() for p in model.parameters())
    return f"conv {cfg.conv1_channels}-{cfg.conv2_channels}, fc {cfg.hidden_units}; {params:,} parameters"


def page_data(labels: torch.Tensor, classes, models: list[Predictions], source: str, columns: int,
              tile: int) -> dict:
    """What the page embeds: true labels, each model's predictions and confidences, the sprite layout."""
    return {
        "source": source,
        "classes": list(classes),
        "labels": labels.tolist(),
        "models": [{"name": m.name, "description": f"{m.description} ({m.path.name})", "pred": m.pred.tolist(),
                    "conf": [round(c, CONFIDENCE_DIGITS) for c in m.confidence.tolist()]} for m in models],
        "sprite": {"tile": tile, "columns": columns},
    }


def render_page(data: dict, sprite: bytes, title: str) -> str:
    """The page: the template with its styles, script, sprite and data inlined (nothing fetched)."""
    from importlib import resources

    folder = resources.files("models.reports")
    template, style, script = ((folder / name).read_text(encoding="utf-8") for name in TEMPLATE)
    slots = {
        "TITLE": html.escape(title),
        "STYLE": style,
        "SCRIPT": script,
        "SPRITE": "data:image/png;base64," + base64.b64encode(sprite).decode("ascii"),
        # "</" inside a script element would end it; "<\/" is the same JSON string
        "DATA": json.dumps(data, separators=(",", ":")).replace("</", "<\\/"),
    }
    return re.sub(r"__(TITLE|STYLE|SCRIPT|SPRITE|DATA)__", lambda m: slots[m.group(1)], template)


def write_page(models: dict[str, Path], split, classes, source: str, out: str | Path,
               progress: bool = True) -> tuple[Path, list[Predictions]]:
    """Predict ``split`` with each model ({name: checkpoint}), write the page to ``out``; returns
    (the page, the predictions)."""
    from tqdm.auto import tqdm

    from models.training.checkpoint import atomic_write

    loaded = {name: load_checked(path, split.x, len(classes), source) for name, path in models.items()}
    predictions = []
    with tqdm(total=len(split) * len(loaded), unit="image", desc="predict", disable=not progress) as bar:
        for name, (model, payload) in loaded.items():
            pred, confidence = predict(model, split.x, bar=bar)
            predictions.append(Predictions(name, Path(models[name]), describe(model), payload, pred, confidence))
    pixels = display_pixels(split.x)
    columns = sprite_columns(len(split))
    data = page_data(split.y, classes, predictions, source, columns, tile=pixels.shape[1])
    title = f"sysdl explore: {' vs '.join(m.name for m in predictions)} on {len(split):,} test images"
    page = render_page(data, sprite_png(pixels, columns), title)
    atomic_write(out, lambda fh: fh.write(page.encode("utf-8")))
    return Path(out), predictions


def model_run(payload: dict, runs: list[dict]) -> dict | None:
    """The finished MLflow run (from ``runs``, tracking.find_runs' dicts) that produced a checkpoint:
    the one it records, else the only one whose metrics equal every finite number of its metrics."""
    metrics = payload.get("metrics") or {}
    finished = [run for run in runs if run["status"] == "FINISHED"]
    recorded = metrics.get("mlflow_run_id")
    if recorded:
        return next((run for run in finished if run["run_id"] == recorded), None)
    numbers = {key: float(value) for key, value in metrics.items()
               if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)}
    if len(numbers) < MIN_MATCHED_METRICS:
        return None
    found = [run for run in finished if all(run["metrics"].get(key) == value for key, value in numbers.items())]
    return found[0] if len(found) == 1 else None


def log_page(page: Path, predictions: list[Predictions], experiments=SEARCHED_EXPERIMENTS,
             own_experiment: str = "explore", uri: str | None = None) -> list[str]:
    """Log the page to each model's MLflow run, else to a run of its own; returns what was done."""
    from models.training import tracking

    runs = [run for experiment in experiments for run in tracking.find_runs(experiment, uri=uri)]
    owners: dict[str, list[str]] = {}
    for model in predictions:
        run = model_run(model.payload, runs)
        if run is not None:
            owners.setdefault(run["run_id"], []).append(model.name)
    done = []
    for run_id, names in owners.items():        # reopened by id: the experiment and name given are unused
        with tracking.start_run(own_experiment, "explore", {}, uri=uri, run_id=run_id) as run:
            run.log_artifact(page, ARTIFACT_DIR)
        done.append(f"MLflow: {ARTIFACT_DIR}/{page.name} logged to the run of {' and '.join(names)} ({run_id})")
    if not owners:
        params = {model.name: str(model.path) for model in predictions}
        with tracking.start_run(own_experiment, "explore", params, uri=uri) as run:
            run.log_artifact(page, ARTIFACT_DIR)
        done.append(f"MLflow: no run of these checkpoints in the experiments {', '.join(experiments)}; "
                    f"{ARTIFACT_DIR}/{page.name} logged to run {run.run_id} of experiment {own_experiment}")
    return done


def class_names(dataset: str, num_classes: int) -> tuple[str, ...]:
    return FASHION_MNIST_CLASSES if dataset == "fashion-mnist" else tuple(f"class {k}" for k in range(num_classes))


def add_arguments(parser) -> None:
    parser.add_argument("--base", default=str(MAIN.base), help="the base model's checkpoint")
    parser.add_argument("--pruned", default=None,
                        help=f"the pruned model's checkpoint (default: {MAIN.selected} when it exists; "
                             f"'none': the base model alone)")
    command.add_data_flags(parser, val_size=None)
    parser.add_argument("--limit", type=command.at_least(1), default=None,
                        help="explore only the first LIMIT test images (default: all of them)")
    parser.add_argument("--out", default=str(EXPLORE_PAGE), help="the page to write")
    parser.add_argument("--experiments", nargs="+", default=list(SEARCHED_EXPERIMENTS),
                        help="MLflow experiments searched for each model's run")
    parser.add_argument("--experiment", default="explore",
                        help="MLflow experiment of the page's own run, where no model's run is found")
    parser.add_argument("--browser-check", action="store_true",
                        help="open the page in headless Debian chromium: load time (median of 3 loads) and "
                             "console errors")
    parser.add_argument("--screenshot", default=None, help="a PNG of the page taken by headless chromium")
    command.add_threads_flag(parser)
    command.add_run_flags(parser)


def pruned_checkpoint(flag: str | None) -> Path | None:
    """The pruned model to compare: the one named (it must exist), or the default when it exists."""
    if flag == "none":
        return None
    path = Path(flag) if flag is not None else MAIN.selected
    if path.exists():
        return path
    if flag is not None:                           # a path the user named: a typo is no substitute
        raise ExploreError(f"no pruned model at {path}: name an existing checkpoint, or pass --pruned none")
    print(f"note: no pruned model at {path} (run `sysdl prune` and `sysdl report prune`); the page shows the "
          f"base model alone")
    return None


def main(args) -> int:
    from models.data.datasets import load_dataset
    from models.training.checkpoint import load_checkpoint
    from sysdl_kernels.runtime import configure_cpu_runtime

    configure_cpu_runtime(args.threads)
    models = {"base": Path(args.base)}
    pruned = pruned_checkpoint(args.pruned)
    if pruned is not None:
        models["pruned"] = pruned
    for path in models.values():                   # a missing or foreign file: before loading the data
        with one_line_checkpoint_errors():
            load_checkpoint(path)
    data = load_dataset(args.dataset, args.data_dir, download=args.download)
    split = data.test.head(args.limit) if args.limit else data.test
    out = Path(args.out)
    replaced = out.exists()
    page, predictions = write_page(models, split, class_names(args.dataset, data.num_classes), data.source, out,
                                   progress=not args.no_progress)
    size = page.stat().st_size
    print(f"{'replaced' if replaced else 'wrote'} {page}: {len(split):,} test images, "
          f"{' and '.join(m.name for m in predictions)}; {size / 1e6:.1f} MB")
    for model in predictions:
        accuracy = float((model.pred == split.y).float().mean())
        print(f"  {model.name}: {model.path} ({model.description}), test accuracy {accuracy:.4f} on these images")
    if not args.no_track:
        for line in log_page(page, predictions, args.experiments, args.experiment):
            print(line)
    if args.browser_check or args.screenshot:
        from models.reports.browser import check_page
        report = check_page(page, screenshot=args.screenshot)
        print(report.summary())
        if report.errors:
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(command.run_module("models.reports.explore"))
