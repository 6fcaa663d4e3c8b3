"""Optimizer hyperparameters given as tensors, or not finite, in sysdl_kernels.scratch.optim and
sysdl_kernels.torch_optim.

Like torch.optim, a 1-element tensor (torch or numpy, 0-d or not) is accepted for any float
hyperparameter, read once as a Python float: the steps are those of the float. A bigger tensor, a
non-number, and nan / inf / -inf are refused when the optimizer is built (or opt.lr set, or a
param group added), with an error naming the hyperparameter.
"""

from __future__ import annotations

import inspect
import re

import numpy as np
import pytest
import torch

from sysdl_kernels import torch_optim
from sysdl_kernels.scratch import optim

CLASSES = [optim.SGD, optim.Adagrad, optim.RMSprop, optim.RMSpropNesterov, optim.Adadelta, optim.Adam]
TENSOR_FORMS = {
    "torch-0d": lambda v: torch.tensor(v, dtype=torch.float64),
    "torch-0d-float32": lambda v: torch.tensor(v, dtype=torch.float32),
    "torch-1-element": lambda v: torch.tensor([[v]], dtype=torch.float64),
    "numpy-0d": lambda v: np.array(v),
    "numpy-float32": lambda v: np.float32(v),
}
NON_FINITE = [float("nan"), float("inf"), -float("inf")]


def float_hyperparameters(cls) -> dict[str, float]:
    """Each float hyperparameter of ``cls`` with a valid value (its default; lr > 0)."""
    values = {p.name: p.default for p in inspect.signature(cls).parameters.values()
              if isinstance(p.default, float) or p.name == "lr"}
    return {k: (0.01 if k == "lr" else v) for k, v in values.items()}


def hyperparameter_cases(classes):
    """(builder, name, value) for every float hyperparameter, betas' two entries too."""
    for cls in classes:
        def build(cls=cls, **kwargs):
            return cls([np.linspace(-1.0, 1.0, 5)], **kwargs)
        builders = [(cls.__name__, build)]
        if cls is optim.RMSpropNesterov:
            builders.append(("torch_optim.RMSpropNesterov",
                             lambda **kwargs: torch_optim.RMSpropNesterov(
                                 [torch.linspace(-1.0, 1.0, 5, dtype=torch.float64, requires_grad=True)], **kwargs)))
        for label, builder in builders:
            for name, value in float_hyperparameters(cls).items():
                yield pytest.param(builder, name, value, id=f"{label}-{name}")
            if cls is optim.Adam:
                yield pytest.param(builder, "betas[0]", 0.8, id=f"{label}-betas[0]")
                yield pytest.param(builder, "betas[1]", 0.95, id=f"{label}-betas[1]")


def kwargs_for(name: str, value) -> dict:
    if name == "betas[0]":
        return {"betas": (value, 0.999)}
    if name == "betas[1]":
        return {"betas": (0.9, value)}
    return {name: value}


def run_steps(opt, steps: int = 3) -> list[np.ndarray]:
    """Three steps from a fixed gradient sequence; the parameters after each."""
    rng = np.random.default_rng(0)
    history = []
    for _ in range(steps):
        grad = rng.standard_normal(5)
        if isinstance(opt, torch.optim.Optimizer):
            (p,) = opt.param_groups[0]["params"]
            p.grad = torch.from_numpy(grad)
            opt.step()
            history.append(p.detach().numpy().copy())
        else:
            opt.step([grad])
            history.append(opt.params[0].copy())
    return history


@pytest.mark.parametrize("form", TENSOR_FORMS)
@pytest.mark.parametrize("build, name, value", list(hyperparameter_cases(CLASSES)))
def test_a_1_element_tensor_is_read_as_its_float(build, name, value, form):
    """The issue's cases: SGD(lr=torch.tensor(1e-3)) failed at its first step, Adam with a tensor
    beta likewise; now each steps exactly as with the tensor's float."""
    tensor = TENSOR_FORMS[form](value)
    as_float = float(np.asarray(tensor.item() if hasattr(tensor, "item") else tensor))
    with_tensor, with_float = build(**kwargs_for(name, tensor)), build(**kwargs_for(name, as_float))
    for step, (a, b) in enumerate(zip(run_steps(with_tensor), run_steps(with_float)), 1):
        np.testing.assert_array_equal(a, b, err_msg=f"step {step}")
    repr(with_tensor)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), "nan-tensor", "inf-tensor"])
