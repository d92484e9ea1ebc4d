"""Files are data, never instructions: model files, run files and downloads are checked and capped."""
import json
from pathlib import Path

import numpy as np
import pytest

import cnnlab
from cnnlab import Tensor, nn
from cnnlab._files import safe_name
from cnnlab.io import load_bundle, load_model, save_bundle, save_model
from cnnlab.models import digitsnet, load_model_file, parse_model_spec

BOMB = """\
a: &a [{type: ReLU}, {type: ReLU}, {type: ReLU}, {type: ReLU}, {type: ReLU}, {type: ReLU}, {type: ReLU}, {type: ReLU}, {type: ReLU}, {type: ReLU}]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
layers: [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]
"""


# --- model files ----------------------------------------------------------------------------------
def test_yaml_alias_bomb_is_refused_quickly(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    assert path.stat().st_size < 1000
    with pytest.raises(ValueError, match=r"bomb\.yaml is not valid YAML: .*anchors and aliases"):
        load_model_file(path, (1, 8, 8))


def test_yaml_anchor_alone_is_refused():
    with pytest.raises(ValueError, match="anchors and aliases"):
        parse_model_spec("layers: &x [{type: ReLU}]\n", "yaml", "m.yaml")
    # plain YAML still reads
    assert parse_model_spec("layers: [{type: ReLU}]\n", "yaml", "m.yaml") == {"layers": [{"type": "ReLU"}]}


def test_model_file_size_is_capped(tmp_path):
    path = tmp_path / "big.json"
    path.write_text(json.dumps({"layers": [{"type": "ReLU"}]}) + " " * (1 << 20))
    with pytest.raises(ValueError, match=r"big\.json is larger than 1,048,576 bytes"):
        load_model_file(path)


@pytest.mark.parametrize("fmt,text", [
    ("json", json.dumps({"layers": [{"type": "ReLU"}] * 10_001})),
    ("yaml", "layers:\n" + "- {type: ReLU}\n" * 10_001),
    ("toml", '[[layers]]\ntype = "ReLU"\n' * 10_001),
])
def test_number_of_layers_is_capped_in_every_format(fmt, text):
    with pytest.raises(ValueError, match=r"m: describes more than 10,000 layers"):
        parse_model_spec(text, fmt, "m")


def test_nested_blocks_count_and_nesting_is_capped():
    inner = {"type": "ReLU"}
    for _ in range(40):
        inner = {"type": "Sequential", "layers": [inner]}
    with pytest.raises(ValueError, match="nested more than 32 levels"):
        parse_model_spec(json.dumps({"layers": [inner]}), "json", "m.json")
    with pytest.raises(ValueError, match="nested too deeply|nested more than"):
        parse_model_spec("[" * 100_000 + "]" * 100_000, "json", "m.json")


@pytest.mark.parametrize("layer,pattern", [
    ({"type": "Conv2d", "out_channels": 10**9, "kernel_size": 3}, r"'out_channels' is 1,000,000,000; sizes"),
    ({"type": "Conv2d", "out_channels": 4, "kernel_size": list(range(1, 40))}, r"'kernel_size' is a list of 39"),
    ({"type": "Conv2d", "out_channels": 60000, "kernel_size": 60}, r"more than 200,000,000 parameters"),
    ({"type": "Linear", "out_features": 100000}, r"more than 200,000,000 parameters"),
    ({"type": "Sequential", "layers": [{"type": "Conv2d", "out_channels": 4096, "kernel_size": 1},
                                       {"type": "Flatten"}, {"type": "Linear", "out_features": 10}]},
     r"layer 0.2 \(Linear\) brings the model to more than 200,000,000 parameters"),
    ({"type": "LeakyReLU", "negative_slope": float("nan")}, r"'negative_slope' must be a finite number"),
])
def test_layer_arguments_are_capped_before_building(layer, pattern):
    spec = {"input_shape": [3, 100, 100], "layers": [layer]}
    with pytest.raises(ValueError, match=pattern):
        parse_model_spec(json.dumps(spec), "json", "m.json")


def test_glu_dim_out_of_range_is_a_clear_build_error(tmp_path):
    path = tmp_path / "glu.json"
    path.write_text(json.dumps({"input_shape": [1, 8, 8], "layers": [{"type": "Flatten"},
                                                                     {"type": "GLU", "dim": 5}]}))
    with pytest.raises(ValueError, match=r"GLU\(dim=5\) needs dim in \[-2, 1\] for a 2-D input"):
        load_model_file(path)


# --- names and paths ------------------------------------------------------------------------------
@pytest.mark.parametrize("name,expected", [
    ("../../../../escaped", "escaped"), ("/etc/passwd", "etc_passwd"), ("..", "model"), ("", "model"),
    ("a b\\c\x00d", "a_b_c_d"), ("lenet5", "lenet5"), (".hidden", "hidden"), ("x" * 300, "x" * 64),
])
def test_safe_name(name, expected):
    assert safe_name(name) == expected


def test_model_name_cannot_place_the_run_outside_runs(tmp_path, monkeypatch):
    from cnnlab.train import _new_run_dir
    path = _new_run_dir("digits", "../../../../escaped", tmp_path / "runs")
    assert path.parent == tmp_path / "runs" and path.name.startswith("digits-escaped-")
    path = _new_run_dir("../x", "/abs/olute.json", tmp_path / "runs")
    assert path.parent == tmp_path / "runs" and path.name.startswith("x-olute-")


def _saved(tmp_path, **changes):
    cnnlab.manual_seed(0)
    folder = tmp_path / "model"
    save_model(digitsnet(), folder, (1, 8, 8), mean=[0.5], std=[0.25], name="digitsnet")
    info = json.loads((folder / "model.json").read_text())
    for key, value in changes.items():
        if "." in key:
            outer, inner = key.split(".")
            info[outer][inner] = value
        elif value is _DELETE:
            del info[key]
        else:
            info[key] = value
    (folder / "model.json").write_text(json.dumps(info))
    return folder


_DELETE = object()


@pytest.mark.parametrize("weights", ["../elsewhere/secret.npz", "/tmp/secret.npz", "sub/model.npz",
                                     "..", "model.json", 3])
def test_weights_are_read_only_from_the_model_folder(tmp_path, weights):
    secret = tmp_path / "elsewhere" / "secret.npz"
    secret.parent.mkdir()
    np.savez(secret, x=np.zeros(1))
    folder = _saved(tmp_path, weights=weights)
    with pytest.raises(ValueError, match=r"model\.json: 'weights' must be a (plain \.npz file name|file name)"):
        load_model(folder)


@pytest.mark.parametrize("change,pattern", [
    ({"preprocessing": [1, 8, 8]}, r"'preprocessing' must be a mapping .*got \[1, 8, 8\] \(a list\)"),
    ({"preprocessing.input_shape": [1, 8]}, r"'preprocessing.input_shape' must be a list \[C, H, W\]"),
    ({"preprocessing.input_shape": [1, -8, 8]}, r"'preprocessing.input_shape' must be"),
    ({"preprocessing.mean": [0.1, 0.2]}, r"'preprocessing.mean' must be null or a list of 1 finite numbers"),
    ({"preprocessing.std": [0.0]}, r"'preprocessing.std' must be a list of positive numbers"),
    ({"preprocessing.std": ["a"]}, r"'preprocessing.std' must be null or a list of 1"),
    ({"preprocessing.mean": None}, r"'preprocessing.mean' and 'preprocessing.std' must both be"),
    ({"classes": ["only one"]}, r"'classes' must list 10 names \(the model has 10 outputs\), got 1"),
    ({"classes": "0123456789"}, r"'classes' must be a list of class names"),
    ({"classes": None}, r"'classes' must be a list of class names \(strings\), got None"),
    ({"classes": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]}, r"'classes' must be a list of class names"),
    ({"architecture": [1, 2]}, r"'architecture' must be a mapping"),
    ({"architecture": _DELETE}, r"missing field 'architecture'"),
    ({"format_version": "1"}, r"'format_version' must be a positive int, got '1' \(a string\)"),
    ({"format_version": 99}, r"format_version 99; this cnnlab reads up to 2"),
    ({"format": "other"}, r"not a cnnlab model description"),
    ({"name": ["x"]}, r"'name' must be a string"),
])
def test_model_json_fields_are_validated(tmp_path, change, pattern):
    folder = _saved(tmp_path, **change)
    with pytest.raises(ValueError, match=r"model\.json.*" + pattern):
        load_model(folder)


