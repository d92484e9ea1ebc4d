"""Networks, weights, data and FLOP counts shared by the speed benchmark.

Both frameworks build the same ``Sequential`` layer list, so their
``state_dict`` keys are identical ("0.weight", "3.bias", ...) and the
PyTorch weights can be copied into cnnlab unchanged.

Only NumPy and cnnlab are imported at module level; torch and onnxruntime
are imported inside the functions that need them, so the memory child
processes of the benchmark load one framework only.
"""
from __future__ import annotations

import gzip
import io
import os
import struct
from dataclasses import dataclass
from typing import Callable, Dict, List, Tuple

import numpy as np

# --------------------------------------------------------------------------
# architectures, described once for both frameworks
# --------------------------------------------------------------------------
# A layer is a tuple: ("conv", in, out, kernel, padding) | ("relu",) |
# ("maxpool", k) | ("flatten",) | ("linear", in, out).

#: LeNet-5 as in the classic MNIST version: conv1 has padding 2 (28x28 stays 28x28).
LENET5 = [
    ("conv", 1, 6, 5, 2), ("relu",), ("maxpool", 2),
    ("conv", 6, 16, 5, 0), ("relu",), ("maxpool", 2),
    ("flatten",),
    ("linear", 16 * 5 * 5, 120), ("relu",),
    ("linear", 120, 84), ("relu",),
    ("linear", 84, 10),
]

#: The small VGG-style network on 3x32x32 images, padding 1 everywhere.
SMALL_VGG = [
    ("conv", 3, 32, 3, 1), ("relu",), ("conv", 32, 32, 3, 1), ("relu",), ("maxpool", 2),
    ("conv", 32, 64, 3, 1), ("relu",), ("conv", 64, 64, 3, 1), ("relu",), ("maxpool", 2),
    ("flatten",),
    ("linear", 64 * 8 * 8, 256), ("relu",),
    ("linear", 256, 10),
]


@dataclass(frozen=True)
class NetSpec:
    name: str
    layers: list
    input_shape: Tuple[int, int, int]   # (C, H, W) of one image
    optimizer: str                      # "sgd" (momentum 0.9) or "adam"
    lr: float


NETS: Dict[str, NetSpec] = {
    "lenet5": NetSpec("LeNet-5", LENET5, (1, 28, 28), "sgd", 0.01),
    "vgg": NetSpec("small VGG", SMALL_VGG, (3, 32, 32), "adam", 1e-3),
}


def _build(nn, spec: NetSpec):
    """``spec`` as an ``nn.Sequential`` of ``nn`` (cnnlab.nn or torch.nn: same layer names)."""
    make = {"conv": lambda cin, cout, k, pad: nn.Conv2d(cin, cout, k, padding=pad), "relu": nn.ReLU,
            "maxpool": nn.MaxPool2d, "flatten": nn.Flatten, "linear": nn.Linear}
    return nn.Sequential(*(make[kind](*args) for kind, *args in spec.layers))


def build_cnnlab(spec: NetSpec):
    import cnnlab.nn as nn
    return _build(nn, spec)


def build_torch(spec: NetSpec):
    import torch.nn as nn
    return _build(nn, spec)


def twin_models(spec: NetSpec, seed: int = 0):
    """A torch model and a cnnlab model with the same weights (torch's init, copied)."""
    import torch
    torch.manual_seed(seed)
    tmodel = build_torch(spec)
    cmodel = build_cnnlab(spec)
    state = {k: v.detach().cpu().numpy().copy() for k, v in tmodel.state_dict().items()}
    cmodel.load_state_dict(state)
    return cmodel, tmodel


def make_optimizer(framework: str, spec: NetSpec, model):
    if framework == "torch":
        import torch
        if spec.optimizer == "sgd":
            return torch.optim.SGD(model.parameters(), lr=spec.lr, momentum=0.9)
        return torch.optim.Adam(model.parameters(), lr=spec.lr)
    import cnnlab
    if spec.optimizer == "sgd":
        return cnnlab.optim.SGD(model.parameters(), lr=spec.lr, momentum=0.9)
    return cnnlab.optim.Adam(model.parameters(), lr=spec.lr)


# --------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------
def synthetic_batches(spec: NetSpec, batch: int, count: int = 4, seed: int = 0):
    """``count`` (images, labels) pairs: float32 NCHW in [0, 1) and int64 labels."""
    rng = np.random.default_rng(seed)
    return [(rng.random((batch,) + spec.input_shape, dtype=np.float32),
             rng.integers(0, 10, size=batch, dtype=np.int64)) for _ in range(count)]


