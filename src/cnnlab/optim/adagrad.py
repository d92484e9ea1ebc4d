"""Adagrad (PyTorch's rule)."""
from __future__ import annotations

import numpy as np

from .optimizer import Optimizer


class Adagrad(Optimizer):
    """Adagrad (Duchi et al.), as PyTorch computes it.

    ``s += g^2`` (``s`` starts at ``initial_accumulator_value``);
    ``p -= lr / (1 + (t - 1) lr_decay) * g / (sqrt(s) + eps)``; ``weight_decay`` adds
    ``weight_decay * p`` to the gradient.
    """

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10, *, maximize: bool = False):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps,
                                      maximize=maximize))

    def _update(self, p, grad, state, group):
        if "sum" not in state:
            state["sum"] = np.full_like(p._data, group["initial_accumulator_value"])
        t = self._new_step(state)
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * p._data
        clr = group["lr"] / (1 + (t - 1) * group["lr_decay"])
        state["sum"] += grad * grad
        std = np.sqrt(state["sum"])
        std += group["eps"]
        p._data -= clr * (grad / std)
