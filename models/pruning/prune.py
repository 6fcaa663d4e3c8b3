"""Structured pruning of the Fashion-MNIST CNN: importance, masks, physical shrink, the schedules.

    sysdl prune --heuristic l1                     # layer by layer: conv1, conv2, then fc1
    sysdl prune --heuristic taylor --schedule global
    sysdl prune --quick                            # a few steps on a data subset (CI)

A *unit* is a conv output channel (conv1, conv2) or a hidden neuron (fc1). The output layer
fc2 is not pruned: each of its units is a class, and removing one removes that class.

Masks and shrink. Pruning a unit means zeroing its incoming weights and its bias (the mask).
Then its output is relu(0) = 0 everywhere, so it contributes exactly nothing downstream, and
the masked network equals a *compact* one with the unit sliced out of the layer and out of
the next layer's inputs (for conv2, out of fc1's flattened columns). ``shrink`` builds that
compact model; its logits equal the masked model's. Retraining the masked model with the mask
enforced (``MaskEnforcer``: zero gradients and a fresh optimizer, hence zero momentum) gives
the same updates to every surviving weight as retraining the compact one, which is much
cheaper, so the schedules retrain compact models (tests/models/pruning/test_prune.py proves the equivalence).

Importance (lower = pruned first), each computed from the current trained model:
  * ``l1``: sum |w| of the unit's incoming weights (Li et al. 2017): a unit whose weights are
    all small produces small outputs for any input.
  * ``l2``: the Euclidean norm of the same weights: like l1, but one large weight counts more.
  * ``activation``: mean post-ReLU output over a batch of real images: a unit that is rarely
    active passes little to the next layer, whatever its weights.
  * ``taylor``: mean over the batch of |sum over positions of a * dL/da| (Molchanov et al.
    2017), the first-order change of the loss if the unit's output were set to zero.
  * ``random``: the control; a heuristic that does not beat it carries no information.

Layer-by-layer schedule (the spec): for conv1, then conv2, then fc1: record accuracy before,
remove the least important unit, record accuracy after pruning, retrain (5 epochs), record
accuracy after retraining; the step's drop is before minus after retraining. Stop the layer
at the first step whose drop exceeds ``max_drop`` (1%) and keep the model from before it.
Global schedule: at each step try the least important unit of every layer, prune where the
decision accuracy (validation if asked for, else test) falls least, retrain, same stop rule.
Distillation (``distill_temperature`` > 0, models/pruning/distill.py): every retraining also fits
the base model's soft targets (Hinton et al. 2015); such a session is named
HEURISTIC-SCHEDULE-distill-T<T>-w<weight> and caches the base's logits in OUT_DIR/soft_targets/.
Every step is one MLflow child run under one parent run per session; a killed session resumes
from its last finished step (``state.json`` beside the step checkpoints, which it names relative
to its own folder, so a session reads the same from any working directory and can be moved).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from models.nets.fashion_cnn import FashionCNN, FashionCNNConfig
from models.shared.artifacts import MAIN
from models.shared.errors import UserError

PRUNABLE = ("conv1", "conv2", "fc1")
HEURISTICS = ("l1", "l2", "activation", "taylor", "random")
_SIZE_FIELD = {"conv1": "conv1_channels", "conv2": "conv2_channels", "fc1": "hidden_units"}


def unit_count(config: FashionCNNConfig, layer: str) -> int:
    return getattr(config, _SIZE_FIELD[layer])


# ----------------------------------------------------------------------------------------------
# Masks and physical shrink
# ----------------------------------------------------------------------------------------------

def keep_units(model: FashionCNN, layer: str, keep: torch.Tensor) -> FashionCNN:
    """A new compact model with only units ``keep`` (original indices, ascending) of ``layer``."""
    keep = torch.as_tensor(keep, dtype=torch.long).sort().values
    if len(keep) < 1:
        raise ValueError(f"{layer}: at least one unit must stay")
    config = model.config.replace(**{_SIZE_FIELD[layer]: len(keep)})
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    state[f"{layer}.weight"] = state[f"{layer}.weight"][keep]
    state[f"{layer}.bias"] = state[f"{layer}.bias"][keep]
    consumer = {"conv1": "conv2", "conv2": "fc1", "fc1": "fc2"}[layer]
    weight = state[f"{consumer}.weight"]
    if layer == "conv2":                      # fc1's columns are (channel, position) flattened
        c, h, w = model.config.layer_shapes()["conv2"]
        weight = weight.view(weight.shape[0], c, h * w)[:, keep].reshape(weight.shape[0], -1)
    else:
        weight = weight[:, keep]
    state[f"{consumer}.weight"] = weight.contiguous()
    compact = FashionCNN(config)
    compact.load_state_dict(state)
    return compact


def apply_masks(model: FashionCNN, masks: dict[str, torch.Tensor]) -> None:
    """Zero, in place, the incoming weights and bias of every unit whose mask entry is False."""
    with torch.no_grad():
        for layer, mask in masks.items():
            module = getattr(model, layer)
            module.weight[~mask] = 0
            module.bias[~mask] = 0


def shrink(model: FashionCNN, masks: dict[str, torch.Tensor]) -> FashionCNN:
    """The compact model equal to ``model`` with ``masks`` applied."""
    compact = model
    for layer in PRUNABLE:
        if layer in masks:
            compact = keep_units(compact, layer, torch.nonzero(masks[layer]).flatten())
    return compact


class MaskEnforcer:
    """Keeps masked units at zero while a masked model trains: their gradients are zeroed by
    hooks, so with a fresh optimizer their momentum stays zero and weight decay has nothing to
    decay; ``enforce()`` after a step re-zeroes the weights in case an optimizer moves them."""

    def __init__(self, model: FashionCNN, masks: dict[str, torch.Tensor]):
        self.model, self.masks = model, masks
        self.handles = []
        for layer, mask in masks.items():
            module = getattr(model, layer)
            shape = (-1,) + (1,) * (module.weight.dim() - 1)
            keep = mask.to(module.weight.dtype)
            self.handles.append(module.weight.register_hook(lambda g, k=keep.view(shape): g * k))
            self.handles.append(module.bias.register_hook(lambda g, k=keep: g * k))
        apply_masks(model, masks)

    def enforce(self) -> None:
        apply_masks(self.model, self.masks)

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


# ----------------------------------------------------------------------------------------------
# Importance
# ----------------------------------------------------------------------------------------------

def importance(model: FashionCNN, layer: str, heuristic: str, batch: tuple[torch.Tensor, torch.Tensor],
               seed: int = 0) -> torch.Tensor:
    """One score per unit of ``layer``; the lowest is pruned first."""
    module = getattr(model, layer)
    if heuristic in ("l1", "l2"):
        weights = module.weight.detach().flatten(1)
        return weights.abs().sum(1) if heuristic == "l1" else weights.norm(dim=1)
    if heuristic == "random":
        return torch.rand(module.weight.shape[0], generator=torch.Generator().manual_seed(seed))
    if heuristic not in ("activation", "taylor"):
        raise ValueError(f"unknown heuristic {heuristic!r}; expected one of {HEURISTICS}")
    captured = {}
    model.eval()
    try:
        x, y = batch
        logits = model(x, capture=captured)
        z = captured[layer]                                      # (N, C, H, W) or (N, units), pre-ReLU
        if heuristic == "taylor":
            z.retain_grad()
            F.cross_entropy(logits, y).backward()
    finally:
        model.zero_grad(set_to_none=True)
    if heuristic == "activation":
        active = F.relu(z.detach())
        return active.mean(0) if active.dim() == 2 else active.mean((0, 2, 3))
    # dL/dz is zero where z < 0, so z * dL/dz equals a * dL/da with a = relu(z).
    contribution = (z * z.grad).detach()
    per_sample = contribution if contribution.dim() == 2 else contribution.sum((2, 3))
    return per_sample.abs().mean(0)


# ----------------------------------------------------------------------------------------------
# Sessions: the layer-by-layer and global schedules, resumable, tracked
# ----------------------------------------------------------------------------------------------

SCHEDULES = ("layer", "global")


PRUNE_DISTILL_WEIGHT = 0.5           # the soft term's default share when a session distills


@dataclass(frozen=True)
class PruneConfig:
    heuristic: str = "l1"
    schedule: str = "layer"          # "layer": conv1, conv2, fc1 in turn; "global": best layer each step
    max_drop: float = 0.01           # largest accepted accuracy drop of one step (fraction)
    retrain_epochs: int = 5          # epochs of retraining after each removal
    retrain_lr: float = 0.01         # peak learning rate of each retraining's one-cycle schedule
    importance_batch: int = 1024     # training images the data-driven heuristics look at
    seed: int = 0
    max_steps_per_layer: int = 0     # 0: no limit (the --quick mode sets a small one)
    distill_temperature: float = 0.0  # 0: retrain on the labels; T > 0: also on the base's soft targets at T
    distill_weight: float = PRUNE_DISTILL_WEIGHT  # share of the soft term in the retraining loss (Hinton et al.'s weight)

    def __post_init__(self):
        from models.pruning.distill import check_distillation
        check_distillation(self.distill_temperature, self.distill_weight)
        if self.distill_temperature == 0 and self.distill_weight != PRUNE_DISTILL_WEIGHT:
            raise ValueError(f"distill_weight {self.distill_weight:g} needs a distillation temperature > 0 "
                             f"(--distill-temperature): without one the session retrains on the labels only")
        for name in ("max_drop", "retrain_lr"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if self.retrain_lr <= 0:
            raise ValueError(f"retrain_lr must be > 0, got {self.retrain_lr}")
        if self.heuristic not in HEURISTICS:
            raise ValueError(f"heuristic must be one of {HEURISTICS}, got {self.heuristic!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if not 0 <= self.max_drop < 1:
            raise ValueError(f"max_drop is a fraction of accuracy in [0, 1), got {self.max_drop}")

    @property
    def distills(self) -> bool:
        return self.distill_temperature > 0

    @property
    def name(self) -> str:
        distill = f"-distill-T{self.distill_temperature:g}-w{self.distill_weight:g}" if self.distills else ""
        return f"{self.heuristic}-{self.schedule}{distill}"


# Fields added to PruneConfig after sessions were first recorded, with the value that those
# sessions' state.json, which lacks them, means: an older session reads (and resumes) as it was.
LATER_FIELDS = {"distill_temperature": 0.0, "distill_weight": PruneConfig.distill_weight}


def recorded_config(state: dict) -> dict:
    """A state's config with the fields it predates filled in with what they meant then."""
    return {**LATER_FIELDS, **state["config"]}


