"""Run GEMVs through the CiD engine and replay its command streams into the near-bank RTL.

`prepare` takes each case (a GEMV, a GEMM as several GEMVs, or an attention score / value
product) through `sim.units.cid.layout.gemv_layout` and the engine (`run_channel`, stream
recorded, one pseudo-channel: all PCs run the same program), translates the stream into every
unit's commands (`sim.units.cid.nearbank_model.unit_program`) and lays the weights into each
unit's bank. `run` builds the unit's Verilog once (cached like `testbenches.runner.build`),
replays every job of every case in ONE simulator launch, and checks (the Checker):

* every RDRES beat equals the model's (`UnitModel`) and the reduced ``y`` equals the exact
  product (`expected_gemv`), bit for bit;
* the RTL accepted every command at the engine's cycle (no refusal), the bank saw no timing
  violation, no MAC without an open row, and every result left the unit no later than the
  engine's data cycle for its RDRES (``t + tCL + tBL``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sim.files import atomic_text
from sim.units.cid.dram import DramDevice
from sim.units.cid.engine import run_channel
from sim.units.cid.nearbank_model import (OPS, WDTYPES, NearBankConfig, UnitModel,
                                          expected_gemv, reduce_results, unit_banks,
                                          unit_config, unit_program)
from sim.units.cid.layout import gemv_layout
from testbenches.runner import _REPO, _simulator, default_cache, simulation_copy

TOP = "pdsim_nearbank"
KINDS = ("gemv", "gemm", "score", "value")


def operands(wdtype: str, n: int, k: int, rng: np.random.Generator, lanes: int):
    """Random codes ``(w[n, k], x[k], scales or None)``: fp16 codes over the whole range
    (subnormals, zeros, inf and NaN included: the unit reads those as zero), integer codes
    with extremes, fp16 scales of either sign over a wide range."""
    bits = WDTYPES[wdtype][0]
    if wdtype == "fp16":
        w = rng.integers(0, 1 << 16, (n, k))
        x = rng.integers(0, 1 << 16, k)
        return w, x, None
    w = rng.integers(0, 1 << bits, (n, k))
    x = rng.integers(0, 1 << bits, k)
    w.flat[rng.integers(0, w.size, max(1, w.size // 16))] = 1 << (bits - 1)   # the most negative
    groups = -(-k // lanes)                 # one scale per burst of lanes weights
    scales = rng.integers(0, 0x7C00, (n, groups)) | (rng.integers(0, 2, (n, groups)) << 15)
    return w, x, scales


@dataclass
class Prepared:
    """Everything a run needs: the unit, its jobs, and what the Checker expects."""

    config: NearBankConfig
    device: DramDevice
    cases: list[dict]
    jobs: list[dict]
    expected: dict        # job key -> list of RDRES results (UnitModel)
    rdres: dict           # job key -> list of RDRES cycles
    meta: list[dict]      # per GEMV: shape, engine cycles, expected y
    layouts: list         # per GEMV: its GemvLayout


def _gemvs(case: dict, rng: np.random.Generator, lanes: int):
    """(n, k, w, x, scales) of every GEMV of a case."""
    kind, wd = case.get("kind", "gemv"), case["wdtype"]
    if kind == "gemm":
        w, _, scales = operands(wd, case["rows"], case["cols"], rng, lanes)
        for _ in range(case.get("m", 2)):
            x = operands(wd, 1, case["cols"], rng, lanes)[1]
            yield case["rows"], case["cols"], w, x, scales
    else:   # a GEMV; score: K cache (keys x head_dim) . q; value: V^T (head_dim x keys) . p
        w, x, scales = operands(wd, case["rows"], case["cols"], rng, lanes)
        yield case["rows"], case["cols"], w, x, scales


def prepare(device: DramDevice, mode: str, wdtype: str, cases: list[dict]) -> Prepared:
    """Lay out and run every case on the engine; build the replay jobs (see module doc)."""
    cfg = unit_config(device, wdtype)
    fields, row_fields = _offsets(cfg)
    jobs, expected, rdres, meta, layouts = [], {}, {}, [], []
    for ci, case in enumerate(cases):
        rng = np.random.default_rng([case.get("seed", 0), ci])
        for gi, (n, k, w, x, scales) in enumerate(_gemvs(case, rng, cfg.lanes)):
            lay = gemv_layout(device, mode, n, k, wdtype, pcs=1)
            run = run_channel(device, mode, steps=lay.steps, cols=lay.cols,
                              cols_last=lay.cols_last, chunks=lay.chunks_local,
                              gb_writes=lay.gb_writes, reads=lay.reads, record=True)
            banks = unit_banks(lay, device.org.rows, w, scales)
            model_results = []
            for u in range(lay.units):
                prog = unit_program(lay, run.stream, u, x)
                res = UnitModel(cfg).run(prog, banks[u])
                model_results.append(res)
                if u >= n:          # a unit with no rows: its replay is all zeros; skip it
                    continue
                key = f"{ci}.{gi}.{u}"
                expected[key] = res
                rdres[key] = [c.cycle for c in prog if c.op == "RDRES"]
                jobs.append({"case": f"{ci}.{gi}", "unit": u,
                             "row_commands": [[c.cycle, _pack(row_fields, c)] for c in prog
                                              if c.op in ROW_OPS],
                             "commands": [[c.cycle, _pack(fields, c, cfg.bits)] for c in prog
                                          if c.op not in ROW_OPS],
                             "bursts": {f"{r},{col}": _burst(cfg, codes, s)
                                        for (r, col), (codes, s) in banks[u].items()},
                             "limit": run.cycles + device.timing.tCL + 400})
            model_y = reduce_results(lay, model_results)
            layouts.append(lay)
            meta.append({"case": ci, "gemv": gi, "name": case.get("name", f"case{ci}"),
                         "kind": case.get("kind", "gemv"), "n": n, "k": k,
                         "engine_cycles": run.cycles, "commands": len(run.stream),
                         "counts": run.counts, "chunks": lay.chunks, "pack": lay.pack,
                         "y": expected_gemv(cfg, w, x, scales), "model_y": model_y})
    return Prepared(cfg, device, cases, jobs, expected, rdres, meta, layouts)


def _offsets(cfg: NearBankConfig) -> tuple[dict, dict]:
    """``{field: (offset, width)}`` of the column- and row-command payloads."""
    from amaranth.hdl import Shape

    from rtl.nearbank import command_layout, row_command_layout
    return tuple({name: (f.offset, Shape.cast(f.shape).width) for name, f in layout(cfg)}
                 for layout in (command_layout, row_command_layout))


def _pack(fields: dict, c, bits: int = 16) -> int:
    data = sum((int(v) & ((1 << bits) - 1)) << (i * bits) for i, v in enumerate(c.data))
    values = {"op": OPS[c.op], "row": c.row, "col": c.col, "gb": c.gb, "acc": c.acc,
              "n": c.n, "data": data}
    return sum((values[k] & ((1 << w) - 1)) << o for k, (o, w) in fields.items())


ROW_OPS = ("ACT", "PRE", "REF")


def _burst(cfg: NearBankConfig, codes, scale: int) -> int:
    mask = (1 << cfg.bits) - 1
    word = sum((int(v) & mask) << (i * cfg.bits) for i, v in enumerate(codes))
    return word | (int(scale) << cfg.burst_bits)


def _source_hash() -> str:
    h = hashlib.sha256()
    for path in (_REPO / "rtl" / "nearbank.py", _REPO / "sim" / "units" / "cid" /
                 "nearbank_model.py"):
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def build(cfg: NearBankConfig, *, sim: str | None = None, cache: Path | None = None):
    """Export and compile the unit (once: a finished build in the cache is reused); returns
    ``(folder, simulator)``."""
    from cocotb_tools.runner import get_runner

    from rtl.export import export_nearbank

    sim = _simulator(sim)
    key = json.dumps([dataclasses.asdict(cfg), sim, _source_hash()], sort_keys=True)
    folder = (cache or default_cache()) / ("nb-" + hashlib.sha256(key.encode()).hexdigest()[:20])
    if not (folder / "build.ok").exists():
        folder.mkdir(parents=True, exist_ok=True)
        text, sidecar = export_nearbank(cfg)
        atomic_text(folder / f"{TOP}.v", text)
        atomic_text(folder / f"{TOP}.json", json.dumps(sidecar, indent=1))
        atomic_text(folder / f"{TOP}.sim.sv", simulation_copy(text))
        get_runner(sim).build(sources=[folder / f"{TOP}.sim.sv"], hdl_toplevel=TOP,
                              build_dir=folder / "sim_build", always=True,
                              build_args=["-Wno-fatal"] if sim == "verilator" else [],
                              timescale=("1ns", "1ps"), log_file=folder / "build.log")
        (folder / "build.ok").write_text(key)
    return folder, sim


def run(prep: Prepared, *, sim: str | None = None, cache: Path | None = None) -> dict:
    """Build, replay every job in one launch, check; returns the report (see `check`)."""
    from amaranth.hdl import Shape
    from cocotb_tools.runner import get_runner

    from rtl.nearbank import bank_req_layout

    folder, sim = build(prep.config, sim=sim, cache=cache)
    tb_dir = str(Path(__file__).resolve().parent)
    cfg, t = prep.config, prep.device.timing
    req = {name: (f.offset, Shape.cast(f.shape).width) for name, f in bank_req_layout(cfg)}
    with tempfile.TemporaryDirectory(prefix="pdsim-nb-") as tmp:
        spec = {"jobs": prep.jobs, "timing": {n: getattr(t, n) for n in
                                              ("tCL", "tBL", "tRCD", "tRP", "tRAS", "tRC",
                                               "tRTP")},
                "bank_fields": req, "rd_max": cfg.rd_max, "acc_bits": cfg.acc_bits,
                "n_bits": cfg.rd_max.bit_length(), "drain": t.tCL + 16}
        jobs_path, results = Path(tmp) / "jobs.json", Path(tmp) / "results.json"
        jobs_path.write_text(json.dumps(spec))
        env = {"PDSIM_TB_JOBS": str(jobs_path), "PDSIM_TB_RESULTS": str(results),
               "PYTHONPATH": os.pathsep.join([str(_REPO), tb_dir,
                                              os.environ.get("PYTHONPATH", "")])}
        for p in (str(_REPO), tb_dir):
            if p not in sys.path:
                sys.path.insert(0, p)
        get_runner(sim).test(test_module="nearbank_tb", hdl_toplevel=TOP,
                             hdl_toplevel_lang="verilog", build_dir=folder / "sim_build",
                             test_dir=tmp, extra_env=env, log_file=Path(tmp) / "sim.log")
        if not results.exists():
            log = (Path(tmp) / "sim.log").read_text(errors="replace")[-3000:]
            raise AssertionError(f"the testbench wrote no report; simulator log:\n{log}")
        replays = json.loads(results.read_text())["replays"]
    report = check(prep, replays)
    report["simulator"] = sim
    return report


def check(prep: Prepared, replays: list[dict]) -> dict:
    """The Checker: per GEMV, bit-exactness of every beat and of ``y``, and command-cycle
    agreement. Returns ``{"gemvs": [...], "mismatches": [...], "rtl_cycles": total}``."""
    t = prep.device.timing
    by_case: dict[str, list[dict]] = {}
    for r in replays:
        by_case.setdefault(r["case"], []).append(r)
    out, mismatches, total = [], [], 0
    for meta, lay in zip(prep.meta, prep.layouts):
        cid = f"{meta['case']}.{meta['gemv']}"
        beats_ok = refused = late = violations = errors = 0
        results: list[list[list[int]]] = [[] for _ in range(lay.units)]
        last = 0
        for r in by_case.get(cid, []):
            key = f"{cid}.{r['unit']}"
            got = [b[2] for b in r["beats"]]
            results[r["unit"]] = got
            total += r["cycles"]
            if got == prep.expected[key]:
                beats_ok += 1
            else:
                mismatches.append(f"{meta['name']} unit {r['unit']}: RDRES results differ "
                                  "from the model")
            for at, (cyc, _, _) in zip(prep.rdres[key], r["beats"]):
                last = max(last, cyc)
                if cyc > at + t.tCL + t.tBL:
                    late += 1
                    mismatches.append(f"{meta['name']} unit {r['unit']}: result of RDRES at "
                                      f"cycle {at} left at {cyc}, after the engine's "
                                      f"{at + t.tCL + t.tBL}")
            if len(r["beats"]) != len(prep.rdres[key]):
                mismatches.append(f"{meta['name']} unit {r['unit']}: {len(r['beats'])} result "
                                  f"beats for {len(prep.rdres[key])} RDRES")
            refused += len(r["refused"]) + r["late"]
            for c in r["refused"][:3]:
                mismatches.append(f"{meta['name']} unit {r['unit']}: command refused at "
                                  f"engine cycle {c}")
            violations += len(r["violations"])
            mismatches += [f"{meta['name']} unit {r['unit']}: {v}" for v in r["violations"][:3]]
            errors += r["error"]
            if r["unfinished"]:
                mismatches.append(f"{meta['name']} unit {r['unit']}: commands left over")
        y = reduce_results(lay, results)    # units without rows add nothing
        exact = y == meta["y"] == meta["model_y"]
        if not exact:
            mismatches.append(f"{meta['name']}: y differs from the exact product")
        out.append({"name": meta["name"], "kind": meta["kind"], "n": meta["n"],
                    "k": meta["k"], "units": len(by_case.get(cid, [])),
                    "engine_cycles": meta["engine_cycles"], "commands": meta["commands"],
                    "last_result_cycle": last, "refused": refused, "late_results": late,
                    "bank_violations": violations, "unit_errors": errors,
                    "results_match": bool(exact), "cycles_match": refused == late ==
                    violations == errors == 0})
    return {"gemvs": out, "mismatches": mismatches, "rtl_cycles": total}
