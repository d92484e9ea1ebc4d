"""The model zoo and model files (JSON / YAML / TOML)."""
import json

import numpy as np
import pytest

import cnnlab
from cnnlab import Tensor, nn, no_grad
from cnnlab.models import (DEFAULT_INPUT_SHAPES, MODELS, build_model, create_model, default_model_name,
                           digitsnet, lenet5, load_model_file, model_to_spec, parse_model_spec, smallnet,
                           tinyvgg)


def _forward(model, shape, n=2):
    x = np.random.default_rng(0).random((n, *shape), dtype=np.float32)
    model.eval()
    with no_grad():
        return model(Tensor(x))


# --- the zoo ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(MODELS))
def test_zoo_model_runs_on_its_default_input(name):
    cnnlab.manual_seed(0)
    shape = DEFAULT_INPUT_SHAPES[name]
    model = MODELS[name](in_channels=shape[0], num_classes=7, input_size=shape[1:])
    assert isinstance(model, (nn.Sequential, nn.Graph))
    out = _forward(model, shape)
    assert out.shape == (2, 7) == model.output_shape((2, *shape))


def test_lenet5_layers_and_parameter_count():
    model = lenet5()
    # conv 1*6*25+6, conv 6*16*25+16, dense 400*120+120, 120*84+84, 84*10+10
    assert model.num_parameters() == 156 + 2416 + 48120 + 10164 + 850 == 61706
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "MaxPool2d", "Flatten",
                     "Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert model[0].padding == (2, 2) and model[0].kernel_size == (5, 5)
    shapes, shape = [], (1, 1, 28, 28)
    for layer in model:
        shape = layer.output_shape(shape)
        shapes.append(shape[1:])
    assert shapes[:7] == [(6, 28, 28), (6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 10, 10), (16, 5, 5), (400,)]


def test_lenet5_input_size_and_channels_are_parameters():
    model = lenet5(in_channels=3, num_classes=5, input_size=32)
    assert model[7].in_features == 16 * 6 * 6
    assert _forward(model, (3, 32, 32)).shape == (2, 5)


def test_tinyvgg_is_cnn_explainers_network():
    model = tinyvgg()
    convs = [m for m in model if isinstance(m, nn.Conv2d)]
    assert len(convs) == 4 and all(c.out_channels == 10 and c.kernel_size == (3, 3) for c in convs)
    shape, sizes = (1, 3, 64, 64), []
    for layer in model:
        shape = layer.output_shape(shape)
        if len(shape) == 4 and not isinstance(layer, nn.ReLU):
            sizes.append(shape[2])
    assert sizes == [62, 60, 30, 28, 26, 13]
    assert model[-1].in_features == 10 * 13 * 13


def test_smallnet_uses_bn_and_global_average_pooling():
    model = smallnet(in_channels=3, input_size=32)
    kinds = {type(m).__name__ for m in model}
    assert {"BatchNorm2d", "GlobalAvgPool2d", "Conv2d"} <= kinds
    assert all(c.bias is None for c in model if isinstance(c, nn.Conv2d))
    assert _forward(model, (3, 32, 32)).shape == (2, 10)


def test_digitsnet_fits_8x8():
    assert _forward(digitsnet(), (1, 8, 8)).shape == (2, 10)


def test_default_model_name_suits_the_data():
    assert default_model_name("digits", (1, 8, 8)) == "digitsnet"
    assert default_model_name("mnist", (1, 28, 28)) == "lenet5"
    assert default_model_name("fashion-mnist", (1, 28, 28)) == "smallnet"
    assert default_model_name("folder", (3, 32, 32)) == "smallnet"


def test_create_model_errors():
    with pytest.raises(ValueError, match=r"model lenet5 does not fit 1x8x8 images: layer 3 \(Conv2d\).*"
                                         r"--model digitsnet"):
        create_model("lenet5", (1, 8, 8), 10)
    with pytest.raises(ValueError, match=r"unknown model 'lenet6': expected one of digitsnet, lenet5"):
        create_model("lenet6", (1, 28, 28), 10)
    model, info = create_model("LeNet5", (1, 28, 28), 4)
    assert info == {"name": "lenet5", "kwargs": {}} and model.output_shape((1, 1, 28, 28)) == (1, 4)


