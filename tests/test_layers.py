"""The package layering holds: the import-linter contracts in pyproject.toml (the compiler
imports no unit model, the unit wings are independent, the CLI is the top layer)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    run = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    # Every contract was checked, and none is broken.
    assert "0 broken" in run.stdout and " kept" in run.stdout, run.stdout
