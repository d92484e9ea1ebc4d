"""nn.init: PyTorch's formulas (fans, gains, bounds, standard deviations), in place, seeded."""
import math

import numpy as np
import pytest

import cnnlab
from cnnlab import Tensor, nn
from cnnlab.nn import init


def big(shape=(256, 128, 3, 3)):
    return nn.Parameter(np.zeros(shape, dtype=np.float32))


# --- fans and gains: the same numbers as torch ------------------------------------------------------
@pytest.mark.parametrize("layer", ["linear", "conv", "conv_groups", "conv_transpose"])
def test_fans_match_torch_for_linear_and_conv_weights(torch, layer):
    build = {"linear": lambda lib: lib.Linear(30, 7),
             "conv": lambda lib: lib.Conv2d(3, 8, (5, 3)),
             "conv_groups": lambda lib: lib.Conv2d(4, 6, 3, groups=2),
             "conv_transpose": lambda lib: lib.ConvTranspose2d(4, 6, 3, groups=2)}[layer]
    ours, theirs = build(nn).weight, build(torch.nn).weight
    assert init._calculate_fan_in_and_fan_out(ours) == torch.nn.init._calculate_fan_in_and_fan_out(theirs)
    for mode in ("fan_in", "fan_out"):
        assert init._calculate_correct_fan(ours, mode) == torch.nn.init._calculate_correct_fan(theirs, mode)


def test_fan_formula():
    assert init._calculate_fan_in_and_fan_out(np.zeros((8, 3, 5, 3))) == (3 * 15, 8 * 15)
    assert init._calculate_fan_in_and_fan_out(np.zeros((7, 30))) == (30, 7)


@pytest.mark.parametrize("nonlinearity,param", [("linear", None), ("conv2d", None), ("conv_transpose2d", None),
                                                ("sigmoid", None), ("tanh", None), ("relu", None),
                                                ("leaky_relu", None), ("leaky_relu", 0.2), ("leaky_relu", 3),
                                                ("selu", None)])
def test_calculate_gain_matches_torch(torch, nonlinearity, param):
    assert init.calculate_gain(nonlinearity, param) == pytest.approx(
        torch.nn.init.calculate_gain(nonlinearity, param), rel=1e-15)


def test_gain_and_fan_errors_are_torchs():
    with pytest.raises(ValueError, match=r"Unsupported nonlinearity swish"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match=r"negative_slope True not a valid number"):
        init.calculate_gain("leaky_relu", True)
    with pytest.raises(ValueError, match=r"Fan in and fan out can not be computed for tensor with fewer than 2 "
                                         r"dimensions, got shape \(5,\)"):
        init.xavier_uniform_(nn.Parameter(np.zeros(5, np.float32)))
    with pytest.raises(ValueError, match=r"Mode fan_avg not supported, please use one of fan_in, fan_out"):
        init.kaiming_uniform_(big(), mode="fan_avg")
    with pytest.raises(TypeError, match=r"nn.init fills floating point tensors only, got dtype int64"):
        init.zeros_(np.zeros(3, dtype=np.int64))
    with pytest.raises(TypeError, match=r"nn.init expects a Parameter, Tensor or ndarray, got list"):
        init.ones_([1.0, 2.0])


# --- statistics follow PyTorch's formulas ------------------------------------------------------
def _check_uniform(values, bound):
    assert values.min() >= -bound and values.max() <= bound
    assert values.min() < -0.99 * bound and values.max() > 0.99 * bound
    np.testing.assert_allclose(values.std(), bound / math.sqrt(3), rtol=0.01)
    assert abs(values.mean()) < 0.01 * bound


def _check_normal(values, mean, std):
    np.testing.assert_allclose(values.std(), std, rtol=0.01)
    assert abs(values.mean() - mean) < 0.01 * std


def test_uniform_normal_constant():
    w = big()
    _check_uniform(init.uniform_(w, -0.3, 0.3).numpy(), 0.3)
    assert init.uniform_(w, 2.0, 3.0).numpy().min() >= 2.0 and w.numpy().max() < 3.0
    _check_normal(init.normal_(w, 1.5, 0.2).numpy(), 1.5, 0.2)
    assert (init.constant_(w, 0.25).numpy() == 0.25).all()
    assert (init.ones_(w).numpy() == 1).all() and (init.zeros_(w).numpy() == 0).all()
    np.testing.assert_array_equal(init.eye_(nn.Parameter(np.zeros((2, 3), np.float32))).numpy(), np.eye(2, 3))


