"""The optimiser base class, PyTorch's contract: parameter groups, per-parameter state, state dicts.

``optimizer.param_groups`` is the one place hyper-parameters live: a list of dicts, each with
``"params"`` (a list of Parameters) and that group's ``lr``, ``momentum``, ``betas``, ...
``step()`` reads them afresh every time, so changing ``param_groups[0]["lr"]`` (by hand or by a
scheduler) changes the next update.  ``optimizer.state[p]`` holds one parameter's buffers
(momentum, moments, step count) as NumPy arrays.

``state_dict()`` gives ``{"state": {index: {name: ndarray}}, "param_groups": [JSON-able dicts with
"params": [indices]]}`` -- arrays and JSON, no pickle -- and ``load_state_dict`` takes it back.
"""
from __future__ import annotations

import math
from collections.abc import MutableMapping
from typing import Any, Dict, Iterable, List

import numpy as np

from ..tensor import Tensor, enable_grad

# name: (words in PyTorch's message, lowest allowed value, highest allowed value or None)
_RULES = {
    "lr": ("learning rate", 0.0, None),
    "momentum": ("momentum value", 0.0, None),
    "dampening": ("dampening value", None, None),
    "weight_decay": ("weight_decay value", 0.0, None),
    "eps": ("epsilon value", 0.0, None),
    "alpha": ("alpha value", 0.0, 1.0),
    "lr_decay": ("lr_decay value", 0.0, None),
    "initial_accumulator_value": ("initial_accumulator_value value", 0.0, None),
}
_FLAGS = ("nesterov", "amsgrad", "centered", "maximize", "decoupled_weight_decay")


def _number(name: str, value, where: str = "") -> float:
    if isinstance(value, Tensor):
        value = value._data
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__}){where}")
    return float(value)


def _check_hyper(name: str, value, where: str = "") -> None:
    """Raise ValueError/TypeError for a bad hyper-parameter, in PyTorch's words plus the allowed range."""
    if name == "betas":
        if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {value!r}{where}")
        for i, beta in enumerate(value):
            b = _number(f"betas[{i}]", beta, where)
            if not 0.0 <= b < 1.0:
                raise ValueError(f"Invalid beta parameter at index {i}: {beta} (betas[{i}] must be in [0, 1))"
                                 f"{where}")
        return
    if name in _FLAGS:
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be True or False, got {value!r}{where}")
        return
    if name not in _RULES:
        return
    words, low, high = _RULES[name]
    v = _number(name, value, where)
    if not math.isfinite(v) or (low is not None and v < low) or (high is not None and v > high):
        allowed = "a finite number" + (f" >= {low:g}" if low is not None else "") + \
                  (f" and <= {high:g}" if high is not None else "")
        raise ValueError(f"Invalid {words}: {value} ({name} must be {allowed}){where}")


