"""Fixtures of the explorer's tests: two small models trained on the seeded synthetic images, and
their predictions computed here, independently of models/reports/explore.py."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch


@dataclass
class Explored:
    """Two checkpoints, the test images they are explored on, and what each model predicts."""
    base: Path
    pruned: Path
    labels: torch.Tensor                 # (N,) true classes
    pred: dict[str, torch.Tensor]        # model name -> (N,) predicted classes
    conf: dict[str, torch.Tensor]        # model name -> (N,) softmax probability of the prediction

    def confusion(self, model: str = "base", keep=None) -> torch.Tensor:
        """(classes, classes) counts, rows true class, columns predicted; ``keep`` a (N,) mask."""
        keep = torch.ones_like(self.labels, dtype=torch.bool) if keep is None else keep
        pairs = self.labels[keep] * 10 + self.pred[model][keep]
        return torch.bincount(pairs, minlength=100).reshape(10, 10)


@pytest.fixture(scope="session")
def explored(tmp_path_factory) -> Explored:
    """A base CNN (conv 4-4, fc 16; 3 epochs: about 60% right) and a smaller "pruned" one (conv 2-2,
    fc 8; 6 epochs: about 57%), both confusing many classes, on synthetic_splits' 256 test images."""
    from models.data.datasets import synthetic_splits
    from models.nets.fashion_cnn import FashionCNN, FashionCNNConfig
    from models.training.checkpoint import save_checkpoint
    from models.training.loop import TrainConfig, fit

    data, folder = synthetic_splits(), tmp_path_factory.mktemp("explore")
    paths, pred, conf = {}, {}, {}
    for name, sizes, epochs in (("base", (4, 4, 16), 3), ("pruned", (2, 2, 8), 6)):
        torch.manual_seed(0)
        model = FashionCNN(FashionCNNConfig(conv1_channels=sizes[0], conv2_channels=sizes[1], hidden_units=sizes[2]))
        fit(model, data, TrainConfig(epochs=epochs), progress=False)
        paths[name] = save_checkpoint(folder / f"{name}.pt", model, {"epochs": epochs})
        with torch.no_grad():
            probabilities = torch.softmax(model.eval()(data.test.x), dim=1)
        conf[name], pred[name] = probabilities.max(dim=1)
    return Explored(paths["base"], paths["pruned"], data.test.y, pred, conf)
