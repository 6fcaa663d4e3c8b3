"""Analytic performance models (pure functions): PALEO-style layer-time prediction (at the end of
this file; run through ``sysdl predict-time``, models/analysis/predict_time.py) and the Optimus loss-curve
and resource-speed fits.

After Peng et al., "Optimus: an efficient dynamic resource scheduler for deep learning
clusters", EuroSys 2018, section 3. Run through ``sysdl optimus`` (models/analysis/optimus.py); tests
in tests/kernels/test_perf_model.py (``pytest tests/kernels/test_perf_model.py``).

Training loss after k steps (or epochs), Optimus eq. (1):

    l(k) = 1 / (b0 * k + b1) + b2,      b0, b1, b2 >= 0

b0 is the rate of progress per step, 1/b1 + b2 the loss at k = 0, b2 the loss the curve tends
to. Steps to a target loss l* in closed form: k* = (1 / (l* - b2) - b1) / b0, which exists only
for l* > b2 (and b0 > 0).

Step time of synchronous parameter-server training with w workers and p servers, the
synchronous form of Optimus section 3.2 (speed f(w, p) = 1 / step_time, in steps per second):

    step_time(w, p) = t0 * M / w  +  t1  +  t2 * w / p  +  t3 * w  +  t4 * p,   t0..t4 >= 0

  t0 * M / w   forward and backward pass over each worker's M / w examples (M: global batch);
  t1           per-step constant: the server-side parameter update and fixed framework cost;
  t2 * w / p   parameter transfer: each server holds 1 / p of the model and exchanges it with
               all w workers (push gradients, pull parameters), so its link carries w / p models;
  t3 * w       overhead growing with the workers: the barrier and the servers' per-request work;
  t4 * p       overhead growing with the servers: each worker talks to every server each step.

Coefficients are fitted non-negatively, as in the paper: the loss curve by bounded nonlinear
least squares, the step time by NNLS on relative error (Lawson-Hanson, scipy.optimize.nnls).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

SPEED_TERMS = ("compute M/w", "constant", "transfer w/p", "workers w", "servers p")
_B1_FLOOR = 1e-12          # keeps l(0) = 1/b1 + b2 finite when a curve starts at k = 0


class UnreachableTargetError(ValueError):
    """The target loss lies at or below the curve's asymptote b2: no number of steps reaches it."""


# ---- loss curve ---------------------------------------------------------------------------

def loss_curve(k, b0: float, b1: float, b2: float) -> np.ndarray:
    """l(k) = 1 / (b0 k + b1) + b2 at every k."""
    return 1.0 / (b0 * np.asarray(k, dtype=float) + b1) + b2


def steps_to_loss(target: float, b0: float, b1: float, b2: float) -> float:
    """The k at which l(k) first falls to ``target``: 0 if the curve starts below it."""
    if target <= b2 or (b0 == 0 and target < 1.0 / b1 + b2):
        raise UnreachableTargetError(
            f"target loss {target:g} is unreachable: the fitted curve never falls below b2 = {b2:.4g} "
            f"(its asymptote{'; it is flat, b0 = 0' if b0 == 0 else ''}); choose a target above {b2:.4g}")
    return max(0.0, (1.0 / (target - b2) - b1) / b0) if b0 > 0 else 0.0


def fit_quality(measured, predicted) -> tuple[float, float]:
    """(R^2, mean absolute percentage error in %) of ``predicted`` against ``measured``."""
    measured, predicted = np.asarray(measured, float), np.asarray(predicted, float)
    residual = np.sum((measured - predicted) ** 2)
    total = np.sum((measured - measured.mean()) ** 2)
    r2 = 1.0 - residual / total if total > 0 else float(residual == 0)
    return float(r2), float(100.0 * np.mean(np.abs(predicted - measured) / np.abs(measured)))


@dataclass(frozen=True)
class LossFit:
    """A fitted l(k) = 1 / (b0 k + b1) + b2 and how well it matches the curve it came from."""
    b0: float
    b1: float
    b2: float
    r2: float
    mape: float              # mean absolute percentage error over the fitted points, %
    n_points: int
    k_max: float             # the last k measured: predictions beyond it are extrapolations

    def predict(self, k) -> np.ndarray:
        return loss_curve(k, self.b0, self.b1, self.b2)

    def steps_to(self, target: float) -> float:
        return steps_to_loss(target, self.b0, self.b1, self.b2)


