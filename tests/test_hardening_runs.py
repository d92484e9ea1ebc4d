"""Hardening of training runs, predictions and the command line: each test pins one fixed failure."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SRC = str(Path(__file__).resolve().parents[1] / "src")


def cnnlab(*args, cwd=None, env_extra=None, timeout=300):
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "cnnlab", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=timeout)


def history_rows(run: Path):
    with open(run / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def weights(run: Path):
    with np.load(run / "model.npz") as z:
        return {k: z[k].copy() for k in z.files}


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    pytest.importorskip("sklearn")
    out = tmp_path_factory.mktemp("runs") / "digits"
    result = cnnlab("train", "--epochs", 1, "--limit", 200, "--out", out, "--quiet", "--json")
    assert result.returncode == 0, result.stderr
    return out


# --- training and runs ----------------------------------------------------------------------------
def test_batch_size_1_really_trains(tmp_path):
    pytest.importorskip("sklearn")
    from cnnlab import random as cl_random
    from cnnlab.models import create_model
    out = tmp_path / "b1"
    result = cnnlab("train", "--epochs", 1, "--limit", 100, "--batch-size", 1, "--val-fraction", 0,
                    "--out", out, "--quiet")
    assert result.returncode == 0, result.stderr
    row = history_rows(out)[0]
    assert float(row["train_loss"]) > 0.01 and float(row["train_accuracy"]) > 0
    cl_random.manual_seed(0)
    init, _ = create_model("digitsnet", (1, 8, 8), 10)
    trained = weights(out)
    assert not np.allclose(trained["0.weight"], init.state_dict()["0.weight"])


ONE_BY_ONE_BN = {"input_shape": [1, 8, 8], "layers": [
    {"type": "Conv2d", "out_channels": 4, "kernel_size": 8}, {"type": "BatchNorm2d"}, {"type": "ReLU"},
    {"type": "Flatten"}, {"type": "Linear", "out_features": 10}]}


def test_batch_size_1_refused_up_front_when_batch_norm_sees_1x1_maps(tmp_path):
    from cnnlab import train as T
    from cnnlab.models import build_model
    model = build_model(ONE_BY_ONE_BN)
    rng = np.random.default_rng(0)
    x, y = rng.random((9, 1, 8, 8)).astype(np.float32), np.arange(9) % 10
    with pytest.raises(ValueError, match=r"batch_size=1 cannot train this model: batch-norm layer 1 \(1x1"):
        T.fit(model, (x, y), epochs=1, batch_size=1, verbose=0)
    # a last batch of one image is left out, and the progress output says so
    lines = []
    from cnnlab.train import loop
    progress_cls = loop.ProgressBar

    class Recording(progress_cls):
        def message(self, text):
            lines.append(text)

    loop.ProgressBar = Recording
    try:
        history = T.fit(build_model(ONE_BY_ONE_BN), (x, y), epochs=1, batch_size=4, verbose=2)
    finally:
        loop.ProgressBar = progress_cls
    assert any("leave a last batch of 1 image" in line for line in lines), lines
    assert history.train_images == 8


def test_last_single_image_batch_trains_with_spatial_batch_norm():
    from cnnlab import train as T
    from cnnlab.models import digitsnet
    rng = np.random.default_rng(0)
    x, y = rng.random((9, 1, 8, 8)).astype(np.float32), np.arange(9) % 10
    history = T.fit(digitsnet(), (x, y), epochs=1, batch_size=4, verbose=0)
    assert history.train_images == 9


def test_divergence_with_a_finite_loss_stops_and_writes_no_model(tmp_path):
    pytest.importorskip("sklearn")
    out = tmp_path / "div"
    result = cnnlab("train", "--epochs", 2, "--lr", 10, "--optimizer", "sgd", "--out", out, "--quiet")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "training diverged in epoch 1: 4.running_var" in result.stderr
    assert "no model was saved; lower the learning rate (--lr)" in result.stderr
    assert not out.exists()  # a run that never finished an epoch leaves no half run directory


def test_divergence_keeps_the_last_finite_checkpoint(tmp_path):
    from cnnlab.io import load_bundle
    from cnnlab.models import digitsnet
    from cnnlab.train import LambdaCallback, TrainingDiverged, fit
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 1, 8, 8)).astype(np.float32), np.arange(40) % 10
    model = digitsnet()

    def poison(batch, logs):  # the loss stays finite (training uses batch statistics)
        if model.trainer_epoch == 2:
            model[1].running_var[0] = np.inf

    model.trainer_epoch = 0
    callback = LambdaCallback(on_epoch_begin=lambda e, logs: setattr(model, "trainer_epoch", e),
                              on_batch_end=poison)
    with pytest.raises(TrainingDiverged, match=r"epoch 2: 1.running_var hold NaN/inf values .* the last "
                                               r"finite checkpoint \(epoch 1\) stays in"):
        fit(model, (x, y), epochs=3, batch_size=16, out_dir=tmp_path, callbacks=[callback], verbose=0)
    arrays, meta = load_bundle(tmp_path / "checkpoint.npz")
    assert meta["epoch"] == 1 and all(np.isfinite(v).all() for v in arrays.values() if v.dtype.kind == "f")
    assert all(np.isfinite(v).all() for v in weights(tmp_path).values() if v.dtype.kind == "f")


def test_predict_and_evaluate_refuse_non_finite_models_and_outputs(digits_run, tmp_path):
    import shutil
    Image = pytest.importorskip("PIL.Image")
    from cnnlab.io import load_model
    from cnnlab.train import evaluate, predict
    bad = tmp_path / "bad-run"
    shutil.copytree(digits_run, bad)
    state = weights(bad)
    state["4.running_var"][:] = np.inf  # eval mode divides by sqrt(inf): finite but meaningless scores
    np.savez(bad / "model.npz", **state)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "x.png")
    for args in (("predict", bad, tmp_path / "x.png", "--json"), ("evaluate", bad),
                 ("explain", "features", bad, tmp_path / "x.png"), ("explain", "confusion", bad)):
        result = cnnlab(*args)
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr and "NaN" not in result.stdout
        assert "4.running_var hold NaN/inf values (training diverged)" in result.stderr
    saved = load_model(bad)
    saved.model[4].running_var[:] = np.nan
    images = np.zeros((3, 1, 8, 8), np.float32)
    with pytest.raises(FloatingPointError, match=r"predict: the model gives NaN/inf scores for 3 of 3 images"):
        predict(saved.model, images)
    with pytest.raises(FloatingPointError, match=r"evaluate: the model gives NaN/inf scores .* 4.running_var"):
        evaluate(saved.model, (images, np.zeros(3, np.int64)))


def _wait_for(predicate, proc, seconds=120):
    import time
    deadline = time.monotonic() + seconds
    while not predicate():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)


def lock_holder(out: Path):
    """Another process holding ``out``'s run lock (it has taken it when this returns); kill it to release."""
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom cnnlab.runs.lock import run_lock\n"
                               "with run_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(60)\n",
                               str(out)], stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=SRC))
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_second_run_into_a_locked_directory_is_refused_naming_the_holder(tmp_path):
    import socket
    out = tmp_path / "run"
    holder = lock_holder(out)
    try:
        result = cnnlab("train", "--epochs", 1, "--limit", 100, "--out", out, "--quiet")
        assert result.returncode == 1, result.stderr
        assert f"{out} is in use by another training run (pid {holder.pid} on {socket.gethostname()}, " \
               "started " in result.stderr
        assert "Traceback" not in result.stderr and not (out / "config.json").exists()
        result = cnnlab("train", "--resume", out)  # resuming is refused just the same
        assert result.returncode == 1
    finally:
        holder.kill()
        holder.wait()
    # the lock of a dead process (kill -9 leaves the file) is taken over
    assert (out / ".cnnlab-lock").exists()
    result = cnnlab("train", "--epochs", 1, "--limit", 100, "--out", out, "--quiet")
    assert result.returncode == 0, result.stderr
    assert not (out / ".cnnlab-lock").exists()


