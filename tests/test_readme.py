"""The README's example output is what `pdsim run` prints today.

Regenerate it with ``python tests/test_readme.py --update`` after a change to the default run.
"""

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"(`pdsim run` with no arguments prints[^\n]*\n\n```\n)(.*?)(```)", re.S)


def current_output(tmp: Path) -> str:
    import contextlib
    import io
    import os

    from sim.cli.main import main
    cwd = os.getcwd()
    os.chdir(tmp)
    try:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            assert main(["run"]) == 0
        return buf.getvalue()
    finally:
        os.chdir(cwd)


def test_readme_shows_the_default_run(tmp_path):
    shown = BLOCK.search(README.read_text()).group(2)
    assert shown == current_output(tmp_path), \
        "README example is stale: run python tests/test_readme.py --update"


if __name__ == "__main__" and sys.argv[1:] == ["--update"]:
    import tempfile
    sys.path[0] = str(README.parent)  # the repository, not tests/ (whose sim/ is the tests')
    with tempfile.TemporaryDirectory() as tmp:
        out = current_output(Path(tmp))
    README.write_text(BLOCK.sub(lambda m: m.group(1) + out + m.group(3), README.read_text()))
