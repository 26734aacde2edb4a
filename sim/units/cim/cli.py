"""``pdsim cim``: one GEMM on a bank of analog CiM crossbars (`sim.units.cim.cost`), and the
``cim-accuracy`` study (`sim.studies.cim_accuracy`) for ``pdsim reproduce`` (HALO's extremes
are a section of ``pdsim reproduce halo``)."""

from __future__ import annotations

import argparse

#: ``pdsim reproduce cim-accuracy`` regenerates ``results/cim/``.
STUDIES = {"cim-accuracy": ("results/cim", "sim.studies.cim_accuracy:write_cim_accuracy")}


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

    from sim.limits import check_gemm_size

    check_gemm_size(args.m, args.n, args.k, 8)  # any dtype is at most 8 bytes
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
    from sim.text import seconds, si

    e = r.energy
    parts = ", ".join(f"{name} {si(j, 'J')}" for name, j in (
        ("DAC", e.dac), ("crossbar read", e.crossbar_read), ("ADC", e.adc),
        ("shift-add", e.shift_add), ("accumulate", e.accumulate), ("write", e.write),
        ("I/O", e.io)))
    lines = [
        f"{args.m}x{args.n}x{args.k} GEMM on {unit.name} ({unit.crossbars} crossbars of "
        f"{unit.crossbar.rows}x{unit.crossbar.cols}), {r.weight_bits}-bit weights in "
        f"{r.slices} slices, {r.input_bits}-bit inputs in {r.input_cycles} reads",
        f"  time                 {seconds(r.time_s)} ({r.cycles:,.0f} cycles at "
        f"{si(unit.periphery.clock_hz, 'Hz')})",
        f"  compute              {seconds(r.compute_s)} ({r.m} tokens, read step "
        f"{seconds(r.step_s)})",
        f"  reprogramming        {seconds(r.program_s)}, {si(r.program_energy_j, 'J')} "
        f"({si(r.program_bytes, 'B')} of weights, {r.cells_programmed:,.0f} cells)",
        f"  activation I/O       {seconds(r.io_s)} (overlapped with compute)",
        f"  crossbars            {r.crossbars_used} used: {r.crossbars_per_copy} per copy "
        f"({r.row_tiles} row x {r.col_tiles} column tiles) x {r.replicas} replicas, "
        f"{r.passes} pass{'es' if r.passes > 1 else ''}"
        + ("" if r.fits else " (weights do not fit: reprogrammed pass by pass)"),
        f"  utilisation          {r.utilization:.1%} of peak MAC rate",
        f"  energy               {si(e.total, 'J')}: {parts}",
    ]
    print("\n".join(lines))
    return 0
