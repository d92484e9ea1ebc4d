"""The same network, data and recipe trained by PyTorch (the reference for ``accuracy.py``).

The model comes from cnnlab's model spec (:func:`cnnlab.models.model_to_spec`)
turned into ``torch.nn`` layers, and starts from cnnlab's initial weights
(the ``state_dict`` keys are PyTorch's, so they load unchanged).  Batches
come from the very same cnnlab ``DataLoader`` (same seeded shuffling, same
augmentation, same normalisation), so the engine is the only difference.

PyTorch is imported here only, never by the ``cnnlab`` package.
"""
from __future__ import annotations

import time
from typing import Optional

import numpy as np


def torch_model(spec: dict):
    """A ``torch.nn`` model for a cnnlab model spec (the layer types cnnlab's zoo uses).

    A chain becomes a ``torch.nn.Sequential``; a graph (layers with names and
    inputs) a module that runs the same nodes, its layers placed at their node
    names so the state-dict keys are cnnlab's.
    """
    import torch.nn as tnn

    def layer(entry: dict):
        args = {k: v for k, v in entry.items() if k not in ("type", "name", "inputs")}
        kind = entry["type"]
        if kind == "Sequential":
            return tnn.Sequential(*[layer(e) for e in args["layers"]])
        if kind == "GlobalAvgPool2d":
            return tnn.Sequential(tnn.AdaptiveAvgPool2d(1), tnn.Flatten())
        if kind == "GlobalMaxPool2d":
            return tnn.Sequential(tnn.AdaptiveMaxPool2d(1), tnn.Flatten())
        cls = {"Dense": tnn.Linear}.get(kind) or getattr(tnn, kind)
        args = {k: tuple(v) if isinstance(v, list) else v for k, v in args.items()}
        return cls(**args)

    if any("name" in e or "inputs" in e for e in spec["layers"]):
        return _TorchGraph(spec, layer)
    return tnn.Sequential(*[layer(e) for e in spec["layers"]])


def _torch_graph_class():
    import torch
    import torch.nn as tnn

    merges = {"Add": lambda a, b: a + b, "Sub": lambda a, b: a - b, "Mul": lambda a, b: a * b,
              "Div": lambda a, b: a / b}

    class TorchGraph(tnn.Module):
        def __init__(self, spec, make_layer):
            super().__init__()
            self.steps = []
            previous = "input"
            for index, entry in enumerate(spec["layers"]):
                name = entry.get("name", str(index))
                inputs = entry.get("inputs", [previous])
                kind = entry["type"]
                if kind in merges:
                    fn = merges[kind]
                elif kind == "Concat":
                    dim = entry.get("dim", 1)
                    fn = (lambda d: lambda *xs: torch.cat(xs, dim=d))(dim)
                else:
                    parent, _, leaf = name.rpartition(".")
                    owner = self
                    for part in parent.split(".") if parent else []:
                        if not hasattr(owner, part):
                            owner.add_module(part, tnn.Module())
                        owner = getattr(owner, part)
                    owner.add_module(leaf, make_layer(entry))
                    fn = self.get_submodule(name)
                self.steps.append((name, fn, inputs))
                previous = name
            self.output = spec.get("output", previous)

        def forward(self, x):
            values = {"input": x}
            for name, fn, inputs in self.steps:
                values[name] = fn(*[values[i] for i in inputs])
            return values[self.output]

    return TorchGraph


def _TorchGraph(spec, make_layer):
    return _torch_graph_class()(spec, make_layer)


def _load_weights(model, state: dict) -> None:
    import torch
    own = model.state_dict()
    mapped = {}
    for key, value in state.items():
        if key in own:
            mapped[key] = torch.from_numpy(np.array(value))
        else:  # GlobalAvgPool2d became Sequential(pool, flatten): no weights, keys unchanged elsewhere
            raise KeyError(f"weight {key} has no place in the PyTorch model")
    model.load_state_dict(mapped)


def fit_torch(spec: dict, initial_state: dict, train_set, val_set, test_set, *, epochs: int, batch_size: int,
              lr: float, optimizer: str = "adam", schedule: str = "cosine", weight_decay: float = 0.0,
              label_smoothing: float = 0.0, augment=None, seed: int = 0, threads: Optional[int] = None,
              log=print) -> dict:
    """Train with PyTorch on cnnlab's batches; returns test accuracy/loss and the training time."""
    import torch
    import torch.nn.functional as TF

    from cnnlab.data import DataLoader
    from cnnlab.data.transforms import Compose, Normalize

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model = torch_model(spec)
    _load_weights(model, initial_state)
    params = list(model.parameters())
    if optimizer == "adam":
        opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    elif optimizer == "adamw":
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    else:
        opt = torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    norm = Normalize(train_set.mean, train_set.std)
    transform = Compose(([augment] if augment is not None else []) + [norm])
    loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, transform=transform,
                        rng=np.random.default_rng([seed, 1]))
    total = max(epochs * len(loader), 2)
    if schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    elif schedule == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total)
    else:
        sched = None

    def run_eval(data):
        model.eval()
        loss_sum, correct = 0.0, 0
        with torch.no_grad():
            for start in range(0, len(data), 500):
                x = torch.from_numpy(norm(data.images[start:start + 500]))
                y = torch.from_numpy(data.labels[start:start + 500])
                out = model(x)
                loss_sum += float(TF.cross_entropy(out, y, reduction="sum"))
                correct += int((out.argmax(1) == y).sum())
        return loss_sum / len(data), correct / len(data)

    best, best_state = None, None
    t0 = time.perf_counter()
    for epoch in range(epochs):
        t_epoch = time.perf_counter()
        model.train()
        seen, loss_sum, correct = 0, 0.0, 0
        for x, y in loader:
            if x.shape[0] < 2:
                continue
            x, y = torch.from_numpy(x), torch.from_numpy(y)
            out = model(x)
            loss = TF.cross_entropy(out, y, label_smoothing=label_smoothing)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            seen += len(y)
            loss_sum += loss.item() * len(y)
            correct += int((out.argmax(1) == y).sum())
        line = f"torch epoch {epoch + 1}/{epochs}: loss {loss_sum / seen:.4f}, acc {100 * correct / seen:.2f}%"
        if val_set is not None:
            v_loss, v_acc = run_eval(val_set)
            line += f", val_loss {v_loss:.4f}, val_acc {100 * v_acc:.2f}%"
            if best is None or v_loss < best:
                best = v_loss
                best_state = {k: v.clone() for k, v in model.state_dict().items()}
        log(f"{line}, {time.perf_counter() - t_epoch:.1f}s")
    train_seconds = time.perf_counter() - t0
    if best_state is not None:  # cnnlab's fit restores the best validation epoch too
        model.load_state_dict(best_state)
    test_loss, test_acc = run_eval(test_set)
    return {"test_accuracy": test_acc, "test_loss": test_loss, "train_seconds": train_seconds,
            "threads": torch.get_num_threads(), "torch_version": torch.__version__}
