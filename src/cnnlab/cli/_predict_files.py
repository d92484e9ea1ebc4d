"""`cnnlab predict` over many files: folders as input, chunks split over MPI ranks, one CSV.

The files are cut into chunks of ``batch_size`` in input order; under MPI each
rank reads and predicts a contiguous run of whole chunks, and rank 0 gathers
the results in input order.  A chunk is always predicted as one batch, so one
process and N ranks compute every image identically and write the same CSV.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

__all__ = ["CSV_COLUMNS", "Predictions", "expand_inputs", "predict_files", "write_csv"]

#: the columns of ``cnnlab predict --output FILE.csv``
CSV_COLUMNS = ("file", "class", "probability", "warnings")


@dataclass
class Predictions:
    """What :func:`predict_files` gathers: per file, the probabilities, notes and read error."""

    paths: List[str]
    probabilities: np.ndarray            # (N, K); rows of unreadable files are NaN
    warnings: List[List[str]]
    errors: List[Optional[BaseException]]


def expand_inputs(items: Sequence[str]) -> List[str]:
    """Files as given; a folder becomes its image files (all subfolders, sorted by path)."""
    from ..data.folder import IMAGE_EXTENSIONS
    paths: List[str] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(str(f) for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                raise ValueError(f"folder {p} holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
            paths.extend(found)
        else:
            paths.append(str(item))
    return paths


def _predict_chunk(saved, paths: Sequence[str], invert: Optional[bool], center: bool = False):
    from ..data.inputs import read_model_input
    from ..train import predict
    c, h, w = saved.input_shape
    stats = saved.info.get("data_stats") if isinstance(saved.info.get("data_stats"), dict) else None
    images = np.empty((len(paths), c, h, w), dtype=np.float32)
    notes, errors, ok = [], [], []
    for i, path in enumerate(paths):  # one file decode per image; the training data's statistics warn
        try:
            images[i], warnings = read_model_input(path, saved.input_shape, stats, invert, center)
            notes.append(list(warnings))
            errors.append(None)
            ok.append(i)
        except (OSError, ValueError) as exc:  # reported per file; the others are predicted
            notes.append([])
            errors.append(exc)
    probs = np.full((len(paths), len(saved.classes)), np.nan, dtype=np.float32)
    if ok:
        out = predict(saved, images[ok], batch_size=len(ok))  # the model's own preprocessing
        probs = np.full((len(paths), out.shape[1]), np.nan, dtype=out.dtype)
        probs[ok] = out
    return probs, notes, errors


def predict_files(saved, paths: Sequence[str], invert: Optional[bool] = None, batch_size: int = 256,
                  group=None, center: bool = False) -> Optional[Predictions]:
    """Predict every file, split over ``group``'s ranks; the whole table on rank 0, ``None`` elsewhere."""
    from ..distributed import batch_share
    if saved.input_shape[0] not in (1, 3):
        raise ValueError(f"the model takes {saved.input_shape[0]}-channel images; image files give 1 (gray) "
                         "or 3 (RGB) channels")
    n = len(paths)
    chunks = math.ceil(n / batch_size)
    first, last = batch_share(chunks, group.rank, group.size) if group is not None else (0, chunks)
    parts = [_predict_chunk(saved, paths[k * batch_size:(k + 1) * batch_size], invert, center)
             for k in range(first, last)]
    if group is not None:
        gathered = group.gather(parts)
        if not group.is_root:
            return None
        parts = [part for rank_parts in gathered for part in rank_parts]
    if not parts:
        return Predictions(list(paths), np.zeros((0, len(saved.classes)), np.float32), [], [])
    return Predictions(list(paths), np.concatenate([p[0] for p in parts]),
                       [w for p in parts for w in p[1]], [e for p in parts for e in p[2]])


def write_csv(path, table: Predictions, classes: Sequence[str]) -> None:
    """``file,class,probability,warnings``: the top class per file, in input order (atomic write)."""
    from .._files import atomic_open
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for file, row, notes, error in zip(table.paths, table.probabilities, table.warnings, table.errors):
        if error is not None:
            writer.writerow([file, "", "", "; ".join([" ".join(str(error).split()), *notes])])
            continue
        k = int(np.argmax(row))
        writer.writerow([file, classes[k] if k < len(classes) else str(k), f"{float(row[k]):.6f}",
                         "; ".join(notes)])
    with atomic_open(path) as (f, _):
        f.write(out.getvalue().encode("utf-8"))