def test_sigterm_releases_the_lock_and_leaves_a_resumable_run(tmp_path):
    import signal
    pytest.importorskip("sklearn")
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=SRC, OPENBLAS_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "cnnlab", "train", "--epochs", "500", "--limit", "100",
                             "--out", str(out), "--quiet"], stderr=subprocess.PIPE, text=True, env=env)
    _wait_for(lambda: (out / "checkpoint.npz").exists(), proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "continue with: cnnlab train --resume" in err
    assert not (out / ".cnnlab-lock").exists()


def test_resume_of_a_complete_run_says_so_and_how_to_continue(digits_run):
    result = cnnlab("train", "--resume", digits_run)
    assert result.returncode == 0, result.stderr
    assert f"{digits_run} is complete (1 of 1 epochs); nothing to resume" in result.stderr
    assert f"cnnlab train --resume {digits_run} --epochs 2" in result.stderr
    assert "test accuracy" in result.stdout
    assert len(history_rows(digits_run)) == 1


def _image_folder(root: Path, per_class: int, classes=("a", "b"), size=8):
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray((rng.random((size, size)) * 255).astype(np.uint8)).save(root / name / f"{i}.png")
    return root


def test_image_folder_with_one_image_per_class_is_refused_before_training(tmp_path):
    data = _image_folder(tmp_path / "tiny", 1)
    result = cnnlab("train", "--dataset", data, "--epochs", 1, "--out", tmp_path / "run", "--quiet")
    assert result.returncode == 1, result.stderr
    assert "too few images per class ('a' has 1; 'b' has 1)" in result.stderr
    assert "needs at least 2 images per class, one to train on and one to test" in result.stderr
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root reads folders whatever their permissions")
def test_unreadable_class_folder_is_a_permission_error(tmp_path):
    data = _image_folder(tmp_path / "perm", 3)
    (data / "b").chmod(0)
    try:
        result = cnnlab("train", "--dataset", data, "--epochs", 1, "--out", tmp_path / "run", "--quiet")
    finally:
        (data / "b").chmod(0o755)
    assert result.returncode == 1, result.stderr
    assert f"cannot list folder {data / 'b'}: Permission denied" in result.stderr
    assert "holds no images" not in result.stderr


def test_unreadable_class_folder_is_a_permission_error_monkeypatched(tmp_path, monkeypatch):
    from cnnlab.data.folder import list_image_folder
    data = _image_folder(tmp_path / "perm", 3)
    real_scandir = os.scandir

    def scandir(path="."):
        if Path(path) == data / "b":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(PermissionError, match=r"cannot list folder .*perm/b: Permission denied \(check its"):
        list_image_folder(data)


# --- predictions a user can trust --------------------------------------------------------------------
@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Images of one digit as a user might give them: as trained, dark on light, a transparent
    canvas export, empty, in colour, non-square, a small digit in a corner, and a broken file."""
    Image = pytest.importorskip("PIL.Image")
    from sklearn.datasets import load_digits
    root = tmp_path_factory.mktemp("inputs")
    digit = np.kron((load_digits().images[0] / 16 * 255).astype(np.uint8), np.ones((4, 4), np.uint8))
    Image.fromarray(digit).save(root / "light.png")
    Image.fromarray(255 - digit).save(root / "dark_on_light.png")
    canvas = np.zeros((32, 32, 4), np.uint8)
    canvas[..., 3] = digit  # black strokes on a transparent background
    Image.fromarray(canvas).save(root / "canvas.png")
    Image.fromarray(np.full((32, 32), 3, np.uint8)).save(root / "empty.png")
    Image.fromarray(np.stack([digit, digit // 2, digit // 3], axis=-1)).save(root / "colour.png")
    wide = np.zeros((32, 64), np.uint8)
    wide[:, 16:48] = digit
    Image.fromarray(wide).save(root / "wide.png")
    corner = np.zeros((64, 64), np.uint8)
    corner[:16, :16] = digit[::2, ::2]
    Image.fromarray(corner).save(root / "corner.png")
    (root / "broken.png").write_text("not a PNG")
    return root


def same(a, b):
    """Two predictions agree (classes equal, probabilities to float32 precision)."""
    return [p["class"] for p in a["predictions"]] == [p["class"] for p in b["predictions"]] and np.allclose(
        [p["probability"] for p in a["predictions"]], [p["probability"] for p in b["predictions"]], atol=1e-5)


def test_training_stores_the_data_statistics(digits_run):
    stats = json.loads((digits_run / "model.json").read_text())["data_stats"]
    assert stats["background"] == "dark" and stats["gray"] is True
    assert stats["border_mean"] < stats["mean"] and 0 < stats["std"] < 1


def _unshrunk(warnings):
    """The warnings without "a 32x32 image shrunk to 8x8" (these inputs are larger than the 8x8 digits)."""
    return [w for w in warnings if "shrunk to" not in w]


def test_predict_warns_about_inputs_unlike_the_training_data(digits_run, inputs):
    names = ["light", "dark_on_light", "canvas", "empty", "colour", "wide"]
    result = cnnlab("predict", digits_run, *(inputs / f"{n}.png" for n in names), "--json")
    assert result.returncode == 0, result.stderr
    out = {Path(item["image"]).stem: item for item in json.loads(result.stdout)}
    assert _unshrunk(out["light"]["warnings"]) == []
    assert "dark content on a light background, but the model was trained on light on dark images" in \
        _unshrunk(out["dark_on_light"]["warnings"])[0]
    assert _unshrunk(out["canvas"]["warnings"]) == ["the content is in the alpha channel only (one colour drawn on a "
                                         "transparent background): drawn as light strokes on black, like the "
                                         "training data"]
    assert same(out["canvas"], out["light"])  # the alpha channel is the drawing
    assert "almost empty" in _unshrunk(out["empty"]["warnings"])[0]
    assert _unshrunk(out["colour"]["warnings"]) == ["colour image converted to gray (the model takes gray images)"]
    assert _unshrunk(out["wide"]["warnings"]) == ["a 64x32 image stretched to 8x8 (aspect ratio changed; --center keeps it)"]
    assert "cnnlab predict: warning: " in result.stderr and str(inputs / "wide.png") in result.stderr
    # --invert flips the image (the same answer as the light original); --no-invert keeps it, silently
    inverted = json.loads(cnnlab("predict", digits_run, inputs / "dark_on_light.png", "--invert",
                                 "--json").stdout)[0]
    assert same(inverted, out["light"]) and _unshrunk(inverted["warnings"]) == []
    kept = json.loads(cnnlab("predict", digits_run, inputs / "dark_on_light.png", "--no-invert", "--json").stdout)
    assert _unshrunk(kept[0]["warnings"]) == [] and same(kept[0], out["dark_on_light"])


def test_center_places_the_content_like_mnist():
    from cnnlab.data.inputs import center_content
    image = np.zeros((1, 64, 64), np.float32)
    image[0, 2:12, 5:10] = 1.0  # a 10x5 bar near a corner
    out = center_content(image, (28, 28), background=0.0)
    rows, cols = np.flatnonzero(out[0].max(axis=1) > 0.1), np.flatnonzero(out[0].max(axis=0) > 0.1)
    assert 19 <= rows[-1] - rows[0] + 1 <= 21  # long side scaled to 20 of 28
    assert 9 <= cols[-1] - cols[0] + 1 <= 12  # aspect ratio kept
    mass = out[0] / out[0].sum()
    cy, cx = mass.sum(axis=1) @ np.arange(28), mass.sum(axis=0) @ np.arange(28)
    assert abs(cy - 13.5) <= 0.75 and abs(cx - 13.5) <= 0.75
    assert center_content(np.zeros((1, 9, 9), np.float32), (28, 28), 0.0) is None


def test_predict_center_option(digits_run, inputs):
    plain = json.loads(cnnlab("predict", digits_run, inputs / "corner.png", "--json").stdout)[0]
    assert _unshrunk(plain["warnings"]) == ["the content is small (it spans 25% of the image, centre of mass at 12% across, "
                                 "11% down): --center crops and centres it"]
    result = cnnlab("predict", digits_run, inputs / "corner.png", inputs / "wide.png", "--center", "--json")
    assert result.returncode == 0, result.stderr
    items = json.loads(result.stdout)
    assert all(_unshrunk(item["warnings"]) == [] for item in items), items  # centred, nothing stretched


def test_one_unreadable_file_does_not_stop_the_others(digits_run, inputs):
    result = cnnlab("predict", digits_run, inputs / "light.png", inputs / "broken.png", inputs / "missing.png",
                    inputs / "colour.png", "--top-k", 1)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == [str(inputs / "light.png"), str(inputs / "colour.png")]
    assert f"cannot read image {inputs / 'broken.png'}" in result.stderr
    assert f"image {inputs / 'missing.png'} does not exist (skipped)" in result.stderr
    assert "2 of 4 images could not be read" in result.stderr
    out = json.loads(cnnlab("predict", digits_run, inputs / "broken.png", inputs / "light.png", "--json").stdout)
    assert "cannot read image" in out[0]["error"] and out[1]["predictions"]


def test_evaluate_refuses_a_data_set_with_other_class_names(tmp_path):
    first = _image_folder(tmp_path / "first", 4, classes=("cat", "dog"))
    other = _image_folder(tmp_path / "other", 4, classes=("car", "van"))
    run = tmp_path / "run"
    result = cnnlab("train", "--dataset", first, "--epochs", 1, "--out", run, "--quiet")
    assert result.returncode == 0, result.stderr
    assert cnnlab("evaluate", run).returncode == 0
    result = cnnlab("evaluate", run, "--dataset", other)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"the class names differ, so the scores would be compared with the wrong labels: the model in {run} " \
           f"has 2 classes (cat, dog), {other} has 2 (car, van)" in result.stderr


# --- command-line paper cuts ----------------------------------------------------------------------------
def test_every_explain_help_example_without_files_runs_as_printed():
    import shlex
    help_text = cnnlab("explain", "--help").stdout
    examples = [line.strip() for line in help_text.splitlines() if line.strip().startswith("cnnlab explain ")]
    runnable = [e for e in examples if not any(w in e for w in (".png", "RUN_DIR", "runs/"))]
    assert "cnnlab explain activation -39.5 0 2.5 --function relu" in runnable
    for example in runnable:
        result = cnnlab(*shlex.split(example)[1:])
        assert result.returncode == 0, (example, result.stderr)
    result = cnnlab(*shlex.split("cnnlab explain activation -39.5 0 2.5 --function relu")[1:])
    assert "relu(-39.5) = max(0, -39.5) = 0" in result.stdout
    act_help = cnnlab("explain", "activation", "--help").stdout
    for line in act_help.splitlines():
        if line.strip().startswith("cnnlab explain activation"):
            assert cnnlab(*shlex.split(line.strip())[1:]).returncode == 0, line


def test_a_bad_option_prints_the_subcommands_usage():
    result = cnnlab("explain", "activation", "--bogus", "1")
    assert result.returncode == 2
    assert result.stderr.startswith("usage: cnnlab explain activation ")
    assert "cnnlab explain activation: error: unrecognized arguments: --bogus" in result.stderr
    result = cnnlab("predict", "x", "y.png", "--nope")
    assert result.returncode == 2 and result.stderr.startswith("usage: cnnlab predict ")


def test_gabor_theta_takes_degrees_and_says_its_unit():
    import math
    from cnnlab.cli.explain_cmds import parse_params
    from cnnlab.cli import UsageError
    assert parse_params(["theta=45deg"])["theta"] == pytest.approx(math.pi / 4)
    assert parse_params(["theta=0.78rad", "phase=90°"]) == pytest.approx({"theta": 0.78, "phase": math.pi / 2})
    assert parse_params(["theta=0.5"]) == {"theta": 0.5}
    with pytest.raises(UsageError, match=r"--param sigma: '2deg' has an angle unit, but sigma is not an angle"):
        parse_params(["sigma=2deg"])
    with pytest.raises(UsageError, match=r"--param theta: 'xdeg' is not an angle like 45deg"):
        parse_params(["theta=xdeg"])
    assert "degrees with a deg suffix: --param theta=45deg" in " ".join(cnnlab("filter", "--help").stdout.split())
    result = cnnlab("explain", "conv", "--input", "0 1 2; 3 4 5; 6 7 8", "--kernel", "gabor", "--param", "size=3",
                    "--param", "theta=45")
    assert result.returncode == 0, result.stderr
    assert "--param theta=45 is read in radians (2578.31 degrees); write 45deg for degrees" in result.stderr
    deg = cnnlab("explain", "conv", "--input", "0 1 2; 3 4 5; 6 7 8", "--kernel", "gabor", "--param", "size=3",
                 "--param", "theta=45deg").stdout
    rad = cnnlab("explain", "conv", "--input", "0 1 2; 3 4 5; 6 7 8", "--kernel", "gabor", "--param", "size=3",
                 "--param", f"theta={math.pi / 4!r}").stdout
    assert deg.splitlines()[1:] == rad.splitlines()[1:]


def test_epoch_lines_print_on_a_terminal_that_reports_no_width(tmp_path):
    pty = pytest.importorskip("pty")
    import fcntl
    import select
    import struct
    import termios
    pytest.importorskip("sklearn")
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 0, 0, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env.update(PYTHONPATH=SRC, OPENBLAS_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "cnnlab", "train", "--epochs", "2", "--limit", "100", "--out",
                             str(tmp_path / "run")], stdout=subprocess.DEVNULL, stderr=slave, env=env)
    os.close(slave)
    output = b""
    while True:
        ready, _, _ = select.select([master], [], [], 1.0)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            output += data
        elif proc.poll() is not None:
            break
    proc.wait(timeout=120)
    os.close(master)
    text = output.decode(errors="replace")
    assert proc.returncode == 0, text
    assert "epoch 1/2: loss " in text and "epoch 2/2: loss " in text, text


def _decompression_bomb(path: Path):
    """A 30000x30000 PNG of a few dozen bytes (only its header is ever read)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))
    return path


