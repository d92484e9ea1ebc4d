"""nn: Module/Sequential contract, state_dict with PyTorch's keys, output_shape, PyTorch parity."""
from collections import OrderedDict

import numpy as np
import pytest

import cnnlab
import cnnlab.functional as F
from cnnlab import Tensor, nn

from conftest import gradcheck

RNG = np.random.default_rng(77)


def lenet(lib):
    """LeNet-5-like net; ``lib`` is ``cnnlab.nn`` or ``torch.nn`` (same constructor calls)."""
    return lib.Sequential(
        lib.Conv2d(1, 6, 5, padding=2), lib.ReLU(), lib.MaxPool2d(2),
        lib.Conv2d(6, 16, 5), lib.ReLU(), lib.MaxPool2d(2),
        lib.Flatten(),
        lib.Linear(400, 120), lib.ReLU(), lib.Linear(120, 84), lib.ReLU(), lib.Linear(84, 10))


def bn_net(lib):
    return lib.Sequential(
        lib.Conv2d(3, 4, 3, padding=1, bias=False), lib.BatchNorm2d(4), lib.ReLU(), lib.MaxPool2d(2),
        lib.Conv2d(4, 6, 3, stride=2, padding=1, groups=2), lib.BatchNorm2d(6), lib.GELU(),
        lib.Dropout(0.5), lib.Flatten(), lib.Linear(24, 5))


def torch_state_as_numpy(model):
    return OrderedDict((k, v.detach().cpu().numpy().copy()) for k, v in model.state_dict().items())


# --- Module / Sequential contract -------------------------------------------------------------------
def test_parameters_and_state_dict_keys_follow_pytorch_names():
    model = bn_net(nn)
    names = [n for n, _ in model.named_parameters()]
    assert names == ["0.weight", "1.weight", "1.bias", "4.weight", "4.bias", "5.weight", "5.bias",
                     "9.weight", "9.bias"]
    assert list(model.state_dict()) == [
        "0.weight", "1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked",
        "4.weight", "4.bias", "5.weight", "5.bias", "5.running_mean", "5.running_var",
        "5.num_batches_tracked", "9.weight", "9.bias"]
    assert [n for n, _ in model.named_buffers()] == [
        "1.running_mean", "1.running_var", "1.num_batches_tracked",
        "5.running_mean", "5.running_var", "5.num_batches_tracked"]
    assert model.num_parameters() == sum(p.numpy().size for p in model.parameters())
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in model.parameters())


def test_state_dict_keys_identical_to_torch(torch):
    for build in (lenet, bn_net):
        assert list(build(nn).state_dict()) == list(build(torch.nn).state_dict())
        ours, theirs = build(nn).state_dict(), build(torch.nn).state_dict()
        for k in ours:
            assert tuple(ours[k].shape) == tuple(theirs[k].shape), k


def test_train_eval_propagate_and_zero_grad():
    model = bn_net(nn)
    assert all(m.training for m in model.modules())
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())
    out = model(RNG.standard_normal((2, 3, 8, 8)).astype(np.float32))
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_double_and_float_cast_parameters_and_buffers():
    model = bn_net(nn)
    assert all(p.dtype == np.float32 for p in model.parameters())
    model.double()
    assert all(p.dtype == np.float64 for p in model.parameters())
    assert model[1].running_mean.dtype == np.float64
    assert model[1].num_batches_tracked.dtype == np.int64
    assert model.state_dict()["1.running_var"].dtype == np.float64
    out = model(RNG.standard_normal((2, 3, 8, 8)))
    assert out.dtype == np.float64
    model.float()
    assert model(RNG.standard_normal((2, 3, 8, 8)).astype(np.float32)).dtype == np.float32


