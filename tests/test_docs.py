"""The README and the docs/ pages say what is true: links resolve, model files build, commands parse.

The README stays short (what cnnlab is, the two commands, a tour, links); each area has a page
under docs/.  Code the pages show is checked here: every `cnnlab ...` command line in a shell block
parses with the real argument parser (so a renamed or removed flag fails this test), every model
file in JSON/YAML builds, and every relative link and picture exists.  The Python quick start runs
in tests/test_readme.py.
"""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
EVERY_PAGE = [README, ROOT / "ARCHITECTURE.md", *PAGES]


def _blocks(text: str, languages) -> list:
    pattern = r"```(" + "|".join(languages) + r")\n(.*?)```"
    return [code for _, code in re.findall(pattern, text, flags=re.S)]


def test_readme_fits_a_sitting_and_starts_with_the_two_commands():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) < 200
    first = _blocks(text, ["bash"])[0].splitlines()
    assert first[0].startswith("pip install . && cnnlab train")
    assert first[1].startswith('pip install ".[test]" && python -m pytest -n 2')


def test_every_area_has_its_page():
    names = {p.stem for p in PAGES}
    for area in ("cli", "python", "pytorch", "model-files", "onnx", "explain", "explore", "mpi", "promises",
                 "benchmarks"):
        assert area in names, f"docs/{area}.md is missing"


@pytest.mark.parametrize("page", EVERY_PAGE, ids=lambda p: p.name)
def test_relative_links_and_pictures_exist(page):
    text = page.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        assert path.exists(), f"{page.name} links to {target}, which does not exist"


def _command_lines():
    for page in EVERY_PAGE:
        for block in _blocks(page.read_text(encoding="utf-8"), ["bash", "sh"]):
            for line in block.splitlines():
                line = " ".join(shlex.split(line, comments=True)) if "'" not in line else line.split(" #")[0].strip()
                for part in re.split(r"\s*&&\s*", line):
                    words = part.split()
                    if not words:
                        continue
                    if words[0] == "mpiexec":  # mpiexec -n 2 cnnlab ...
                        while words and words[0] != "cnnlab":
                            words = words[1:]
                    if words and words[0] == "cnnlab" and len(words) > 1:
                        yield page.name, part[part.index("cnnlab"):]


COMMANDS = sorted(set(_command_lines()))


def test_the_pages_show_commands():
    assert len(COMMANDS) >= 20


@pytest.mark.parametrize("page,line", COMMANDS, ids=[f"{p}:{c[:60]}" for p, c in COMMANDS])
def test_every_documented_command_parses(page, line):
    from cnnlab.cli import build_parser

    line = re.sub(r"\[([^\]]*)\]", r"\1", line)  # "[--json]": an optional part, shown parsed
    argv = shlex.split(line, comments=True)[1:]
    parser = build_parser()
    try:
        args, extras = parser.parse_known_args(argv)
    except SystemExit as exc:
        pytest.fail(f"{page}: `{line}` does not parse (exit {exc.code})")
    assert not extras, f"{page}: `{line}`: unknown arguments {extras}"


def _model_documents():
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for code in _blocks(text, ["json"]):
            if '"layers"' not in code:  # other JSON (fragments of config.json, ...)
                continue
            doc = json.loads(code)
            if isinstance(doc, dict) and "layers" in doc:
                yield page.name, "json", code
        for code in _blocks(text, ["yaml"]):
            if "layers:" in code:
                yield page.name, "yaml", code


MODEL_DOCUMENTS = list(_model_documents())


def test_model_files_page_shows_both_formats():
    kinds = {kind for page, kind, _ in MODEL_DOCUMENTS if page == "model-files.md"}
    assert kinds == {"json", "yaml"}


@pytest.mark.parametrize("page,kind,code", MODEL_DOCUMENTS, ids=[f"{p}-{k}-{i}" for i, (p, k, _) in
                                                                   enumerate(MODEL_DOCUMENTS)])
def test_documented_model_files_build_and_run(page, kind, code, tmp_path):
    import numpy as np

    import cnnlab
    from cnnlab.models import load_model_file

    path = tmp_path / f"model.{kind}"
    path.write_text(code, encoding="utf-8")
    model, spec = load_model_file(path)
    shape = tuple(spec["input_shape"])
    with cnnlab.no_grad():
        out = model(cnnlab.Tensor(np.zeros((2, *shape), np.float32)))
    assert out.shape[0] == 2