def test_xavier_bounds_and_std():
    w = big()
    fan_in, fan_out = 128 * 9, 256 * 9
    _check_uniform(init.xavier_uniform_(w, gain=2.0).numpy(), 2.0 * math.sqrt(6 / (fan_in + fan_out)))
    _check_normal(init.xavier_normal_(w, gain=0.5).numpy(), 0.0, 0.5 * math.sqrt(2 / (fan_in + fan_out)))


@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
@pytest.mark.parametrize("nonlinearity,a", [("relu", 0), ("leaky_relu", 0), ("leaky_relu", math.sqrt(5)),
                                            ("tanh", 0)])
def test_kaiming_bounds_and_std(mode, nonlinearity, a):
    w = big()
    fan = 128 * 9 if mode == "fan_in" else 256 * 9
    gain = {"relu": math.sqrt(2), "tanh": 5 / 3, "leaky_relu": math.sqrt(2 / (1 + a * a))}[nonlinearity]
    _check_uniform(init.kaiming_uniform_(w, a, mode, nonlinearity).numpy(), gain * math.sqrt(3 / fan))
    _check_normal(init.kaiming_normal_(w, a, mode, nonlinearity).numpy(), 0.0, gain / math.sqrt(fan))


def test_kaiming_uniform_with_sqrt5_is_pytorchs_default_layer_init():
    """kaiming_uniform_(a=sqrt(5)) on fan_in gives the +-1/sqrt(fan_in) bound Conv2d and Linear start with."""
    w = big((64, 32, 3, 3))
    init.kaiming_uniform_(w, a=math.sqrt(5))
    _check_uniform(w.numpy(), 1 / math.sqrt(32 * 9))


def test_trunc_normal_stays_in_bounds_with_the_truncated_moments():
    from scipy.stats import truncnorm

    w = big()
    mean, std, a, b = 0.5, 2.0, -1.0, 3.0
    values = init.trunc_normal_(w, mean, std, a, b).numpy()
    assert values.min() >= a and values.max() <= b
    expected = truncnorm((a - mean) / std, (b - mean) / std, loc=mean, scale=std)
    np.testing.assert_allclose(values.mean(), expected.mean(), atol=0.01)
    np.testing.assert_allclose(values.std(), expected.std(), rtol=0.01)
    values = init.trunc_normal_(w, std=0.02).numpy()   # ViT's usage: bounds far out, a plain N(0, 0.02^2)
    _check_normal(values, 0.0, 0.02)


def test_orthogonal_rows_or_columns_are_orthonormal_times_gain():
    for shape in [(6, 10), (10, 6), (4, 2, 3, 3)]:
        w = nn.Parameter(np.zeros(shape, np.float64))
        init.orthogonal_(w, gain=2.0)
        flat = w.numpy().reshape(shape[0], -1)
        gram = flat @ flat.T if flat.shape[0] <= flat.shape[1] else flat.T @ flat
        np.testing.assert_allclose(gram, 4.0 * np.eye(gram.shape[0]), atol=1e-12)


# --- in place, seeded, dtype kept -----------------------------------------------------------------------
def test_in_place_keeps_the_array_registered_dtype_and_returns_its_argument():
    layer = nn.Conv2d(3, 4, 3)
    array, state = layer.weight.numpy(), layer.state_dict()["weight"]
    assert init.kaiming_normal_(layer.weight, nonlinearity="relu") is layer.weight
    assert layer.weight.numpy() is array and state is array and array.dtype == np.float32
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    t = Tensor(np.zeros((3, 3)))
    assert init.ones_(t) is t and t.dtype == np.float64
    a = np.zeros((2, 5))
    assert init.xavier_uniform_(a) is a and a.any()


def test_seeded_by_manual_seed_or_a_generator():
    w = big((8, 8))
    cnnlab.manual_seed(3)
    first = init.kaiming_uniform_(w).numpy().copy()
    cnnlab.manual_seed(3)
    np.testing.assert_array_equal(init.kaiming_uniform_(w).numpy(), first)
    a = init.normal_(big((8, 8)), generator=np.random.default_rng(5)).numpy()
    b = init.normal_(big((8, 8)), generator=np.random.default_rng(5)).numpy()
    np.testing.assert_array_equal(a, b)


def test_apply_with_init_function_as_pytorch_users_write_it():
    def init_weights(m):
        if isinstance(m, nn.Conv2d):
            init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            init.constant_(m.weight, 0.5)

    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4, 2))
    assert model.apply(init_weights) is model
    assert (model[0].bias.numpy() == 0).all() and (model[3].weight.numpy() == 0.5).all()


def test_zero_element_kaiming_warns_like_torch():
    with pytest.warns(UserWarning, match="Initializing zero-element tensors is a no-op"):
        init.kaiming_uniform_(np.zeros((0, 3), np.float32))
