"""Layers that own parameters, and the containers that hold them (``cnnlab.nn``)."""
from .module import Module, Parameter, Sequential
from .layers import (Conv2d, Linear, Dense, Flatten, MaxPool2d, MinPool2d, AvgPool2d, AdaptiveAvgPool2d,
                     AdaptiveMaxPool2d, GlobalAvgPool2d, GlobalMaxPool2d, FractionalMaxPool2d, ReLU,
                     LeakyReLU, Sigmoid, Tanh, Softmax, LogSoftmax, GELU, GLU, Identity, Dropout,
                     BatchNorm2d)
from .extra_layers import Pad, Permute, Hardtanh, ReLU6, Hardsigmoid, Hardswish, PReLU, Erf, Elementwise  # noqa: F401

__all__ = ["Module", "Parameter", "Sequential", "Conv2d", "Linear", "Dense", "Flatten", "MaxPool2d",
           "MinPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "GlobalAvgPool2d",
           "GlobalMaxPool2d", "FractionalMaxPool2d", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax",
           "LogSoftmax", "GELU", "GLU", "Identity", "Dropout", "BatchNorm2d"]
