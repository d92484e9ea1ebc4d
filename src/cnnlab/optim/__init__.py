"""Optimisers and learning-rate schedules (``cnnlab.optim``), with PyTorch's names and rules."""
from .optimizer import Optimizer, clip_grad_norm_
from .sgd import SGD
from .adam import Adam, AdamW
from .rmsprop import RMSprop
from .adagrad import Adagrad
from .adadelta import Adadelta
from . import lr_scheduler
from .lr_scheduler import (LRScheduler, LambdaLR, MultiplicativeLR, StepLR, MultiStepLR, ConstantLR, LinearLR,
                           ExponentialLR, PolynomialLR, CosineAnnealingLR, CosineAnnealingWarmRestarts,
                           OneCycleLR, SequentialLR,
                           ChainedScheduler, ReduceLROnPlateau)

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "clip_grad_norm_", "lr_scheduler",
           "LRScheduler", "LambdaLR", "MultiplicativeLR", "StepLR", "MultiStepLR", "ConstantLR", "LinearLR",
           "ExponentialLR", "PolynomialLR", "CosineAnnealingLR",
           "CosineAnnealingWarmRestarts", "OneCycleLR", "SequentialLR", "ChainedScheduler",
           "ReduceLROnPlateau"]
