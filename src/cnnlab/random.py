"""The one random generator behind initialisation and dropout: ``cnnlab.manual_seed(0)``."""
from __future__ import annotations

import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed cnnlab's generator (weight initialisation, dropout); returns it."""
    global _generator
    _generator = np.random.default_rng(seed)
    return _generator


def get_rng() -> np.random.Generator:
    return _generator


def get_state() -> dict:
    return _generator.bit_generator.state


def set_state(state: dict) -> None:
    _generator.bit_generator.state = state