def test_model_json_that_is_a_list(tmp_path):
    folder = _saved(tmp_path)
    (folder / "model.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"model\.json is not a cnnlab model description: expected a JSON "
                                         r"object .*got a list"):
        load_model(folder)


def test_weights_of_the_wrong_shape_name_the_file(tmp_path):
    folder = _saved(tmp_path)
    weights = dict(np.load(folder / "model.npz"))
    weights["0.weight"] = np.zeros((1, 1, 1, 1), np.float32)
    np.savez(folder / "model.npz", **weights)
    with pytest.raises(ValueError, match=r"model\.npz does not match the architecture .*size mismatch for "
                                         r"0\.weight"):
        load_model(folder)


# --- run files ------------------------------------------------------------------------------------
def test_metrics_and_config_are_validated(tmp_path):
    from cnnlab.explain.runs import open_run
    folder = _saved(tmp_path)
    (folder / "metrics.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"metrics\.json is not a cnnlab metrics file: expected a JSON object, "
                                         r"got a list"):
        open_run(folder)
    (folder / "metrics.json").write_text(json.dumps({"test_accuracy": "high"}))
    with pytest.raises(ValueError, match=r"metrics\.json: 'test_accuracy' must be a finite number or null, "
                                         r"got 'high' \(a string\)"):
        open_run(folder)
    (folder / "metrics.json").write_text(json.dumps({"test_accuracy": 0.9, "epochs": 2}))
    (folder / "config.json").write_text(json.dumps({"dataset": "digits", "epochs": 0, "batch_size": 8,
                                                    "optimizer": "adam", "lr": 0.01}))
    with pytest.raises(ValueError, match=r"config\.json: 'epochs' must be a positive int, got 0"):
        open_run(folder)
    (folder / "config.json").write_text(json.dumps({"dataset": "digits", "val_fraction": None}))
    with pytest.raises(ValueError, match=r"config\.json: 'val_fraction' must be a finite number, got None"):
        open_run(folder)
    (folder / "config.json").write_text(json.dumps({"dataset": "digits"}))
    assert open_run(folder).config == {"dataset": "digits"}  # reading needs no training settings
    from cnnlab._schema import check_config
    with pytest.raises(ValueError, match=r"config\.json: missing field 'epochs'"):
        check_config({"dataset": "digits"}, folder / "config.json", resume=True)


@pytest.mark.parametrize("text,pattern", [
    ("epoch,train_loss\n1,0.5\n1,0.4\n", r"'epoch' on line 3 must be a positive int larger than the line above"),
    ("epoch,train_loss\ninf,0.5\n", r"line 2, column 'epoch': 'inf' is not a whole number"),
    ("epoch,epoch\n1,2\n", r"the header line must name each column once"),
    ("epoch,train_loss\n1,0.5,7\n", r"line 2: 3 cells, but the header names 2 columns"),
    ("epoch,train_loss\n1,\x00\n", r"not a readable CSV file|is not a number"),
    ("epoch,train_loss\n1,abc\n", r"line 2, column 'train_loss': 'abc' is not a number"),
])
def test_history_csv_is_validated(tmp_path, text, pattern):
    from cnnlab.explain.runs import read_history
    path = tmp_path / "history.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=pattern):
        read_history(path)


def _checkpoint(tmp_path):
    """A real checkpoint written by a one-epoch fit."""
    from cnnlab.train import fit
    cnnlab.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(72, 3))
    rng = np.random.default_rng(0)
    images, labels = rng.random((12, 1, 8, 8), dtype=np.float32), rng.integers(0, 3, 12)
    fit(model, (images, labels), epochs=1, batch_size=4, out_dir=tmp_path, verbose=0, lr=0.01,
        optimizer="sgd", input_shape=(1, 8, 8))
    return model, tmp_path / "checkpoint.npz"


@pytest.mark.parametrize("edit,pattern", [
    (lambda a, m: m.update(epoch="2"), r"'epoch' must be an int, got '2' \(a string\)"),
    (lambda a, m: m.pop("rng"), r"missing field 'rng'"),
    (lambda a, m: m.update(rng={"bit_generator": "Nope", "state": {}}), r"'rng': 'bit_generator' must be 'PCG64'"),
    (lambda a, m: m["rng"]["state"].update(state="x"), r"'rng': not a valid NumPy generator state"),
    (lambda a, m: m.update(rng=np.random.MT19937().state), r"'bit_generator' must be 'PCG64', got 'MT19937'"),
    (lambda a, m: m["optimizer"]["param_groups"][0].update(lr=None),
     r"optimizer.param_groups\[0\]: 'lr' must be a finite number, got None"),
    (lambda a, m: m["optimizer"].update(param_groups=[]), r"'optimizer.param_groups' must be a non-empty list"),
    (lambda a, m: m.update(optimizer={"lr": -1, "step_count": 3}), r"'optimizer.lr' must be a number >= 0, got -1"),
    (lambda a, m: m["history"]["history"].update(epoch=[1, "x"]), r"'history.history.epoch' must be a list"),
    (lambda a, m: m["history"].update(train_seconds=None), r"'history.train_seconds' must be a number >= 0, got None"),
    (lambda a, m: m["history"].update(stopped_early="no"), r"'history.stopped_early' must be true or false"),
    (lambda a, m: m["history"].update(history={}), r"the history has no 'epoch' column"),
    (lambda a, m: m["history"]["history"].pop("train_loss"), r"the history has no 'train_loss' column"),
    (lambda a, m: m["optimizer"]["param_groups"][0].update(lr=-1),
     r"'optimizer.param_groups\[0\].lr' must be a number >= 0, got -1"),
    (lambda a, m: m.update(loader={"seed": "0", "epoch": 1}), r"loader: 'seed' must be an int"),
    (lambda a, m: a.update({"model/0.weight": np.zeros((1, 1))}), r"array 'model/0.weight' has shape \(1, 1\)"),
    (lambda a, m: a.pop("model/3.bias"), r"missing \['model/3.bias'\]"),
    (lambda a, m: a.update({"evil": np.zeros(1)}), r"unexpected array 'evil'"),
    (lambda a, m: a.update({"optim/99.momentum_buffer": np.zeros(1)}), r"'optim/99.momentum_buffer' names no"),
])
def test_checkpoint_is_validated_before_resuming(tmp_path, edit, pattern):
    from cnnlab._schema import check_checkpoint
    model, path = _checkpoint(tmp_path)
    arrays, meta = load_bundle(path)
    check_checkpoint(arrays, meta, path, model)  # the real one passes
    edit(arrays, meta)
    save_bundle(path, arrays, meta)
    arrays, meta = load_bundle(path)
    with pytest.raises(ValueError, match=r"checkpoint\.npz.*" + pattern):
        check_checkpoint(arrays, meta, path, model)