def test_sequential_container():
    layers = [nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)]
    seq = nn.Sequential(*layers)
    assert len(seq) == 3 and list(seq) == layers and seq[0] is layers[0] and seq[-1] is layers[2]
    assert isinstance(seq[1:], nn.Sequential) and len(seq[1:]) == 2
    seq.append(nn.Sigmoid())
    assert len(seq) == 4 and "3" in dict(seq.named_modules())
    named = nn.Sequential(OrderedDict([("fc", nn.Linear(3, 2)), ("act", nn.Tanh())]))
    assert list(named.state_dict()) == ["fc.weight", "fc.bias"]
    with pytest.raises(TypeError, match=r"Sequential takes Modules, got function for layer 0"):
        nn.Sequential(F.relu)
    assert "Linear(in_features=3, out_features=4, bias=True)" in repr(seq)


def test_custom_module_with_residual_branch_gradcheck():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 3, padding=1, dtype=np.float64)
            self.scale = nn.Parameter(np.array([0.5]))

        def forward(self, x):
            return F.relu(self.conv(x)) * self.scale + x  # x used twice

    cnnlab.manual_seed(0)
    block = Block()
    assert [n for n, _ in block.named_parameters()] == ["scale", "conv.weight", "conv.bias"]  # as PyTorch
    x = RNG.standard_normal((2, 2, 4, 4))
    w, b, s = block.conv.weight.numpy(), block.conv.bias.numpy(), block.scale.numpy()

    def fn(x, w, b, s):
        return F.relu(F.conv2d(x, w, b, padding=1)) * s + x

    np.testing.assert_allclose(block(Tensor(x)).numpy(), fn(Tensor(x), w, b, s).numpy())
    gradcheck(fn, [x, w, b, s])


def test_manual_seed_makes_initialisation_reproducible_and_pytorch_bounds():
    cnnlab.manual_seed(123)
    a = lenet(nn).state_dict()
    cnnlab.manual_seed(123)
    b = lenet(nn).state_dict()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    conv = nn.Conv2d(4, 8, 3, groups=2)
    bound = 1 / np.sqrt(2 * 3 * 3)
    assert conv.weight.shape == (8, 2, 3, 3) and np.abs(conv.weight.numpy()).max() <= bound
    assert np.abs(conv.bias.numpy()).max() <= bound
    lin = nn.Linear(25, 3)
    assert np.abs(lin.weight.numpy()).max() <= 0.2 and lin.weight.dtype == np.float32
    assert nn.Dense is nn.Linear


# --- load_state_dict ------------------------------------------------------------------------------
def test_load_state_dict_round_trip_and_errors():
    src, dst = lenet(nn), lenet(nn)
    dst.load_state_dict(src.state_dict())
    for k, v in src.state_dict().items():
        np.testing.assert_array_equal(dst.state_dict()[k], v)
    state = OrderedDict(src.state_dict())
    missing = OrderedDict(state)
    del missing["3.bias"]
    with pytest.raises(KeyError, match=r"missing keys \['3.bias'\], unexpected keys \[\]"):
        dst.load_state_dict(missing)
    extra = OrderedDict(state)
    extra["12.weight"] = np.zeros(3)
    with pytest.raises(KeyError, match=r"missing keys \[\], unexpected keys \['12.weight'\]"):
        dst.load_state_dict(extra)
    assert dst.load_state_dict(extra, strict=False) == ([], ["12.weight"])
    assert dst.load_state_dict(missing, strict=False) == (["3.bias"], [])
    wrong = OrderedDict(state)
    wrong["7.weight"] = np.zeros((120, 401), np.float32)
    with pytest.raises(ValueError, match=r"size mismatch for 7.weight: copying a param with shape \(120, 401\), "
                                         r"the shape in the current model is \(120, 400\)"):
        dst.load_state_dict(wrong)


def test_load_state_dict_casts_to_the_model_dtype():
    model = nn.Linear(3, 2)
    model.load_state_dict({"weight": np.ones((2, 3)), "bias": Tensor(np.zeros(2))})
    assert model.weight.dtype == np.float32
    np.testing.assert_array_equal(model.weight.numpy(), 1.0)


# --- PyTorch parity of whole networks -------------------------------------------------------------
def _assert_same_grads(ours, theirs, atol=1e-10, rtol=1e-8):
    t_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        assert p.grad is not None, name
        np.testing.assert_allclose(p.grad, t_params[name].grad.numpy(), atol=atol, rtol=rtol, err_msg=name)