def test_a_huge_image_gets_its_own_message(digits_run, tmp_path):
    bomb = _decompression_bomb(tmp_path / "bomb.png")
    data = _image_folder(tmp_path / "folder", 3)
    _decompression_bomb(data / "a" / "huge.png")
    for args in (("predict", digits_run, bomb), ("filter", bomb, "--kernel", "sobel-x"),
                 ("train", "--dataset", data, "--out", tmp_path / "run")):
        result = cnnlab(*args)
        assert result.returncode == 1, result.stderr
        assert "internal error" not in result.stderr
        assert "is too large to read (900,000,000 pixels, more than the 178,956,970 Pillow decodes: a guard " \
               "against decompression bombs" in result.stderr


def test_report_title_names_the_image_folder_not_its_path(tmp_path):
    pytest.importorskip("matplotlib")
    from cnnlab.explain.report import build_report
    data = _image_folder(tmp_path / "my_photos", 4)
    run = tmp_path / "run"
    assert cnnlab("train", "--dataset", data, "--epochs", 1, "--out", run, "--quiet").returncode == 0
    page, _ = build_report(run, samples=1)
    assert "<h1>digitsnet on my_photos</h1>" in page
    assert str(tmp_path) not in page


# --- more bad input found by trying the commands ----------------------------------------------------------
@pytest.mark.parametrize("args, pattern", [
    (("train", "--lr", "inf"), r"argument --lr: expected a positive number, got 'inf'"),
    (("train", "--weight-decay", "1e999"), r"argument --weight-decay: expected a number >= 0, got '1e999'"),
    (("train", "--patience", "2", "--val-fraction", "0"),
     r"--patience stops when the validation loss stops improving, so it needs a validation split"),
    (("train", "--out", "{file}"), r"--out .*light.png is a file; give a folder for the run"),
])
def test_bad_training_options_are_usage_errors_before_any_work(inputs, args, pattern):
    import re
    result = cnnlab(*(a.format(file=inputs / "light.png") for a in args))
    assert result.returncode == 2, result.stderr
    assert re.search(pattern, result.stderr), result.stderr
    assert "Traceback" not in result.stderr


