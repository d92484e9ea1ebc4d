"""Hand-made kernels: values, symmetries, sums, argument checks, and what they respond to."""
import math

import numpy as np
import pytest

from cnnlab import filters


def naive_correlate(image, kernel):
    """Plain-loop 'valid' cross-correlation (no flip), the deep-learning convolution."""
    H, W = image.shape
    kh, kw = kernel.shape
    out = np.zeros((H - kh + 1, W - kw + 1))
    for r in range(out.shape[0]):
        for c in range(out.shape[1]):
            total = 0.0
            for i in range(kh):
                for j in range(kw):
                    total += image[r + i, c + j] * kernel[i, j]
            out[r, c] = total
    return out


def test_sobel_values():
    np.testing.assert_array_equal(filters.sobel_x(), [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    np.testing.assert_array_equal(filters.sobel_y(), [[-1, -2, -1], [0, 0, 0], [1, 2, 1]])
    for k in (filters.sobel_x(), filters.sobel_y()):
        assert k.dtype == np.float32 and k.shape == (3, 3) and k.sum() == 0


def test_gaussian_sums_to_one_and_is_symmetric():
    for size, sigma in ((3, 0.5), (5, 1.0), (7, 2.5)):
        k = filters.gaussian(size, sigma)
        assert k.shape == (size, size) and k.dtype == np.float32
        assert abs(float(k.sum(dtype=np.float64)) - 1.0) < 1e-6
        np.testing.assert_allclose(k, k.T, rtol=0, atol=1e-7)
        np.testing.assert_allclose(k, k[::-1], rtol=0, atol=1e-7)
        np.testing.assert_allclose(k, k[:, ::-1], rtol=0, atol=1e-7)
        assert k.argmax() == (size * size) // 2  # peak at the centre


def test_gaussian_matches_formula():
    k = filters.gaussian(3, 1.0)
    raw = np.array([[math.exp(-(x * x + y * y) / 2.0) for x in (-1, 0, 1)] for y in (-1, 0, 1)])
    np.testing.assert_allclose(k, raw / raw.sum(), rtol=1e-6)


def test_gabor_formula_and_orientation():
    k = filters.gabor(size=7, sigma=2.0, theta=0.0, wavelength=4.0, gamma=0.5)
    assert k.shape == (7, 7) and k.dtype == np.float32
    assert k[3, 3] == pytest.approx(1.0)
    # a point of the formula, written out: x=2 (column 5), y=-1 (row 2)
    expected = math.exp(-(2 ** 2 + 0.25 * 1) / 8.0) * math.cos(2 * math.pi * 2 / 4.0)
    assert k[2, 5] == pytest.approx(expected, abs=1e-6)
    # theta = 0: vertical stripes (constant cosine along a column, up to the window)
    k90 = filters.gabor(size=7, sigma=2.0, theta=math.pi / 2, wavelength=4.0, gamma=0.5)
    np.testing.assert_allclose(k90, k.T, atol=1e-6)
    # phase pi/2 makes an odd kernel
    odd = filters.gabor(size=7, phase=math.pi / 2)
    np.testing.assert_allclose(odd, -odd[:, ::-1], atol=1e-6)


def test_laplacian_sharpen_blur_sums():
    np.testing.assert_array_equal(filters.laplacian(), [[0, 1, 0], [1, -4, 1], [0, 1, 0]])
    np.testing.assert_array_equal(filters.laplacian(diagonal=True), [[1, 1, 1], [1, -8, 1], [1, 1, 1]])
    assert filters.laplacian().sum() == 0 and filters.laplacian(True).sum() == 0
    np.testing.assert_array_equal(filters.sharpen(), [[0, -1, 0], [-1, 5, -1], [0, -1, 0]])
    assert filters.sharpen().sum() == 1
    identity = np.zeros((3, 3), np.float32)
    identity[1, 1] = 1
    np.testing.assert_array_equal(filters.sharpen(), identity - filters.laplacian())
    b = filters.box_blur(5)
    assert b.shape == (5, 5) and np.allclose(b, 1 / 25) and abs(b.sum() - 1) < 1e-6


def test_sobel_x_responds_on_vertical_step_edge_only():
    image = np.zeros((6, 8))
    image[:, 4:] = 1.0  # dark left half, bright right half: a vertical edge between columns 3 and 4
    response = naive_correlate(image, filters.sobel_x().astype(np.float64))
    # output column c covers input columns c..c+2: the edge is inside for c = 2 and c = 3
    assert np.all(response[:, [2, 3]] == 4.0)
    assert np.all(response[:, [0, 1, 4, 5]] == 0.0)
    # sobel_y sees no horizontal edge there
    assert np.all(naive_correlate(image, filters.sobel_y().astype(np.float64)) == 0.0)
    # and flipped brightness flips the sign
    assert np.all(naive_correlate(1.0 - image, filters.sobel_x().astype(np.float64))[:, 2:4] == -4.0)


def test_blur_keeps_flat_regions():
    flat = np.full((7, 7), 3.0)
    for k in (filters.box_blur(3), filters.gaussian(5, 1.2), filters.sharpen()):
        np.testing.assert_allclose(naive_correlate(flat, k.astype(np.float64)), 3.0, rtol=1e-6)


def test_as_weight():
    w = filters.as_weight(filters.sobel_x(), in_channels=3)
    assert w.shape == (1, 3, 3, 3) and w.dtype == np.float32
    for c in range(3):
        np.testing.assert_array_equal(w[0, c], filters.sobel_x())
    avg = filters.as_weight(filters.box_blur(3), in_channels=3, average=True)
    assert abs(avg.sum() - 1) < 1e-6
    assert filters.as_weight(filters.sharpen()).shape == (1, 1, 3, 3)
    with pytest.raises(ValueError, match=r"2-D array \(kh, kw\), got shape \(1, 3, 3\)"):
        filters.as_weight(np.zeros((1, 3, 3)))
    with pytest.raises(ValueError, match="`in_channels` must be a positive int, got 0"):
        filters.as_weight(filters.sobel_x(), in_channels=0)


def test_get_and_names():
    assert filters.NAMES == ("sobel-x", "sobel-y", "gaussian", "gabor", "laplacian", "sharpen", "blur")
    np.testing.assert_array_equal(filters.get("sobel-x"), filters.sobel_x())
    np.testing.assert_array_equal(filters.get("SOBEL_Y"), filters.sobel_y())
    np.testing.assert_array_equal(filters.get("blur", size=5), filters.box_blur(5))
    np.testing.assert_array_equal(filters.get("gaussian", size=3, sigma=2.0), filters.gaussian(3, 2.0))
    np.testing.assert_array_equal(filters.get("laplacian", diagonal=True), filters.laplacian(True))
    for name in filters.NAMES:
        k = filters.get(name)
        assert k.ndim == 2 and k.dtype == np.float32
    with pytest.raises(ValueError, match=r"unknown filter 'emboss'; valid names: sobel-x, sobel-y, "
                                         r"gaussian, gabor, laplacian, sharpen, blur"):
        filters.get("emboss")
    with pytest.raises(TypeError, match=r"filter 'sharpen' got unexpected argument\(s\) size; "
                                        r"it accepts: no arguments"):
        filters.get("sharpen", size=5)
    with pytest.raises(TypeError, match=r"it accepts: size, sigma"):
        filters.get("gaussian", theta=1.0)


@pytest.mark.parametrize("call, exc, message", [
    (lambda: filters.gaussian(4), ValueError, r"`size` must be an odd positive int .* got 4"),
    (lambda: filters.gaussian(0), ValueError, r"`size` must be an odd positive int .* got 0"),
    (lambda: filters.box_blur(-3), ValueError, r"`size` must be an odd positive int .* got -3"),
    (lambda: filters.gaussian(3.0), TypeError, r"`size` must be an odd positive int, got 3.0 of type float"),
    (lambda: filters.gaussian(5, sigma=0), ValueError, r"`sigma` must be > 0, got 0.0"),
    (lambda: filters.gaussian(5, sigma=-1.5), ValueError, r"`sigma` must be > 0, got -1.5"),
    (lambda: filters.gabor(sigma=float("nan")), ValueError, r"`sigma` must be finite, got nan"),
    (lambda: filters.gabor(wavelength=0), ValueError, r"`wavelength` must be > 0, got 0.0"),
    (lambda: filters.gabor(gamma=-1), ValueError, r"`gamma` must be > 0, got -1.0"),
    (lambda: filters.gabor(theta="up"), TypeError, r"`theta` must be a real number, got 'up' of type str"),
    (lambda: filters.laplacian(diagonal=1), TypeError, r"`diagonal` must be a bool, got 1"),
])
def test_argument_errors(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


def test_torch_parity_every_kernel():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    image = rng.random((23, 25))
    for name in filters.NAMES:
        k = filters.get(name).astype(np.float64)
        ref = torch.nn.functional.conv2d(torch.from_numpy(image)[None, None],
                                         torch.from_numpy(k)[None, None]).numpy()[0, 0]
        np.testing.assert_allclose(naive_correlate(image, k), ref, atol=1e-10)
