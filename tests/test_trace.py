"""Arithmetic traces: the seed articles' worked examples, exactly, plus independent references.

Feature maps are checked against plain loops written here, against the engine
(``cnnlab.functional``) when its ops are available, and against PyTorch when
it is installed.
"""
import math

import numpy as np
import pytest

from cnnlab.explain import trace as T
from cnnlab.explain.trace import (fmt, parse_matrix, parse_vector, parse_array, trace_conv2d, trace_pool2d,
                                  trace_activation, trace_dense, trace_softmax, trace_sigmoid)

ARTICLE_IMAGE = [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
ARTICLE_KERNEL = [[0, 1], [2, 3]]


# --------------------------------------------------------------------------- references
def naive_conv(image, kernel, stride=(1, 1), pads=((0, 0), (0, 0)), bias=0.0):
    """Plain loops: zero-pad, slide, multiply and add over every channel."""
    image = np.asarray(image, float)
    kernel = np.asarray(kernel, float)
    if image.ndim == 2:
        image = image[None]
    if kernel.ndim == 2:
        kernel = np.stack([kernel] * image.shape[0])
    C, H, W = image.shape
    (t, b), (l, r) = pads
    padded = np.zeros((C, H + t + b, W + l + r))
    for c in range(C):
        for y in range(H):
            for x in range(W):
                padded[c, y + t, x + l] = image[c, y, x]
    kh, kw = kernel.shape[1:]
    oh = (padded.shape[1] - kh) // stride[0] + 1
    ow = (padded.shape[2] - kw) // stride[1] + 1
    out = np.zeros((oh, ow))
    for y in range(oh):
        for x in range(ow):
            total = bias
            for c in range(C):
                for i in range(kh):
                    for j in range(kw):
                        total += padded[c, y * stride[0] + i, x * stride[1] + j] * kernel[c, i, j]
            out[y, x] = total
    return out


def naive_pool(image, k, s, p, mode, count_include_pad=True):
    image = np.asarray(image, float)
    squeeze = image.ndim == 2
    if squeeze:
        image = image[None]
    C, H, W = image.shape
    oh = (H + 2 * p - k) // s + 1
    ow = (W + 2 * p - k) // s + 1
    out = np.zeros((C, oh, ow))
    for c in range(C):
        for y in range(oh):
            for x in range(ow):
                vals = []
                for i in range(k):
                    for j in range(k):
                        yy, xx = y * s + i - p, x * s + j - p
                        if 0 <= yy < H and 0 <= xx < W:
                            vals.append(image[c, yy, xx])
                        elif mode == "avg" and count_include_pad:
                            vals.append(0.0)
                out[c, y, x] = {"max": max, "min": min}[mode](vals) if mode != "avg" else sum(vals) / len(vals)
    return out[0] if squeeze else out


def engine_op(name):
    """The engine's op, or skip (it may not be written yet in a fresh checkout)."""
    try:
        import cnnlab.functional as F
    except ImportError as err:  # pragma: no cover - depends on the engine's progress
        pytest.skip(f"cnnlab.functional does not import yet: {err}")
    fn = getattr(F, name, None)
    if fn is None:  # pragma: no cover
        pytest.skip(f"cnnlab.functional.{name} does not exist yet")
    return fn


def engine_call(fn, *args, **kwargs):
    try:
        out = fn(*args, **kwargs)
    except NotImplementedError:  # pragma: no cover - placeholder ops
        pytest.skip(f"{fn.__name__} is still a placeholder")
    return np.asarray(getattr(out, "data", out))


# --------------------------------------------------------------------------- numbers and parsing
@pytest.mark.parametrize("value, text", [
    (19.0, "19"), (-39.5, "-39.5"), (2.75, "2.75"), (155 * 0.27 + 60 * 0.2, "53.85"), (0.0, "0"),
    (-0.0, "0"), (12.182493960703473, "12.1825"), (0.6262351911779788, "0.6262"),
    (0.06278561616603309, "0.06279"), (1 / 3, "0.3333"), (3e-7, "3e-07"), (0.1 + 0.2, "0.3"),
    (0.99999, "1"), (float("inf"), "inf"), (2.0e13, "2e+13"),
])
def test_fmt(value, text):
    assert fmt(value) == text


def test_parse_matrix():
    m = parse_matrix("0 1 2; 3 4 5; 6 7 8")
    assert m.dtype == np.float64 and m.shape == (3, 3)
    np.testing.assert_array_equal(m, ARTICLE_IMAGE)
    np.testing.assert_array_equal(parse_matrix("1,2 ; -3.5, 4;"), [[1, 2], [-3.5, 4]])
    np.testing.assert_array_equal(parse_matrix("1 2\n3 4"), [[1, 2], [3, 4]])
    np.testing.assert_array_equal(parse_vector("2.5, 1.8 0.2"), [2.5, 1.8, 0.2])
    a = parse_array("1 2; 3 4 | 5 6; 7 8")
    assert a.shape == (2, 2, 2) and a[1, 1, 0] == 7


@pytest.mark.parametrize("text, message", [
    ("0 1 2; 3 4; 6 7 8", r"row 2 has 2 value\(s\) but row 1 has 3: '3 4'"),
    ("0 1; 2 x", r"row 2: 'x' is not a number \(in '2 x'\)"),
    ("1 2; ; 3 4", r"row 2 is empty"),
    ("", r"row 1 is empty"),
    ("1 nan", r"row 1: 'nan' is not a finite number"),
])
def test_parse_matrix_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_matrix(text)


def test_parse_array_and_vector_errors():
    with pytest.raises(ValueError, match=r"channel 1 has shape \(1, 2\) but channel 0 has shape \(2, 2\)"):
        parse_array("1 2; 3 4 | 5 6")
    with pytest.raises(ValueError, match=r"channel 1: row 1: 'y' is not a number"):
        parse_array("1 2 | y 6")
    with pytest.raises(ValueError, match="expected at least one number"):
        parse_vector("  ")
    with pytest.raises(TypeError, match="expected a string"):
        parse_matrix([[1, 2]])


def test_format_matrix_aligns_columns():
    assert T.format_matrix([[1, -10], [100, 2.5]], indent="") == "  1  -10\n100  2.5"
    assert T.format_matrix([[1, 2]], mask=[[True, False]]) == "  pad  2"


# --------------------------------------------------------------------------- convolution
def test_conv_article_example_exact():
    t = trace_conv2d(parse_matrix("0 1 2; 3 4 5; 6 7 8"), parse_matrix("0 1; 2 3"))
    np.testing.assert_array_equal(t.output, [[19, 25], [37, 43]])
    assert [s.text for s in t.steps] == [
        "(0x0) + (1x1) + (3x2) + (4x3) = 19",
        "(1x0) + (2x1) + (4x2) + (5x3) = 25",
        "(3x0) + (4x1) + (6x2) + (7x3) = 37",
        "(4x0) + (5x1) + (7x2) + (8x3) = 43",
    ]
    assert [s.position for s in t.steps] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert [s.value for s in t.steps] == [19, 25, 37, 43]
    np.testing.assert_array_equal(t.steps[3].window, [[4, 5], [7, 8]])
    np.testing.assert_array_equal(t.steps[3].products, [[0, 5], [14, 24]])
    assert t.sizes[0].formula == "(3 + 2*0 - 2) / 1 + 1 = 2"
    assert t.sizes[1].formula == "(3 + 2*0 - 2) / 1 + 1 = 2"
    assert t.warnings == [] and not t.truncated and t.total_positions == 4
    text = T.format_conv_trace(t)
    for line in ("height: (3 + 2*0 - 2) / 1 + 1 = 2", "(0x0) + (1x1) + (3x2) + (4x3) = 19",
                 "out[1, 1]: window rows 1-2, columns 1-2", "19  25", "37  43", "not flipped"):
        assert line in text


def test_conv_output_size_4x4_with_3x3_is_2x2():
    t = trace_conv2d(np.arange(16.0).reshape(4, 4), np.ones((3, 3)))
    assert t.output.shape == (2, 2)
    assert t.sizes[1].formula == "(4 + 2*0 - 3) / 1 + 1 = 2"
    t = trace_conv2d(np.ones((28, 28)), np.ones((5, 5)), padding=2, positions=(0, 0))
    assert t.output.shape == (28, 28) and t.sizes[0].formula == "(28 + 2*2 - 5) / 1 + 1 = 28"


def test_conv_stride_warning():
    image = np.arange(35.0).reshape(5, 7)
    t = trace_conv2d(image, np.ones((2, 2)), stride=(1, 2))
    assert t.output.shape == (4, 3)
    assert t.sizes[1].formula == "(7 + 2*0 - 2) / 2 + 1 = floor(5 / 2) + 1 = 3"
    assert t.warnings == ["(W + 2P - K) = 5 is not a multiple of stride 2: "
                          "the last 1 column(s) are never covered"]
    np.testing.assert_array_equal(t.output, naive_conv(image, np.ones((2, 2)), (1, 2)))
    t = trace_conv2d(np.ones((6, 6)), np.ones((3, 3)), stride=2, padding=((0, 1), (0, 0)))
    assert t.sizes[0].formula == "(6 + 0 + 1 - 3) / 2 + 1 = 3" and t.sizes[0].warning is None
    t = trace_conv2d(np.ones((6, 6)), np.ones((2, 2)), stride=2, padding=((0, 1), (0, 0)))
    assert t.sizes[0].warning == ("(H + P_top + P_bottom - K) = 5 is not a multiple of stride 2: "
                                  "the last 1 row(s) are never covered (1 of them padding)")
    assert "warning: (H + P_top + P_bottom - K) = 5" in T.format_conv_trace(t)


def test_conv_asymmetric_padding():
    t = trace_conv2d(ARTICLE_IMAGE, ARTICLE_KERNEL, padding=((1, 0), (0, 1)))
    assert t.padding == ((1, 0), (0, 1))
    assert t.sizes[0].formula == "(3 + 1 + 0 - 2) / 1 + 1 = 3"
    assert t.sizes[1].formula == "(3 + 0 + 1 - 2) / 1 + 1 = 3"
    assert t.padded.shape == (4, 4) and t.padded[0].sum() == 0 and t.padded[:, 3].sum() == 0
    np.testing.assert_array_equal(t.output, naive_conv(ARTICLE_IMAGE, ARTICLE_KERNEL, pads=((1, 0), (0, 1))))
    assert t.steps[0].text == "(0x0) + (0x1) + (0x2) + (1x3) = 3"
    assert "of the padded input" in T.format_conv_trace(t)


def test_conv_same_padding_tensorflow_style():
    t = trace_conv2d(ARTICLE_IMAGE, ARTICLE_KERNEL, padding="same")
    assert t.padding == ((0, 1), (0, 1))  # the odd pixel goes bottom/right
    assert t.output.shape == (3, 3)
    np.testing.assert_array_equal(t.output, naive_conv(ARTICLE_IMAGE, ARTICLE_KERNEL, pads=((0, 1), (0, 1))))
    assert any("bottom/right" in n for n in t.notes)
    t = trace_conv2d(np.arange(25.0).reshape(5, 5), np.ones((3, 3)), stride=2, padding="same")
    assert t.output.shape == (3, 3) and t.padding == ((1, 1), (1, 1))
    t = trace_conv2d(ARTICLE_IMAGE, ARTICLE_KERNEL, padding="valid")
    np.testing.assert_array_equal(t.output, [[19, 25], [37, 43]])


def test_conv_multichannel_sums_per_channel():
    image = np.stack([np.array(ARTICLE_IMAGE, float), np.ones((3, 3)), -np.eye(3)])
    kernel = np.stack([np.array(ARTICLE_KERNEL, float), [[1, 0], [0, 1]], [[0, -1], [2, 0.5]]])
    t = trace_conv2d(image, kernel, bias=0.5)
    step = t.steps[0]
    assert step.channel_texts == ("(0x0) + (1x1) + (3x2) + (4x3) = 19",
                                  "(1x1) + (1x0) + (1x0) + (1x1) = 2",
                                  "(-1x0) + (0x-1) + (0x2) + (-1x0.5) = -0.5")
    assert step.channel_sums == (19.0, 2.0, -0.5)
    assert step.value == 21.0
    assert step.text.splitlines()[-1] == "total: 19 + 2 + (-0.5) + bias 0.5 = 21"
    assert step.window.shape == (3, 2, 2) and t.channels == 3
    np.testing.assert_allclose(t.output, naive_conv(image, kernel, bias=0.5))
    # a 2-D kernel on a 3-channel image is used for every channel
    t2 = trace_conv2d(image, ARTICLE_KERNEL)
    np.testing.assert_allclose(t2.output, naive_conv(image, np.stack([ARTICLE_KERNEL] * 3)))
    assert t2.kernel.shape == (3, 2, 2) and "each of the 3 channels" in t2.notes[0]


def test_conv_bias_and_negative_terms():
    t = trace_conv2d([[3, 1], [2, 2]], [[-1, 0.25], [1.5, -2]], bias=-1)
    assert t.steps[0].text == "(3x-1) + (1x0.25) + (2x1.5) + (2x-2) + bias (-1) = -4.75"
    assert t.output[0, 0] == -4.75


def test_conv_positions_and_cap():
    rng = np.random.default_rng(1)
    image = rng.integers(-5, 6, size=(10, 10)).astype(float)
    t = trace_conv2d(image, np.ones((3, 3)))
    assert t.output.shape == (8, 8) and len(t.steps) == T.MAX_POSITIONS and t.truncated
    assert t.steps[-1].position == (1, 7)
    assert any("first 16 of 64" in n for n in t.notes)
    t = trace_conv2d(image, np.ones((3, 3)), positions=[(7, 7), (2, 3)])
    assert [s.position for s in t.steps] == [(7, 7), (2, 3)] and not t.truncated
    assert t.steps[0].value == image[7:10, 7:10].sum()
    t = trace_conv2d(image, np.ones((3, 3)), positions=(4, 5))
    assert len(t.steps) == 1 and t.steps[0].rows == (4, 7) and t.steps[0].cols == (5, 8)
    with pytest.raises(ValueError, match=r"position \(8, 0\) is outside the 8x8 output \(rows 0-7, columns 0-7\)"):
        trace_conv2d(image, np.ones((3, 3)), positions=[(8, 0)])
    with pytest.raises(TypeError, match=r"\(row, column\) pair of ints, got \(1.5, 0\)"):
        trace_conv2d(image, np.ones((3, 3)), positions=[(1.5, 0)])


def test_conv_errors():
    with pytest.raises(ValueError, match=r"kernel has 2 channel\(s\) \(shape \(2, 2, 2\)\) but the image has 3"):
        trace_conv2d(np.ones((3, 4, 4)), np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match=r"kernel of size 5 .* larger than the padded input of size 3"):
        trace_conv2d(np.ones((3, 3)), np.ones((5, 5)))
    with pytest.raises(ValueError, match=r"`image` must be a non-empty 2-D \(H, W\) or 3-D \(C, H, W\) array, "
                                         r"got shape \(2, 1, 3, 3\)"):
        trace_conv2d(np.ones((2, 1, 3, 3)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="`stride` must be positive, got 0"):
        trace_conv2d(np.ones((3, 3)), np.ones((2, 2)), stride=0)
    with pytest.raises(ValueError, match="padding string must be 'valid' or 'same', got 'full'"):
        trace_conv2d(np.ones((3, 3)), np.ones((2, 2)), padding="full")
    with pytest.raises(TypeError, match="`image` must be numeric"):
        trace_conv2d([["a", "b"], ["c", "d"]], np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"`image` must contain only finite numbers, "
                                         r"got \[nan\] in shape \(2, 2\)"):
        trace_conv2d([[1, np.nan], [1, 1]], np.ones((2, 2)))


CONV_CASES = [
    dict(shape=(7, 6), kernel=(3, 3), stride=1, padding=0),
    dict(shape=(2, 7, 6), kernel=(2, 3, 2), stride=(2, 1), padding=1),
    dict(shape=(3, 8, 9), kernel=(3, 3, 3), stride=2, padding="same"),
    dict(shape=(6, 5), kernel=(2, 4), stride=1, padding=((1, 0), (2, 1))),
    dict(shape=(2, 5, 5), kernel=(2, 1, 1), stride=3, padding="valid"),
]


def _conv_case(case, seed):
    rng = np.random.default_rng(seed)
    image = rng.normal(size=case["shape"])
    kernel = rng.normal(size=case["kernel"])
    t = trace_conv2d(image, kernel, stride=case["stride"], padding=case["padding"], bias=0.3)
    return image, kernel, t


@pytest.mark.parametrize("i", range(len(CONV_CASES)))
def test_conv_feature_map_matches_naive_loop(i):
    image, kernel, t = _conv_case(CONV_CASES[i], i)
    np.testing.assert_allclose(t.output, naive_conv(image, kernel, t.stride, t.padding, 0.3), atol=1e-12)
    for s in t.steps:  # every traced value is the map's value and the sum of its products
        assert s.value == t.output[s.position]
        assert s.value == pytest.approx(s.products.sum() + 0.3, abs=1e-12)


@pytest.mark.parametrize("i", range(len(CONV_CASES)))
def test_conv_feature_map_matches_engine(i):
    conv2d = engine_op("conv2d")
    image, kernel, t = _conv_case(CONV_CASES[i], i)
    x = image if image.ndim == 3 else image[None]
    w = kernel if kernel.ndim == 3 else kernel[None]
    out = engine_call(conv2d, x[None], w[None], np.array([0.3]), stride=t.stride, padding=t.padding)
    np.testing.assert_allclose(out[0, 0], t.output, atol=1e-10)
    if CONV_CASES[i]["padding"] == "same":
        same = engine_call(conv2d, x[None], w[None], np.array([0.3]), stride=t.stride, padding="same")
        np.testing.assert_allclose(same[0, 0], t.output, atol=1e-10)


@pytest.mark.parametrize("i", range(len(CONV_CASES)))
def test_conv_feature_map_matches_torch(i):
    torch = pytest.importorskip("torch")
    image, kernel, t = _conv_case(CONV_CASES[i], i)
    x = torch.from_numpy(image if image.ndim == 3 else image[None])[None]
    (pt, pb), (pl, pr) = t.padding
    x = torch.nn.functional.pad(x, (pl, pr, pt, pb))
    w = torch.from_numpy(kernel if kernel.ndim == 3 else kernel[None])[None]
    ref = torch.nn.functional.conv2d(x, w, torch.tensor([0.3], dtype=torch.float64), stride=t.stride)
    np.testing.assert_allclose(ref.numpy()[0, 0], t.output, atol=1e-10)


# --------------------------------------------------------------------------- pooling
def test_pool_article_average_example():
    t = trace_pool2d(parse_matrix("1 0; 4 6"), 2, mode="avg")
    assert t.steps[0].text == "(1 + 0 + 4 + 6) / 4 = 11 / 4 = 2.75"
    assert t.output.tolist() == [[2.75]]
    t = trace_pool2d(parse_matrix("1 0 2 3; 4 6 6 8; 3 1 1 0; 1 2 2 4"), 2, mode="avg")
    assert t.steps[0].text == "(1 + 0 + 4 + 6) / 4 = 11 / 4 = 2.75"
    assert t.sizes[0].formula == "(4 + 2*0 - 2) / 2 + 1 = 2"
    np.testing.assert_array_equal(t.output, [[2.75, 4.75], [1.75, 1.75]])
    t = trace_pool2d([[1, -2], [4, 6]], mode="avg")
    assert t.steps[0].text == "(1 + (-2) + 4 + 6) / 4 = 9 / 4 = 2.25"


def test_pool_max_and_min_pick_largest_and_smallest():
    image = parse_matrix("1 0 2 3; 4 6 6 8; 3 1 1 0; 1 2 2 4")
    t = trace_pool2d(image, 2)
    np.testing.assert_array_equal(t.output, [[6, 8], [3, 4]])
    assert t.steps[0].text == "max(1, 0, 4, 6) = 6 at input (1, 1)"
    assert t.steps[0].source == (1, 1) and t.steps[1].source == (1, 3)
    t = trace_pool2d(image, 2, mode="min")
    np.testing.assert_array_equal(t.output, [[0, 2], [1, 0]])
    assert t.steps[0].text == "min(1, 0, 4, 6) = 0 at input (0, 1)"
    text = T.format_pool_trace(t)
    assert "Min pooling: 4x4 input, 2x2 window, stride 2, padding 0 -> 2x2" in text


def test_pool_padding_is_never_picked_and_avg_counts_pad():
    image = -np.arange(1.0, 10.0).reshape(3, 3)  # all negative: padded zeros would win a max
    t = trace_pool2d(image, 3, stride=2, padding=1)
    assert t.steps[0].text == "max(pad, pad, pad, pad, -1, -2, pad, -4, -5) = -1 at input (0, 0)"
    np.testing.assert_array_equal(t.output, naive_pool(image, 3, 2, 1, "max"))
    assert np.isnan(t.steps[0].window[0, 0]) and t.steps[0].window[1, 1] == -1
    t = trace_pool2d(image, 3, stride=2, padding=1, mode="avg")
    assert t.steps[0].text == "(0 + 0 + 0 + 0 + (-1) + (-2) + 0 + (-4) + (-5)) / 9 = -12 / 9 = -1.3333"
    t = trace_pool2d(image, 3, stride=2, padding=1, mode="avg", count_include_pad=False)
    assert t.steps[0].text == "(-1 + (-2) + (-4) + (-5)) / 4 = -12 / 4 = -3"
    np.testing.assert_allclose(t.output, naive_pool(image, 3, 2, 1, "avg", count_include_pad=False))


def test_pool_channels_keep_their_count():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 9, size=(3, 4, 4)).astype(float)
    t = trace_pool2d(image, 2)
    assert t.output.shape == (3, 2, 2)
    assert any("3 channel(s) in, 3 channel(s) out" in n and "unchanged" in n for n in t.notes)
    assert len(t.steps) == 12 and [s.channel for s in t.steps[::4]] == [0, 1, 2]
    np.testing.assert_array_equal(t.output, naive_pool(image, 2, 2, 0, "max"))
    assert "out[channel 2, 1, 1]" in T.format_pool_trace(t)


def test_pool_errors_and_warning():
    with pytest.raises(ValueError, match="`mode` must be one of max, avg, min, got 'median'"):
        trace_pool2d(np.ones((4, 4)), mode="median")
    with pytest.raises(ValueError, match="padding must be between 0 and half the kernel size; got padding 2 "
                                         "for a kernel of size 2"):
        trace_pool2d(np.ones((4, 4)), 2, padding=2)
    t = trace_pool2d(np.ones((5, 5)), 2)
    assert t.output.shape == (2, 2)
    assert t.warnings[1] == ("(W + 2P - K) = 3 is not a multiple of stride 2: "
                             "the last 1 column(s) are never covered")


POOL_CASES = [((6, 7), 2, None, 0), ((2, 7, 7), 3, 2, 1), ((3, 5, 6), 2, 1, 0), ((9, 9), 3, 3, 1)]


def _pool_case(i, mode):
    shape, k, s, p = POOL_CASES[i]
    image = np.random.default_rng(i).normal(size=shape)
    return image, (k, s, p), trace_pool2d(image, k, s, p, mode=mode)


@pytest.mark.parametrize("mode", ["max", "avg", "min"])
@pytest.mark.parametrize("i", range(len(POOL_CASES)))
def test_pool_map_matches_naive_loop(i, mode):
    image, (k, s, p), t = _pool_case(i, mode)
    np.testing.assert_allclose(t.output, naive_pool(image, k, s or k, p, mode), atol=1e-12)
    for st in t.steps:
        assert st.value == t.output[(st.channel,) + st.position if image.ndim == 3 else st.position]
        if st.source is not None:
            src = image[st.channel][st.source] if image.ndim == 3 else image[st.source]
            assert src == st.value


@pytest.mark.parametrize("mode", ["max", "avg", "min"])
@pytest.mark.parametrize("i", range(len(POOL_CASES)))
def test_pool_map_matches_engine(i, mode):
    fn = engine_op(f"{mode}_pool2d")
    image, (k, s, p), t = _pool_case(i, mode)
    x = (image if image.ndim == 3 else image[None])[None]
    out = engine_call(fn, x, k, s, p)
    np.testing.assert_allclose(out[0].reshape(t.output.shape), t.output, atol=1e-12)


@pytest.mark.parametrize("mode", ["max", "avg", "min"])
@pytest.mark.parametrize("i", range(len(POOL_CASES)))
def test_pool_map_matches_torch(i, mode):
    torch = pytest.importorskip("torch")
    image, (k, s, p), t = _pool_case(i, mode)
    tx = torch.from_numpy((image if image.ndim == 3 else image[None])[None])
    if mode == "max":
        ref = torch.nn.functional.max_pool2d(tx, k, s, p)
    elif mode == "min":
        ref = -torch.nn.functional.max_pool2d(-tx, k, s, p)
    else:
        ref = torch.nn.functional.avg_pool2d(tx, k, s, p)
    np.testing.assert_allclose(ref.numpy()[0].reshape(t.output.shape), t.output, atol=1e-12)


# --------------------------------------------------------------------------- activations and dense
def test_relu_article_examples():
    t = trace_activation([53.85, -39.5], "relu")
    assert [s.text for s in t.steps] == ["relu(53.85) = max(0, 53.85) = 53.85",
                                         "relu(-39.5) = max(0, -39.5) = 0"]
    assert t.outputs.tolist() == [53.85, 0.0] and t.formula == "relu(x) = max(0, x)"


def test_dense_article_neuron_example():
    t = trace_dense([155, 60], [0.27, 0.2])
    n = t.neurons[0]
    assert n.sum_text == "(155x0.27) + (60x0.2) = 53.85"
    assert n.activation.text == "relu(53.85) = max(0, 53.85) = 53.85"
    assert n.output == pytest.approx(53.85)
    t = trace_dense([155, 60], [[0.27, 0.2], [-0.1, -0.4]])
    assert t.neurons[1].sum_text == "(155x-0.1) + (60x-0.4) = -39.5"
    assert t.neurons[1].activation.text == "relu(-39.5) = max(0, -39.5) = 0"
    np.testing.assert_allclose(t.outputs, [53.85, 0.0])
    text = T.format_dense_trace(t)
    assert "neuron 1:" in text and "(155x-0.1) + (60x-0.4) = -39.5" in text
    t = trace_dense([1, 2], [[1, 1]], bias=[-4], activation=None)
    assert t.neurons[0].sum_text == "(1x1) + (2x1) + bias (-4) = -1" and t.outputs.tolist() == [-1.0]
    with pytest.raises(ValueError, match=r"`weights` must have shape \(2,\) or \(out_features, 2\) to match "
                                         r"inputs of shape \(2,\), got shape \(3,\)"):
        trace_dense([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match=r"`bias` must be a number or have shape \(2,\), got shape \(3,\)"):
        trace_dense([1, 2], [[1, 2], [3, 4]], bias=[1, 2, 3])


def test_activation_texts():
    assert trace_activation(-3, "leaky_relu").steps[0].text == "leaky_relu(-3) = (0.01x-3) = -0.03"
    assert trace_activation(2, "leaky-relu", negative_slope=0.2).steps[0].text == \
        "leaky_relu(2) = 2 (not negative: unchanged)"
    assert trace_activation(0, "sigmoid").steps[0].text == "sigmoid(0) = 1 / (1 + e^0) = 1 / (1 + 1) = 0.5"
    assert trace_activation(2, "sigmoid").steps[0].text == \
        "sigmoid(2) = 1 / (1 + e^-2) = 1 / (1 + 0.1353) = 0.8808"
    assert trace_activation(1, "tanh").steps[0].text == \
        "tanh(1) = (e^1 - e^-1) / (e^1 + e^-1) = (2.7183 - 0.3679) / (2.7183 + 0.3679) = 0.7616"
    assert trace_activation(1, "gelu").steps[0].text == \
        "gelu(1) = 1 x Phi(1) = 1 x 0.5 x (1 + erf(0.7071)) = 1 x 0.8413 = 0.8413"
    assert trace_activation(-2.5, "identity").steps[0].text == "identity(-2.5) = -2.5"
    assert trace_activation([[1, -1]], "linear").outputs.shape == (1, 2)
    big = trace_activation([-1000.0, 1000.0], "sigmoid")
    assert big.outputs.tolist() == [0.0, 1.0] and "astronomically large" in big.steps[0].text
    assert trace_activation(50, "tanh").steps[0].text == "tanh(50) = 1 (saturated: |x| > 20)"
    assert "Activation relu: relu(x) = max(0, x)" in T.format_activation_trace(trace_activation(1, "relu"))
    with pytest.raises(ValueError, match="unknown activation 'swish'; valid names: relu, leaky_relu, sigmoid, "
                                         "tanh, gelu, identity"):
        trace_activation(1, "swish")
    with pytest.raises(ValueError, match="`approximate` must be 'none' or 'tanh', got 'fast'"):
        trace_activation(1, "gelu", approximate="fast")


ACTIVATION_CASES = [("relu", {}), ("leaky_relu", {"negative_slope": 0.2}), ("sigmoid", {}), ("tanh", {}),
                    ("gelu", {}), ("gelu", {"approximate": "tanh"}), ("identity", {})]


@pytest.mark.parametrize("name, kwargs", ACTIVATION_CASES)
def test_activation_values_match_formulas(name, kwargs):
    x = np.array([-30.0, -3.0, -0.5, 0.0, 0.7, 2.0, 25.0])
    t = trace_activation(x, name, **kwargs)
    slope = kwargs.get("negative_slope", 0.01)
    ref = {"relu": np.maximum(x, 0), "leaky_relu": np.where(x >= 0, x, slope * x),
           "sigmoid": 1 / (1 + np.exp(-x)), "tanh": np.tanh(x), "identity": x,
           "gelu": (0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))))
           if kwargs.get("approximate") == "tanh" else
           np.array([v * 0.5 * (1 + math.erf(v / math.sqrt(2))) for v in x])}[name]
    np.testing.assert_allclose(t.outputs, ref, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name, kwargs", ACTIVATION_CASES)
def test_activation_values_match_engine(name, kwargs):
    x = np.array([-30.0, -3.0, -0.5, 0.0, 0.7, 2.0, 25.0])
    t = trace_activation(x, name, **kwargs)
    fn = engine_op(name)
    out = engine_call(fn, x, **kwargs)
    np.testing.assert_allclose(out, t.outputs, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name, kwargs", ACTIVATION_CASES)
def test_activation_values_match_torch(name, kwargs):
    torch = pytest.importorskip("torch")
    x = np.array([-30.0, -3.0, -0.5, 0.0, 0.7, 2.0, 25.0])
    t = trace_activation(x, name, **kwargs)
    slope = kwargs.get("negative_slope", 0.01)
    tx = torch.from_numpy(x)
    tfn = {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "identity": lambda v: v,
           "leaky_relu": lambda v: torch.nn.functional.leaky_relu(v, slope),
           "gelu": lambda v: torch.nn.functional.gelu(v, approximate=kwargs.get("approximate", "none"))}[name]
    np.testing.assert_allclose(tfn(tx).numpy(), t.outputs, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- softmax and sigmoid
def test_softmax_article_example():
    t = trace_softmax([2.5, 1.8, 0.2], ["cat", "dog", "elephant"])
    # the article rounds down: ~0.62, ~0.31, ~0.06
    assert t.probabilities[0] == pytest.approx(0.62, abs=0.01)
    assert t.probabilities[1] == pytest.approx(0.31, abs=0.005)
    assert t.probabilities[2] == pytest.approx(0.06, abs=0.005)
    assert np.floor(t.probabilities * 100).tolist() == [62, 31, 6]
    assert t.exp_texts == ["e^2.5 = 12.1825", "e^1.8 = 6.0496", "e^0.2 = 1.2214"]
    assert t.sum_text == "12.1825 + 6.0496 + 1.2214 = 19.4535"
    assert t.prob_texts == [
        "e^2.5 / (e^2.5 + e^1.8 + e^0.2) = 12.1825 / 19.4535 = 0.6262",
        "e^1.8 / (e^2.5 + e^1.8 + e^0.2) = 6.0496 / 19.4535 = 0.311",
        "e^0.2 / (e^2.5 + e^1.8 + e^0.2) = 1.2214 / 19.4535 = 0.06279",
    ]
    assert t.shift == 0 and t.notes == [] and t.predicted_label == "cat"
    assert t.total == pytest.approx(math.exp(2.5) + math.exp(1.8) + math.exp(0.2))
    text = T.format_softmax_trace(t)
    for line in ("cat       e^2.5 = 12.1825", "sum: 12.1825 + 6.0496 + 1.2214 = 19.4535",
                 "(62.6%)", "prediction: cat"):
        assert line in text


def test_softmax_large_scores_are_stable_and_explained():
    with np.errstate(all="raise"):
        t = trace_softmax([1000.0, 999.0, 998.0], "a, b, c")
    assert t.labels == ["a", "b", "c"] and t.shift == 1000
    np.testing.assert_allclose(t.probabilities, np.exp([0, -1, -2]) / np.exp([0, -1, -2]).sum())
    assert t.exp_texts[1] == "e^(999 - 1000) = e^-1 = 0.3679"
    assert t.prob_texts[0] == "e^0 / (e^0 + e^-1 + e^-2) = 1 / 1.5032 = 0.6652"
    assert "subtracted from every score" in t.notes[0] and "overflow" in t.notes[0]
    low = trace_softmax([-1000.0, -1001.0])
    np.testing.assert_allclose(low.probabilities, [1 / (1 + math.exp(-1)), 1 / (1 + math.e)])
    assert trace_softmax([1.0, 2.0], subtract_max=True).exp_texts[0] == "e^(1 - 2) = e^-1 = 0.3679"
    wide = trace_softmax([2.0, -1000.0])  # the largest score is small: no shift needed
    assert wide.shift == 0 and wide.exp_texts[1] == "e^-1000 = 0" and wide.probabilities[0] == 1


def test_softmax_matches_engine():
    s = np.array([3.0, -1.0, 0.5, 2.0, 60.0])
    t = trace_softmax(s)
    np.testing.assert_allclose(t.probabilities.sum(), 1.0)
    assert t.shift == 60 and t.exp_texts[4] == "e^(60 - 60) = e^0 = 1"
    softmax = engine_op("softmax")
    np.testing.assert_allclose(engine_call(softmax, s, dim=-1), t.probabilities, rtol=1e-6, atol=1e-12)


def test_softmax_matches_torch():
    torch = pytest.importorskip("torch")
    s = np.array([3.0, -1.0, 0.5, 2.0, 60.0])
    t = trace_softmax(s)
    np.testing.assert_allclose(torch.softmax(torch.from_numpy(s), -1).numpy(), t.probabilities, rtol=1e-12)


def test_softmax_errors():
    with pytest.raises(ValueError, match=r"got 2 label\(s\) \['cat', 'dog'\] for 3 score\(s\)"):
        trace_softmax([1, 2, 3], ["cat", "dog"])
    with pytest.raises(ValueError, match=r"`scores` must be a non-empty 1-D array \(n,\), got shape \(2, 2\)"):
        trace_softmax([[1, 2], [3, 4]])


def test_sigmoid_binary_case():
    t = trace_sigmoid(0.8, ["cat", "dog"])
    assert t.texts[0] == "sigmoid(0.8) = 1 / (1 + e^-0.8) = 1 / (1 + 0.4493) = 0.69"
    assert t.texts[1] == "P(dog) = 0.69, P(cat) = 1 - 0.69 = 0.31"
    assert t.predicted_label == "dog"
    assert t.probability == pytest.approx(trace_softmax([0.0, 0.8]).probabilities[1])
    assert trace_sigmoid(-2).predicted_label == "class 0"
    assert "prediction: dog" in T.format_sigmoid_trace(t)
    with pytest.raises(ValueError, match=r"`score` must be one number for the binary case, got shape \(2,\)"):
        trace_sigmoid([1.0, 2.0])


def test_format_trace_dispatch():
    assert T.format_trace(trace_softmax([1, 2])).startswith("Softmax over 2 scores")
    assert T.format_trace(trace_conv2d(ARTICLE_IMAGE, ARTICLE_KERNEL)).startswith("Convolution: 3x3 input")
    with pytest.raises(TypeError, match="expected a trace"):
        T.format_trace(42)


def test_explain_package_imports_numpy_only():
    import subprocess
    import sys
    code = ("import sys, cnnlab.explain; heavy = {'torch', 'matplotlib', 'PIL', 'sklearn', 'yaml', 'tqdm'}; "
            "print(sorted(m for m in heavy if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