def session_name(state: dict, where: str | Path = "state.json") -> str:
    """The session's name (HEURISTIC-SCHEDULE[-distill-T..-w..]) from its state.json's config."""
    try:
        return PruneConfig(**recorded_config(state)).name
    except (TypeError, ValueError) as err:
        raise SessionStateError(f"{where} holds a config no pruning session has ({err}); remove "
                                f"{Path(where).parent} to start that session afresh") from None


def model_summary(model: FashionCNN) -> dict:
    from sysdl_kernels.flops import totals
    cfg = model.config
    cost = totals(cfg.cost())
    return {"conv1_channels": cfg.conv1_channels, "conv2_channels": cfg.conv2_channels,
            "hidden_units": cfg.hidden_units, "flops": cost["flops"], "gemm_flops": cost["gemm_flops"],
            "params": cost["params"]}


class SessionStateError(UserError):
    """A session's state.json, or a checkpoint it names, cannot be read or does not fit its record."""


# What every step record holds (the base model's record, step 0, included).
STEP_KEYS = ("step", "layer", "accepted", "checkpoint", "conv1_channels", "conv2_channels", "hidden_units",
             "flops", "params", "test_after_retrain")


def read_state(path: Path) -> dict:
    """A session's state.json, checked for the shape its readers rely on: a config, a list of
    steps (each with ``STEP_KEYS``), the finished flag and the layer index; else a
    SessionStateError naming the file."""
    path = Path(path)
    fix = f"remove {path.parent} to start that session afresh"
    try:
        state = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise SessionStateError(f"{path} is not a readable pruning session state ({err}); {fix}") from None
    problem = None
    if not isinstance(state, dict):
        problem = f"a JSON {type(state).__name__}, not an object"
    elif not isinstance(state.get("config"), dict) or not all(
            isinstance(state["config"].get(k), str) for k in ("heuristic", "schedule")):
        problem = "no config with a heuristic and a schedule"
    elif not isinstance(state.get("steps"), list) or not state["steps"]:
        problem = "no list of steps"
    elif not isinstance(state.get("finished"), bool) or not isinstance(state.get("layer_index"), int):
        problem = "no finished flag or layer index"
    else:
        for index, step in enumerate(state["steps"]):
            missing = [k for k in STEP_KEYS if k not in step] if isinstance(step, dict) else list(STEP_KEYS)
            if missing:
                problem = f"step {index} lacks {', '.join(missing)}"
                break
    if problem:
        raise SessionStateError(f"{path} is not a pruning session state: {problem}; {fix}")
    return state


