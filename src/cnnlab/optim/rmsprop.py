"""RMSprop (PyTorch's rule, centered and momentum variants)."""
from __future__ import annotations

import numpy as np

from .optimizer import Optimizer, _lerp_


class RMSprop(Optimizer):
    """RMSprop (Hinton), as PyTorch computes it.

    ``v = alpha v + (1 - alpha) g^2``; ``centered`` subtracts the square of the running mean
    gradient ``a = lerp(a, g, 1 - alpha)``: ``avg = sqrt(v - a^2) + eps`` (else ``sqrt(v) + eps``);
    with ``momentum``: ``buf = momentum buf + g / avg``, ``p -= lr buf``; else ``p -= lr g / avg``.
    ``weight_decay`` adds ``weight_decay * p`` to the gradient.
    """

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False, *,
                 maximize: bool = False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered, maximize=maximize))

    def _update(self, p, grad, state, group):
        lr, alpha, momentum, weight_decay = group["lr"], group["alpha"], group["momentum"], group["weight_decay"]
        if "square_avg" not in state:
            state["square_avg"] = np.zeros_like(p._data)
        self._new_step(state)
        if weight_decay:
            grad = grad + weight_decay * p._data
        square_avg = state["square_avg"]
        square_avg *= alpha
        square_avg += (1 - alpha) * grad * grad
        if group["centered"]:
            grad_avg = state.setdefault("grad_avg", np.zeros_like(p._data))
            _lerp_(grad_avg, grad, 1 - alpha)
            avg = np.sqrt(square_avg - grad_avg * grad_avg)
        else:
            avg = np.sqrt(square_avg)
        avg += group["eps"]
        if momentum > 0:
            buf = state.setdefault("momentum_buffer", np.zeros_like(p._data))
            buf *= momentum
            buf += grad / avg
            p._data -= lr * buf
        else:
            p._data -= lr * (grad / avg)
