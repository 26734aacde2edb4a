"""Reference model of the near-bank processing unit (`rtl.nearbank.NearBankUnit`).

One unit sits next to one bank (``bank``/``aim`` modes: every bank of a pseudo-channel has
one and all of them take the same all-bank commands). It holds a global buffer (GB) with the
input vector, one accumulator per packed weight row, and a MAC pipeline of ``lanes`` lanes
that takes one burst of weights (``lanes`` codes plus a 16-bit side-band) from its bank.

Numerics (exact, so the RTL and this model agree bit for bit by construction and the result
does not depend on the order of accumulation):

* ``fp16``: weights and inputs are IEEE binary16 codes. Every code is an integer multiple of
  ``2^-24``; the product of two is an integer multiple of ``2^-48``; the unit accumulates
  ``2^48 w x`` exactly in a signed fixed-point register (``frac_bits`` = 48). Inf and NaN
  codes (exponent 31) decode as zero, negative zero as zero.
* ``int8`` / ``int4``: weights and inputs are two's-complement codes of the weight's width
  (the engine sizes the global-buffer writes by the weight width, so the input vector has it
  too); each burst is one quantisation group of ``lanes`` weights with an fp16 scale on the
  burst's side-band: the unit sums ``w x`` over the lanes exactly, then multiplies by the
  scale exactly (``2^24 scale`` is an integer) and accumulates ``2^24 scale sum(w x)``.
  ``frac_bits`` = 24.

The host rounds the exact result once (e.g. to fp32, round-to-nearest-even) after reducing the
partial sums of a row's chunks; the RTL's and the model's outputs are the exact integers.

The command set mirrors the CiD engine's all-bank commands (`sim.units.cid.engine`):
``ACT`` (row), ``PRE``, ``REF``, ``MAC`` (column, GB entry, accumulator), ``WRGB``
(GB entry, one burst of inputs) and ``RDRES`` (first accumulator, count): `unit_program`
translates an engine stream into one unit's commands, cycle for cycle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.units.cid.engine import (ACT_AB, COMMANDS, MAC_AB, PRE_AB, RDRES, REF, WRGB)
from sim.units.cid.layout import ACC_BYTES, GemvLayout

#: Weight formats: bits per code, fraction bits of the accumulator.
WDTYPES = {"fp16": (16, 48), "int8": (8, 24), "int4": (4, 24)}
#: Opcodes of the unit's command port.
OPS = {"ACT": 0, "PRE": 1, "REF": 2, "MAC": 3, "WRGB": 4, "RDRES": 5}
SCALE_ONE = 0x3C00  # fp16 1.0


def fp16_fixed(code: int) -> int:
    """``2^24`` times the value of an fp16 code, an exact integer (inf/NaN: 0)."""
    code = int(code) & 0xFFFF
    sign, exp, frac = code >> 15, (code >> 10) & 0x1F, code & 0x3FF
    if exp == 31:
        return 0
    mant = frac | (1 << 10) if exp else frac
    mag = mant << (max(exp, 1) - 1)
    return -mag if sign else mag


def signed_code(code: int, bits: int) -> int:
    """Two's-complement value of the low ``bits`` of ``code``."""
    code = int(code) & ((1 << bits) - 1)
    return code - (1 << bits) if code >> (bits - 1) else code


def _bits_for(value: int) -> int:
    return max(1, int(value - 1).bit_length())