def session_steps(prune_dir: str | Path):
    """All steps of all sessions under ``prune_dir`` as one DataFrame: one row per produced model,
    ``session`` its session's name, ``distilled`` whether it retrains on soft targets, and
    ``session_dir`` the folder its ``checkpoint`` is relative to."""
    import pandas as pd
    rows = []
    for state_path in sorted(Path(prune_dir).glob("*/state.json")):
        state = read_state(state_path)
        name, distilled = session_name(state, state_path), recorded_config(state)["distill_temperature"] > 0
        rows += [{"session": name, **step, "distilled": distilled, "session_dir": str(state_path.parent)}
                 for step in state["steps"]]
    if not rows:
        raise ValueError(f"no pruning sessions under {prune_dir}; run `sysdl prune` first")
    return pd.DataFrame(rows)


def step_checkpoint(session_dir: Path, recorded: str) -> Path:
    """Where a step's checkpoint is: recorded relative to the session's folder; state.json files
    written before that hold paths relative to the working directory they were written from,
    whose file is still the one beside state.json, then (a fallback) the one at that path."""
    session_dir, recorded_path = Path(session_dir), Path(recorded)
    for candidate in (session_dir / recorded_path, session_dir / recorded_path.name, recorded_path):
        if candidate.is_file():
            return candidate
    return session_dir / recorded_path


