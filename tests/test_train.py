"""fit / evaluate / predict, run directories, checkpoints and resume (tiny models on tiny data)."""
import csv
import io
import json

import numpy as np
import pytest

import cnnlab
from cnnlab import nn
from cnnlab.data import ArrayDataset, DataLoader
from cnnlab.data.transforms import RandomShift
from cnnlab.io import load_bundle, load_model
from cnnlab.train import (HISTORY_COLUMNS, Callback, LambdaCallback, evaluate, fit, make_optimizer,
                          make_scheduler, predict, train)


def bars(n=96, size=8, classes=3, seed=0, noise=0.1):
    """Class k: a bright horizontal bar in band k of the image, plus noise (learnable in a few steps)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    images = rng.random((n, 1, size, size), dtype=np.float32) * noise
    band = size // classes
    rows = labels * band + rng.integers(0, band, n)
    images[np.arange(n), 0, rows, :] = 1.0
    return ArrayDataset(images, labels, [f"c{k}" for k in range(classes)], name="bars")


def tiny_cnn(classes=3, dropout=0.0, bn=True):
    cnnlab.manual_seed(0)
    layers = [nn.Conv2d(1, 4, 3, padding=1)]
    if bn:
        layers.append(nn.BatchNorm2d(4))
    layers += [nn.ReLU(), nn.MaxPool2d(2), nn.Flatten()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(4 * 4 * 4, classes))
    return nn.Sequential(*layers)


def weights(model):
    return {k: np.array(v) for k, v in model.state_dict().items()}


def assert_same_weights(a, b):
    assert list(a) == list(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


# --- the loop ---------------------------------------------------------------------------------
def test_loss_falls_and_accuracy_rises():
    data = bars()
    model = tiny_cnn()
    history = fit(model, data, epochs=6, batch_size=16, lr=0.01, verbose=0)
    losses = history.history["train_loss"]
    assert losses[-1] < 0.5 * losses[0]
    assert history.history["train_accuracy"][-1] > 0.9
    assert evaluate(model, data)["accuracy"] > 0.9


def test_history_columns_and_values():
    history = fit(tiny_cnn(), bars(), bars(30, seed=1), epochs=3, batch_size=16, lr=0.01, verbose=0)
    assert tuple(history.history) == HISTORY_COLUMNS
    assert history.history["epoch"] == [1, 2, 3] and history.epochs == 3
    for key in ("train_accuracy", "val_accuracy"):
        assert all(0.0 <= v <= 1.0 for v in history.history[key])
    assert all(s > 0 for s in history.history["seconds"])
    lrs = history.history["lr"]
    assert lrs[0] == pytest.approx(0.01) and lrs[0] > lrs[1] > lrs[2]  # cosine
    assert history.best_epoch in (1, 2, 3) and history.train_images == 3 * 96
    assert history.images_per_second > 0 and history.train_seconds >= sum(history.history["seconds"]) * 0.99


def test_same_seed_same_weights_other_seed_other_weights():
    runs = []
    for seed in (5, 5, 6):
        model = tiny_cnn(dropout=0.3)
        fit(model, bars(), epochs=2, batch_size=16, lr=0.01, augment=RandomShift(1), seed=seed, verbose=0)
        runs.append(weights(model))
    assert_same_weights(runs[0], runs[1])
    assert not np.array_equal(runs[0]["0.weight"], runs[2]["0.weight"])


class StopAt(Callback):
    """Simulates Ctrl-C at the start of epoch ``epoch``."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs):
        if epoch == self.epoch:
            raise KeyboardInterrupt


