"""HDF5 traces: round trip, consistency of the tables, atomic writes, identical bytes."""

import h5py
import numpy as np
import pytest

from mappers.models import load_model
from sim import trace as trace_mod
from sim.engine import STEP_FIELDS, Workload, simulate
from sim.errors import PdsimError
from sim.presets import load_hardware
from sim.trace import read_trace, write_trace

H100 = load_hardware("h100").system
LLAMA = load_model("llama2-7b").config
META = {"command_line": "pdsim run", "seed": 0}


@pytest.fixture(scope="module")
def result():
    return simulate(H100, LLAMA, Workload(batch=2, prompt_tokens=256, gen_tokens=8))


def test_round_trip(tmp_path, result):
    path = tmp_path / "t.h5"
    write_trace(path, result, META)
    t = read_trace(path)
    assert t.meta["command_line"] == "pdsim run" and t.meta["seed"] == 0
    assert t.summary["ttft_s"] == result.summary["ttft_s"]
    assert len(t.steps) == 8
    assert t.steps["phase"][0] == b"prefill" and set(t.steps["phase"][1:]) == {b"decode"}
    np.testing.assert_array_equal(t.steps["time_s"], [s.time_s for s in result.steps])


def test_op_rows_add_up_to_step_totals(tmp_path, result):
    path = tmp_path / "t.h5"
    write_trace(path, result, META)
    t = read_trace(path)
    for step in t.steps:
        rows = t.ops[t.ops["step"] == step["step"]]
        for field in STEP_FIELDS:
            assert int((rows["repeat"] * rows[field]).sum()) == step[field]
        busy = rows["repeat"] * rows["time_s"]
        # a prefill's cache writes (DMA) run beside attention: busy, but not on the step's path
        hidden = busy[rows["op"] == b"kv_write"].sum() if step["phase"] == b"prefill" else 0.0
        assert busy.sum() - hidden == pytest.approx(step["time_s"], rel=1e-12)
        # the last instance of the last op ends the step
        last = rows[np.argmax(rows["end_s"] + (rows["repeat"] - 1) * rows["period_s"])]
        assert last["end_s"] + (last["repeat"] - 1) * last["period_s"] == pytest.approx(
            step["end_s"], rel=1e-12)


def test_busy_fractions_are_unit_busy_time_over_phase_time(tmp_path, result):
    """``{phase}_busy_fraction_{unit}`` in the summary (and the trace): each unit's busy time
    from the op rows over the phase's time; H100 prefill's arrays and decode's link."""
    path = tmp_path / "t.h5"
    write_trace(path, result, META)
    t = read_trace(path)
    units = {u.decode() for u in t.ops["unit"]}
    assert units == {"tensor", "vector", "dma"}
    for phase in (b"prefill", b"decode"):
        steps = t.steps[t.steps["phase"] == phase]
        rows = t.ops[t.ops["phase"] == phase]
        for unit in units:
            busy = (rows["repeat"] * rows["time_s"])[rows["unit"] == unit.encode()].sum()
            got = t.summary[f"{phase.decode()}_busy_fraction_{unit}"]
            assert got == pytest.approx(busy / steps["time_s"].sum(), rel=1e-12)
            assert 0 < got <= 1
    assert t.summary["prefill_busy_fraction_tensor"] > 0.5


def test_same_run_same_bytes(tmp_path, result):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    write_trace(a, result, META)
    write_trace(b, result, META)
    assert a.read_bytes() == b.read_bytes()


def test_failed_write_leaves_nothing(tmp_path, result, monkeypatch):
    def boom(_):
        raise RuntimeError("disk full")
    monkeypatch.setattr(trace_mod, "op_table", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        write_trace(tmp_path / "t.h5", result, META)
    assert list(tmp_path.iterdir()) == []


def test_existing_trace_survives_failed_rewrite(tmp_path, result, monkeypatch):
    path = tmp_path / "t.h5"
    write_trace(path, result, META)
    before = path.read_bytes()
    monkeypatch.setattr(trace_mod, "op_table", lambda _: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        write_trace(path, result, META)
    assert path.read_bytes() == before and len(list(tmp_path.iterdir())) == 1


def test_reader_refuses_other_files(tmp_path):
    text = tmp_path / "x.h5"
    text.write_text("not hdf5")
    with pytest.raises(PdsimError, match="not an HDF5 file"):
        read_trace(text)
    other = tmp_path / "y.h5"
    with h5py.File(other, "w") as f:
        f["data"] = [1, 2]
    with pytest.raises(PdsimError, match="not a pdsim trace"):
        read_trace(other)
    with pytest.raises(PdsimError, match="no such file"):
        read_trace(tmp_path / "missing.h5")


def test_a_name_longer_than_its_column_is_refused_not_cut():
    """numpy cuts a text longer than a fixed-width column silently; the writer raises."""
    from sim.trace import OP_DTYPE, _table

    row = [0] * len(OP_DTYPE.names)
    row[OP_DTYPE.names.index("segment")] = "a_very_long_segment"
    row[OP_DTYPE.names.index("dims")] = (0,) * OP_DTYPE["dims"].shape[0]
    with pytest.raises(ValueError, match="'segment' holds 8 bytes"):
        _table([tuple(row)], OP_DTYPE)


@pytest.mark.parametrize("table", ["steps", "ops"])
def test_a_flipped_bit_in_a_table_is_refused(tmp_path, result, table):
    """Found by tests/fuzz: a bit flipped in the steps table was shown as other numbers (or
    ended in a UnicodeDecodeError in `pdsim show`); the tables' checksums refuse it. Every
    8th bit of the table's stored bytes is flipped in turn."""
    path = tmp_path / "t.h5"
    write_trace(path, result, META)
    with h5py.File(path) as f:
        chunk = f[table].id.get_chunk_info(0)
    data = path.read_bytes()
    for bit in range(0, 8 * chunk.size, 8 * 7 + 1):
        damaged = bytearray(data)
        damaged[chunk.byte_offset + bit // 8] ^= 1 << (bit % 8)
        path.write_bytes(bytes(damaged))
        with pytest.raises(PdsimError, match="not a pdsim trace"):
            read_trace(path)


@pytest.mark.parametrize("group, key, value", [
    ("summary", "ttft_s", -1.5), ("summary", "ttft_s", np.inf),
    ("summary", "decode_flops", np.array([1, 2])), ("meta", "seed", np.zeros((2, 2))),
    ("summary", "static_power_w_per_chip", "x"),
    ("meta", "tensor_parallel", -1)])
def test_an_attribute_no_run_writes_is_refused(tmp_path, result, group, key, value):
    """Found by tests/fuzz: a negative or infinite summary figure was shown as it was, an
    array attribute ended in "Circular reference detected" in `pdsim show --json`, a text
    summary figure in a TypeError in `pdsim show`."""
    path = tmp_path / "t.h5"
    write_trace(path, result, META | {"tensor_parallel": 1})
    with h5py.File(path, "r+") as f:
        f[group].attrs[key] = value
    with pytest.raises(PdsimError, match="not a pdsim trace"):
        read_trace(path)


def test_a_trace_lacking_part_of_a_summary_group_is_refused(tmp_path, result):
    """Found by tests/fuzz: a trace without `static_power_w_per_chip` but with the other
    system-energy keys ended in a KeyError in `pdsim show`."""
    path = tmp_path / "t.h5"
    write_trace(path, result, META)
    with h5py.File(path, "r+") as f:
        del f["summary"].attrs["static_power_w_per_chip"]
    with pytest.raises(PdsimError, match="static_power_w_per_chip missing"):
        read_trace(path)
