"""A folder of the user's own images, one subfolder per class.

::

    my_images/
        cat/  a.png  b.jpg ...
        dog/  c.bmp  ...

Class names are the subfolder names in sorted order (label 0 is the first).
Hidden entries (names starting with ".") are ignored.  Images are read with
Pillow (PNG, JPEG, BMP, GIF, TIFF, WebP), turned upright by their EXIF
orientation, converted to grayscale or RGB, and resized with Pillow's
antialiased bilinear filter.
"""
from __future__ import annotations

import contextlib
import os
import sys
from collections import Counter
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .dataset import ArrayDataset, stratified_split

__all__ = ["load_image_folder", "IMAGE_EXTENSIONS", "IMAGE_FORMATS", "list_image_folder", "read_image",
           "open_image"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
#: the only Pillow formats cnnlab decodes, whatever a file's name says (never EPS/PostScript, which
#: Pillow hands to Ghostscript, nor any other plugin): PGM/PPM are the plain raster formats ``PPM``
IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "PPM")
_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}


def list_image_folder(root, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> Tuple[List[str], List[Tuple[Path, int]]]:
    """The class names and the sorted ``(path, label)`` list of an image folder.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        NotADirectoryError: ``root`` is a file.
        ValueError: no class subfolders, fewer than 2 classes, or a class without images.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"image folder {root} does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is a file, expected a folder with one subfolder per class")
    exts = tuple(e.lower() for e in extensions)
    entries = sorted(os.scandir(root), key=lambda e: e.name)
    classes = [e.name for e in entries if e.is_dir() and not e.name.startswith(".")]
    if not classes:
        loose = [e.name for e in entries if e.is_file() and e.name.lower().endswith(exts)]
        hint = (f"; it holds {len(loose)} image files directly (e.g. {loose[0]}): move each class's "
                "images into a subfolder named after the class") if loose else ""
        raise ValueError(f"image folder {root} has no class subfolders, expected one subfolder "
                         f"per class{hint}")
    if len(classes) < 2:
        raise ValueError(f"image folder {root} has {len(classes)} class subfolder ({classes[0]!r}), "
                         "expected at least 2 classes to classify")
    samples: List[Tuple[Path, int]] = []

    def unreadable(exc: OSError):  # os.walk skips unreadable folders silently by default
        where = exc.filename or root
        raise PermissionError(f"cannot list folder {where}: {exc.strerror or exc} (check its "
                              "permissions)") from None

    for label, name in enumerate(classes):
        files = sorted(
            Path(dirpath) / f
            for dirpath, dirnames, filenames in os.walk(root / name, onerror=unreadable)
            for f in filenames
            if f.lower().endswith(exts) and not f.startswith(".")
            and not any(part.startswith(".") for part in Path(dirpath).relative_to(root).parts))
        if not files:
            raise ValueError(f"class folder {root / name} holds no images with extensions "
                             f"{', '.join(exts)}")
        samples.extend((f, label) for f in files)
    return classes, samples


def _too_large(path: Path, exc: Exception) -> ValueError:
    """Pillow's decompression-bomb guard refused a huge image: say so plainly."""
    import re
    numbers = [int(n) for n in re.findall(r"\d+", str(exc))]
    detail = (f"{numbers[0]:,} pixels, more than the {numbers[1]:,} Pillow decodes" if len(numbers) >= 2
              else str(exc))
    return ValueError(f"image {path} is too large to read ({detail}: a guard against decompression bombs, "
                      "files that unpack into gigabytes); shrink it before using it")


def open_image(source):
    """``PIL.Image.open`` restricted to :data:`IMAGE_FORMATS`: every image cnnlab reads goes through
    here, so a PostScript file named ``seven.png`` is refused as "not an image", never interpreted.

    Raises:
        PIL.UnidentifiedImageError: not one of those formats (an ``OSError``).
    """
    from PIL import Image, UnidentifiedImageError
    # the readers of exactly these formats, registered here: Pillow then never loads its other plugins
    from PIL import (BmpImagePlugin, GifImagePlugin, JpegImagePlugin, PngImagePlugin,  # noqa: F401
                     PpmImagePlugin, TiffImagePlugin, WebPImagePlugin)
    try:
        return Image.open(source, formats=list(IMAGE_FORMATS))
    except UnidentifiedImageError:
        raise UnidentifiedImageError("not a PNG, JPEG, BMP, GIF, TIFF, WebP or PGM/PPM image (the formats "
                                     "cnnlab reads, whatever the file's name)") from None


def _regular_file(path: Path) -> Path:
    """Refuse a pipe, socket or device named like an image: reading one could block forever."""
    if path.exists() and not path.is_dir() and not path.is_file():
        raise ValueError(f"{path} is not a regular file (a pipe, socket or device), expected an image file")
    return path


#: colour modes Pillow converts to gray (L) and RGB, or that _to_8bit scales (LAB, HSV are not)
_CONVERTIBLE_MODES = {"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "I", "F",
                      "I;16", "I;16L", "I;16B", "I;16N"}


def _open(path: Path, warnings: Optional[list] = None):
    """The decoded image, turned upright by its EXIF orientation; of an animated image (GIF, WebP,
    PNG, TIFF pages) the first frame, said in ``warnings`` when a list is given."""
    from PIL import Image, ImageOps, UnidentifiedImageError
    _regular_file(Path(path))
    try:
        with _quiet_pillow(path), open_image(path) as image:
            frames = int(getattr(image, "n_frames", 1) or 1)
            image.load()
            image = ImageOps.exif_transpose(image)
    except Image.DecompressionBombError as exc:
        raise _too_large(path, exc) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ValueError(f"cannot read image {path}: {exc}") from exc
    if image.mode not in _CONVERTIBLE_MODES:
        raise ValueError(f"cannot read image {path}: its colour mode is {image.mode}, which cnnlab does not "
                         "convert to gray or RGB; save it as an RGB or grayscale image")
    if frames > 1 and warnings is not None:
        warnings.append(f"an animated image of {frames} frames: only the first frame is used")
    return image


@contextlib.contextmanager
def _quiet_pillow(path):
    """Pillow's warnings about a file (a damaged EXIF block, odd metadata) are harmless for reading its
    pixels; they would reach stderr as raw Python warnings, so they are silenced while it is read."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


def _header(path: Path) -> Tuple[Tuple[int, int], bool]:
    """``((H, W) as displayed, is_grayscale)`` from the file header, without decoding the pixels
    (palette images excepted)."""
    from PIL import Image, UnidentifiedImageError
    _regular_file(Path(path))
    try:
        with _quiet_pillow(path), open_image(path) as image:
            height, width = image.height, image.width
            try:
                orientation = image.getexif().get(0x0112, 1)
            except Exception:  # a broken EXIF block: ignore it, as the full read does
                orientation = 1
            if orientation in (5, 6, 7, 8):  # rotated by 90 degrees when displayed
                height, width = width, height
            gray = _is_gray(image)
    except Image.DecompressionBombError as exc:
        raise _too_large(path, exc) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ValueError(f"cannot read image {path}: {exc}") from exc
    return (height, width), gray


def _is_gray(image) -> bool:
    if image.mode in _GRAY_MODES:
        return True
    if image.mode == "P":  # palette image: gray when its palette colours are gray
        rgb = np.asarray(image.convert("RGB"))
        return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())
    return False


def _to_8bit(image, warnings: Optional[list] = None):
    """16-bit, 32-bit integer and float images as 8-bit gray (Pillow's own conversion clips them).

    Integers are scaled from 0..65535 (16-bit, or any value above 255) or 0..255; floats in
    [0, 1] from there.  NaN/inf pixels become 0, said in ``warnings`` when a list is given.
    """
    from PIL import Image
    if not (image.mode.startswith("I;16") or image.mode in ("I", "F")):
        return image
    array = np.asarray(image, dtype=np.float32)
    finite = np.isfinite(array)
    if not finite.all():
        if warnings is not None:
            warnings.append(f"{int((~finite).sum())} NaN/inf pixels read as 0")
        array = np.where(finite, array, np.float32(0))
    peak = float(array.max()) if array.size else 0.0
    top = (65535.0 if image.mode.startswith("I;16") or peak > 255 else
           1.0 if image.mode == "F" and peak <= 1.0 else 255.0)
    return Image.fromarray(np.clip(np.round(array / top * 255), 0, 255).astype(np.uint8))


def read_image(path, channels: int, size: Optional[Tuple[int, int]] = None,
               warnings: Optional[list] = None) -> np.ndarray:
    """Read one image file as float32 (C, H, W) in [0, 1].

    Args:
        path: the image file.
        channels: 1 (grayscale) or 3 (RGB).
        size: ``(H, W)`` to resize to, or ``None`` to keep the file's size.
        warnings: a list to which what was changed in reading is appended (e.g. an animated
            image reduced to its first frame).

    Shape:
        - output: (channels, H, W)
    """
    from PIL import Image
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    image = _to_8bit(_open(Path(path), warnings), warnings)
    target = "L" if channels == 1 else "RGB"
    if image.mode != target:
        image = image.convert(target)
    if size is not None and (image.height, image.width) != tuple(size):
        image = image.resize((int(size[1]), int(size[0])), Image.BILINEAR)
    array = np.asarray(image, dtype=np.uint8)
    if channels == 1:
        array = array[None]
    else:
        array = array.transpose(2, 0, 1)
    out = array.astype(np.float32)
    out /= np.float32(255.0)
    return out


def load_image_folder(root, size: Optional[Tuple[int, int]] = None, channels: Optional[int] = None,
                      val_fraction: float = 0.2, seed: int = 0,
                      extensions: Sequence[str] = IMAGE_EXTENSIONS) -> Tuple[ArrayDataset, ArrayDataset]:
    """Load a folder of images (one subfolder per class) and split it into train and validation.

    Args:
        root: the folder.
        size: ``(H, W)`` every image is resized to; an int means square.  By
            default, the most common size among the images (ties: the larger).
        channels: 1 (grayscale) or 3 (RGB); by default 1 when every image is
            grayscale, else 3.
        val_fraction: share of each class held out for validation, in [0, 1)
            (see :func:`~cnnlab.data.stratified_split`; 0 gives an empty
            validation set).
        seed: seed of the split.
        extensions: file name endings read as images (case-insensitive).

    Returns:
        ``(train, val)`` :class:`ArrayDataset` objects, both carrying the train
        part's per-channel mean/std; ``val`` may be empty.

    Shape:
        - images: (N, channels, H, W), float32 in [0, 1]
        - labels: (N,), int64

    Raises:
        FileNotFoundError: the folder does not exist.
        ValueError: no class subfolders, fewer than 2 classes, a class without
            images, an unreadable image (the message names its path), a bad
            ``size``/``channels``/``val_fraction``.
    """
    if channels is not None and channels not in (1, 3):
        raise ValueError(f"channels must be 1, 3 or None (auto-detect), got {channels!r}")
    if size is not None:
        if isinstance(size, (int, np.integer)):
            size = (int(size), int(size))
        size = tuple(int(s) for s in size)
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"size must be a positive (H, W) pair, got {size}")
    if not 0.0 <= float(val_fraction) < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    root = Path(root).expanduser()
    classes, samples = list_image_folder(root, extensions)

    # First pass: headers only (cheap), to pick the size and the channel count.
    if size is None or channels is None:
        sizes: Counter = Counter()
        all_gray = True
        for path, _ in samples:
            shape, gray = _header(path)
            sizes[shape] += 1
            all_gray = all_gray and gray
        if size is None:
            size = max(sizes.items(), key=lambda item: (item[1], item[0][0] * item[0][1], item[0]))[0]
        if channels is None:
            channels = 1 if all_gray else 3

    # the size budget, from the headers, before any image is decoded
    from .._schema import MAX_ACTIVATION_ELEMENTS, MAX_TENSOR_ELEMENTS, check_tensor_size
    where = f"image folder {root}"
    check_tensor_size((channels,) + tuple(size), f"{where}: one {size[0]}x{size[1]} image", MAX_ACTIVATION_ELEMENTS)
    check_tensor_size((len(samples), channels) + tuple(size), f"{where}: its {len(samples):,} images",
                      MAX_TENSOR_ELEMENTS)
    images = np.empty((len(samples), channels, size[0], size[1]), dtype=np.float32)
    animated = []
    for i, (path, _) in enumerate(samples):  # file decoding: one call per file
        notes: list = []
        images[i] = read_image(path, channels, size, notes)
        if any(note.startswith("an animated image") for note in notes):
            animated.append(path)
    labels = np.array([label for _, label in samples], dtype=np.int64)
    animated_note = ""
    if animated:  # said once for the folder, not once per file
        from .._text import printable
        animated_note = (f"{len(animated)} animated image{'s' if len(animated) > 1 else ''} (GIF, WebP, PNG or "
                         f"TIFF with several frames): only the first frame of each is used, e.g. "
                         f"{printable(str(animated[0]))}")
        print(f"cnnlab: note: image folder {printable(str(root))}: {animated_note}", file=sys.stderr)

    train_idx, val_idx = stratified_split(labels, val_fraction, seed)
    description = (f"image folder {root}: {len(samples)} images, {len(classes)} classes, "
                   f"{'grayscale' if channels == 1 else 'RGB'} resized to {size[0]}x{size[1]}"
                   + (f"; {animated_note}" if animated_note else ""))
    full = ArrayDataset(images, labels, classes, name=root.name or str(root), description=description,
                        extra={"root": str(root)})
    train = full.subset(train_idx, name=f"{full.name}-train").with_stats()
    val = full.subset(val_idx, name=f"{full.name}-val")
    val.mean, val.std = train.mean, train.std
    return train, val
