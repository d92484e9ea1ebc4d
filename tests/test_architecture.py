"""The package's imports run one way: down the layers of ARCHITECTURE.md, and in no circle.

Every ``import`` and ``from ... import`` in ``src/cnnlab`` is read with ``ast`` (those inside
functions too: a lazy import is still a dependency).  Each module belongs to the layer whose prefix
names it; a module may import its own layer and the layers below, never a layer above.  Files must
not import each other in a circle, except the pairs listed in ``DELIBERATE_CIRCLES`` (each with the
reason).  The layer table here and the one in ARCHITECTURE.md are the same (a test checks that).
"""
from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = SRC / "cnnlab"

# lowest first; a module's layer is the one with the longest matching prefix
LAYERS = [
    ("base", ["cnnlab._files", "cnnlab._memory", "cnnlab._schema", "cnnlab._text", "cnnlab.threads",
              "cnnlab.random", "cnnlab.distributed", "cnnlab._device", "cnnlab.preprocessing"]),
    ("tensor", ["cnnlab.tensor", "cnnlab.creation", "cnnlab._reductions", "cnnlab._tensor_methods",
                "cnnlab.autograd"]),
    ("functional", ["cnnlab.functional"]),
    ("nn", ["cnnlab.nn", "cnnlab.optim", "cnnlab.filters", "cnnlab.serialization", "cnnlab"]),
    ("data", ["cnnlab.data", "cnnlab.utils", "cnnlab.vision", "cnnlab.models"]),
    ("runs", ["cnnlab.runs"]),
    ("train", ["cnnlab.train", "cnnlab.onnx", "cnnlab.finetune"]),
    ("io", ["cnnlab.io"]),
    ("explain", ["cnnlab.explain"]),
    ("explore", ["cnnlab.explore"]),
    ("cli", ["cnnlab.cli", "cnnlab.__main__"]),
]
RANK = {name: i for i, (name, _) in enumerate(LAYERS)}

# file pairs that import each other on purpose (lazily, inside a function), with the reason
DELIBERATE_CIRCLES: dict = {}


def _module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def layer_of(module: str) -> str:
    best, best_len = None, -1
    for name, prefixes in LAYERS:
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = name, len(prefix)
    assert best is not None, f"{module} is in no layer of tests/test_architecture.py"
    return best


def _imports(module: str, path: Path, modules):
    """(imported module, line) for every import of a cnnlab module in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "cnnlab":
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "cnnlab":
                continue
            for alias in node.names:  # `from . import nn`: the submodule itself
                sub = f"{target}.{alias.name}"
                yield (sub if sub in modules else target), node.lineno


def _graph(modules):
    edges = defaultdict(dict)
    for module, path in modules.items():
        for target, line in _imports(module, path, modules):
            while target not in modules and "." in target:
                target = target.rpartition(".")[0]
            if target != module:
                edges[module].setdefault(target, line)
    return edges


def upward_imports(modules=MODULES):
    found = []
    for module, targets in _graph(modules).items():
        for target, line in targets.items():
            if module == "cnnlab" or module.endswith("__main__"):
                continue  # the facade's lazy submodules (cnnlab.io, cnnlab.train, ...) load on attribute access
            if RANK[layer_of(target)] > RANK[layer_of(module)]:
                found.append(f"{modules[module].name}:{line}: {module} ({layer_of(module)}) "
                             f"imports {target} ({layer_of(target)})")
    return sorted(found)


def circles(modules=MODULES):
    """Strongly connected components of more than one file (Tarjan)."""
    graph = _graph(modules)
    index, low, stack, on_stack, result = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    for v in sorted(modules):
        if v not in index:
            visit(v)
    return result


def test_every_module_has_a_layer():
    for module in MODULES:
        layer_of(module)


def test_no_import_runs_up_the_layers():
    found = upward_imports()
    assert not found, "imports that run up the layers:\n" + "\n".join(found)


def test_no_import_circles_beyond_the_deliberate_pairs():
    # a package's __init__ re-exporting its own submodules is not a circle of files worth naming
    found = []
    for component in circles():
        files = [m for m in component]
        if len(files) == 2 and frozenset(files) in DELIBERATE_CIRCLES:
            continue
        found.append(" <-> ".join(files))
    assert not found, "import circles:\n" + "\n".join(found)


def test_architecture_page_lists_the_same_layers():
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    table = re.findall(r"^\| `([a-z]+)` \|", text, flags=re.M)
    assert table == [name for name, _ in reversed(LAYERS)]


def test_the_checker_sees_an_upward_import(tmp_path):
    """A test that cannot fail is a defect: an upward import written into a low module is caught."""
    fake = tmp_path / "cnnlab"
    (fake / "functional").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "functional" / "__init__.py").write_text("from ..train import fit\n")
    (fake / "train.py").write_text("from .functional import conv2d\n")
    modules = {_module_name(p, tmp_path): p for p in fake.rglob("*.py")}
    assert any("cnnlab.functional (functional) imports cnnlab.train" in line for line in upward_imports(modules))
    assert ["cnnlab.functional", "cnnlab.train"] in circles(modules)


# --- functions a reader can hold in mind ---------------------------------------------------------
MAX_FUNCTION_LINES = 80
SHORT_FUNCTION_PACKAGES = ("train", "cli", "explain")


def _code_lines(node) -> int:
    """Lines of a function without its docstring."""
    lines = node.end_lineno - node.lineno + 1
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
            and isinstance(body[0].value.value, str):
        lines -= body[0].end_lineno - body[0].lineno + 1
    return lines


def long_functions(packages=SHORT_FUNCTION_PACKAGES, limit: int = MAX_FUNCTION_LINES):
    found = []
    for package in packages:
        for path in sorted((PACKAGE / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _code_lines(node) > limit:
                    found.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name}: {_code_lines(node)} lines")
    return found


def test_functions_of_train_cli_and_explain_fit_a_screen():
    found = long_functions()
    assert not found, f"functions over {MAX_FUNCTION_LINES} lines (docstring excluded):\n" + "\n".join(found)


def test_fit_is_a_short_loop():
    import inspect

    from cnnlab.train import fit
    tree = ast.parse(inspect.getsource(inspect.unwrap(fit)).lstrip())
    assert _code_lines(tree.body[0]) <= 60


def test_the_package_ships_no_test_harness():
    """Starting servers and browsers is test support (tests/_browser.py), not library code."""
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "playwright" not in text.lower(), f"{path.relative_to(SRC)} drives a browser"
