"""Capturing a user's own Module as a graph model: what is captured, what is refused, and the
whole path a PyTorch user takes (fit, save, load in a new process, every CLI command)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import cnnlab
import cnnlab.functional as F
import cnnlab.nn as nn
from cnnlab import Tensor, no_grad


class Residual(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.conv2(y) + x)


class MyNet(nn.Module):
    """Written the way a PyTorch user writes a model."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.block = Residual(8)
        self.left = nn.Conv2d(8, 4, 1)
        self.right = nn.Sequential(nn.Conv2d(8, 4, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(8 * 4 * 4, num_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.stem(x)), 2)
        x = self.block(x)
        x = cnnlab.cat([self.left(x), self.right(x)], dim=1)
        x = F.max_pool2d(x, 2)
        x = x.reshape(x.shape[0], -1)
        return self.fc(F.dropout(x, 0.1, self.training))


def test_trace_captures_layers_functional_ops_and_arithmetic():
    cnnlab.manual_seed(0)
    m = MyNet()
    g = nn.as_graph(m, (1, 16, 16))
    kinds = {n.name: n.type for n in g.nodes}
    assert kinds["stem"] == "Conv2d" and kinds["block.conv1"] == "Conv2d" and kinds["right.0"] == "Conv2d"
    assert kinds["block.add"] == "Add" and g.node("block.add").inputs == ("block.conv2", "maxpool2d")
    assert kinds["cat"] == "Concat" and g.node("cat").inputs == ("left", "right.1")
    assert kinds["flatten"] == "Flatten" and kinds["dropout"] == "Dropout"
    assert list(g.state_dict()) == list(m.state_dict())          # the user's own keys
    assert g.node("stem").module is m.stem                        # the same layers, the same weights
    m.eval(), g.eval()   # the graph's own layers (the Dropout made from F.dropout) follow its mode
    x = np.random.default_rng(0).standard_normal((5, 1, 16, 16)).astype(np.float32)
    with no_grad():
        np.testing.assert_array_equal(g(Tensor(x)).numpy(), m(Tensor(x)).numpy())


def test_output_shape_of_a_custom_module_is_its_real_output_shape():
    m = MyNet(num_classes=7)
    assert m.output_shape((3, 1, 16, 16)) == (3, 7)
    assert m.training  # the dry run put the mode back


def test_fit_trains_a_custom_module_and_grad_cam_finds_its_convolutions(tmp_path):
    from cnnlab.data import load_digits_split
    from cnnlab.explain.saliency import grad_cam
    from cnnlab.train import fit

    class Small(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
            self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
            self.fc = nn.Linear(8 * 4 * 4, 10)

        def forward(self, x):
            x = F.relu(self.conv1(x))
            x = F.max_pool2d(F.relu(self.conv2(x) + x), 2)
            return self.fc(x.reshape(x.shape[0], -1))

    train, test = load_digits_split()
    cnnlab.manual_seed(0)
    model = Small()
    history = fit(model, train, test, epochs=2, batch_size=64, lr=3e-3, verbose=0, out_dir=tmp_path / "run")
    assert history.history["val_accuracy"][-1] > 0.7
    result = grad_cam(model.eval(), train.images[:2].astype(np.float32))
    assert result.layer == "add_1" or result.layer.startswith("relu")


@pytest.mark.parametrize("body, message", [
    ("return self.fc(x.reshape(x.shape[0], -1)) if x.mean(axis=(1, 2, 3)).item() > 0 else x",
     r"reads a tensor's values \(Tensor.item\) at user_model.py:6 \(return self.fc"),
    ("return self.fc((x.reshape(x.shape[0], -1) @ self.fc.weight.T))",
     "cannot capture the op 'matmul' at user_model.py:6"),
    ("return self.fc(F.conv2d(x, self.fc.weight).reshape(x.shape[0], -1))",
     "F.conv2d with weight tensors .* use a nn.Conv2d layer instead"),
    ("return self.fc(x.reshape(2, 64))", "does not reproduce it on a batch of 3"),
    ("return (self.fc(x.reshape(x.shape[0], -1)), x)", "returned tuple; a graph model returns one tensor"),
])
def test_what_cannot_be_captured_is_refused_naming_the_op_and_line(body, message):
    namespace = {"nn": nn, "F": F}
    source = ("class Bad(nn.Module):\n"
              "    def __init__(self):\n"
              "        super().__init__()\n"
              "        self.fc = nn.Linear(64, 3)\n"
              "    def forward(self, x):\n"
              f"        {body}\n")
    import linecache
    linecache.cache["user_model.py"] = (len(source), None, source.splitlines(True), "user_model.py")
    exec(compile(source, "user_model.py", "exec"), namespace)
    with pytest.raises(ValueError, match=message):
        nn.trace(namespace["Bad"](), (1, 8, 8))


def test_save_model_refuses_an_untraceable_module_at_save_time(tmp_path):
    from cnnlab.io import save_model

    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            if float(x.mean(axis=(1, 2, 3)).data[0]) > 0:   # Python control flow on the data
                return self.fc(x.reshape(x.shape[0], -1))
            return -self.fc(x.reshape(x.shape[0], -1))

    with pytest.raises(ValueError, match="does not reproduce it"):
        save_model(Branchy(), tmp_path / "m", (1, 2, 2))
    assert not (tmp_path / "m" / "model.json").exists()


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "cnnlab", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def test_custom_module_run_works_in_a_new_process_and_every_cli_command(tmp_path):
    from cnnlab.data import load_digits_split
    from cnnlab.io import save_model
    from cnnlab.train import fit

    class DigitsNet(nn.Module):
        """A residual block in a ModuleList, two concatenated branches, x.view(x.size(0), -1)."""

        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(1, 8, 3, padding=1)
            self.blocks = nn.ModuleList([Residual(8)])
            self.a = nn.Conv2d(8, 4, 1)
            self.b = nn.Conv2d(8, 4, 3, padding=1)
            self.fc = nn.Linear(8 * 4 * 4, 10)

        def forward(self, x):
            x = F.relu(self.stem(x))
            for block in self.blocks:
                x = block(x)
            x = F.max_pool2d(cnnlab.cat([self.a(x), self.b(x)], dim=1), 2)
            return self.fc(x.view(x.size(0), -1))

    train, test = load_digits_split()
    cnnlab.manual_seed(0)
    model = DigitsNet()
    run = tmp_path / "run"
    fit(model, train, test, epochs=2, batch_size=64, lr=3e-3, verbose=0, out_dir=run)
    assert json.loads((run / "model.json").read_text())["format_version"] == 2
    x = test.images[:6].astype(np.float32)
    model.eval()
    with no_grad():
        from cnnlab.io import load_model
        want = model(Tensor(load_model(run).preprocess(x))).numpy()
    np.save(tmp_path / "x.npy", x)
    code = ("import numpy as np, sys; from cnnlab.io import load_model; from cnnlab import Tensor, no_grad\n"
            f"s = load_model({str(run)!r}); x = np.load({str(tmp_path / 'x.npy')!r})\n"
            "with no_grad(): out = s.model(Tensor(s.preprocess(x))).numpy()\n"
            f"np.save({str(tmp_path / 'out.npy')!r}, out); print(type(s.model).__name__)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Graph"
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), want, rtol=1e-5, atol=1e-5)

    from PIL import Image
    digit = (test.images[0, 0] * 255).astype(np.uint8)
    Image.fromarray(digit).save(tmp_path / "digit.png")
    for args in (["evaluate", run, "--dataset", "digits"], ["predict", run, tmp_path / "digit.png", "--json"], ["summary", run],
                 ["explain", "features", run, tmp_path / "digit.png", "--output-dir", tmp_path / "features"],
                 ["explain", "saliency", run, tmp_path / "digit.png", "--output", tmp_path / "sal.png"],
                 ["explain", "conv", "--input", tmp_path / "digit.png", "--run", run, "--layer", "blocks.0.conv2",
                  "--channel", "1", "--positions", "2,2"],
                 ["report", run]):
        result = _cli(*args)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
    summary = _cli("summary", run).stdout
    assert "Add <- blocks.0.conv2, relu" in summary and "Concat(dim=1) <- a, b" in summary
    trace = _cli("explain", "conv", "--input", tmp_path / "digit.png", "--run", run, "--layer", "blocks.0.conv2",
                 "--channel", "1", "--positions", "2,2").stdout
    assert "feature maps entering layer blocks.0.conv2" in trace
    assert (run / "report.html").is_file()
    save_model(model, tmp_path / "again", (1, 8, 8))   # saving twice captures the same graph
    assert json.loads((tmp_path / "again" / "model.json").read_text())["architecture"] == \
        json.loads((run / "model.json").read_text())["architecture"]
