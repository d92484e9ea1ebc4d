"""Smoke test of the speed benchmark's building blocks, at tiny sizes (no timing is asserted)."""
import json
import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
if BENCH not in sys.path:
    sys.path.insert(0, BENCH)

import _nets as nets  # noqa: E402
import speed  # noqa: E402
from _timing import TimingConfig, measure_interleaved  # noqa: E402

TINY = TimingConfig(warmup=1, repeats=2, min_run_time=0.0, max_calls=1)


def tiny_settings():
    s = speed.Settings(quick=True, threads=1)
    s.train_timing = s.big_timing = s.infer_timing = s.op_timing = TINY
    s.lenet_batches, s.vgg_batch, s.infer_batches = (1, 2), 2, (1, 2)
    s.op_scale = 1 / 64
    s.gemm_size, s.gemm_repeats = 64, 1
    return s


def test_interleaved_timer_records_every_run_and_rotates():
    calls = []
    stats = measure_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                                TimingConfig(warmup=1, repeats=3, min_run_time=0.0, max_calls=2, min_calls=2))
    assert set(stats) == {"a", "b"}
    assert all(len(s.per_call) == 3 and s.calls_per_run == 2 for s in stats.values())
    assert calls[-4:] in (["a", "b", "b", "a"], ["b", "a", "a", "b"])   # order alternates call by call
    seen = []
    stats = measure_interleaved({"pair": (lambda: len(seen), seen.append)}, TINY, mode="run")
    assert seen == list(range(len(seen))) and len(stats["pair"].per_call) == 2   # setup result reaches fn
    with pytest.raises(ValueError, match="mode must be 'step' or 'run', got 'blocks'"):
        measure_interleaved({"a": lambda: None}, TINY, mode="blocks")


def test_cpu_clock_needs_one_thread():
    with pytest.raises(ValueError, match="needs threads=1, got threads=2"):
        speed.Settings(threads=2, clock="cpu")
    with pytest.raises(ValueError, match="clock must be 'wall' or 'cpu', got 'gpu'"):
        speed.Settings(threads=1, clock="gpu")


def test_twin_models_share_weights_and_flops_are_counted():
    cmodel, tmodel = nets.twin_models(nets.NETS["lenet5"])
    assert list(cmodel.state_dict()) == list(tmodel.state_dict())
    x = nets.synthetic_batches(nets.NETS["lenet5"], 3, count=1)[0][0]
    assert nets.check_same_outputs(cmodel, tmodel, x) < 1e-5
    # LeNet-5 with padded conv1: 117,600 + 240,000 + 48,000 + 10,080 + 840 MACs per image
    assert nets.forward_flops(nets.NETS["lenet5"]) == 2 * 416_520
    assert nets.training_flops(nets.NETS["vgg"]) == 3 * nets.forward_flops(nets.NETS["vgg"])


def test_suite_runs_end_to_end_at_tiny_size(tmp_path):
    settings = tiny_settings()
    result = speed.run_suite(settings, ["train", "infer", "ops", "flops"], log=lambda *a, **k: None)
    rows = result["rows"]
    sections = {r["section"] for r in rows}
    assert {"train", "infer", "ops", "flops"} <= sections
    for r in rows:
        if r["section"] in ("train", "infer"):
            assert r["ratio_torch"]["median"] > 0 and r["met"] in (True, False)
            assert r["values"]["cnnlab"]["min"] <= r["values"]["cnnlab"]["median"] <= r["values"]["cnnlab"]["max"]
        if r["section"] == "train":
            assert r["initial_logits_max_abs_diff"] < 1e-4
    ops = [r for r in rows if r["section"] == "ops"]
    assert {"max_pool2d 2x2", "min_pool2d 2x2", "relu", "softmax-cross-entropy", "linear"} <= {r["name"] for r in ops}
    assert all(r["bwd_over_fwd"]["cnnlab"] > 0 for r in ops)

    text = speed.render(result)
    assert "Training throughput" in text and "LeNet-5 train b2" in text and "GFLOP/s" in text
    md = speed.render(result, markdown=True)
    assert "| Row | Unit | cnnlab | PyTorch |" in md
    path = tmp_path / "out" / "speed.json"
    speed.write_json(result, str(path))
    assert json.loads(path.read_text())["rows"][0]["name"] == rows[0]["name"]
    assert [p.name for p in path.parent.iterdir()] == ["speed.json"]   # no temp file left behind