# --- specs and files ------------------------------------------------------------------------------
LENET_FILE = {
    "input_shape": [1, 28, 28],
    "layers": [
        {"type": "Conv2d", "out_channels": 6, "kernel_size": 5, "padding": 2}, {"type": "ReLU"},
        {"type": "MaxPool2d", "kernel_size": 2},
        {"type": "Conv2d", "out_channels": 16, "kernel_size": 5}, {"type": "ReLU"},
        {"type": "MaxPool2d", "kernel_size": 2}, {"type": "Flatten"},
        {"type": "Linear", "out_features": 120}, {"type": "ReLU"},
        {"type": "Dense", "out_features": 84}, {"type": "ReLU"},
        {"type": "Linear", "out_features": 10},
    ],
}


def test_build_model_infers_in_channels_and_in_features():
    model = build_model(LENET_FILE)
    assert model[3].in_channels == 6 and model[7].in_features == 400 and model[9].in_features == 120
    reference = lenet5()
    assert [(k, v.shape) for k, v in model.state_dict().items()] == \
           [(k, v.shape) for k, v in reference.state_dict().items()]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_to_spec_round_trip(name):
    shape = DEFAULT_INPUT_SHAPES[name]
    model = MODELS[name](in_channels=shape[0], input_size=shape[1:])
    spec = json.loads(json.dumps(model_to_spec(model, shape)))
    rebuilt = build_model(spec)
    rebuilt.load_state_dict(model.state_dict())  # same keys, same shapes
    np.testing.assert_array_equal(_forward(model, shape).numpy(), _forward(rebuilt, shape).numpy())


def test_model_to_spec_is_what_a_person_would_write():
    spec = model_to_spec(lenet5(), (1, 28, 28))
    assert spec["layers"][0] == {"type": "Conv2d", "in_channels": 1, "out_channels": 6, "kernel_size": 5,
                                 "padding": 2}
    assert spec["layers"][2] == {"type": "MaxPool2d", "kernel_size": 2}
    nested = nn.Sequential(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()), nn.Flatten())
    spec = model_to_spec(nested, (1, 5, 5))
    assert spec["layers"][0]["type"] == "Sequential"
    assert list(build_model(spec).state_dict()) == ["0.0.weight", "0.0.bias"]


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_model_file_json_yaml_toml_give_the_same_model(tmp_path):
    pytest.importorskip("yaml")
    json_file = _write(tmp_path, "m.json", json.dumps(LENET_FILE))
    yaml_file = _write(tmp_path, "m.yaml", """
input_shape: [1, 28, 28]
layers:
  - {type: Conv2d, out_channels: 6, kernel_size: 5, padding: 2}
  - {type: ReLU}
  - {type: MaxPool2d, kernel_size: 2}
  - {type: Conv2d, out_channels: 16, kernel_size: 5}
  - {type: ReLU}
  - {type: MaxPool2d, kernel_size: 2}
  - {type: Flatten}
  - {type: Linear, out_features: 120}
  - {type: ReLU}
  - {type: Linear, out_features: 84}
  - {type: ReLU}
  - {type: Linear, out_features: 10}
""")
    toml_layers = "".join(
        "\n[[layers]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in layer.items())
        for layer in LENET_FILE["layers"])
    toml_file = _write(tmp_path, "m.toml", "input_shape = [1, 28, 28]\n" + toml_layers)
    keys = None
    for path in (json_file, yaml_file, toml_file):
        model, spec = load_model_file(path)
        assert spec["input_shape"] == [1, 28, 28]
        shapes = [(k, v.shape) for k, v in model.state_dict().items()]
        keys = keys or shapes
        assert shapes == keys
        assert model.output_shape((3, 1, 28, 28)) == (3, 10)


