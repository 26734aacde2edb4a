"""``pdsim cosim systolic|gemv``, ``pdsim hdl export|synth|pnr`` and the ``rtl-resources``
study (the decode block's arguments and cosim live in `testbenches.nearbank_cli`, which
builds on the CiD wing: the systolic wing does not import it; the study in
`rtl.resources`).

Imports of Amaranth, cocotb and the RTL happen inside the handlers, so ``pdsim --help`` stays
fast. Bad parameters are refused (one line, exit code 2) before any HDL is generated.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sim.argtypes import int_at_least as _int_at_least
from sim.errors import PdsimError
from sim.files import atomic_text, check_output
from testbenches.nearbank_cli import add_gemv_parser, add_nearbank_args, cosim_gemv, nearbank_config

BLOCKS = ("systolic", "nearbank")

STUDIES = {"rtl-resources": ("results/rtl", "rtl.resources:write_resources")}

#: Default buffer capacity of an exported systolic datapath (the resource table uses it too).
RESOURCE_BUFFERS = 64   # max_m = max_n = max_k


def _array_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    # rows/cols are checked by DatapathConfig (so "--rows 0" gets the model's message)
    p.add_argument("--rows", type=int, required=required, help="array rows (1..64)")
    p.add_argument("--cols", type=int, required=required, help="array columns (1..64)")
    p.add_argument("--mode", required=required, help="operand mode: int8 or w4fp8")
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
    for name in ("m", "n"):  # the datapath's A and C buffers hold at most 65535 rows
        sys_.add_argument(f"--{name}", type=_int_at_least(1, 65535), required=True)
    sys_.add_argument("--k", type=_int_at_least(1), required=True,
                      help="at most the mode's accumulator bound")
    sys_.add_argument("--seed", type=_int_at_least(0), default=0,
                      help="operand seed, 0 to 2**63 - 1 (default 0)")
    sys_.add_argument("--kind", choices=("random", "extreme", "max"), default="random",
                      help="operands: uniform, extreme codes, or the largest products")
    sys_.add_argument("--backpressure", type=float, default=0.0, metavar="P",
                      help="fraction of cycles the output stream is refused (default 0)")
    sys_.add_argument("--sim", choices=("icarus", "verilator"),
                      help="simulator (default: $SIM or icarus)")
    sys_.add_argument("--waves", action="store_true", help="keep a waveform for GTKWave (FST "
                      "from Icarus, VCD from Verilator) and print its path")
    sys_.add_argument("--json", action="store_true")
    add_gemv_parser(csub, _int_at_least)

    hdl = sub.add_parser("hdl", help="export Verilog of an RTL block, synthesise it, or place "
                         "and route it")
    hsub = hdl.add_subparsers(dest="action", required=True, metavar="ACTION")
    exp = hsub.add_parser("export", help="write Verilog (plus a JSON sidecar)")
    pnr = hsub.add_parser("pnr", help="synthesise and place and route a block with nextpnr "
                          "(YoWASP); report utilisation and Fmax",
                          description="The block goes behind a scan-chain pin wrapper "
                          "(rtl.pnr) so its wide ports fit the package. Needs "
                          "pip install 'pdsim[fpga]'.")
    for p in (exp, pnr):
        p.add_argument("block", choices=BLOCKS)
        _array_args(p, required=False)
        for name in ("max-m", "max-n", "max-k"):
            p.add_argument(f"--{name}", type=int, default=RESOURCE_BUFFERS,
                           help=f"systolic: buffer capacity (default {RESOURCE_BUFFERS})")
        add_nearbank_args(p, _int_at_least)
    exp.add_argument("-o", "--out", required=True, metavar="FILE.v")
    pnr.add_argument("--target", required=True, help="ice40 (UP5K) or ecp5 (LFE5U-85F)")
    pnr.add_argument("--seed", type=int, default=1, help="placer seed (default 1)")
    pnr.add_argument("--json", action="store_true")
    syn = hsub.add_parser("synth", help="synthesise Verilog with Yosys; report resources")
    syn.add_argument("file", metavar="FILE.v")
    syn.add_argument("--target", required=True, help="ice40, ecp5 or xilinx")
    syn.add_argument("--json", action="store_true")
    return {"cosim": _cosim, "hdl": _hdl}


def _config(args, m: int, n: int, k: int):
    from sim.units.systolic.datapath import DatapathConfig
    for flag in ("rows", "cols", "mode"):
        if getattr(args, flag) is None:
            raise PdsimError(f"--{flag}: required for the systolic block")
    return DatapathConfig(rows=args.rows, cols=args.cols, mode=args.mode,
                          max_m=m, max_n=n, max_k=k, dataflow=args.dataflow)


def _cosim(args: argparse.Namespace, argv: list[str]) -> int:
    from sim.units.systolic.datapath import DatapathModel, k_bound

    if args.block == "gemv":
        return cosim_gemv(args)
    cfg = _config(args, args.m, args.n, 1)          # validates rows, cols and mode
    if args.k > k_bound(args.mode):
        raise PdsimError(f"--k: {args.k} exceeds the {args.mode} accumulator bound "
                         f"(K <= {k_bound(args.mode)} for {cfg.acc_bits}-bit accumulators)")
    if not 0 <= args.backpressure < 1:
        raise PdsimError(f"--backpressure: must be in [0, 1), got {args.backpressure}")
    try:  # the runner imports cocotb only when it runs: check the whole tool chain now
        import cocotb  # noqa: F401
        import cocotb_tools.runner  # noqa: F401
        import ml_dtypes  # noqa: F401

        from testbenches.runner import build, run_gemms
    except ImportError as exc:
        raise PdsimError(f"cosim: needs cocotb and ml_dtypes; install them with "
                         f"pip install 'pdsim[rtl]' ({exc.name or exc} is missing)") from None

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
        from sim.text import to_json
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
    print(f"  sim.units.systolic.array fold model: {fold_model} compute cycles "
          f"(SCALE-Sim's count); the controller adds 3")
    for line in report["mismatches"][:10]:
        print(f"  mismatch: {line}")
    if waves:
        print(f"waves: {waves[0]}")
    return 0 if ok else 1


def _component(args: argparse.Namespace):
    """(Amaranth component, top name) of ``hdl export|pnr``'s block, validated first."""
    if args.block == "nearbank":
        cfg = nearbank_config(args)
        from rtl.nearbank import NearBankUnit
        return NearBankUnit(cfg), "pdsim_nearbank"
    cfg = _config(args, args.max_m, args.max_n, args.max_k)
    from rtl.controller import SystolicDatapath
    return SystolicDatapath(cfg), "pdsim_systolic"


