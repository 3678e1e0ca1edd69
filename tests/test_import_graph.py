"""The package's own import graph: imports point one way (DESIGN.md's layers), with no
cycle, and none is hidden inside a function where a cycle would not show at import time."""

import ast
import os

import rnnkit

PKG_DIR = os.path.dirname(os.path.abspath(rnnkit.__file__))
# Applications inside the package (REVIEW-architecture §4.6) import lazily for start-up time.
LAZY_ALLOWED = {"rnnkit.__main__", "rnnkit.demo"}


def _modules():
    """{dotted name: path} of every Python module of the package."""
    out = {}
    for dirpath, _, files in os.walk(PKG_DIR):
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(dirpath, f), os.path.dirname(PKG_DIR))
                parts = rel[:-3].split(os.sep)
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                out[".".join(parts)] = os.path.join(dirpath, f)
    return out


MODULES = _modules()
SUBMODULES = set(MODULES) | {"rnnkit._core"}  # the compiled module


def _is_type_checking(node):
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(path, module):
    """(top-level imports, imports inside functions or classes) as (lineno, target) lists;
    targets are rnnkit module names. `if TYPE_CHECKING:` blocks are never executed: skipped."""
    is_pkg = path.endswith("__init__.py")
    base = module.split(".") if is_pkg else module.split(".")[:-1]

    def targets(node):
        if isinstance(node, ast.Import):
            return [a.name for a in node.names if a.name.split(".")[0] == "rnnkit"]
        if node.level:
            src = ".".join(base[:len(base) - node.level + 1] + ([node.module] if node.module
                                                                 else []))
        else:
            src = node.module or ""
        if src.split(".")[0] != "rnnkit":
            return []
        out = []
        for a in node.names:  # `from pkg import sub` imports the submodule pkg.sub
            sub = f"{src}.{a.name}"
            out.append(sub if sub in SUBMODULES else src)
        return out

    top, nested = [], []

    def visit(nodes, inside):
        for node in nodes:
            if _is_type_checking(node):
                continue
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                (nested if inside else top).extend((node.lineno, t) for t in targets(node))
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                visit(node.body, True)
            else:
                for field in ("body", "orelse", "finalbody", "handlers"):
                    visit(getattr(node, field, []) or [], inside)

    with open(path, encoding="utf-8") as f:
        visit(ast.parse(f.read()).body, False)
    return top, nested


def _graph():
    graph = {}
    for module, path in MODULES.items():
        top, _ = _imports(path, module)
        graph[module] = {t for _, t in top if t != module}
    return graph


def test_no_rnnkit_import_is_hidden_in_a_function():
    hidden = []
    for module, path in sorted(MODULES.items()):
        if module in LAZY_ALLOWED:
            continue
        _, nested = _imports(path, module)
        hidden += [f"{module}:{line} imports {t}" for line, t in nested]
    assert not hidden, "imports inside functions hide import cycles:\n" + "\n".join(hidden)


def test_module_import_graph_has_no_cycle():
    graph = _graph()
    state, stack = {}, []

    def dfs(m):
        state[m] = "open"
        stack.append(m)
        for t in sorted(graph.get(m, ())):
            if state.get(t) == "open":
                cycle = stack[stack.index(t):] + [t]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if t not in state:
                dfs(t)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            dfs(m)


def _reachable(graph, start):
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        for t in graph.get(m, ()):
            if t not in seen:
                seen.add(t)
                todo.append(t)
    return seen


def test_io_knows_no_trainer_and_train_imports_io_at_top_level():
    graph = _graph()
    assert not any(t.startswith("rnnkit.train") for t in _reachable(graph, "rnnkit.io"))
    assert "rnnkit.io" in _reachable(graph, "rnnkit.train")


def test_lower_layers_never_import_higher_ones():
    # DESIGN.md: train > optim > nn > losses > ops > _core; io sits between optim and train.
    graph = _graph()
    below = {"rnnkit.io": ("rnnkit.train",), "rnnkit.optim": ("rnnkit.train", "rnnkit.io"),
             "rnnkit.nn": ("rnnkit.train", "rnnkit.io", "rnnkit.optim"),
             "rnnkit.losses": ("rnnkit.train", "rnnkit.io", "rnnkit.optim", "rnnkit.nn"),
             "rnnkit.ops": ("rnnkit.train", "rnnkit.io", "rnnkit.optim", "rnnkit.nn",
                            "rnnkit.losses")}
    for low, highs in below.items():
        for m in (m for m in graph if m == low or m.startswith(low + ".")):
            for t in _reachable(graph, m):
                assert not any(t == h or t.startswith(h + ".") for h in highs), \
                    f"{m} reaches {t}"
