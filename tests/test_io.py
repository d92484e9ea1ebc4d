"""Saving and loading: .npz weights + JSON, atomic writes, no pickle."""
import json
import os

import numpy as np
import pytest

import cnnlab
from cnnlab import Tensor, nn, no_grad
from cnnlab.io import (SavedModel, atomic_write_bytes, load_bundle, load_model, load_npz, load_state_dict,
                       save_bundle, save_model, save_npz, save_state_dict, write_json)
from cnnlab.models import digitsnet, lenet5


def _bn_model():
    cnnlab.manual_seed(3)
    model = digitsnet()
    # give batch norm non-trivial running statistics
    model.train()
    model(Tensor(np.random.default_rng(0).random((8, 1, 8, 8), dtype=np.float32)))
    return model.eval()


def test_save_and_load_model_round_trip(tmp_path):
    model = _bn_model()
    classes = list("abcdefghij")
    save_model(model, tmp_path, (1, 8, 8), classes, mean=[0.3], std=[0.2], name="digitsnet",
               extra={"dataset": "digits"})
    assert sorted(os.listdir(tmp_path)) == ["model.json", "model.npz"]
    saved = load_model(tmp_path)
    assert isinstance(saved, SavedModel)
    assert saved.input_shape == (1, 8, 8) and saved.classes == classes and saved.name == "digitsnet"
    assert saved.mean == (0.3,) and saved.std == (0.2,) and saved.info["dataset"] == "digits"
    assert not saved.model.training
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(saved.model.state_dict()[key], value)
    x = np.random.default_rng(1).random((4, 1, 8, 8), dtype=np.float32)
    with no_grad():
        np.testing.assert_array_equal(saved.model(Tensor(x)).numpy(), model(Tensor(x)).numpy())
    # also from either file's path
    assert load_model(tmp_path / "model.json").name == "digitsnet"
    assert load_model(tmp_path / "model.npz").name == "digitsnet"


def test_weights_are_plain_arrays_with_state_dict_keys(tmp_path):
    model = lenet5()
    save_model(model, tmp_path, (1, 28, 28))
    with np.load(tmp_path / "model.npz", allow_pickle=False) as data:
        assert list(data.files) == list(model.state_dict())
        assert data["0.weight"].shape == (6, 1, 5, 5) and data["0.weight"].dtype == np.float32
    info = json.loads((tmp_path / "model.json").read_text())
    assert info["format"] == "cnnlab-model" and info["classes"] == [str(k) for k in range(10)]
    assert info["preprocessing"] == {"input_shape": [1, 28, 28], "pixel_range": [0.0, 1.0], "mean": None,
                                     "std": None}
    assert info["architecture"]["layers"][0]["type"] == "Conv2d"
    assert info["num_parameters"] == 61706


def test_state_dict_files(tmp_path):
    model = _bn_model()
    save_state_dict(model, tmp_path / "w.npz")
    fresh = digitsnet()
    fresh.load_state_dict(load_state_dict(tmp_path / "w.npz"))
    np.testing.assert_array_equal(fresh.state_dict()["1.running_mean"], model.state_dict()["1.running_mean"])
    assert fresh.state_dict()["1.num_batches_tracked"] == 1


def test_save_model_checks_its_arguments(tmp_path):
    with pytest.raises(ValueError, match="the model gives 10 outputs but 2 class names were given"):
        save_model(lenet5(), tmp_path, (1, 28, 28), classes=["a", "b"])
    with pytest.raises(ValueError, match=r"mean needs one value per channel \(1\), got \[0.1, 0.2\]"):
        save_model(lenet5(), tmp_path, (1, 28, 28), mean=[0.1, 0.2], std=[1, 1])


def test_load_model_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"model .*nowhere does not exist"):
        load_model(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"is not a cnnlab run or model folder: it has no model.json"):
        load_model(tmp_path)
    (tmp_path / "model.json").write_text('{"format": "something-else"}')
    with pytest.raises(ValueError, match=r"is not a cnnlab model description"):
        load_model(tmp_path)
    (tmp_path / "model.json").write_text("{oops")
    with pytest.raises(ValueError, match=r"model description .*model.json is not valid JSON"):
        load_model(tmp_path)
    save_model(lenet5(), tmp_path, (1, 28, 28))
    save_state_dict({"0.weight": np.zeros((6, 1, 5, 5), np.float32)}, tmp_path / "model.npz")
    with pytest.raises(ValueError, match=r"model.npz does not match the architecture.*missing keys"):
        load_model(tmp_path)
    (tmp_path / "model.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"weights file .*model.npz is not a readable .npz file"):
        load_model(tmp_path)


def test_preprocess_normalises_and_checks_shape(tmp_path):
    save_model(digitsnet(), tmp_path, (1, 8, 8), mean=[0.5], std=[0.25])
    saved = load_model(tmp_path)
    out = saved.preprocess(np.full((2, 1, 8, 8), 0.75, np.float32))
    np.testing.assert_allclose(out, 1.0)
    with pytest.raises(ValueError, match=r"takes images of shape \(N, 1, 8, 8\), got \(2, 1, 28, 28\)"):
        saved.preprocess(np.zeros((2, 1, 28, 28), np.float32))


def test_atomic_writes_leave_no_temporary_files(tmp_path):
    path = tmp_path / "sub" / "a.bin"
    atomic_write_bytes(path, b"one")
    atomic_write_bytes(path, b"two")
    assert path.read_bytes() == b"two" and os.listdir(path.parent) == ["a.bin"]
    write_json(tmp_path / "x.json", {"a": np.float32(0.5), "b": np.arange(3), "c": np.int64(7)})
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": 0.5, "b": [0, 1, 2], "c": 7}


def test_npz_without_pickle(tmp_path):
    with pytest.raises(TypeError, match="dtype object"):
        save_npz(tmp_path / "x.npz", {"a": np.array([{"x": 1}], dtype=object)})
    save_npz(tmp_path / "x.npz", {"a": np.arange(4)})
    assert load_npz(tmp_path / "x.npz")["a"].tolist() == [0, 1, 2, 3]


def test_bundle_holds_arrays_and_json(tmp_path):
    big = 2 ** 100 + 1  # RNG states hold 128-bit integers
    save_bundle(tmp_path / "c.npz", {"w": np.ones(3)}, {"epoch": 2, "state": big, "name": "é"})
    arrays, meta = load_bundle(tmp_path / "c.npz")
    assert list(arrays) == ["w"] and meta == {"epoch": 2, "state": big, "name": "é"}
    save_npz(tmp_path / "plain.npz", {"w": np.ones(3)})
    with pytest.raises(ValueError, match="not written by cnnlab"):
        load_bundle(tmp_path / "plain.npz")


def test_load_model_rebuilds_nested_models(tmp_path):
    model = nn.Sequential(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()), nn.Flatten(), nn.Linear(18, 2))
    save_model(model, tmp_path, (1, 5, 5), classes=["no", "yes"])
    assert list(load_model(tmp_path).model.state_dict()) == list(model.state_dict())
