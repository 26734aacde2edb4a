"""The ``rtl-resources`` study: post-synthesis resources of both datapaths (Yosys) and
place-and-route utilisation and Fmax (nextpnr) at a few telling sizes.

Every run is cached under ``~/.cache/pdsim/rtl-resources`` (or ``$PDSIM_RTL_CACHE/..``) by
the hash of the exported Verilog, the target and the flow, so a rerun with unchanged RTL only
reads JSON; with a cold cache the study runs each tool once per design and target, one
process per core. Place and route needs ``pip install 'pdsim[fpga]'``; without it the Fmax
table says so and the synthesis table is still written.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sim.files import atomic_text

#: (block, label, parameters, targets): the synthesis table (Yosys). The decode unit at the
#: AiM sizes (a 32-byte burst: 16 fp16/bf16 or 64 int4 lanes; int8's 32 lanes sit between)
#: on ecp5 only, to keep a cold run of the study short.
SYNTH_DESIGNS = (
    ("systolic", "4x4 int8", {"rows": 4, "cols": 4, "mode": "int8"}, ("ecp5", "xilinx")),
    ("systolic", "4x4 w4fp8", {"rows": 4, "cols": 4, "mode": "w4fp8"}, ("ecp5", "xilinx")),
    ("systolic", "8x8 int8", {"rows": 8, "cols": 8, "mode": "int8"}, ("ecp5", "xilinx")),
    ("nearbank", "16 lanes fp16", {"lanes": 16, "wdtype": "fp16"}, ("ecp5",)),
    ("nearbank", "16 lanes bf16", {"lanes": 16, "wdtype": "bf16"}, ("ecp5",)),
    ("nearbank", "64 lanes int4", {"lanes": 64, "wdtype": "int4"}, ("ecp5",)),
)
SYNTH_TARGETS = ("ecp5", "xilinx")
#: The place-and-route table (nextpnr): each datapath at two sizes or formats, the small
#: systolic one and both near-bank ones on both families (the UP5K has 8 DSPs and 5280 logic
#: cells: a 4x4 int8 array needs 16 multipliers), the 4x4 array on ecp5 only (nextpnr-ecp5
#: under WebAssembly needs about 100 CPU seconds per design). The near-bank rows are the
#: integer (scale multiply) and the float (wide shift) datapaths.
PNR_DESIGNS = (
    ("systolic", "2x2 int8", {"rows": 2, "cols": 2, "mode": "int8"}, ("ice40", "ecp5")),
    ("systolic", "4x4 int8", {"rows": 4, "cols": 4, "mode": "int8"}, ("ecp5",)),
    ("nearbank", "2 lanes int4", {"lanes": 2, "wdtype": "int4", "acc_rows": 4,
                                  "gb_entries": 4, "rd_max": 2}, ("ice40", "ecp5")),
    ("nearbank", "2 lanes bf16", {"lanes": 2, "wdtype": "bf16", "acc_rows": 4,
                                  "gb_entries": 4, "rd_max": 2}, ("ice40", "ecp5")),
)
#: Fmax (MHz) of the near-bank rows before the MAC path was pipelined (commit a4792d1: lane
#: products, lane sum times scale, accumulate in three stages; the FIFO heads, the RDRES
#: clear mask and cmd.ready combinational), same flow and seed, for the README.
UNPIPELINED_FMAX_MHZ = {("2 lanes int4", "ice40"): 25.05, ("2 lanes int4", "ecp5"): 55.34,
                        ("4 lanes int8", "ice40"): 22.26}
PNR_TARGETS = ("ice40", "ecp5")
SYSTOLIC_BUFFERS = 64   # max_m = max_n = max_k in the synthesis table
PNR_BUFFERS = 16        # in the place-and-route table (block RAMs of the UP5K)
NEARBANK_ACC_ROWS = 8   # accumulators and GB entries of the tabulated units


def component(block: str, params: dict, buffers: int):
    """The Amaranth component of a table row."""
    if block == "systolic":
        from rtl.controller import SystolicDatapath
        from sim.units.systolic.datapath import DatapathConfig
        return SystolicDatapath(DatapathConfig(max_m=buffers, max_n=buffers, max_k=buffers,
                                               **params))
    from rtl.nearbank import NearBankUnit
    from sim.units.cid.nearbank_model import NearBankConfig
    return NearBankUnit(NearBankConfig(**{"acc_rows": NEARBANK_ACC_ROWS,
                                          "gb_entries": NEARBANK_ACC_ROWS, "max_macs": 64,
                                          **params}))


def cache_dir() -> Path:
    base = os.environ.get("PDSIM_RTL_CACHE")
    root = Path(base).parent if base else Path.home() / ".cache" / "pdsim"
    return root / "rtl-resources"


def _cached(kind: str, verilog: str, target: str, run) -> dict:
    """``run()``'s result, cached by the hash of (kind, target, Verilog)."""
    key = hashlib.sha256(f"{kind}\n{target}\n{verilog}".encode()).hexdigest()[:24]
    path = cache_dir() / f"{key}.json"
    if path.exists():
        return json.loads(path.read_text())
    res = run()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_text(path, json.dumps(res))
    return res


