"""The one output-size rule, (W + 2P - K) / S + 1, and the argument normalisation around it."""
import numpy as np
import pytest

from cnnlab.functional import conv_output_size
from cnnlab.functional.shape import (adaptive_windows, ceil_div, conv_padding, pair, pool_output_size,
                                     positive_pair, same_padding)


def count_windows(size, kernel, stride=1, padding=(0, 0), dilation=1, ceil_mode=False):
    """Count the window positions one by one: start at 0 and step by ``stride`` while the window
    (``dilation * (kernel - 1) + 1`` pixels) fits inside the padded input.  With ``ceil_mode`` a
    last, partial window (overhanging the padded input by less than a stride) counts too, and, as
    in PyTorch, windows that would start inside the right padding are not counted."""
    before, after = padding
    padded = size + before + after
    span = dilation * (kernel - 1) + 1
    count, start = 0, 0
    while start + span <= padded or (ceil_mode and start < padded - span + stride):
        if not ceil_mode or start < size + before:
            count += 1
        start += stride
    return count


@pytest.mark.parametrize("W,K,S,P,expected", [
    (4, 3, 1, 0, 2),      # the articles' 4x4 image and 3x3 filter -> 2x2
    (3, 2, 1, 0, 2),      # the 3x3 input and 2x2 kernel -> 2x2 (19, 25, 37, 43)
    (28, 5, 1, 2, 28),    # LeNet's first layer keeps 28x28
    (28, 5, 1, 0, 24),
    (32, 3, 1, 1, 32),
    (7, 3, 2, 0, 3),      # stride 2
    (5, 3, 2, 1, 3),
    (32, 3, 2, 1, 16),
    (224, 7, 2, 3, 112),
    (224, 11, 4, 2, 55),
    (6, 2, 2, 0, 3),
    (7, 2, 2, 0, 3),      # floor drops the last pixel
])
def test_seed_formula_cases(W, K, S, P, expected):
    assert conv_output_size(W, K, S, P) == expected
    assert (W + 2 * P - K) // S + 1 == expected  # literally the articles' formula
    assert count_windows(W, K, S, (P, P)) == expected


@pytest.mark.parametrize("W,K,S,P,floor,ceil", [
    (7, 2, 2, 0, 3, 4),
    (5, 2, 2, 0, 2, 3),
    (6, 3, 2, 0, 2, 3),
    (6, 3, 2, 1, 3, 4),
    (4, 2, 2, 0, 2, 2),   # exact fit: ceil changes nothing
    (5, 3, 3, 1, 2, 2),   # the extra window would start in the right padding: dropped
    (112, 3, 2, 0, 55, 56),
])
def test_ceil_mode(W, K, S, P, floor, ceil):
    assert conv_output_size(W, K, S, P) == floor
    assert conv_output_size(W, K, S, P, ceil_mode=True) == ceil
    assert count_windows(W, K, S, (P, P), ceil_mode=True) == ceil


@pytest.mark.parametrize("W,K,S,P,D,expected", [(7, 3, 1, 0, 2, 3), (28, 5, 1, 4, 2, 28), (10, 3, 2, 0, 3, 2),
                                                (9, 2, 1, 0, 8, 1)])
def test_dilation(W, K, S, P, D, expected):
    assert conv_output_size(W, K, S, P, D) == expected
    assert count_windows(W, K, S, (P, P), D) == expected


@pytest.mark.parametrize("W,K,S,pad,expected", [(5, 3, 1, (0, 2), 5), (6, 2, 2, (1, 0), 3), (6, 3, 2, (0, 1), 3),
                                                (4, 3, 1, (2, 0), 4), (5, 4, 3, (1, 2), 2)])
def test_asymmetric_padding(W, K, S, pad, expected):
    assert conv_output_size(W, K, S, pad) == expected
    assert count_windows(W, K, S, pad) == expected


