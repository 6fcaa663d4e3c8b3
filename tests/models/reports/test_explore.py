"""`sysdl explore` without a browser: the data the page embeds against predictions computed here,
the sprite against the images, the page's self-containment, the errors a user can make, the
default checkpoints, and where the page is logged in MLflow (the browser test is test_explore_browser.py)."""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pytest
import torch

from models.cli.main import main
from models.data.datasets import FASHION_MNIST_MEAN, FASHION_MNIST_STD, synthetic_splits
from models.reports import explore
from models.shared.artifacts import EXPLORE_PAGE, MAIN

QUIET = ["--dataset", "synthetic", "--no-progress"]


def embedded(page_path) -> tuple[dict, bytes]:
    """(the page's data, its sprite's PNG bytes), read back from the HTML."""
    page = page_path.read_text(encoding="utf-8")
    data = json.loads(re.search(r'<script id="explore-data" type="application/json">(.*?)</script>', page, re.S)[1])
    sprite = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)[1]
    return data, base64.b64decode(sprite)


@pytest.fixture(scope="module")
def page(explored, tmp_path_factory):
    path = tmp_path_factory.mktemp("page") / "explore.html"
    assert main(["explore", "--base", str(explored.base), "--pruned", str(explored.pruned), "--out", str(path),
                 "--no-track", *QUIET]) == 0
    return path


def test_embedded_predictions_match_ones_computed_here(page, explored):
    data, _ = embedded(page)
    assert [m["name"] for m in data["models"]] == ["base", "pruned"]
    assert data["labels"] == explored.labels.tolist()
    assert data["classes"] == [f"class {k}" for k in range(10)]
    for model in data["models"]:
        name = model["name"]
        assert model["pred"] == explored.pred[name].tolist()
        assert model["conf"] == pytest.approx(explored.conf[name].tolist(), abs=1e-4)
        page_matrix = torch.bincount(torch.tensor(data["labels"]) * 10 + torch.tensor(model["pred"]), minlength=100)
        assert torch.equal(page_matrix.reshape(10, 10), explored.confusion(name))
    # the fixture's models disagree both ways, so the base-vs-pruned view has something to show
    right = {name: explored.pred[name] == explored.labels for name in ("base", "pruned")}
    assert (right["base"] & ~right["pruned"]).any() and (~right["base"] & right["pruned"]).any()


def test_page_is_one_self_contained_file(page):
    text = page.read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text and "//cdn" not in text
    assert "<link" not in text and not re.search(r"<script[^>]+src=", text)
    assert text.count("data:image/png;base64,") == 1 and text.count("<img") == 1
    assert not re.search(r"__(TITLE|STYLE|SCRIPT|SPRITE|DATA)__", text), "a template slot was left unfilled"


