"""Importing the package and its errors, and ``synthgen --help``, stay light: no torch, pydicom or scikit-learn."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "pydicom", "sklearn", "sdmetrics", "PIL")


def _loaded_after(statement: str) -> list[str]:
    script = f"import sys, json; {statement}; print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


HELP = "from click.testing import CliRunner; from synthgen.cli import main; " + "; ".join(
    f"assert CliRunner().invoke(main, {args!r}).exit_code == 0"
    for args in (["--help"], ["fit", "--help"], ["sample", "--help"], ["evaluate", "--help"], ["augment", "--help"])
)


@pytest.mark.parametrize("statement", ["import synthgen", "import synthgen.errors", "from synthgen import __version__", HELP])
def test_importing_the_package_or_its_errors_loads_no_heavy_library(statement):
    assert _loaded_after(statement) == []


def test_public_names_resolve_on_first_use():
    assert _loaded_after("from synthgen import TabularSynthesizer") != []  # the lazy import really happens
    import synthgen

    assert synthgen.TabularSynthesizer.__module__ == "synthgen.synthesizer"
    assert set(synthgen.__all__) <= set(dir(synthgen))
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        synthgen.nothing  # noqa: B018
