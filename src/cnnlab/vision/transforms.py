"""torchvision-style transforms of one image: ``Compose([ToTensor(), Normalize(mean, std)])``.

These work on one sample (a PIL image, an ``H x W (x C)`` NumPy array, or a ``C x H x W`` Tensor), as
torchvision's do.  (cnnlab's batch transforms, which augment whole NumPy batches, are in
:mod:`cnnlab.data.transforms`.)  When a :mod:`cnnlab.vision.datasets` data set's transform is made
only of ``ToTensor`` and ``Normalize``, a ``DataLoader`` applies it to a whole batch at once.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..tensor import Tensor

__all__ = ["Compose", "ToTensor", "Normalize", "Lambda", "PILToTensor", "ConvertImageDtype"]


class Compose:
    """Apply ``transforms`` one after the other."""

    def __init__(self, transforms: Sequence[Callable]):
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"Compose: every transform must be callable, got {type(t).__name__}")

    def __call__(self, img):
        for t in self.transforms:
            img = t(img)
        return img

    def __repr__(self) -> str:
        body = "".join(f"\n    {t!r}" for t in self.transforms)
        return f"{type(self).__name__}({body}\n)"


def _image_array(pic) -> np.ndarray:
    """A PIL image or an array as an ``H x W x C`` NumPy array."""
    if isinstance(pic, np.ndarray):
        array = pic
    elif type(pic).__module__.startswith("PIL."):
        array = np.asarray(pic)
        if pic.mode == "1":
            array = array.astype(np.uint8) * 255
    else:
        raise TypeError(f"pic should be a PIL Image or a NumPy array, got {type(pic).__name__}")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise ValueError(f"pic should be 2 or 3 dimensional (H x W or H x W x C), got {array.ndim} dimensions "
                         f"(shape {array.shape})")
    return array


def to_tensor_batch(images: np.ndarray) -> np.ndarray:
    """``N x H x W (x C)`` pixels as float32 ``N x C x H x W`` (uint8 divided by 255, as ToTensor)."""
    if images.ndim == 3:
        images = images[:, None]
    else:
        images = images.transpose(0, 3, 1, 2)
    if images.dtype == np.uint8:
        return np.ascontiguousarray(images, dtype=np.float32) / np.float32(255)
    return np.ascontiguousarray(images, dtype=np.float32 if images.dtype.kind != "f" else images.dtype)


class ToTensor:
    """A PIL image or ``H x W x C`` array to a ``C x H x W`` Tensor; 8-bit pixels become float32 in [0, 1]."""

    def __call__(self, pic) -> Tensor:
        array = _image_array(pic)
        return Tensor(to_tensor_batch(array[None])[0])

    def __repr__(self) -> str:
        return "ToTensor()"


class PILToTensor:
    """A PIL image to a ``C x H x W`` uint8 Tensor (no scaling)."""

    def __call__(self, pic) -> Tensor:
        return Tensor(np.ascontiguousarray(_image_array(pic).transpose(2, 0, 1)))

    def __repr__(self) -> str:
        return "PILToTensor()"


class ConvertImageDtype:
    """A Tensor image to ``dtype`` (uint8 to float divides by 255)."""

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)

    def __call__(self, image: Tensor) -> Tensor:
        data = image._data
        if data.dtype == np.uint8 and self.dtype.kind == "f":
            return Tensor(data.astype(self.dtype) / self.dtype.type(255))
        return Tensor(data.astype(self.dtype))


class Normalize:
    """``(image - mean) / std`` per channel, on a ``(..., C, H, W)`` float Tensor."""

    def __init__(self, mean, std, inplace: bool = False):
        self.mean = tuple(float(m) for m in np.atleast_1d(np.asarray(mean, dtype=np.float64)))
        self.std = tuple(float(s) for s in np.atleast_1d(np.asarray(std, dtype=np.float64)))
        if any(s == 0 for s in self.std):
            raise ValueError(f"std evaluated to zero after conversion to float, leading to division by zero: "
                             f"std={self.std}")
        self.inplace = inplace

    def apply(self, array: np.ndarray) -> np.ndarray:
        """Normalise a float ``(..., C, H, W)`` array (a copy unless ``inplace``)."""
        if array.ndim < 3:
            raise ValueError(f"Normalize expects a tensor image of shape (..., C, H, W), got shape {array.shape}")
        if array.dtype.kind != "f":
            raise TypeError(f"Normalize expects a float tensor image, got dtype {array.dtype} (use ToTensor first)")
        channels = array.shape[-3]
        if len(self.mean) not in (1, channels) or len(self.std) not in (1, channels):
            raise ValueError(f"Normalize: mean {self.mean} and std {self.std} need 1 or {channels} values "
                             f"for an image of {channels} channels")
        mean = np.asarray(self.mean, dtype=array.dtype).reshape(-1, 1, 1)
        std = np.asarray(self.std, dtype=array.dtype).reshape(-1, 1, 1)
        if self.inplace:
            array -= mean
            array /= std
            return array
        return (array - mean) / std

    def __call__(self, tensor: Tensor) -> Tensor:
        if not isinstance(tensor, Tensor):
            raise TypeError(f"Normalize expects a Tensor image, got {type(tensor).__name__} (use ToTensor first)")
        out = self.apply(tensor._data)
        return tensor if self.inplace else Tensor(out)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


class Lambda:
    """A user function as a transform (``Lambda(lambda y: ...)``)."""

    def __init__(self, lambd: Callable):
        if not callable(lambd):
            raise TypeError(f"Argument lambd should be callable, got {type(lambd).__name__}")
        self.lambd = lambd

    def __call__(self, img):
        return self.lambd(img)

    def __repr__(self) -> str:
        return "Lambda()"


def batch_plan(transform):
    """The list of steps if ``transform`` is made only of ToTensor/Normalize (ToTensor first), else None."""
    steps = list(transform.transforms) if isinstance(transform, Compose) else [transform]
    if not steps or type(steps[0]) is not ToTensor:
        return None
    if any(type(s) is not Normalize for s in steps[1:]):
        return None
    return steps
