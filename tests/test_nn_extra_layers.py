"""BatchNorm1d, Dropout2d, Unflatten, Hardtanh/ReLU6 and the padding layers: PyTorch parity,
gradient checks, shapes, errors; and every new layer written to a model file and rebuilt."""
import json

import numpy as np
import pytest

import cnnlab.functional as F
from cnnlab import Tensor, nn
from cnnlab.models import build_model, model_to_spec

from conftest import gradcheck, torch_parity

RNG = np.random.default_rng(9)


def load_torch_state(ours, theirs):
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})


# --- BatchNorm1d -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 5)])
@pytest.mark.parametrize("kwargs", [dict(), dict(momentum=None), dict(momentum=0.3, affine=False),
                                    dict(track_running_stats=False)])
def test_batchnorm1d_matches_torch_in_training_and_eval(torch, shape, kwargs):
    ours, theirs = nn.BatchNorm1d(3, **kwargs).double(), torch.nn.BatchNorm1d(3, **kwargs).double()
    if ours.affine:
        with torch.no_grad():
            theirs.weight.uniform_(0.5, 1.5)
            theirs.bias.uniform_(-1, 1)
        load_torch_state(ours, theirs)
    for step in range(3):  # running statistics move as PyTorch's do
        x = RNG.standard_normal(shape) * 2 + step
        out, ref = ours(Tensor(x, requires_grad=True)), theirs(torch.tensor(x, requires_grad=True))
        np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), atol=1e-12)
    for key, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[key], value.numpy(), atol=1e-12, err_msg=key)
    ours.eval(), theirs.eval()
    x = RNG.standard_normal(shape)
    torch_parity(torch, ours, theirs, [x])
    assert ours.output_shape(shape) == shape


def test_batchnorm1d_training_gradients_match_torch_for_input_and_parameters(torch):
    ours, theirs = nn.BatchNorm1d(4).double(), torch.nn.BatchNorm1d(4).double()
    x = RNG.standard_normal((5, 4, 3))
    torch_parity(torch, ours, theirs, [x])
    ours.zero_grad()
    theirs.zero_grad()
    out, ref = ours(Tensor(x)), theirs(torch.tensor(x))
    g = RNG.standard_normal(out.shape)
    out.backward(g)
    ref.backward(torch.tensor(g))
    np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), atol=1e-11)
    np.testing.assert_allclose(ours.bias.grad, theirs.bias.grad.numpy(), atol=1e-11)


@pytest.mark.parametrize("shape", [(6, 2), (3, 2, 4)])
def test_batchnorm1d_gradcheck(shape):
    x = RNG.standard_normal(shape)
    bn = nn.BatchNorm1d(2, track_running_stats=False).double()
    gradcheck(lambda t: bn(t), [x])
    bn.eval()
    gradcheck(lambda t: bn(t), [x])


