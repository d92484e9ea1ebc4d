"""Layers that own parameters, and the containers that hold them (``cnnlab.nn``)."""
from .module import Module, Parameter, Sequential, RemovableHandle
from .containers import ModuleList, ModuleDict
from .layers import (Conv2d, Linear, Dense, Flatten, MaxPool2d, MinPool2d, AvgPool2d, AdaptiveAvgPool2d,
                     AdaptiveMaxPool2d, GlobalAvgPool2d, GlobalMaxPool2d, FractionalMaxPool2d, ReLU,
                     LeakyReLU, Sigmoid, Tanh, Softmax, LogSoftmax, GELU, GLU, Identity, Dropout,
                     BatchNorm2d)
from .layers import (BatchNorm1d, Dropout2d, ConvTranspose2d, Upsample, UpsamplingNearest2d,
                     UpsamplingBilinear2d, Unflatten, Hardtanh, ReLU6, ConstantPad2d, ZeroPad2d, ReflectionPad2d,
                     ReplicationPad2d)
from . import init
from .. import functional  # ``cnnlab.nn.functional`` is ``cnnlab.functional`` (PyTorch's torch.nn.functional)
import sys as _sys
_sys.modules[__name__ + ".functional"] = functional
from .merge import Add, Sub, Mul, Div, Concat, Reshape, Mean
from .graph import Node, Graph
from .trace import as_graph, trace, TraceError
from .extra_layers import Pad, Permute, Hardsigmoid, Hardswish, PReLU, Erf, Elementwise  # noqa: F401
from .norm_layers import LayerNorm, GroupNorm, InstanceNorm1d, InstanceNorm2d, Slice  # noqa: F401
from .loss import (CrossEntropyLoss, NLLLoss, MSELoss, L1Loss, SmoothL1Loss, HuberLoss, BCELoss,
                   BCEWithLogitsLoss)

__all__ = ["Module", "Parameter", "Sequential", "Conv2d", "Linear", "Dense", "Flatten", "MaxPool2d",
           "MinPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "GlobalAvgPool2d",
           "GlobalMaxPool2d", "FractionalMaxPool2d", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax",
           "LogSoftmax", "GELU", "GLU", "Identity", "Dropout", "BatchNorm2d",
           "Add", "Sub", "Mul", "Div", "Concat", "Reshape", "Mean",
           "Node", "Graph", "as_graph", "trace", "TraceError"]
__all__ += ["RemovableHandle", "ModuleList", "ModuleDict", "init", "BatchNorm1d", "Dropout2d", "ConvTranspose2d",
            "Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d", "Unflatten", "Hardtanh", "ReLU6",
            "ConstantPad2d", "ZeroPad2d", "ReflectionPad2d", "ReplicationPad2d"]
__all__ += ["functional"]
__all__ += ["Pad", "Permute", "Hardsigmoid", "Hardswish", "PReLU", "Erf", "Elementwise"]  # extra_layers
__all__ += ["LayerNorm", "GroupNorm", "InstanceNorm1d", "InstanceNorm2d", "Slice"]  # norm_layers
__all__ += ["CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss", "BCELoss",
            "BCEWithLogitsLoss"]
