"""Edge cases of the functional ops and the layer constructors: empty inputs, inf, dtypes, arguments."""
import numpy as np
import pytest

from cnnlab import Tensor, nn
import cnnlab.functional as F


# --- empty inputs ---------------------------------------------------------------------------------
@pytest.mark.parametrize("padding", [0, 1, "same"])
def test_conv2d_of_an_empty_batch(torch, padding):
    x = Tensor(np.zeros((0, 3, 5, 5)), requires_grad=True)
    w = Tensor(np.random.default_rng(0).standard_normal((2, 3, 3, 3)), requires_grad=True)
    b = Tensor(np.ones(2), requires_grad=True)
    y = F.conv2d(x, w, b, padding=padding)
    ty = torch.nn.functional.conv2d(torch.zeros(0, 3, 5, 5, dtype=torch.float64),
                                    torch.tensor(w.numpy()), torch.tensor(b.numpy()), padding=padding)
    assert y.shape == tuple(ty.shape)
    y.sum().backward()
    assert x.grad.shape == (0, 3, 5, 5)
    np.testing.assert_array_equal(w.grad, np.zeros((2, 3, 3, 3)))
    np.testing.assert_array_equal(b.grad, np.zeros(2))


@pytest.mark.parametrize("fn", [F.softmax, F.log_softmax])
def test_softmax_along_a_zero_length_dim(torch, fn, recwarn):
    x = Tensor(np.zeros((2, 0)), requires_grad=True)
    y = fn(x, dim=1)
    expected = getattr(torch.nn.functional, fn.__name__)(torch.zeros(2, 0, dtype=torch.float64), dim=1)
    assert y.shape == tuple(expected.shape) == (2, 0)
    y.sum().backward()
    assert x.grad.shape == (2, 0)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_softmax_of_a_0d_input_and_dims_out_of_range(torch):
    np.testing.assert_array_equal(F.softmax(Tensor(np.array(3.0)), dim=0).numpy(), 1.0)
    with pytest.raises(IndexError, match=r"softmax: dimension out of range \(expected to be in range of "
                                         r"\[-2, 1\], but got 2\)"):
        F.softmax(Tensor(np.zeros((2, 3))), dim=2)
    with pytest.raises(TypeError, match=r"log_softmax: `dim` must be an int, got 1.0"):
        F.log_softmax(Tensor(np.zeros((2, 3))), dim=1.0)
    with pytest.raises(IndexError, match=r"glu: dimension out of range"):
        F.glu(Tensor(np.zeros((2, 4))), dim=-3)


@pytest.mark.parametrize("fn", [F.global_max_pool2d, F.global_avg_pool2d,
                                lambda x: F.adaptive_max_pool2d(x, 2), lambda x: F.adaptive_avg_pool2d(x, 2)])
@pytest.mark.parametrize("shape", [(1, 2, 0, 3), (1, 2, 3, 0)])
def test_pooling_a_plane_without_pixels_is_a_clear_error(fn, shape):
    with pytest.raises(ValueError, match=r"expected feature maps with at least one pixel \(non-zero H and W\), "
                                         r"got input of shape \(1, 2, \d, \d\)"):
        fn(Tensor(np.zeros(shape, np.float32)))


@pytest.mark.parametrize("fn,out", [(F.global_max_pool2d, (0, 2)), (F.global_avg_pool2d, (0, 2)),
                                    (lambda x: F.adaptive_avg_pool2d(x, 3), (0, 2, 3, 3)),
                                    (lambda x: F.max_pool2d(x, 2), (0, 2, 2, 2))])
def test_pooling_an_empty_batch(fn, out):
    x = Tensor(np.zeros((0, 2, 5, 5), np.float32), requires_grad=True)
    y = fn(x)
    assert y.shape == out
    y.sum().backward()
    assert x.grad.shape == x.shape


# --- inf and padding ------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
def test_adaptive_avg_pool_with_one_non_finite_pixel_changes_only_its_windows(torch, value):
    x = np.random.default_rng(0).standard_normal((1, 2, 7, 5))
    x[0, 1, 3, 2] = value
    y = F.adaptive_avg_pool2d(Tensor(x), (3, 2)).numpy()
    expected = torch.nn.functional.adaptive_avg_pool2d(torch.tensor(x), (3, 2)).numpy()
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12, equal_nan=True)
    assert np.isfinite(y[0, 0]).all() and np.isfinite(y).sum() >= 8