def test_random_cases_against_counting_windows():
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(3000):
        W, K, S, D = (int(v) for v in (rng.integers(1, 30), rng.integers(1, 8), rng.integers(1, 5), rng.integers(1, 4)))
        pad = (int(rng.integers(0, 4)), int(rng.integers(0, 4)))
        ceil = bool(rng.integers(0, 2))
        if ceil and (pad[0] != pad[1] or pad[0] > K // 2):
            ceil = False  # ceil_mode is PyTorch's pooling rule: symmetric padding of at most half a kernel
        if D * (K - 1) + 1 > W + sum(pad):
            continue
        assert conv_output_size(W, K, S, pad, D, ceil) == count_windows(W, K, S, pad, D, ceil), (W, K, S, pad, D, ceil)
        checked += 1
    assert checked > 1000


def test_matches_torch_conv_and_pool_shapes(torch):
    tF = torch.nn.functional
    rng = np.random.default_rng(1)
    for _ in range(60):
        W, K, S, D = (int(v) for v in (rng.integers(2, 16), rng.integers(1, 5), rng.integers(1, 4), rng.integers(1, 3)))
        P = int(rng.integers(0, K // 2 + 1))
        if D * (K - 1) + 1 > W + 2 * P:
            continue
        x = torch.zeros(1, 1, W, W)
        assert conv_output_size(W, K, S, P, D) == tF.conv2d(x, torch.zeros(1, 1, K, K), None, S, P, D).shape[-1]
        for ceil in (False, True):
            got = tF.max_pool2d(x, K, S, P, D, ceil_mode=ceil).shape[-1]
            assert conv_output_size(W, K, S, P, D, ceil) == got, (W, K, S, P, D, ceil)
            assert pool_output_size(W, K, S, P, D, ceil) == got


def test_errors_name_the_received_values():
    with pytest.raises(ValueError, match=r"kernel of size 5 \(dilated span 5\) is larger than the padded input of "
                                         r"size 4 \(input 4 \+ padding 0\+0\)"):
        conv_output_size(4, 5)
    with pytest.raises(ValueError, match=r"kernel of size 3 \(dilated span 7\) is larger than the padded input of "
                                         r"size 6 \(input 4 \+ padding 1\+1\)"):
        conv_output_size(4, 3, padding=1, dilation=3)
    for kwargs, name, low, got in [(dict(size=0, kernel_size=1), "size", 1, "0"),
                                   (dict(size=4, kernel_size=0), "kernel_size", 1, "0"),
                                   (dict(size=4, kernel_size=2, stride=0), "stride", 1, "0"),
                                   (dict(size=4, kernel_size=2, dilation=0), "dilation", 1, "0"),
                                   (dict(size=4, kernel_size=2, padding=-1), "padding", 0, "-1"),
                                   (dict(size=4, kernel_size=2, padding=(1, -2)), "padding", 0, "-2"),
                                   (dict(size=4.5, kernel_size=2), "size", 1, "4.5")]:
        with pytest.raises(ValueError, match=rf"`{name}` must be an integer >= {low}, got {got}"):
            conv_output_size(**kwargs)


def test_output_is_always_positive_when_the_kernel_fits():
    """Once the dilated kernel fits the padded input the count is >= 1 (a 'non-positive output size'
    can only arise from a kernel that does not fit, which is reported as such)."""
    for W in range(1, 12):
        for K in range(1, W + 1):
            for S in range(1, 6):
                for ceil in (False, True):
                    assert conv_output_size(W, K, S, 0, 1, ceil) >= 1


def test_same_padding_is_ceil_with_extra_after():
    for size in range(1, 20):
        for k in range(1, 6):
            for s in range(1, 4):
                for d in (1, 2):
                    before, after = same_padding(size, k, s, d)
                    assert after - before in (0, 1)
                    if d * (k - 1) + 1 <= size + before + after:
                        assert conv_output_size(size, k, s, (before, after), d) == ceil_div(size, s)
    assert same_padding(7, 3, 2) == (1, 1)
    assert same_padding(8, 3, 2) == (0, 1)   # the odd pixel goes to the bottom/right
    assert same_padding(28, 5, 1) == (2, 2)
    assert same_padding(5, 4, 1) == (1, 2)


def test_conv_padding_forms():
    hw, k, s, d = (6, 7), (3, 2), (1, 1), (1, 1)
    assert conv_padding(1, hw, k, s, d) == ((1, 1), (1, 1))
    assert conv_padding((2, 0), hw, k, s, d) == ((2, 2), (0, 0))
    assert conv_padding(((0, 1), (2, 3)), hw, k, s, d) == ((0, 1), (2, 3))
    assert conv_padding([[0, 1], [2, 3]], hw, k, s, d) == ((0, 1), (2, 3))
    assert conv_padding("valid", hw, k, s, d) == ((0, 0), (0, 0))
    assert conv_padding("same", hw, k, s, d) == ((1, 1), (0, 1))
    with pytest.raises(ValueError, match=r"padding string must be 'valid' or 'same', got 'SAME'"):
        conv_padding("SAME", hw, k, s, d)
    with pytest.raises(ValueError, match=r"padding must be non-negative, got \(\(0, -1\), \(0, 0\)\)"):
        conv_padding(((0, -1), (0, 0)), hw, k, s, d)
    with pytest.raises(TypeError, match=r"`padding` must be an int, \(ph, pw\), .* got \(1, 2, 3\)"):
        conv_padding((1, 2, 3), hw, k, s, d)


def test_pair_and_positive_pair():
    assert pair(3) == (3, 3) and pair((2, 5)) == (2, 5) and pair(np.int64(4)) == (4, 4)
    for bad in (True, (1,), (1, 2, 3), 1.5, "3", (1.0, 2)):
        with pytest.raises(TypeError, match=r"`kernel_size` must be an int or a pair of ints, got"):
            pair(bad, "kernel_size")
    with pytest.raises(ValueError, match=r"`stride` must be positive, got \(1, 0\)"):
        positive_pair((1, 0), "stride")


def test_pool_output_size_padding_limit():
    with pytest.raises(ValueError, match=r"pad should be at most half of the effective kernel size, got padding=2 "
                                         r"and kernel_size=3"):
        pool_output_size(8, 3, 1, 2)


def test_adaptive_windows_rule():
    starts, ends = adaptive_windows(10, 3)
    assert starts == [0, 3, 6] and ends == [4, 7, 10]
    starts, ends = adaptive_windows(5, 5)
    assert starts == [0, 1, 2, 3, 4] and ends == [1, 2, 3, 4, 5]
    starts, ends = adaptive_windows(3, 5)
    assert starts == [0, 0, 1, 1, 2] and ends == [1, 2, 2, 3, 3]


def test_pair_accepts_numpy_integers_inside_a_pair():
    """``pair(np.int64(4))`` works, so a pair of NumPy integers (sizes computed with NumPy) must too."""
    assert pair((np.int64(2), np.int32(3))) == (2, 3)
    assert positive_pair([np.int64(1), 2], "stride") == (1, 2)