def test_lenet_matches_torch(torch):
    torch.manual_seed(0)
    theirs = lenet(torch.nn).double()
    ours = lenet(nn).double()
    ours.load_state_dict(torch_state_as_numpy(theirs))
    x = RNG.standard_normal((3, 1, 28, 28))
    y = np.array([1, 7, 3])
    xt = Tensor(x, requires_grad=True)
    out = ours(xt)
    assert out.shape == (3, 10) == ours.output_shape(x.shape)
    loss = F.cross_entropy(out, y)
    loss.backward()
    tx = torch.tensor(x, requires_grad=True)
    t_out = theirs(tx)
    t_loss = torch.nn.functional.cross_entropy(t_out, torch.from_numpy(y))
    t_loss.backward()
    np.testing.assert_allclose(out.numpy(), t_out.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(loss.numpy(), t_loss.item(), rtol=1e-12)
    _assert_same_grads(ours, theirs)
    np.testing.assert_allclose(xt.grad, tx.grad.numpy(), atol=1e-12, rtol=1e-8)


def test_lenet_float32_close_to_torch(torch):
    torch.manual_seed(1)
    theirs = lenet(torch.nn)
    ours = lenet(nn)
    ours.load_state_dict(torch_state_as_numpy(theirs))
    x = RNG.standard_normal((2, 1, 28, 28)).astype(np.float32)
    out = ours(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.numpy(), theirs(torch.from_numpy(x)).detach().numpy(), rtol=1e-4, atol=1e-5)


def test_batchnorm_net_matches_torch_train_and_eval(torch):
    torch.manual_seed(2)
    theirs = bn_net(torch.nn).double()
    ours = bn_net(nn).double()
    ours.load_state_dict(torch_state_as_numpy(theirs))
    # Batch norm trains on batch statistics; dropout is switched off on both sides (eval)
    ours.train()
    theirs.train()
    ours[7].eval()
    theirs[7].eval()
    for step in range(2):
        x = RNG.standard_normal((4, 3, 8, 8)) * 2 + 0.5
        y = RNG.integers(0, 5, size=4)
        ours.zero_grad()
        theirs.zero_grad()
        out = ours(x)
        loss = F.cross_entropy(out, y)
        loss.backward()
        t_out = theirs(torch.from_numpy(x))
        torch.nn.functional.cross_entropy(t_out, torch.from_numpy(y)).backward()
        np.testing.assert_allclose(out.numpy(), t_out.detach().numpy(), rtol=1e-9, atol=1e-11)
        _assert_same_grads(ours, theirs, atol=1e-9, rtol=1e-7)
    t_state = torch_state_as_numpy(theirs)
    for k, v in ours.state_dict().items():
        np.testing.assert_allclose(v, t_state[k], rtol=1e-10, atol=1e-12, err_msg=k)
    assert int(ours.state_dict()["1.num_batches_tracked"]) == 2
    ours.eval()
    theirs.eval()
    x = RNG.standard_normal((3, 3, 8, 8))
    np.testing.assert_allclose(ours(x).numpy(), theirs(torch.from_numpy(x)).detach().numpy(), rtol=1e-9, atol=1e-11)


def test_cnnlab_state_dict_loads_into_torch(torch):
    ours = bn_net(nn).double()
    ours.train()
    ours[7].eval()
    ours(RNG.standard_normal((4, 3, 8, 8)))  # move the running statistics
    theirs = bn_net(torch.nn).double()
    theirs.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in ours.state_dict().items()})
    ours.eval()
    theirs.eval()
    x = RNG.standard_normal((2, 3, 8, 8))
    np.testing.assert_allclose(ours(x).numpy(), theirs(torch.from_numpy(x)).detach().numpy(), rtol=1e-9, atol=1e-11)


