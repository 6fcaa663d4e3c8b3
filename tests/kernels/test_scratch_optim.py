"""sysdl_kernels.scratch.optim against torch.optim (and torch_optim.RMSpropNesterov), in float64.

Each case runs 20 steps of one fixed, seeded gradient sequence through the numpy optimizer and
its torch twin and compares the parameters after every step at rtol 1e-12 (tighter than
tests/oracle.py's float64 row: an optimizer step is a few flops per element, not a long sum).

The two cannot agree to the bit: torch's ``add_(x, alpha=a)`` is a fused multiply-add on the CPU
(one rounding), numpy's ``p - lr * g`` rounds twice. Where an entry crosses zero that ulp is a
large fraction of it (seen up to 3e-10 relative over 30 seeds), so atol is 1e-12 of the array's
largest entry, as oracle.assert_close scales it; the measured error on that scale is <= 8e-16.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from sysdl_kernels import torch_optim
from sysdl_kernels.scratch import optim

SHAPES = [(7, 3), (5,), (2, 3, 4)]   # awkward on purpose: no square, no power of two
STEPS = 20
RTOL = 1e-12


def assert_agrees(ours: np.ndarray, theirs: torch.Tensor, what: str) -> None:
    expected = theirs.detach().numpy()
    scale = max(float(np.abs(expected).max()), 1.0)
    np.testing.assert_allclose(ours, expected, rtol=RTOL, atol=RTOL * scale, err_msg=what)

TWINS = {
    optim.SGD: torch.optim.SGD,
    optim.Adagrad: torch.optim.Adagrad,
    optim.RMSprop: torch.optim.RMSprop,
    optim.RMSpropNesterov: torch_optim.RMSpropNesterov,
    optim.Adadelta: torch.optim.Adadelta,
    optim.Adam: torch.optim.Adam,
}
# The built-in twins run their for-loop implementation (the CPU default, chosen explicitly).
TORCH_BACKEND = {cls: {"foreach": False} for cls in TWINS if cls is not optim.RMSpropNesterov}

CASES = [
    (optim.SGD, {"lr": 0.1}),
    (optim.SGD, {"lr": 0.1, "weight_decay": 0.05}),
    (optim.SGD, {"lr": 0.05, "momentum": 0.9}),
    (optim.SGD, {"lr": 0.05, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.01}),
    (optim.SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    (optim.SGD, {"lr": 0.05, "momentum": 0.6, "nesterov": True, "weight_decay": 0.02}),
    (optim.Adagrad, {}),
    (optim.Adagrad, {"lr": 0.1, "lr_decay": 0.05}),
    (optim.Adagrad, {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.02,
                     "initial_accumulator_value": 0.3, "eps": 1e-3}),
    (optim.RMSprop, {}),
    (optim.RMSprop, {"lr": 0.003, "weight_decay": 0.05}),
    (optim.RMSprop, {"lr": 0.003, "momentum": 0.9}),
    (optim.RMSprop, {"lr": 0.003, "centered": True}),
    (optim.RMSprop, {"lr": 0.003, "alpha": 0.4, "momentum": 0.5, "centered": True,  # lerp weight >= 0.5
                     "weight_decay": 0.01}),
    (optim.RMSpropNesterov, {}),
    (optim.RMSpropNesterov, {"lr": 0.003, "alpha": 0.9, "momentum": 0.5, "weight_decay": 0.01}),
    (optim.RMSpropNesterov, {"lr": 0.003, "momentum": 0.0, "eps": 1e-4}),
    (optim.Adadelta, {}),
    (optim.Adadelta, {"lr": 0.5, "rho": 0.5, "eps": 1e-4, "weight_decay": 0.1}),
    (optim.Adam, {}),
    (optim.Adam, {"lr": 0.01, "betas": (0.8, 0.95), "weight_decay": 0.05}),
    (optim.Adam, {"lr": 0.01, "amsgrad": True}),
    (optim.Adam, {"lr": 0.01, "betas": (0.3, 0.9), "amsgrad": True,  # lerp weight >= 0.5
                  "weight_decay": 0.02, "eps": 1e-6}),
]


def case_id(case) -> str:
    cls, kwargs = case
    return cls.__name__ + "".join(f"-{k}={v}" for k, v in kwargs.items())


def problem(seed: int = 0) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
    """Initial params and STEPS gradient lists, float64; each step's scale varies (for AMSGrad's max)."""
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(shape) for shape in SHAPES]
    grads = [[rng.uniform(0.1, 3.0) * rng.standard_normal(shape) for shape in SHAPES]
             for _ in range(STEPS)]
    return params, grads


def torch_step(opt: torch.optim.Optimizer, tensors: list[torch.Tensor], grads: list[np.ndarray]) -> None:
    for t, g in zip(tensors, grads):
        t.grad = torch.from_numpy(g.copy())
    opt.step()


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_matches_torch_after_every_step(case):
    cls, kwargs = case
    start, grads = problem()
    ours = [p.copy() for p in start]
    theirs = [torch.tensor(p, requires_grad=True) for p in start]   # float64
    opt = cls(ours, **kwargs)
    twin = TWINS[cls](theirs, **kwargs, **TORCH_BACKEND.get(cls, {}))
    for step, step_grads in enumerate(grads, 1):
        opt.step(step_grads)
        torch_step(twin, theirs, step_grads)
        for i, (a, t) in enumerate(zip(ours, theirs)):
            assert_agrees(a, t, f"{case_id(case)}: param {i} after step {step}")
    moved = max(np.abs(a - p).max() for a, p in zip(ours, start))
    assert moved > 1e-3, f"{case_id(case)} barely moved the params ({moved}): a vacuous comparison"


@pytest.mark.parametrize("cls", list(TWINS), ids=lambda cls: cls.__name__)
def test_same_hyperparameters_and_defaults_as_twin(cls):
    ours = list(inspect.signature(cls).parameters.values())
    theirs = inspect.signature(TWINS[cls]).parameters
    for p in ours:
        assert p.name in theirs, f"{cls.__name__}({p.name}=...) has no counterpart in its torch twin"
        assert p.default == theirs[p.name].default, f"{cls.__name__} default of {p.name}"
    assert [p.name for p in ours] == list(theirs)[:len(ours)], "positional order differs from torch's"


# RMSpropNesterov by hand: lr=0.1, alpha=0.75, eps=1, momentum=0.5, weight_decay=0.5, param [1, -2].
# Raw grads are chosen so the decayed grads g = grad + 0.5 * param come out round.
#   step 1: g = [1.5, -5] + 0.5*[1, -2] = [2, -6]; sq = 0.25*g^2 = [1, 9]; s = g/(sqrt(sq)+1) = [1, -1.5]
#           buf = s = [1, -1.5]; param -= 0.1*(s + 0.5*buf) = 0.1*[1.5, -2.25]  ->  [0.85, -1.775]
#   step 2: g = [0.575, -2.1125] + 0.5*[0.85, -1.775] = [1, -3]; sq = 0.75*[1, 9] + 0.25*[1, 9] = [1, 9]
#           s = [1, -3]/[2, 4] = [0.5, -0.75]; buf = 0.5*[1, -1.5] + s = [1, -1.5]
#           param -= 0.1*([0.5, -0.75] + 0.5*[1, -1.5]) = 0.1*[1, -1.5]  ->  [0.75, -1.625]
BY_HAND = {"lr": 0.1, "alpha": 0.75, "eps": 1.0, "momentum": 0.5, "weight_decay": 0.5}
BY_HAND_GRADS = [[1.5, -5.0], [0.575, -2.1125]]
BY_HAND_PARAMS = [[0.85, -1.775], [0.75, -1.625]]
BY_HAND_BUFFERS = [[1.0, -1.5], [1.0, -1.5]]


def by_hand_torch():
    p = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    opt = torch_optim.RMSpropNesterov([p], **BY_HAND)
    for grad in BY_HAND_GRADS:
        torch_step(opt, [p], [np.array(grad)])
        yield p.detach().numpy(), opt.state[p]["momentum_buffer"].numpy()


def by_hand_numpy():
    p = np.array([1.0, -2.0])
    opt = optim.RMSpropNesterov([p], **BY_HAND)
    for grad in BY_HAND_GRADS:
        opt.step([np.array(grad)])
        yield p, opt.state[0]["momentum_buffer"]


@pytest.mark.parametrize("run", [by_hand_torch, by_hand_numpy], ids=["torch", "numpy"])
def test_rmsprop_nesterov_by_hand(run):
    for step, (param, buf) in enumerate(run()):
        np.testing.assert_allclose(param, BY_HAND_PARAMS[step], rtol=RTOL, err_msg=f"step {step + 1}")
        np.testing.assert_allclose(buf, BY_HAND_BUFFERS[step], rtol=RTOL, err_msg=f"step {step + 1}")


def test_torch_rmsprop_nesterov_param_groups_and_closure():
    """Two groups with their own lr / momentum equal two numpy optimizers; step returns the loss."""
    start, grads = problem(seed=1)
    theirs = [torch.tensor(p, requires_grad=True) for p in start]
    twin = torch_optim.RMSpropNesterov([{"params": theirs[:2]},
                                        {"params": theirs[2:], "lr": 0.05, "momentum": 0.3}], lr=0.01)
    ours = [p.copy() for p in start]
    opt_a, opt_b = optim.RMSpropNesterov(ours[:2], lr=0.01), optim.RMSpropNesterov(ours[2:], lr=0.05,
                                                                                    momentum=0.3)
    for step_grads in grads[:5]:
        def closure():
            twin.zero_grad()
            loss = sum((t * torch.from_numpy(g)).sum() for t, g in zip(theirs, step_grads))
            loss.backward()   # d loss / d t = g
            return loss
        loss = twin.step(closure)
        assert loss.item() == pytest.approx(sum(float((p * g).sum()) for p, g in zip(ours, step_grads)))
        opt_a.step(step_grads[:2])
        opt_b.step(step_grads[2:])
    for i, (a, t) in enumerate(zip(ours, theirs)):
        assert_agrees(a, t, f"param {i}")


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_updates_in_place_and_leaves_grads_alone(case):
    cls, kwargs = case
    start, grads = problem()
    params = [p.copy() for p in start]
    ids = [id(p) for p in params]
    grad_copies = [g.copy() for g in grads[0]]
    opt = cls(params, **kwargs)
    opt.step(grads[0])
    assert [id(p) for p in opt.params] == ids
    assert all(not np.array_equal(p, s) for p, s in zip(params, start)), "a param was not updated"
    for g, copy in zip(grads[0], grad_copies):
        np.testing.assert_array_equal(g, copy, err_msg="step changed the caller's gradient")


def builders(cls):
    """The constructors to check: the numpy optimizer, and for RMSpropNesterov its torch twin too,
    each on its own, so neither's validation can hide the other's."""
    yield lambda **kwargs: cls([np.zeros(3)], **kwargs)
    if cls is optim.RMSpropNesterov:
        yield lambda **kwargs: torch_optim.RMSpropNesterov([torch.zeros(3, requires_grad=True)], **kwargs)


@pytest.mark.parametrize("cls, kwargs, message", [
    (optim.SGD, {"lr": -0.1}, r"lr must be >= 0.0, got -0.1"),
    (optim.SGD, {"lr": float("nan")}, r"lr must be >= 0.0, got nan"),
    (optim.SGD, {"lr": 0.1, "momentum": -0.9}, r"momentum must be >= 0.0, got -0.9"),
    (optim.SGD, {"lr": 0.1, "weight_decay": -1e-4}, r"weight_decay must be >= 0.0"),
    (optim.SGD, {"lr": 0.1, "nesterov": True}, r"nesterov=True needs momentum > 0 and dampening == 0"),
    (optim.SGD, {"lr": 0.1, "momentum": 0.9, "dampening": 0.1, "nesterov": True},
     r"got momentum=0.9, dampening=0.1"),
    (optim.Adagrad, {"lr_decay": -1.0}, r"lr_decay must be >= 0.0"),
    (optim.Adagrad, {"initial_accumulator_value": -0.1}, r"initial_accumulator_value must be >= 0.0"),
    (optim.Adagrad, {"eps": -1e-10}, r"eps must be >= 0.0, got -1e-10"),
    (optim.RMSprop, {"alpha": -0.5}, r"alpha must be >= 0.0"),
    (optim.RMSprop, {"momentum": -0.1}, r"momentum must be >= 0.0"),
    (optim.RMSpropNesterov, {"lr": -1.0}, r"lr must be >= 0.0"),
    (optim.RMSpropNesterov, {"momentum": -0.9}, r"momentum must be >= 0.0"),
    (optim.RMSpropNesterov, {"eps": -1.0}, r"eps must be >= 0.0"),
    (optim.RMSpropNesterov, {"alpha": -0.1}, r"alpha must be >= 0.0"),
    (optim.RMSpropNesterov, {"weight_decay": -0.1}, r"weight_decay must be >= 0.0"),
    (optim.Adadelta, {"rho": 1.5}, r"rho must be in \[0.0, 1.0\], got 1.5"),
    (optim.Adadelta, {"eps": -1e-6}, r"eps must be >= 0.0"),
    (optim.Adam, {"betas": (1.0, 0.999)}, r"betas\[0\] must be in \[0.0, 1.0\), got 1.0"),
    (optim.Adam, {"betas": (0.9, -0.1)}, r"betas\[1\] must be in \[0.0, 1.0\), got -0.1"),
    (optim.Adam, {"betas": (0.9,)}, r"betas must be a pair"),
    (optim.Adam, {"eps": -1e-8}, r"eps must be >= 0.0"),
])
def test_bad_hyperparameters(cls, kwargs, message):
    for build in builders(cls):
        with pytest.raises(ValueError, match=message):
            build(**kwargs)


@pytest.mark.parametrize("grads, message", [
    ([np.zeros((7, 3)), np.zeros(5)], r"got 2 gradients for 3 parameters"),
    ([np.zeros((7, 3)), np.zeros(5), np.zeros((2, 3, 4)), np.zeros(1)], r"got 4 gradients for 3"),
    ([np.zeros((3, 7)), np.zeros(5), np.zeros((2, 3, 4))],
     r"gradient 0 has shape \(3, 7\) but parameter 0 has shape \(7, 3\)"),
    ([np.zeros((7, 3)), np.zeros(5), np.zeros((2, 12))], r"gradient 2 has shape \(2, 12\)"),
])
@pytest.mark.parametrize("cls", list(TWINS), ids=lambda cls: cls.__name__)
def test_mismatched_grads(cls, grads, message):
    params = [np.zeros(shape) for shape in SHAPES]
    opt = cls(params, lr=0.1)
    with pytest.raises(ValueError, match=message):
        opt.step(grads)
    assert opt.steps == 0 and all(not p.any() for p in params), "a refused step changed something"


@pytest.mark.parametrize("params, message", [
    ([], r"params is empty"),
    ([np.zeros(3, dtype=np.int64)], r"parameter 0 is int64; params must be floating-point"),
    ([np.zeros(3), [0.0, 1.0]], r"parameter 1 is list"),
])
def test_bad_params(params, message):
    with pytest.raises(ValueError, match=message):
        optim.Adam(params)
