"""The whole Fashion-MNIST CNN forward pass in one Numba kernel: MatmulNet's fused CPU path.

    logits = fused_cnn(x, params)       # x (N, C0, H, W); params = FusedParams(conv1, conv2, fc1, fc2)

    relu(conv1) -> relu(conv2) -> flatten -> relu(fc1) -> fc2       stride 1, no padding, no pooling

Why one kernel: the pruned networks are tiny (1-4 channels, tens of hidden units, ~0.2 MFLOP
per image), so a layer-by-layer program spends most of its time moving activations between
layers and calling into libraries. Here each thread takes tiles of 4 images and carries them
from the pixels to the logits without leaving its caches:

* **convolutions in "wide rows"**: an image's channel is one flat row-major vector of H*W values;
  output pixel (y, x) of a KHxKW kernel is at flat position p = y*W + x, and tap (i, j) reads
  flat position p + i*W + j. So each (output channel, input channel) is one unit-stride pass
  over all ~OH*W positions, which LLVM vectorises (AVX-512 here): for a 3x3 kernel all 9
  shifted loads feed one accumulator update (``numba_layers.tap_sum``, shared with sysdl's
  Numba conv); the first input channel's pass starts from the bias and the last one applies
  the ReLU, so no pass over the map only fills or clamps it. The positions with x >= OW
  ("wrap-around" columns) are computed too and never read by a valid output of the next conv
  (they cost (W - OW) / W extra work, 7-14% on 28-wide images).
* **no flatten**: conv2 writes each image of the tile straight into its row of fc1's input, on
  the wide layout (C2, OH2, W), and its wrap-around columns are then set to 0; fc1's weight is
  laid out on the same layout once (``kernel_arrays``), with zero columns there. So 0 * 0 is
  what those columns add, a NaN or inf computed in them cannot reach a logit, and no copy of
  the valid columns runs: that copy took 13-18% of the kernel's time for 3-2-21, 3-1-16 and
  4-2-25 networks, against the 17% more multiply-adds fc1 now does.
* **dense layers**: fc1 and fc2 run on the tile's 4 rows with ``numba_gemm.gemm_row_block``
  (4x4 register tiles, the engine of ``gemm_bias_act``), bias and ReLU fused.

The kernel runs at the CPU's full vector width only when Numba compiles with LLVM's 256-bit
preference off: ``runtime.set_process_environment`` (before Numba loads) sees to it; on an
Emerald Rapids Xeon that made this kernel 1.54x faster.

The activations per thread (conv1's wide maps, the tile's conv2 maps and hidden units) are a
few tens of KB: L1 and L2. Images are split among threads in whole tiles; batches
under ``SERIAL_BELOW`` images run on the calling thread (no thread wake-up), which is the batch-1
path: one call, preallocated buffers, no Python per layer.

Reference: ``fused_cnn_reference`` (numpy, via numba_gemm's references). Sums are taken in a
different order from torch's (float32 results agree to ~1e-5 relative); IEEE specials propagate
as in torch. Input in any layout (copied to contiguous when needed), float32 or float64.

    python -m sysdl_kernels.fused_cnn      # compiles, checks a 4-2-25 network, prints each phase's time
    python -m sysdl_kernels.fused_cnn --checkpoint runs/pruned_selected.pt --batch 1000
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np

from sysdl_kernels import numba_gemm
from sysdl_kernels.numba_gemm import TILE, gemm_row_block
from sysdl_kernels.numba_layers import kernel_3x3, tap_sum, taps_by_rows

SERIAL_BELOW = 16          # images: smaller batches run on the calling thread


@dataclass(frozen=True)
class FusedParams:
    """The network's parameters as C-contiguous arrays of one dtype."""
    conv1_weight: np.ndarray   # (C1, C0, K1, K1)
    conv1_bias: np.ndarray     # (C1,)
    conv2_weight: np.ndarray   # (C2, C1, K2, K2)
    conv2_bias: np.ndarray     # (C2,)
    fc1_weight: np.ndarray     # (H, C2*OH2*OW2) in NCHW flatten order, as nn.Linear
    fc1_bias: np.ndarray       # (H,)
    fc2_weight: np.ndarray     # (L, H)
    fc2_bias: np.ndarray       # (L,)

    @classmethod
    def from_arrays(cls, *arrays, dtype=np.float32) -> "FusedParams":
        return cls(*(np.ascontiguousarray(a, dtype=dtype) for a in arrays))

    def arrays(self) -> tuple:
        return (self.conv1_weight, self.conv1_bias, self.conv2_weight, self.conv2_bias,
                self.fc1_weight, self.fc1_bias, self.fc2_weight, self.fc2_bias)