def read_idx_gz(path: str) -> np.ndarray:
    """An IDX file (gzip-compressed or not) as an ndarray of uint8."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path}: not a uint8 IDX file (magic bytes {raw[:4]!r})")
    ndim = raw[3]
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says {dims} ({int(np.prod(dims))} bytes), "
                         f"file holds {data.size} bytes of data")
    return data.reshape(dims)


def find_mnist(data_dir: str) -> Dict[str, str]:
    """Paths of the four MNIST IDX files under ``data_dir`` or ``data_dir/mnist``."""
    names = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
             "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}
    found = {}
    for key, stem in names.items():
        for folder in (data_dir, os.path.join(data_dir, "mnist")):
            for candidate in (stem + ".gz", stem):
                path = os.path.join(folder, candidate)
                if os.path.isfile(path):
                    found[key] = path
                    break
            if key in found:
                break
        else:
            raise FileNotFoundError(f"MNIST file {stem}[.gz] not found in {data_dir!r} "
                                    f"or {os.path.join(data_dir, 'mnist')!r}")
    return found


def load_mnist_arrays(data_dir: str):
    """((x_train, y_train), (x_test, y_test)): float32 (N, 1, 28, 28), int64 labels.

    Pixels are scaled to [0, 1] and standardised with MNIST's usual mean 0.1307
    and standard deviation 0.3081.
    """
    paths = find_mnist(data_dir)

    def images(p):
        return ((read_idx_gz(p).astype(np.float32) / 255.0 - 0.1307) / 0.3081)[:, None]
    return ((images(paths["train_images"]), read_idx_gz(paths["train_labels"]).astype(np.int64)),
            (images(paths["test_images"]), read_idx_gz(paths["test_labels"]).astype(np.int64)))


# --------------------------------------------------------------------------
# FLOPs
# --------------------------------------------------------------------------
def forward_flops(spec: NetSpec) -> int:
    """FLOPs of one image's forward pass through the conv and linear layers (2 per MAC)."""
    _, h, w = spec.input_shape
    macs = 0
    for layer in spec.layers:
        kind = layer[0]
        if kind == "conv":
            _, cin, cout, k, p = layer
            h, w = h + 2 * p - k + 1, w + 2 * p - k + 1
            macs += cout * h * w * cin * k * k
        elif kind == "maxpool":
            h, w = h // layer[1], w // layer[1]
        elif kind == "linear":
            macs += layer[1] * layer[2]
    return 2 * macs


def training_flops(spec: NetSpec) -> int:
    """Forward + backward (input and weight gradients): 3x the forward FLOPs per image."""
    return 3 * forward_flops(spec)


# --------------------------------------------------------------------------
# one step, in each framework
# --------------------------------------------------------------------------
def cnnlab_train_step(model, opt, batches) -> Callable[[], None]:
    import cnnlab
    import cnnlab.functional as F
    state = {"i": 0}

    def step():
        x, y = batches[state["i"] % len(batches)]
        state["i"] += 1
        opt.zero_grad()
        loss = F.cross_entropy(model(cnnlab.Tensor(x)), y)
        loss.backward()
        opt.step()
    return step


def torch_train_step(model, opt, batches) -> Callable[[], None]:
    import torch
    import torch.nn.functional as F
    tb = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches]
    state = {"i": 0}

    def step():
        x, y = tb[state["i"] % len(tb)]
        state["i"] += 1
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    return step


def cnnlab_infer(model, batches) -> Callable[[], None]:
    import cnnlab
    model.eval()
    state = {"i": 0}

    def run():
        x = batches[state["i"] % len(batches)][0]
        state["i"] += 1
        with cnnlab.no_grad():
            model(cnnlab.Tensor(x))
    return run


def torch_infer(model, batches) -> Callable[[], None]:
    import torch
    model.eval()
    tb = [torch.from_numpy(x) for x, _ in batches]
    state = {"i": 0}

    def run():
        x = tb[state["i"] % len(tb)]
        state["i"] += 1
        with torch.inference_mode():
            model(x)
    return run


def onnx_session(tmodel, spec: NetSpec, batch: int, threads: int):
    """Export ``tmodel`` for a fixed batch size and open it in ONNX Runtime."""
    import warnings

    import onnxruntime as ort
    import torch
    buf = io.BytesIO()
    tmodel.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kwargs = {"dynamo": False} if "dynamo" in torch.onnx.export.__code__.co_varnames else {}
        torch.onnx.export(tmodel, (torch.zeros((batch,) + spec.input_shape),), buf,
                          input_names=["x"], output_names=["logits"], **kwargs)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(buf.getvalue(), options, providers=["CPUExecutionProvider"])


def ort_infer(session, batches) -> Callable[[], None]:
    state = {"i": 0}

    def run():
        x = batches[state["i"] % len(batches)][0]
        state["i"] += 1
        session.run(None, {"x": x})
    return run