@pytest.mark.parametrize("schedule, optimizer", [("cosine", "adam"), ("onecycle", "sgd"), ("step", "adamw")])
def test_resume_is_bit_for_bit(tmp_path, schedule, optimizer):
    """2 epochs in one go == 1 epoch, interruption, resume for the 2nd: identical weights."""
    kwargs = dict(epochs=2, batch_size=16, lr=0.01, schedule=schedule, optimizer=optimizer, weight_decay=1e-3,
                  augment=RandomShift(1), seed=3, verbose=0, label_smoothing=0.1, clip_grad=5.0)
    train_set, val_set = bars(), bars(30, seed=1)

    straight = tiny_cnn(dropout=0.3)
    fit(straight, train_set, val_set, out_dir=tmp_path / "a", **kwargs)

    interrupted = tiny_cnn(dropout=0.3)
    with pytest.raises(KeyboardInterrupt):
        fit(interrupted, train_set, val_set, out_dir=tmp_path / "b", callbacks=[StopAt(2)], **kwargs)
    _, meta = load_bundle(tmp_path / "b" / "checkpoint.npz")
    assert meta["epoch"] == 1
    resumed = nn.Sequential(*tiny_cnn(dropout=0.3))  # a fresh model: everything comes from the checkpoint
    cnnlab.manual_seed(99)
    history = fit(resumed, train_set, val_set, out_dir=tmp_path / "b", resume=True, **kwargs)

    assert history.history["epoch"] == [1, 2]
    assert_same_weights(weights(straight), weights(resumed))
    a, _ = load_bundle(tmp_path / "a" / "checkpoint.npz")
    b, _ = load_bundle(tmp_path / "b" / "checkpoint.npz")
    assert_same_weights(a, b)  # model, optimizer state and best weights
    rows_a = list(csv.DictReader(open(tmp_path / "a" / "history.csv")))
    rows_b = list(csv.DictReader(open(tmp_path / "b" / "history.csv")))
    for ra, rb in zip(rows_a, rows_b):
        assert {k: v for k, v in ra.items() if k != "seconds"} == {k: v for k, v in rb.items() if k != "seconds"}


def test_resume_can_extend_training(tmp_path):
    kwargs = dict(batch_size=16, lr=0.01, schedule="constant", seed=1, verbose=0)
    straight = tiny_cnn()
    fit(straight, bars(), epochs=3, **kwargs)
    part = tiny_cnn()
    fit(part, bars(), epochs=2, out_dir=tmp_path, **kwargs)
    more = tiny_cnn()
    fit(more, bars(), epochs=3, resume=tmp_path, **kwargs)
    assert_same_weights(weights(straight), weights(more))


def test_resume_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"cannot resume: .*checkpoint.npz does not exist"):
        fit(tiny_cnn(), bars(), epochs=1, out_dir=tmp_path, resume=True, verbose=0)
    fit(tiny_cnn(), bars(), epochs=1, out_dir=tmp_path, batch_size=16, verbose=0)
    with pytest.raises(ValueError, match=r"it was trained with batch_size=16, now batch_size=32"):
        fit(tiny_cnn(), bars(), epochs=2, out_dir=tmp_path, batch_size=32, resume=True, verbose=0)


def test_run_directory_files(tmp_path):
    data = bars()
    fit(tiny_cnn(), data, bars(30, seed=1), epochs=2, batch_size=16, lr=0.01, out_dir=tmp_path, verbose=0,
        model_name="tiny")
    assert {p.name for p in tmp_path.iterdir()} == {"checkpoint.npz", "history.csv", "model.npz", "model.json"}
    rows = list(csv.reader(open(tmp_path / "history.csv")))
    assert tuple(rows[0]) == HISTORY_COLUMNS and [r[0] for r in rows[1:]] == ["1", "2"]
    saved = load_model(tmp_path)
    assert saved.classes == ["c0", "c1", "c2"] and saved.input_shape == (1, 8, 8) and saved.name == "tiny"
    assert saved.mean == pytest.approx(data.mean) and saved.std == pytest.approx(data.std)
    with np.load(tmp_path / "checkpoint.npz", allow_pickle=False) as ckpt:
        assert any(k.startswith("optim/") for k in ckpt.files) and "model/0.weight" in ckpt.files


def test_early_stopping_and_best_weights():
    model = tiny_cnn(bn=False)
    seen = []
    cb = LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(logs["val_loss"]))
    history = fit(model, bars(), bars(30, seed=1), epochs=20, lr=0.0, patience=2, schedule="constant",
                  callbacks=[cb], verbose=0)  # lr 0: the validation loss never improves after epoch 1
    assert history.stopped_early and history.epochs == 3 and history.best_epoch == 1 and len(seen) == 3


