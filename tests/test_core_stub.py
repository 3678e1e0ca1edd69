"""python/rnnkit/_core.pyi names exactly what the compiled module binds (and every cell of the
registry has its generated functions there)."""
import ast
import os

import rnnkit
from rnnkit._cellspec import CELLS

STUB = os.path.join(os.path.dirname(rnnkit.__file__), "_core.pyi")


def _stub_names():
    with open(STUB) as f:
        tree = ast.parse(f.read())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return {n for n in names if n not in ("Array", "States", "_cell_forward", "_cell_backward",
                                          "_CellStep")}


def test_stub_matches_the_module():
    bound = {n for n in dir(rnnkit._core) if not n.startswith("__")}
    stub = _stub_names()
    assert stub - bound == set(), f"in the stub but not bound: {sorted(stub - bound)}"
    assert bound - stub == set(), f"bound but missing from the stub: {sorted(bound - stub)}"


def test_every_cell_has_its_bindings():
    for name, spec in CELLS.items():
        assert spec.forward is getattr(rnnkit._core, name + "_forward")
        assert spec.backward is getattr(rnnkit._core, name + "_backward")
        assert spec.step is getattr(rnnkit._core, name + "_step")
