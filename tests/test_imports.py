"""Importing the package and its errors, and ``synthgen --help``, stay light: no torch, pydicom or scikit-learn."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "pydicom", "sklearn", "sdmetrics", "PIL")


def _loaded_after(statement: str) -> list[str]:
    script = f"import sys, json; {statement}; print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


HELP = "from click.testing import CliRunner; from synthgen.cli.main import main; " + "; ".join(
    f"assert CliRunner().invoke(main, {args!r}).exit_code == 0"
    for args in (["--help"], ["fit", "--help"], ["sample", "--help"], ["evaluate", "--help"], ["augment", "--help"])
)


@pytest.mark.parametrize("statement", ["import synthgen", "import synthgen.errors", "from synthgen import __version__", HELP])
def test_importing_the_package_or_its_errors_loads_no_heavy_library(statement):
    assert _loaded_after(statement) == []


def test_public_names_resolve_on_first_use():
    assert _loaded_after("from synthgen import TabularSynthesizer") != []  # the lazy import really happens
    import synthgen

    assert synthgen.TabularSynthesizer.__module__ == "synthgen.synthesizers.tabular"
    assert set(synthgen.__all__) <= set(dir(synthgen))
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        synthgen.nothing  # noqa: B018


# --- the one-way flow ----------------------------------------------------------------------------

PACKAGE = Path(__file__).resolve().parent.parent / "synthgen"


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its ``__init__``)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _import_time_imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules ``path`` imports when it is imported: module level, outside ``if TYPE_CHECKING``
    (imports inside functions run later, so they cannot close a cycle at import time)."""
    imported = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If):  # TYPE_CHECKING blocks and the like
            continue
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names if alias.name in modules}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("synthgen"):
            for alias in node.names:  # ``from synthgen.images import io`` imports synthgen.images.io
                name = f"{node.module}.{alias.name}"
                imported.add(name if name in modules else node.module)
    return imported


def test_no_module_imports_the_public_api_and_there_are_no_import_cycles():
    modules = _modules()
    graph = {name: _import_time_imports(path, modules) for name, path in modules.items()}
    # The package __init__ is the users' API: our modules take the version from _version.py.
    assert sorted(name for name, imports in graph.items() if "synthgen" in imports and name != "synthgen.__main__") == []
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = "open"
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                raise AssertionError("import cycle: " + " -> ".join([*trail[trail.index(target):], target]))
            if target not in state:
                visit(target, [*trail, target])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_every_module_imports_in_a_fresh_interpreter():
    names = [name for name in _modules() if not name.endswith("__main__")]
    script = "import importlib\n" + "".join(f"importlib.import_module({name!r})\n" for name in names)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
