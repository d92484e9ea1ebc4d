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


class Generator:
    """``cnnlab.Generator().manual_seed(42)``: a separate random stream (PyTorch's ``torch.Generator``).

    ``random_split(..., generator=g)`` and ``DataLoader(..., generator=g)`` draw from it instead of
    cnnlab's global generator.
    """

    def __init__(self, device="cpu"):
        self._rng = np.random.default_rng()
        self._seed = None

    def manual_seed(self, seed: int) -> "Generator":
        if int(seed) < 0:
            raise ValueError(f"a seed must be a non-negative integer, got {seed}")
        self._seed = int(seed)
        self._rng = np.random.default_rng(self._seed)
        return self

    def initial_seed(self):
        return self._seed

    @property
    def rng(self) -> np.random.Generator:
        return self._rng


def as_numpy_rng(generator=None) -> np.random.Generator:
    """The NumPy generator behind ``generator`` (None: cnnlab's global one)."""
    if generator is None:
        return _generator
    if isinstance(generator, Generator):
        return generator.rng
    if isinstance(generator, np.random.Generator):
        return generator
    raise TypeError(f"generator must be a cnnlab.Generator or None, got {type(generator).__name__}")


def as_generator(rng=None) -> np.random.Generator:
    """Return a ``numpy.random.Generator``: ``None`` (fresh entropy), an int seed, or a Generator as is."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        if rng is not None and int(rng) < 0:
            raise ValueError(f"a seed must be a non-negative integer, got {rng}")
        return np.random.default_rng(None if rng is None else int(rng))
    raise TypeError(
        f"rng must be None, an int seed or a numpy.random.Generator, got {type(rng).__name__}")
