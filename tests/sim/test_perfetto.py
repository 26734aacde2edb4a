"""`pdsim show TRACE --perfetto OUT.json`: a HALO prefill's timeline as Chrome trace-event JSON
in which units visibly work at once; bad output paths refused before any work."""

import json
import os
import sys

import pytest

from sim import perfetto
from sim.cli.main import main
from sim.trace import read_trace


@pytest.fixture(scope="module")
def halo_trace(tmp_path_factory):
    """llama2-7b on halo-package: a 64-token prefill and one decode step."""
    path = tmp_path_factory.mktemp("halo") / "halo.h5"
    assert main(["run", "--hw", "halo-package", "--prompt", "64", "--gen", "2", "--out",
                 str(path)]) == 0
    return path


def _events(doc):
    return [e for e in doc["traceEvents"] if e["ph"] == "X"]


def test_halo_prefill_shows_units_overlapping(halo_trace, tmp_path, capsys):
    """Two prefill events on different tracks overlap in time: the cache write into the CiD
    stacks runs while attention runs on the host's arrays (`mappers.lower`, "Dataflow")."""
    out = tmp_path / "halo.json"
    assert main(["show", str(halo_trace), "--perfetto", str(out)]) == 0
    assert f"perfetto: {out}" in capsys.readouterr().out
    doc = json.loads(out.read_text())
    names = {(e["pid"], e["tid"]): e["args"]["name"] for e in doc["traceEvents"]
             if e["ph"] == "M" and e["name"] == "thread_name"}
    assert {"tensor", "vector", "cid", "cim", "cim_io"} <= set(names.values())
    prefill = sorted((e for e in _events(doc) if e["args"]["phase"] == "prefill"),
                     key=lambda e: e["ts"])
    overlaps = set()
    for i, a in enumerate(prefill):
        for b in prefill[i + 1:]:
            if b["ts"] >= a["ts"] + a["dur"]:
                break
            if b["tid"] != a["tid"] and min(a["ts"] + a["dur"], b["ts"] + b["dur"]) > b["ts"]:
                overlaps.add(frozenset((names[a["pid"], a["tid"]], names[b["pid"], b["tid"]])))
    assert frozenset({"cid", "tensor"}) in overlaps


def test_every_instance_is_one_event_at_start_plus_r_periods(halo_trace, tmp_path):
    """One event per op instance of the simulated steps (32 layers expanded), instance r at
    start + r x period, in microseconds."""
    trace = read_trace(halo_trace)
    doc = perfetto.trace_events(trace)
    events = _events(doc)
    assert len(events) == int(trace.ops["repeat"].sum())
    row = next(r for r in trace.ops if r["op"] == b"qkv_proj" and r["phase"] == b"prefill")
    qkv = [e for e in events if e["name"].startswith("qkv_proj L")
           and e["args"]["phase"] == "prefill"]
    assert [e["name"] for e in qkv] == [f"qkv_proj L{i}" for i in range(32)]
    for r, e in enumerate(qkv):
        assert e["ts"] == pytest.approx((row["start_s"] + r * row["period_s"]) * 1e6)
        assert e["dur"] == pytest.approx(row["time_s"] * 1e6)
    assert doc["otherData"]["repeats_capped_at"] is None


def test_repeats_and_events_are_capped(halo_trace, monkeypatch):
    trace = read_trace(halo_trace)
    monkeypatch.setattr(perfetto, "MAX_REPEATS", 2)
    doc = perfetto.trace_events(trace)
    assert doc["otherData"]["repeats_capped_at"] == 2
    assert max(int(e["name"].rpartition(" L")[2]) for e in _events(doc)
               if " L" in e["name"]) == 1
    monkeypatch.setattr(perfetto, "MAX_EVENTS", 10)
    doc = perfetto.trace_events(trace)
    assert len(_events(doc)) <= 10 and doc["otherData"]["truncated_at_events"] == 10


@pytest.mark.parametrize("target, message", [
    ("out.txt", "--perfetto: the output must be a .json file"),
    ("afile/out.json", "is not a folder"),
    ("adir.json", "is a folder"),
])
def test_bad_output_exits_2_before_work(tmp_path, capsys, target, message):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir.json").mkdir()
    before = set(os.listdir(tmp_path))
    # the trace does not exist either: the output is checked first
    with pytest.raises(SystemExit) as exc:
        sys.exit(main(["show", str(tmp_path / "missing.h5"), "--perfetto",
                       str(tmp_path / target)]))
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert set(os.listdir(tmp_path)) == before


def test_pipeline_stages_are_separate_chips(tmp_path):
    """h100 with two pipeline stages: the second stage's ops (after the send) are on chip 1,
    with a track per unit there too; the stages do not overlap (one batch in flight)."""
    h5, out = tmp_path / "pp.h5", tmp_path / "pp.json"
    assert main(["run", "--pp", "2", "--prompt", "32", "--gen", "1", "--out", str(h5)]) == 0
    assert main(["show", str(h5), "--perfetto", str(out)]) == 0
    doc = json.loads(out.read_text())
    procs = {e["pid"]: e["args"]["name"] for e in doc["traceEvents"]
             if e["ph"] == "M" and e["name"] == "process_name"}
    assert procs == {0: "chip 0 (pipeline stage 0)", 1: "chip 1 (pipeline stage 1)"}
    events = _events(doc)
    send = next(e for e in events if e["name"] == "pp_send")
    assert send["pid"] == 0
    assert {e["name"] for e in events if e["pid"] == 1} >= {"lm_head", "attn_norm L16"}
    assert min(e["ts"] for e in events if e["pid"] == 1) >= send["ts"] + send["dur"] - 1e-6