def test_resume_without_a_checkpoint_fails_before_touching_the_run(digits_run, tmp_path):
    import shutil
    run = tmp_path / "unstarted"
    shutil.copytree(digits_run, run)
    (run / "checkpoint.npz").unlink()
    (run / "metrics.json").unlink()
    config = (run / "config.json").read_bytes()
    result = cnnlab("train", "--resume", run, "--epochs", 3)
    assert result.returncode == 1
    assert f"cannot resume: {run} has no checkpoint.npz, so its first epoch never finished" in result.stderr
    assert (run / "config.json").read_bytes() == config


def test_explain_reads_images_as_predict_does(digits_run, inputs):
    from cnnlab.explain.runs import model_input
    from cnnlab.io import load_model
    saved = load_model(digits_run)
    notes = []
    canvas, _ = model_input(saved, inputs / "canvas.png", notes=notes)
    notes = _unshrunk(notes)
    light, _ = model_input(saved, inputs / "light.png")
    assert np.allclose(canvas, light, atol=1e-6)  # the transparent canvas is no longer a blank image
    assert len(notes) == 1 and "alpha channel only" in notes[0]


def test_colour_models_get_their_own_statistics_and_warnings(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    from cnnlab.data.inputs import data_stats, read_model_input
    rng = np.random.default_rng(0)
    colour = rng.random((5, 3, 12, 12)).astype(np.float32)
    stats = data_stats(colour)
    assert stats["gray"] is False and stats["background"] is None
    assert data_stats(np.repeat(colour[:, :1], 3, axis=1))["gray"] is True
    Image.fromarray((rng.random((12, 12)) * 255).astype(np.uint8)).save(tmp_path / "gray.png")
    Image.fromarray((rng.random((12, 12, 4)) * 255).astype(np.uint8)).save(tmp_path / "rgba.png")
    _, warnings = read_model_input(tmp_path / "gray.png", (3, 12, 12), stats)
    assert warnings == ["a gray image, but the model was trained on colour images"]
    _, warnings = read_model_input(tmp_path / "rgba.png", (3, 12, 12), stats)
    assert warnings == ["transparent pixels composited onto black"]


def test_runs_started_in_the_same_second_get_different_folders(tmp_path, monkeypatch):
    import datetime as dt
    from cnnlab import train as T

    class Frozen(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2026, 1, 2, 3, 4, 5)

    monkeypatch.setattr(T.run, "datetime", Frozen)
    first = T._new_run_dir("digits", "digitsnet", tmp_path)
    second = T._new_run_dir("digits", "digitsnet", tmp_path)
    assert first.name == "digits-digitsnet-20260102-030405" and second.name == first.name + "-2"
    assert first.is_dir() and second.is_dir()  # claimed by mkdir, not merely chosen


def test_two_runs_started_at_once_into_one_folder(tmp_path):
    pytest.importorskip("sklearn")
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=SRC, OPENBLAS_NUM_THREADS="1")
    command = [sys.executable, "-m", "cnnlab", "train", "--epochs", "20", "--limit", "200", "--out", str(out),
               "--quiet"]
    procs = [subprocess.Popen(command + ["--seed", str(seed)], stderr=subprocess.PIPE, text=True, env=env)
             for seed in (1, 2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert sorted(code for code, _ in results) == [0, 1], results
    refused = next(err for code, err in results if code == 1)
    assert "is in use by another training run (pid " in refused or "already holds a training run" in refused
    winner = 1 + [code for code, _ in results].index(0)
    assert json.loads((out / "config.json").read_text())["seed"] == winner  # one run's files, not a mix
    assert json.loads((out / "metrics.json").read_text())["seed"] == winner


def test_resume_after_an_interrupted_extension_is_not_called_complete(digits_run, tmp_path):
    import shutil
    run = tmp_path / "extended"
    shutil.copytree(digits_run, run)
    config = json.loads((run / "config.json").read_text())
    config["epochs"] = 2  # `--resume --epochs 2` was started, then interrupted: metrics.json still says 1
    (run / "config.json").write_text(json.dumps(config))
    result = cnnlab("train", "--resume", run, "--quiet", "--json")
    assert result.returncode == 0, result.stderr
    assert "is complete" not in result.stderr
    assert json.loads(result.stdout)["epochs"] == 2 and len(history_rows(run)) == 2


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_pipe_named_like_an_image_is_refused_not_waited_on(digits_run, inputs, tmp_path):
    pipe = tmp_path / "pipe.png"
    os.mkfifo(pipe)
    result = cnnlab("predict", digits_run, pipe, inputs / "light.png", timeout=60)
    assert result.returncode == 1
    assert f"{pipe} is not a regular file (a pipe, socket or device), expected an image file" in result.stderr
    assert result.stdout.startswith(str(inputs / "light.png"))


def test_evaluate_an_empty_split_and_a_missing_data_dir_are_clear(digits_run, tmp_path):
    result = cnnlab("evaluate", digits_run, "--split", "val", "--limit", 2)
    assert result.returncode == 2 and "internal error" not in result.stderr
    assert "the val split of digits is empty here (limit 2): give a larger --limit" in result.stderr
    for args in (("evaluate", digits_run), ("train", "--limit", 50)):
        result = cnnlab(*args, "--data-dir", tmp_path / "nowhere")
        assert result.returncode == 1
        assert f"--data-dir {tmp_path / 'nowhere'} does not exist (or is not a folder)" in result.stderr


def test_summary_of_a_saved_models_file_or_an_image(digits_run, inputs):
    for name in ("model.json", "model.npz"):
        result = cnnlab("summary", digits_run / name)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("digitsnet  (input 1x8x8)")
    result = cnnlab("summary", inputs / "light.png")
    assert result.returncode == 1 and "codec" not in result.stderr
    assert "light.png is not a model file: expected a zoo name" in result.stderr


# --- faults -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kill_after_rows, delay", [(0, 0.0), (1, 0.05), (2, 0.1)])
def test_kill_9_then_resume_gives_the_uninterrupted_result(tmp_path, kill_after_rows, delay):
    import signal
    import time
    pytest.importorskip("sklearn")
    args = ["train", "--epochs", "4", "--limit", "200", "--quiet"]
    reference = tmp_path / "reference"
    assert cnnlab(*args, "--out", reference).returncode == 0
    run = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=SRC, OPENBLAS_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "cnnlab", *args, "--out", str(run)], env=env,
                            stderr=subprocess.DEVNULL)
    rows = (lambda: len(history_rows(run)) if (run / "history.csv").exists() else 0)
    _wait_for(lambda: rows() >= kill_after_rows and (run / ".cnnlab-lock").exists(), proc)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if not (run / "checkpoint.npz").exists():  # killed before the first epoch ended: start again
        result = cnnlab(*args, "--out", run)
    else:
        result = cnnlab("train", "--resume", run, "--quiet")
    assert result.returncode == 0, result.stderr  # the dead process's lock is taken over
    expected, got = weights(reference), weights(run)
    assert expected.keys() == got.keys()
    assert all(np.array_equal(expected[k], got[k]) for k in expected)
    assert [r["train_loss"] for r in history_rows(run)] == [r["train_loss"] for r in history_rows(reference)]