def test_memory_child_measures_cnnlab_without_torch_models():
    res = speed.memory_child("cnnlab", "lenet5", 2, 1, threads=1)
    assert res["peak_mb"] >= res["baseline_mb"] > 0 and res["steps"] == 1


def test_mnist_reader_parses_idx(tmp_path):
    import gzip
    import struct
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    with gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">BBBBIII", 0, 0, 8, 3, 2, 28, 28) + images.tobytes())
    np.testing.assert_array_equal(nets.read_idx_gz(str(tmp_path / "t10k-images-idx3-ubyte.gz")), images)
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        nets.find_mnist(str(tmp_path))


def test_breakdown_restores_the_engine():
    from _breakdown import breakdown
    from cnnlab.tensor import Tensor
    spec = nets.NETS["lenet5"]
    model = nets.build_cnnlab(spec)
    before = Tensor.__dict__["from_op"]
    text = breakdown(model, nets.make_optimizer("cnnlab", spec, model), nets.synthetic_batches(spec, 2), 2)
    assert "0 Conv2d" in text and "optimizer step" in text
    assert Tensor.__dict__["from_op"] is before and "forward" not in vars(model[0])


def test_zoo_and_resnet8_rows_at_tiny_size():
    """The zoo row (torchvision-like models exported to ONNX in memory, imported into cnnlab, timed
    against ONNX Runtime and PyTorch, then each alone in a child process) and the resnet8 training row."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    import _zoo
    settings = tiny_settings()
    settings.clock, settings.clock_fn = "cpu", speed.time.thread_time
    settings.zoo_timing = TINY
    settings.zoo_size, settings.zoo_scale = 32, 0.25
    settings.zoo_models = ("mobilenet_v3_small",)   # each framework alone: 3 child processes
    settings.resnet8_batch, settings.resnet8_width = 2, 4
    result = speed.run_suite(settings, ["zoo", "resnet8"], log=lambda *a, **k: None)
    zoo = [r for r in result["rows"] if r["section"] == "zoo"]
    assert [r["net"] for r in zoo] == list(settings.zoo_models)
    for r in zoo:
        assert set(r["values"]) == {"cnnlab", "ort", "torch"} and r["ratio_ort"]["median"] > 0
        assert max(r["max_rel_diff_from_ort"].values()) < 1e-4      # the same model in all three
        assert set(r["alone"]) == {"cnnlab", "ort", "torch"} and r["alone"]["cnnlab"]["median"] > 0
        assert r["depthwise"] and r["met"] in (True, False)
    train = [r for r in result["rows"] if r["section"] == "train"]
    assert len(train) == 1 and train[0]["net"] == "resnet8" and train[0]["initial_logits_max_abs_diff"] < 1e-4
    assert train[0]["ratio_torch"]["median"] > 0 and train[0]["target"] == ">= 0.8x"
    text = speed.render(result)
    assert "Torchvision-like models" in text and "mobilenet_v3_small (scale 0.25) b1 32x32" in text
    assert "resnet8 (width 4) train b2" in text and "LeNet-5: conv1" not in text


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small", "mnasnet0_5", "efficientnet_b0", "densenet"])
def test_zoo_models_import_and_agree_at_tiny_size(name):
    """Every zoo model exports, imports into cnnlab and gives ONNX Runtime's and PyTorch's logits."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    settings = tiny_settings()
    settings.zoo_size, settings.zoo_scale = 32, 0.25
    fns, diff = speed._zoo_callables(name, settings)
    assert set(fns) == {"cnnlab", "ort", "torch"}
    assert diff["cnnlab"] < 1e-4 and diff["torch"] < 1e-4