def test_layers_match_torch_one_by_one(torch):
    torch.manual_seed(3)
    cases = [
        (lambda lib: lib.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2), (2, 4, 7, 6)),
        (lambda lib: lib.Conv2d(2, 3, 3, padding="same", padding_mode="reflect"), (1, 2, 5, 6)),
        (lambda lib: lib.Conv2d(2, 3, 4, padding="same", padding_mode="circular", bias=False), (1, 2, 5, 6)),
        (lambda lib: lib.Conv2d(2, 3, 3, padding=2, padding_mode="replicate"), (1, 2, 4, 5)),
        (lambda lib: lib.Conv2d(2, 3, 3, padding="valid"), (1, 2, 4, 5)),
        (lambda lib: lib.Linear(5, 3), (2, 4, 5)),
        (lambda lib: lib.Linear(5, 3, bias=False), (2, 5)),
        (lambda lib: lib.LeakyReLU(0.2), (3, 4)),
        (lambda lib: lib.Softmax(dim=1), (3, 4, 2)),
        (lambda lib: lib.LogSoftmax(dim=0), (3, 4)),
        (lambda lib: lib.GELU(approximate="tanh"), (3, 4)),
        (lambda lib: lib.GLU(dim=1), (3, 4, 2)),
        (lambda lib: lib.Sigmoid(), (3, 4)),
        (lambda lib: lib.Tanh(), (3, 4)),
        (lambda lib: lib.Flatten(0, 1), (3, 4, 2)),
        (lambda lib: lib.BatchNorm2d(3, eps=1e-3, momentum=0.3), (4, 3, 2, 2)),
        (lambda lib: lib.BatchNorm2d(3, affine=False), (4, 3, 2, 2)),
        (lambda lib: lib.BatchNorm2d(3, track_running_stats=False), (4, 3, 2, 2)),
        (lambda lib: lib.Identity(), (2, 2)),
    ]
    for i, (build, shape) in enumerate(cases):
        theirs = build(torch.nn).double()
        ours = build(nn).double()
        assert list(ours.state_dict()) == list(theirs.state_dict()), i
        ours.load_state_dict(torch_state_as_numpy(theirs))
        for training in (True, False):
            ours.train(training)
            theirs.train(training)
            x = RNG.standard_normal(shape)
            xt = Tensor(x, requires_grad=True)
            tx = torch.tensor(x, requires_grad=True)
            out, t_out = ours(xt), theirs(tx)
            w = RNG.standard_normal(out.shape)
            (out * Tensor(w)).sum().backward()
            (t_out * torch.from_numpy(w)).sum().backward()
            np.testing.assert_allclose(out.numpy(), t_out.detach().numpy(), rtol=1e-10, atol=1e-12, err_msg=str(i))
            np.testing.assert_allclose(xt.grad, tx.grad.numpy(), rtol=1e-9, atol=1e-11, err_msg=str(i))
            if any(True for _ in ours.parameters()):
                _assert_same_grads(ours, theirs)
                ours.zero_grad()
                theirs.zero_grad()
            t_state = torch_state_as_numpy(theirs)
            for k, v in ours.state_dict().items():
                np.testing.assert_allclose(v, t_state[k], rtol=1e-10, err_msg=f"{i} {k}")