def _check_curve(k, loss) -> tuple[np.ndarray, np.ndarray]:
    k, loss = np.asarray(k, dtype=float).ravel(), np.asarray(loss, dtype=float).ravel()
    if k.shape != loss.shape:
        raise ValueError(f"steps and losses differ in length: {k.size} against {loss.size}")
    keep = np.isfinite(k) & np.isfinite(loss)
    k, loss = k[keep], loss[keep]
    if k.size < 3:
        raise ValueError(f"a loss curve needs at least 3 finite (step, loss) points to fit 3 coefficients, "
                         f"got {k.size}: log more steps or epochs")
    if np.any(k < 0) or np.any(loss <= 0):
        raise ValueError("steps must be >= 0 and losses > 0 (the model is 1 / (b0 k + b1) + b2 with b >= 0)")
    return k, loss


def _initial_guess(t: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """For trial asymptotes b2 below the smallest loss, 1 / (l - b2) = b0 t + b1 is linear in t:
    solve it non-negatively and keep the b2 whose curve is closest to the losses."""
    from scipy.optimize import nnls
    design = np.column_stack([t, np.ones_like(t)])
    best, best_sse = None, np.inf
    for b2 in loss.min() * (1.0 - np.geomspace(1.0, 1e-3, 40)):     # 0 .. 0.999 x the smallest loss
        (b0, b1), _ = nnls(design, 1.0 / (loss - b2))
        sse = np.sum((loss_curve(t, b0, max(b1, _B1_FLOOR), b2) - loss) ** 2)
        if sse < best_sse:
            best, best_sse = np.array([b0, max(b1, _B1_FLOOR), b2]), sse
    return best


def fit_loss_curve(k, loss) -> LossFit:
    """Fit l(k) = 1 / (b0 k + b1) + b2 with b >= 0 to measured (k, loss) by least squares."""
    from scipy.optimize import least_squares
    k, loss = _check_curve(k, loss)
    scale = k.max() if k.max() > 0 else 1.0      # fit in t = k / k_max: b0 of order b1, better conditioned
    t = k / scale
    start = _initial_guess(t, loss)
    result = least_squares(lambda b: loss_curve(t, *b) - loss, start, x_scale="jac",
                           bounds=([0.0, _B1_FLOOR, 0.0], np.inf))
    b0, b1, b2 = result.x
    r2, mape = fit_quality(loss, loss_curve(t, b0, b1, b2))
    return LossFit(float(b0 / scale), float(b1), float(b2), r2, mape, int(k.size), float(k.max()))


# ---- loss-model coefficients against model features ---------------------------------------

@dataclass(frozen=True)
class CoefficientRegression:
    """One least-squares fit per coefficient: log(b0 + floor) and log(b1 + floor) = weights . features
    (a rate and a scale: positive, and they change multiplicatively), b2 = weights . features in
    linear space (an asymptotic loss that often sits at its bound 0, where a log would make the
    fit chase the floor), predictions clipped at 0.

    features: an intercept, depth, and one 0/1 indicator per device other than ``base_device``;
    a column that is constant over the logs (one depth, one device) is left out, because the
    logs say nothing about it, and ``notes`` says so."""
    features: tuple[str, ...]
    weights: np.ndarray      # (3, F): rows log b0, log b1, b2
    floors: np.ndarray       # (2,): keep the logs finite where b0 or b1 hits its bound
    base_device: str
    devices: tuple[str, ...]
    notes: tuple[str, ...]

    def predict(self, depth: float, device: str) -> tuple[float, float, float]:
        """(b0, b1, b2) for a model of this depth on this device."""
        if device not in self.devices:
            raise ValueError(f"device {device!r} is in none of the logs ({', '.join(self.devices)}): the "
                             "regression cannot say how it trains; add a log from that device")
        row = _feature_row(depth, device, self.features)
        raw = self.weights @ row
        values = np.append(np.exp(raw[:2]) - self.floors, raw[2])
        return tuple(float(v) for v in np.maximum(values, 0.0))


def _feature_row(depth: float, device: str, features: tuple[str, ...]) -> np.ndarray:
    named = {"intercept": 1.0, "depth": float(depth)}
    return np.array([named.get(name, float(name == f"device={device}")) for name in features])


def fit_coefficient_regression(depths, devices, coefficients) -> CoefficientRegression:
    """Regress each of b0, b1, b2 (``coefficients``: (n_logs, 3)) on depth and device by least
    squares: b0 and b1 in log space, b2 in linear space (see CoefficientRegression)."""
    coefficients = np.asarray(coefficients, dtype=float).reshape(-1, 3)
    depths, devices = np.asarray(depths, dtype=float), [str(d) for d in devices]
    if not len(depths) == len(devices) == len(coefficients) >= 1:
        raise ValueError(f"need one depth, device and (b0, b1, b2) per log; got {len(depths)}, "
                         f"{len(devices)} and {len(coefficients)}")
    seen = tuple(sorted(set(devices)))
    base, notes = seen[0], []
    features = ["intercept"]
    if np.ptp(depths) > 0:
        features.append("depth")
    else:
        notes.append(f"every log has depth {depths[0]:g}: no depth term, predictions ignore depth")
    features += [f"device={d}" for d in seen[1:]]
    if len(seen) == 1:
        notes.append(f"every log ran on {base}: no device term")
    design = np.array([_feature_row(depth, device, tuple(features)) for depth, device in zip(depths, devices)])
    if len(coefficients) < len(features):
        notes.append(f"{len(coefficients)} logs for {len(features)} features: the least-norm solution is one "
                     "of many that fit exactly; add logs before trusting it")
    floors = 1e-6 * np.maximum(coefficients[:, :2].max(axis=0), 1e-12)
    targets = np.column_stack([np.log(coefficients[:, :2] + floors), coefficients[:, 2]])
    weights, *_ = np.linalg.lstsq(design, targets, rcond=None)
    return CoefficientRegression(tuple(features), weights.T, floors, base, seen, tuple(notes))


# ---- resource-speed model -----------------------------------------------------------------

def speed_terms(workers, servers, batch: float) -> np.ndarray:
    """(n, 5) design matrix of step_time = t . [M/w, 1, w/p, w, p] (see the module docstring)."""
    w, p = np.asarray(workers, dtype=float).ravel(), np.asarray(servers, dtype=float).ravel()
    if np.any(w < 1) or np.any(p < 1):
        raise ValueError("workers and parameter servers must each be >= 1")
    return np.column_stack([batch / w, np.ones_like(w), w / p, w, p])


@dataclass(frozen=True)
class SpeedFit:
    """Fitted step_time(w, p) = t0 M/w + t1 + t2 w/p + t3 w + t4 p, seconds; speed = 1 / step_time."""
    theta: np.ndarray        # (5,) t0..t4, seconds per unit of each term
    batch: float             # M, the global batch the compute term divides among workers
    r2: float                # of speeds
    mape: float              # % of speeds

    def step_time(self, workers, servers) -> np.ndarray:
        return speed_terms(workers, servers, self.batch) @ self.theta

    def speed(self, workers, servers) -> np.ndarray:
        return 1.0 / self.step_time(workers, servers)


def fit_speed_model(workers, servers, speed, batch: float = 1.0) -> SpeedFit:
    """Fit t0..t4 >= 0 to measured speeds (steps/s) at (w, p) by NNLS on the relative error of
    step time (speeds span a range; an absolute fit would chase the slowest configurations)."""
    from scipy.optimize import nnls
    speed = np.asarray(speed, dtype=float).ravel()
    design = speed_terms(workers, servers, batch)
    if len(speed) != len(design):
        raise ValueError(f"{len(design)} (workers, servers) pairs but {len(speed)} speeds")
    if np.any(~np.isfinite(speed)) or np.any(speed <= 0):
        raise ValueError("speeds must be finite and > 0 steps per second")
    if len(speed) < design.shape[1]:
        raise ValueError(f"the speed model has {design.shape[1]} coefficients; measure at least that many "
                         f"(workers, servers) configurations, got {len(speed)}")
    step_time = 1.0 / speed
    theta, _ = nnls(design / step_time[:, None], np.ones_like(step_time))
    r2, mape = fit_quality(speed, 1.0 / (design @ theta))
    return SpeedFit(theta, float(batch), r2, mape)


def time_to_target(steps: float, fit: SpeedFit, workers, servers) -> np.ndarray:
    """Seconds to run ``steps`` synchronous steps at each (w, p): steps / speed(w, p). Synchronous
    training with a fixed global batch takes the same steps whatever w, so only the speed moves."""
    return steps * fit.step_time(workers, servers)

# ----------------------------------------------------------------------------------------------
# PALEO-style time prediction (Qi, Sparks, Talwalkar, "Paleo: a performance model for deep neural
# networks", ICLR 2017): a layer takes the time to read its inputs and weights, compute, and write
# its outputs, each at a platform-percent-of-peak (PPP) fraction of the device's peak rates.
# ----------------------------------------------------------------------------------------------

TRAINING_FACTOR = 3.0    # a training step ~ forward + backward, backward ~ 2 x forward (grad input
                         # and grad weight each cost one forward's multiply-adds and traffic)


PRECISIONS = ("ieee", "tf32")   # fp32 on the CUDA cores; TF32 inputs on the tensor cores


@dataclass(frozen=True)
class Device:
    name: str
    peak_flops: float          # FLOP/s, float32 without tensor cores
    bandwidth: float           # bytes/s to device memory
    default_ppp: float         # fraction of both peaks a layer reaches unless told otherwise
    source: str                # where the peaks come from
    tf32_flops: float | None = None    # FLOP/s on the tensor cores with TF32 inputs, dense; None: none

    def at_precision(self, precision: str) -> "Device":
        """The device as a layer at ``precision`` sees it: "ieee" itself, "tf32" with the tensor
        cores' TF32 peak in place of the fp32 one (the bandwidth is the same)."""
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if precision == "ieee":
            return self
        if self.tf32_flops is None:
            raise ValueError(f"{self.name} has no TF32 tensor cores ({self.source}); choose an A100 or newer")
        return replace(self, name=f"{self.name}, TF32 tensor cores", peak_flops=self.tf32_flops)


# Datasheet float32 peaks (boost clock) and memory bandwidths; TF32 tensor-core peaks dense (the
# datasheets' larger figures assume 2:4 sparsity). The K80 is one of the board's two GK210 GPUs
# (the board: 8.73 TFLOP/s, 480 GB/s), which is what one framework process uses.
# default_ppp 0.5 for datasheet peaks is an assumption (layers of real networks rarely reach
# more than half the peak); override it with the PPP you measure.
DEVICES = {
    "K80": Device("K80 (one GK210)", 4.37e12, 240e9, 0.5, "NVIDIA Tesla K80 datasheet, per GPU"),
    "P100": Device("P100 PCIe 16 GB", 9.3e12, 732e9, 0.5, "NVIDIA Tesla P100 datasheet"),
    "V100": Device("V100 SXM2", 15.7e12, 900e9, 0.5, "NVIDIA Tesla V100 datasheet"),
    "A100": Device("A100 SXM4 40 GB", 19.5e12, 1555e9, 0.5, "NVIDIA A100 datasheet (FP32; TF32 156 dense)",
                   tf32_flops=156e12),
    "H100": Device("H100 SXM5", 67e12, 3350e9, 0.5, "NVIDIA H100 datasheet (FP32; TF32 495 dense)",
                   tf32_flops=495e12),
    "H200": Device("H200 SXM 141 GB", 67e12, 4.8e12, 0.5, "NVIDIA H200 datasheet (FP32, HBM3e; TF32 495 dense)",
                   tf32_flops=495e12),
}


def probed_device(gemm_flops: float, copy_bandwidth: float, name: str = "this machine") -> Device:
    """A device whose peaks are measured rates (a large GEMM, a large copy): PPP 1 then means
    'every layer runs as fast as the probes'."""
    return Device(name, gemm_flops, copy_bandwidth, 1.0, "measured: torch.mm GEMM and copy probes")


def layer_seconds(flops: float, bytes_moved: float, device: Device, ppp: float | None = None) -> float:
    """PALEO's R + C + W: compute at ppp x peak FLOP/s plus traffic at ppp x peak bandwidth."""
    ppp = device.default_ppp if ppp is None else ppp
    if not 0 < ppp <= 1:
        raise ValueError(f"platform percent of peak must be in (0, 1], got {ppp}")
    return flops / (ppp * device.peak_flops) + bytes_moved / (ppp * device.bandwidth)


def predict_layers(costs, batch: int, device: Device, ppp: float | None = None, dtype_bytes: int = 4,
                   training: bool = False) -> list[dict]:
    """Per-layer predicted seconds for a batch: FLOPs and activation traffic scale with the batch,
    weights are read once per batch."""
    from sysdl_kernels.flops import memory_bytes
    factor = TRAINING_FACTOR if training else 1.0
    ppp = device.default_ppp if ppp is None else ppp
    rows = []
    for cost in costs:
        flops = batch * cost.flops
        moved = memory_bytes(cost, dtype_bytes, batch)
        seconds = factor * layer_seconds(flops, moved, device, ppp)
        rows.append({"layer": cost.name, "flops": factor * flops, "bytes": factor * moved,
                     "compute_s": factor * flops / (ppp * device.peak_flops),
                     "seconds": seconds})
    return rows


def exact_ppp(predicted_at_ppp_one: float, measured: float) -> float:
    """The PPP that makes the prediction equal the measurement (both terms scale with 1 / PPP)."""
    return predicted_at_ppp_one / measured