def _synth_job(block: str, label: str, params: dict, target: str) -> dict:
    from amaranth.back import verilog

    from rtl.synth import synthesize
    top = f"pdsim_{block}"
    text = verilog.convert(component(block, params, SYSTOLIC_BUFFERS), name=top,
                           emit_src=False)

    def run() -> dict:
        with tempfile.TemporaryDirectory(prefix="pdsim-rtl-") as tmp:
            path = Path(tmp) / f"{top}.v"
            path.write_text(text)
            return synthesize(path, target=target)
    res = _cached("synth", text, target, run)
    print(f"  synthesised {block} {label} for {target}", file=sys.stderr, flush=True)
    return {"block": block, "size": label, **params, **res}


def _pnr_job(block: str, label: str, params: dict, target: str) -> dict:
    from rtl.pnr import place_and_route, wrapped_verilog
    top = f"pdsim_{block}"
    from sim.errors import PdsimError
    text = wrapped_verilog(component(block, params, PNR_BUFFERS), top)

    def run() -> dict:
        try:
            return place_and_route(text, target=target, top=top)
        except PdsimError as exc:     # e.g. does not fit the device: a row that says so
            return {"target": target, "fmax_mhz": None, "utilisation": {},
                    "error": str(exc)}
    res = _cached("pnr", text, target, run)
    print(f"  placed and routed {block} {label} on {target}", file=sys.stderr, flush=True)
    return {"block": block, "size": label, **params, **res}


def write_resources(out_dir: Path) -> list[Path]:
    """Synthesise every `SYNTH_DESIGNS` row for its targets and place and route every
    `PNR_DESIGNS` row on its targets (when the YoWASP tools are installed); write
    ``resources.json`` and ``README.md`` into ``out_dir``."""
    from rtl.pnr import tool_missing

    jobs = [(_synth_job, d[:3], t) for d in SYNTH_DESIGNS for t in d[3] if t in SYNTH_TARGETS]
    missing = [m for t in PNR_TARGETS if (m := tool_missing(t))]
    if not missing:
        jobs += [(_pnr_job, d[:3], t) for d in PNR_DESIGNS for t in d[3] if t in PNR_TARGETS]
    # Tool runs are independent single-threaded processes: one per core, results in table
    # order (map preserves it), so the output does not depend on the core count.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        rows = list(pool.map(lambda j: j[0](*j[1], j[2]), jobs))
    synth = [r for r in rows if "fmax_mhz" not in r]
    pnr = [r for r in rows if "fmax_mhz" in r]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data_path, readme = out_dir / "resources.json", out_dir / "README.md"
    atomic_text(data_path, json.dumps({"systolic_buffers": SYSTOLIC_BUFFERS,
                                       "pnr_buffers": PNR_BUFFERS,
                                       "nearbank_acc_rows": NEARBANK_ACC_ROWS,
                                       "results": synth, "place_and_route": pnr,
                                       "pnr_missing": missing}, indent=1) + "\n")
    atomic_text(readme, _readme(synth, pnr, missing))
    return [data_path, readme]