def load_step(session_dir: Path, step: dict) -> tuple[FashionCNN, Path]:
    """(model, its checkpoint) of a step record, checked to be the model it records (its sizes)."""
    from models.training.checkpoint import CheckpointError, load_model
    session_dir = Path(session_dir)
    path = step_checkpoint(session_dir, step["checkpoint"])
    where = f"step {step['step']} of {session_dir / 'state.json'}"
    fix = f"remove {session_dir} and run that pruning session again"
    if not path.is_file():
        raise SessionStateError(f"{path}, the model of {where}, is missing; {fix}")
    try:
        model = load_model(path)[0]
    except CheckpointError as err:
        reason = " ".join(str(err).split())                    # one line, whatever torch said
        raise SessionStateError(f"{where}: {reason}; {fix}") from None
    recorded = tuple(int(step[_SIZE_FIELD[layer]]) for layer in PRUNABLE)
    found = tuple(unit_count(model.config, layer) for layer in PRUNABLE)
    if found != recorded:
        raise SessionStateError(f"{path} holds a {'-'.join(map(str, found))} network, but {where} records "
                                f"{'-'.join(map(str, recorded))}: not the model that step produced; {fix}")
    return model, path


class Session:
    """One pruning session's files: ``state.json`` (config, finished steps, where it stands), the
    single source of truth, and the checkpoint of every model it produced (``step_NNN.pt``, named
    relative to the session's folder). A step's checkpoint is written before the state that
    records it, so a kill at any moment leaves either the step recorded with its checkpoint, or
    not recorded and redone."""

    def __init__(self, directory: Path, cfg: PruneConfig, base: str):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / "state.json"
        digest = hashlib.sha256(Path(base).read_bytes()).hexdigest()
        if path.exists():
            self.state = read_state(path)
            if recorded_config(self.state) != asdict(cfg):
                raise ValueError(f"{path} belongs to a session with {self.state['config']}; resuming needs "
                                 f"the same settings, or remove {self.dir} to start afresh")
            if self.state.get("base_sha256", digest) != digest:
                raise ValueError(f"{path} pruned a different base model than {base} holds now (it was "
                                 f"retrained?); remove {self.dir} to prune the new one")
        else:
            self.state = {"config": asdict(cfg), "base": base, "base_sha256": digest, "steps": [],
                          "layer_index": 0, "finished": False, "parent_run_id": None}

    def save(self) -> None:
        from models.training.checkpoint import atomic_write
        atomic_write(self.dir / "state.json", lambda fh: fh.write(json.dumps(self.state, indent=1).encode()))

    def current_model(self) -> FashionCNN:
        """The last accepted model (the base before any step)."""
        from models.training.checkpoint import load_model
        accepted = [s for s in self.state["steps"] if s["accepted"]]
        return load_step(self.dir, accepted[-1])[0] if accepted else load_model(self.state["base"])[0]