def test_resume_from_an_edited_checkpoint_names_the_field(tmp_path):
    from cnnlab.train import fit
    model, path = _checkpoint(tmp_path)
    arrays, meta = load_bundle(path)
    meta["history"] = [1, 2]
    save_bundle(path, arrays, meta)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"checkpoint\.npz: 'history' must be a mapping, got \[1, 2\]"):
        fit(model, (rng.random((12, 1, 8, 8), dtype=np.float32), rng.integers(0, 3, 12)), epochs=2,
            batch_size=4, out_dir=tmp_path, verbose=0, lr=0.01, optimizer="sgd", input_shape=(1, 8, 8),
            resume=True)


def test_garbled_checkpoint_description(tmp_path):
    path = tmp_path / "c.npz"
    np.savez(path, __meta_json__=np.frombuffer(b"\xff\xfe{", dtype=np.uint8))
    with pytest.raises(ValueError, match=r"c\.npz: its description \(__meta_json__\) is not valid JSON"):
        load_bundle(path)


# --- downloads and archives -----------------------------------------------------------------------
class _FakeResponse:
    """What urlopen returns: ``read(n)`` over fixed bytes, headers, a context manager."""

    def __init__(self, size, content_length=None):
        self.left, self.headers, self.sent = size, {}, 0
        if content_length is not None:
            self.headers["Content-Length"] = str(content_length)

    def read(self, n=-1):
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        self.sent += n
        return b"\0" * n

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("announced", [None, 10**12])
def test_downloads_are_capped(tmp_path, monkeypatch, announced):
    import urllib.request
    from cnnlab.data import mnist
    response = _FakeResponse(10 * mnist.MAX_DOWNLOAD_BYTES, announced)
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: response)
    with pytest.raises(mnist.DownloadTooLargeError, match=r"download of http://x/f.gz refused: larger than "
                                                          r"67,108,864 bytes"):
        mnist.download_file("http://x/f.gz", tmp_path / "f.gz", "0" * 64, progress=False)
    assert response.sent <= mnist.MAX_DOWNLOAD_BYTES + (1 << 16)  # stopped at the cap
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def test_mnist_download_larger_than_the_cap_is_reported(tmp_path, monkeypatch):
    import urllib.request
    from cnnlab.data import mnist
    monkeypatch.setattr(mnist, "MAX_DOWNLOAD_BYTES", 1000)
    monkeypatch.setattr(mnist, "cache_dir", lambda kind=None: tmp_path)
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: _FakeResponse(5000))
    with pytest.raises(mnist.DownloadTooLargeError, match="larger than 1,000 bytes"):
        mnist.find_mnist_files(tmp_path / "nothing", "mnist", "test", download=True, progress=False)


def test_gzip_bomb_idx_is_capped(tmp_path, monkeypatch):
    import gzip
    from cnnlab.data import idx
    monkeypatch.setattr(idx, "MAX_IDX_BYTES", 10_000)
    path = tmp_path / "bomb-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(b"\0" * 1_000_000))
    with pytest.raises(idx.IDXFormatError, match=r"larger than 10,000 bytes \(decompressed\)"):
        idx.read_idx(path)


@pytest.mark.parametrize("where", ["tar", "dir"])
def test_cifar_members_are_capped(tmp_path, monkeypatch, where):
    import io
    import tarfile
    from cnnlab.data import cifar
    monkeypatch.setattr(cifar, "MAX_MEMBER_BYTES", 1000)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "data_batch_1").write_bytes(b"\0" * 5000)
    if where == "tar":
        archive = tmp_path / "cifar-10-python.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(folder / "data_batch_1", "cifar-10-batches-py/data_batch_1")
        (folder / "data_batch_1").unlink()
        folder.rmdir()
        source = archive
    else:
        source = tmp_path
    with pytest.raises(ValueError, match=r"data_batch_1 is 5,00\d bytes, larger than the 1,000 bytes a "
                                         r"CIFAR-10 batch file may have"):
        cifar.load_cifar10(source, "train")


# --- images and reports ---------------------------------------------------------------------------
def test_decompression_bomb_image_gets_its_own_message(tmp_path, monkeypatch):
    from PIL import Image
    from cnnlab.cli import main
    path = tmp_path / "huge.png"
    Image.new("L", (40, 40)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 1,600 pixels: more than twice the limit
    from cnnlab.explain.images import image_channels, load_image
    with pytest.raises(ValueError, match=r"image .*huge\.png is too large to read \(1,600 pixels, more than the "
                                         r"200 Pillow decodes"):
        image_channels(path)
    with pytest.raises(ValueError, match=r"huge\.png is too large to read"):
        load_image(path, channels=1)
    folder = _saved(tmp_path)
    assert main(["predict", str(folder), str(path)]) == 1


def test_report_shows_folder_names_not_absolute_paths():
    from cnnlab.explain.report import _public
    assert _public("/home/someone/photos/cats") == "cats"
    assert _public("/home/someone/photos/cats/") == "cats"
    assert _public("C:\\Users\\x\\digits") == "digits"
    assert _public("mnist") == "mnist" and _public(None) is None and _public(3) == 3


def test_npz_headers_are_checked_before_allocating(tmp_path):
    import io
    import zipfile
    from numpy.lib import format as npy
    from cnnlab.io import load_npz
    buf = io.BytesIO()
    npy.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (10**11,)})
    buf.write(b"\0" * 16)
    with zipfile.ZipFile(tmp_path / "forged.npz", "w") as z:
        z.writestr("a.npy", buf.getvalue())
    with pytest.raises(ValueError, match=r"forged\.npz: array 'a' claims shape \(100000000000,\) "
                                         r"\(800,000,000,000 bytes\) but the file holds \d+ bytes"):
        load_npz(tmp_path / "forged.npz")
    np.savez(tmp_path / "obj.npz", a=np.array([{}, 1], dtype=object))
    with pytest.raises(ValueError, match=r"obj\.npz: array 'a' holds Python objects \(pickle\), which cnnlab "
                                         r"never loads"):
        load_npz(tmp_path / "obj.npz")
    with zipfile.ZipFile(tmp_path / "junk.npz", "w") as z:
        z.writestr("a.npy", b"\x93NUMPY\x01\x00garbage")
    with pytest.raises(ValueError, match=r"junk\.npz: array 'a' is not a readable \.npy array"):
        load_npz(tmp_path / "junk.npz")


