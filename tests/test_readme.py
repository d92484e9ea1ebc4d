"""The Python quick start (docs/python.md, linked from the README) runs as written: a custom Module,
a DataLoader loop, save, load, predict."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np

PAGE = Path(__file__).resolve().parents[1] / "docs" / "python.md"


def _python_blocks(section: str):
    text = PAGE.read_text(encoding="utf-8")
    start = text.index(f"## {section}")
    end = text.find("\n## ", start + 3)
    end = len(text) if end < 0 else end
    return re.findall(r"```python\n(.*?)```", text[start:end], flags=re.S)


def test_readme_quick_start_trains_saves_and_predicts_in_a_new_process(tmp_path):
    from PIL import Image
    from cnnlab.data import load_digits_split

    train_code, load_code = _python_blocks("Your own model, in Python")
    _, test = load_digits_split()
    Image.fromarray((test.images[0, 0] * 255).astype(np.uint8)).save(tmp_path / "digit.png")
    first = subprocess.run([sys.executable, "-c", train_code], cwd=tmp_path, capture_output=True, text=True,
                           timeout=600)
    assert first.returncode == 0, first.stderr
    assert "(64, 10)" in first.stdout
    assert (tmp_path / "runs" / "mynet" / "model.json").is_file()
    second = subprocess.run([sys.executable, "-c", load_code.replace("print(", "probs = (") +
                             "\nassert abs(sum(probs.values()) - 1) < 1e-6 and len(probs) == 10\n"
                             "print(next(iter(probs)))"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() in [str(k) for k in range(10)]
