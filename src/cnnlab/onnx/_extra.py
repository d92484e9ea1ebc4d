"""The ``onnx`` extra: a clear error when its packages are missing."""
from __future__ import annotations


def _require(package: str) -> None:
    import importlib.util
    if importlib.util.find_spec(package) is None:
        raise ImportError(f"cnnlab.onnx needs the {package!r} package: pip install \"cnnlab[onnx]\"")