def test_run_files_are_capped_and_deep_nesting_refused(tmp_path, monkeypatch):
    from cnnlab import _schema
    from cnnlab.explain.runs import open_run
    folder = _saved(tmp_path)
    (folder / "metrics.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match=r"metrics\.json is nested too deeply"):
        open_run(folder)
    (folder / "metrics.json").write_text("{}")
    monkeypatch.setattr(_schema, "MAX_RUN_FILE_BYTES", 100)
    with pytest.raises(ValueError, match=r"model description .*model\.json is larger than 100 bytes"):
        load_model(folder)


def test_cifar_archive_with_too_many_entries(tmp_path, monkeypatch):
    import io
    import tarfile
    from cnnlab.data import cifar
    monkeypatch.setattr(cifar, "MAX_MEMBERS", 20)
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for i in range(30):
            info = tarfile.TarInfo(f"junk/{i}")
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(ValueError, match=r"more than 20 entries; not a CIFAR-10 archive"):
        cifar.load_cifar10(archive, "train")


def test_weights_link_leaving_the_folder_is_refused(tmp_path):
    import os
    folder = _saved(tmp_path)
    outside = tmp_path / "secret.npz"
    os.replace(folder / "model.npz", outside)
    try:
        os.symlink(outside, folder / "model.npz")
    except OSError:
        pytest.skip("symbolic links are not available here")
    with pytest.raises(ValueError, match=r"model\.npz is a link to .*secret\.npz, outside the model's folder"):
        load_model(folder)


# --- weights that are not real, finite numbers, and zip members NumPy cannot read ---------------------------
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_FILES_FUZZ = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                       suppress_health_check=list(HealthCheck))


def _odd_array(data, shape):
    kind = data.draw(st.sampled_from(["complex64", "complex128", "text", "bytes", "record", "nan", "inf",
                                      "int", "bool", "float64"]), "kind")
    base = np.ones(shape, np.float32)
    if kind.startswith("complex"):
        return kind, (base + 1j * data.draw(st.floats(-2, 2), "imag")).astype(kind)
    if kind == "text":
        return kind, np.full(shape, "1.0", "U3")
    if kind == "bytes":
        return kind, np.full(shape, b"1", "S1")
    if kind == "record":
        return kind, np.zeros(shape, [("a", "f4"), ("b", "f4")])
    if kind in ("nan", "inf"):
        base.flat[data.draw(st.integers(0, base.size - 1), "where")] = np.nan if kind == "nan" else -np.inf
        return kind, base
    return kind, base.astype({"int": np.int64, "bool": np.bool_, "float64": np.float64}[kind])


@_FILES_FUZZ
@given(data=st.data())
def test_generated_weight_arrays_are_read_as_real_numbers_or_refused_naming_the_file(tmp_path_factory, data):
    from cnnlab.train import check_finite_model
    folder = _saved(tmp_path_factory.mktemp("odd"))
    weights = dict(np.load(folder / "model.npz"))
    key = data.draw(st.sampled_from(sorted(weights)), "array")
    kind, weights[key] = _odd_array(data, weights[key].shape)
    np.savez(folder / "model.npz", **weights)
    if kind in ("complex64", "complex128", "text", "bytes", "record"):
        with pytest.raises(ValueError, match=rf"model\.npz: array '{key}' holds"):
            load_model(folder)
        return
    if kind in ("nan", "inf") and weights[key].dtype.kind == "f" and "num_batches" in key:
        with pytest.raises(ValueError, match=rf"model\.npz .*{key} holds values that are not whole numbers"):
            load_model(folder)  # an integer buffer: NaN is not cast to some integer
        return
    saved = load_model(folder)
    if kind in ("nan", "inf"):
        with pytest.raises(ValueError, match=rf"{key}.* hold NaN/inf values"):
            check_finite_model(saved.model, folder)
    else:
        check_finite_model(saved.model, folder)


@_FILES_FUZZ
@given(data=st.data())
def test_generated_zip_header_flags_and_methods_are_one_line_naming_the_file(tmp_path_factory, data):
    import struct
    folder = _saved(tmp_path_factory.mktemp("zip"))
    raw = bytearray((folder / "model.npz").read_bytes())
    flags = data.draw(st.sampled_from([0, 1, 0x41, 0x2000]), "flag bits")
    method = data.draw(st.sampled_from([None, 1, 6, 9, 12, 14, 95, 97, 98, 99, 0xFFFF]), "method")
    for magic, flag_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        i = raw.find(magic)
        while i >= 0:
            raw[i + flag_at] |= flags & 0xFF
            raw[i + flag_at + 1] |= flags >> 8
            if method is not None:
                raw[i + method_at:i + method_at + 2] = struct.pack("<H", method)
            i = raw.find(magic, i + 4)
    (folder / "model.npz").write_bytes(bytes(raw))
    readable = not flags & 1 and method in (None, 12, 14)  # bzip2 and lzma members NumPy can read
    try:
        load_model(folder)
    except ValueError as exc:
        text = str(exc)
        assert "model.npz" in text and "\n" not in text and "<ZipInfo" not in text
    else:
        assert readable, "an encrypted or unreadable member was loaded"


# --- no symbolic link is followed when writing ----------------------------------------------------
def _planted_link(tmp_path, name, directory=False):
    """A link ``run/name`` pointing at a file (or folder) outside the run; returns (run, link, target)."""
    run, outside = tmp_path / "run", tmp_path / "outside"
    run.mkdir(exist_ok=True)
    outside.mkdir(exist_ok=True)
    target = outside / ("folder" if directory else "precious.txt")
    if directory:
        target.mkdir()
    else:
        target.write_text("keep me")
    (run / name).symlink_to(target)
    return run, run / name, target


def _writers():
    from cnnlab.runs.lock import run_lock
    from cnnlab.io import atomic_write_bytes, save_npz, write_json

    def lock(path):
        with run_lock(path.parent):
            pass
    return {"atomic_write_bytes": lambda p: atomic_write_bytes(p, b"x"),
            "write_json": lambda p: write_json(p, {"a": 1}),
            "save_npz": lambda p: save_npz(p, {"a": np.zeros(2)}),
            "run_lock": lock}


