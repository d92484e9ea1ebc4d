"""Inputs that used to give a silently wrong answer: each is now refused (or handled) in one line."""
import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from cnnlab.cli import main


def run_cli(argv):
    """``(status, stdout, stderr)`` of ``cnnlab argv`` run in-process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(a) for a in argv])
    return status, out.getvalue(), err.getvalue()


def one_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "error:" in lines[0] and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    pytest.importorskip("sklearn")
    out = tmp_path_factory.mktemp("silent") / "run"
    status, _, err = run_cli(["train", "--epochs", 1, "--limit", 100, "--out", out, "--quiet"])
    assert status == 0, err
    return out


def _weights(folder: Path) -> dict:
    with np.load(folder / "model.npz") as z:
        return {k: z[k].copy() for k in z.files}


@pytest.fixture
def nan_run(run, tmp_path):
    bad = tmp_path / "nan-run"
    shutil.copytree(run, bad)
    state = _weights(bad)
    first = next(k for k, v in state.items() if v.dtype.kind == "f" and k.endswith("weight"))
    state[first].flat[0] = np.nan
    np.savez(bad / "model.npz", **state)
    return bad, first


def test_export_refuses_a_nan_model(nan_run, tmp_path):
    pytest.importorskip("onnx")
    bad, key = nan_run
    status, _, err = run_cli(["export", bad, tmp_path / "m.onnx"])
    assert status == 1 and f"{key} hold NaN/inf values (training diverged)" in one_error(err)
    assert not (tmp_path / "m.onnx").exists()


def test_report_refuses_a_nan_model(nan_run, tmp_path):
    pytest.importorskip("matplotlib")
    bad, key = nan_run
    status, _, err = run_cli(["report", bad, "--output", tmp_path / "r.html"])
    assert status == 1 and f"{key} hold NaN/inf values (training diverged)" in one_error(err)
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128, "U3"])
def test_model_npz_with_complex_or_text_weights_is_refused(run, tmp_path, dtype):
    import warnings
    bad = tmp_path / "complex-run"
    shutil.copytree(run, bad)
    state = _weights(bad)
    key = next(k for k, v in state.items() if v.dtype.kind == "f" and k.endswith("weight"))
    shape = state[key].shape
    state[key] = (state[key] + 1j).astype(dtype) if np.dtype(dtype).kind == "c" else np.full(shape, "1.0", dtype)
    np.savez(bad / "model.npz", **state)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ComplexWarning either
        status, out, err = run_cli(["predict", bad, run.parent / "nothing.png"])
    line = one_error(err)
    assert status == 1 and "model.npz" in line and repr(key) in line and str(np.dtype(dtype)) in line


def test_load_state_dict_refuses_complex_values():
    from cnnlab import nn
    layer = nn.Linear(2, 2)
    state = {k: np.asarray(v) + 1j for k, v in layer.state_dict().items()}
    with pytest.raises(ValueError, match=r"weight holds complex numbers \(dtype complex"):
        layer.load_state_dict(state)


# --- a softmax over the batch axis mixes the images of a batch ---------------------------------------
@pytest.mark.parametrize("layer", [{"type": "Softmax", "dim": 0}, {"type": "LogSoftmax", "dim": -2},
                                   {"type": "Softmax", "dim": 0, "name": "probs"}])
def test_model_file_with_a_softmax_over_the_batch_is_refused_naming_the_layer(tmp_path, layer):
    from cnnlab.models import load_model_file
    spec = tmp_path / "net.json"
    spec.write_text(json.dumps({"input_shape": [1, 8, 8], "layers": [
        {"type": "Flatten"}, {"type": "Linear", "out_features": 3}, layer]}))
    pattern = r"layer (2|'probs').*Softmax\(dim=-?\d\) normalises over dim 0, the batch axis"
    with pytest.raises(ValueError, match=pattern):
        load_model_file(spec)


def test_softmax_over_classes_still_builds():
    from cnnlab import nn
    assert nn.Sequential(nn.Flatten(), nn.Linear(64, 3), nn.Softmax(dim=1)).output_shape((2, 1, 8, 8)) == (2, 3)
    assert nn.Softmax(dim=-1).output_shape((2, 3)) == (2, 3)


def _onnx_softmax_model(path, axis):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    w = numpy_helper.from_array(np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["x"], ["f"], name="flat"),
         helper.make_node("MatMul", ["f", "w"], ["logits"], name="scores"),
         helper.make_node("Softmax", ["logits"], ["y"], name="probs", axis=axis)],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_onnx_softmax_over_the_batch_axis_is_refused_naming_the_node(tmp_path):
    from cnnlab.onnx import OnnxImportError, load
    path = _onnx_softmax_model(tmp_path / "m.onnx", axis=0)
    with pytest.raises(OnnxImportError, match=r"node 'probs' \(Softmax.*normalises over dim 0, the batch axis"):
        load(path)
    assert load(_onnx_softmax_model(tmp_path / "ok.onnx", axis=1)).output_shape((2, 1, 8, 8)) == (2, 3)


# --- normalisation of foreign ONNX files: a std of 0, inf or NaN zeroes or NaNs every image ---------------
@pytest.mark.parametrize("flag, value", [("--std", "inf"), ("--std", "0"), ("--std", "nan"), ("--std", "-1"),
                                         ("--std", "1,1e309"), ("--std", "3e38"), ("--std", "1e-320"),
                                         ("--mean", "nan"), ("--mean", "-inf"), ("--mean", "1e30")])
def test_predict_refuses_a_std_or_mean_that_is_not_a_finite_positive_number(run, tmp_path, flag, value):
    pytest.importorskip("onnx")
    Image = pytest.importorskip("PIL.Image")
    model = tmp_path / "m.onnx"
    assert run_cli(["export", run, model])[0] == 0
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "d.png")
    status, out, err = run_cli(["predict", model, tmp_path / "d.png", f"{flag}={value}"])
    assert status == 2 and out == "" and f"argument {flag}:" in one_error(err.splitlines()[-1])


@pytest.mark.parametrize("kwargs", [dict(std=[float("inf")]), dict(std=[0.0]), dict(mean=[float("nan")], std=[1.0]),
                                    dict(std=["1"])])
def test_load_saved_refuses_bad_normalisation_from_the_file_or_the_caller(run, tmp_path, kwargs):
    pytest.importorskip("onnx")
    from cnnlab.onnx import load_saved
    model = tmp_path / "m.onnx"
    assert run_cli(["export", run, model])[0] == 0
    with pytest.raises(ValueError, match=r"m\.onnx: the (std|mean) .* must be (positive )?finite numbers"):
        load_saved(model, **kwargs)


# --- a checkpoint's optimizer state with NaN ---------------------------------------------------------------
@pytest.mark.parametrize("prefix", ["optim/", "model/"])
def test_resume_refuses_a_checkpoint_holding_nan(tmp_path, prefix):
    pytest.importorskip("sklearn")
    from cnnlab.io import load_bundle, save_bundle
    from cnnlab.train import train
    out = tmp_path / "run"
    train("digits", epochs=1, limit=100, out_dir=out, verbose=0)
    arrays, meta = load_bundle(out / "checkpoint.npz")
    name = next(k for k, v in arrays.items() if k.startswith(prefix) and v.dtype.kind == "f" and v.size)
    arrays[name].flat[0] = np.nan
    save_bundle(out / "checkpoint.npz", arrays, meta)
    with pytest.raises(ValueError, match=rf"checkpoint.npz: array {name!r} holds NaN/inf values"):
        train(resume=out, epochs=2, verbose=0)