@pytest.mark.parametrize("fill,fn,tfn", [(-np.inf, F.max_pool2d, "max_pool2d"), (np.inf, F.min_pool2d, None)])
@pytest.mark.parametrize("kernel,stride,padding,ceil", [(3, 1, 1, False), (2, 2, 1, False), (3, 2, 1, True),
                                                        ((3, 2), 1, (1, 0), False)])
def test_max_pool_never_picks_the_padding(torch, fill, fn, tfn, kernel, stride, padding, ceil):
    x = Tensor(np.full((1, 1, 3, 4), fill), requires_grad=True)
    y, idx = fn(x, kernel, stride, padding, ceil_mode=ceil, return_indices=True)
    y.sum().backward()
    assert idx.numpy().min() >= 0 and idx.numpy().max() < 12
    assert x.grad.sum() == y.numpy().size  # every output sends its gradient to one real pixel
    if tfn is not None:
        tx = torch.full((1, 1, 3, 4), fill, dtype=torch.float64, requires_grad=True)
        ty, tidx = torch.nn.functional.max_pool2d(tx, kernel, stride, padding, ceil_mode=ceil,
                                                  return_indices=True)
        ty.sum().backward()
        np.testing.assert_array_equal(idx.numpy(), tidx.numpy())
        np.testing.assert_array_equal(x.grad, tx.grad.numpy())


# --- dtypes ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("call", [
    lambda x: F.batch_norm(x, None, None, training=True),
    lambda x: F.dropout(x, 0.5, True),
    lambda x: F.linear(x.reshape(2, 4), Tensor(np.ones((3, 4), np.int64))),
])
def test_integer_inputs_are_refused(call):
    with pytest.raises(TypeError, match=r"expected a floating point input \(float32 or float64\), got dtype int64"):
        call(Tensor(np.arange(8).reshape(2, 1, 2, 2)))


def test_dropout_probability_must_be_a_number():
    with pytest.raises(TypeError, match=r"dropout: `p` must be a number between 0 and 1, got '0.5'"):
        F.dropout(Tensor(np.ones(3, np.float32)), "0.5")


