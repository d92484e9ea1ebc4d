"""The Python quick start (docs/python.md, linked from the README) runs as written: a custom Module,
a DataLoader loop, save, load, predict."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGE = ROOT / "docs" / "python.md"


def _python_blocks(section: str):
    text = PAGE.read_text(encoding="utf-8")
    start = text.index(f"## {section}")
    end = text.find("\n## ", start + 3)
    end = len(text) if end < 0 else end
    return re.findall(r"```python\n(.*?)```", text[start:end], flags=re.S)


def test_readme_quick_start_trains_saves_and_predicts_in_a_new_process(tmp_path):
    import shutil
    train_code, load_code = _python_blocks("Your own model, in Python")
    (tmp_path / "docs" / "inputs").mkdir(parents=True)
    shutil.copy(README.parent / "docs" / "inputs" / "seven.png", tmp_path / "docs" / "inputs" / "seven.png")
    first = subprocess.run([sys.executable, "-c", train_code], cwd=tmp_path, capture_output=True, text=True,
                           timeout=600)
    assert first.returncode == 0, first.stderr
    assert "(64, 10)" in first.stdout
    assert re.search(r"epoch 5: loss \d\.\d{3}, test accuracy \d+\.\d\d%", first.stdout), first.stdout
    assert (tmp_path / "runs" / "mynet" / "model.json").is_file()
    second = subprocess.run([sys.executable, "-c", load_code.replace("print(", "probs = (") +
                             "\nassert abs(sum(probs.values()) - 1) < 1e-6 and len(probs) == 10\n"
                             "print(repr(probs))"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    printed = ast.literal_eval(second.stdout.strip())
    # the comment in the README is what it prints (top three, to 2 decimals; BLAS may round differently)
    shown = re.search(r"predict_image\(.*\)\)\s+# (\{.*?), \.\.\.\}", load_code).group(1) + "}"
    commented = ast.literal_eval(shown)
    assert list(printed)[:len(commented)] == list(commented)
    for label, value in commented.items():
        assert abs(printed[label] - value) <= 0.03, (label, printed[label], value)
    assert "shrunk to 8x8" in second.stderr  # the 28x28 image squeezed into an 8x8 model warns


def test_readme_images_exist_and_no_sentence_is_orphaned():
    text = "\n".join(p.read_text(encoding="utf-8") for p in [README, *sorted((ROOT / "docs").glob("*.md"))])
    root = ROOT
    used = re.findall(r"cnnlab (?:predict|explain features|explain saliency) \S+ (\S+\.png)", text)
    used += re.findall(r"predict_image\(\"([^\"]+)\"\)", text)
    assert used
    for name in used:
        assert (root / name).is_file(), f"the README uses {name}, which the project does not ship"
    # a sentence ending in ':' must lead into something, not straight into the next heading
    assert not re.search(r":\n\n## ", text), re.search(r".*:\n\n## .*", text).group(0)