def check_same_outputs(cmodel, tmodel, x: np.ndarray) -> float:
    """Max |cnnlab - torch| of the logits on ``x`` (both in eval mode, no gradients)."""
    import torch

    import cnnlab
    with cnnlab.no_grad():
        a = cmodel(cnnlab.Tensor(x)).data
    with torch.inference_mode():
        b = tmodel(torch.from_numpy(x)).numpy()
    return float(np.max(np.abs(a - b)))


# --------------------------------------------------------------------------
# single ops: (cnnlab forward, torch forward) pairs with backward
# --------------------------------------------------------------------------
@dataclass
class OpCase:
    """One op at one shape, ready to time in both frameworks.

    ``cnnlab_fwd``/``torch_fwd`` run the forward with graph recording (the
    inputs that need gradients in training require them); ``cnnlab_bwd``/``torch_bwd``
    run the op's backward rule only, each on a freshly recorded graph (built
    untimed; cnnlab: the op's own backward closure; torch:
    ``torch.autograd.grad``), so neither includes leaf-gradient accumulation.
    """
    name: str
    shape: str
    cnnlab_fwd: Callable[[], object]
    torch_fwd: Callable[[], object]
    cnnlab_bwd: tuple   # (setup, fn) pairs, see ``_timing.measure_interleaved``
    torch_bwd: tuple
    note: str = ""


def chwn_memory(x: np.ndarray) -> np.ndarray:
    """The NCHW view of (C, H, W, N) memory holding ``x``: how cnnlab's inner layers see activations."""
    return np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)


def _case(name: str, shape: str, cfn, tfn, inputs: List[np.ndarray], grad_inputs: List[bool],
          chwn: bool, seed: int = 0, note: str = "") -> OpCase:
    """Build an :class:`OpCase` from ``cfn(*cnnlab_tensors)`` and ``tfn(*torch_tensors)``."""
    import torch

    import cnnlab
    rng = np.random.default_rng(seed)
    c_in = [cnnlab.Tensor(chwn_memory(a) if (chwn and a.ndim == 4 and i == 0) else a,
                          requires_grad=g)
            for i, (a, g) in enumerate(zip(inputs, grad_inputs))]
    t_in = [torch.from_numpy(a.copy()).requires_grad_(g) for a, g in zip(inputs, grad_inputs)]

    def cnnlab_fwd():   # with graph recording, as in training (max pooling then tracks winners)
        return cfn(*c_in)

    def torch_fwd():
        return tfn(*t_in)

    c_out = cfn(*c_in)
    t_out = tfn(*t_in)
    g = rng.standard_normal(t_out.shape).astype(np.float32)
    if c_out.data.ndim == 0:
        g = np.asarray(1.0, dtype=np.float32)
    c_g = np.empty_like(c_out.data)   # same memory layout as the op's output, as upstream grads have
    c_g[...] = g
    t_g = torch.from_numpy(g.copy())
    t_wrt = [t for t in t_in if t.requires_grad]

    # backward: every call gets a freshly recorded graph (untimed), as in training,
    # where an op's saved buffers are used (and may be freed) by one backward pass
    cnnlab_bwd = (lambda: cfn(*c_in)._backward, lambda backward: backward(c_g))
    torch_bwd = (lambda: tfn(*t_in), lambda out: torch.autograd.grad(out, t_wrt, t_g))
    return OpCase(name, shape, cnnlab_fwd, torch_fwd, cnnlab_bwd, torch_bwd, note)