def test_evaluate_knows_the_runs_own_data_set_by_any_spelling(tmp_path):
    from cnnlab.cli.train_cmds import _same_dataset
    folder = _image_folder(tmp_path / "photos", 2)
    assert _same_dataset("MNIST", "mnist") and _same_dataset("Fashion_MNIST", "fashion-mnist")
    assert not _same_dataset("mnist", "fashion-mnist") and not _same_dataset("digits", None)
    assert _same_dataset(os.path.relpath(folder), str(folder.resolve()))
    assert not _same_dataset(str(tmp_path), str(folder.resolve()))


def test_invert_on_an_image_that_needed_none_is_said(digits_run, inputs):
    item = json.loads(cnnlab("predict", digits_run, inputs / "light.png", "--invert", "--json").stdout)[0]
    assert _unshrunk(item["warnings"]) == ["after --invert, dark content on a light background, but the model was trained "
                                "on light on dark images: the prediction is likely wrong; leave out --invert"]


def test_resume_to_fewer_epochs_than_trained_is_refused(tmp_path):
    pytest.importorskip("sklearn")
    run = tmp_path / "run"
    assert cnnlab("train", "--epochs", 3, "--limit", 100, "--out", run, "--quiet").returncode == 0
    (run / "metrics.json").unlink()  # as if interrupted after its last epoch
    result = cnnlab("train", "--resume", run, "--epochs", 2)
    assert result.returncode == 1
    assert f"cannot resume {run} to 2 epochs: it has trained 3 already; give --epochs 4 or more" in result.stderr
    assert json.loads((run / "config.json").read_text())["epochs"] == 3