# ----------------------------------------------------------------------------------------------
# Reference (numpy): the oracle
# ----------------------------------------------------------------------------------------------

def fused_cnn_reference(x: np.ndarray, params: FusedParams) -> np.ndarray:
    p = params
    a = numba_gemm.im2col_gemm_reference(x, p.conv1_weight, p.conv1_bias, relu=True)
    a = numba_gemm.im2col_gemm_reference(a, p.conv2_weight, p.conv2_bias, relu=True)
    hidden = numba_gemm.gemm_bias_act_reference(a.reshape(len(a), -1), p.fc1_weight, p.fc1_bias, relu=True)
    return numba_gemm.gemm_bias_act_reference(hidden, p.fc2_weight, p.fc2_bias, relu=False)


# ----------------------------------------------------------------------------------------------
# Kernel
# ----------------------------------------------------------------------------------------------

@numba.njit(inline="always")
def _nine_taps_with_epilogue(acc, xn, weight, o, c, row_stride, run, first, bias, last, zero):
    # acc[t] (+)= the 9 taps of input channel c for output o, in one pass: the first channel's
    # pass starts from the bias instead of reading acc, the last one applies the ReLU (written
    # so a NaN stays NaN) before its store. The same sums, in the same order, as a bias fill,
    # nine_taps passes and a ReLU pass, with two passes over acc fewer.
    w = kernel_3x3(weight, o, c)
    r0, r1, r2 = xn, xn[row_stride:], xn[2 * row_stride:]
    if first and last:
        for t in range(run):
            v = bias + tap_sum(r0, r1, r2, t, w)
            acc[t] = zero if v < zero else v
    elif first:
        for t in range(run):
            acc[t] = bias + tap_sum(r0, r1, r2, t, w)
    elif last:
        for t in range(run):
            v = acc[t] + tap_sum(r0, r1, r2, t, w)
            acc[t] = zero if v < zero else v
    else:
        for t in range(run):
            acc[t] += tap_sum(r0, r1, r2, t, w)


@numba.njit(inline="always")
def _conv_wide_rows(src, rows_in, width, weight, bias, zero, dst):
    # src (C, >= rows_in*width) flat channels, C-contiguous; weight (O, C, KH, KW); dst (O, >= rows_out*width)
    o_count, c_count, kh, kw = weight.shape
    rows_out = rows_in - kh + 1
    positions = (rows_out - 1) * width + width - kw + 1     # the last valid output + 1; reads stay in src
    for o in range(o_count):
        d = dst[o]
        # one output at a time: d and src are arguments LLVM cannot prove apart, and two
        # accumulators in one loop need more run-time overlap checks than it vectorises with
        if kh == 3 and kw == 3:
            for c in range(c_count):
                _nine_taps_with_epilogue(d, src[c], weight, o, c, width, positions, c == 0, bias[o],
                                         c == c_count - 1, zero)
        else:
            d[:positions] = bias[o]
            for c in range(c_count):
                taps_by_rows(d, src[c], weight, o, c, 0, width, 1, 1, positions)
            for p in range(positions):
                if d[p] < zero:                             # written so a NaN stays NaN
                    d[p] = zero
        for p in range(positions, rows_out * width):        # never computed: keep them finite
            d[p] = zero


def _helpers_hash() -> str:
    """sha256 of the modules whose kernels ``_kernel`` inlines (numba_layers, numba_gemm)."""
    from sysdl_kernels import numba_layers
    return hashlib.sha256(b"".join(Path(m.__file__).read_bytes() for m in (numba_layers, numba_gemm))).hexdigest()


PHASES = ("conv1", "conv2", "fc1", "fc2")   # the kernel's stages, in order (``phase_times``)