# --- output_shape equals the real output shape ----------------------------------------------------
SHAPE_CASES = [
    (lambda: nn.Conv2d(3, 5, 3), (2, 3, 8, 9)),
    (lambda: nn.Conv2d(3, 5, (3, 2), stride=(2, 3), padding=(1, 2), dilation=(2, 1)), (1, 3, 9, 10)),
    (lambda: nn.Conv2d(4, 4, 3, padding="same", stride=2, groups=4), (2, 4, 7, 8)),
    (lambda: nn.Conv2d(2, 6, 4, padding="same"), (1, 2, 5, 5)),
    (lambda: nn.Conv2d(2, 6, 3, padding="valid", stride=3), (1, 2, 11, 7)),
    (lambda: nn.Conv2d(2, 2, 3, padding=((0, 2), (1, 0)), padding_mode="reflect"), (1, 2, 5, 6)),
    (lambda: nn.Conv2d(1, 6, 5, padding=2), (2, 1, 28, 28)),
    (lambda: nn.Linear(4, 3), (5, 4)),
    (lambda: nn.Linear(4, 3), (2, 5, 4)),
    (lambda: nn.Linear(4, 3), (4,)),
    (lambda: nn.Flatten(), (2, 3, 4, 5)),
    (lambda: nn.Flatten(0, -1), (2, 3, 4)),
    (lambda: nn.Flatten(1, 2), (2, 3, 4, 5)),
    (lambda: nn.MaxPool2d(2), (1, 2, 7, 6)),
    (lambda: nn.MaxPool2d(3, 2, 1, ceil_mode=True), (1, 2, 8, 9)),
    (lambda: nn.MaxPool2d(2, 1, 0, dilation=2), (1, 2, 7, 6)),
    (lambda: nn.MinPool2d((2, 3), (1, 2)), (1, 1, 5, 7)),
    (lambda: nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False), (2, 2, 10, 7)),
    (lambda: nn.AdaptiveAvgPool2d((3, 2)), (1, 2, 7, 5)),
    (lambda: nn.AdaptiveMaxPool2d(4), (1, 2, 7, 9)),
    (lambda: nn.AdaptiveAvgPool2d((None, 2)), (1, 2, 7, 5)),
    (lambda: nn.GlobalAvgPool2d(), (2, 3, 4, 5)),
    (lambda: nn.GlobalMaxPool2d(), (2, 3, 4, 5)),
    (lambda: nn.FractionalMaxPool2d(2, output_size=(4, 3), rng=np.random.default_rng(0)), (1, 2, 9, 8)),
    (lambda: nn.FractionalMaxPool2d(2, output_ratio=0.6, rng=np.random.default_rng(0)), (1, 2, 9, 8)),
    (lambda: nn.ReLU(), (2, 3)), (lambda: nn.LeakyReLU(), (2, 3, 4)), (lambda: nn.Sigmoid(), (2,)),
    (lambda: nn.Tanh(), (2, 3)), (lambda: nn.Softmax(1), (2, 3, 4)), (lambda: nn.LogSoftmax(), (2, 3)),
    (lambda: nn.GELU(), (2, 3)), (lambda: nn.GLU(), (2, 6)), (lambda: nn.GLU(1), (2, 6, 3)),
    (lambda: nn.Identity(7, foo=1), (2, 3)), (lambda: nn.Dropout(0.3), (4, 5)),
    (lambda: nn.BatchNorm2d(3), (2, 3, 4, 4)),
    (lambda: lenet(nn), (2, 1, 28, 28)),
    (lambda: bn_net(nn), (2, 3, 8, 8)),
]


@pytest.mark.parametrize("build,shape", SHAPE_CASES, ids=[str(i) for i in range(len(SHAPE_CASES))])
def test_output_shape_equals_actual_shape(build, shape):
    layer = build()
    x = RNG.standard_normal(shape).astype(np.float32)
    predicted = layer.output_shape(shape)
    assert isinstance(predicted, tuple)
    assert predicted == tuple(layer(x).shape)
    layer.eval()
    assert predicted == tuple(layer(x).shape)


def test_output_shape_random_conv_configs():
    rng = np.random.default_rng(8)
    for _ in range(40):
        groups = int(rng.choice([1, 2]))
        cin, cout = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
        k = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        dilation = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        padding = [0, 1, (1, 2), ((0, 1), (2, 0)), "same", "valid"][int(rng.integers(0, 6))]
        shape = (1, cin, int(rng.integers(6, 10)), int(rng.integers(6, 10)))
        layer = nn.Conv2d(cin, cout, k, stride, padding, dilation, groups,
                          padding_mode=str(rng.choice(["zeros", "reflect", "replicate", "circular"])))
        assert layer.output_shape(shape) == layer(RNG.standard_normal(shape).astype(np.float32)).shape


# --- layer errors -------------------------------------------------------------------------------------
def test_linear_feature_mismatch():
    layer = nn.Linear(400, 120)
    with pytest.raises(ValueError, match=r"linear: input of shape \(2, 256\) has 256 features, but weight of "
                                         r"shape \(120, 400\) expects 400"):
        layer(np.zeros((2, 256), np.float32))
    with pytest.raises(ValueError, match=r"expects inputs with 400 features in the last dimension, got shape "
                                         r"\(2, 256\)"):
        layer.output_shape((2, 256))


