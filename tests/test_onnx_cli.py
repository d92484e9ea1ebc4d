"""The command line with ONNX files: export, every run-taking command on a .onnx file, the ONNX
Runtime engine, and one-line errors (exit 2) for files that are not usable models."""
from __future__ import annotations

import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from cnnlab import manual_seed  # noqa: E402
from cnnlab.io import save_model  # noqa: E402
from cnnlab.models import create_model  # noqa: E402
from test_cli import assert_one_line_error, cnnlab  # noqa: E402


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    manual_seed(0)
    model, _ = create_model("digitsnet", (1, 8, 8), 10)
    folder = tmp_path_factory.mktemp("run")
    save_model(model.eval(), folder, (1, 8, 8), classes=[str(k) for k in range(10)], mean=[0.3], std=[0.4],
               name="digitsnet")
    (folder / "config.json").write_text(json.dumps({"dataset": "digits", "seed": 0, "val_fraction": 0.1}))
    return folder


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "digits.onnx"
    result = cnnlab("export", run_dir, out, "--opset", "13")
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout
    return out


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    from PIL import Image
    path = tmp_path_factory.mktemp("img") / "seven.png"
    pixels = np.zeros((8, 8), dtype=np.uint8)
    pixels[1, 1:7] = 255
    pixels[2:7, 5] = 255
    Image.fromarray(pixels).save(path)
    return path


def test_export_writes_metadata(exported):
    proto = onnx.load(str(exported))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["cnnlab.classes"])[:2] == ["0", "1"]
    assert json.loads(meta["cnnlab.mean"]) == [0.3] and json.loads(meta["cnnlab.std"]) == [0.4]
    assert json.loads(meta["cnnlab.input_shape"]) == [1, 8, 8]
    assert proto.opset_import[0].version == 13
    onnx.checker.check_model(proto, full_check=True)


def test_predict_on_onnx_file_and_engine(run_dir, exported, image):
    runs = [cnnlab("predict", target, image, "--json", *extra) for target, extra in
            ((run_dir, ()), (exported, ()), (exported, ("--engine", "onnxruntime")),
             (run_dir, ("--engine", "onnxruntime")))]
    for r in runs:
        assert r.returncode == 0, r.stderr
    results = [json.loads(r.stdout)[0]["predictions"] for r in runs]
    for other in results[1:]:
        assert [p["class"] for p in other] == [p["class"] for p in results[0]]
        np.testing.assert_allclose([p["probability"] for p in other], [p["probability"] for p in results[0]],
                                   rtol=1e-4, atol=1e-6)


def test_evaluate_summary_explain_on_onnx_file(run_dir, exported, image, tmp_path):
    base = cnnlab("evaluate", run_dir, "--json", "--limit", "200")
    assert base.returncode == 0, base.stderr
    for extra in ((), ("--engine", "onnxruntime")):
        r = cnnlab("evaluate", exported, "--dataset", "digits", "--json", "--limit", "200", *extra)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["accuracy"] == pytest.approx(json.loads(base.stdout)["accuracy"])
    r = cnnlab("summary", exported)
    assert r.returncode == 0, r.stderr
    assert "Conv2d" in r.stdout
    r = cnnlab("explain", "features", exported, image, "--output-dir", tmp_path / "features")
    assert r.returncode == 0, r.stderr
    assert any((tmp_path / "features").iterdir())
    r = cnnlab("explain", "saliency", exported, image, "--output", tmp_path / "why.png")
    assert r.returncode == 0, r.stderr
    r = cnnlab("report", exported, "--dataset", "digits", "--samples", "1", "--output", tmp_path / "r.html")
    assert r.returncode == 0, r.stderr
    assert "<html" in (tmp_path / "r.html").read_text(encoding="utf-8").lower()


def test_foreign_file_options(tmp_path, image):
    """A file without cnnlab metadata: --classes, --mean and --std describe it."""
    w = np.random.default_rng(0).standard_normal((3, 64)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["x"], ["f"], axis=1), helper.make_node("Gemm", ["f", "w"], ["y"], transB=1)],
        "foreign", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], [numpy_helper.from_array(w, "w")])
    path = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    r = cnnlab("predict", path, image, "--json", "--classes", "cat,dog,bird", "--mean", "0.5", "--std", "0.25")
    assert r.returncode == 0, r.stderr
    assert {p["class"] for p in json.loads(r.stdout)[0]["predictions"]} == {"cat", "dog", "bird"}
    r = cnnlab("predict", path, image, "--classes", "cat,dog")
    assert_one_line_error(r, 1, r"the model gives 3 scores per image but 2 class names were given")


def _model(nodes, inputs, initializers=(), opset=17, out_shape=("N", 4)):
    graph = helper.make_graph(nodes, "bad", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape))],
                              list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _image_input():
    return [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 4, 4])]


BAD = {
    "truncated": (None, r"is not an ONNX model \(truncated or another format\)"),
    "not_onnx": (None, r"is not an ONNX model \(truncated or another format\)"),
    "unsupported_op": (lambda: _model([helper.make_node("Sin", ["x"], ["y"], name="weird")], _image_input()),
                       r"unsupported op Sin \(node 'weird', opset 17\); cnnlab imports .*Conv.*Relu"),
    "not_an_image": (lambda: _model([helper.make_node("Relu", ["x"], ["y"])],
                                    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])]),
                     r"graph input 'x' has shape \(N, 16\); cnnlab takes an image batch \(N, C, H, W\)"),
    "integer_input": (lambda: _model([helper.make_node("Relu", ["x"], ["y"])],
                                     [helper.make_tensor_value_info("x", TensorProto.INT64, ["N", 1, 4, 4])]),
                      r"graph input 'x' has element type INT64; cnnlab takes float images"),
    "missing_initializer": (lambda: _model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv")], _image_input()),
                            r"node 'conv' \(Conv\) reads 'w', which is no graph input, initializer or earlier "
                            r"node's output \(a missing initializer\?\)"),
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_files_one_line_exit_2(tmp_path, exported, kind, image):
    build, pattern = BAD[kind]
    path = tmp_path / f"{kind}.onnx"
    if kind == "truncated":
        path.write_bytes(exported.read_bytes()[:300])
    elif kind == "not_onnx":
        path.write_text("this is a text file, not a model\n" * 20)
    else:
        path.write_bytes(build().SerializeToString())
    for command in (("summary", path), ("predict", path, image)):
        assert_one_line_error(cnnlab(*command), 2, pattern)
    import cnnlab.onnx as cnnonnx
    with pytest.raises(ValueError, match=pattern):
        cnnonnx.load(path)


def test_export_usage_errors(run_dir, tmp_path):
    assert_one_line_error(cnnlab("export", run_dir, tmp_path / "x.onnx", "--opset", "12"), 2,
                          r"--opset must be from 13 to 21, got 12")
    assert_one_line_error(cnnlab("export", run_dir, tmp_path / "x.txt"), 2, r"should end in .onnx, got")
