"""cnnlab: convolutional neural networks in NumPy, every step visible.

``import cnnlab`` loads NumPy and nothing heavier; data loading, plotting and
the command line import their libraries only when used.
"""
import numpy as _np

from . import _memory  # noqa: F401  (see _memory.py: reuse freed pages across steps)
from .tensor import (Tensor, Size, no_grad, enable_grad, inference_mode, set_grad_enabled,
                     is_grad_enabled)
from .random import manual_seed, Generator
from .threads import set_num_threads, get_num_threads
from ._device import device, cuda, accelerator, backends
from .serialization import save, load
from .creation import *  # noqa: F401,F403  (tensor, zeros, randn, cat, stack, ...: PyTorch's top level)
from .creation import __all__ as _creation_names
from . import functional, nn, optim, filters, autograd

__version__ = "0.1.0"
# ``cnnlab.sum``, ``cnnlab.max``, ... exist as ``torch.sum`` does, but ``from cnnlab import *`` leaves the
# builtins of those names alone
_BUILTIN_NAMES = {"sum", "max", "min", "abs", "pow", "float", "int", "bool"}
__all__ = ["Tensor", "Size", "no_grad", "enable_grad", "inference_mode", "set_grad_enabled",
           "is_grad_enabled", "autograd", "functional", "nn", "optim", "filters", "__version__", "manual_seed", "Generator",
           "set_num_threads", "get_num_threads", "device", "cuda", "accelerator", "backends", "save", "load", *(n for n in _creation_names if n not in _BUILTIN_NAMES)]

# PyTorch's dtype names, as NumPy dtypes (``cnnlab.float32``, ``cnnlab.long``, ...).  Last, because
# ``float``, ``int`` and ``bool`` shadow the builtins in this module, as in ``torch``.
float32, float64, int64, int32, int16, int8, uint8 = (_np.float32, _np.float64, _np.int64, _np.int32,
                                                      _np.int16, _np.int8, _np.uint8)
float, double, long, int, bool = _np.float32, _np.float64, _np.int64, _np.int32, _np.bool_  # noqa: A001
__all__ += ["float32", "float64", "int64", "int32", "int16", "int8", "uint8", "double", "long"]

_LAZY_SUBMODULES = ("io", "models", "train", "data", "explain", "utils", "vision")


def __getattr__(name):
    """``cnnlab.io``, ``cnnlab.models``, ... load on first use (``import cnnlab`` stays light)."""
    if name in _LAZY_SUBMODULES:
        import importlib
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'cnnlab' has no attribute {name!r}")