def op_cases(quick: bool = False, scale: float = 1.0) -> List[OpCase]:
    """The op-level rows: conv layers of both networks, every pooling, the activations, loss, linear.

    ``scale`` shrinks the batch sizes (the smoke test uses a tiny one).
    """
    import torch
    import torch.nn.functional as TF

    import cnnlab.functional as F
    rng = np.random.default_rng(0)

    def nb(n):
        return max(1, int(round(n * scale)))

    def rand(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    cases: List[OpCase] = []
    convs = [  # (label, N, C_in, H, C_out, k, pad, input layout is CHWN inside the network)
        ("conv2d LeNet conv1", nb(64), 1, 28, 6, 5, 2, False),
        ("conv2d LeNet conv2", nb(64), 6, 14, 16, 5, 0, True),
        ("conv2d VGG conv1", nb(128), 3, 32, 32, 3, 1, False),
        ("conv2d VGG conv2", nb(128), 32, 32, 32, 3, 1, True),
        ("conv2d VGG conv3", nb(128), 32, 16, 64, 3, 1, True),
        ("conv2d VGG conv4", nb(128), 64, 16, 64, 3, 1, True),
    ]
    if quick:
        convs = [convs[1], convs[3]]
    for label, n, cin, h, cout, k, p, chwn in convs:
        x, w, b = rand(n, cin, h, h), rand(cout, cin, k, k) * 0.1, rand(cout)
        first = not chwn  # the first layer's input is the image: no input gradient in training
        cases.append(_case(label, f"{n}x{cin}x{h}x{h} -> {cout}, k{k} p{p}",
                           lambda x_, w_, b_, p=p: F.conv2d(x_, w_, b_, padding=p),
                           lambda x_, w_, b_, p=p: TF.conv2d(x_, w_, b_, padding=p),
                           [x, w, b], [not first, True, True], chwn,
                           note="backward: weight+bias grads only (network input)" if first else ""))

    n, c, h = nb(128), 32, 32
    pool_in = rand(n, c, h, h)
    shape = f"{n}x{c}x{h}x{h}"
    samples = rng.random((n, c, 2)).astype(np.float32)
    samples_t = torch.from_numpy(samples)
    pools = [
        ("max_pool2d 2x2", lambda x: F.max_pool2d(x, 2), lambda x: TF.max_pool2d(x, 2), ""),
        ("avg_pool2d 2x2", lambda x: F.avg_pool2d(x, 2), lambda x: TF.avg_pool2d(x, 2), ""),
        ("min_pool2d 2x2", lambda x: F.min_pool2d(x, 2), lambda x: -TF.max_pool2d(-x, 2),
         "torch: -max_pool2d(-x)"),
        ("max_pool2d 3x3 s2 p1", lambda x: F.max_pool2d(x, 3, 2, 1), lambda x: TF.max_pool2d(x, 3, 2, 1), ""),
        ("adaptive_avg_pool2d 5x5", lambda x: F.adaptive_avg_pool2d(x, 5),
         lambda x: TF.adaptive_avg_pool2d(x, 5), "uneven windows (32 -> 5)"),
        ("adaptive_avg_pool2d 8x8", lambda x: F.adaptive_avg_pool2d(x, 8),
         lambda x: TF.adaptive_avg_pool2d(x, 8), "even windows (32 -> 8)"),
        ("global_avg_pool2d", lambda x: F.global_avg_pool2d(x),
         lambda x: TF.adaptive_avg_pool2d(x, 1).flatten(1), "torch: adaptive_avg_pool2d(x, 1)"),
        ("adaptive_max_pool2d 5x5", lambda x: F.adaptive_max_pool2d(x, 5),
         lambda x: TF.adaptive_max_pool2d(x, 5), "uneven windows (32 -> 5)"),
        ("global_max_pool2d", lambda x: F.global_max_pool2d(x),
         lambda x: TF.adaptive_max_pool2d(x, 1).flatten(1), "torch: adaptive_max_pool2d(x, 1)"),
        ("fractional_max_pool2d 2x2 -> 16", lambda x: F.fractional_max_pool2d(x, 2, 16, samples=samples),
         lambda x: TF.fractional_max_pool2d(x, 2, output_size=16, _random_samples=samples_t),
         "same random samples for both"),
    ]
    if quick:
        pools = pools[:1] + pools[2:3]
    for label, cfn, tfn, note in pools:
        cases.append(_case(label, shape, cfn, tfn, [pool_in], [True], True, note=note))

    activations = [
        ("relu", F.relu, TF.relu),
        ("leaky_relu", F.leaky_relu, TF.leaky_relu),
        ("sigmoid", F.sigmoid, torch.sigmoid),
        ("tanh", F.tanh, torch.tanh),
        ("gelu", F.gelu, TF.gelu),
        ("softmax over channels", lambda x: F.softmax(x, dim=1), lambda x: TF.softmax(x, dim=1)),
        ("glu over channels", lambda x: F.glu(x, dim=1), lambda x: TF.glu(x, dim=1)),
    ]
    if quick:
        activations = activations[:1]
    for label, cfn, tfn in activations:
        cases.append(_case(label, shape, cfn, tfn, [pool_in], [True], True))
    n_ce = nb(256)
    y_ce = rng.integers(0, 10, n_ce)
    y_ce_t = torch.from_numpy(y_ce)
    cases.append(_case("softmax-cross-entropy", f"{n_ce}x10", lambda z: F.cross_entropy(z, y_ce),
                       lambda z: TF.cross_entropy(z, y_ce_t), [rand(n_ce, 10)], [True], False))
    n_lin = nb(128)
    cases.append(_case("linear", f"{n_lin}x4096 -> 256", F.linear, TF.linear,
                       [rand(n_lin, 4096), rand(256, 4096) * 0.02, rand(256)], [True, True, True],
                       False))
    return cases
