"""``cnnlab.vision``: the part of torchvision that PyTorch's beginner tutorials use.

``from cnnlab.vision import datasets, transforms`` stands for ``from torchvision import datasets,
transforms``: ``datasets.MNIST`` / ``FashionMNIST`` / ``CIFAR10`` (``root=``, ``train=``,
``download=``, ``transform=``, ``target_transform=``) and ``transforms.Compose``, ``ToTensor``,
``Normalize``, ``Lambda``.  The readers are cnnlab's own (:mod:`cnnlab.data`).
"""
from . import datasets, transforms, utils

__all__ = ["datasets", "transforms", "utils"]