@pytest.mark.parametrize("writer", ["atomic_write_bytes", "write_json", "save_npz", "run_lock"])
def test_writers_refuse_a_symlink_at_the_file(tmp_path, writer):
    from cnnlab._files import SymlinkRefused
    run, link, target = _planted_link(tmp_path, ".cnnlab-lock" if writer == "run_lock" else "model.json")
    with pytest.raises(SymlinkRefused, match=f"{link.name} is a symbolic link"):
        _writers()[writer](link)
    assert target.read_text() == "keep me" and link.is_symlink()


def test_writes_below_a_root_refuse_a_linked_folder(tmp_path):
    from cnnlab._files import SymlinkRefused, make_dirs
    from cnnlab.io import atomic_write_bytes
    run, link, target = _planted_link(tmp_path, "explain", directory=True)
    with pytest.raises(SymlinkRefused, match="explain is a symbolic link"):
        make_dirs(run / "explain" / "features_x", root=run)
    with pytest.raises(SymlinkRefused, match="explain is a symbolic link"):
        atomic_write_bytes(run / "explain" / "a" / "b.png", b"x", root=run)
    assert list(target.iterdir()) == []
    # the folder the user named may itself be reached through a link of theirs
    (tmp_path / "mine").symlink_to(run)
    atomic_write_bytes(tmp_path / "mine" / "ok.txt", b"ok")
    assert (run / "ok.txt").read_bytes() == b"ok"


# --- images: only the documented raster formats are decoded ---------------------------------------
EPS = (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n%%EndComments\n"
       b"newpath 0 0 moveto 8 8 lineto stroke showpage\n%%EOF\n")


def _image_readers():
    from cnnlab.data.folder import load_image_folder, read_image
    from cnnlab.data.inputs import read_model_input
    from cnnlab.explain.images import image_channels, load_image
    from cnnlab.explore.engine import RequestError, decode_image

    def folder(path):
        root = path.parent / "folder"
        for cls in ("a", "b"):
            (root / cls).mkdir(parents=True, exist_ok=True)
            (root / cls / path.name).write_bytes(path.read_bytes())
        load_image_folder(root, size=(8, 8), channels=1)

    def explorer(path):
        try:
            decode_image(path.read_bytes(), 1, (8, 8))
        except RequestError as exc:
            raise ValueError(str(exc)) from None
    return {"read_image": lambda p: read_image(p, 1, (8, 8)),
            "load_image": load_image, "image_channels": image_channels, "train_folder": folder,
            "predict": lambda p: read_model_input(p, (1, 8, 8)), "explorer": explorer}


@pytest.fixture
def no_ghostscript(monkeypatch):
    """Any attempt to run Ghostscript fails the test (and is recorded)."""
    from PIL import EpsImagePlugin
    calls = []

    def forbidden(*args, **kwargs):
        calls.append(args)
        raise AssertionError("Ghostscript must never run")
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", forbidden)
    monkeypatch.setattr(EpsImagePlugin, "has_ghostscript", lambda: True)
    return calls


@pytest.mark.parametrize("reader", sorted(_image_readers()))
def test_postscript_named_png_is_never_interpreted(tmp_path, no_ghostscript, reader):
    path = tmp_path / "seven.png"
    path.write_bytes(EPS)
    with pytest.raises(ValueError, match="not a PNG, JPEG, BMP, GIF, TIFF, WebP or PGM/PPM image"):
        _image_readers()[reader](path)
    assert no_ghostscript == []


# formats Pillow can write but cnnlab does not read: each saved under an image extension
OTHER_FORMATS = ["EPS", "ICO", "PCX", "TGA", "SGI", "XBM", "MSP", "DDS", "SPIDER", "QOI", "PALM"]


def test_documented_formats_still_read(tmp_path):
    from PIL import Image
    from cnnlab.data.folder import IMAGE_FORMATS, read_image
    for fmt in IMAGE_FORMATS:
        path = tmp_path / f"x.{fmt.lower()}"
        Image.fromarray(np.full((8, 8), 200, np.uint8)).save(path, format=fmt)
        assert read_image(path, 1).shape == (1, 8, 8)


def test_other_pillow_formats_are_refused_whatever_the_name(tmp_path, no_ghostscript):
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from PIL import Image

    @settings(max_examples=30, deadline=None, database=None)
    @given(fmt=st.sampled_from(OTHER_FORMATS), suffix=st.sampled_from([".png", ".jpg", ".bmp", ".tif", ".webp"]),
           reader=st.sampled_from(sorted(_image_readers())), mode=st.sampled_from(["L", "RGB", "1"]))
    def check(fmt, suffix, reader, mode):
        image = Image.new(mode, (8, 8), 1)
        path = tmp_path / f"x{suffix}"
        try:
            image.save(path, format=fmt)
        except (OSError, ValueError, KeyError):  # this Pillow cannot write that format/mode
            hypothesis.assume(False)
        with pytest.raises(ValueError, match="not a PNG, JPEG"):
            _image_readers()[reader](path)
    extensions = dict(Image.EXTENSION)  # Pillow's SPIDER writer registers the file's extension as its own
    try:
        check()
    finally:
        Image.EXTENSION.clear()
        Image.EXTENSION.update(extensions)
    assert no_ghostscript == []


# --- .npz members: names, compression methods and declared sizes are checked first -----------------
def _npz(path, members):
    import io
    import zipfile
    with zipfile.ZipFile(path, "w") as z:
        for name, data, method in members:
            z.writestr(zipfile.ZipInfo(name), data, compress_type=method)
    return path


def _npy(array):
    import io
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def test_npz_member_not_named_npy_is_refused_before_inflating(tmp_path):
    import zipfile
    from cnnlab.io import load_npz
    path = _npz(tmp_path / "model.npz", [("0.weight.npy", _npy(np.zeros(3, np.float32)), zipfile.ZIP_STORED),
                                         ("weights", b"\0" * (8 << 20), zipfile.ZIP_DEFLATED)])
    assert path.stat().st_size < 100_000
    with pytest.raises(ValueError, match=r"model\.npz holds 'weights', which is not a \.npy array"):
        load_npz(path)


def test_npz_declared_sizes_are_capped(tmp_path, monkeypatch):
    import zipfile
    import cnnlab._schema as schema
    from cnnlab.io import load_npz
    monkeypatch.setattr(schema, "MAX_NPZ_BYTES", 1 << 20)
    path = _npz(tmp_path / "bomb.npz", [("a.npy", _npy(np.zeros(1 << 19)), zipfile.ZIP_DEFLATED)])
    with pytest.raises(ValueError, match=r"bomb\.npz declares more than 1,048,576 bytes of arrays"):
        load_npz(path)