def test_restore_best_weights():
    class Spoil(Callback):  # wreck the weights after epoch 2: the best epoch must come back
        def on_epoch_end(self, epoch, logs):
            if epoch == 2:
                for p in self.trainer.model.parameters():
                    p.numpy()[...] = 0

    model = tiny_cnn(bn=False)
    history = fit(model, bars(), bars(30, seed=1), epochs=3, lr=0.01, schedule="constant", verbose=0,
                  callbacks=[Spoil()], monitor="val_accuracy")
    assert history.best_epoch in (1, 2)
    assert np.abs(model[0].weight.numpy()).sum() > 0


def test_callbacks_see_every_stage_and_can_stop():
    events = []

    class Recorder(Callback):
        def on_train_begin(self, logs):
            events.append("begin")

        def on_epoch_begin(self, epoch, logs):
            events.append(f"epoch{epoch}")

        def on_batch_end(self, batch, logs):
            events.append("batch")
            assert 0 <= logs["accuracy"] <= 1 and logs["size"] > 0

        def on_epoch_end(self, epoch, logs):
            events.append(f"end{epoch}")
            self.trainer.stop_training = True

        def on_train_end(self, logs):
            events.append("done")

    fit(tiny_cnn(), bars(), epochs=5, batch_size=32, verbose=0, callbacks=[Recorder()])
    assert events == ["begin", "epoch1", "batch", "batch", "batch", "end1", "done"]


def test_train_and_eval_modes(monkeypatch):
    """Dropout is active while training and off in evaluate/predict; the mode is restored."""
    model = tiny_cnn(dropout=0.5)
    modes = []
    original = nn.Dropout.forward

    def spy(self, x):
        modes.append(self.training)
        return original(self, x)

    monkeypatch.setattr(nn.Dropout, "forward", spy)
    fit(model, bars(), bars(30, seed=1), epochs=1, batch_size=48, verbose=0)
    assert modes == [True, True, False]  # two training batches, one validation batch
    model.train()
    evaluate(model, bars())
    predict(model, bars().images)
    assert model.training and modes[-2:] == [False, False]


def test_evaluate_runs_without_a_graph_and_matches_a_manual_count():
    data = bars(50)
    model = tiny_cnn()
    fit(model, data, epochs=2, batch_size=16, lr=0.01, verbose=0)
    result = evaluate(model, data, batch_size=7, return_predictions=True)
    probs = predict(model, data, batch_size=13)
    assert probs.shape == (50, 3) and np.allclose(probs.sum(axis=1), 1)
    assert np.array_equal(result["predictions"], probs.argmax(axis=1))
    assert result["correct"] == int((probs.argmax(axis=1) == data.labels).sum()) and result["total"] == 50
    assert result["accuracy"] == pytest.approx(result["correct"] / 50)
    assert 0 <= result["loss"] and np.allclose(result["probabilities"], probs, atol=1e-6)
    norm = (data.images - data.mean[0]) / data.std[0]
    # the model carries the normalisation fit trained it with: [0, 1] arrays get it, mean/std given win
    assert np.allclose(predict(model, data.images), probs, atol=1e-6)
    assert np.allclose(predict(model, norm, mean=[0.0], std=[1.0]), probs, atol=1e-6)


def test_fit_accepts_arrays_and_dataloaders():
    data = bars()
    fit(tiny_cnn(), (data.images, data.labels), epochs=1, verbose=0)
    loader = DataLoader(data, batch_size=32, shuffle=True, rng=0)
    history = fit(tiny_cnn(), loader, epochs=2, verbose=0)
    assert history.epochs == 2 and history.train_images == 192


def test_progress_lines_when_not_a_terminal(capsys):
    fit(tiny_cnn(), bars(), bars(30, seed=1), epochs=2, batch_size=32, verbose="auto")
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and err[0].startswith("epoch 1/2: loss ") and "val_acc" in err[0] and "img/s" in err[0]


