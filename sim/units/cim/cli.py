"""``pdsim cim``: one GEMM on a bank of analog CiM crossbars (`sim.units.cim.cost`), and the
``cim-accuracy`` (`sim.studies.cim_accuracy`) and ``extremes`` (`sim.studies.extremes`)
studies for ``pdsim reproduce``."""

from __future__ import annotations

import argparse

#: ``pdsim reproduce cim-accuracy`` regenerates ``results/cim/``.
STUDIES = {"cim-accuracy": ("results/cim", "sim.studies.cim_accuracy:write_cim_accuracy"),
           "extremes": ("results/extremes", "sim.studies.extremes:write_extremes")}


def add_commands(sub) -> dict:
    """Add ``pdsim cim`` to the subparsers ``sub``; return its handler."""
    from sim.argtypes import dtype as _dtype, int_at_least as _int_at_least

    p = sub.add_parser(
        "cim", help="one GEMM on analog CiM crossbars: cycles, energy, reprogramming",
        description="C[M,N] = A[M,K] @ W[K,N] on a bank of analog compute-in-memory "
        "crossbars: weight tiling, bit-serial inputs, ADC sharing, token pipelining, and the "
        "cost of programming the weights unless --resident (docs/cim.md).")
    p.add_argument("--m", type=_int_at_least(1), required=True, help="tokens (rows of A)")
    p.add_argument("--n", type=_int_at_least(1), required=True, help="output features")
    p.add_argument("--k", type=_int_at_least(1), required=True, help="input features")
    p.add_argument("--hw", default="halo-cim", help="CiM preset or YAML file "
                   "(default: halo-cim)")
    p.add_argument("--weight-dtype", type=_dtype, help="weight format, its width sliced across "
                   "cells (default: the crossbar's weight_bits)")
    p.add_argument("--act-dtype", type=_dtype, help="input format, fed bit-serially "
                   "(default: the crossbar's input_bits)")
    p.add_argument("--resident", action="store_true", help="weights are already programmed "
                   "(default: program them first and charge it)")
    p.add_argument("--json", action="store_true", help="print JSON")
    return {"cim": _cim}


def _cim(args: argparse.Namespace, argv: list[str]) -> int:
    from sim.units.cim.cost import cim_gemm
    from sim.units.cim.crossbar import load_cim
    from sim.text import to_json

    spec = load_cim(args.hw)
    unit = spec.unit
    r = cim_gemm(unit, args.m, args.n, args.k, weight_dtype=args.weight_dtype,
                 act_dtype=args.act_dtype,
                 resident_weights_bytes=(-(-args.n * args.k * 32 // 8) if args.resident
                                         else 0))
    out = {"hw": unit.name, "source": spec.source, **r.as_dict()}
    if args.json:
        print(to_json(out))
        return 0
    e = r.energy
    lines = [
        f"{args.m}x{args.n}x{args.k} GEMM on {unit.name} ({unit.crossbars} crossbars of "
        f"{unit.crossbar.rows}x{unit.crossbar.cols}), {r.weight_bits}-bit weights in "
        f"{r.slices} slices, {r.input_bits}-bit inputs in {r.input_cycles} reads",
        f"  time                 {r.time_s * 1e3:.6g} ms ({r.cycles:.6g} cycles at "
        f"{unit.periphery.clock_hz / 1e9:g} GHz)",
        f"  compute              {r.compute_s * 1e3:.6g} ms ({r.m} tokens, read step "
        f"{r.step_s * 1e9:.4g} ns)",
        f"  reprogramming        {r.program_s * 1e3:.6g} ms, {r.program_energy_j * 1e3:.6g} mJ "
        f"({r.program_bytes:.6g} weight bytes, {r.cells_programmed:.6g} cells)",
        f"  activation I/O       {r.io_s * 1e3:.6g} ms (overlapped with compute)",
        f"  crossbars            {r.crossbars_used} used: {r.crossbars_per_copy} per copy "
        f"({r.row_tiles} row x {r.col_tiles} column tiles) x {r.replicas} replicas, "
        f"{r.passes} pass{'es' if r.passes > 1 else ''}"
        + ("" if r.fits else " (weights do not fit: reprogrammed pass by pass)"),
        f"  utilisation          {r.utilization:.1%} of peak MAC rate",
        f"  energy               {e.total * 1e3:.6g} mJ: DAC {e.dac * 1e3:.4g}, crossbar read "
        f"{e.crossbar_read * 1e3:.4g}, ADC {e.adc * 1e3:.4g}, shift-add "
        f"{e.shift_add * 1e3:.4g}, accumulate {e.accumulate * 1e3:.4g}, write "
        f"{e.write * 1e3:.4g}, I/O {e.io * 1e3:.4g} (mJ)",
    ]
    print("\n".join(lines))
    return 0