@pytest.mark.parametrize("method", ["ZIP_BZIP2", "ZIP_LZMA"])
def test_npz_other_compression_methods_are_refused(tmp_path, method):
    import zipfile
    from cnnlab.io import load_npz
    path = _npz(tmp_path / "odd.npz", [("a.npy", _npy(np.zeros(4)), getattr(zipfile, method))])
    with pytest.raises(ValueError, match=r"odd\.npz: array 'a' uses zip compression method \d+"):
        load_npz(path)


def test_random_npz_members_are_read_or_refused_by_name(tmp_path):
    hypothesis = pytest.importorskip("hypothesis")
    import zipfile
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from cnnlab.io import load_npz

    member = st.tuples(st.one_of(st.sampled_from(["a.npy", "b.npy", "a", "x.npz", "dir/", "../c.npy", "d.npy.txt"]),
                                 st.text(min_size=1, max_size=8)),
                       st.one_of(st.builds(_npy, st.sampled_from([np.zeros(3), np.ones((2, 2), np.float32)])),
                                 st.binary(max_size=64), st.just(b"\0" * 100_000)),
                       st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2,
                                        zipfile.ZIP_LZMA]))

    @settings(max_examples=60, deadline=None, database=None)
    @given(members=st.lists(member, min_size=1, max_size=4, unique_by=lambda m: m[0]))
    def check(members):
        path = _npz(tmp_path / "fuzz.npz", members)
        try:
            arrays = load_npz(path)
        except ValueError as exc:
            assert "fuzz.npz" in str(exc) and "\n" not in str(exc)
            return
        assert all(isinstance(a, np.ndarray) for a in arrays.values())
        assert all(name.endswith(".npy") and method in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
                   for name, _, method in members)
    check()


# --- one size budget, by shape inference, before anything is allocated -----------------------------
def _budget_error(call):
    """Run ``call``; it must raise a one-line ValueError (never MemoryError) naming the size."""
    with pytest.raises(ValueError) as info:
        call()
    text = str(info.value)
    assert "\n" not in text and ("values" in text or "parameters" in text), text
    return text


@pytest.mark.parametrize("spec,pattern", [
    ({"input_shape": [1, 8, 8], "layers": [{"type": "Concat", "name": "c", "inputs": ["input"] * 5000},
                                           {"type": "Conv2d", "name": "conv", "out_channels": 5000,
                                            "kernel_size": 3}]},
     r"layer 'conv' \(Conv2d\) would have 225,000,000 parameters"),
    ({"input_shape": [1, 8, 8], "layers": [{"type": "ConvTranspose2d", "out_channels": 30000, "kernel_size": 100}]},
     r"layer 0 \(ConvTranspose2d\) brings the model to more than 200,000,000 parameters"),
    ({"input_shape": [1, 8, 8], "layers": [{"type": "Upsample", "scale_factor": 100000}]},
     r"layer 0 \(Upsample\).* would hold 640,000,000,000 values"),
    ({"input_shape": [1, 8, 8], "layers": [{"type": "ZeroPad2d", "padding": 1000000}]},
     r"layer 0 \(ZeroPad2d\).* would hold"),
    ({"input_shape": [1, 8, 8], "layers": [{"type": "AdaptiveAvgPool2d", "output_size": 1000000}]},
     r"layer 0 \(AdaptiveAvgPool2d\).* would hold 1,000,000,000,000 values"),
])
def test_model_files_over_the_size_budget_name_the_layer(tmp_path, spec, pattern):
    path = tmp_path / "big.json"
    path.write_text(json.dumps(spec))
    text = _budget_error(lambda: load_model_file(path))
    assert "big.json" in text
    assert __import__("re").search(pattern, text), text


def test_functional_ops_check_the_budget_before_allocating():
    import cnnlab.functional as F
    x = Tensor(np.zeros((1, 1, 4, 4), np.float32))
    assert "adaptive_avg_pool2d" in _budget_error(lambda: F.adaptive_avg_pool2d(x, 10**9))
    assert "adaptive_max_pool2d" in _budget_error(lambda: F.adaptive_max_pool2d(x, 10**9))
    _budget_error(lambda: F.pad(x, (10**6,) * 4))
    _budget_error(lambda: F.conv2d(x, Tensor(np.zeros((1, 1, 3, 3), np.float32)), padding=10**6))
    _budget_error(lambda: F.interpolate(x, scale_factor=1e6))
    _budget_error(lambda: F.interpolate(x, size=(10**6, 10**6)))


def test_summary_and_explain_conv_check_the_budget():
    from cnnlab.explain.summary import summary_rows
    from cnnlab.explain.trace import trace_conv2d
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    assert "one input image" in _budget_error(lambda: summary_rows(model, (1, 100000, 100000)))
    assert "padded by 99999999" in _budget_error(lambda: trace_conv2d(np.ones((2, 2)), np.ones((1, 1)),
                                                                       padding=99999999))


def test_onnx_constants_check_the_budget():
    from cnnlab.onnx._shapes import fold
    text = _budget_error(lambda: fold("ConstantOfShape", {}, [np.array([10**6, 10**6])]))
    assert "ConstantOfShape" in text
    _budget_error(lambda: fold("Expand", {}, [np.zeros((1, 1)), np.array([10**6, 10**6])]))
    _budget_error(lambda: fold("Tile", {}, [np.zeros((2, 2)), np.array([10**6, 10**6])]))
    _budget_error(lambda: fold("Range", {}, [np.array(0.0), np.array(1e12), np.array(1.0)]))


