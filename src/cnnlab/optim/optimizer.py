"""Optimisers with PyTorch's update rules, updating parameters in place."""
from __future__ import annotations

import math
from typing import Iterable, List

import numpy as np


class Optimizer:
    """Holds the parameters and their per-parameter state; ``step()`` applies one update."""

    def __init__(self, params: Iterable, defaults: dict):
        self.params: List = list(params)
        if not self.params:
            raise ValueError("optimizer got an empty parameter list")
        if defaults.get("lr", 0) < 0:
            raise ValueError(f"Invalid learning rate: {defaults['lr']}")
        self.defaults = dict(defaults)
        self.lr = defaults["lr"]
        self.state: List[dict] = [{} for _ in self.params]
        self.step_count = 0

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        self.step_count += 1
        for p, state in zip(self.params, self.state):
            if p.grad is not None:
                self._update(p, p.grad.astype(p.data.dtype, copy=False), state)

    def _update(self, p, grad: np.ndarray, state: dict) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict:
        """Arrays keyed ``"<param index>.<name>"`` plus scalars, for checkpoints (no pickle needed)."""
        arrays = {f"{i}.{k}": v for i, s in enumerate(self.state) for k, v in s.items()}
        return {"lr": self.lr, "step_count": self.step_count, "state": arrays}

    def load_state_dict(self, state: dict) -> None:
        self.lr = float(state["lr"])
        self.step_count = int(state["step_count"])
        self.state = [{} for _ in self.params]
        for key, value in state["state"].items():
            index, name = key.split(".", 1)
            self.state[int(index)][name] = np.array(value)


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, dampening, weight decay and Nesterov (PyTorch's rule).

    ``g = grad + wd * p``; ``buf = momentum * buf + (1 - dampening) * g`` (``buf = g`` on the
    first step); ``g = g + momentum * buf`` if nesterov else ``buf``; ``p -= lr * g``.
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))
        self.momentum, self.dampening = momentum, dampening
        self.weight_decay, self.nesterov = weight_decay, nesterov

    def _update(self, p, grad, state):
        if self.weight_decay:
            grad = grad + self.weight_decay * p.data
        if self.momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = grad.copy()
            else:
                buf *= self.momentum
                buf += (1 - self.dampening) * grad
            grad = grad + self.momentum * buf if self.nesterov else buf
        p.data -= p.data.dtype.type(self.lr) * grad


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction; ``weight_decay`` adds ``wd * p`` to the gradient (L2)."""

    decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))
        self.betas, self.eps, self.weight_decay = tuple(betas), eps, weight_decay

    def _update(self, p, grad, state):
        beta1, beta2 = self.betas
        if self.weight_decay:
            if self.decoupled:
                p.data *= p.data.dtype.type(1 - self.lr * self.weight_decay)
            else:
                grad = grad + self.weight_decay * p.data
        if "exp_avg" not in state:
            state["exp_avg"] = np.zeros_like(p.data)
            state["exp_avg_sq"] = np.zeros_like(p.data)
            state["step"] = np.zeros((), dtype=np.int64)
        state["step"][...] += 1
        t = int(state["step"])
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m *= beta1
        m += (1 - beta1) * grad
        v *= beta2
        v += (1 - beta2) * grad * grad
        step_size = self.lr / (1 - beta1 ** t)
        denom = np.sqrt(v) / math.sqrt(1 - beta2 ** t) + self.eps
        p.data -= (step_size * m / denom).astype(p.data.dtype, copy=False)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): ``p *= 1 - lr * wd`` before the step."""

    decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2):
        super().__init__(params, lr, betas, eps, weight_decay)


def clip_grad_norm_(parameters, max_norm: float) -> float:
    """Scale all gradients so their joint L2 norm is at most ``max_norm``; returns the norm before."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    total = math.sqrt(sum(float(np.vdot(g, g)) for g in grads))
    coef = max_norm / (total + 1e-6)
    if coef < 1:
        for g in grads:
            g *= coef
    return total