def test_model_file_without_input_shape_takes_the_datas(tmp_path):
    spec = {"layers": [{"type": "Conv2d", "out_channels": 4, "kernel_size": 3}, {"type": "Flatten"},
                       {"type": "Linear", "out_features": 3}]}
    path = _write(tmp_path, "m.json", json.dumps(spec))
    model, _ = load_model_file(path, (2, 5, 5))
    assert model[0].in_channels == 2 and model[2].in_features == 4 * 3 * 3
    with pytest.raises(ValueError, match=r"layer 0 \(Conv2d\): 'in_channels' is not given and cannot be "
                                         r"inferred without the input shape"):
        load_model_file(path)


@pytest.mark.parametrize("layers, message", [
    ([{"type": "ReLU"}, {"type": "Conv3d", "out_channels": 2}],
     r"m\.json: layer 1: unknown layer type 'Conv3d'; known types: AdaptiveAvgPool2d"),
    ([{"type": "Conv2d", "out_channels": 2, "kernal_size": 3}],
     r"layer 0 \(Conv2d\): unknown argument 'kernal_size'; Conv2d accepts: in_channels, out_channels, "
     r"kernel_size"),
    ([{"out_channels": 2}], r"layer 0: missing key 'type'"),
    (["ReLU"], r"layer 0: expected a mapping with a 'type' key"),
    ([{"type": "Conv2d", "kernel_size": 3}], r"layer 0 \(Conv2d\): missing required argument 'out_channels'"),
    ([{"type": "Conv2d", "out_channels": 2, "kernel_size": 9}],
     r"layer 0 \(Conv2d\) cannot take its input of shape \(1, 1, 8, 8\): kernel of size 9"),
    ([{"type": "Sequential", "layers": [{"type": "ReLU"}, {"type": "Swish7"}]}],
     r"layer 0\.1: unknown layer type 'Swish7'"),
    ([{"type": "Dropout", "p": 2}], r"layer 0 \(Dropout\): dropout probability has to be between 0 and 1"),
    ([], r"'layers' must be a non-empty list"),
])
def test_model_file_errors_name_the_layer_and_the_key(tmp_path, layers, message):
    path = _write(tmp_path, "m.json", json.dumps({"input_shape": [1, 8, 8], "layers": layers}))
    with pytest.raises(ValueError, match=message):
        load_model_file(path)


def test_model_file_other_errors(tmp_path):
    path = _write(tmp_path, "m.json", json.dumps(LENET_FILE))
    with pytest.raises(ValueError, match=r"written for inputs of shape \[1, 28, 28\].*data have shape \[1, 8, 8\]"):
        load_model_file(path, (1, 8, 8))
    with pytest.raises(ValueError, match=r"m\.json: unknown top-level key 'layer'"):
        build_model({"layer": []}, source="m.json")
    with pytest.raises(ValueError, match=r"bad\.json is not valid JSON"):
        load_model_file(_write(tmp_path, "bad.json", "{'layers': ["))
    with pytest.raises(FileNotFoundError, match=r"model file .*missing\.yaml does not exist"):
        load_model_file(tmp_path / "missing.yaml")
    with pytest.raises(ValueError, match=r"must end in one of \.json, \.yaml, \.yml, \.toml"):
        load_model_file(_write(tmp_path, "m.txt", "{}"))
    with pytest.raises(ValueError, match=r"input_shape must be a list \[C, H, W\]"):
        build_model({"input_shape": [28, 28], "layers": [{"type": "ReLU"}]})
    with pytest.raises(ValueError, match=r"outputs shape \(10,\) per image, but the data have 3 classes"):
        create_model(str(path), (1, 28, 28), 3)


def test_parse_model_spec_formats():
    assert parse_model_spec('{"layers": []}', "json") == {"layers": []}
    assert parse_model_spec('layers = []', "toml") == {"layers": []}
    with pytest.raises(ValueError, match="not valid TOML"):
        parse_model_spec("layers = [", "toml")