def test_progress_bar(monkeypatch):
    pytest.importorskip("tqdm")
    from cnnlab.train import _Progress
    stream = io.StringIO()
    progress = _Progress(1, 3, stream)
    progress.start_epoch(1, 2)
    progress.batch(32, 0.5, 0.75)
    progress.batch(64, 0.4, 0.8)
    progress.end_epoch({"epoch": 1, "train_loss": 0.4, "train_accuracy": 0.8, "val_loss": None, "lr": 0.1,
                        "seconds": 1.0}, 100.0)
    text = stream.getvalue()
    assert "epoch 1/3" in text and "2/2 batches" in text and "img/s" in text and "acc 80.00%" in text


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(epochs=0), ValueError, "epochs must be a positive int, got 0"),
    (dict(batch_size=0), ValueError, "batch_size must be a positive int, got 0"),
    (dict(label_smoothing=1.0), ValueError, r"label_smoothing must be in \[0, 1\), got 1.0"),
    (dict(patience=2), ValueError, "patience .* needs val_data"),
    (dict(optimizer="adagrad"), ValueError, "unknown optimizer 'adagrad': expected one of adam, adamw, sgd"),
    (dict(schedule="linear"), ValueError, "unknown schedule 'linear'"),
    (dict(monitor="loss"), ValueError, "monitor must be 'val_loss' or 'val_accuracy'"),
    (dict(augment=3), TypeError, "augment must be a callable"),
    (dict(resume=True), ValueError, "resume=True needs out_dir"),
])
def test_fit_argument_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        fit(tiny_cnn(), bars(), verbose=0, **kwargs)


def test_fit_data_errors():
    with pytest.raises(ValueError, match=r"the model gives 3 scores per image but the data have 4 classes"):
        fit(tiny_cnn(), bars(classes=4), epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"the model does not fit the data \(1x6x6 images\)"):
        fit(tiny_cnn(), bars(size=6), epochs=1, verbose=0)
    with pytest.raises(TypeError, match="train_data must be an ArrayDataset"):
        fit(tiny_cnn(), [1, 2, 3], epochs=1, verbose=0)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_diverging_loss_is_a_clear_error():
    with pytest.raises(FloatingPointError, match=r"the loss became nan.*--lr"):
        fit(tiny_cnn(bn=False), bars(), epochs=1, lr=1e30, optimizer="sgd", verbose=0)


def test_make_optimizer_and_scheduler():
    params = list(tiny_cnn().parameters())
    assert type(make_optimizer("SGD", params, 0.1)).__name__ == "SGD"
    opt = make_optimizer("adam", params, 0.1)
    sched, per_batch = make_scheduler("step", opt, epochs=4, steps_per_epoch=10)
    assert not per_batch and opt.lr == pytest.approx(0.1)
    for _ in range(2):
        sched.step()
    assert opt.lr == pytest.approx(0.01)
    sched.step()
    assert opt.lr == pytest.approx(0.001)
    assert make_scheduler("constant", opt, 4, 10) == (None, False)


