"""Distillation while retraining (Hinton et al. 2015): the base model's soft targets as a loss hook.

    hook = SoftTargets.for_teacher(MAIN.base, data, cache_dir).loss_hook(train_cfg, temperature=1, weight=0.5)
    fit(student, data, train_cfg, loss_hook=hook)        # models/training/loop.py's fit
    sysdl prune --distill-temperature 1 --distill-weight 0.5      # a distilled pruning session
    sysdl prune-control --methods scratch-distill retrain-distill  # the same for the control

The student minimises, per batch,

    (1 - weight) * CE(student logits, labels) + weight * T^2 * KL(softmax(teacher / T) || softmax(student / T))

where the KL term is averaged over the batch. The T^2 factor keeps the soft term's gradients at the
scale of the hard term's as T changes (Hinton et al., section 2: the soft gradients scale as 1/T^2).
weight = 0 is exactly the plain cross-entropy.

The teacher's logits are computed once per (teacher, training images) for every training image as
it is and flipped left-right (the loop flips half of them each epoch), cached in a file named by a
hash of the teacher's checkpoint and the images, so a session or a control run pays the teacher's
forward passes once. Each epoch, the hook draws the loop's own shuffled order and flips
(``epoch_order``) to line the targets up with the batches: the soft targets of a batch are the
teacher's logits on exactly the images of that batch, and a resumed run sees the same ones.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F


def check_distillation(temperature: float, weight: float) -> None:
    """Refuse settings that cannot work: T > 0 (or 0: off), weight in [0, 1], both finite."""
    for name, value in (("distill_temperature", temperature), ("distill_weight", weight)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    if temperature < 0:
        raise ValueError(f"distill_temperature must be > 0 (or 0: no distillation), got {temperature}")
    if not 0 <= weight <= 1:
        raise ValueError(f"distill_weight is the soft term's share of the loss, in [0, 1], got {weight}")


@dataclass(frozen=True)
class DistillSettings:
    """The two knobs of distillation, as `sysdl prune-control`'s distilled methods take them
    (`sysdl prune` holds the same two in PruneConfig, where temperature 0 means off)."""
    distill_temperature: float = 1.0  # temperature T of the soft targets (T >= 2 destabilised the base recipe here)
    distill_weight: float = 0.5       # share of the soft term in the loss; the labels' term gets the rest

    def __post_init__(self):
        check_distillation(self.distill_temperature, self.distill_weight)
        if self.distill_temperature == 0:
            raise ValueError("a distilled method needs distill_temperature > 0")


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, hard_loss: torch.Tensor,
                      temperature: float, weight: float) -> torch.Tensor:
    """(1 - weight) * hard_loss + weight * T^2 * KL(softmax(teacher/T) || softmax(student/T)), batch mean."""
    soft = F.kl_div(F.log_softmax(student / temperature, dim=1), F.log_softmax(teacher / temperature, dim=1),
                    reduction="batchmean", log_target=True)
    return (1 - weight) * hard_loss + weight * temperature ** 2 * soft


@torch.inference_mode()
def teacher_logits(teacher: torch.nn.Module, x: torch.Tensor,
                   batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's logits on every image of x (N, C, H, W) as it is and flipped: two (N, classes)."""
    teacher.eval()
    plain, flipped = [], []
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size]
        plain.append(teacher(xb))
        flipped.append(teacher(xb.flip(-1)))
    return torch.cat(plain), torch.cat(flipped)


def _digest(*parts) -> str:
    """The first 16 hex digits of a SHA-256 over the parts' own digests (bytes or contiguous arrays)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:16]


@dataclass
class SoftTargets:
    """The teacher's logits on each training image, as it is (``plain``) and flipped, (N, classes)."""
    plain: torch.Tensor
    flipped: torch.Tensor

    @classmethod
    def for_teacher(cls, teacher_checkpoint: str | Path, data, cache_dir: str | Path) -> "SoftTargets":
        """The soft targets of the teacher saved at ``teacher_checkpoint`` on ``data.train``, computed
        once and cached in ``cache_dir/soft_targets_<hash>.pt`` (the hash covers the teacher's file and
        the training images and labels, so another teacher or split gets its own file)."""
        from models.training.checkpoint import atomic_write, load_model
        teacher_bytes = Path(teacher_checkpoint).read_bytes()
        key = _digest(teacher_bytes, data.train.x.contiguous().numpy(), data.train.y.contiguous().numpy())
        path = Path(cache_dir) / f"soft_targets_{key}.pt"
        if path.is_file():
            stored = torch.load(path, weights_only=True)
            if stored["plain"].shape[0] == len(data.train):
                return cls(stored["plain"], stored["flipped"])
        plain, flipped = teacher_logits(load_model(teacher_checkpoint)[0], data.train.x)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda fh: torch.save({"plain": plain, "flipped": flipped}, fh))
        return cls(plain, flipped)

    def for_epoch(self, cfg, epoch: int) -> torch.Tensor:
        """The teacher's logits in the order, and with the flips, of ``fit``'s epoch ``epoch`` under
        TrainConfig ``cfg``: row i belongs to the i-th training image of that epoch."""
        from models.training.loop import epoch_order
        order, flip = epoch_order(len(self.plain), cfg, epoch)
        targets = self.plain[order]
        if flip is not None:
            targets[flip] = self.flipped[order][flip]
        return targets

    def loss_hook(self, cfg, temperature: float, weight: float):
        """``fit``'s loss_hook(epoch, step, logits, labels, hard_loss) -> the distillation loss."""
        check_distillation(temperature, weight)
        cached: dict[int, torch.Tensor] = {}

        def hook(epoch: int, step: int, logits: torch.Tensor, labels: torch.Tensor,
                 hard_loss: torch.Tensor) -> torch.Tensor:
            if epoch not in cached:
                cached.clear()
                cached[epoch] = self.for_epoch(cfg, epoch).to(logits.device)
            teacher = cached[epoch][step * cfg.batch_size:step * cfg.batch_size + len(logits)]
            if len(teacher) != len(logits):
                raise ValueError(f"distillation: step {step} has {len(logits)} examples, the epoch's order "
                                 f"{len(teacher)}: soft targets need fit's own batches (no batch_transform)")
            return distillation_loss(logits, teacher, hard_loss, temperature, weight)

        return hook