@functools.lru_cache(maxsize=None)
def _kernel(parallel: bool, through: int = len(PHASES)):
    """The forward kernel, parallel over threads or serial, compiled on first use and cached on
    disk. ``through`` < 4 builds a kernel that stops after the first ``through`` PHASES, for
    ``phase_times``: a closure constant, so the full kernel has no branch for it. Numba names a
    cache entry after the function, not its flags, and checks only its own file for changes; so
    ``stamp``, a closure constant that Numba hashes into the entry's key, holds the build and the
    sources it inlines: no build loads another's code, and an edit to numba_layers or numba_gemm
    recompiles it."""
    if not 1 <= through <= len(PHASES):
        raise ValueError(f"through must be 1..{len(PHASES)}, got {through}")
    stamp = f"{'parallel' if parallel else 'serial'} through {through} {_helpers_hash()}"

    def forward(x, height, width, w1, b1, w2, b2, fc1_w, fc1_b, fc2_w, fc2_b, zero, wide1, wide2, hidden, out):
        # x (N, C0, H*W) images of height x width; wide1 (threads, C1, H1*W); wide2 (threads, TILE,
        # C2*H2*W): the tile's conv2 maps, fc1's rows; fc1_w (HIDDEN, C2*H2*W) on that wide layout,
        # zero on the wrap-around columns; hidden (threads, TILE, HIDDEN); out (N, L)
        if len(stamp) == 0:                                 # never: the stamp only keys the cache
            return
        n = x.shape[0]
        c2 = w2.shape[0]
        rows1 = height - w1.shape[2] + 1
        rows2 = rows1 - w2.shape[2] + 1
        cols2 = width - w1.shape[3] + 1 - w2.shape[3] + 1
        threads = wide2.shape[0]
        tiles = (n + TILE - 1) // TILE
        for t in numba.prange(threads):
            for tile in range(t * tiles // threads, (t + 1) * tiles // threads):
                i0 = tile * TILE
                rows = min(TILE, n - i0)
                for r in range(rows):
                    _conv_wide_rows(x[i0 + r], height, width, w1, b1, zero, wide1[t])
                    if through >= 2:
                        maps = wide2[t, r].reshape((c2, rows2 * width))
                        _conv_wide_rows(wide1[t], rows1, width, w2, b2, zero, maps)
                        for c in range(c2):                 # wrap-around columns: 0, so 0 * them is 0
                            for y in range(rows2):
                                for z in range(cols2, width):
                                    maps[c, y * width + z] = zero
                if through >= 3:
                    gemm_row_block(wide2[t, :rows], 0, fc1_w, fc1_b, True, zero, hidden[t, :rows])
                if through >= 4:
                    gemm_row_block(hidden[t, :rows], 0, fc2_w, fc2_b, False, zero, out[i0:i0 + rows])

    return numba.njit(parallel=parallel, cache=True, fastmath={"reassoc", "contract"})(forward)


# ----------------------------------------------------------------------------------------------
# Public function: validate, allocate, dispatch
# ----------------------------------------------------------------------------------------------

def check_params(params: FusedParams, image_shape: tuple[int, int, int]) -> None:
    """ValueError naming the first parameter whose shape does not fit images of ``image_shape``."""
    c0, h, w = image_shape
    arrays = params.arrays()
    for name, array in zip(FusedParams.__dataclass_fields__, arrays):
        want = 4 if name.startswith("conv") and name.endswith("weight") else 2 if name.endswith("weight") else 1
        if not isinstance(array, np.ndarray) or array.ndim != want:
            raise ValueError(f"{name} must be a {want}-D numpy array, got {getattr(array, 'shape', type(array).__name__)}")
    dtype = arrays[0].dtype
    if dtype not in (np.float32, np.float64) or any(a.dtype != dtype for a in arrays):
        raise TypeError(f"parameters must all be float32 or all float64, got {[a.dtype.name for a in arrays]}")
    c1, c1_in, k1h, k1w = params.conv1_weight.shape
    c2, c2_in, k2h, k2w = params.conv2_weight.shape
    if c1_in != c0:
        raise ValueError(f"conv1 expects {c1_in} input channels, the images have {c0}")
    if c2_in != c1:
        raise ValueError(f"conv2 expects {c2_in} input channels, conv1 gives {c1}")
    h2, w2 = h - k1h - k2h + 2, w - k1w - k2w + 2
    if min(h2, w2, c1, c2, k1h, k1w, k2h, k2w) < 1:
        raise ValueError(f"the two convolutions leave no output on a {h}x{w} image "
                         f"(kernels {k1h}x{k1w} and {k2h}x{k2w}, channels {c1} and {c2})")
    hidden, features = params.fc1_weight.shape
    if features != c2 * h2 * w2:
        raise ValueError(f"fc1 expects {features} features, conv2 gives {c2}x{h2}x{w2} = {c2 * h2 * w2}")
    expected = {"conv1_bias": (c1,), "conv2_bias": (c2,), "fc1_bias": (hidden,),
                "fc2_weight": (params.fc2_weight.shape[0], hidden), "fc2_bias": (params.fc2_weight.shape[0],)}
    for name, shape in expected.items():
        if getattr(params, name).shape != shape:
            raise ValueError(f"{name} must have shape {shape}, got {getattr(params, name).shape}")


def layer_flops(params: FusedParams, image_shape) -> dict[str, int]:
    """Multiply-adds x 2 of one image's forward pass, by PHASES (the analytic count: wrap-around
    work and fc1's zero columns excluded)."""
    _, h, w = image_shape
    c1, c0, k1h, k1w = params.conv1_weight.shape
    c2, _, k2h, k2w = params.conv2_weight.shape
    h1, w1 = h - k1h + 1, w - k1w + 1
    h2, w2 = h1 - k2h + 1, w1 - k2w + 1
    return {"conv1": 2 * c1 * h1 * w1 * c0 * k1h * k1w, "conv2": 2 * c2 * h2 * w2 * c1 * k2h * k2w,
            "fc1": 2 * params.fc1_weight.size, "fc2": 2 * params.fc2_weight.size}


def flops_per_image(params: FusedParams, image_shape) -> int:
    """Multiply-adds x 2 of one image's forward pass (``layer_flops``, all layers)."""
    return sum(layer_flops(params, image_shape).values())


def kernel_arrays(params: FusedParams, image_shape) -> tuple:
    """The parameters as the kernel takes them: fc1's weight on conv2's wide layout (C2, H2, W),
    its columns for the wrap-around positions x >= W2 zero, so fc1 reads the conv2 maps where
    they are and no flatten copies them (that copy took 18% of a 3-2-21 network's time)."""
    _, h, w = image_shape
    c2, _, k2h, k2w = params.conv2_weight.shape
    h2, w2 = h - params.conv1_weight.shape[2] - k2h + 2, w - params.conv1_weight.shape[3] - k2w + 2
    hidden = params.fc1_weight.shape[0]
    wide = np.zeros((hidden, c2, h2, w), params.fc1_weight.dtype)
    wide[..., :w2] = params.fc1_weight.reshape(hidden, c2, h2, w2)
    arrays = params.arrays()
    return (*arrays[:4], wide.reshape(hidden, -1), *arrays[5:])


class Workspace:
    """Per-thread buffers for ``fused_cnn``, kept between calls: allocated for the most threads
    Numba may run, so a serial call after a parallel one (a batch's last, small chunk) reuses them."""

    def __init__(self):
        self._arrays: dict = {}
        self._last = None                   # (params, image_shape, threads, buffers) of the last get

    def get(self, params: FusedParams, image_shape, threads: int) -> tuple:
        last = self._last
        if last is not None and last[0] is params and last[1] == image_shape and last[2] == threads:
            return last[3]                  # the same call as the last one: a loop of small batches
        buffers = self._get(params, image_shape, threads)
        self._last = (params, tuple(image_shape), threads, buffers)
        return buffers

    def _get(self, params: FusedParams, image_shape, threads: int) -> tuple:
        c0, h, w = image_shape
        c1, _, k1h, _ = params.conv1_weight.shape
        c2, _, k2h, _ = params.conv2_weight.shape
        h1, h2 = h - k1h + 1, h - k1h - k2h + 2
        shapes = ((c1, h1 * w), (TILE, c2 * h2 * w), (TILE, params.fc1_weight.shape[0]))
        dtype = params.conv1_weight.dtype
        key = (shapes, dtype)
        held = self._arrays.get(key)
        if held is None or len(held[0]) < threads:
            most = max(threads, numba.config.NUMBA_NUM_THREADS)
            held = self._arrays[key] = tuple(np.empty((most, *shape), dtype) for shape in shapes)
        return tuple(array[:threads] for array in held)


def _check_images(x) -> None:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x must be a numpy array (a CPU torch tensor's .numpy()), got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"x must have shape (N, C, H, W), got {x.shape}")


def _check_dtype(x, dtype) -> None:
    if x.dtype != dtype:
        raise TypeError(f"x is {x.dtype} but the parameters are {dtype}")


def _launch(x: np.ndarray, params: FusedParams, arrays: tuple, out, workspace: Workspace,
            through: int = len(PHASES)) -> np.ndarray:
    """Check ``out`` (or allocate it) and run the kernel (through its first ``through`` PHASES)
    on x, whose shape fits ``params``."""
    dtype = params.conv1_weight.dtype
    n = x.shape[0]
    shape = (n, params.fc2_weight.shape[0])
    if out is None:
        out = np.empty(shape, dtype)
    elif out.shape != shape or out.dtype != dtype or not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError(f"out must be a writeable C-contiguous {dtype} array of shape {shape}, "
                         f"got {out.dtype} {out.shape}")
    elif np.may_share_memory(out, x):
        raise ValueError("out overlaps x; pass a separate buffer")
    if n == 0:
        return out
    serial = n < SERIAL_BELOW
    threads = 1 if serial else max(1, min(numba.get_num_threads(), (n + TILE - 1) // TILE))
    buffers = workspace.get(params, x.shape[1:], threads)
    flat = np.ascontiguousarray(x).reshape(n, x.shape[1], -1)
    _kernel(not serial, through)(flat, x.shape[2], x.shape[3], *arrays, dtype.type(0), *buffers, out)
    return out


def fused_cnn(x: np.ndarray, params: FusedParams, out: np.ndarray | None = None,
              workspace: Workspace | None = None) -> np.ndarray:
    """Logits (N, L) of images x (N, C0, H, W): relu(conv1), relu(conv2), relu(fc1), fc2.

    ``out`` (N, L), C-contiguous and writeable, receives them when given; ``workspace`` keeps
    the per-thread buffers between calls. Every call checks the parameters against the images;
    ``FusedCNN`` checks them once, for calls in a loop."""
    _check_images(x)
    check_params(params, x.shape[1:])
    _check_dtype(x, params.conv1_weight.dtype)
    return _launch(x, params, kernel_arrays(params, x.shape[1:]), out, workspace or Workspace())


class FusedCNN:
    """``fused_cnn`` bound to one network and one image shape, its parameters checked once and its
    workspace kept: what a caller that runs many small batches uses (the batch-1 path), where
    checking eight parameter arrays and finding the buffers took longer than the kernel.

        net = FusedCNN(params, (1, 28, 28))
        logits = net(x)                 # x (N, 1, 28, 28) in the parameters' dtype
    """
    serial_below = SERIAL_BELOW         # images: ``small_batch`` takes fewer

    def __init__(self, params: FusedParams, image_shape: tuple[int, int, int]):
        check_params(params, tuple(image_shape))
        self.params, self.image_shape = params, tuple(image_shape)
        self._arrays = kernel_arrays(params, self.image_shape)
        self._dtype = params.conv1_weight.dtype
        self.workspace = Workspace()
        self._serial_call = None            # (serial kernel, its arguments after the images), on first use

    def __call__(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        _check_images(x)
        if x.shape[1:] != self.image_shape:
            raise ValueError(f"x must have shape (N, {', '.join(map(str, self.image_shape))}), got {x.shape}")
        _check_dtype(x, self._dtype)
        if out is None and 0 < x.shape[0] < SERIAL_BELOW:
            return self.small_batch(x)
        return _launch(x, self.params, self._arrays, out, self.workspace)

    def small_batch(self, x: np.ndarray) -> np.ndarray:
        """Logits of 1 to ``SERIAL_BELOW`` - 1 images x whose type, shape and dtype the caller has
        checked (``__call__`` or MatmulNet.forward): the batch-1 path. The serial kernel and its
        arguments are bound once, so a call is the output's allocation and the kernel's dispatch."""
        if self._serial_call is None:
            _, h, w = self.image_shape
            buffers = self.workspace.get(self.params, self.image_shape, 1)
            self._serial_call = (_kernel(False), (h, w, *self._arrays, self._dtype.type(0), *buffers))
        kernel, arguments = self._serial_call
        n = x.shape[0]
        out = np.empty((n, self.params.fc2_weight.shape[0]), self._dtype)
        kernel(np.ascontiguousarray(x).reshape(n, x.shape[1], -1), *arguments, out)
        return out


def phase_times(params: FusedParams, x: np.ndarray, repeats: int = 5, min_sample: float = 0.02) -> dict[str, float]:
    """Seconds per call that each of PHASES adds on images x: kernels stopping after conv1, conv2,
    fc1 and fc2, timed interleaved (``runtime.interleaved_per_call``, samples of ``min_sample``
    seconds), each phase the difference of two cumulative medians (so a tiny phase may read
    slightly negative: noise)."""
    import statistics

    from sysdl_kernels.runtime import interleaved_per_call

    _check_images(x)
    check_params(params, x.shape[1:])
    _check_dtype(x, params.conv1_weight.dtype)
    arrays, space = kernel_arrays(params, x.shape[1:]), Workspace()
    out = np.empty((len(x), params.fc2_weight.shape[0]), params.conv1_weight.dtype)
    cumulative = {phase: functools.partial(_launch, x, params, arrays, out, space, through=k + 1)
                  for k, phase in enumerate(PHASES)}
    samples, _ = interleaved_per_call(cumulative, repeats, min_sample)
    medians = [statistics.median(samples[phase]) for phase in PHASES]
    return {phase: medians[k] - (medians[k - 1] if k else 0.0) for k, phase in enumerate(PHASES)}


def _main(argv=None) -> int:
    """Check a network against the reference and print where its kernel's time goes, by phase."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m sysdl_kernels.fused_cnn", description=_main.__doc__)
    parser.add_argument("--checkpoint", help="a sysdl checkpoint of a network without pooling (e.g. "
                        "runs/pruned_selected.pt; default: random weights of a 4-2-25 network)")
    parser.add_argument("--batch", type=int, default=1000, help="images per call (default 1000)")
    parser.add_argument("--peak", type=float, default=None, help="the machine's fp32 peak, GFLOP/s, for "
                        "percent of peak (default: peaks.theoretical_fma_peak of this CPU)")
    args = parser.parse_args(argv)
    if args.batch < 1:
        parser.error(f"--batch must be at least 1, got {args.batch}")
    rng = np.random.default_rng(0)
    if args.checkpoint:
        import pickle
        import sys

        from sysdl_kernels.matmul_net import MatmulNet
        try:
            net = MatmulNet.from_checkpoint(args.checkpoint)
            problem = None if net.fusable else "the network pools, and the fused kernel has no pooling"
        except (OSError, ValueError, RuntimeError, pickle.UnpicklingError) as error:
            problem = str(error).splitlines()[0] if str(error) else type(error).__name__
        if problem is not None:         # a user error: one line, exit 2
            print(f"{parser.prog}: error: --checkpoint {args.checkpoint}: {problem}; name a sysdl checkpoint "
                  f"of a network without pooling (e.g. runs/pruned_selected.pt)", file=sys.stderr)
            return 2
        params, name, image_shape = net.fused_params(), args.checkpoint, net.image_shape
    else:
        shapes = ((4, 1, 3, 3), (4,), (2, 4, 3, 3), (2,), (25, 2 * 24 * 24), (25,), (10, 25), (10,))
        params, name = FusedParams.from_arrays(*(rng.standard_normal(s) * 0.3 for s in shapes)), "random 4-2-25"
        image_shape = (1, 28, 28)
    sizes = "-".join(str(n) for n in (params.conv1_weight.shape[0], params.conv2_weight.shape[0],
                                       params.fc1_weight.shape[0]))
    images = rng.random((args.batch, *image_shape), dtype=np.float32)
    error = np.abs(fused_cnn(images, params) - fused_cnn_reference(images, params)).max()
    print(f"{name} ({sizes}), batch {args.batch}: max |fused - reference| = {error:.2e}")
    if args.peak is None:
        from sysdl_kernels import peaks
        args.peak = peaks.theoretical_fma_peak(peaks.cpu_facts()) / 1e9
    times, flops = phase_times(params, images), layer_flops(params, images.shape[1:])
    total = sum(times.values())
    print(f"{'phase':<6} {'us/call':>9} {'share':>6} {'GFLOP/s':>8} {'% peak':>7}")
    for phase, seconds in [*times.items(), ("all", total)]:
        work = args.batch * (flops[phase] if phase in flops else sum(flops.values()))
        rate = work / seconds / 1e9 if seconds > 0 else float("nan")
        print(f"{phase:<6} {seconds * 1e6:9.1f} {seconds / total:6.1%} {rate:8.1f} {rate / args.peak:7.1%}")
    print(f"(interleaved medians; % of a {args.peak:.1f} GFLOP/s peak)")
    return 0


if __name__ == "__main__":
    from sysdl_kernels.runtime import set_process_environment

    set_process_environment()
    raise SystemExit(_main())