def _accuracies(model: FashionCNN, data) -> dict[str, float]:
    from models.training.loop import evaluate
    out = {"test": evaluate(model, data.test, 1000)[1]}
    if data.val is not None:
        out["val"] = evaluate(model, data.val, 1000)[1]
    return out


def run_session(base_checkpoint: str | Path, data, cfg: PruneConfig, out_dir: str | Path = MAIN.prune_dir,
                track: bool = True, progress: bool = True, experiment: str = "prune",
                log=print) -> list[dict]:
    """Run (or resume) one pruning session; returns every step's record."""
    from tqdm.auto import tqdm

    from models.training import tracking
    from models.training.checkpoint import save_checkpoint
    from models.training.loop import TrainConfig, fit

    session = Session(Path(out_dir) / cfg.name, cfg, str(base_checkpoint))
    model = session.current_model()
    soft_targets = None
    if cfg.distills:                 # the base's logits on every training image, once per data set
        from models.pruning.distill import SoftTargets
        soft_targets = SoftTargets.for_teacher(base_checkpoint, data, Path(out_dir) / "soft_targets")
    decide_on = "val" if data.val is not None else "test"
    g = torch.Generator().manual_seed(cfg.seed)
    pick = torch.randperm(len(data.train), generator=g)[:cfg.importance_batch]
    batch = (data.train.x[pick], data.train.y[pick])
    if not session.state["steps"]:
        base = {"step": 0, "layer": "base", "unit": -1, "accepted": True, **model_summary(model)}
        base.update({f"{k}_after_retrain": v for k, v in _accuracies(model, data).items()})
        save_checkpoint(session.dir / "step_000.pt", model, base)
        session.state["steps"].append({**base, "checkpoint": "step_000.pt"})
        session.save()
    params = {"prune": asdict(cfg), "base": str(base_checkpoint), "decide_on": decide_on,
              "base_model": model.config.to_dict()}
    bar = tqdm(desc=cfg.name, unit="step", disable=not progress, initial=len(session.state["steps"]) - 1)
    with tracking.start_run(experiment, cfg.name, params, enabled=track,
                            run_id=session.state["parent_run_id"]) as parent:
        session.state["parent_run_id"] = parent.run_id
        session.save()
        while not session.state["finished"]:
            choice = _next_removal(model, data, cfg, session, batch, decide_on)
            if choice is None:
                session.state["finished"] = True
                session.save()
                break
            layer, unit, candidate = choice[:3]
            number = len(session.state["steps"])
            record = {"step": number, "layer": layer, "unit": unit, "heuristic": cfg.heuristic,
                      "schedule": cfg.schedule}
            before = _accuracies(model, data)
            after_prune = choice[3] if len(choice) > 3 else _accuracies(candidate, data)
            retrain = TrainConfig(epochs=cfg.retrain_epochs, lr=cfg.retrain_lr, seed=cfg.seed + number)
            hook = (soft_targets.loss_hook(retrain, cfg.distill_temperature, cfg.distill_weight)
                    if soft_targets is not None else None)
            fit(candidate, data, retrain, progress=False, loss_hook=hook)
            after_retrain = _accuracies(candidate, data)
            for split in before:
                record.update({f"{split}_before": before[split], f"{split}_after_prune": after_prune[split],
                               f"{split}_after_retrain": after_retrain[split]})
            record["drop"] = before[decide_on] - after_retrain[decide_on]
            record["accepted"] = record["drop"] <= cfg.max_drop
            record.update(model_summary(candidate))
            record["checkpoint"] = f"step_{number:03d}.pt"            # relative to the session's folder
            save_checkpoint(session.dir / record["checkpoint"], candidate, record)
            if record["accepted"]:
                model = candidate
            elif cfg.schedule == "layer":
                session.state["layer_index"] += 1       # this layer is done: on to the next
            else:
                session.state["finished"] = True
            session.state["steps"].append(record)
            session.save()
            # After the state: a kill here loses this step's MLflow child run, never duplicates it.
            with tracking.start_run(experiment, f"{cfg.name} step {number} {layer}",
                                    {"layer": layer, "unit": unit, "heuristic": cfg.heuristic},
                                    enabled=track, parent_run_id=parent.run_id) as child:
                child.log_metrics({k: float(v) for k, v in record.items()
                                   if isinstance(v, (int, float)) and not isinstance(v, bool)})
                child.set_tags({"accepted": record["accepted"], "checkpoint": session.dir / record["checkpoint"]})
            bar.update(1)
            bar.set_postfix(layer=layer, sizes=f"{record['conv1_channels']}-{record['conv2_channels']}-"
                            f"{record['hidden_units']}", test=f"{record['test_after_retrain']:.4f}",
                            drop=f"{record['drop']:+.4f}")
            log(f"step {number}: {layer} unit {unit} -> {record['conv1_channels']}-{record['conv2_channels']}-"
                f"{record['hidden_units']}, test {record['test_before']:.4f} / {record['test_after_prune']:.4f} / "
                f"{record['test_after_retrain']:.4f}, drop {record['drop']:+.4f} "
                f"({'kept' if record['accepted'] else 'rejected'})")
        parent.log_metrics({"steps": len(session.state["steps"]) - 1})
    bar.close()
    return session.state["steps"]