def _plain(value):
    """A JSON-able copy of a hyper-parameter (tuples become lists, NumPy scalars Python numbers)."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


class _ParamState(MutableMapping):
    """``state[p]``: parameter -> its dict of buffers, created empty on first access (a defaultdict
    keyed by identity, so it does not depend on how Tensors compare or hash)."""

    def __init__(self):
        self._items: Dict[int, tuple] = {}

    def __getitem__(self, p) -> dict:
        item = self._items.get(id(p))
        if item is None:
            item = self._items[id(p)] = (p, {})
        return item[1]

    def __setitem__(self, p, value: dict) -> None:
        self._items[id(p)] = (p, value)

    def __delitem__(self, p) -> None:
        del self._items[id(p)]

    def __contains__(self, p) -> bool:
        return id(p) in self._items

    def __iter__(self):
        return iter([p for p, _ in self._items.values()])

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"{{{', '.join(f'<{tuple(p.shape)}>: {sorted(s)}' for p, s in self._items.values())}}}"


class Optimizer:
    """Base class: holds ``param_groups`` and ``state``; subclasses define ``_update``.

    Args:
        params: an iterable of Parameters, or of dicts ``{"params": [...], "lr": ..., ...}``
            (parameter groups; options a group leaves out come from ``defaults``).
        defaults: the optimiser's hyper-parameters.
    """

    def __init__(self, params: Iterable, defaults: Dict[str, Any]):
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors or dicts, "
                            f"but got {type(params).__name__}")
        if isinstance(params, (set, frozenset)):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but the ordering "
                            "of tensors in sets will change between runs. Please use a list instead.")
        for name, value in defaults.items():
            _check_hyper(name, value)
        self.defaults = dict(defaults)
        self.state = _ParamState()
        self.param_groups: List[Dict[str, Any]] = []
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # --- groups ---------------------------------------------------------------------------------
    def add_param_group(self, param_group: Dict[str, Any]) -> None:
        """Add a group (a dict with ``"params"`` and optional hyper-parameters), e.g. layers unfrozen
        while fine-tuning.  Missing hyper-parameters are taken from ``defaults``."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError("a parameter group needs a 'params' entry (a list of Parameters)")
        where = f" in param_groups[{len(self.param_groups)}]"
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but the ordering "
                            "of tensors in sets will change between runs. Please use a list instead.")
        params = list(params)
        names = [p[0] for p in params if isinstance(p, tuple)]
        if names:
            if len(names) != len(params):
                raise ValueError("all optimizer params should be with/without names. Some param names are missing")
            params = [p[1] for p in params]
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but one of the params is "
                                f"{type(p).__module__}.{type(p).__name__}{where}")
            if p._data.dtype.kind != "f":
                raise TypeError(f"optimizer can only optimize floating point Tensors, got one of dtype "
                                f"{p._data.dtype}{where}")
        group = dict(param_group)
        group["params"] = params
        if names:
            group["param_names"] = names
        for name, value in group.items():
            if name not in ("params", "param_names"):
                _check_hyper(name, value, where)
        for name, default in self.defaults.items():
            group.setdefault(name, default)
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
        self._check_group(group, where)
        if len({id(p) for p in params}) != len(params):
            raise ValueError(f"a parameter appears more than once{where}")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    def _check_group(self, group: Dict[str, Any], where: str) -> None:
        """Checks that involve several hyper-parameters of a group (SGD's Nesterov rule)."""

    @property
    def lr(self) -> float:
        """The first group's learning rate (a shortcut for ``param_groups[0]["lr"]``); setting it
        sets every group's."""
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value: float) -> None:
        _check_hyper("lr", value)
        for group in self.param_groups:
            group["lr"] = value

    # --- stepping -------------------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients: ``p.grad = None`` (default), or fill them with zeros in place."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    g = p.grad._data if isinstance(p.grad, Tensor) else p.grad
                    g[...] = 0

    def step(self, closure=None):
        """One update of every parameter that has a gradient.

        ``closure`` (optional) recomputes the loss (zero_grad, forward, backward) and returns it;
        ``step`` returns that loss.
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad._data if isinstance(p.grad, Tensor) else np.asarray(p.grad)
                if grad.shape != p._data.shape:
                    raise ValueError(f"{type(self).__name__}.step: a parameter of shape {tuple(p._data.shape)} has a "
                                     f"gradient of shape {tuple(grad.shape)}")
                grad = grad.astype(p._data.dtype, copy=False)
                if group.get("maximize", False):
                    grad = -grad
                self._update(p, grad, self.state[p], group)
        return loss

    def _update(self, p, grad: np.ndarray, state: dict, group: dict) -> None:
        raise NotImplementedError

    @staticmethod
    def _new_step(state: dict) -> int:
        """Count one more step in ``state["step"]`` (a 0-d int64 array) and return it."""
        step = state.get("step")
        if step is None:
            step = state["step"] = np.zeros((), dtype=np.int64)
        step[...] += 1
        return int(step)

    # --- checkpoints -----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """``{"state": {index: {name: ndarray}}, "param_groups": [...]}`` as PyTorch's, with every
        group's hyper-parameters JSON-able and ``"params"`` replaced by parameter indices."""
        index: Dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: _plain(v) for k, v in group.items() if k != "params"}
            packed["params"] = [index.setdefault(id(p), len(index)) for p in group["params"]]
            groups.append(packed)
        state = {index[id(p)]: dict(s) for p, s in self.state.items() if s and id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore hyper-parameters and buffers from :meth:`state_dict` (arrays are copied and cast to
        each parameter's dtype).  ``state`` keys may be indices, their strings (after JSON), or flat
        ``"<index>.<name>"`` keys (as a checkpoint's array file stores them)."""
        if not isinstance(state_dict, dict):
            raise TypeError(f"optimizer state must be a dict, got {type(state_dict).__name__}")
        params = [p for g in self.param_groups for p in g["params"]]
        if "param_groups" in state_dict:
            saved_groups = state_dict["param_groups"]
            if not isinstance(saved_groups, list) or not all(isinstance(g, dict) for g in saved_groups):
                raise ValueError("optimizer state: 'param_groups' must be a list of dicts")
            if len(saved_groups) != len(self.param_groups):
                raise ValueError(f"loaded state dict has a different number of parameter groups "
                                 f"({len(saved_groups)}) than the optimizer ({len(self.param_groups)})")
            for i, (saved, own) in enumerate(zip(saved_groups, self.param_groups)):
                n = len(saved.get("params", []))
                if n != len(own["params"]):
                    raise ValueError(f"loaded state dict contains a parameter group that doesn't match the size "
                                     f"of optimizer's group: param_groups[{i}] has {n} parameters, expected "
                                     f"{len(own['params'])}")
            new_groups = []
            for i, (saved, own) in enumerate(zip(saved_groups, self.param_groups)):
                group = {k: v for k, v in saved.items() if k != "params"}
                for name, value in group.items():
                    _check_hyper(name, value, f" in the loaded param_groups[{i}]")
                if "betas" in group:
                    group["betas"] = tuple(float(b) for b in group["betas"])
                group["params"] = own["params"]
                new_groups.append(group)
        elif "lr" in state_dict:  # the flat format of earlier cnnlab checkpoints: one lr for all groups
            _check_hyper("lr", state_dict["lr"], " in the loaded optimizer state")
            new_groups = [dict(g, lr=float(state_dict["lr"])) for g in self.param_groups]
        else:
            raise ValueError("optimizer state has no 'param_groups'")
        arrays = state_dict.get("state", {})
        if not isinstance(arrays, dict):
            raise ValueError(f"optimizer state: 'state' must be a dict, got {type(arrays).__name__}")
        buffers: Dict[int, dict] = {}
        for key, value in arrays.items():
            index, name = key, None
            if isinstance(key, str) and "." in key:
                index, name = key.split(".", 1)
            try:
                index = int(index)
            except (TypeError, ValueError):
                raise ValueError(f"optimizer state: key {key!r} does not name a parameter index") from None
            if not 0 <= index < len(params):
                raise ValueError(f"optimizer state refers to parameter {index}, but the optimizer has "
                                 f"{len(params)} parameters")
            items = {name: value} if name is not None else value
            if not isinstance(items, dict):
                raise ValueError(f"optimizer state for parameter {index} must be a dict of arrays")
            for buf_name, buf in items.items():
                buffers.setdefault(index, {})[buf_name] = self._load_buffer(params[index], index, buf_name, buf)
        for group, new in zip(self.param_groups, new_groups):
            group.clear()
            group.update(new)
        self.state = _ParamState()
        for index, bufs in buffers.items():
            self.state[params[index]] = bufs

    @staticmethod
    def _load_buffer(p, index: int, name: str, value) -> np.ndarray:
        arr = np.array(value._data if isinstance(value, Tensor) else value)
        if arr.dtype.kind not in "iuf":
            raise ValueError(f"optimizer state for parameter {index}: {name!r} must be numeric, got dtype {arr.dtype}")
        if name == "step":
            if arr.size != 1:
                raise ValueError(f"optimizer state for parameter {index}: 'step' must be one number, got shape "
                                 f"{arr.shape}")
            return np.array(int(arr.reshape(())), dtype=np.int64)
        if arr.shape != p._data.shape:
            raise ValueError(f"optimizer state for parameter {index}: {name!r} has shape {tuple(arr.shape)}, "
                             f"expected {tuple(p._data.shape)} (the parameter's shape)")
        return arr.astype(p._data.dtype, copy=False)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {group[k]}" for k in sorted(group) if k not in ("params", "param_names")]
        return "\n".join(lines) + "\n)"


def _lerp_(a: np.ndarray, b: np.ndarray, weight: float) -> None:
    """``a += weight * (b - a)`` in place, rounded as ``torch.lerp_`` rounds."""
    diff = np.subtract(b, a)
    if weight < 0.5:
        diff *= weight
        a += diff
    else:
        diff *= 1 - weight
        np.subtract(b, diff, out=a)


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> float:
    """Scale all gradients so their joint ``norm_type``-norm is at most ``max_norm`` (PyTorch's rule:
    ``coef = max_norm / (total + 1e-6)`` when below 1); returns the norm before clipping."""
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    max_norm, norm_type = float(max_norm), float(norm_type)
    grads = [p.grad._data if isinstance(p.grad, Tensor) else p.grad for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    if norm_type == math.inf:
        total = max(float(np.max(np.abs(g))) if g.size else 0.0 for g in grads)
    elif norm_type == 2.0:
        total = math.sqrt(sum(float(np.vdot(g, g)) for g in grads))
    else:
        total = sum(float(np.sum(np.abs(g) ** norm_type)) for g in grads) ** (1.0 / norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, so "
                           "it cannot be clipped. To disable this error and scale the gradients by the non-finite "
                           "norm anyway, set `error_if_nonfinite=False`")
    coef = max_norm / (total + 1e-6)
    if coef < 1:
        for g in grads:
            g *= g.dtype.type(coef)
    return total
