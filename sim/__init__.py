"""Hardware side of pdsim: hardware as data, the unit wings (`sim.units`), the engine, traces
and the CLI (`sim.cli`)."""

import os
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pdsim")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+source"


def _numba_cache_dir() -> str:
    """Where Numba keeps its compiled kernels when the user has not said (``NUMBA_CACHE_DIR``):
    the user's cache folder, never the installed package. Numba's default writes
    ``__pycache__`` folders beside the sources; inside ``site-packages`` those outlive a
    ``pip install .`` and shadow a later editable install as a namespace package."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pdsim", "numba")


# Read by numba when it is first imported, which every unit wing does after this package.
os.environ.setdefault("NUMBA_CACHE_DIR", _numba_cache_dir())