@pytest.mark.parametrize("build, name, value", list(hyperparameter_cases(CLASSES)))
def test_non_finite_values_are_refused_by_name(build, name, value, bad):
    bad = {"nan-tensor": torch.tensor(float("nan")), "inf-tensor": torch.tensor(float("inf"))}.get(bad, bad)
    with pytest.raises(ValueError, match=rf"^{re.escape(name)} must be"):
        build(**kwargs_for(name, bad))


@pytest.mark.parametrize("build, name, value", list(hyperparameter_cases(CLASSES)))
def test_a_bigger_tensor_or_a_non_number_is_refused_by_name(build, name, value):
    """A 2-element lr failed inside the range check with "Boolean value of Tensor ... is ambiguous"."""
    for bad in (torch.tensor([value, value]), np.array([value, value]), torch.zeros(0)):
        with pytest.raises(ValueError, match=rf"^{re.escape(name)} must be a number or a 1-element tensor"):
            build(**kwargs_for(name, bad))
    for bad in ("0.1", None, 1j, torch.tensor(1 + 1j)):
        with pytest.raises(TypeError, match=rf"^{re.escape(name)} must be a real number"):
            build(**kwargs_for(name, bad))


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_lr_set_between_steps_is_checked_too(cls):
    opt = cls([np.ones(3)], lr=0.01)
    opt.lr = torch.tensor(0.5)
    assert opt.lr == 0.5 and isinstance(opt.lr, float)
    for bad in (float("nan"), float("inf"), -1.0, torch.ones(2)):
        with pytest.raises(ValueError, match=r"^lr must be"):
            opt.lr = bad
    assert opt.lr == 0.5, "a refused lr changed the optimizer"
    assert "lr=0.5" in repr(opt)


def test_sgd_with_tensor_lr_steps_like_torch():
    """The issue's example against torch.optim.SGD with the same tensor lr."""
    lr = torch.tensor(1e-3, dtype=torch.float64)
    ours = optim.SGD([np.linspace(-1.0, 1.0, 5)], lr=lr, momentum=torch.tensor(0.9, dtype=torch.float64))
    theirs = torch.optim.SGD([torch.linspace(-1.0, 1.0, 5, dtype=torch.float64, requires_grad=True)], lr=lr,
                             momentum=0.9, foreach=False)
    for a, b in zip(run_steps(ours), run_steps(theirs)):     # tests/kernels/test_scratch_optim.py's tolerance
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_torch_rmsprop_nesterov_param_groups_are_checked():
    p, q = (torch.zeros(3, requires_grad=True) for _ in range(2))
    opt = torch_optim.RMSpropNesterov([{"params": [p], "lr": torch.tensor(0.05)}, {"params": [q]}],
                                      momentum=np.float32(0.5))
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05) and isinstance(opt.param_groups[0]["lr"], float)
    assert opt.param_groups[1]["momentum"] == 0.5 and isinstance(opt.defaults["momentum"], float)
    for group, message in (({"lr": float("nan")}, r"param group \d lr must be >= 0.0, got nan"),
                           ({"eps": float("inf")}, r"param group \d eps must be finite, got inf"),
                           ({"momentum": torch.ones(2)}, r"param group \d momentum must be a number or a 1-element")):
        with pytest.raises(ValueError, match=message):
            opt.add_param_group({"params": [torch.zeros(1, requires_grad=True)], **group})
    assert len(opt.param_groups) == 2, "a refused group was added"
    with pytest.raises(ValueError, match=r"param group 0 alpha must be >= 0.0"):
        torch_optim.RMSpropNesterov([{"params": [p], "alpha": -0.5}])