def test_sprite_holds_each_image_at_its_tile():
    """Seven 5x3 images (an unfinished last row, non-square tiles) normalised as Fashion-MNIST is:
    the sprite gives back their exact pixels."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(7, 5, 3), dtype=np.uint8)
    pixels[0, 0, 0], pixels[0, 0, 1] = 0, 255                   # the set's black and white
    x = (torch.from_numpy(pixels).float().unsqueeze(1) / 255 - FASHION_MNIST_MEAN) / FASHION_MNIST_STD
    shown = explore.display_pixels(x)
    assert np.array_equal(shown, pixels)
    columns = explore.sprite_columns(7)
    from PIL import Image
    sheet = np.asarray(Image.open(io.BytesIO(explore.sprite_png(shown, columns))))
    assert columns == 3 and sheet.shape == (3 * 5, 3 * 3)
    for i in range(7):
        row, col = divmod(i, columns)
        assert np.array_equal(sheet[row * 5:(row + 1) * 5, col * 3:(col + 1) * 3], pixels[i])


def test_page_sprite_is_the_test_images(page):
    data, sprite = embedded(page)
    from PIL import Image
    sheet = np.asarray(Image.open(io.BytesIO(sprite)))
    tile, columns = data["sprite"]["tile"], data["sprite"]["columns"]
    expected = explore.display_pixels(synthetic_splits().test.x)
    for i in (0, 17, 255):
        row, col = divmod(i, columns)
        assert np.array_equal(sheet[row * tile:(row + 1) * tile, col * tile:(col + 1) * tile], expected[i])


def one_line_error(capsys, *args) -> str:
    assert main(["explore", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("sysdl explore: error: ")
    return err


def test_missing_checkpoint_is_a_clean_error(tmp_path, capsys):
    err = one_line_error(capsys, "--base", str(tmp_path / "nope.pt"), "--pruned", "none", *QUIET)
    assert "no checkpoint at" in err and "sysdl train" in err


def test_missing_named_pruned_model_is_a_clean_error(explored, tmp_path, capsys):
    err = one_line_error(capsys, "--base", str(explored.base), "--pruned", str(tmp_path / "typo.pt"), *QUIET)
    assert "no pruned model at" in err


@pytest.mark.parametrize("content", [b"not a checkpoint", "torch list", "format 99"])
def test_incompatible_checkpoint_is_a_clean_error(tmp_path, capsys, content):
    path = tmp_path / "bad.pt"
    if content == "torch list":
        torch.save([1, 2, 3], path)
    elif content == "format 99":
        torch.save({"format_version": 99, "config": {}, "state_dict": {}, "metrics": {}}, path)
    else:
        path.write_bytes(content)
    err = one_line_error(capsys, "--base", str(path), "--pruned", "none", "--no-track", *QUIET)
    assert str(path) in err


@pytest.mark.parametrize("config, what", [({"image_size": 32}, "1 channel(s) of 32x32 pixels"),
                                          ({"in_channels": 3}, "3 channel(s) of 28x28 pixels"),
                                          ({"num_classes": 5}, "predicts 5 classes")])
def test_network_that_does_not_fit_the_images_is_a_clean_error(tmp_path, capsys, config, what):
    from models.nets.fashion_cnn import FashionCNN, FashionCNNConfig
    from models.training.checkpoint import save_checkpoint
    path = save_checkpoint(tmp_path / "other.pt", FashionCNN(FashionCNNConfig(hidden_units=4, **config)))
    err = one_line_error(capsys, "--base", str(path), "--pruned", "none", "--no-track", *QUIET,
                         "--out", str(tmp_path / "e.html"))
    assert what in err and "pick a checkpoint" in err
    assert not (tmp_path / "e.html").exists()


def test_defaults_read_the_pipeline_checkpoints(explored, tmp_path, monkeypatch, capsys):
    """In a folder with runs/base.pt and, later, runs/pruned_selected.pt, plain `sysdl explore`."""
    monkeypatch.chdir(tmp_path)
    MAIN.base.parent.mkdir(parents=True)
    MAIN.base.write_bytes(explored.base.read_bytes())
    assert main(["explore", "--no-track", *QUIET]) == 0
    assert "no pruned model at" in capsys.readouterr().out
    assert [m["name"] for m in embedded(EXPLORE_PAGE)[0]["models"]] == ["base"]
    MAIN.selected.write_bytes(explored.pruned.read_bytes())
    assert main(["explore", "--no-track", *QUIET, "--limit", "40"]) == 0
    assert f"replaced {EXPLORE_PAGE}" in capsys.readouterr().out
    data = embedded(EXPLORE_PAGE)[0]
    assert [m["name"] for m in data["models"]] == ["base", "pruned"] and len(data["labels"]) == 40


def run_artifacts(run_id: str) -> list[str]:
    import mlflow
    return [f.path for f in mlflow.MlflowClient().list_artifacts(run_id, explore.ARTIFACT_DIR)]


def test_page_is_logged_to_the_model_run_else_to_a_run_of_its_own(mlflow_store, explored, tmp_path, capsys):
    """A checkpoint `sysdl train` wrote records no run id: its run is the one whose summary metrics
    equal the checkpoint's, reopened for the page and left FINISHED. Checkpoints of no run (the
    fixture's) get a run of their own. One store for both: creating one takes seconds."""
    from models.nets.fashion_cnn import FashionCNNConfig
    from models.training.loop import TrainConfig, train_job
    from tests.mlflow_runs import read_runs
    assert main(["explore", "--base", str(explored.base), "--pruned", str(explored.pruned), *QUIET]) == 0
    own = read_runs("explore")
    assert len(own) == 1 and own["params.base"][0] == str(explored.base)
    assert run_artifacts(own["run_id"][0]) == [f"{explore.ARTIFACT_DIR}/explore.html"]

    data = synthetic_splits(n_train=128, n_test=64)
    train_job(FashionCNNConfig(conv1_channels=2, conv2_channels=2, hidden_units=4), TrainConfig(epochs=1), data,
              tmp_path / "base.pt", experiment="fashion-cnn", progress=False)
    capsys.readouterr()
    assert main(["explore", "--base", str(tmp_path / "base.pt"), "--pruned", "none", *QUIET]) == 0
    trained = read_runs("fashion-cnn")
    assert len(trained) == 1 and trained["status"][0] == "FINISHED"
    assert run_artifacts(trained["run_id"][0]) == [f"{explore.ARTIFACT_DIR}/explore.html"]
    assert "logged to the run of base" in capsys.readouterr().out
    assert len(read_runs("explore")) == 1                     # no second run of its own


def test_model_run_is_the_recorded_one_else_the_only_match():
    runs = [{"run_id": "a", "status": "FINISHED", "metrics": {"acc": 0.9, "loss": 0.3, "time": 12.5}},
            {"run_id": "b", "status": "FINISHED", "metrics": {"acc": 0.9, "loss": 0.3, "time": 13.0}},
            {"run_id": "c", "status": "RUNNING", "metrics": {"acc": 0.8, "loss": 0.4, "time": 1.0}}]
    payload = lambda **metrics: {"metrics": metrics}          # noqa: E731
    assert explore.model_run(payload(acc=0.9, loss=0.3, time=13.0, data="x"), runs)["run_id"] == "b"
    assert explore.model_run(payload(acc=0.9, loss=0.3), runs) is None           # too few numbers to tell
    assert explore.model_run(payload(acc=0.9, loss=0.3, time=99.0), runs) is None
    assert explore.model_run(payload(acc=0.8, loss=0.4, time=1.0), runs) is None     # not finished
    assert explore.model_run(payload(mlflow_run_id="a"), runs)["run_id"] == "a"
