"""``pdsim cid``: one op on a compute-in-DRAM unit, simulated command by command; and the
``cent`` study for ``pdsim reproduce``. Heavy imports stay inside the handler."""

from __future__ import annotations

import argparse
import sys

STUDIES = {"cent": ("results/cent", "sim.studies.cent:write_cent")}

OPS = ("gemv", "attention", "kv-append")


def add_commands(sub) -> dict:
    from sim.argtypes import dtype as _dtype, int_at_least as _int_at_least

    cid = sub.add_parser(
        "cid", help="one op on a compute-in-DRAM unit (command-level DRAM timing)",
        description="Simulate a GEMV, decode attention or a KV-cache append on PIM banks, "
        "command by command under every DRAM timing parameter; report cycles, internal "
        "bandwidth and energy. --hw is a DRAM preset (hbm3, gddr6-aim), a system preset "
        "with a CiD unit (attacc, cent, halo-package) or a YAML file of either.")
    cid.add_argument("--op", choices=OPS, default="gemv")
    cid.add_argument("--hw", default="hbm3", help="DRAM or CiD system preset, or YAML "
                     "(default hbm3: one AttAcc HBM3 stack)")
    cid.add_argument("--rows", type=_int_at_least(1), help="gemv: output rows N of W[N,K]")
    cid.add_argument("--cols", type=_int_at_least(1), help="gemv: input length K")
    cid.add_argument("--dtype", type=_dtype, default="fp16", help="weights / KV cache "
                     "(default fp16)")
    cid.add_argument("--mode", choices=("bank", "bankgroup", "buffer", "aim"),
                     help="where the MAC units sit (default: the preset's, or aim for "
                     "GDDR6-AiM and bank otherwise)")
    cid.add_argument("--stacks", type=_int_at_least(1), help="stacks or devices (default: "
                     "the preset's, 1 for a DRAM preset)")
    cid.add_argument("--tccd-ab", type=_int_at_least(1), metavar="CYCLES",
                     help="all-bank MAC delay (AttAcc: 6 power-limited, 4 without)")
    cid.add_argument("--context", type=_int_at_least(1), default=2048,
                     help="attention: cached tokens (default 2048)")
    cid.add_argument("--heads", type=_int_at_least(1), default=32)
    cid.add_argument("--kv-heads", type=_int_at_least(1), default=32)
    cid.add_argument("--head-dim", type=_int_at_least(1), default=128)
    cid.add_argument("--batch", type=_int_at_least(1), default=1,
                     help="sequences (attention, kv-append) or input vectors (gemv)")
    cid.add_argument("--check", action="store_true",
                     help="also record every DRAM command stream the op generated and check it "
                     "(timing, refresh, addresses, bank states, data latency); exit 1 on a "
                     "violation (a simulator bug)")
    cid.add_argument("--json", action="store_true")
    return {"cid": _cid}


def _unit(args: argparse.Namespace):
    """The CiD unit ``--hw`` and the overrides describe."""
    from pathlib import Path

    from sim.errors import ConfigError
    from sim.files import read_text
    from sim.units.cid.unit import CidUnit
    from sim.presets import load_hardware, preset_names
    from sim.schema import load_yaml
    from sim.units.cid.dram import dram_names

    spec = args.hw
    is_dram = spec in dram_names()
    if not is_dram and spec not in preset_names() and Path(spec).exists():
        data = load_yaml(read_text(spec, "--hw"), spec)  # a bad file fails here, once
        is_dram = isinstance(data, dict) and "org" in data
    if is_dram:
        from sim.units.cid.dram import load_dram
        device = load_dram(spec)
        mode = args.mode or ("aim" if device.type == "GDDR6-AiM" else "bank")
        return CidUnit(dram=spec, stacks=args.stacks or 1, mode=mode, tccd_ab=args.tccd_ab)
    system = load_hardware(spec).system
    unit = system.chip.cid
    if unit is None:
        with_cid = [n for n in preset_names() if load_hardware(n).system.chip.cid]
        raise ConfigError(f"--hw: {spec} has no CiD unit (CiD presets: {', '.join(with_cid)}; "
                          f"DRAM presets: {', '.join(dram_names())})")
    return CidUnit(dram=unit.dram, stacks=args.stacks or unit.stacks,
                   mode=args.mode or unit.mode,
                   tccd_ab=args.tccd_ab if args.tccd_ab is not None else unit.tccd_ab,
                   decode_ops=unit.decode_ops, prefill_ops=unit.prefill_ops, holds=unit.holds)


