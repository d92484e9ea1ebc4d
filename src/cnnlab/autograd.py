"""``cnnlab.autograd``: PyTorch's ``torch.autograd.grad`` and ``torch.autograd.backward``.

``grad(outputs, inputs)`` returns the gradients of ``outputs`` with respect to ``inputs`` (leaves or
tensors computed on the way) without touching any ``.grad``; ``backward(tensors)`` is
``tensor.backward()`` for several outputs at once, accumulating into the leaves' ``.grad``.  Only
first-order gradients exist in cnnlab (``create_graph=True`` raises).
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np

from .tensor import Tensor, _backpropagate

__all__ = ["grad", "backward"]

TensorOrTensors = Union[Tensor, Sequence[Tensor]]


def _as_tuple(value, name: str) -> tuple:
    items = (value,) if isinstance(value, Tensor) else tuple(value)
    for i, item in enumerate(items):
        if not isinstance(item, Tensor):
            raise TypeError(f"`{name}` must be a Tensor or a sequence of Tensors, got {type(item).__name__} "
                            f"at position {i}")
    return items


def _seeds(outputs: tuple, grad_outputs) -> list:
    """``[(output, gradient array)]``; a gradient may be omitted (None) for a one-value output."""
    if grad_outputs is None:
        grad_outputs = (None,) * len(outputs)
    elif isinstance(grad_outputs, (Tensor, np.ndarray)):
        grad_outputs = (grad_outputs,)
    grad_outputs = tuple(grad_outputs)
    if len(grad_outputs) != len(outputs):
        raise RuntimeError(f"grad can be implicitly created only for scalar outputs; got {len(grad_outputs)} "
                           f"gradients for {len(outputs)} outputs")
    seeds = []
    for i, (out, g) in enumerate(zip(outputs, grad_outputs)):
        if not out.requires_grad:
            raise RuntimeError(f"element {i} of tensors does not require grad and does not have a grad_fn")
        if g is None:
            if out._data.size != 1:
                raise RuntimeError(f"grad can be implicitly created only for scalar outputs; output {i} has "
                                   f"shape {tuple(out.shape)}")
            g = np.ones_like(out._data)
        else:
            g = np.asarray(g._data if isinstance(g, Tensor) else g, dtype=out.dtype)
            if g.shape != out.shape:
                raise RuntimeError(f"Mismatch in shape: grad_output[{i}] has a shape of {tuple(g.shape)} and "
                                   f"output[{i}] has a shape of {tuple(out.shape)}")
        seeds.append((out, g))
    return seeds


def grad(outputs: TensorOrTensors, inputs: TensorOrTensors, grad_outputs=None,
         retain_graph: Optional[bool] = None, create_graph: bool = False, allow_unused: Optional[bool] = None,
         is_grads_batched: bool = False, materialize_grads: bool = False) -> tuple:
    """The gradients of ``outputs`` with respect to each of ``inputs``, as a tuple of Tensors.

    Args:
        outputs: a Tensor or a sequence of Tensors.
        inputs: the Tensors to differentiate with respect to (each must require grad).
        grad_outputs: the gradient of some scalar with respect to each output (None for a
            one-value output: ones).
        retain_graph: keep the graph for another backward through it (default: released).
        allow_unused: an input the outputs do not depend on gives None instead of an error.
        materialize_grads: such an input gives zeros instead (implies ``allow_unused``).
    No ``.grad`` of any tensor is changed.
    """
    if create_graph:
        raise NotImplementedError("autograd.grad(create_graph=True): cnnlab computes first-order gradients only")
    if is_grads_batched:
        raise NotImplementedError("autograd.grad(is_grads_batched=True) is not supported")
    outputs = _as_tuple(outputs, "outputs")
    inputs = _as_tuple(inputs, "inputs")
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            raise RuntimeError(f"One of the differentiated Tensors (input {i}) does not require grad")
    captured = _backpropagate(_seeds(outputs, grad_outputs), keep=bool(retain_graph),
                              capture={id(t) for t in inputs})
    allow_unused = bool(allow_unused) or materialize_grads
    result = []
    for i, t in enumerate(inputs):
        g = captured.get(id(t))
        if g is None:
            if not allow_unused:
                raise RuntimeError(f"One of the differentiated Tensors (input {i}) appears to not have been used "
                                   f"in the graph. Set allow_unused=True if this is the desired behavior.")
            result.append(Tensor(np.zeros_like(t._data)) if materialize_grads else None)
        else:
            result.append(Tensor(np.array(g, dtype=t.dtype, copy=True)))
    return tuple(result)


def backward(tensors: TensorOrTensors, grad_tensors=None, retain_graph: Optional[bool] = None,
             create_graph: bool = False, inputs=None) -> None:
    """Accumulate the gradients of ``tensors`` into ``.grad`` of the leaves (of ``inputs`` only,
    when given), as ``tensor.backward`` does for one output."""
    if create_graph:
        raise NotImplementedError("autograd.backward(create_graph=True): cnnlab computes first-order gradients only")
    seeds = _seeds(_as_tuple(tensors, "tensors"), grad_tensors)
    if inputs is None:
        _backpropagate(seeds, keep=bool(retain_graph))
        return
    inputs = _as_tuple(inputs, "inputs")
    captured = _backpropagate(seeds, keep=bool(retain_graph), capture={id(t) for t in inputs})
    for t in inputs:
        g = captured.get(id(t))
        if g is not None:
            t.grad = Tensor(np.array(g, dtype=t.dtype, copy=True)) if t.grad is None else t.grad + Tensor(g)
