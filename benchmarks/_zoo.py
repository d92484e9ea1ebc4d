"""Torchvision-like classification networks, built in PyTorch with random weights.

The ``zoo`` row of ``speed.py`` exports each to ONNX in memory, imports it with
``cnnlab.onnx`` and times cnnlab's NumPy engine, ONNX Runtime and PyTorch
eager on the same weights.  The layer structure follows torchvision's models
(torchvision itself is not needed): ResNet-18, MobileNetV3-Small, MNASNet 0.5,
EfficientNet-B0 (MBConv blocks with squeeze-and-excitation) and a DenseNet
with DenseNet-121's first two dense blocks.  ``scale`` shrinks every network
(channel widths and repeats) for the smoke tests; 1.0 is the real size.

torch is imported inside the functions only.
"""
from __future__ import annotations

import io
import math
from typing import Callable, Dict, Tuple


def _ch(c: float, scale: float = 1.0, divisor: int = 8) -> int:
    """Channels ``c * scale`` rounded to a multiple of ``divisor`` (torchvision's rule)."""
    v = c * scale
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new < 0.9 * v:
        new += divisor
    return new


def _reps(n: int, scale: float) -> int:
    return max(1, int(math.ceil(n * min(scale, 1.0))))


def _modules():
    import torch
    import torch.nn as tnn

    def conv_bn_act(cin, cout, k, stride=1, groups=1, act=tnn.ReLU):
        layers = [tnn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
                  tnn.BatchNorm2d(cout)]
        if act is not None:
            layers.append(act(inplace=True) if act in (tnn.ReLU, tnn.ReLU6, tnn.Hardswish, tnn.SiLU) else act())
        return tnn.Sequential(*layers)

    class SqueezeExcite(tnn.Module):
        def __init__(self, channels, squeeze, act=tnn.ReLU, gate=tnn.Sigmoid):
            super().__init__()
            self.fc1 = tnn.Conv2d(channels, squeeze, 1)
            self.fc2 = tnn.Conv2d(squeeze, channels, 1)
            self.act, self.gate = act(), gate()

        def forward(self, x):
            s = torch.nn.functional.adaptive_avg_pool2d(x, 1)
            return x * self.gate(self.fc2(self.act(self.fc1(s))))

    class InvertedResidual(tnn.Module):
        """expand 1x1 -> depthwise kxk -> (SE) -> project 1x1, with a skip when shapes allow."""

        def __init__(self, cin, cexp, cout, k, stride, act, se_channels=0, se_gate=tnn.Sigmoid):
            super().__init__()
            layers = []
            if cexp != cin:
                layers.append(conv_bn_act(cin, cexp, 1, act=act))
            layers.append(conv_bn_act(cexp, cexp, k, stride, groups=cexp, act=act))
            if se_channels:
                layers.append(SqueezeExcite(cexp, se_channels, act=tnn.ReLU if act is not tnn.SiLU else tnn.SiLU,
                                            gate=se_gate))
            layers.append(conv_bn_act(cexp, cout, 1, act=None))
            self.block = tnn.Sequential(*layers)
            self.skip = stride == 1 and cin == cout

        def forward(self, x):
            y = self.block(x)
            return x + y if self.skip else y

    class DenseLayer(tnn.Module):
        def __init__(self, cin, growth, bn_size=4):
            super().__init__()
            self.norm1, self.relu1 = tnn.BatchNorm2d(cin), tnn.ReLU(inplace=True)
            self.conv1 = tnn.Conv2d(cin, bn_size * growth, 1, bias=False)
            self.norm2, self.relu2 = tnn.BatchNorm2d(bn_size * growth), tnn.ReLU(inplace=True)
            self.conv2 = tnn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False)

        def forward(self, x):
            y = self.conv1(self.relu1(self.norm1(x)))
            return torch.cat([x, self.conv2(self.relu2(self.norm2(y)))], 1)

    class BasicBlock(tnn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1, self.relu = tnn.BatchNorm2d(cout), tnn.ReLU(inplace=True)
            self.conv2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(cout)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = tnn.Sequential(tnn.Conv2d(cin, cout, 1, stride, bias=False),
                                                 tnn.BatchNorm2d(cout))

        def forward(self, x):
            y = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
            return self.relu(y + (x if self.downsample is None else self.downsample(x)))

    return tnn, conv_bn_act, InvertedResidual, DenseLayer, BasicBlock


def _head(tnn, cin, hidden, classes, act):
    layers = [tnn.AdaptiveAvgPool2d(1), tnn.Flatten()]
    if hidden:
        layers += [tnn.Linear(cin, hidden), act(inplace=True), tnn.Dropout(0.2)]
        cin = hidden
    return layers + [tnn.Linear(cin, classes)]


def resnet18(scale: float = 1.0, classes: int = 1000):
    tnn, _, _, _, BasicBlock = _modules()
    w = [_ch(c, scale) for c in (64, 128, 256, 512)]
    layers = [tnn.Conv2d(3, w[0], 7, 2, 3, bias=False), tnn.BatchNorm2d(w[0]), tnn.ReLU(inplace=True),
              tnn.MaxPool2d(3, 2, 1)]
    cin = w[0]
    for i, c in enumerate(w):
        for b in range(_reps(2, scale)):
            layers.append(BasicBlock(cin, c, 2 if (b == 0 and i > 0) else 1))
            cin = c
    return tnn.Sequential(*layers, *_head(tnn, cin, 0, classes, tnn.ReLU))


def mobilenet_v3_small(scale: float = 1.0, classes: int = 1000):
    tnn, conv_bn_act, InvertedResidual, _, _ = _modules()
    hs, re = tnn.Hardswish, tnn.ReLU
    # kernel, expanded, out, SE, activation, stride (torchvision's MobileNetV3-Small table)
    table = [(3, 16, 16, True, re, 2), (3, 72, 24, False, re, 2), (3, 88, 24, False, re, 1),
             (5, 96, 40, True, hs, 2), (5, 240, 40, True, hs, 1), (5, 240, 40, True, hs, 1),
             (5, 120, 48, True, hs, 1), (5, 144, 48, True, hs, 1), (5, 288, 96, True, hs, 2),
             (5, 576, 96, True, hs, 1), (5, 576, 96, True, hs, 1)]
    cin = _ch(16, scale)
    layers = [conv_bn_act(3, cin, 3, 2, act=hs)]
    for k, exp, out, se, act, stride in table:
        exp, out = _ch(exp, scale), _ch(out, scale)
        layers.append(InvertedResidual(cin, exp, out, k, stride, act, _ch(exp // 4, 1.0) if se else 0,
                                       se_gate=tnn.Hardsigmoid))
        cin = out
    last = _ch(576, scale)
    layers.append(conv_bn_act(cin, last, 1, act=hs))
    return tnn.Sequential(*layers, *_head(tnn, last, _ch(1024, scale), classes, hs))


def mnasnet0_5(scale: float = 1.0, classes: int = 1000):
    tnn, conv_bn_act, InvertedResidual, _, _ = _modules()
    alpha = 0.5 * scale
    depths = [_ch(c, alpha) for c in (32, 16, 24, 40, 80, 96, 192, 320)]
    layers = [conv_bn_act(3, depths[0], 3, 2),
              conv_bn_act(depths[0], depths[0], 3, 1, groups=depths[0]),
              conv_bn_act(depths[0], depths[1], 1, act=None)]
    # kernel, stride, expansion, repeats (torchvision's MNASNet stacks)
    stacks = [(3, 2, 3, 3), (5, 2, 3, 3), (5, 2, 6, 3), (3, 1, 6, 2), (5, 2, 6, 4), (3, 1, 6, 1)]
    cin = depths[1]
    for (k, stride, exp, reps), out in zip(stacks, depths[2:]):
        for r in range(_reps(reps, scale)):
            layers.append(InvertedResidual(cin, cin * exp, out, k, stride if r == 0 else 1, tnn.ReLU))
            cin = out
    last = _ch(1280, scale)
    layers.append(conv_bn_act(cin, last, 1))
    return tnn.Sequential(*layers, *_head(tnn, last, 0, classes, tnn.ReLU))


def efficientnet_b0(scale: float = 1.0, classes: int = 1000):
    tnn, conv_bn_act, InvertedResidual, _, _ = _modules()
    # expansion, kernel, stride, in, out, repeats (torchvision's EfficientNet-B0 stages)
    stages = [(1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
              (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1)]
    cin = _ch(32, scale)
    layers = [conv_bn_act(3, cin, 3, 2, act=tnn.SiLU)]
    for exp, k, stride, c_in, c_out, reps in stages:
        out = _ch(c_out, scale)
        for r in range(_reps(reps, scale)):
            se = max(1, _ch(c_in, scale) // 4) if r == 0 else max(1, out // 4)
            layers.append(InvertedResidual(cin, cin * exp, out, k, stride if r == 0 else 1, tnn.SiLU, se))
            cin = out
    last = _ch(1280, scale)
    layers.append(conv_bn_act(cin, last, 1, act=tnn.SiLU))
    return tnn.Sequential(*layers, *_head(tnn, last, 0, classes, tnn.ReLU))


def densenet(scale: float = 1.0, classes: int = 1000):
    """DenseNet-121's stem and first two dense blocks (6 and 12 layers, growth 32) with a transition."""
    tnn, _, _, DenseLayer, _ = _modules()
    growth, c = _ch(32, scale), _ch(64, scale)
    layers = [tnn.Conv2d(3, c, 7, 2, 3, bias=False), tnn.BatchNorm2d(c), tnn.ReLU(inplace=True),
              tnn.MaxPool2d(3, 2, 1)]
    for i, reps in enumerate((6, 12)):
        for _ in range(_reps(reps, scale)):
            layers.append(DenseLayer(c, growth))
            c += growth
        if i == 0:
            layers += [tnn.BatchNorm2d(c), tnn.ReLU(inplace=True), tnn.Conv2d(c, c // 2, 1, bias=False),
                       tnn.AvgPool2d(2, 2)]
            c //= 2
    layers += [tnn.BatchNorm2d(c), tnn.ReLU(inplace=True)]
    return tnn.Sequential(*layers, *_head(tnn, c, 0, classes, tnn.ReLU))


ZOO: Dict[str, Callable] = {"resnet18": resnet18, "mobilenet_v3_small": mobilenet_v3_small,
                            "mnasnet0_5": mnasnet0_5, "efficientnet_b0": efficientnet_b0,
                            "densenet": densenet}
DEPTHWISE = ("mobilenet_v3_small", "mnasnet0_5", "efficientnet_b0")


def randomise_batchnorm(model, seed: int = 0) -> None:
    """Give every BatchNorm non-trivial statistics and affine weights (fresh ones are the identity)."""
    import torch
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
                m.weight.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)


def build(name: str, scale: float = 1.0, seed: int = 0, classes: int = 1000):
    """The PyTorch model ``name`` with random weights, in eval mode."""
    import torch
    if name not in ZOO:
        raise ValueError(f"unknown zoo model {name!r}; expected one of {', '.join(ZOO)}")
    torch.manual_seed(seed)
    model = ZOO[name](scale, classes)
    randomise_batchnorm(model, seed)
    return model.eval()


def to_onnx(model, input_shape: Tuple[int, int, int], batch: int = 1, opset: int = 17):
    """``model`` exported to an ``onnx.ModelProto`` in memory (PyTorch's TorchScript exporter)."""
    import warnings

    import onnx
    import torch
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kwargs = {"dynamo": False} if "dynamo" in torch.onnx.export.__code__.co_varnames else {}
        torch.onnx.export(model, (torch.zeros((batch,) + tuple(input_shape)),), buf, input_names=["x"],
                          output_names=["logits"], opset_version=opset, **kwargs)
    return onnx.load_from_string(buf.getvalue())