# --- layer constructors ---------------------------------------------------------------------------
@pytest.mark.parametrize("make,error,pattern", [
    (lambda: nn.BatchNorm2d(-1), ValueError, r"`num_features` \(=-1\) must be a positive int"),
    (lambda: nn.BatchNorm2d(0), ValueError, r"`num_features` \(=0\) must be a positive int"),
    (lambda: nn.BatchNorm2d(2.5), TypeError, r"`num_features` must be a positive int, got 2.5 \(float\)"),
    (lambda: nn.BatchNorm2d(True), TypeError, r"`num_features` must be a positive int, got True \(bool\)"),
    (lambda: nn.BatchNorm2d(3, eps=0), ValueError, r"`eps` \(=0\) must be a positive number"),
    (lambda: nn.BatchNorm2d(3, momentum=2), ValueError, r"`momentum` \(=2\) must be None or a number in \[0, 1\]"),
    (lambda: nn.BatchNorm2d(3, affine="yes"), TypeError, r"`affine` must be True or False, got 'yes'"),
    (lambda: nn.Linear(True, 2), TypeError, r"`in_features` must be a positive int, got True \(bool\)"),
    (lambda: nn.Linear(3, 2, bias=None), TypeError, r"`bias` must be True or False, got None"),
    (lambda: nn.Conv2d(1, -2, 3), ValueError, r"`out_channels` \(=-2\) must be a positive int"),
    (lambda: nn.Conv2d("1", 2, 3), TypeError, r"`in_channels` must be a positive int, got '1' \(str\)"),
    (lambda: nn.Conv2d(2, 2, 3, groups=True), TypeError, r"`groups` must be a positive int, got True"),
    (lambda: nn.Conv2d(1, 1, 3, padding=((1, 2), (3,))), ValueError, r"`padding` \(=\(\(1, 2\), \(3,\)\)\) must be "
                                                                     r"an int, a pair of ints, 'same', 'valid' or"),
    (lambda: nn.Conv2d(1, 1, 3, padding=((1, -2), (3, 1))), ValueError, r"of non-negative ints"),
    (lambda: nn.MaxPool2d(2, padding=-1), ValueError, r"`padding` \(=-1\) must be at least 0 and at most half"),
    (lambda: nn.AvgPool2d(2, padding=2), ValueError, r"`padding` \(=2\) must be at least 0 and at most half"),
    (lambda: nn.MaxPool2d(2, ceil_mode="no"), TypeError, r"`ceil_mode` must be True or False"),
    (lambda: nn.AdaptiveAvgPool2d(True), ValueError, r"output_size must be a positive int"),
    (lambda: nn.FractionalMaxPool2d(2, output_ratio=1.5), ValueError, r"`output_ratio` \(=1.5\) must be in \(0, 1\)"),
    (lambda: nn.LeakyReLU("a"), TypeError, r"`negative_slope` must be a number, got 'a' \(str\)"),
    (lambda: nn.LeakyReLU(float("inf")), ValueError, r"`negative_slope` \(=inf\) must be a finite number"),
    (lambda: nn.Softmax(1.5), TypeError, r"`dim` must be an int, got 1.5 \(float\)"),
    (lambda: nn.GLU("a"), TypeError, r"`dim` must be an int, got 'a'"),
    (lambda: nn.Dropout("a"), TypeError, r"`p` must be a number between 0 and 1, got 'a'"),
])
def test_layer_constructor_arguments_are_validated(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make()


def test_dim_out_of_range_in_output_shape():
    with pytest.raises(ValueError, match=r"Softmax\(dim=3\) needs dim in \[-2, 1\] for a 2-D input"):
        nn.Softmax(3).output_shape((4, 10))
    with pytest.raises(ValueError, match=r"GLU\(dim=-3\) needs dim in \[-2, 1\]"):
        nn.GLU(-3).output_shape((4, 10))


@pytest.mark.parametrize("loss,tloss,args", [
    (F.cross_entropy, "cross_entropy", (np.zeros((0, 3)), np.zeros(0, np.int64))),
    (F.nll_loss, "nll_loss", (np.zeros((0, 3)), np.zeros(0, np.int64))),
    (F.mse_loss, "mse_loss", (np.zeros((0, 2)), np.zeros((0, 2)))),
])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_losses_of_an_empty_batch_are_pytorchs(torch, loss, tloss, args, reduction, recwarn):
    x = Tensor(args[0], requires_grad=True)
    y = loss(x, args[1], reduction=reduction)
    expected = getattr(torch.nn.functional, tloss)(torch.tensor(args[0]), torch.tensor(args[1]),
                                                   reduction=reduction).numpy()
    np.testing.assert_array_equal(y.numpy(), expected)
    y.sum().backward()
    assert x.grad.shape == x.shape
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_fractional_max_pool_output_shape_checks_the_input():
    assert nn.FractionalMaxPool2d(2, output_size=4).output_shape((1, 3, 8, 8)) == (1, 3, 4, 4)
    assert nn.FractionalMaxPool2d(2, output_ratio=0.5).output_shape((1, 3, 9, 8)) == (1, 3, 4, 4)
    with pytest.raises(ValueError, match=r"gives output height 8 with kernel height 2, which needs .* an input "
                                         r"height of at least 9; got input shape \(1, 3, 8, 8\)"):
        nn.FractionalMaxPool2d(2, output_size=8).output_shape((1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"gives output height 0"):
        nn.FractionalMaxPool2d(1, output_ratio=0.3).output_shape((1, 3, 2, 8))


def test_conv2d_size_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"conv2d: input of shape \(1, 2, 0, 4\) and weight of shape \(1, 2, 1, 1\): "
                                         r"`size` must be an integer >= 1, got 0"):
        F.conv2d(Tensor(np.zeros((1, 2, 0, 4))), Tensor(np.zeros((1, 2, 1, 1))))
