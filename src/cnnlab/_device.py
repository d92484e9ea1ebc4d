"""``cnnlab.device``, ``cnnlab.cuda``, ``cnnlab.backends`` and ``cnnlab.accelerator``: PyTorch's device names.

cnnlab computes on the CPU with NumPy.  These exist so that PyTorch code that picks a device runs
unchanged: ``cuda.is_available()`` is False, so ``device("cuda" if cuda.is_available() else "cpu")``
is the CPU.  A device object may name any device; moving a tensor or model to one that is not the
CPU raises.  (Imports nothing from cnnlab.)
"""
from __future__ import annotations

import types

_KNOWN_TYPES = ("cpu", "cuda", "mps", "xpu", "meta", "hip", "xla", "privateuseone")


class device:
    """``cnnlab.device("cpu")``, ``device("cuda:0")``, ``device("cuda", 0)``: a device name with ``type`` and ``index``.

    Compares equal to its string (``device("cpu") == "cpu"``).
    """

    __slots__ = ("type", "index")

    def __init__(self, type="cpu", index=None):  # noqa: A002  (PyTorch's argument name)
        if isinstance(type, device):
            type, index = type.type, type.index if index is None else index
        if isinstance(type, int) and not isinstance(type, bool):  # device(0) is "cuda:0" in PyTorch
            type, index = "cuda", type
        if not isinstance(type, str):
            raise TypeError(f"device() expected a string such as 'cpu' or 'cuda:0', got {type!r}")
        name = type.strip()
        if ":" in name:
            name, _, number = name.partition(":")
            if index is not None or not number.isdigit():
                raise RuntimeError(f"Invalid device string: {type!r} (expected 'cpu', 'cuda' or 'cuda:<index>')")
            index = int(number)
        if name not in _KNOWN_TYPES:
            raise RuntimeError(f"Expected one of {', '.join(_KNOWN_TYPES)} device type at start of device "
                               f"string: {type!r}")
        if index is not None and (not isinstance(index, int) or index < 0):
            raise RuntimeError(f"Device index must not be negative, got {index!r}")
        self.type, self.index = name, index

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self) -> str:
        if self.index is None:
            return f"device(type={self.type!r})"
        return f"device(type={self.type!r}, index={self.index})"

    def __eq__(self, other) -> bool:
        if isinstance(other, device):
            return (self.type, self.index) == (other.type, other.index)
        if isinstance(other, str):
            return str(self) == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(str(self))


CPU = device("cpu")


def _false(*args, **kwargs) -> bool:
    return False


def _zero() -> int:
    return 0


def _no_gpu(*args, **kwargs):
    raise RuntimeError("cnnlab runs on the CPU only: there is no CUDA device (cuda.is_available() is False)")


def _nothing(*args, **kwargs) -> None:
    return None


cuda = types.ModuleType("cnnlab.cuda", "PyTorch's ``torch.cuda``, without a GPU: ``is_available()`` is False.")
cuda.is_available = _false
cuda.device_count = _zero
cuda.is_initialized = _false
cuda.manual_seed = _nothing       # seeding a device that does not exist does nothing, as in PyTorch
cuda.manual_seed_all = _nothing
cuda.synchronize = _nothing
cuda.empty_cache = _nothing
cuda.current_device = _no_gpu
cuda.get_device_name = _no_gpu

accelerator = types.ModuleType("cnnlab.accelerator", "PyTorch's ``torch.accelerator``: none is available.")
accelerator.is_available = _false
accelerator.current_accelerator = _nothing
accelerator.device_count = _zero

backends = types.ModuleType("cnnlab.backends", "PyTorch's ``torch.backends``: no GPU back end is available.")
backends.mps = types.ModuleType("cnnlab.backends.mps")
backends.mps.is_available = _false
backends.mps.is_built = _false
backends.cudnn = types.ModuleType("cnnlab.backends.cudnn")
backends.cudnn.is_available = _false
backends.cudnn.enabled = False
backends.cudnn.benchmark = False
backends.cudnn.deterministic = False
