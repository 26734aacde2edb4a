"""Run GEMM cases through SCALE-Sim 3.0.0 and print its reported numbers as JSON.

Executed by the SCALE-Sim venv's python (see env.py), never imported by pdsim's tests:

    echo '[{"m": 64, "n": 32, "k": 16, "rows": 8, "cols": 8, "dataflow": "ws"}]' \\
        | ~/.cache/pdsim/scalesim-venv/bin/python tests/scalesim_ref/runner.py

stdin: a JSON list of cases, each
    {"m", "n", "k", "rows", "cols", "dataflow": "os"|"ws"|"is",
     optional "ifmap_kb", "filter_kb", "ofmap_kb" (SRAM sizes, integer KB, default 64 each),
     optional "bandwidth" (integer words/cycle; given => USER bandwidth mode, else CALC)}
for C[M,N] = A[M,K] @ B[K,N] on a rows x cols systolic array.
stdout: a JSON list with one result per case (keys documented in README.md; a case that
SCALE-Sim rejects gets {"case": ..., "error": "..."} instead).  Everything SCALE-Sim prints
goes to stderr.

GEMM -> SCALE-Sim: a GEMM topology row ``name, M, N, K,`` read with ``input_type_gemm=True``.
SCALE-Sim turns it into the conv layer ifmap M x K, filter 1 x K, 1 channel, N filters, stride
1 (topology_utils.load_arrays_gemm), i.e. ofmap pixels = M, window (reduction) = K, filters = N:
    ifmap  operand = A, M x K   (SCALE-Sim "M" = our M, rows of C)
    filter operand = B, K x N   (SCALE-Sim "N" = our N, columns of C)
    ofmap  operand = C, M x N   (SCALE-Sim "K" = our K, the reduction)
which is exactly pdsim's C[M,N] = A[M,K] B[K,N].
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import resource
import sys
import tempfile
import time
import traceback

DEFAULT_SRAM_KB = 64
DATAFLOWS = ("os", "ws", "is")

_CONFIG = """\
[general]
run_name = {run_name}

[architecture_presets]
ArrayHeight = {rows}
ArrayWidth = {cols}
IfmapSramSzkB = {ifmap_kb}
FilterSramSzkB = {filter_kb}
OfmapSramSzkB = {ofmap_kb}
IfmapOffset = {ifmap_offset}
FilterOffset = {filter_offset}
OfmapOffset = {ofmap_offset}
Bandwidth = {bandwidth}
Dataflow = {dataflow}
ReadRequestBuffer = 32
WriteRequestBuffer = 32

[layout]
IfmapCustomLayout = False
FilterCustomLayout = False
IfmapSRAMBankBandwidth = {bandwidth}
IfmapSRAMBankNum = 1
IfmapSRAMBankPort = 2
FilterSRAMBankBandwidth = {bandwidth}
FilterSRAMBankNum = 1
FilterSRAMBankPort = 2

[sparsity]
SparsitySupport = false
SparseRep = ellpack_block
OptimizedMapping = false
BlockSize = 8
RandomNumberGeneratorSeed = 40

