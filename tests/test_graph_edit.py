"""Graph models edit as PyTorch modules do: ``model.fc`` reads a node's layer, ``model.fc = ...`` replaces it
in forward, the state dict, saving, export and the tools; what a Graph cannot honour raises."""
from __future__ import annotations

import numpy as np
import pytest

import cnnlab
import cnnlab.nn as nn
from cnnlab.models import create_model


@pytest.fixture
def resnet8():
    cnnlab.manual_seed(0)
    model, _ = create_model("resnet8", (1, 16, 16), 10)
    return model.eval()


def test_nodes_read_as_attributes(resnet8):
    assert isinstance(resnet8.fc, nn.Linear)
    assert resnet8.fc is resnet8.node("fc").module
    assert resnet8.layer1.conv1 is resnet8.node("layer1.conv1").module
    assert resnet8.layer2.shortcut.conv is resnet8.get_submodule("layer2.shortcut.conv")
    with pytest.raises(AttributeError, match="no node 'layer1.nope'"):
        resnet8.layer1.nope  # noqa: B018
    with pytest.raises(AttributeError):
        resnet8.nothing  # noqa: B018


def test_replacing_fc_changes_forward_state_dict_saving_and_export(resnet8, tmp_path):
    x = cnnlab.randn(2, 1, 16, 16)
    resnet8.fc = nn.Linear(resnet8.fc.in_features, 3)
    assert resnet8(x).shape == (2, 3)
    assert resnet8.output_shape((2, 1, 16, 16)) == (2, 3)
    assert resnet8.state_dict()["fc.weight"].shape == (3, resnet8.fc.in_features)
    assert sum(1 for name, _ in resnet8.named_parameters() if name.startswith("fc.")) == 2
    saved = cnnlab.io.load_model(cnnlab.io.save_model(resnet8, tmp_path / "m", (1, 16, 16)))
    np.testing.assert_allclose(saved.model(x).numpy(), resnet8(x).numpy(), rtol=1e-5, atol=1e-6)
    assert saved.classes == ["0", "1", "2"]


def test_fine_tuning_trains_the_new_layer(resnet8):
    resnet8.fc = nn.Linear(resnet8.fc.in_features, 2)
    opt = cnnlab.optim.SGD(resnet8.fc.parameters(), lr=0.1)
    before = resnet8.fc.weight.numpy().copy()
    resnet8.train()
    loss = nn.CrossEntropyLoss()(resnet8(cnnlab.randn(4, 1, 16, 16)), np.array([0, 1, 0, 1]))
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert not np.allclose(before, resnet8.fc.weight.numpy())


def test_nested_node_replaced_by_attribute_path(resnet8):
    x = cnnlab.randn(1, 1, 16, 16)
    old = resnet8(x).numpy().copy()
    conv = resnet8.layer1.conv1
    resnet8.layer1.conv1 = nn.Conv2d(conv.in_channels, conv.out_channels, 3, padding=1, bias=False)
    assert resnet8.get_submodule("layer1.conv1") is not conv
    assert not np.allclose(resnet8(x).numpy(), old)
    resnet8.set_submodule("layer1.conv1", conv)
    np.testing.assert_allclose(resnet8(x).numpy(), old, rtol=1e-5, atol=1e-6)


def test_what_a_graph_cannot_honour_raises(resnet8):
    with pytest.raises(AttributeError, match="runs only its nodes"):
        resnet8.head = nn.Linear(10, 2)          # a module no node would run
    with pytest.raises(TypeError, match="expected a cnnlab.nn Module"):
        resnet8.fc = 3
    with pytest.raises(AttributeError, match="cannot delete graph node"):
        del resnet8.fc
    resnet8.fc = nn.Linear(7, 3)                 # the wrong input size: forward names the layer
    with pytest.raises(ValueError):
        resnet8(cnnlab.randn(1, 1, 16, 16))


def test_onnx_imported_model_edits_the_same_way(tmp_path):
    pytest.importorskip("onnx")
    from cnnlab.onnx import export, load
    cnnlab.manual_seed(1)
    src = nn.Graph([("conv", nn.Conv2d(1, 4, 3, padding=1), ["input"]), ("relu", nn.ReLU(), ["conv"]),
                    ("flat", nn.Flatten(), ["relu"]), ("fc", nn.Linear(4 * 6 * 6, 10), ["flat"])])
    model = load(export(src, tmp_path / "small.onnx", (1, 6, 6)))
    x = cnnlab.randn(2, 1, 6, 6)
    assert isinstance(model.fc, nn.Linear) and model(x).shape == (2, 10)
    model.fc = nn.Linear(model.fc.in_features, 5)
    assert model(x).shape == (2, 5)
    again = load(export(model, tmp_path / "edited.onnx", (1, 6, 6)))
    assert again(x).shape == (2, 5)
    np.testing.assert_allclose(again(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6)
