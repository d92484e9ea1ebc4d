"""interpolate / Upsample: loop references, gradient checks and PyTorch parity for both modes."""
import math

import numpy as np
import pytest

import cnnlab.functional as F
from cnnlab import Tensor, nn
from cnnlab.functional.upsample import output_size

from conftest import gradcheck, torch_parity

SCALES = [0.5, 0.7, 1.3, 1.5, 2, 2.5, 3, 0.33, 1.01]


def naive_nearest(x, out_h, out_w):
    """Each output pixel copies the input pixel ``floor(dst * in / out)`` (PyTorch's 'nearest')."""
    N, C, H, W = x.shape
    out = np.zeros((N, C, out_h, out_w))
    for n in range(N):
        for c in range(C):
            for i in range(out_h):
                for j in range(out_w):
                    out[n, c, i, j] = x[n, c, min(int(i * H / out_h), H - 1), min(int(j * W / out_w), W - 1)]
    return out


def naive_bilinear(x, out_h, out_w, align_corners):
    """Each output pixel blends the four input pixels around its source position."""
    N, C, H, W = x.shape

    def source(dst, n_in, n_out):
        if align_corners:
            return dst * (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
        return max((dst + 0.5) * n_in / n_out - 0.5, 0.0)

    out = np.zeros((N, C, out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            sy, sx = source(i, H, out_h), source(j, W, out_w)
            y0, x0 = min(int(sy), H - 1), min(int(sx), W - 1)
            y1, x1 = min(y0 + 1, H - 1), min(x0 + 1, W - 1)
            ly, lx = sy - y0, sx - x0
            out[:, :, i, j] = ((1 - ly) * ((1 - lx) * x[:, :, y0, x0] + lx * x[:, :, y0, x1])
                               + ly * ((1 - lx) * x[:, :, y1, x0] + lx * x[:, :, y1, x1]))
    return out


def test_nearest_doubling_repeats_each_pixel():
    x = np.arange(4.0).reshape(1, 1, 2, 2)
    out = F.interpolate(x, scale_factor=2).numpy()
    np.testing.assert_array_equal(out[0, 0], [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])


@pytest.mark.parametrize("in_hw,out_hw", [((3, 4), (7, 5)), ((5, 5), (2, 3)), ((1, 6), (4, 4)), ((4, 3), (4, 9))])
def test_nearest_and_bilinear_match_loop_references(in_hw, out_hw):
    x = np.random.default_rng(0).standard_normal((2, 3) + in_hw)
    np.testing.assert_allclose(F.interpolate(x, size=out_hw).numpy(), naive_nearest(x, *out_hw))
    for align in (False, True):
        np.testing.assert_allclose(F.interpolate(x, size=out_hw, mode="bilinear", align_corners=align).numpy(),
                                   naive_bilinear(x, *out_hw, align), atol=1e-12)


@pytest.mark.parametrize("mode,align", [("nearest", None), ("nearest-exact", None), ("bilinear", False),
                                        ("bilinear", True)])
@pytest.mark.parametrize("resize", [dict(size=(5, 7)), dict(scale_factor=(1.5, 0.7)), dict(scale_factor=2)])
def test_interpolate_gradcheck(mode, align, resize):
    x = np.random.default_rng(1).standard_normal((2, 2, 4, 5))
    gradcheck(lambda t: F.interpolate(t, mode=mode, align_corners=align, **resize), [x])


def _random_resize(rng):
    if rng.random() < 0.5:
        return dict(size=tuple(int(v) for v in rng.integers(1, 15, 2)))
    factors = [float(rng.choice(SCALES)) for _ in range(2)]
    resize = dict(scale_factor=tuple(factors) if rng.random() < 0.5 else factors[0])
    if rng.random() < 0.3:
        resize["recompute_scale_factor"] = True
    return resize


@pytest.mark.parametrize("mode,align", [("nearest", None), ("nearest-exact", None), ("bilinear", None),
                                        ("bilinear", False), ("bilinear", True)])
def test_interpolate_matches_torch_random_sizes_and_scales(torch, mode, align):
    rng = np.random.default_rng(2)
    checked = 0
    for seed in range(60):
        x = rng.standard_normal((int(rng.integers(1, 3)), int(rng.integers(1, 4)),
                                 int(rng.integers(1, 9)), int(rng.integers(1, 9))))
        resize = _random_resize(rng)
        try:
            output_size(x.shape, **resize)
        except ValueError:
            continue
        torch_parity(torch, lambda t: F.interpolate(t, mode=mode, align_corners=align, **resize),
                     lambda t: torch.nn.functional.interpolate(t, mode=mode, align_corners=align, **resize),
                     [x], seed=seed)
        checked += 1
    assert checked > 40


def test_interpolate_float32_nearest_indices_match_torch(torch):
    """PyTorch computes nearest source indices in float32; sizes where that matters agree too."""
    for h, out in [(3, 7), (7, 3), (5, 13), (13, 29), (10, 3), (6, 4)]:
        x = np.arange(float(h)).reshape(1, 1, h, 1).astype(np.float32)
        ours = F.interpolate(x, size=(out, 1)).numpy()
        theirs = torch.nn.functional.interpolate(torch.tensor(x), size=(out, 1)).numpy()
        np.testing.assert_array_equal(ours, theirs)


def test_upsample_layer_matches_torch_and_reports_its_shape(torch):
    x = np.random.default_rng(3).standard_normal((2, 3, 5, 6))
    for kwargs in (dict(scale_factor=2), dict(size=(7, 3), mode="bilinear"),
                   dict(scale_factor=(1.5, 2.0), mode="bilinear", align_corners=True), dict(size=4)):
        ours, theirs = nn.Upsample(**kwargs), torch.nn.Upsample(**kwargs)
        out = ours(Tensor(x))
        np.testing.assert_allclose(out.numpy(), theirs(torch.tensor(x)).numpy(), atol=1e-12)
        assert ours.output_shape(x.shape) == out.shape
        assert repr(ours) == repr(theirs)


def test_upsampling_nearest_and_bilinear_layers_match_torch(torch):
    x = np.random.default_rng(4).standard_normal((1, 2, 3, 4))
    for name, kwargs in (("UpsamplingNearest2d", dict(scale_factor=2)), ("UpsamplingBilinear2d", dict(size=(5, 7)))):
        ours, theirs = getattr(nn, name)(**kwargs), getattr(torch.nn, name)(**kwargs)
        torch_parity(torch, ours, theirs, [x])
        assert repr(ours) == repr(theirs) and ours.output_shape(x.shape) == ours(x).shape


def test_output_size_is_floor_of_size_times_scale():
    x = np.zeros((1, 1, 7, 5))
    assert F.interpolate(x, scale_factor=1.5).shape == (1, 1, math.floor(7 * 1.5), math.floor(5 * 1.5))
    assert nn.Upsample(scale_factor=(0.5, 3)).output_shape((4, 2, 7, 5)) == (4, 2, 3, 15)


def test_interpolate_errors_are_pytorchs():
    x = np.zeros((1, 1, 4, 4))
    with pytest.raises(ValueError, match=r"only one of size or scale_factor should be defined"):
        F.interpolate(x, size=2, scale_factor=2)
    with pytest.raises(ValueError, match=r"either size or scale_factor should be defined"):
        F.interpolate(x)
    with pytest.raises(ValueError, match=r"align_corners option can only be set with the interpolating modes"):
        F.interpolate(x, scale_factor=2, align_corners=True)
    with pytest.raises(ValueError, match=r"mode must be one of \('nearest', 'nearest-exact', 'bilinear'\), "
                                         r"got 'bicubic'"):
        nn.Upsample(scale_factor=2, mode="bicubic")
    with pytest.raises(ValueError, match=r"`scale_factor` must be a positive number or a pair of them, got -1"):
        nn.Upsample(scale_factor=-1)
    with pytest.raises(ValueError, match=r"`size` must be a positive int or a pair of positive ints"):
        F.interpolate(x, size=(2, 0))
    with pytest.raises(ValueError, match=r"turns input of size \(4, 4\) into an empty output \(0, 0\)"):
        F.interpolate(x, scale_factor=0.2)
    with pytest.raises(ValueError, match=r"expected a 4-D input \(N, C, H, W\), got shape \(4, 4\)"):
        F.interpolate(x[0, 0], scale_factor=2)


def test_an_axis_whose_size_stays_follows_torch_per_mode(torch):
    """With scale 1.3 a 3-pixel axis stays 3 pixels: 'nearest' and 'bilinear' copy it, as PyTorch
    does, while 'nearest-exact' still reads floor((dst + 0.5) / 1.3) = [0, 1, 1]."""
    x = np.arange(3.0).reshape(1, 1, 3, 1)
    for mode, expected in (("nearest", [0, 1, 2]), ("bilinear", [0, 1, 2]), ("nearest-exact", [0, 1, 1])):
        ours = F.interpolate(x, scale_factor=(1.3, 1.0), mode=mode).numpy().ravel()
        theirs = torch.nn.functional.interpolate(torch.tensor(x), scale_factor=(1.3, 1.0), mode=mode)
        np.testing.assert_array_equal(ours, expected)
        np.testing.assert_array_equal(ours, theirs.numpy().ravel())
