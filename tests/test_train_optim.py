"""fit with PyTorch-style optimisers and schedulers: parameter groups, scheduler objects, the
checkpoint's optimizer state (param_groups as JSON, buffers as arrays), and checkpoints written
before parameter groups still resuming bit for bit."""
import numpy as np
import pytest

import cnnlab
from cnnlab import nn, optim
from cnnlab.data.transforms import RandomShift
from cnnlab.io import load_bundle, save_bundle
from cnnlab.train import fit

from test_train import StopAt, assert_same_weights, bars, tiny_cnn, weights


@pytest.mark.parametrize("schedule, optimizer", [("cosine", "adam"), ("onecycle", "sgd"), ("step", "adamw")])
def test_checkpoints_before_param_groups_still_resume_bit_for_bit(tmp_path, schedule, optimizer):
    kwargs = dict(epochs=2, batch_size=16, lr=0.01, schedule=schedule, optimizer=optimizer, weight_decay=1e-3,
                  augment=RandomShift(1), seed=3, verbose=0)
    straight = tiny_cnn()
    fit(straight, bars(), out_dir=tmp_path / "a", **kwargs)
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_cnn(), bars(), out_dir=tmp_path / "b", callbacks=[StopAt(2)], **kwargs)
    path = tmp_path / "b" / "checkpoint.npz"
    arrays, meta = load_bundle(path)
    groups = meta["optimizer"]["param_groups"]
    assert len(groups) == 1 and groups[0]["params"] == list(range(len(groups[0]["params"])))
    assert all(k.split("/")[1].split(".")[0].isdigit() for k in arrays if k.startswith("optim/"))
    # the earlier layout: one lr and a step count; the scheduler's single base lr
    meta["optimizer"] = {"lr": groups[0]["lr"], "step_count": 6}
    meta["scheduler"] = {"last_epoch": meta["scheduler"]["last_epoch"], "base_lr": meta["scheduler"]["base_lrs"][0]}
    save_bundle(path, arrays, meta)
    resumed = nn.Sequential(*tiny_cnn())
    cnnlab.manual_seed(99)
    fit(resumed, bars(), out_dir=tmp_path / "b", resume=True, **kwargs)
    assert_same_weights(weights(straight), weights(resumed))


def test_fit_with_param_groups_and_a_scheduler_object():
    model = tiny_cnn(bn=False)
    conv, head = model[0], model[-1]
    opt = optim.SGD([{"params": conv.parameters(), "lr": 0.05}, {"params": head.parameters()}], lr=0.01,
                    momentum=0.9)
    sched = optim.StepLR(opt, step_size=1, gamma=0.5)
    history = fit(model, bars(), epochs=3, batch_size=16, optimizer=opt, schedule=sched, verbose=0)
    assert history.history["lr"] == pytest.approx([0.05, 0.025, 0.0125])
    assert sched.get_last_lr() == pytest.approx([0.05 / 8, 0.01 / 8])
    assert history.history["train_loss"][-1] < history.history["train_loss"][0]


def test_fit_with_rmsprop_resumes(tmp_path):
    kwargs = dict(epochs=2, batch_size=16, schedule="constant", seed=1, verbose=0)
    straight = tiny_cnn()
    fit(straight, bars(), optimizer=optim.RMSprop(straight.parameters(), lr=0.01, momentum=0.5, centered=True),
        out_dir=tmp_path / "a", **kwargs)
    first = tiny_cnn()
    with pytest.raises(KeyboardInterrupt):
        fit(first, bars(), optimizer=optim.RMSprop(first.parameters(), lr=0.01, momentum=0.5, centered=True),
            out_dir=tmp_path / "b", callbacks=[StopAt(2)], **kwargs)
    resumed = tiny_cnn()
    fit(resumed, bars(), optimizer=optim.RMSprop(resumed.parameters(), lr=0.01, momentum=0.5, centered=True),
        out_dir=tmp_path / "b", resume=True, **kwargs)
    assert_same_weights(weights(straight), weights(resumed))
    arrays, _ = load_bundle(tmp_path / "b" / "checkpoint.npz")
    assert {k.split(".", 1)[1] for k in arrays if k.startswith("optim/")} == {"step", "square_avg", "grad_avg",
                                                                             "momentum_buffer"}
    assert np.isfinite(arrays["optim/0.square_avg"]).all()