@dataclass(frozen=True, slots=True, kw_only=True)
class NearBankConfig:
    """Parameters of one near-bank unit.

    ``lanes``: MAC lanes, weights per burst (``burst_bytes * 8 / bits``; 16 for fp16 on a
    32-byte burst, AiM / HBM-PIM style). ``wdtype``: a key of `WDTYPES`. ``acc_rows``:
    accumulators (weight rows one step can pack). ``gb_entries``: global-buffer entries of one
    burst each. ``max_macs``: MACs into one accumulator between two reads (sizes the
    accumulator). ``rows``/``columns``: the bank's row and column address ranges.
    ``rd_max``: accumulators one RDRES returns. ``pending``: MACs in flight (data not yet
    back from the bank) the unit can hold.
    """

    lanes: int
    wdtype: str
    acc_rows: int
    gb_entries: int
    max_macs: int
    rows: int = 16384
    columns: int = 64
    rd_max: int = 8
    pending: int = 16

    def __post_init__(self) -> None:
        if self.wdtype not in WDTYPES:
            raise ValueError(f"wdtype: unknown weight format {self.wdtype!r} "
                             f"(allowed: {', '.join(WDTYPES)})")
        for name in ("lanes", "acc_rows", "gb_entries", "max_macs", "rows", "columns",
                     "rd_max", "pending"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")

    @property
    def bits(self) -> int:
        return WDTYPES[self.wdtype][0]

    @property
    def frac_bits(self) -> int:
        return WDTYPES[self.wdtype][1]

    @property
    def scaled(self) -> bool:
        """Integer formats carry a per-burst fp16 scale on the side-band."""
        return self.wdtype != "fp16"

    @property
    def burst_bits(self) -> int:
        return self.lanes * self.bits

    @property
    def burst_bits_log(self) -> int:
        """Bits of ``|contribution of one burst|`` (largest magnitude, exclusive)."""
        if self.wdtype == "fp16":
            # |m1 m2| < 2^22, shifted by up to 29 + 29 places
            return 80 + _bits_for(self.lanes)
        # |sum w x| <= lanes 2^(2 bits - 2); x scale mantissa < 2^11, shift <= 29
        return 2 * self.bits - 2 + _bits_for(self.lanes + 1) + 11 + 29

    @property
    def acc_bits(self) -> int:
        """Signed accumulator width: no overflow for ``max_macs`` bursts."""
        return self.burst_bits_log + _bits_for(self.max_macs + 1) + 1


def burst_contribution(config: NearBankConfig, w_codes, x_codes, scale_code: int) -> int:
    """Exact fixed-point value (``2^frac_bits`` units) one MAC adds: the burst's weight codes
    times the GB entry's input codes (``lanes`` each), scaled for integer formats."""
    if config.wdtype == "fp16":
        return sum(fp16_fixed(w) * fp16_fixed(x) for w, x in zip(w_codes, x_codes))
    b = config.bits
    psum = sum(signed_code(w, b) * signed_code(x, b) for w, x in zip(w_codes, x_codes))
    return psum * fp16_fixed(scale_code)


@dataclass(frozen=True, slots=True)
class UnitCommand:
    """One command of the unit's port at engine cycle ``cycle``."""

    cycle: int
    op: str
    row: int = 0
    col: int = 0
    gb: int = 0
    acc: int = 0
    n: int = 0
    data: tuple[int, ...] = ()


def unit_program(layout: GemvLayout, stream: np.ndarray, unit: int,
                 x_codes: np.ndarray) -> list[UnitCommand]:
    """Translate a PC's recorded engine stream (`sim.units.cid.engine.run_channel`,
    ``record=True``) into unit ``unit``'s commands at the same cycles; ``WRGB`` carries the
    burst of ``x_codes`` (pseudo-channel 0 of the layout) it writes.

    A step's MAC on column ``j`` feeds accumulator ``j // cols_per_row`` with GB entry
    ``j % cols_per_row`` (packed rows, K within one step) or accumulator 0 with GB entry ``j``
    (chunks of a long row). RDRES ``r`` returns bytes ``r B .. (r+1) B`` of the result space,
    in which unit ``u``'s accumulator ``a`` occupies ``ACC_BYTES`` at ``(u P + a) ACC_BYTES``
    (``P`` accumulators per unit and step)."""
    lay = layout
    if lay.mode not in ("bank", "aim"):
        raise ValueError(f"unit_program: mode {lay.mode!r} has no per-bank unit "
                         "(bank or aim only)")
    per = min(lay.pack, lay.local_rows) if lay.chunks == 1 else 1
    per_read = lay.lanes * lay.bits // 8 // ACC_BYTES
    out = []
    writes = 0
    for cycle, cmd, _g, _k, row, col in stream.tolist():
        if cmd == ACT_AB:
            out.append(UnitCommand(cycle, "ACT", row=row))
        elif cmd == PRE_AB:
            out.append(UnitCommand(cycle, "PRE"))
        elif cmd == REF:
            out.append(UnitCommand(cycle, "REF"))
        elif cmd == WRGB:
            chunk = writes // lay.gb_writes
            writes += 1
            base = (chunk * lay.split) * lay.step_elems if lay.chunks > 1 else 0
            lo = base + col * lay.lanes
            seg = [int(v) for v in x_codes[lo:min(lo + lay.lanes, lay.k, base + lay.step_elems)]]
            out.append(UnitCommand(cycle, "WRGB", gb=col,
                                   data=tuple(seg + [0] * (lay.lanes - len(seg)))))
        elif cmd == MAC_AB:
            if lay.chunks == 1:
                acc, gb = divmod(col, lay.cols_per_row)
            else:
                acc, gb = 0, col
            out.append(UnitCommand(cycle, "MAC", col=col, gb=gb, acc=acc))
        elif cmd == RDRES:
            lo = max(0, col * per_read - unit * per)
            hi = min(per, (col + 1) * per_read - unit * per)
            out.append(UnitCommand(cycle, "RDRES", acc=lo if hi > lo else 0,
                                   n=max(0, hi - lo)))
        else:
            raise ValueError(f"unit_program: {COMMANDS[cmd]} is not an all-bank command")
    return out


def expected_gemv(config: NearBankConfig, w: np.ndarray, x: np.ndarray,
                  scales: np.ndarray | None) -> list[int]:
    """``2^frac_bits y`` of ``y = W x`` exactly: ``W`` (n x k codes), ``x`` (k codes),
    ``scales`` (n x ceil(k / lanes) fp16 codes, integer formats; group = one burst)."""
    n, k = w.shape
    y = []
    for r in range(n):
        total = 0
        for g in range(-(-k // config.lanes)):
            lo, hi = g * config.lanes, min(k, (g + 1) * config.lanes)
            s = SCALE_ONE if scales is None else int(scales[r, g])
            total += burst_contribution(config, w[r, lo:hi], x[lo:hi], s)
        y.append(total)
    return y


def unit_banks(layout: GemvLayout, rows: int, w: np.ndarray,
               scales: np.ndarray | None) -> list[dict]:
    """Per unit of pseudo-channel 0, its bank's bursts: ``{(row, col): (codes, scale)}``
    (DRAM row ``(chunk steps + step) mod rows``, as the engine opens them; ``scales`` as in
    `expected_gemv`, None for fp16)."""
    lay = layout
    banks: list[dict] = [{} for _ in range(lay.units)]
    n_idx, k_idx = np.meshgrid(np.arange(lay.n), np.arange(lay.k), indexing="ij")
    pc, unit, cl, step, col, lane = lay.address(n_idx.ravel(), k_idx.ravel())
    for i in np.flatnonzero(pc == 0):
        key = (int((cl[i] * lay.steps + step[i]) % rows), int(col[i]))
        u, r, kk = int(unit[i]), int(n_idx.ravel()[i]), int(k_idx.ravel()[i])
        if key not in banks[u]:
            s = SCALE_ONE if scales is None else int(scales[r, kk // lay.lanes])
            banks[u][key] = ([0] * lay.lanes, s)
        banks[u][key][0][int(lane[i])] = int(w[r, kk])
    return banks


def reduce_results(layout: GemvLayout, results: list[list[list[int]]]) -> list[int]:
    """Rows of ``y`` (``2^frac_bits`` units) from every unit's RDRES results (pseudo-channel
    0, ``split`` 1): step by step, accumulator ``a`` holds row ``(s pack + a) G + unit``
    (packed rows) or ``s G + unit`` (chunks, summed over the chunks)."""
    lay = layout
    if lay.pcs != 1:
        raise ValueError("reduce_results: a one-PC layout only")
    y = [0] * lay.n
    for u, reads in enumerate(results):
        for i in range(0, len(reads), lay.reads):
            step = (i // lay.reads) % lay.steps
            values = [v for r in reads[i:i + lay.reads] for v in r]
            for a, v in enumerate(values):
                loc = step * lay.pack + a if lay.chunks == 1 else step
                row = loc * lay.groups + u
                if row < lay.n:
                    y[row] += v
    return y


class UnitModel:
    """Cycle-free functional replay of one unit's commands: a bank of bursts (``bank[(row,
    col)]`` is ``(weight codes, scale code)``, zero where absent), the GB and the
    accumulators. Returns the list of RDRES results in order."""

    def __init__(self, config: NearBankConfig) -> None:
        self.config = config

    def run(self, program: list[UnitCommand], bank: dict) -> list[list[int]]:
        cfg = self.config
        acc = [0] * cfg.acc_rows
        gb: dict[int, list[int]] = {}
        open_row = None
        results = []
        for c in program:
            if c.op == "ACT":
                open_row = c.row
            elif c.op == "PRE":
                open_row = None
            elif c.op == "WRGB":
                gb[c.gb] = list(c.data)
            elif c.op == "MAC":
                if open_row is None:
                    raise ValueError(f"MAC at cycle {c.cycle} with no open row")
                codes, scale = bank.get((open_row, c.col), ([0] * cfg.lanes, SCALE_ONE))
                acc[c.acc] += burst_contribution(cfg, codes, gb.get(c.gb, [0] * cfg.lanes),
                                                 scale)
            elif c.op == "RDRES":
                results.append(acc[c.acc:c.acc + c.n])
                for a in range(c.acc, c.acc + c.n):
                    acc[a] = 0
        return results


def unit_config(device, wdtype: str) -> NearBankConfig:
    """The unit that fits ``device`` (a `sim.units.cid.dram.DramDevice`) for ``wdtype``:
    lanes = weights per burst, one accumulator and GB entry per column of a step, a read of
    one burst of ``ACC_BYTES`` results, and enough tag slots for every MAC issued within
    ``tCL`` (plus the pipeline) at the fastest command rate."""
    if wdtype not in WDTYPES:
        raise ValueError(f"wdtype: unknown weight format {wdtype!r} "
                         f"(allowed: {', '.join(WDTYPES)})")
    org, t = device.org, device.timing
    bits = WDTYPES[wdtype][0]
    lanes = org.burst_bytes * 8 // bits
    step_elems = org.row_bytes * 8 // bits
    if device.global_buffer_bytes:
        step_elems = min(step_elems, device.global_buffer_bytes * 8 // bits)
    cols = step_elems // lanes
    gap = max(1, min(t.tCCD_AB, t.tCCD_S))
    return NearBankConfig(lanes=lanes, wdtype=wdtype, acc_rows=cols, gb_entries=cols,
                          max_macs=cols, rows=org.rows, columns=org.columns,
                          rd_max=org.burst_bytes // ACC_BYTES,
                          pending=-(-(t.tCL + 4) // gap) + 4)
