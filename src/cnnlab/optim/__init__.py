"""Optimisers and learning-rate schedules (``cnnlab.optim``)."""
from .optimizer import Optimizer, SGD, Adam, AdamW, clip_grad_norm_
from .lr_scheduler import LRScheduler, ConstantLR, StepLR, CosineAnnealingLR, OneCycleLR

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "clip_grad_norm_", "LRScheduler", "ConstantLR", "StepLR",
           "CosineAnnealingLR", "OneCycleLR"]
