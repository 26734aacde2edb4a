"""Fuzz the hardware files: every shipped system, DRAM and CiM preset, mutated
(`tests.fuzz.mutate`: a key deleted, a value out of range or of the wrong type, a duplicated
key, non-UTF-8 bytes, another encoding, a cut), then loaded by ``pdsim describe`` and used by
``pdsim run``, ``gemm --hw``, ``cid`` and ``cim``.

Property: `tests.fuzz.harness.check`.
"""

from __future__ import annotations

import tempfile
from importlib import resources
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz.harness import FUZZ, budget, check, invoke
from tests.fuzz.mutate import mutated

PRESETS = resources.files("sim") / "presets"
SYSTEMS = {p.name: p.read_text() for p in sorted(PRESETS.iterdir()) if p.name.endswith(".yaml")}
DRAMS = {p.name: p.read_text() for p in sorted((PRESETS / "dram").iterdir())}
CIMS = {p.name: p.read_text() for p in sorted((PRESETS / "cim").iterdir())}

#: A small run: a few milliseconds on any valid system.
RUN = ["--model", "llama2-7b", "--prompt", "16", "--gen", "3", "--decode-sample", "2",
       "--json", "-o", "out/t.h5"]
RUN_OUTPUTS = frozenset({"out", "out/t.h5"})


def _system_with(name: str, field: str, path: str) -> str:
    """System preset ``name`` with its ``field`` (``dram`` or ``unit``) pointing at ``path``."""
    lines = SYSTEMS[name].splitlines()
    return "\n".join(f"{line.split(':')[0]}: {path}" if line.strip().startswith(f"{field}:")
                     else line for line in lines) + "\n"


def _run_all(folder: Path, hw: str, detail: str) -> None:
    check(invoke(["describe", hw, "--json"], folder))
    check(invoke(["run", "--hw", hw, "--detail", detail, *RUN], folder), outputs=RUN_OUTPUTS)
    check(invoke(["gemm", "--hw", hw, "--m", "24", "--n", "40", "--k", "16", "--json"],
                 folder))


@st.composite
def system_files(draw):
    name = draw(st.sampled_from(sorted(SYSTEMS)))
    return draw(mutated(SYSTEMS[name]))


@settings(FUZZ, max_examples=budget(120))
@given(data=system_files(), detail=st.sampled_from(("roofline", "roofline", "tile")))
def test_system_files(data, detail):
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "hw.yaml").write_bytes(data)
        _run_all(Path(folder), "hw.yaml", detail)


@settings(FUZZ, max_examples=budget(70))
@given(dram=st.sampled_from(sorted(DRAMS)).flatmap(lambda n: mutated(DRAMS[n])),
       system=st.sampled_from(("halo-package", "cent", "attacc")),
       op=st.sampled_from(("gemv", "attention", "kv-append")))
def test_dram_files(dram, system, op):
    """A DRAM file on its own (``pdsim cid --hw``) and named by a system's CiD unit."""
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        (folder / "dram.yaml").write_bytes(dram)
        (folder / "hw.yaml").write_text(_system_with(f"{system}.yaml", "dram", "dram.yaml"))
        check(invoke(["cid", "--hw", "dram.yaml", "--op", op, "--rows", "64", "--cols", "64",
                      "--context", "64", "--json"], folder))
        check(invoke(["cid", "--hw", "hw.yaml", "--op", op, "--rows", "64", "--cols", "64",
                      "--context", "64", "--json"], folder))
        _run_all(folder, "hw.yaml", "roofline")


@settings(FUZZ, max_examples=budget(45))
@given(cim=st.sampled_from(sorted(CIMS)).flatmap(lambda n: mutated(CIMS[n])),
       mapping=st.sampled_from(("phase-aware", "all-cim")))
def test_cim_files(cim, mapping):
    """A CiM file on its own (``pdsim cim --hw``) and named by the HALO package's CiM slot,
    under a mapping that uses the CiM in prefill only or in both phases."""
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        (folder / "cim.yaml").write_bytes(cim)
        text = _system_with("halo-package.yaml", "unit", "cim.yaml")
        assert "\nmapping: phase-aware " in text
        text = text.replace("\nmapping: phase-aware ", f"\nmapping: {mapping} ")
        (folder / "hw.yaml").write_text(text)
        check(invoke(["cim", "--hw", "cim.yaml", "--m", "4", "--n", "64", "--k", "96",
                      "--json"], folder))
        _run_all(folder, "hw.yaml", "roofline")