def test_float_and_16_bit_images_keep_their_gray_levels(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    from cnnlab.data.folder import read_image
    from cnnlab.data.inputs import read_model_input
    pixels = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    Image.fromarray(pixels).save(tmp_path / "float.tif")  # mode F, values in [0, 1]
    expected = np.round(pixels * 255) / 255
    assert np.allclose(read_image(tmp_path / "float.tif", 1)[0], expected, atol=1e-6)
    broken = pixels.copy()
    broken[0, 0], broken[1, 1] = np.nan, np.inf
    Image.fromarray(broken).save(tmp_path / "nan.tif")
    array, warnings = read_model_input(tmp_path / "nan.tif", (1, 8, 8))
    assert "2 NaN/inf pixels read as 0" in warnings and np.isfinite(array).all()
    assert array[0, 0, 0] == 0 and array[0, 7, 7] == pytest.approx(1.0)
    deep = (pixels * 65535).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")  # 16-bit gray
    assert np.allclose(read_image(tmp_path / "deep.png", 1)[0], expected, atol=1 / 255)


def test_fit_from_python_locks_its_out_dir(tmp_path):
    """``fit(out_dir=...)`` (not only ``cnnlab train``) refuses a folder another process trains into."""
    import cnnlab
    from cnnlab.runs.lock import RunLocked
    from cnnlab.train import fit
    out = tmp_path / "run"
    rng = np.random.default_rng(0)
    data = (rng.random((16, 1, 6, 6), dtype=np.float32), rng.integers(0, 2, 16))
    model = cnnlab.nn.Sequential(cnnlab.nn.Flatten(), cnnlab.nn.Linear(36, 2))
    holder = lock_holder(out)
    try:
        with pytest.raises(RunLocked, match=f"pid {holder.pid}"):
            fit(model, data, epochs=1, out_dir=out, verbose=0)
        with pytest.raises(RunLocked):
            fit(model, data, epochs=1, resume=out, verbose=0)
        assert sorted(p.name for p in out.iterdir()) == [".cnnlab-lock"]  # nothing written
    finally:
        holder.kill()
        holder.wait()
    fit(model, data, epochs=1, out_dir=out, verbose=0)
    assert (out / "model.json").is_file() and not (out / ".cnnlab-lock").exists()
    # a fit that fails its checks before writing leaves no empty folder behind
    with pytest.raises(ValueError):
        fit(model, data, epochs=1, out_dir=tmp_path / "never", verbose=0, label_smoothing=2.0)
    assert not (tmp_path / "never").exists()
