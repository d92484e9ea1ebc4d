"""New images for a trained model, checked against what the model was trained on.

A model answers confidently whatever it is given, so :func:`read_model_input`
compares each image with the training data's statistics the run stored
(:func:`data_stats`, in ``model.json`` as ``"data_stats"``) and says what looks
different, instead of silently predicting garbage:

- background polarity: each image's border is compared with its mean.  MNIST has
  light strokes on a dark background (border darker than the mean); a photo of a
  digit on paper is the opposite.  The default is to warn and leave the pixels
  alone (a wrong automatic guess on a busy image would silently flip a good
  input); ``invert=True`` flips the image, ``invert=False`` keeps it as is and
  silences the warning.
- transparency: the image is composited onto the training data's background
  (black for MNIST; Pillow would otherwise drop the alpha channel).  When the
  content is in the alpha channel only (the one-colour strokes a browser canvas
  exports on a transparent background), the alpha channel is the drawing: it
  becomes strokes of the training data's polarity (light on black for MNIST).
- an almost empty (nearly uniform) image, content that is small or off-centre
  (MNIST digits fill and centre their frame), RGB converted to gray, and a
  non-square image stretched to a square input.
- ``center=True`` centres the content as the MNIST authors did: crop to the
  bounding box of the content, scale its long side to 20/28 of the input size,
  and place its centre of mass at the centre.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

__all__ = ["data_stats", "read_model_input", "center_content"]

_POLARITY_MARGIN = 0.03  # |mean - border mean| below this: no clear background


def _border(images: np.ndarray) -> np.ndarray:
    """Per-image mean of the one-pixel frame, ``images`` (N, C, H, W) -> (N,)."""
    top, bottom = images[:, :, 0, :], images[:, :, -1, :]
    left, right = images[:, :, 1:-1, 0], images[:, :, 1:-1, -1]
    total = top.sum(axis=(1, 2)) + bottom.sum(axis=(1, 2)) + left.sum(axis=(1, 2)) + right.sum(axis=(1, 2))
    count = top[0].size + bottom[0].size + left[0].size + right[0].size
    return total / count


def _polarity(border_mean: float, mean: float) -> Optional[str]:
    if mean - border_mean > _POLARITY_MARGIN:
        return "dark"  # background darker than the image: light content on a dark background
    if border_mean - mean > _POLARITY_MARGIN:
        return "light"
    return None


def data_stats(images: np.ndarray) -> dict:
    """What new inputs are compared with: ``{"background": "dark"|"light"|None, "border_mean",
    "mean", "std", "gray"}`` of float images (N, C, H, W) in [0, 1]."""
    images = np.asarray(images, dtype=np.float32)
    border = float(_border(images).mean())
    mean = float(images.mean())
    gray = images.shape[1] == 1 or bool(np.allclose(images[:, :1], images[:, 1:], atol=1 / 255))
    return {"background": _polarity(border, mean), "border_mean": round(border, 6), "mean": round(mean, 6),
            "std": round(float(images.std()), 6), "gray": gray}


def _fill_value(stats: Optional[dict]) -> int:
    """0-255 gray of the training background (black unless the data had a light one)."""
    return 255 if stats and stats.get("background") == "light" else 0


def center_content(image: np.ndarray, size: Tuple[int, int], background: float) -> Optional[np.ndarray]:
    """MNIST-style centring of ``image`` (C, h, w) in [0, 1] into ``size`` (H, W).

    The content (pixels that differ from ``background`` by more than a fifth of the
    largest difference) is cropped to its bounding box, scaled so that its long side
    is 20/28 of the shorter input side (aspect ratio kept, antialiased), and placed so
    that its centre of mass lies at the centre.  ``None`` when there is no content.
    """
    from PIL import Image
    weight = np.abs(image - background).mean(axis=0)
    if weight.max() < 0.05:
        return None
    rows = np.flatnonzero((weight > 0.2 * weight.max()).any(axis=1))
    cols = np.flatnonzero((weight > 0.2 * weight.max()).any(axis=0))
    crop = image[:, rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    H, W = size
    box = max(1, round(min(H, W) * 20 / 28))
    scale = box / max(crop.shape[1:])
    h, w = max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[2] * scale))
    scaled = np.stack([np.asarray(Image.fromarray(channel.astype(np.float32)).resize((w, h), Image.LANCZOS))
                       for channel in crop])  # one resize per channel (at most 3)
    scaled = np.clip(scaled, 0.0, 1.0)
    mass = np.abs(scaled - background).mean(axis=0)
    total = mass.sum()
    cy = (mass.sum(axis=1) @ np.arange(h)) / total if total > 0 else (h - 1) / 2
    cx = (mass.sum(axis=0) @ np.arange(w)) / total if total > 0 else (w - 1) / 2
    top = int(np.clip(round((H - 1) / 2 - cy), 0, H - h))
    left = int(np.clip(round((W - 1) / 2 - cx), 0, W - w))
    out = np.full((image.shape[0], H, W), background, dtype=np.float32)
    out[:, top:top + h, left:left + w] = scaled
    return out


#: the remedies the warnings suggest, in the words of ``cnnlab predict`` (its options) and of the
#: explorer's page (which has an 'invert' box and no centring)
HINTS = {
    "cli": {"center": "--center crops and centres it", "center_keeps": "--center keeps it",
            "no_content": "--center found no content to centre; the image was resized as it is",
            "invert": "--invert flips it (--no-invert keeps it and silences this warning)",
            "uninvert": "leave out --invert", "inverted": "after --invert, "},
    "page": {"center": "crop it around the content before uploading",
             "center_keeps": "crop it to the model's shape first",
             "no_content": "found no content to centre; the image was resized as it is",
             "invert": "tick 'invert' to flip it", "uninvert": "untick 'invert'", "inverted": "after 'invert', "},
}


def _placement_note(image: np.ndarray, background: float, hints: dict = HINTS["cli"]) -> Optional[str]:
    """A warning when the content is small or far from the centre (MNIST digits fill and centre
    their 28x28 frame), else None."""
    weight = np.abs(image - background).mean(axis=0)
    if weight.max() < 0.05 or min(image.shape[1:]) < 3 or float(np.ptp(image)) < 0.05:
        return None
    mask = weight > 0.2 * weight.max()
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    h, w = image.shape[1:]
    extent = max((rows[-1] - rows[0] + 1) / h, (cols[-1] - cols[0] + 1) / w)
    total = weight.sum()
    cy = (weight.sum(axis=1) @ np.arange(h)) / total / max(h - 1, 1)
    cx = (weight.sum(axis=0) @ np.arange(w)) / total / max(w - 1, 1)
    if extent < 0.4 or (extent < 0.8 and max(abs(cy - 0.5), abs(cx - 0.5)) > 0.2):  # room to move it
        return (f"the content is {'small' if extent < 0.4 else 'off-centre'} (it spans {extent:.0%} of the "
                f"image, centre of mass at {cx:.0%} across, {cy:.0%} down): {hints['center']}")
    return None


def _flatten_alpha(image, stats: Optional[dict], warnings: List[str]):
    """Drop transparency the way the training data would look (Pillow's convert would just drop
    the alpha channel, so a canvas export of black strokes on transparent becomes all black)."""
    from PIL import Image
    has_alpha = image.mode in ("RGBA", "LA", "La", "RGBa", "PA") or \
        (image.mode == "P" and "transparency" in image.info)
    if not has_alpha:
        return image
    rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
    alpha = rgba[..., 3]
    if alpha.min() == 1.0:
        return image.convert("RGB")
    fill = _fill_value(stats) / 255.0
    color_spread = float(rgba[..., :3][alpha > 0].std()) if (alpha > 0).any() else 0.0
    if color_spread < 0.02 and alpha.std() > 0.02:  # one colour drawn on a transparent canvas
        warnings.append("the content is in the alpha channel only (one colour drawn on a transparent "
                        f"background): drawn as {'dark' if fill else 'light'} strokes on "
                        f"{'white' if fill else 'black'}, like the training data")
        rgb = np.repeat((1.0 - alpha if fill else alpha)[..., None], 3, axis=2)
    else:
        known = ", the training data's background" if (stats or {}).get("background") else ""
        warnings.append(f"transparent pixels composited onto {'white' if fill else 'black'}{known}")
        rgb = rgba[..., :3] * alpha[..., None] + fill * (1.0 - alpha[..., None])
    return Image.fromarray(np.round(rgb * 255).astype(np.uint8))


def read_model_input(path, input_shape, stats: Optional[dict] = None, invert: Optional[bool] = None,
                     center: bool = False, hints: str = "cli") -> Tuple[np.ndarray, List[str]]:
    """One image file as the model's input (C, H, W) float32 in [0, 1], and the warnings about it.

    Args:
        path: the image file.
        input_shape: the model's ``(C, H, W)``.
        stats: the training data's :func:`data_stats` (``None``: an older run; fewer checks).
        invert: ``True`` flips gray levels (``1 - x``), ``False`` never does and does not warn about
            polarity, ``None`` (default) warns when the polarity differs from the training data's.
        center: MNIST-style centring (:func:`center_content`) instead of a plain resize.
        hints: ``"cli"`` (default) or ``"page"``: whether the warnings name ``cnnlab predict``'s
            options or the explorer page's controls as remedies (:data:`HINTS`).

    Raises:
        FileNotFoundError, IsADirectoryError, ValueError: the file is missing, a folder, or not an
            image Pillow can read (the message names the path).
    """
    from PIL import Image

    from .folder import _open, _to_8bit
    path = Path(path)
    c, H, W = (int(s) for s in input_shape)
    if c not in (1, 3):
        raise ValueError(f"the model takes {c}-channel images; image files give 1 (gray) or 3 (RGB) channels")
    if not path.exists():
        raise FileNotFoundError(f"image {path} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, expected an image file")
    if hints not in HINTS:
        raise ValueError(f"hints must be one of {', '.join(HINTS)}, got {hints!r}")
    remedy = HINTS[hints]
    warnings: List[str] = []
    image = _open(path, warnings)
    image = _to_8bit(image, warnings)
    image = _flatten_alpha(image, stats, warnings)
    if image.mode in ("1", "L"):
        source_gray = True
    else:
        rgb = np.asarray(image.convert("RGB"))
        source_gray = bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())
    if c == 1 and not source_gray:
        warnings.append("colour image converted to gray (the model takes gray images)")
    elif c == 3 and source_gray and stats and stats.get("gray") is False:
        warnings.append("a gray image, but the model was trained on colour images")
    image = image.convert("L" if c == 1 else "RGB")
    array = np.asarray(image, dtype=np.float32) / 255.0
    array = array[None] if c == 1 else array.transpose(2, 0, 1)
    if invert:
        array = 1.0 - array
    h, w = array.shape[1:]
    own = _polarity(float(_border(array[None])[0]), float(array.mean()))
    trained = (stats or {}).get("background")
    if not center and trained and own in (None, trained):  # (the other polarity is warned about below)
        note = _placement_note(array, _fill_value(stats) / 255.0, remedy)
        if note:
            warnings.append(note)
    if center:
        background = float(_fill_value(stats) / 255.0 if trained else _border(array[None])[0])
        centred = center_content(array, (H, W), background)
        if centred is None:
            warnings.append(remedy["no_content"])
        else:
            array = centred
    if array.shape[1:] != (H, W):
        shrink = max(array.shape[1] / H, array.shape[2] / W)
        if shrink >= 2:  # a 28x28 digit squeezed into an 8x8 model is not what it was trained on
            warnings.append(f"a {array.shape[2]}x{array.shape[1]} image shrunk to {W}x{H}, {shrink:.3g}x smaller "
                            f"(the model takes {W}x{H} images): fine detail is lost and the prediction may be "
                            "unreliable")
        if abs(h / w - H / W) > 0.05 * (H / W):
            warnings.append(f"a {w}x{h} image stretched to {W}x{H} (aspect ratio changed; {remedy['center_keeps']})")
        resized = [np.asarray(Image.fromarray(channel).resize((W, H), Image.BILINEAR))
                   for channel in array]
        array = np.clip(np.stack(resized), 0.0, 1.0)
    array = np.ascontiguousarray(array, dtype=np.float32)
    if float(array.max() - array.min()) < 0.05:
        warnings.append(f"the image is almost empty (nearly uniform, gray levels {array.min():.2f} to "
                        f"{array.max():.2f}): the prediction means little")
    elif invert is not False and trained and own and own != trained:
        looks = f"{'dark content on a light' if own == 'light' else 'light content on a dark'} background"
        hint = remedy["uninvert"] if invert else remedy["invert"]
        warnings.append(f"{remedy['inverted'] if invert else ''}{looks}, but the model was trained on "
                        f"{'light on dark' if trained == 'dark' else 'dark on light'} images: the prediction is "
                        f"likely wrong; {hint}")
    return array, warnings