def _readme(synth: list[dict], pnr: list[dict], missing: list[str]) -> str:
    yosys = synth[0]["yosys"] if synth else ""
    lines = [
        "# RTL resources and Fmax: the prefill and decode datapaths on FPGAs",
        "",
        "Regenerated by `pdsim reproduce rtl-resources` (cached by the exported Verilog's hash "
        "in `~/.cache/pdsim/rtl-resources`). Blocks: `systolic` is the prefill datapath "
        f"(`rtl/controller.py`, output-stationary, A/B/C buffers for {SYSTOLIC_BUFFERS} x "
        f"{SYSTOLIC_BUFFERS} tiles); `nearbank` the decode unit beside one DRAM bank "
        f"(`rtl/nearbank.py`, {NEARBANK_ACC_ROWS} accumulators and global-buffer entries; "
        "lanes = weights per 32-byte burst for the AiM rows).",
        "",
        "## Synthesis",
        "",
        f"{yosys}, `synth_ecp5` and `synth_xilinx -flatten`, post-synthesis counts. LUTs: "
        "LUT cells (ecp5: LUT4 plus two per CCU2C carry cell; xilinx: LUT1-LUT6). LUT-RAM: "
        "distributed-RAM cells. DSP: ecp5 MULT18X18D, xilinx DSP48E1. BRAM: ecp5 DP16KD, "
        "xilinx RAMB18E1/RAMB36E1. The w4fp8 PE shifts each product by the FP8 exponent into "
        "a 40-bit accumulator; the fp16 near-bank lane shifts a 22-bit product by up to 58 "
        "places into an exact fixed-point sum (bf16: a 16-bit product by up to 94), hence "
        "its LUTs.",
        "",
        "| block | size | target | LUTs | FFs | DSP | BRAM | LUT-RAM |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in synth:
        lines.append(f"| {r['block']} | {r['size']} | {r['target']} | {r['luts']} | "
                     f"{r['ffs']} | {r['dsps']} | {r['brams']} | {r['lutram']} |")
    lines += ["", "## Place and route", ""]
    if missing:
        lines += [f"Not run: {m}" for m in missing]
    else:
        nver = next((r["nextpnr"] for r in pnr if "nextpnr" in r), "")
        lines += [
            f"YoWASP Yosys and nextpnr ({nver}) on an iCE40 UP5K (SG48) and an ECP5 LFE5U-25F "
            "(CABGA256), seed 1, 100 MHz goal. The block sits behind a scan-chain pin "
            "wrapper (`rtl/pnr.py`) so its wide ports fit the package; systolic buffers "
            f"{PNR_BUFFERS} x {PNR_BUFFERS}. Fmax is nextpnr's achieved clock after routing "
            "(`pdsim hdl pnr`); logic cells: ice40 ICESTORM_LC, ecp5 TRELLIS_COMB. "
            "The near-bank MAC path is pipelined (docs/rtl.md); before that, the same flow "
            "gave " + "; ".join(f"{size} on {t}: {f} MHz"
                                for (size, t), f in UNPIPELINED_FMAX_MHZ.items()) + ".",
            "",
            "| block | size | target | Fmax (MHz) | logic cells | FFs | DSP | BRAM |",
            "|---|---|---|---:|---:|---:|---:|---:|",
        ]
        for r in pnr:
            u = r["utilisation"]
            cells = u.get("ICESTORM_LC") or u.get("TRELLIS_COMB") or ["-", "-"]
            ffs = u.get("TRELLIS_FF") or ["-", "-"]
            dsp = u.get("ICESTORM_DSP") or u.get("MULT18X18D") or [0, "-"]
            bram = u.get("ICESTORM_RAM") or u.get("DP16KD") or [0, "-"]
            if r.get("error"):
                lines.append(f"| {r['block']} | {r['size']} | {r['target']} | - | "
                             f"{r['error']} | | | |")
                continue
            lines.append(f"| {r['block']} | {r['size']} | {r['target']} | {r['fmax_mhz']} | "
                         f"{cells[0]}/{cells[1]} | {ffs[0]} | {dsp[0]} | {bram[0]} |")
    lines += ["", "Raw cell counts and utilisation per run: `resources.json`.", ""]
    return "\n".join(lines)


def headline(data: dict) -> str:
    """The tables of ``pdsim reproduce rtl-resources``: one row per synthesis (the array, or
    ``nb<lanes>`` for a near-bank unit), then one per place and route with its Fmax."""
    from sim.text import text_table

    def size(r: dict) -> str:
        return (f"{r['rows']}x{r['cols']}" if r.get("block", "systolic") == "systolic"
                else f"nb{r['lanes']}")

    def mode(r: dict) -> str:
        return r.get("mode") or r["wdtype"]

    text = text_table(["array", "mode", "target", "LUTs", "FFs", "DSPs", "BRAMs"],
                      [[size(r), mode(r), r["target"], str(r["luts"]), str(r["ffs"]),
                        str(r["dsps"]), str(r["brams"])] for r in data["results"]])
    if data.get("place_and_route"):
        text += "\n\n" + text_table(
            ["array", "mode", "target", "Fmax MHz"],
            [[size(r), mode(r), r["target"], str(r["fmax_mhz"])]
             for r in data["place_and_route"]])
    return text