def test_conv_and_batchnorm_layer_shape_errors():
    conv = nn.Conv2d(3, 8, 3)
    with pytest.raises(ValueError, match=r"expected input\[1, 32, 28, 28\] to have 3 channels, but got 32 "
                                         r"channels instead"):
        conv(np.zeros((1, 32, 28, 28), np.float32))
    with pytest.raises(ValueError, match=r"expects 3 input channels, got input shape \(1, 32, 28, 28\)"):
        conv.output_shape((1, 32, 28, 28))
    with pytest.raises(ValueError, match=r"Conv2d expects a 4-D input \(N, C, H, W\), got shape \(3, 28, 28\)"):
        conv.output_shape((3, 28, 28))
    bn = nn.BatchNorm2d(4)
    with pytest.raises(ValueError, match=r"expects input of shape \(N, 4, H, W\), got \(2, 3, 5, 5\)"):
        bn(np.zeros((2, 3, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"expects 4 channels, got shape \(2, 3, 5, 5\)"):
        bn.output_shape((2, 3, 5, 5))
    with pytest.raises(ValueError, match=r"GLU halves dimension -1, which must be even; got shape \(2, 5\)"):
        nn.GLU().output_shape((2, 5))


def test_layer_constructor_errors():
    with pytest.raises(ValueError, match=r"`in_channels` \(=3\) must be divisible by `groups` \(=2\)"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match=r"`out_channels` \(=5\) must be divisible by `groups` \(=2\)"):
        nn.Conv2d(4, 5, 3, groups=2)
    with pytest.raises(ValueError, match=r"`out_channels` \(=0\) must be a positive int"):
        nn.Conv2d(4, 0, 3)
    with pytest.raises(ValueError, match=r"padding_mode must be one of \('zeros', 'reflect', 'replicate', "
                                         r"'circular'\), got 'mirror'"):
        nn.Conv2d(1, 1, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match=r"padding string must be 'valid' or 'same', got 'full'"):
        nn.Conv2d(1, 1, 3, padding="full")
    with pytest.raises(ValueError, match=r"`kernel_size` must be positive, got 0"):
        nn.Conv2d(1, 1, 0)
    with pytest.raises(ValueError, match=r"`in_features` \(=-1\) must be a positive int"):
        nn.Linear(-1, 3)
    with pytest.raises(ValueError, match=r"dropout probability has to be between 0 and 1, but got 2"):
        nn.Dropout(2)
    with pytest.raises(ValueError, match=r"approximate must be 'none' or 'tanh', got 'fast'"):
        nn.GELU("fast")


def test_dropout_layer_uses_training_flag_and_seed():
    x = np.ones((50, 40), np.float32)
    drop = nn.Dropout(0.5)
    cnnlab.manual_seed(5)
    a = drop(x).numpy()
    cnnlab.manual_seed(5)
    b = drop(x).numpy()
    np.testing.assert_array_equal(a, b)
    assert 0.4 < (a == 0).mean() < 0.6
    drop.eval()
    np.testing.assert_array_equal(drop(x).numpy(), x)


def test_sequential_slice_keeps_pytorch_key_names():
    """``model[1:]`` keeps the children's names, so its state_dict keys match the full model's (as PyTorch)."""
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2))
    tail = seq[1:]
    assert list(tail.state_dict()) == ["2.weight", "2.bias"]
    np.testing.assert_array_equal(tail.state_dict()["2.weight"], seq.state_dict()["2.weight"])


def test_conv2d_layer_accepts_the_padding_forms_the_op_accepts():
    x = RNG.standard_normal((1, 1, 5, 5))
    for padding in (((0, 1), (1, 0)), [[0, 1], [1, 0]], [1, 2], (1, 2), 1, "same", "valid"):
        layer = nn.Conv2d(1, 1, 3, padding=padding, dtype=np.float64)
        want = F.conv2d(x, layer.weight, layer.bias, padding=padding)
        np.testing.assert_array_equal(layer(x).numpy(), want.numpy())
        assert layer.output_shape(x.shape) == want.shape