def _cid(args: argparse.Namespace, argv: list[str]) -> int:
    from sim.units.cid import ops as cid_ops
    from sim.units.cid.audit import StreamAudit
    from sim.dtypes import DTYPE_BITS
    from sim.errors import ConfigError
    from sim.limits import check_below_int64
    from sim.text import seconds, si, table, to_json

    unit = _unit(args)
    device = cid_ops.unit_device(unit)
    audit = StreamAudit() if args.check else None
    if args.op == "gemv":
        if args.rows is None or args.cols is None:
            raise ConfigError("--rows and --cols: required for --op gemv")
        one = cid_ops.unit_gemv(unit, args.rows, args.cols, args.dtype, audit)
        reps = args.batch
        what = f"gemv {args.rows} x {args.cols} {args.dtype}, {args.batch} vector(s)"
    elif args.op == "attention":
        if args.heads % args.kv_heads:
            raise ConfigError(f"--kv-heads: must divide --heads ({args.heads}), "
                              f"got {args.kv_heads}")
        kv_bytes = (2 * args.batch * args.kv_heads * args.context * args.head_dim
                    * DTYPE_BITS[args.dtype] // 8)
        have = device.org.capacity_bytes * unit.stacks
        if kv_bytes > have:
            raise ConfigError(f"--context: a {kv_bytes / 1e9:.1f} GB KV cache does not fit in "
                              f"{unit.stacks} x {device.name} ({have / 1e9:.1f} GB)")
        one = cid_ops.attention(device, unit.mode, batch=args.batch, heads=args.heads,
                                kv_heads=args.kv_heads, queries=1, keys=args.context,
                                head_dim=args.head_dim, dtype=args.dtype,
                                pcs=device.org.pcs * unit.stacks, audit=audit)
        reps = 2  # q.K^T and p.V stream the same bytes
        what = (f"decode attention (q.K^T + p.V), batch {args.batch}, {args.heads}/"
                f"{args.kv_heads} heads x {args.head_dim}, context {args.context}, {args.dtype}")
    else:
        nbytes = 2 * args.batch * args.kv_heads * args.head_dim * DTYPE_BITS[args.dtype] // 8
        have = device.org.capacity_bytes * unit.stacks
        if nbytes > have:  # the writes are simulated burst by burst: bound them like a cache
            raise ConfigError(f"--batch: one token's K and V of {nbytes / 1e9:.3g} GB do not "
                              f"fit in {unit.stacks} x {device.name} ({have / 1e9:.1f} GB)")
        one = cid_ops.unit_kv_append(unit, nbytes, audit)
        reps = 1
        what = (f"KV append of one token, batch {args.batch}, {args.kv_heads} KV heads x "
                f"{args.head_dim}, {args.dtype} ({nbytes} B)")
    check_below_int64("cycles", one.cycles * reps, "--batch/--heads/--context")
    time = one.time_s * reps
    internal = one.internal_bytes * reps
    energy = one.energy_j * reps
    external = device.org.bandwidth_bytes_per_s * unit.stacks
    peak = cid_ops.peak_internal_bytes_per_s(device, unit.mode) * unit.stacks
    achieved = internal / time if internal else 0.0
    out = {
        "op": args.op, "what": what, "hw": args.hw, "dram": device.name,
        "stacks": unit.stacks, "mode": unit.mode, "tCCD_AB": device.timing.tCCD_AB,
        "cycles": one.cycles * reps, "time_s": time,
        "internal_bytes": internal, "useful_bytes": one.useful_bytes * reps,
        "internal_bandwidth_bytes_per_s": achieved,
        "peak_internal_bandwidth_bytes_per_s": peak,
        "external_bandwidth_bytes_per_s": external,
        "internal_over_external": achieved / external,
        "energy_j": energy,
        "energy_pj_per_bit": energy / (one.useful_bytes * reps * 8) * 1e12,
        "commands_per_pc": one.counts,
    }
    # A violation is the simulator's bug, not bad input: exit 1 (2 is for bad input).
    failed = 1 if audit is not None and audit.violations else 0
    if audit is not None:
        out["dram_check"] = audit.summary()
    if args.json:
        print(to_json(out))
        return failed
    if internal:
        moved = ("internal bandwidth", f"{si(achieved, 'B/s')} ({achieved / external:.2f}x the "
                 f"pins' {si(external, 'B/s')}; peak {peak / external:.2f}x)")
    else:
        written = one.useful_bytes * reps / time
        moved = ("write bandwidth", f"{si(written, 'B/s')} (pins: {si(external, 'B/s')})")
    rows = [
        ("cycles (one PC)", f"{out['cycles']:,}"),
        ("time", seconds(time)),
        moved,
        ("energy", f"{energy * 1e6:.4g} uJ ({out['energy_pj_per_bit']:.3g} pJ per operand "
                   f"bit)"),
        ("commands per PC", ", ".join(f"{k} {v}" for k, v in one.counts.items())),
    ]
    print(table(rows, f"{what} on {unit.stacks} x {device.name} ({unit.mode} mode, "
                      f"tCCD_AB {device.timing.tCCD_AB})"))
    if audit is not None:
        print(audit.headline())
        for line in audit.lines():
            print(line, file=sys.stderr)
    return failed