GROWING = ["Upsample", "ZeroPad2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "ConvTranspose2d", "Concat", "Conv2d"]


def test_random_growing_layers_stay_within_the_budget(tmp_path):
    """Random stacks of layers that grow the data: built within the budget, or refused in one line."""
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import given, settings
    from hypothesis import strategies as st

    size = st.one_of(st.integers(1, 8), st.integers(1000, 10**6))

    def layer(kind, k, big):
        if kind == "Upsample":
            return {"type": kind, "scale_factor": big}
        if kind == "ZeroPad2d":
            return {"type": kind, "padding": big}
        if kind.startswith("Adaptive"):
            return {"type": kind, "output_size": big}
        if kind == "Concat":
            return {"type": kind, "inputs": [f"l{k - 1}" if k else "input"] * min(big, 5000)}
        return {"type": kind, "out_channels": big, "kernel_size": 3, "padding": 1}

    @settings(max_examples=40, deadline=None, database=None)
    @given(st.lists(st.tuples(st.sampled_from(GROWING), size), min_size=1, max_size=4))
    def check(layers):
        entries = [dict(layer(kind, k, big), name=f"l{k}") for k, (kind, big) in enumerate(layers)]
        path = tmp_path / "grow.json"
        path.write_text(json.dumps({"input_shape": [1, 8, 8], "layers": entries}))
        try:
            model, _ = load_model_file(path)
        except ValueError as exc:
            assert "\n" not in str(exc) and "grow.json" in str(exc)
            return
        from cnnlab._schema import MAX_PARAMETERS
        assert sum(p.numpy().size for p in model.parameters()) <= MAX_PARAMETERS
    check()


# --- the size budget: the whole model's parameters, summed before any weight is allocated ---------
@pytest.fixture
def small_cap(monkeypatch):
    """A parameter cap of 10,000 and a record of every weight the layers draw (their sizes)."""
    import cnnlab._schema as schema
    import cnnlab.nn.layers as layers
    monkeypatch.setattr(schema, "MAX_PARAMETERS", 10_000)
    drawn = []
    original = layers._uniform

    def spy(shape, bound, dtype):
        drawn.append(int(np.prod(shape)))
        return original(shape, bound, dtype)

    monkeypatch.setattr(layers, "_uniform", spy)
    return drawn


def test_model_file_total_is_refused_before_any_large_weight(small_cap, tmp_path):
    # no input_shape in the file: both dense layers take their in_features from the data (2,500 pixels),
    # each is under the cap, together over it
    path = tmp_path / "two.json"
    path.write_text(json.dumps({"layers": [{"type": "Flatten"}, {"type": "Linear", "out_features": 3},
                                           {"type": "Linear", "out_features": 1000}]}))
    with pytest.raises(ValueError, match=r"two\.json: layer 2 \(Linear\) brings the model to 10,500 parameters"):
        load_model_file(path, (1, 50, 50))
    assert max(small_cap, default=0) <= 1  # only the one-feature stand-ins were drawn


def test_graph_model_file_concat_then_conv_is_refused_before_building(small_cap, tmp_path):
    spec = {"layers": [{"type": "Conv2d", "out_channels": 4, "kernel_size": 3},
                       {"name": "cat", "type": "Concat", "inputs": ["0"] * 8},
                       {"type": "Conv2d", "out_channels": 20, "kernel_size": 3},
                       {"type": "Conv2d", "out_channels": 30, "kernel_size": 3}]}
    path = tmp_path / "cat.json"
    path.write_text(json.dumps(spec))
    # weights 36 + 5,760 + 5,400: the last convolution brings the model past 10,000
    with pytest.raises(ValueError, match=r"cat\.json: layer '3' \(Conv2d\) brings the model to 11,196 "):
        load_model_file(path, (1, 20, 20))
    assert max(small_cap, default=0) <= 9


def test_budget_pass_leaves_the_seeded_weights_alone():
    spec = {"layers": [{"type": "Conv2d", "out_channels": 4, "kernel_size": 3}, {"type": "Flatten"},
                       {"type": "Linear", "out_features": 3}]}
    from cnnlab.models import build_model
    cnnlab.manual_seed(3)
    first = build_model(spec, (1, 6, 6)).state_dict()
    cnnlab.manual_seed(3)
    reference = [cnnlab.nn.Conv2d(1, 4, 3).weight.numpy().copy()]
    np.testing.assert_array_equal(np.asarray(first["0.weight"]), reference[0])


def test_zoo_model_for_huge_images_is_refused_before_its_dense_layer(small_cap):
    from cnnlab.models import create_model
    with pytest.raises(ValueError, match=r"model lenet5 for 1x100x100 images: its dense layer of 8,464 inputs "
                                         r"brings the model to .* more than the 10,000"):
        create_model("lenet5", (1, 100, 100), 10)
    assert max(small_cap) < 8464  # the convolutions only, never the dense layer


def test_zoo_model_for_huge_images_is_refused_by_its_activations():
    from cnnlab.models import create_model
    for name in ("smallnet", "resnet8", "digitsnet"):
        with pytest.raises(ValueError, match=rf"model {name} for 1x3000x3000 images: .* output for one image "
                                             r"would hold [\d,]+ values"):
            create_model(name, (1, 3000, 3000), 10)


def _concat_conv_onnx(path, copies: int, out_channels: int):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    weight = numpy_helper.from_array(np.zeros((out_channels, copies, 3, 3), np.float32), "w")
    nodes = [helper.make_node("Concat", ["x"] * copies, ["cat"], axis=1, name="cat"),
             helper.make_node("Conv", ["cat", "w"], ["y"], name="conv", kernel_shape=[3, 3]),
             helper.make_node("Flatten", ["y"], ["z"], name="flat")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)], [weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def test_onnx_concat_feeding_conv_is_refused_before_the_layer_is_built(small_cap, tmp_path, monkeypatch):
    from cnnlab.onnx import OnnxImportError, load as import_onnx
    path = _concat_conv_onnx(tmp_path / "cat.onnx", 200, 8)  # 8 x 200 x 3 x 3 = 14,400 parameters
    with pytest.raises(OnnxImportError, match=r"cat\.onnx: node 'conv' \(Conv.*the Conv2d it becomes would have "
                                              r"14,400 parameters"):
        import_onnx(path)
    assert max(small_cap, default=0) < 14_400
    _concat_conv_onnx(path, 100, 8)  # 7,200: fits
    graph = import_onnx(path)
    assert sum(p.numpy().size for p in graph.parameters()) == 7200


def test_onnx_parameters_of_all_layers_are_summed(small_cap, tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    from cnnlab.onnx import OnnxImportError, load as import_onnx
    w1 = numpy_helper.from_array(np.zeros((60, 4, 3, 3), np.float32), "w1")   # 2,160
    w2 = numpy_helper.from_array(np.zeros((15, 60, 3, 3), np.float32), "w2")  # 8,100: alone under, sum over
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], name="c1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["a", "w2"], ["b"], name="c2", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Flatten", ["b"], ["z"], name="flat")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 6, 6])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)], [w1, w2])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(tmp_path / "two.onnx"))
    with pytest.raises(OnnxImportError, match=r"node 'c2' \(Conv.*brings the model to 10,260 parameters"):
        import_onnx(tmp_path / "two.onnx")


# --- animated images in image folders -------------------------------------------------------------
def test_image_folder_says_once_that_animated_images_give_their_first_frame(tmp_path, capsys):
    from PIL import Image
    from cnnlab.data import load_image_folder
    for c in "ab":
        (tmp_path / c).mkdir()
        for i in range(3):
            frames = [Image.new("L", (8, 8), v) for v in (10, 200)]
            if i < 2:
                frames[0].save(tmp_path / c / f"{i}.gif", format="GIF", save_all=True, append_images=frames[1:])
            else:
                frames[0].save(tmp_path / c / f"{i}.png", format="PNG")
    train, val = load_image_folder(tmp_path, val_fraction=0.0)
    err = capsys.readouterr().err
    assert err.count("cnnlab: note:") == 1, err
    assert "4 animated images" in err and "only the first frame" in err
    assert "4 animated images" in train.description
    # a folder without animated images says nothing
    for path in tmp_path.rglob("*.gif"):
        Image.new("L", (8, 8), 5).save(path, format="GIF")
    load_image_folder(tmp_path, val_fraction=0.0)
    assert "animated" not in capsys.readouterr().err


# --- raw library texts: a one-line error naming the file instead ---------------------------------
RAW_LIBRARY_TEXTS = ("cannot reshape array", "could not convert", "can only specify one unknown dimension",
                     "tuple index out of range", "invalid literal")


