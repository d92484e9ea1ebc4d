"""argparse ``type=`` checkers shared by every command: one clear "expected ..., got ..." line each."""
from __future__ import annotations

import argparse
import math
from typing import Callable


def shown(text: str, limit: int = 40) -> str:
    """``repr(text)``, shortened when long: a 5,000-digit argument is not echoed back in full."""
    text = str(text)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text):,} characters)"


def _checker(convert: Callable, ok: Callable, expected: str) -> Callable:
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {shown(text)}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {shown(text)}")
        return value

    return parse


positive_int = _checker(int, lambda v: v >= 1, "a positive integer")
non_negative_int = _checker(int, lambda v: v >= 0, "an integer >= 0")
positive_float = _checker(float, lambda v: 0 < v < math.inf, "a positive number")
non_negative_float = _checker(float, lambda v: 0 <= v < math.inf, "a number >= 0")
fraction = _checker(float, lambda v: 0.0 <= v < 1.0, "a number in [0, 1)")
number = _checker(float, lambda v: True, "a number")
#: random seeds: what NumPy's generators and PyTorch's manual_seed take (0 .. 2**64 - 1)
seed = _checker(int, lambda v: 0 <= v < 2 ** 64, "an integer from 0 to 2**64 - 1")
