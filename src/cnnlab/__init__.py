"""cnnlab: convolutional neural networks in NumPy, every step visible.

``import cnnlab`` loads NumPy and nothing heavier; data loading, plotting and
the command line import their libraries only when used.
"""
from . import _memory  # noqa: F401  (see _memory.py: reuse freed pages across steps)
from .tensor import Tensor, no_grad, enable_grad, is_grad_enabled
from .random import manual_seed
from . import functional, nn, optim, filters

__version__ = "0.1.0"
__all__ = ["Tensor", "no_grad", "enable_grad", "is_grad_enabled", "functional", "nn", "optim",
           "filters", "__version__", "manual_seed"]