def _next_removal(model, data, cfg: PruneConfig, session: Session, batch, decide_on: str):
    """(layer, unit, compact candidate[, its accuracies after pruning]) for the next step, or None
    when the schedule is done."""
    steps = session.state["steps"]
    if cfg.schedule == "layer":
        while session.state["layer_index"] < len(PRUNABLE):
            layer = PRUNABLE[session.state["layer_index"]]
            done_here = sum(1 for s in steps if s["layer"] == layer)
            if unit_count(model.config, layer) > 1 and not (cfg.max_steps_per_layer and done_here >= cfg.max_steps_per_layer):
                unit = int(importance(model, layer, cfg.heuristic, batch, seed=cfg.seed + len(steps)).argmin())
                return layer, unit, _without(model, layer, unit)
            session.state["layer_index"] += 1
        return None
    best = None
    for layer in PRUNABLE:                     # global: try every layer, keep the least harmful
        if unit_count(model.config, layer) <= 1:
            continue
        if cfg.max_steps_per_layer and sum(1 for s in steps if s["layer"] == layer) >= cfg.max_steps_per_layer:
            continue
        unit = int(importance(model, layer, cfg.heuristic, batch, seed=cfg.seed + len(steps)).argmin())
        candidate = _without(model, layer, unit)
        accuracies = _accuracies(candidate, data)
        if best is None or accuracies[decide_on] > best[0]:
            best = (accuracies[decide_on], layer, unit, candidate, accuracies)
    return None if best is None else best[1:]


def _without(model: FashionCNN, layer: str, unit: int) -> FashionCNN:
    keep = [i for i in range(unit_count(model.config, layer)) if i != unit]
    return keep_units(model, layer, torch.tensor(keep))
