"""Each DP release mechanism's empirical ε lower bound next to its claim, from tests/dp/test_dp_audit.py.

    python benchmarks/dp_audit_table.py [TREE]

TREE (default: this checkout) is a synthgen source tree holding ``tests/dp/test_dp_audit.py`` (older trees:
``tests/test_dp_audit.py``); pointing it at a worktree of an older commit (with the test adapted to that
API) gives the "before" column. Each
audit runs the mechanism thousands of times on a table and on it plus one crafted row; the bound is
the test's Clopper-Pearson bound (99.9% per side, δ = 1e-2).
"""
from __future__ import annotations

import importlib
import inspect
import sys
import tempfile
from pathlib import Path

tree = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1])
sys.path[:0] = [str(tree), str(tree / "tests"), str(tree / "tests" / "dp")]
audits = importlib.import_module("test_dp_audit")
bounds: list[float] = []
claims: list[float] = []
measure, claim = audits.epsilon_lower_bound, audits.claimed_epsilon
audits.epsilon_lower_bound = lambda *a, **k: bounds.append(measure(*a, **k)) or bounds[-1]
audits.claimed_epsilon = lambda *a, **k: claims.append(claim(*a, **k)) or claims[-1]
print("| audit | empirical ε lower bound | claimed ε | verdict |\n|---|---|---|---|")
for name, test in inspect.getmembers(audits, inspect.isfunction):
    if not name.startswith("test_") or "bound_finds" in name:  # the last one checks the bound itself
        continue
    bounds.clear()
    claims.clear()
    try:
        test(Path(tempfile.mkdtemp())) if "tmp_path" in inspect.signature(test).parameters else test()
        verdict = "pass"
    except AssertionError:
        verdict = "VIOLATED"
    shown = (f"{bounds[0]:.2f}", f"{claims[0]:.2f}") if bounds and claims else ("–", "–")
    print(f"| {name.removeprefix('test_')} | {shown[0]} | {shown[1]} | {verdict} |", flush=True)
