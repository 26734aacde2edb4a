"""``pdsim cosim systolic``, ``pdsim hdl export|synth`` and the ``rtl-resources`` study.

Imports of Amaranth, cocotb and the RTL happen inside the handlers, so ``pdsim --help`` stays
fast. Bad parameters are refused (one line, exit code 2) before any HDL is generated.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from sim.cli.main import _int_at_least
from sim.errors import PdsimError
from sim.files import atomic_text

STUDIES = {"rtl-resources": ("results/rtl", "sim.units.systolic.cli:write_resources")}

#: Arrays and buffer sizes of the resource table.
RESOURCE_ARRAYS = ((4, 4), (8, 8), (16, 16))
RESOURCE_MODES = ("int8", "w4fp8")
RESOURCE_TARGETS = ("ecp5", "xilinx")
RESOURCE_BUFFERS = 64   # max_m = max_n = max_k


def _array_args(p: argparse.ArgumentParser) -> None:
    # rows/cols are checked by DatapathConfig (so "--rows 0" gets the model's message)
    p.add_argument("--rows", type=int, required=True, help="array rows (1..64)")
    p.add_argument("--cols", type=int, required=True, help="array columns (1..64)")
    p.add_argument("--mode", required=True, help="operand mode: int8 or w4fp8")
    p.add_argument("--dataflow", default="os", help="os (output-stationary, default) or ws "
                   "(weight-stationary)")


def add_commands(sub) -> dict:
    cosim = sub.add_parser("cosim", help="run a GEMM through the RTL under cocotb and compare "
                           "with the model")
    csub = cosim.add_subparsers(dest="block", required=True, metavar="BLOCK")
    sys_ = csub.add_parser("systolic", help="the systolic-array prefill datapath",
                           description="Build the datapath for this array (cached), run "
                           "load A, load B, compute and drain C through it under cocotb, and "
                           "print the RTL's and the model's cycles per command and whether the "
                           "result equals numpy's bit for bit. Exit code 1 on any mismatch.")
    _array_args(sys_)
    for name in ("m", "n", "k"):
        sys_.add_argument(f"--{name}", type=_int_at_least(1), required=True)
    sys_.add_argument("--seed", type=int, default=0, help="operand seed (default 0)")
    sys_.add_argument("--kind", choices=("random", "extreme", "max"), default="random",
                      help="operands: uniform, extreme codes, or the largest products")
    sys_.add_argument("--backpressure", type=float, default=0.0, metavar="P",
                      help="fraction of cycles the output stream is refused (default 0)")
    sys_.add_argument("--sim", choices=("icarus", "verilator"),
                      help="simulator (default: $SIM or icarus)")
    sys_.add_argument("--waves", action="store_true", help="keep a waveform for GTKWave (FST "
                      "from Icarus, VCD from Verilator) and print its path")
    sys_.add_argument("--json", action="store_true")

    hdl = sub.add_parser("hdl", help="export Verilog of an RTL block, or synthesise it")
    hsub = hdl.add_subparsers(dest="action", required=True, metavar="ACTION")
    exp = hsub.add_parser("export", help="write Verilog (plus a JSON sidecar)")
    exp.add_argument("block", choices=("systolic",))
    _array_args(exp)
    for name in ("max-m", "max-n", "max-k"):
        exp.add_argument(f"--{name}", type=int, default=RESOURCE_BUFFERS,
                         help=f"buffer capacity (default {RESOURCE_BUFFERS})")
    exp.add_argument("-o", "--out", required=True, metavar="FILE.v")
    syn = hsub.add_parser("synth", help="synthesise Verilog with Yosys; report resources")
    syn.add_argument("file", metavar="FILE.v")
    syn.add_argument("--target", required=True, help="ice40, ecp5 or xilinx")
    syn.add_argument("--json", action="store_true")
    return {"cosim": _cosim, "hdl": _hdl}


def _config(args, m: int, n: int, k: int):
    from sim.units.systolic.datapath import DatapathConfig
    return DatapathConfig(rows=args.rows, cols=args.cols, mode=args.mode,
                          max_m=m, max_n=n, max_k=k, dataflow=args.dataflow)


def _cosim(args: argparse.Namespace, argv: list[str]) -> int:
    from sim.units.systolic.datapath import DatapathModel, k_bound

    cfg = _config(args, args.m, args.n, 1)          # validates rows, cols and mode
    if args.k > k_bound(args.mode):
        raise PdsimError(f"--k: {args.k} exceeds the {args.mode} accumulator bound "
                         f"(K <= {k_bound(args.mode)} for {cfg.acc_bits}-bit accumulators)")
    if not 0 <= args.backpressure < 1:
        raise PdsimError(f"--backpressure: must be in [0, 1), got {args.backpressure}")
    try:
        from testbenches.runner import build, run_gemms
    except ImportError as exc:
        raise PdsimError(f"cosim: needs cocotb and ml_dtypes (pip install 'pdsim[rtl]'): "
                         f"{exc}") from None

    # buffers rounded up to powers of two so that nearby shapes share one cached build
    def up(x: int) -> int:
        return 1 << (x - 1).bit_length()
    cfg = _config(args, up(args.m), up(args.n), min(up(args.k), k_bound(args.mode)))
    b = build(cfg, sim=args.sim, waves=args.waves)
    case = {"name": "cosim", "m": args.m, "n": args.n, "k": args.k, "seed": args.seed,
            "kind": args.kind}
    run_dir = b.folder / "waves" if args.waves else None   # Verilator dumps into its cwd
    report = run_gemms(b, [case], backpressure=args.backpressure, seed=args.seed,
                       check=False, test_dir=run_dir)
    gemm = report["gemms"][0] if report["gemms"] else {}
    rtl, pred = gemm.get("cycles", {}), gemm.get("model_cycles", {})
    ok = bool(gemm.get("match")) and not report["mismatches"] and rtl == pred and len(rtl) == 4
    waves = [w for d in (run_dir, b.folder / "sim_build") if run_dir
             for pattern in ("*.fst", "*.vcd") for w in sorted(d.glob(pattern))]
    model = DatapathModel(cfg)
    folds, per_fold = model.folds(args.m, args.n, args.k)
    from sim.units.systolic.array import array_gemm
    fold_model = array_gemm(rows=args.rows, cols=args.cols, dataflow=args.dataflow, m=args.m,
                            n=args.n, k=args.k).compute_cycles
    if args.json:
        from sim.trace import to_json
        print(to_json({"rows": args.rows, "cols": args.cols, "mode": args.mode,
                       "dataflow": args.dataflow,
                       "m": args.m, "n": args.n, "k": args.k, "seed": args.seed,
                       "simulator": b.sim, "folds": folds, "cycles_per_fold": per_fold,
                       "systolic_compute_cycles": fold_model,
                       "rtl_cycles": rtl, "model_cycles": pred,
                       "stall_cycles": gemm.get("stalls", {}),
                       "results_match": bool(gemm.get("match")), "match": ok,
                       "mismatches": report["mismatches"],
                       "waves": str(waves[0]) if waves else None}))
        return 0 if ok else 1
    print(f"systolic {args.rows}x{args.cols} {args.mode} ({args.dataflow}), C[{args.m}x{args.n}] = "
          f"A[{args.m}x{args.k}] @ B[{args.k}x{args.n}], seed {args.seed}, {b.sim}; "
          f"{folds} folds of {per_fold} cycles")
    print(f"  {'command':<9}{'RTL cycles':>12}{'model cycles':>14}")
    for op in ("LOAD_A", "LOAD_B", "COMPUTE", "DRAIN_C"):
        print(f"  {op:<9}{rtl.get(op, '-'):>12}{pred.get(op, '-'):>14}")
    print(f"  {'total':<9}{sum(rtl.values()):>12}{sum(pred.values()):>14}")
    print(f"  results: {'bit-exact vs numpy' if gemm.get('match') else 'MISMATCH'} "
          f"({args.m * args.n} values); cycles: {'equal' if rtl == pred else 'DIFFER'}")
    print(f"  sim.units.systolic.array fold model: {fold_model} compute cycles (SCALE-Sim's count); "
          f"the controller adds 3")
    for line in report["mismatches"][:10]:
        print(f"  mismatch: {line}")
    if waves:
        print(f"waves: {waves[0]}")
    return 0 if ok else 1


def _hdl(args: argparse.Namespace, argv: list[str]) -> int:
    if args.action == "export":
        cfg = _config(args, args.max_m, args.max_n, args.max_k)
        from rtl.export import export_verilog
        text, sidecar = export_verilog(cfg)
        out = Path(args.out)
        sidecar_path = out.with_suffix(".json")
        atomic_text(out, text)
        atomic_text(sidecar_path, json.dumps(sidecar, indent=1) + "\n")
        print(f"wrote {out}")
        print(f"wrote {sidecar_path}")
        return 0
    from rtl.synth import synthesize
    res = synthesize(Path(args.file), target=args.target)
    if args.json:
        from sim.trace import to_json
        print(to_json(res))
        return 0
    print(f"{args.file} ({res['top']}) on {res['target']}: {res['luts']} LUTs, {res['ffs']} "
          f"flip-flops, {res['dsps']} DSP blocks, {res['brams']} block RAMs, "
          f"{res['lutram']} LUT-RAM cells ({res['yosys']})")
    return 0


def write_resources(out_dir: Path) -> list[Path]:
    """Export and synthesise every array of `RESOURCE_ARRAYS` in both modes for each target;
    write ``resources.json`` and ``README.md`` (the table) into ``out_dir``."""
    from rtl.export import TOP, export_verilog
    from rtl.synth import synthesize

    from sim.units.systolic.datapath import DatapathConfig

    import sys
    from concurrent.futures import ThreadPoolExecutor

    jobs = []  # (rows, cols, mode, target, verilog path), in table order
    with tempfile.TemporaryDirectory(prefix="pdsim-rtl-") as tmp:
        for r, c in RESOURCE_ARRAYS:
            for mode in RESOURCE_MODES:
                cfg = DatapathConfig(rows=r, cols=c, mode=mode, max_m=RESOURCE_BUFFERS,
                                     max_n=RESOURCE_BUFFERS, max_k=RESOURCE_BUFFERS)
                path = Path(tmp) / f"{TOP}_{r}x{c}_{mode}.v"
                path.write_text(export_verilog(cfg)[0])
                jobs += [(r, c, mode, target, path) for target in RESOURCE_TARGETS]

        def run(job):
            r, c, mode, target, path = job
            res = synthesize(path, target=target)
            print(f"  synthesised {r}x{c} {mode} for {target}", file=sys.stderr, flush=True)
            return {"rows": r, "cols": c, "mode": mode, **res}

        # Yosys runs are independent single-threaded processes: one per core, results kept in
        # table order (map preserves it), so the output does not depend on the core count.
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            rows = list(pool.map(run, jobs))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data_path, readme = out_dir / "resources.json", out_dir / "README.md"
    atomic_text(data_path, json.dumps({"buffers": RESOURCE_BUFFERS, "results": rows},
                                  indent=1) + "\n")
    atomic_text(readme, _resources_readme(rows))
    return [data_path, readme]


def _resources_readme(rows: list[dict]) -> str:
    yosys = rows[0]["yosys"] if rows else ""
    lines = [
        "# RTL resources: the systolic prefill datapath on FPGAs",
        "",
        "Regenerated by `pdsim reproduce rtl-resources` (exports each datapath with "
        "`pdsim hdl export` and synthesises it with `pdsim hdl synth`). Every array has "
        f"A, B and C buffers for {RESOURCE_BUFFERS} x {RESOURCE_BUFFERS} tiles "
        f"(max_m = max_n = max_k = {RESOURCE_BUFFERS}); {yosys}, default `synth_ecp5` and "
        "`synth_xilinx -flatten` scripts, no place and route (post-synthesis counts).",
        "",
        "LUTs: LUT cells (ecp5: LUT4 plus two per CCU2C carry cell; xilinx: LUT1-LUT6). "
        "LUT-RAM: distributed-RAM cells (ecp5 TRELLIS_DPR16X4, xilinx RAM32M/RAM64M), which "
        "Yosys chose for the small banked buffers instead of block RAM. DSP: ecp5 "
        "MULT18X18D, xilinx DSP48E1. BRAM: ecp5 DP16KD, xilinx RAMB18E1/RAMB36E1. On xilinx "
        "Yosys packs each PE's accumulator into its DSP48E1 (the P register), so the flip-flop "
        "count there excludes the accumulators; on ecp5 they are fabric flip-flops.",
        "",
        "Output-stationary dataflow. The w4fp8 PE needs more LUTs than the int8 one: it shifts "
        "each 9-bit significand-times-weight product by the FP8 exponent (up to 14 places) and "
        "adds it into a 40-bit accumulator, while the int8 product maps whole into a DSP block.",
        "",
        "| array | mode | target | LUTs | FFs | DSP | BRAM | LUT-RAM |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['rows']}x{r['cols']} | {r['mode']} | {r['target']} | {r['luts']} | "
                     f"{r['ffs']} | {r['dsps']} | {r['brams']} | {r['lutram']} |")
    lines += ["", "Raw cell counts per run: `resources.json`.", ""]
    return "\n".join(lines)


def headline(data: dict) -> str:
    """The resource table of ``pdsim reproduce rtl-resources``, one row per synthesis."""
    from sim.studies import text_table

    rows = [[f"{r['rows']}x{r['cols']}", r["mode"], r["target"], str(r["luts"]),
             str(r["ffs"]), str(r["dsps"]), str(r["brams"])] for r in data["results"]]
    return text_table(["array", "mode", "target", "LUTs", "FFs", "DSPs", "BRAMs"], rows)
