"""The SCALE-Sim reference: a private virtual environment and a way to run cases through it.

SCALE-Sim 3.0.0 (PyPI ``scalesim``) crashes under numpy >= 2.3 ("only 0-dimensional arrays
can be converted to Python scalars") while pdsim's own environment has a newer numpy, so it
lives in a venv of its own.  ``scalesim_python()`` builds that venv once (under a file lock,
so parallel pytest processes do not race) and ``run_cases()`` pipes a JSON list of GEMM cases
to ``runner.py`` executed by the venv's python.  See README.md beside this file.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["REQUIREMENTS", "RUNNER", "run_cases", "scalesim_python", "venv_dir"]

#: What the venv gets from pip.  Changing it rebuilds the venv (the marker records it).
REQUIREMENTS: tuple[str, ...] = ("scalesim==3.0.0", "numpy>=2.2,<2.3")

RUNNER = Path(__file__).with_name("runner.py")
_MARKER = ".pdsim-scalesim-ready"
_PIP_TIMEOUT_S = 1800


def venv_dir() -> Path:
    """The venv folder: ``$PDSIM_SCALESIM_VENV`` or ``~/.cache/pdsim/scalesim-venv``."""
    raw = os.environ.get("PDSIM_SCALESIM_VENV") or "~/.cache/pdsim/scalesim-venv"
    return Path(raw).expanduser().absolute()


def _python_in(venv: Path) -> Path:
    return venv / "bin" / "python"


def _ready(venv: Path) -> bool:
    marker = venv / _MARKER
    try:
        recorded = marker.read_text().splitlines()
    except OSError:
        return False
    return recorded == list(REQUIREMENTS) and _python_in(venv).exists()


def _tail(text: str, n: int = 40) -> str:
    return "\n".join(text.rstrip().splitlines()[-n:])


def _run(cmd: list[str], what: str) -> None:
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S,
            stdin=subprocess.DEVNULL, check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or "") + (exc.stderr or "")
        if isinstance(out, bytes):
            out = out.decode(errors="replace")
        raise RuntimeError(f"{what} timed out after {_PIP_TIMEOUT_S}s:\n{_tail(out)}") from exc
    if proc.returncode != 0:
        raise RuntimeError(
            f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n"
            f"{_tail(proc.stdout + proc.stderr)}"
        )


def _build(venv: Path) -> None:
    if venv.exists():  # a half-built venv left by a killed process
        shutil.rmtree(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    _run([sys.executable, "-m", "venv", str(venv)], "creating the SCALE-Sim venv")
    py = str(_python_in(venv))
    _run(
        [py, "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
         *REQUIREMENTS],
        "pip install " + " ".join(REQUIREMENTS),
    )
    _run(
        [py, "-c", ("import numpy, scalesim.scale_sim; "
                    "assert numpy.__version__.startswith('2.2'), numpy.__version__")],
        "importing scalesim in the new venv",
    )
    (venv / _MARKER).write_text("\n".join(REQUIREMENTS) + "\n")  # written last: marks it whole


def scalesim_python() -> Path:
    """Path of a python that can ``import scalesim`` (3.0.0, numpy 2.2.x); builds it once.

    Raises RuntimeError with pip's last lines when the installation fails.
    """
    venv = venv_dir()
    if _ready(venv):
        return _python_in(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    lock_path = venv.parent / (venv.name + ".lock")
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it: wait for it
        try:
            if not _ready(venv):
                _build(venv)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return _python_in(venv)


def run_cases(cases: list[dict], timeout: float | None = None) -> list[dict]:
    """Run GEMM cases through SCALE-Sim; one result dict per case, in order.

    Each case: ``{"m", "n", "k", "rows", "cols", "dataflow": "os"|"ws"|"is"}`` and optionally
    ``"ifmap_kb", "filter_kb", "ofmap_kb"`` (SRAM sizes, KB) and ``"bandwidth"`` (words/cycle;
    switches SCALE-Sim to USER bandwidth mode).  Result keys: README.md beside this file.
    A case SCALE-Sim (or the runner's validation) rejects comes back as
    ``{"case": ..., "error": "..."}`` rather than raising; check for "error".
    Raises RuntimeError if the venv cannot be built or the runner itself fails.
    """
    py = scalesim_python()
    proc = subprocess.run(
        [str(py), str(RUNNER)],
        input=json.dumps(list(cases)),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"SCALE-Sim runner failed (exit {proc.returncode}):\n{_tail(proc.stderr)}"
        )
    try:
        results = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise RuntimeError(
            f"SCALE-Sim runner printed no JSON: {exc}\nstdout: {_tail(proc.stdout, 10)}\n"
            f"stderr: {_tail(proc.stderr)}"
        ) from exc
    if len(results) != len(cases):
        raise RuntimeError(f"SCALE-Sim runner gave {len(results)} results for {len(cases)} cases")
    return results