def _reshaped_weight_onnx(path, size: int, target):
    """An ONNX dense model whose weight is a flat initializer reshaped at import (folded)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    nodes = [helper.make_node("Reshape", ["flat_w", "target"], ["w"], name="shape_w"),
             helper.make_node("Flatten", ["x"], ["f"], name="flat"),
             helper.make_node("MatMul", ["f", "w"], ["y"], name="dense")]
    inits = [numpy_helper.from_array(np.zeros(size, np.float32), "flat_w"),
             numpy_helper.from_array(np.array(target, np.int64), "target")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def test_onnx_constant_reshaped_to_another_size_names_file_node_and_sizes(tmp_path):
    from cnnlab.onnx import OnnxImportError, load
    path = _reshaped_weight_onnx(tmp_path / "w.onnx", 640, [10, 65])
    with pytest.raises(OnnxImportError) as info:
        load(path)
    text = str(info.value)
    assert "w.onnx: node 'shape_w' (Reshape" in text and "640 values" in text and "[10, 65]" in text and \
        "(650 values)" in text, text
    assert "cannot reshape array" not in text and "\n" not in text
    assert load(_reshaped_weight_onnx(tmp_path / "ok.onnx", 640, [64, 10])).output_shape((1, 1, 8, 8)) == (1, 10)


def test_onnx_constant_reshape_targets_give_a_model_or_one_clean_line(tmp_path):
    pytest.importorskip("onnx")
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from cnnlab.onnx import OnnxImportError, load

    @settings(max_examples=40, deadline=None, database=None)
    @given(size=st.sampled_from([640, 650, 64, 1, 0]),
           target=st.lists(st.sampled_from([-2, -1, 0, 1, 2, 7, 10, 64, 65, 640]), min_size=1, max_size=4))
    def check(size, target):
        path = _reshaped_weight_onnx(tmp_path / "gen.onnx", size, target)
        try:
            load(path)
        except OnnxImportError as exc:
            text = str(exc)
            assert "gen.onnx" in text and "\n" not in text, text
            assert not any(raw in text for raw in RAW_LIBRARY_TEXTS), text

    check()


def test_yaml_exponent_without_a_dot_is_a_number(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("input_shape: [1, 8, 8]\nlayers:\n  - {type: BatchNorm2d, eps: 1e-5}\n  - {type: Flatten}\n"
                    "  - {type: Linear, out_features: 3}\n")
    model, _ = load_model_file(path)
    assert model[0].eps == pytest.approx(1e-5)
    assert parse_model_spec('a: "1e-5"\nlayers: []\n', "yaml", "m.yaml")["a"] == "1e-5"  # quoted stays text


def test_number_arguments_given_text_name_the_file_and_argument(tmp_path):
    for entry, arg in (({"type": "Hardsigmoid", "alpha": "abc"}, "alpha"), ({"type": "PReLU", "init": "x"}, "init"),
                       ({"type": "Upsample", "scale_factor": "abc"}, "scale_factor"),
                       ({"type": "Upsample", "scale_factor": [1, "a"]}, "scale_factor")):
        path = tmp_path / "m.json"
        path.write_text(json.dumps({"input_shape": [1, 8, 8], "layers": [entry, {"type": "Flatten"}]}))
        with pytest.raises(ValueError) as info:
            load_model_file(path)
        text = str(info.value)
        assert "m.json: layer 0" in text and f"`{arg}` must be a number" in text, text
        assert "could not convert" not in text
    for entry, expected in (({"type": "Permute", "dims": "abc"}, "dims must be a list of ints"),
                            ({"type": "Pad", "padding": "12"}, "padding must be an int or a list of ints"),
                            ({"type": "Pad", "padding": [1, ":"]}, "padding must be an int or a list of ints"),
                            ({"type": "Pad", "padding": 1, "value": "x"}, "`value` must be a number")):
        path = tmp_path / "m.json"
        path.write_text(json.dumps({"input_shape": [1, 8, 8], "layers": [entry, {"type": "Flatten"}]}))
        with pytest.raises(ValueError, match=rf"m\.json: layer 0 \({entry['type']}\): .*{expected}"):
            load_model_file(path)
    assert nn.Pad(1, value=float("-inf")).value == float("-inf")  # max pooling's padding stays possible


def test_model_file_arguments_of_every_layer_given_odd_values_never_give_raw_texts(tmp_path):
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from cnnlab.models import LAYER_TYPES, _accepted_args
    pairs = sorted((name, arg) for name, cls in LAYER_TYPES.items() for arg in _accepted_args(cls))
    odd = st.one_of(st.text(max_size=6), st.sampled_from(["1e-5", "0.5", "nan", "", "2"]),
                    st.lists(st.one_of(st.integers(-2, 3), st.text(max_size=2)), max_size=3),
                    st.floats(allow_nan=False, allow_infinity=False, width=32), st.booleans(), st.none())

    @settings(max_examples=150, deadline=None, database=None)
    @given(pair=st.sampled_from(pairs), value=odd, fmt=st.sampled_from(["json", "yaml"]))
    def check(pair, value, fmt):
        name, arg = pair
        spec = {"input_shape": [4, 8, 8], "layers": [{"type": name, arg: value}, {"type": "Flatten"}]}
        path = tmp_path / f"gen.{fmt}"
        path.write_text(json.dumps(spec))  # JSON is YAML too
        try:
            load_model_file(path)
        except ValueError as exc:
            text = str(exc)
            assert text.startswith(str(path)) and "\n" not in text, text
            assert not any(raw in text for raw in RAW_LIBRARY_TEXTS), text

    check()


def test_image_folder_of_huge_images_is_refused_from_the_headers(tmp_path, monkeypatch):
    import cnnlab._schema as schema
    import cnnlab.data.folder as folder
    from PIL import Image
    from cnnlab.data import load_image_folder
    for c in "ab":
        (tmp_path / c).mkdir()
        for i in range(2):
            Image.new("L", (12, 10), 7).save(tmp_path / c / f"{i}.png", format="PNG")
    monkeypatch.setattr(schema, "MAX_ACTIVATION_ELEMENTS", 100)  # one 10x12 image holds 120 values
    decoded = []
    monkeypatch.setattr(folder, "read_image", lambda *a, **k: decoded.append(a) or np.zeros((1, 10, 12)))
    with pytest.raises(ValueError, match=r"image folder .*: one 10x12 image would hold 120 values .* limit of 100"):
        load_image_folder(tmp_path)
    assert not decoded  # refused from the headers, before any image was decoded
    monkeypatch.setattr(schema, "MAX_ACTIVATION_ELEMENTS", 1000)
    monkeypatch.setattr(schema, "MAX_TENSOR_ELEMENTS", 400)  # the 4 images hold 480 values
    with pytest.raises(ValueError, match=r"image folder .*: its 4 images would hold 480 values"):
        load_image_folder(tmp_path, size=(10, 12), channels=1)
    assert not decoded