def test_batchnorm1d_errors():
    bn = nn.BatchNorm1d(3)
    with pytest.raises(ValueError, match=r"expects input of shape \(N, 3\) or \(N, 3, L\), got \(2, 3, 4, 4\)"):
        bn(np.zeros((2, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"expects input of shape \(N, 3\) or \(N, 3, L\), got shape \(2, 4\)"):
        bn.output_shape((2, 4))
    with pytest.raises(ValueError, match=r"expected more than 1 value per channel when training"):
        bn(np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match=r"`num_features` \(=0\) must be a positive int"):
        nn.BatchNorm1d(0)


# --- Dropout2d -------------------------------------------------------------------------------------------
def test_dropout2d_zeroes_whole_channels_and_scales_the_rest():
    x = np.ones((64, 32, 3, 3), np.float32)
    layer = nn.Dropout2d(0.25, rng=np.random.default_rng(0))
    out = layer(Tensor(x, requires_grad=True))
    per_channel = out.numpy().reshape(64, 32, 9)
    assert set(np.unique(per_channel)) == {0.0, np.float32(1 / 0.75)}
    assert (per_channel.min(axis=2) == per_channel.max(axis=2)).all()   # all or nothing per channel
    assert abs((per_channel[:, :, 0] == 0).mean() - 0.25) < 0.03
    assert out.dtype == np.float32
    layer.eval()
    assert layer(x) is not None and (layer(Tensor(x)).numpy() == x).all()


def test_dropout2d_gradient_is_the_same_mask():
    x = Tensor(RNG.standard_normal((4, 5, 2, 2)), requires_grad=True)
    out = F.dropout2d(x, 0.5, rng=np.random.default_rng(1))
    out.sum().backward()
    np.testing.assert_allclose(x.grad, out.numpy() / x.numpy())
    assert (F.dropout2d(x, 1.0).numpy() == 0).all() and F.dropout2d(x, 0.5, training=False) is x


def test_dropout2d_errors():
    with pytest.raises(ValueError, match=r"dropout probability has to be between 0 and 1, but got 1.5"):
        nn.Dropout2d(1.5)
    with pytest.raises(ValueError, match=r"dropout2d: expected a 4-D input \(N, C, H, W\), got shape \(2, 3\)"):
        F.dropout2d(np.zeros((2, 3)), 0.5)
    with pytest.raises(ValueError, match=r"Dropout2d expects a 4-D input \(N, C, H, W\), got shape \(2, 3\)"):
        nn.Dropout2d().output_shape((2, 3))


# --- Unflatten ----------------------------------------------------------------------------------------------
def test_unflatten_matches_torch_and_inverts_flatten(torch):
    x = RNG.standard_normal((2, 48))
    for dim, size in ((1, (3, 4, 4)), (-1, (2, -1)), (0, (1, 2))):
        torch_parity(torch, nn.Unflatten(dim, size), torch.nn.Unflatten(dim, size), [x])
        assert nn.Unflatten(dim, size).output_shape(x.shape) == nn.Unflatten(dim, size)(x).shape
    y = nn.Sequential(nn.Flatten(), nn.Unflatten(1, (3, 4, 4)))(x.reshape(2, 3, 4, 4))
    np.testing.assert_array_equal(y.numpy(), x.reshape(2, 3, 4, 4))
    assert repr(nn.Unflatten(1, (3, 4, 4))) == repr(torch.nn.Unflatten(1, (3, 4, 4)))


def test_unflatten_errors():
    with pytest.raises(ValueError, match=r"unflatten: Provided sizes \[5, 5\] don't multiply up to the size of "
                                         r"dim 1 \(48\)"):
        nn.Unflatten(1, (5, 5))(np.zeros((2, 48)))
    with pytest.raises(ValueError, match=r"Provided sizes \[5, -1\]"):
        nn.Unflatten(1, (5, -1)).output_shape((2, 48))
    with pytest.raises(TypeError, match=r"`unflattened_size` must be a tuple of positive ints"):
        nn.Unflatten(1, 7)
    with pytest.raises(IndexError, match=r"Dimension out of range"):
        nn.Unflatten(3, (2, 2)).output_shape((2, 4))


# --- Hardtanh and ReLU6 ---------------------------------------------------------------------------------
def test_hardtanh_and_relu6_match_torch_values_and_gradients(torch):
    x = RNG.uniform(-8, 8, (4, 50))
    x[0, :4] = [-1.0, 1.0, 0.0, 6.0]                     # the edges: gradient zero on them, as PyTorch
    torch_parity(torch, nn.ReLU6(), torch.nn.ReLU6(), [x])
    torch_parity(torch, nn.Hardtanh(), torch.nn.Hardtanh(), [x])
    torch_parity(torch, nn.Hardtanh(-2.5, 0.5), torch.nn.Hardtanh(-2.5, 0.5), [x])
    assert repr(nn.Hardtanh(-2, 3)) == repr(torch.nn.Hardtanh(-2, 3)) and repr(nn.ReLU6()) == "ReLU6()"


def test_hardtanh_gradcheck_away_from_the_edges():
    x = RNG.uniform(-3, 3, (3, 7))
    x[np.abs(np.abs(x) - 1) < 1e-3] = 0.5
    gradcheck(lambda t: F.hardtanh(t), [x])
    with pytest.raises(ValueError, match=r"`max_val` \(=1.0\) must be larger than `min_val` \(=2.0\)"):
        nn.Hardtanh(2.0, 1.0)


# --- padding layers --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,args", [("ZeroPad2d", (2,)), ("ZeroPad2d", ((1, 0, 2, 3),)),
                                       ("ConstantPad2d", ((0, 2, 1, 0), 3.5)), ("ReflectionPad2d", ((1, 2, 0, 2),)),
                                       ("ReplicationPad2d", (3,))])
def test_padding_layers_match_torch(torch, name, args):
    x = RNG.standard_normal((2, 3, 4, 5))
    ours, theirs = getattr(nn, name)(*args), getattr(torch.nn, name)(*args)
    torch_parity(torch, ours, theirs, [x])
    assert ours.output_shape(x.shape) == ours(x).shape and repr(ours) == repr(theirs)