def test_lenet5_matches_pytorch_with_the_same_weights():
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    ours = lenet5()
    theirs = tnn.Sequential(tnn.Conv2d(1, 6, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Conv2d(6, 16, 5),
                            tnn.ReLU(), tnn.MaxPool2d(2), tnn.Flatten(), tnn.Linear(400, 120), tnn.ReLU(),
                            tnn.Linear(120, 84), tnn.ReLU(), tnn.Linear(84, 10))
    # the same state_dict keys as PyTorch: the weights load across unchanged
    theirs.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in ours.state_dict().items()})
    x = np.random.default_rng(1).random((3, 1, 28, 28), dtype=np.float32)
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
    with no_grad():
        got = ours(Tensor(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


# --- the summary table ----------------------------------------------------------------------------
def test_summary_arithmetic_for_lenet5():
    from cnnlab.explain.summary import summary, summary_rows
    rows = summary_rows(lenet5(), (1, 28, 28))
    assert rows[0].arithmetic == ["(28 + 2*2 - 5) / 1 + 1 = 28"]
    assert rows[2].arithmetic == ["(28 + 2*0 - 2) / 2 + 1 = 14"]
    assert rows[3].arithmetic == ["(14 + 2*0 - 5) / 1 + 1 = 10"]
    assert rows[6].arithmetic == ["16*5*5 = 400"]
    assert [r.params for r in rows if r.params] == [156, 2416, 48120, 10164, 850]
    assert all(not r.warnings for r in rows)
    text = summary(lenet5(), (1, 28, 28), "lenet5")
    assert "(28 + 2*2 - 5) / 1 + 1 = 28" in text and "total parameters: 61,706" in text


@pytest.mark.parametrize("name", sorted(MODELS))
def test_summary_shapes_are_the_shapes_a_forward_pass_gives(name):
    from cnnlab.explain.summary import summary_rows
    shape = DEFAULT_INPUT_SHAPES[name]
    model = MODELS[name](in_channels=shape[0], input_size=shape[1:])
    rows = summary_rows(model, shape)
    x = Tensor(np.random.default_rng(0).random((2, *shape), dtype=np.float32))
    model.eval()
    with no_grad():
        values = nn.as_graph(model).run_all(x)
    assert [r.name for r in rows] == list(values)[1:]
    for row in rows:
        assert list(values[row.name].shape[1:]) == row.output_shape, row.name
    assert sum(r.params for r in rows) == model.num_parameters()


def test_axis_arithmetic_cases():
    from cnnlab.explain.summary import axis_arithmetic
    assert axis_arithmetic(28, 5, 1, 2, 2) == ("(28 + 2*2 - 5) / 1 + 1 = 28", 28, None)
    text, out, warning = axis_arithmetic(7, 2, 2, 0, 0, axis="W")
    assert (text, out) == ("floor((7 + 2*0 - 2) / 2) + 1 = 3", 3)
    assert "stride 2 does not divide 5" in warning and "the last 1 input column never reaches a window" in warning
    text, out, warning = axis_arithmetic(6, 3, 2, 1, 1)  # the leftover is padding only
    assert out == 3 and "padding only, no pixels lost" in warning
    assert axis_arithmetic(28, 3, 1, 0, 0, dilation=2)[0] == "(28 + 2*0 - 2*(3 - 1) - 1) / 1 + 1 = 24"
    assert axis_arithmetic(5, 2, 2, 0, 0, ceil_mode=True)[:2] == ("ceil((5 + 2*0 - 2) / 2) + 1 = 3", 3)
    assert axis_arithmetic(5, 3, 1, 0, 1)[0] == "(5 + 0 + 1 - 3) / 1 + 1 = 4"


def test_summary_of_a_model_that_does_not_fit():
    from cnnlab.explain.summary import summary_rows
    with pytest.raises(ValueError, match=r"layer 3 \(Conv2d 6->16, 5x5\) cannot take input of shape \(6, 4, 4\)"):
        summary_rows(lenet5(), (1, 8, 8))
    with pytest.raises(ValueError, match=r"input_shape must be \(C, H, W\)"):
        summary_rows(lenet5(), (28, 28))
