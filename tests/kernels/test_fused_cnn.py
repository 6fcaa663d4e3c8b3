"""sysdl_kernels.fused_cnn against PyTorch (conv2d, relu, linear in float64) as the oracle: random
awkward networks and images (both dtypes, the 3x3 fast path and the general taps, non-square
images, every remainder of the 4-image tile, batches on both sides of the serial threshold),
awkward input layouts, IEEE specials, reused buffers, and bad input named."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from sysdl_kernels import fused_cnn as fc
from tests.oracle import assert_close

# float64 compiles its own kernels (~40 s): the default run takes float32, the slow run both
DTYPES = [pytest.param(np.float64, marks=pytest.mark.slow), np.float32]


def oracle(x, params: fc.FusedParams) -> np.ndarray:
    t = [torch.from_numpy(np.asarray(a, dtype=np.float64)) for a in (x, *params.arrays())]
    x, w1, b1, w2, b2, fw1, fb1, fw2, fb2 = t
    a = F.conv2d(F.conv2d(x, w1, b1).relu(), w2, b2).relu()
    return F.linear(F.linear(a.flatten(1), fw1, fb1).relu(), fw2, fb2).numpy()


def random_params(rng, c0, c1, k1, c2, k2, hidden, classes, h, w, dtype) -> fc.FusedParams:
    h2, w2 = h - k1[0] - k2[0] + 2, w - k1[1] - k2[1] + 2
    shapes = ((c1, c0, *k1), (c1,), (c2, c1, *k2), (c2,), (hidden, c2 * h2 * w2), (hidden,), (classes, hidden),
              (classes,))
    return fc.FusedParams.from_arrays(*(rng.standard_normal(s) * 0.5 for s in shapes), dtype=dtype)


@st.composite
def networks(draw):
    k1 = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    k2 = (3, 3) if draw(st.booleans()) else (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    h, w = draw(st.integers(k1[0] + k2[0] - 1, 13)), draw(st.integers(k1[1] + k2[1] - 1, 13))
    sizes = dict(c0=draw(st.integers(1, 3)), c1=draw(st.integers(1, 5)), c2=draw(st.integers(1, 5)),
                 hidden=draw(st.integers(1, 9)), classes=draw(st.integers(1, 11)))
    n = draw(st.sampled_from([1, 2, 3, 4, 5, 7, 15, 16, 17, 23, 41]))
    return n, sizes, k1, k2, h, w, draw(st.integers(0, 2**16))


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=40, deadline=None)
@given(case=networks())
def test_matches_torch(dtype, case):
    n, sizes, k1, k2, h, w, seed = case
    rng = np.random.default_rng(seed)
    params = random_params(rng, k1=k1, k2=k2, h=h, w=w, dtype=dtype, **sizes)
    x = rng.standard_normal((n, sizes["c0"], h, w)).astype(dtype)
    before = x.copy()
    assert_close(fc.fused_cnn(x, params), oracle(x, params), dtype)
    assert_close(fc.fused_cnn_reference(x, params), oracle(x, params), dtype)
    assert np.array_equal(x, before)


@pytest.mark.parametrize("layout", ["channels-last", "transposed", "sliced", "expanded"])
def test_awkward_layouts(layout):
    """Fashion-MNIST-sized images in 2 channels (so channels-last is not contiguous), a tile
    remainder and the parallel path, inputs that are views."""
    rng = np.random.default_rng(1)
    params = random_params(rng, 2, 4, (3, 3), 2, (3, 3), 25, 10, 28, 28, np.float32)
    base = rng.standard_normal((37, 2, 28, 28)).astype(np.float32)
    x = {"channels-last": np.ascontiguousarray(base.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2),
         "transposed": np.ascontiguousarray(base.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2),
         "sliced": np.pad(base, ((0, 0), (0, 0), (2, 1), (3, 0)))[:, :, 2:-1, 3:],
         "expanded": np.broadcast_to(base[:1], base.shape)}[layout]
    assert not x.flags.c_contiguous
    assert_close(fc.fused_cnn(x, params), oracle(np.ascontiguousarray(x), params), np.float32)


def test_ieee_specials_follow_torch():
    """NaN and +-inf pixels (and a NaN weight) give what torch gives, including the images beside
    them in the same 4-image tile; the wrap-around columns never leak a special."""
    rng = np.random.default_rng(2)
    params = random_params(rng, 1, 3, (3, 3), 2, (3, 3), 7, 5, 11, 9, np.float32)
    x = rng.standard_normal((9, 1, 11, 9)).astype(np.float32)
    x[0, 0, 4, 4], x[1, 0, 0, 8], x[2, 0, 10, 0], x[5, 0, 3, 8] = np.nan, np.inf, -np.inf, np.inf
    got, want = fc.fused_cnn(x, params), oracle(x, params)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert_close(np.nan_to_num(got, nan=0.0), np.nan_to_num(want, nan=0.0), np.float32)
    assert np.isfinite(got[[3, 4, 6, 7, 8]]).all()
    bad = fc.FusedParams(*(a.copy() for a in params.arrays()))
    bad.conv2_weight[1, 0, 0, 0] = np.nan
    np.testing.assert_array_equal(np.isnan(fc.fused_cnn(x[3:5], bad)), np.isnan(oracle(x[3:5], bad)))


def test_buffers_are_filled_in_place_and_reused():
    rng = np.random.default_rng(3)
    params = random_params(rng, 1, 2, (3, 3), 3, (2, 2), 6, 4, 10, 12, np.float32)
    x = rng.standard_normal((30, 1, 10, 12)).astype(np.float32)
    out, space = np.full((30, 4), np.nan, np.float32), fc.Workspace()
    assert fc.fused_cnn(x, params, out=out, workspace=space) is out
    assert_close(out, oracle(x, params), np.float32)
    held = [a.ctypes.data for a in space.get(params, x.shape[1:], 2)]
    fc.fused_cnn(x, params, out=out, workspace=space)
    assert held == [a.ctypes.data for a in space.get(params, x.shape[1:], 2)]
    assert fc.fused_cnn(x[:0], params).shape == (0, 4)


def test_bound_network_checks_once_and_computes_the_same_on_any_batch():
    """FusedCNN (the batch-1 path) gives the oracle's logits, one image at a time or all at once; its
    workspace's buffers for the last call's shape are found again without a new allocation, and a
    second network sharing a workspace gets buffers of its own shapes."""
    rng = np.random.default_rng(6)
    params = random_params(rng, 1, 2, (3, 3), 3, (3, 3), 6, 4, 10, 12, np.float32)
    x = rng.standard_normal((20, 1, 10, 12)).astype(np.float32)
    net = fc.FusedCNN(params, (1, 10, 12))
    want = oracle(x, params)
    assert_close(np.concatenate([net(x[i:i + 1]) for i in range(len(x))]), want, np.float32)
    np.testing.assert_array_equal(net(x), fc.fused_cnn(x, params))      # the same build: the same sums
    assert net(x[:1]).shape == (1, 4) and net(x[:0]).shape == (0, 4)
    first = [a.ctypes.data for a in net.workspace.get(params, (1, 10, 12), 1)]
    assert first == [a.ctypes.data for a in net.workspace.get(params, (1, 10, 12), 1)]
    other = random_params(rng, 1, 3, (3, 3), 2, (3, 3), 5, 4, 10, 12, np.float32)
    buffers = net.workspace.get(other, (1, 10, 12), 1)
    # conv1's maps, the tile's conv2 maps on the wide layout (fc1's rows), the tile's hidden units
    assert [b.shape[1:] for b in buffers] == [(3, 8 * 12), (4, 2 * 6 * 12), (4, 5)]
    assert_close(fc.fused_cnn(x, other, workspace=net.workspace), oracle(x, other), np.float32)
    for n in (3, 7, fc.SERIAL_BELOW - 1):       # small batches, after another network used the workspace
        assert_close(net(x[:n]), want[:n], np.float32)
    strided = np.ascontiguousarray(x.swapaxes(2, 3)).swapaxes(2, 3)[:5]
    assert not strided.flags.c_contiguous
    assert_close(net(strided), want[:5], np.float32)
    assert_close(net.small_batch(x[:2]), want[:2], np.float32)


def test_flops_per_image_counts_the_layers():
    rng = np.random.default_rng(4)
    params = random_params(rng, 1, 4, (3, 3), 2, (3, 3), 25, 10, 28, 28, np.float32)
    assert fc.layer_flops(params, (1, 28, 28)) == {"conv1": 2 * 4 * 26 * 26 * 9, "conv2": 2 * 2 * 24 * 24 * 4 * 9,
                                                   "fc1": 2 * 25 * 1152, "fc2": 2 * 10 * 25}
    assert fc.flops_per_image(params, (1, 28, 28)) == 2 * (4 * 26 * 26 * 9 + 2 * 24 * 24 * 4 * 9 + 25 * 1152 + 10 * 25)


def test_kernel_stopped_after_a_phase_computes_that_phase():
    """The profile's kernels (``through`` < 4) compute their first phases as the full one does:
    through 3, the tile's hidden units in the workspace are the full kernel's; through 1 nothing
    past conv1 is written (out keeps its fill)."""
    rng = np.random.default_rng(8)
    params = random_params(rng, 1, 3, (3, 3), 2, (3, 3), 6, 4, 12, 11, np.float32)
    x = rng.standard_normal((3, 1, 12, 11)).astype(np.float32)
    arrays = fc.kernel_arrays(params, x.shape[1:])
    full, part = fc.Workspace(), fc.Workspace()
    want = fc._launch(x, params, arrays, None, full)
    fc._launch(x, params, arrays, None, part, through=3)
    hidden = [b for b in full.get(params, x.shape[1:], 1)][-1]
    np.testing.assert_array_equal(part.get(params, x.shape[1:], 1)[-1][0, :3], hidden[0, :3])
    assert_close(want, oracle(x, params), np.float32)
    untouched = np.full((3, 4), 7.0, np.float32)
    fc._launch(x, params, arrays, untouched, part, through=1)
    assert (untouched == 7.0).all()
    with pytest.raises(ValueError, match="through must be 1..4"):
        fc._kernel(False, 5)


def test_phase_profile_prints_every_phase(capsys, tmp_path, trained_small_checkpoint):
    """`python -m sysdl_kernels.fused_cnn`: checked against the reference, then each phase's time
    (positive in total), its share and rate, on random weights and on a trained checkpoint; a
    checkpoint that is not one is a usage error."""
    assert fc._main(["--batch", "3", "--peak", "100"]) == 0         # serial: the builds the test above made
    lines = capsys.readouterr().out.splitlines()
    error = float(lines[0].rsplit("= ", 1)[1])
    assert error < 1e-4
    rows = {line.split()[0]: line.split() for line in lines[2:-1]}
    assert list(rows) == [*fc.PHASES, "all"]
    assert float(rows["all"][1]) > 0 and rows["all"][2] == "100.0%"
    assert fc._main(["--checkpoint", str(trained_small_checkpoint), "--batch", "3", "--peak", "100"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert "(3-4-20), batch 3" in first and float(first.rsplit("= ", 1)[1]) < 1e-4
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    for path in ("/nonexistent.pt", str(garbage)):
        assert fc._main(["--checkpoint", path]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("python -m sysdl_kernels.fused_cnn: error: --checkpoint") and "\n" not in err, err


def _params(**change):
    rng = np.random.default_rng(5)
    arrays = dict(zip(fc.FusedParams.__dataclass_fields__,
                      random_params(rng, 1, 2, (3, 3), 2, (3, 3), 5, 3, 8, 8, np.float32).arrays()))
    return fc.FusedParams(**{**arrays, **change})


@pytest.mark.parametrize("call, error, match", [
    (lambda: fc.fused_cnn(np.ones((2, 2, 8, 8), np.float32), _params()), ValueError, "conv1 expects 1 input channels"),
    (lambda: fc.fused_cnn(np.ones((2, 1, 9, 8), np.float32), _params()), ValueError, "fc1 expects 32 features"),
    (lambda: fc.fused_cnn(np.ones((2, 1, 4, 4), np.float32), _params()), ValueError, "leave no output"),
    (lambda: fc.fused_cnn(np.ones((2, 1, 8, 8)), _params()), TypeError, "x is float64"),
    (lambda: fc.fused_cnn(np.ones((1, 8, 8), np.float32), _params()), ValueError, r"\(N, C, H, W\)"),
    (lambda: fc.fused_cnn(torch.ones(2, 1, 8, 8), _params()), TypeError, r"\.numpy\(\)"),
    (lambda: fc.fused_cnn(np.ones((2, 1, 8, 8), np.float32), _params(fc1_bias=np.ones(4, np.float32))),
     ValueError, r"fc1_bias must have shape \(5,\)"),
    (lambda: fc.fused_cnn(np.ones((2, 1, 8, 8), np.float32), _params(fc2_bias=np.ones(3))), TypeError, "all be float32 or all float64"),
    (lambda: fc.fused_cnn(np.ones((2, 1, 8, 8), np.float32), _params(), out=np.ones((2, 4), np.float32)),
     ValueError, "out must be"),
    (lambda: fc.FusedCNN(_params(), (1, 8, 8))(np.ones((2, 1, 9, 8), np.float32)), ValueError, r"\(N, 1, 8, 8\)"),
    (lambda: fc.FusedCNN(_params(), (1, 8, 8))(np.ones((2, 1, 8, 8))), TypeError, "x is float64"),
    (lambda: fc.FusedCNN(_params(), (1, 9, 8)), ValueError, "fc1 expects 32 features"),
])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()
