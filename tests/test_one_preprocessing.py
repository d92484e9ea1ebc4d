"""One preprocessing truth: every command and Python entry point normalises a model's input the same way.

A model's mean/std is stored with it (run folders, ``save_model`` folders, ``fit`` folders,
ONNX metadata) or given once with ``--mean/--std``, which always win.  The property test runs
``predict``, ``evaluate``, ``explain``, the report's evaluation, the explorer's engine and
``cnnlab.train.evaluate/predict`` on the same model and image and compares each with a reference
computed by hand with the expected normalisation.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

import cnnlab
import cnnlab.nn as nn
from cnnlab.cli import main


def _net():
    cnnlab.manual_seed(3)
    return nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 64, 10))


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """Models of every kind, an 8x8 digit PNG and the digits test split."""
    from PIL import Image

    from cnnlab.train import fit, load_run_data, train
    root = tmp_path_factory.mktemp("pre")
    train_set, _, test = load_run_data("digits", None, 0.1, 0, None, progress=False)
    png = root / "digit.png"
    Image.fromarray((test.images[0, 0] * 255).round().astype(np.uint8)).save(png)
    paths = {}
    # a plain-loop model saved without mean/std (trained on raw [0, 1] images)
    paths["save"] = root / "saved"
    cnnlab.io.save_model(_net(), paths["save"], input_shape=(1, 8, 8), dataset="digits")
    # fit: normalised with the training images' statistics
    paths["fit"] = root / "fitted"
    fit(_net(), train_set, epochs=1, out_dir=paths["fit"], verbose=0)
    # cnnlab train: a run folder
    paths["run"] = root / "run"
    train(dataset="digits", model="digitsnet", epochs=1, out_dir=paths["run"], verbose=0, limit=400)
    info = {k: json.loads((p / "model.json").read_text())["preprocessing"] for k, p in paths.items()}
    try:
        import onnx  # noqa: F401
        from cnnlab.onnx import export
        from cnnlab.onnx._export import saved_metadata
        fitted = cnnlab.io.load_model(paths["fit"])
        paths["onnx_meta"] = export(fitted.model, root / "meta.onnx", (1, 8, 8), 17, saved_metadata(fitted))
        paths["onnx_bare"] = export(fitted.model, root / "bare.onnx", (1, 8, 8))
    except ImportError:
        pass
    return {"root": root, "png": png, "test": test, "paths": paths, "info": info}


def _expected(lab, kind, flags):
    if flags:
        return float(flags[1]), float(flags[3])
    if kind in ("onnx_meta", "onnx_bare"):
        pre = lab["info"]["fit"] if kind == "onnx_meta" else {"mean": None}
    else:
        pre = lab["info"][kind]
    return (None, None) if pre["mean"] is None else (pre["mean"][0], pre["std"][0])


def _reference(lab, kind, flags, images):
    """Probabilities computed by hand: the bare network on images normalised as expected."""
    from cnnlab.tensor import Tensor, no_grad
    path = lab["paths"][kind]
    model = cnnlab.onnx.load(path) if str(path).endswith(".onnx") else cnnlab.io.load_model(path).model
    mean, std = _expected(lab, kind, flags)
    x = images if mean is None else (images - np.float32(mean)) / np.float32(std)
    with no_grad():
        return _softmax(model.eval()(Tensor(x.astype(np.float32))).numpy().astype(np.float64))


def _raw(png):
    from PIL import Image
    return (np.asarray(Image.open(png), dtype=np.float32) / 255.0)[None, None]


CASES = [("run", []), ("run", ["--mean", "0", "--std", "1"]), ("save", []),
         ("save", ["--mean", "0.5", "--std", "0.25"]), ("fit", []), ("fit", ["--mean", "0.2", "--std", "0.5"]),
         ("onnx_meta", []), ("onnx_bare", []), ("onnx_bare", ["--mean", "0.5", "--std", "0.25"])]


def _cli(capsys, *argv):
    assert main([str(a) for a in argv]) == 0, capsys.readouterr().err
    return capsys.readouterr().out


@pytest.mark.parametrize("kind,flags", CASES, ids=[f"{k}{''.join(f)}" for k, f in CASES])
def test_every_tool_gives_the_same_probabilities(lab, kind, flags, capsys):
    from cnnlab.explain.runs import evaluate_test, load_test_data, open_run
    from cnnlab.explore.engine import Explorer, load_target
    from cnnlab.preprocessing import set_command_line
    from cnnlab.train import evaluate, predict

    if kind not in lab["paths"]:
        pytest.skip("onnx is not installed")
    path, png, test = lab["paths"][kind], lab["png"], lab["test"]
    raw = _raw(png)
    ref = _reference(lab, kind, flags, raw)[0]
    ref_test = _reference(lab, kind, flags, test.images)
    ref_loss = float(-np.log(ref_test[np.arange(len(test.labels)), test.labels]).mean())

    # cnnlab predict
    out = json.loads(_cli(capsys, "predict", path, png, "--top-k", 10, "--json", *flags))
    got = np.zeros(10)
    for p in out[0]["predictions"]:
        got[p["index"]] = p["probability"]
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-6, err_msg="predict")
    # cnnlab evaluate
    ev = json.loads(_cli(capsys, "evaluate", path, "--dataset", "digits", "--json", *flags))
    assert ev["total"] == len(test.labels)
    np.testing.assert_allclose(ev["loss"], ref_loss, rtol=1e-4, err_msg="evaluate")
    # cnnlab explain softmax --run
    text = _cli(capsys, "explain", "softmax", "--run", path, "--input", png, *flags)
    result = text[text.index("result:"):]
    values = [float(v) for v in re.findall(r"^\s+\S+\s+(\S+)\s+\(", result, flags=re.M)]
    np.testing.assert_allclose(values, ref, rtol=2e-3, atol=1e-6, err_msg="explain")
    # the report's evaluation and the explorer's engine, loaded as their commands load
    set_command_line(*(None, None) if not flags else ([float(flags[1])], [float(flags[3])]))
    try:
        run = open_run(path)
        rep = evaluate_test(run, load_test_data(run, "digits"))
        np.testing.assert_allclose(rep.loss, ref_loss, rtol=1e-4, err_msg="report")
        explorer = Explorer(*load_target(path))
        fw = explorer.forward(explorer.prepare_upload(png.read_bytes()))
        np.testing.assert_allclose(fw.probabilities, ref, rtol=1e-4, atol=1e-6, err_msg="explorer")
    finally:
        set_command_line(None, None)
    # Python: load once (with mean=/std= for the flags), then train.predict/evaluate and predict_image
    kw = {} if not flags else {"mean": [float(flags[1])], "std": [float(flags[3])]}
    saved = cnnlab.io.load_model(path, **kw)
    np.testing.assert_allclose(predict(saved, raw)[0], ref, rtol=1e-4, atol=1e-6, err_msg="train.predict(saved)")
    np.testing.assert_allclose(predict(saved.model, raw)[0], ref, rtol=1e-4, atol=1e-6,
                               err_msg="train.predict(saved.model)")
    for model in (saved, saved.model):
        np.testing.assert_allclose(evaluate(model, test)["loss"], ref_loss, rtol=1e-4, err_msg="train.evaluate")
    np.testing.assert_allclose(evaluate(saved.model, test, mean=saved.mean, std=saved.std)["loss"], ref_loss,
                               rtol=1e-4, err_msg="train.evaluate(mean=saved.mean)")
    probs = saved.predict_image(png)
    np.testing.assert_allclose([probs[str(k)] for k in range(10)], ref, rtol=1e-4, atol=1e-6)


def test_a_model_saved_without_mean_is_not_normalised_with_the_data_sets_statistics(lab, capsys):
    """The README's loop: trained on raw images, saved with mean None; evaluate used the digits' mean/std."""
    path, test = lab["paths"]["save"], lab["test"]
    ref = _reference(lab, "save", [], test.images)
    ref_loss = float(-np.log(ref[np.arange(len(test.labels)), test.labels]).mean())
    ev = json.loads(_cli(capsys, "evaluate", path, "--json"))  # no --dataset: save_model recorded it
    assert ev["dataset"] == "digits"
    assert ev["loss"] == pytest.approx(ref_loss, rel=1e-5)
    saved = cnnlab.io.load_model(path)
    assert cnnlab.train.evaluate(saved.model, test)["loss"] == pytest.approx(ref_loss, rel=1e-5)


def test_mean_and_std_on_the_command_line_win_for_run_folders(lab, capsys):
    path = lab["paths"]["run"]
    plain = json.loads(_cli(capsys, "evaluate", path, "--json"))["loss"]
    flagged = json.loads(_cli(capsys, "evaluate", path, "--json", "--mean", "0", "--std", "1"))["loss"]
    assert lab["info"]["run"]["mean"] is not None
    assert flagged != pytest.approx(plain, rel=1e-6)


def test_an_onnx_file_without_metadata_says_once_that_no_normalisation_is_assumed(lab):
    if "onnx_bare" not in lab["paths"]:
        pytest.skip("onnx is not installed")
    bare, png = lab["paths"]["onnx_bare"], lab["png"]
    result = subprocess.run([sys.executable, "-m", "cnnlab", "predict", str(bare), str(png)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if "normalisation" in line]
    assert len(notes) == 1 and "assuming none" in notes[0]
    flagged = subprocess.run([sys.executable, "-m", "cnnlab", "predict", str(bare), str(png), "--mean", "0.5",
                              "--std", "0.25"], capture_output=True, text=True, timeout=300)
    assert flagged.returncode == 0 and "normalisation" not in flagged.stderr
    meta = subprocess.run([sys.executable, "-m", "cnnlab", "predict", str(lab["paths"]["onnx_meta"]), str(png)],
                          capture_output=True, text=True, timeout=300)
    assert meta.returncode == 0 and "normalisation" not in meta.stderr


def test_resolver_rules():
    from cnnlab.preprocessing import Preprocessing, resolve_preprocessing
    recorded = {"mean": [0.1], "std": [0.3]}
    assert resolve_preprocessing(recorded, None, None, 1) == Preprocessing((0.1,), (0.3,), "model")
    assert resolve_preprocessing(recorded, [0.0], [1.0], 1) == Preprocessing((0.0,), (1.0,), "command line")
    assert resolve_preprocessing(recorded, [0.5], None, 3).std == (1.0, 1.0, 1.0)
    assert resolve_preprocessing({"mean": None, "std": None}, None, None, 1).normalises is False
    assert resolve_preprocessing(None, None, None, 1, note=False).origin == "unknown"
    with pytest.raises(ValueError, match="one value per channel"):
        resolve_preprocessing(None, [0.1, 0.2], [0.3, 0.3], 3)
    with pytest.raises(ValueError, match="positive"):
        resolve_preprocessing(None, [0.1], [0.0], 1)


def test_save_model_names_the_folder_and_records_the_data_set(lab, capsys):
    """`save_model` folders had an empty name (" on digits (...)"); the report said "unknown data"."""
    from cnnlab.explain.report import write_report
    path = lab["paths"]["save"]
    out = _cli(capsys, "evaluate", path)
    assert out.startswith("saved on digits (test")
    bare = lab["root"] / "bare-save"
    cnnlab.io.save_model(_net(), bare, input_shape=(1, 8, 8))
    page, _ = write_report(bare, lab["root"] / "report.html", dataset="digits", samples=1)
    html = page.read_text(encoding="utf-8")
    assert "bare-save on digits" in html and "unknown data" not in html


def test_fit_records_its_data_set_and_carries_its_normalisation(lab, capsys):
    info = json.loads((lab["paths"]["fit"] / "model.json").read_text())
    assert info["dataset"] == "digits"
    ev = json.loads(_cli(capsys, "evaluate", lab["paths"]["fit"], "--json"))
    assert ev["total"] == len(lab["test"].labels)


def test_an_image_shrunk_a_lot_warns(tmp_path):
    """A 28x28 digit squeezed into an 8x8 model was predicted without a word."""
    from PIL import Image

    from cnnlab.data.inputs import read_model_input
    rng = np.random.default_rng(0)
    for size, warns in ((28, True), (16, True), (12, False), (8, False)):
        path = tmp_path / f"d{size}.png"
        Image.fromarray((rng.random((size, size)) * 255).astype(np.uint8)).save(path)
        _, notes = read_model_input(path, (1, 8, 8))
        assert any("shrunk to 8x8" in n for n in notes) == warns, (size, notes)