# --- whole runs (cnnlab train) ------------------------------------------------------------------
def test_train_writes_metrics_and_config(tmp_path):
    pytest.importorskip("sklearn")
    metrics = train("digits", epochs=2, limit=200, out_dir=tmp_path / "run", verbose=0)
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} >= {"model.npz", "model.json", "history.csv", "metrics.json",
                                               "checkpoint.npz", "config.json"}
    saved = json.loads((run / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(metrics))
    for key in ("test_accuracy", "test_loss", "epochs", "train_seconds", "model", "dataset", "seed",
                "batch_size", "images_per_second", "best_epoch", "cnnlab_version"):
        assert key in saved
    assert 0.0 <= saved["test_accuracy"] <= 1.0 and saved["test_loss"] >= 0
    assert saved["epochs"] == 2 and saved["model"] == "digitsnet" and saved["dataset"] == "digits"
    assert saved["train_seconds"] > 0 and saved["test_size"] == 200
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == "digitsnet" and config["epochs"] == 2 and config["limit"] == 200
    with pytest.raises(ValueError, match=r"already holds a training run; .*--resume"):
        train("digits", epochs=1, limit=200, out_dir=run, verbose=0)
    # resuming to a larger epoch count continues the run
    more = train(resume=run, epochs=3, verbose=0)
    assert more["epochs"] == 3


def test_train_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        train("digits", model="nope", verbose=0)
    with pytest.raises(FileNotFoundError, match="model file missing.json does not exist"):
        train("digits", model="missing.json", verbose=0)
    with pytest.raises(FileNotFoundError, match="run directory .* does not exist"):
        train(resume=tmp_path / "none", verbose=0)
    with pytest.raises(ValueError, match="is not a cnnlab run directory"):
        train(resume=tmp_path, verbose=0)


def test_blas_threads_policy():
    from cnnlab.threads import auto_threads, blas_threads

    assert auto_threads((1, 8, 8)) == 1 and auto_threads((3, 16, 16)) == 1
    assert auto_threads((1, 28, 28)) is None
    from threadpoolctl import threadpool_info

    with blas_threads(1):
        assert all(pool["num_threads"] == 1 for pool in threadpool_info() if pool["user_api"] == "blas")
    with pytest.raises(ValueError, match="threads must be a positive integer, got 0"):
        with blas_threads(0):
            pass


def test_predict_of_a_model_ending_in_softmax_is_not_softmaxed_twice():
    import cnnlab
    cnnlab.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 5), nn.Softmax(dim=1))
    x = np.random.default_rng(0).random((4, 1, 8, 8)).astype(np.float32)
    with cnnlab.no_grad():
        want = model.eval()(cnnlab.Tensor(x)).numpy()
    np.testing.assert_allclose(predict(model, x), want, rtol=1e-6)
    logs = nn.Sequential(nn.Flatten(), model[1], nn.LogSoftmax(dim=1))
    np.testing.assert_allclose(predict(logs, x), want, rtol=1e-5)


# --- resume: the run's own architecture and data (silent wrong answers otherwise) ----------------------
def _write_model_file(path, activation):
    path.write_text(json.dumps({"layers": [
        {"type": "Conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1}, {"type": activation},
        {"type": "Flatten"}, {"type": "Linear", "out_features": 10}]}))


def test_resume_rebuilds_the_run_own_architecture_not_the_edited_model_file(tmp_path):
    spec = tmp_path / "net.json"
    _write_model_file(spec, "ReLU")
    run = tmp_path / "run"
    train("digits", model=str(spec), epochs=1, limit=120, out_dir=run, verbose=0)
    before = json.loads((run / "model.json").read_text())["architecture"]
    _write_model_file(spec, "Tanh")  # same weights' shapes, another network
    train(resume=run, epochs=2, verbose=0)
    after = json.loads((run / "model.json").read_text())["architecture"]
    assert after == before and "Tanh" not in json.dumps(after)


def _image_folder(root, per_class=6):
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(root / name / f"{i}.png")
    return root


def test_resume_refuses_an_image_folder_that_changed(tmp_path):
    import os
    data = _image_folder(tmp_path / "data")
    run = tmp_path / "run"
    train(str(data), epochs=1, out_dir=run, verbose=0)
    assert json.loads((run / "config.json").read_text())["data_fingerprint"].startswith("sha256:")
    for path in data.rglob("*.png"):  # copied or touched files (new times) are the same data
        os.utime(path, (1, 1))
    train(resume=run, epochs=2, verbose=0)
    _image_folder(data, per_class=7)  # one more image in each class: the split would be redrawn
    with pytest.raises(ValueError, match=r"cannot resume .*: the data of .* changed since the run started"):
        train(resume=run, epochs=3, verbose=0)


def test_data_fingerprint_sees_pixels_labels_and_classes():
    from cnnlab.data import data_fingerprint
    images = np.zeros((4, 1, 2, 2), np.float32)
    labels = np.array([0, 1, 0, 1])
    base = data_fingerprint(ArrayDataset(images, labels, ["x", "y"]), None)
    assert base == data_fingerprint(ArrayDataset(images.copy(), labels.copy(), ["x", "y"]), None)
    edited = images.copy()
    edited[3, 0, 1, 1] = 1 / 255
    for other in (ArrayDataset(edited, labels, ["x", "y"]), ArrayDataset(images, labels[::-1].copy(), ["x", "y"]),
                  ArrayDataset(images, labels, ["x", "z"])):
        assert data_fingerprint(other, None) != base
    assert data_fingerprint(ArrayDataset(images, labels, ["x", "y"])) != base  # the parts count
