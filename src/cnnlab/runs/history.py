"""A run's ``history.csv``: one row per epoch (the columns in :data:`cnnlab._schema.HISTORY_COLUMNS`)."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict

__all__ = ["read_history"]


def read_history(path) -> Dict[str, list]:
    """``history.csv`` as columns: ``{"epoch": [1, 2], "train_loss": [0.5, 0.3], ...}`` (empty
    cells are None, numbers are floats, ``epoch`` ints).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a CSV with an ``epoch`` column, or a cell that is not a number.
    """
    import io
    import math
    from .._schema import MAX_RUN_FILE_BYTES, _read_text, check_history
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"history file {path} does not exist")
    try:
        rows = list(csv.reader(io.StringIO(_read_text(path, MAX_RUN_FILE_BYTES, "history file"), newline="")))
    except csv.Error as exc:
        raise ValueError(f"history file {path} is not a readable CSV file: {exc}") from None
    if not rows or "epoch" not in rows[0]:
        raise ValueError(f"{path} is not a training history: expected a CSV whose first line names the "
                         f"columns, including 'epoch'; got {rows[0] if rows else 'an empty file'}")
    header = rows[0]
    if len(set(header)) != len(header) or any(not name.strip() for name in header):
        raise ValueError(f"{path}: the header line must name each column once, got {header}")
    cols: Dict[str, list] = {name: [] for name in header}
    for line_no, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) > len(header):
            raise ValueError(f"{path}, line {line_no}: {len(row)} cells, but the header names {len(header)} "
                             "columns")
        for name, cell in zip(header, row + [""] * (len(header) - len(row))):
            if cell.strip() == "":
                cols[name].append(None)
                continue
            try:
                value = float(cell)
            except ValueError:
                raise ValueError(f"{path}, line {line_no}, column {name!r}: {cell!r} is not a number") from None
            if name == "epoch":
                if not math.isfinite(value) or value != int(value):
                    raise ValueError(f"{path}, line {line_no}, column 'epoch': {cell!r} is not a whole number")
                value = int(value)
            cols[name].append(value)
    return check_history(cols, path)
