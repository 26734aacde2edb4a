"""`pdsim cosim gemv` and the near-bank unit's `pdsim hdl export|pnr` arguments.

`sim.units.systolic.cli` owns the ``cosim`` and ``hdl`` commands and calls in here for the
decode block. Imports of Amaranth, cocotb and the RTL happen inside the handlers; bad
arguments are refused (one line, exit code 2) before any HDL is generated.
"""

from __future__ import annotations

import argparse

from sim.errors import PdsimError

WDTYPES = ("int4", "int8", "fp16")
DEFAULT_HW = "cent"


def add_gemv_parser(csub, int_at_least) -> None:
    """``pdsim cosim gemv`` under the ``cosim`` subparsers ``csub``."""
    g = csub.add_parser("gemv", help="the near-bank GEMV decode unit, driven by the CiD "
                        "engine's command stream",
                        description="Lay out y = W x on one pseudo-channel of the CiD system, "
                        "run it on the command-level engine, replay the recorded commands into "
                        "every bank's near-bank unit (RTL under cocotb, one launch) at the "
                        "engine's cycles, and check the results bit for bit against the exact "
                        "model and that the RTL accepted every command when the engine issued "
                        "it. Exit code 1 on any mismatch.")
    g.add_argument("--rows", type=int_at_least(1), required=True, help="rows of W (outputs)")
    g.add_argument("--cols", type=int_at_least(1), required=True, help="columns of W (inputs)")
    g.add_argument("--wdtype", choices=WDTYPES, required=True, help="weight format")
    g.add_argument("--hw", default=DEFAULT_HW, help="CiD system or DRAM preset, or YAML "
                   f"(default {DEFAULT_HW}); its unit must be in bank or aim mode")
    g.add_argument("--seed", type=int_at_least(0), default=0, help="operand seed (default 0)")
    g.add_argument("--sim", choices=("icarus", "verilator"),
                   help="simulator (default: $SIM or icarus)")
    g.add_argument("--json", action="store_true")


def device_and_mode(hw: str):
    """The DRAM device and PIM mode of ``--hw``; refuses modes without a per-bank unit."""
    from sim.units.cid.cli import _unit
    from sim.units.cid.ops import unit_device

    unit = _unit(argparse.Namespace(hw=hw, mode=None, stacks=None, tccd_ab=None))
    if unit.mode not in ("bank", "aim"):
        raise PdsimError(f"--hw: {hw}'s CiD unit is in {unit.mode} mode; the near-bank unit "
                         "models the bank and aim modes (a MAC unit per bank)")
    return unit_device(unit), unit.mode


def cosim_gemv(args: argparse.Namespace) -> int:
    from sim.units.cid.layout import gemv_layout

    device, mode = device_and_mode(args.hw)
    lay = gemv_layout(device, mode, args.rows, args.cols, args.wdtype, pcs=1)   # capacity
    try:
        from testbenches.nearbank_runner import prepare, run
    except ImportError as exc:
        raise PdsimError(f"cosim: needs cocotb (pip install 'pdsim[rtl]'): {exc}") from None
    case = {"name": "cosim", "rows": args.rows, "cols": args.cols, "wdtype": args.wdtype,
            "seed": args.seed}
    prep = prepare(device, mode, args.wdtype, [case])
    report = run(prep, sim=args.sim)
    g = report["gemvs"][0]
    ok = g["results_match"] and g["cycles_match"] and not report["mismatches"]
    cfg = prep.config
    if args.json:
        from sim.text import to_json
        print(to_json({"rows": args.rows, "cols": args.cols, "wdtype": args.wdtype,
                       "hw": args.hw, "dram": device.name, "mode": mode, "seed": args.seed,
                       "simulator": report["simulator"], "lanes": cfg.lanes,
                       "acc_bits": cfg.acc_bits, "acc_frac_bits": cfg.frac_bits,
                       "chunks": lay.chunks, "pack": lay.pack, "units": g["units"],
                       "engine_cycles": g["engine_cycles"], "commands": g["commands"],
                       "command_counts": prep.meta[0]["counts"],
                       "last_result_cycle": g["last_result_cycle"],
                       "rtl_cycles": report["rtl_cycles"], "refused": g["refused"],
                       "late_results": g["late_results"],
                       "bank_violations": g["bank_violations"],
                       "results_match": g["results_match"], "cycles_match": g["cycles_match"],
                       "match": ok, "mismatches": report["mismatches"]}))
        return 0 if ok else 1
    print(f"gemv y[{args.rows}] = W[{args.rows}x{args.cols}] x, {args.wdtype} on {device.name} "
          f"({mode} mode, one pseudo-channel), seed {args.seed}, {report['simulator']}; "
          f"{cfg.lanes} lanes, {cfg.acc_bits}-bit accumulators")
    print(f"  engine: {g['commands']} commands "
          f"({', '.join(f'{k} {v}' for k, v in prep.meta[0]['counts'].items())}), "
          f"{g['engine_cycles']} cycles")
    print(f"  RTL: {g['units']} units replayed, {report['rtl_cycles']} cycles simulated; "
          f"last result at cycle {g['last_result_cycle']}")
    print(f"  commands refused or late: {g['refused']}; results after the engine's data "
          f"cycle: {g['late_results']}; bank timing violations: {g['bank_violations']}")
    print(f"  results: {'bit-exact vs the model' if g['results_match'] else 'MISMATCH'} "
          f"({args.rows} values); cycles: {'agree' if g['cycles_match'] else 'DIFFER'}")
    for line in report["mismatches"][:10]:
        print(f"  mismatch: {line}")
    return 0 if ok else 1


def add_nearbank_args(p: argparse.ArgumentParser, int_at_least) -> None:
    """Parameters of the near-bank unit for ``hdl export`` / ``hdl pnr``."""
    p.add_argument("--wdtype", choices=WDTYPES, help="nearbank: weight format")
    p.add_argument("--lanes", type=int_at_least(1), help="nearbank: MAC lanes (default: "
                   "weights per burst of --hw's DRAM)")
    p.add_argument("--acc-rows", type=int_at_least(1), help="nearbank: accumulators "
                   "(default: columns per step of --hw's DRAM)")
    p.add_argument("--hw", default=DEFAULT_HW, help=f"nearbank: CiD system (default "
                   f"{DEFAULT_HW})")


def nearbank_config(args: argparse.Namespace):
    """The `NearBankConfig` the arguments describe (``--hw``'s unit, then overrides)."""
    from dataclasses import replace

    from sim.units.cid.nearbank_model import unit_config

    if args.wdtype is None:
        raise PdsimError(f"--wdtype: required for the nearbank block "
                         f"(allowed: {', '.join(WDTYPES)})")
    device, _ = device_and_mode(args.hw)
    cfg = unit_config(device, args.wdtype)
    changes = {}
    if args.lanes is not None:
        changes["lanes"] = args.lanes
    if args.acc_rows is not None:
        changes.update(acc_rows=args.acc_rows, gb_entries=args.acc_rows)
    return replace(cfg, **changes)