def _hdl(args: argparse.Namespace, argv: list[str]) -> int:
    if args.action == "pnr":
        from rtl.pnr import place_and_route, tool_missing, wrapped_verilog
        missing = tool_missing(args.target)
        if missing:                      # before any HDL is generated
            raise PdsimError(missing)
        dut, top = _component(args)
        res = place_and_route(wrapped_verilog(dut, top), target=args.target, top=top,
                              seed=args.seed)
        if args.json:
            from sim.text import to_json
            print(to_json({"block": args.block, **res}))
            return 0
        used = ", ".join(f"{k} {u}/{a}" for k, (u, a) in res["utilisation"].items())
        print(f"{args.block} ({top}) on {res['device']}: Fmax {res['fmax_mhz']} MHz; {used} "
              f"({res['nextpnr']})")
        return 0
    if args.action == "export":
        out = check_output(args.out, "-o")
        check_output(out.with_suffix(".json"), "-o")  # the sidecar written beside it
        if args.block == "nearbank":
            from rtl.export import export_nearbank
            text, sidecar = export_nearbank(nearbank_config(args))
        else:
            cfg = _config(args, args.max_m, args.max_n, args.max_k)
            from rtl.export import export_verilog
            text, sidecar = export_verilog(cfg)
        sidecar_path = out.with_suffix(".json")
        atomic_text(out, text)
        atomic_text(sidecar_path, json.dumps(sidecar, indent=1) + "\n")
        print(f"wrote {out}")
        print(f"wrote {sidecar_path}")
        return 0
    from rtl.synth import synthesize
    res = synthesize(Path(args.file), target=args.target)
    if args.json:
        from sim.text import to_json
        print(to_json(res))
        return 0
    print(f"{args.file} ({res['top']}) on {res['target']}: {res['luts']} LUTs, {res['ffs']} "
          f"flip-flops, {res['dsps']} DSP blocks, {res['brams']} block RAMs, "
          f"{res['lutram']} LUT-RAM cells ({res['yosys']})")
    return 0