[run_presets]
InterfaceBandwidth = {bw_mode}
UseRamulatorTrace = False
"""

# The three per-layer reports SCALE-Sim writes (simulator.generate_reports), header -> our key.
_COMPUTE_COLS = {
    "Total Cycles (incl. prefetch)": "total_cycles_incl_prefetch",
    "Total Cycles": "total_cycles",  # SCALE-Sim's stdout calls this "Compute cycles"
    "Stall Cycles": "stall_cycles",
    "Overall Util %": "overall_util_pct",
    "Mapping Efficiency %": "mapping_efficiency_pct",
    "Compute Util %": "compute_util_pct",
}
_BANDWIDTH_COLS = {
    "Avg IFMAP SRAM BW": "avg_ifmap_sram_bw",
    "Avg FILTER SRAM BW": "avg_filter_sram_bw",
    "Avg OFMAP SRAM BW": "avg_ofmap_sram_bw",
    "Avg IFMAP DRAM BW": "avg_ifmap_dram_bw",
    "Avg FILTER DRAM BW": "avg_filter_dram_bw",
    "Avg OFMAP DRAM BW": "avg_ofmap_dram_bw",
}
_DETAIL_COLS = {
    "SRAM IFMAP Start Cycle": "sram_ifmap_start_cycle",
    "SRAM IFMAP Stop Cycle": "sram_ifmap_stop_cycle",
    "SRAM IFMAP Reads": "sram_ifmap_reads",
    "SRAM Filter Start Cycle": "sram_filter_start_cycle",
    "SRAM Filter Stop Cycle": "sram_filter_stop_cycle",
    "SRAM Filter Reads": "sram_filter_reads",
    "SRAM OFMAP Start Cycle": "sram_ofmap_start_cycle",
    "SRAM OFMAP Stop Cycle": "sram_ofmap_stop_cycle",
    "SRAM OFMAP Writes": "sram_ofmap_writes",
    "DRAM IFMAP Start Cycle": "dram_ifmap_start_cycle",
    "DRAM IFMAP Stop Cycle": "dram_ifmap_stop_cycle",
    "DRAM IFMAP Reads": "dram_ifmap_reads",
    "DRAM Filter Start Cycle": "dram_filter_start_cycle",
    "DRAM Filter Stop Cycle": "dram_filter_stop_cycle",
    "DRAM Filter Reads": "dram_filter_reads",
    "DRAM OFMAP Start Cycle": "dram_ofmap_start_cycle",
    "DRAM OFMAP Stop Cycle": "dram_ofmap_stop_cycle",
    "DRAM OFMAP Writes": "dram_ofmap_writes",
}
_REPORTS = {
    "COMPUTE_REPORT.csv": _COMPUTE_COLS,
    "BANDWIDTH_REPORT.csv": _BANDWIDTH_COLS,
    "DETAILED_ACCESS_REPORT.csv": _DETAIL_COLS,
}


def _number(text: str) -> int | float:
    value = float(text)
    return int(value) if value.is_integer() else value


def _read_report(path: str, columns: dict[str, str]) -> dict[str, int | float]:
    """The one data row of a SCALE-Sim report (one layer), keyed by our names."""
    with open(path, newline="") as f:
        rows = [[cell.strip() for cell in row] for row in csv.reader(f) if row]
    header, values = rows[0], rows[1]
    if len(rows) != 2:
        raise ValueError(f"{path}: expected one layer, got {len(rows) - 1}")
    row = dict(zip(header, values))
    missing = [h for h in columns if h not in row]
    if missing:
        raise ValueError(f"{path}: columns {missing} not in header {header}")
    return {key: _number(row[h]) for h, key in columns.items()}


def _normalise(case: dict) -> dict:
    out = {}
    for key in ("m", "n", "k", "rows", "cols"):
        value = case[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{key} must be a positive integer, got {value!r}")
        out[key] = value
    dataflow = str(case["dataflow"]).lower()
    if dataflow not in DATAFLOWS:
        raise ValueError(f"dataflow must be one of {DATAFLOWS}, got {case['dataflow']!r}")
    out["dataflow"] = dataflow
    for key in ("ifmap_kb", "filter_kb", "ofmap_kb"):
        value = case.get(key, DEFAULT_SRAM_KB)
        # SCALE-Sim parses the sizes with int(); its CALC-mode buffers need >= 100 words.
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{key} must be a positive integer (KB), got {value!r}")
        out[key] = value
    bandwidth = case.get("bandwidth")
    if bandwidth is not None and (
        not isinstance(bandwidth, int) or isinstance(bandwidth, bool) or bandwidth < 1
    ):
        raise ValueError(f"bandwidth must be a positive integer (words/cycle), got {bandwidth!r}")
    out["bandwidth"] = bandwidth
    return out


def run_case(case: dict) -> dict:
    """Simulate one GEMM; returns the normalised case and SCALE-Sim's reported numbers."""
    from scalesim.scale_sim import scalesim  # the venv's SCALE-Sim

    case = _normalise(case)
    m, n, k = case["m"], case["n"], case["k"]
    # Operand address spaces that never overlap: A at 0, B after A, C after B (int32 in SCALE-Sim).
    filter_offset = max(10_000_000, m * k)
    ofmap_offset = filter_offset + max(10_000_000, k * n)
    if ofmap_offset + m * n >= 2**31:
        raise ValueError("operands too large for SCALE-Sim's int32 addresses")
    user_bw = case["bandwidth"] is not None
    with tempfile.TemporaryDirectory(prefix="pdsim-scalesim-") as tmp:
        cfg_path = os.path.join(tmp, "gemm.cfg")
        topo_path = os.path.join(tmp, "gemm.csv")
        layout_path = os.path.join(tmp, "layout.csv")
        with open(cfg_path, "w") as f:
            f.write(_CONFIG.format(
                run_name="gemm", rows=case["rows"], cols=case["cols"],
                ifmap_kb=case["ifmap_kb"], filter_kb=case["filter_kb"],
                ofmap_kb=case["ofmap_kb"], ifmap_offset=0, filter_offset=filter_offset,
                ofmap_offset=ofmap_offset, dataflow=case["dataflow"],
                bandwidth=case["bandwidth"] if user_bw else 10,
                bw_mode="USER" if user_bw else "CALC",
            ))
        with open(topo_path, "w") as f:
            # SCALE-Sim drops the last comma-separated field of every row: keep the comma.
            f.write("Layer, M, N, K,\n")
            f.write(f"gemm, {m}, {n}, {k},\n")
        with open(layout_path, "w") as f:
            # Mandatory file; with custom layouts off only its header is needed.
            f.write("Layer name,\n")
        out_dir = os.path.join(tmp, "out")
        start = time.perf_counter()
        sim = scalesim(save_disk_space=True, verbose=False, config=cfg_path,
                       topology=topo_path, layout=layout_path, input_type_gemm=True)
        sim.run_scale(top_path=out_dir)
        wall_s = time.perf_counter() - start
        result: dict = {"case": case}
        report_dir = os.path.join(out_dir, "gemm")
        for name, columns in _REPORTS.items():
            result.update(_read_report(os.path.join(report_dir, name), columns))
        # "Total Cycles" includes the stalls (zero in CALC mode); this is the stall-free part.
        result["compute_cycles"] = result["total_cycles"] - result["stall_cycles"]
        result["trace_files"] = sorted(
            os.path.relpath(os.path.join(d, f), report_dir)
            for d, _, files in os.walk(report_dir) for f in files
            if f not in _REPORTS
        )
    result["wall_s"] = round(wall_s, 4)
    return result


def main() -> int:
    cases = json.load(sys.stdin)
    if not isinstance(cases, list):
        print("runner.py: stdin must be a JSON list of cases", file=sys.stderr)
        return 2
    results = []
    real_stdout = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):  # SCALE-Sim's prints must not corrupt the JSON
        for case in cases:
            try:
                results.append(run_case(case))
            # SCALE-Sim calls exit() on bad input, hence SystemExit
            except (Exception, SystemExit) as exc:  # noqa: BLE001
                traceback.print_exc(file=sys.stderr)
                results.append({"case": case, "error": f"{type(exc).__name__}: {exc}"})
    json.dump(results, real_stdout, indent=1)
    real_stdout.write("\n")
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"runner.py: {len(cases)} case(s), peak RSS {peak_kib / 1024:.0f} MiB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