def test_pad_gradcheck_and_errors():
    x = RNG.standard_normal((1, 2, 3, 3))
    for mode in ("constant", "reflect", "replicate", "circular"):
        gradcheck(lambda t: F.pad(t, (1, 2, 2, 0), mode=mode), [x])
    with pytest.raises(ValueError, match=r"`padding` must be a non-negative int or \(left, right, top, bottom\), "
                                         r"got \(1, 2\)"):
        nn.ZeroPad2d((1, 2))
    with pytest.raises(ValueError, match=r"reflect padding .* must be smaller than the input size \(3, 3\)"):
        F.pad(x, (3, 0, 0, 0), mode="reflect")
    with pytest.raises(ValueError, match=r"padding mode 'reflect' doesn't take in value argument"):
        F.pad(x, (1, 1), mode="reflect", value=2.0)


# --- model files ---------------------------------------------------------------------------------------------
def new_layer_model():
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU6(), nn.Dropout2d(0.1),
        nn.ConvTranspose2d(4, 4, 3, stride=2, padding=1, output_padding=1, groups=2, bias=False, dilation=1),
        nn.Upsample(scale_factor=0.5, mode="bilinear", align_corners=True),
        nn.ZeroPad2d((1, 0, 1, 0)), nn.ConstantPad2d(1, -1.0), nn.ReflectionPad2d(1), nn.ReplicationPad2d((0, 1, 0, 1)),
        nn.Hardtanh(-2.0, 2.0), nn.UpsamplingBilinear2d(scale_factor=2), nn.UpsamplingNearest2d(size=(9, 7)),
        nn.Upsample(size=(6, 5)), nn.Flatten(), nn.Unflatten(1, (4, 30)),
        nn.BatchNorm1d(4, momentum=0.2, affine=False), nn.Flatten(), nn.Linear(120, 3))


def test_every_new_layer_round_trips_through_a_model_file():
    model = new_layer_model().eval()
    spec = json.loads(json.dumps(model_to_spec(model, (1, 6, 6))))
    rebuilt = build_model(spec).eval()
    assert [type(m) for m in rebuilt] == [type(m) for m in model]
    for ours, theirs in zip(model, rebuilt):
        assert repr(ours) == repr(theirs)
        assert vars(ours).keys() == vars(theirs).keys()
    assert list(rebuilt.state_dict()) == list(model.state_dict())
    rebuilt.load_state_dict(model.state_dict())
    x = RNG.standard_normal((2, 1, 6, 6)).astype(np.float32)
    np.testing.assert_array_equal(rebuilt(x).numpy(), model(x).numpy())
    assert model.output_shape(x.shape) == (2, 3)
    assert spec["layers"][3] == {"type": "ConvTranspose2d", "in_channels": 4, "out_channels": 4, "kernel_size": 3,
                                 "stride": 2, "padding": 1, "output_padding": 1, "groups": 2, "bias": False}


class Decoder(nn.Module):
    """A user's module: layers held in a ModuleList and a ModuleDict, the new layers inside."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.ModuleList([nn.Conv2d(1, 4, 3, padding=1), nn.ReLU6(), nn.MaxPool2d(2)])
        self.decoder = nn.ModuleDict({"up": nn.ConvTranspose2d(4, 2, 2, stride=2), "bn": nn.BatchNorm2d(2)})
        self.resize = nn.Upsample(scale_factor=0.5, mode="bilinear")
        self.head = nn.Sequential(nn.Flatten(), nn.Unflatten(1, (2, -1)), nn.BatchNorm1d(2), nn.Flatten(),
                                  nn.Linear(2 * 8 * 8, 3))

    def forward(self, x):
        for layer in self.encoder:
            x = layer(x)
        x = self.decoder["bn"](self.decoder["up"](x))
        return self.head(self.resize(x))


def test_a_module_with_containers_and_new_layers_traces_and_round_trips_through_a_model_file():
    model = Decoder()
    graph = nn.trace(model, (1, 16, 16))
    assert [n.name for n in graph.nodes] == ["encoder.0", "encoder.1", "encoder.2", "decoder.up", "decoder.bn",
                                             "resize", "head.0", "head.1", "head.2", "head.3", "head.4"]
    rebuilt = build_model(json.loads(json.dumps(model_to_spec(graph, (1, 16, 16)))))
    rebuilt.load_state_dict(model.state_dict())
    model.eval(), rebuilt.eval()
    x = RNG.standard_normal((2, 1, 16, 16)).astype(np.float32)
    np.testing.assert_array_equal(rebuilt(x).numpy(), model(x).numpy())
    assert model.output_shape(x.shape) == rebuilt.output_shape(x.shape) == (2, 3)
