"""Time and energy of a GEMM on an analog CiM unit (`sim.units.cim.crossbar.CimUnit`) and of
the GEMM and LM-head ops placed on one; which of a pass's weights stay programmed on it, and
the engine's unit model, are in `sim.units.cim.residency`.

One read step of a crossbar takes ``max(read_time_s, ceil(conversions / adcs) x adc_time_s)``
(sample-and-hold lets the next read overlap the conversions, as in ISAAC), with ``S`` slices
per weight and ``T`` reads per input vector as `sim.units.cim.crossbar` defines them. Digital
shift-and-add rebuilds each output from its ``T x S`` codes; partial sums of the
``R = ceil(K / rows)`` row tiles are added.

A GEMM ``C[M,N] = A[M,K] @ W[K,N]`` needs ``R x ceil(N / weights per crossbar row)``
crossbars for one copy of ``W``. Tokens are pipelined: a crossbar starts the next token's
input slices as soon as the last one of the current token is read, so ``M`` tokens take
``M x T`` read steps plus one pipeline latency (the last conversions, a shift-add and an
adder tree over the row tiles).

Weight residency: weights already programmed (``resident_weights_bytes``) cost nothing to use.
Weights that are not are programmed before use (program-and-verify writes, row by row; at most
``write_parallel_crossbars`` crossbars at a time, and no faster than the weights arrive over
``weight_load_bandwidth_bytes_per_s``), and that time and energy are charged to the GEMM. When
the weights need more crossbars than the chip has, the GEMM runs in passes: program as many
crossbars as there are, stream all ``M`` tokens through them, program the next part. When they
need fewer and are programmed anyway, spare crossbars take copies (replicas) that work on
different tokens; the replica count is chosen to minimise the GEMM's time (ISAAC and PUMA
replicate weights the same way to balance their pipelines).

Not modelled: on-chip buffers and the network between tiles (ISAAC's eDRAM and bus), leakage,
overlap of programming with computation (which would need spare crossbars), ISAAC's weight
flipping trick that saves one ADC bit. `docs/cim.md` has the model with its closed forms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mappers.ir import Op, OpKind

from sim.cost import Cost
from sim.units.cim.crossbar import CimUnit, Crossbar
from sim.dtypes import DTYPE_BITS, check_dtype
from sim.errors import ConfigError

_PJ = 1e-12

#: Op kinds that CiM runs: the weight GEMMs (QKV, O, MLP) and the LM head.
CIM_KINDS = frozenset({OpKind.GEMM, OpKind.LM_HEAD})


@dataclass(frozen=True, slots=True, kw_only=True)
class CimEnergy:
    """Energy of one GEMM by component, in joules."""

    dac: float
    crossbar_read: float
    adc: float
    shift_add: float
    accumulate: float
    write: float
    io: float

    @property
    def total(self) -> float:
        return (self.dac + self.crossbar_read + self.adc + self.shift_add + self.accumulate
                + self.write + self.io)

    def as_dict(self) -> dict[str, float]:
        return {"dac": self.dac, "crossbar_read": self.crossbar_read, "adc": self.adc,
                "shift_add": self.shift_add, "accumulate": self.accumulate,
                "write": self.write, "io": self.io, "total": self.total}


@dataclass(frozen=True, slots=True, kw_only=True)
class CimResult:
    """Time and energy of ``C[M,N] = A[M,K] @ W[K,N]`` on a CiM unit.

    ``time_s = program_s + max(compute_s, io_s)``: programming (all passes) is not overlapped
    with computing; activations stream in and out (``io_s``) while the crossbars compute.
    ``crossbars_per_copy`` hold one copy of ``W``; ``replicas`` copies work on different
    tokens; ``passes > 1`` when one copy does not fit and the GEMM is done part by part.
    ``utilization`` is the MAC rate achieved over the unit's peak at these bit widths.
    ``program_energy_j`` is the part of the energy spent reprogramming: the cell writes and
    the I/O of the weight bytes brought in.
    """

    m: int
    n: int
    k: int
    weight_bits: int
    input_bits: int
    slices: int
    input_cycles: int
    row_tiles: int
    col_tiles: int
    crossbars_per_copy: int
    replicas: int
    passes: int
    crossbars_used: int
    fits: bool
    step_s: float
    compute_s: float
    program_s: float
    io_s: float
    time_s: float
    cycles: float
    program_cycles: float
    weight_bytes: int
    program_bytes: float
    act_bytes: float
    cells_programmed: float
    adc_conversions: int
    energy: CimEnergy
    program_energy_j: float
    utilization: float

    @property
    def energy_j(self) -> float:
        return self.energy.total

    def as_dict(self) -> dict:
        """Every field, with the energy as a mapping by component (JSON-ready)."""
        out = {f: getattr(self, f) for f in self.__dataclass_fields__ if f != "energy"}
        out["energy_j"] = self.energy.as_dict()
        return out


def _dtype_bits(dtype: str | None, default: int, field: str) -> int:
    if dtype is None:
        return default
    return DTYPE_BITS[check_dtype(dtype, field)]


def cim_gemm(unit: CimUnit, m: int, n: int, k: int, *, weight_dtype: str | None = None,
             act_dtype: str | None = None, resident_weights_bytes: int = 0,
             crossbars_available: int | None = None) -> CimResult:
    """Time and energy of ``C[m,n] = A[m,k] @ W[k,n]`` on ``unit``.

    ``weight_dtype`` and ``act_dtype`` set the bits sliced across cells and fed through the
    DACs (their storage width; floating formats are treated as fixed point of that width, as
    ISAAC and PUMA run 16-bit data); None means the crossbar's own ``weight_bits`` and
    ``input_bits``. ``resident_weights_bytes`` of ``W`` are already programmed; the rest is
    programmed first and charged. ``crossbars_available`` (default: all) bounds the crossbars
    this GEMM may use.
    """
    for name, value in (("m", m), ("n", n), ("k", k)):
        if value < 1:
            raise ConfigError(f"{name}: must be >= 1, got {value}")
    xb = unit.crossbar
    wbits = _dtype_bits(weight_dtype, xb.weight_bits, "weight_dtype")
    ibits = _dtype_bits(act_dtype, xb.input_bits, "act_dtype")
    return _gemm(unit, m, n, k, wbits, ibits, resident_weights_bytes, crossbars_available,
                 ("weight_dtype", "act_dtype"))


def _check_bits(xb: Crossbar, wbits: int, ibits: int, fields: tuple[str, str]) -> None:
    sign = int(xb.signed)
    if wbits - sign < xb.cell_bits:
        raise ConfigError(f"{fields[0]}: {wbits}-bit weights are narrower than the crossbar's "
                          f"{xb.cell_bits}-bit cells (slicing needs cell_bits <= weight bits"
                          f"{' - 1 (sign)' if sign else ''})")
    if xb.columns_per_weight(wbits) > xb.cols:
        raise ConfigError(f"{fields[0]}: {wbits}-bit weights need "
                          f"{xb.columns_per_weight(wbits)} columns each, more than the "
                          f"crossbar's {xb.cols}")
    if ibits - sign < xb.dac_bits:
        raise ConfigError(f"{fields[1]}: {ibits}-bit inputs are narrower than the crossbar's "
                          f"{xb.dac_bits}-bit DACs (need dac_bits <= input bits"
                          f"{' - 1 (sign)' if sign else ''})")


def layout(unit: CimUnit, n: int, k: int, weight_bits: int) -> tuple[int, int, int]:
    """(row tiles, column tiles, slices) of a ``k x n`` weight matrix of ``weight_bits``."""
    xb = unit.crossbar
    return (-(-k // xb.rows), -(-n // (xb.cols // xb.columns_per_weight(weight_bits))),
            xb.slices(weight_bits))


def peak_macs_per_s(unit: CimUnit, weight_bits: int | None = None,
                    input_bits: int | None = None) -> float:
    """MACs per second with every crossbar full and busy (default: the tile's own widths):
    all cells' weights, once per ``T`` read steps of full-row conversions."""
    xb = unit.crossbar
    per_xbar = xb.cols // xb.columns_per_weight(weight_bits)
    full_convert = -(-(per_xbar * xb.slices(weight_bits)) // xb.adcs) * xb.adc_time_s
    return (unit.crossbars * xb.rows * per_xbar
            / (xb.input_cycles(input_bits) * max(xb.read_time_s, full_convert)))


def group_reads(unit: CimUnit, k: int, scale_group: int) -> int:
    """Reads per input slice of a crossbar holding weights in groups of ``scale_group`` along
    ``K`` (``<= 0``: per channel or none): the column current sums the rows it drives, so rows
    of groups with different scales cannot share a read; a crossbar of ``rows`` holding
    smaller groups reads (and converts) them one group at a time."""
    rows = min(unit.crossbar.rows, k)
    return -(-rows // scale_group) if 0 < scale_group < rows else 1


def scale_multiplies(m: int, n: int, k: int, scale_group: int) -> int:
    """Digital scale multiplies of a quantized GEMM: one per output per group of ``K`` (per
    channel: one per output), in the periphery after the shift-and-add."""
    if scale_group > 0:
        return m * n * -(-k // scale_group)
    return m * n if scale_group == -1 else 0


def _gemm(unit: CimUnit, m: int, n: int, k: int, wbits: int, ibits: int,
          resident_weights_bytes: float, crossbars_available: int | None,
          fields: tuple[str, str], act_io: bool = True, scale_group: int = 0,
          scale_bytes: int = 0) -> CimResult:
    xb, per = unit.crossbar, unit.periphery
    _check_bits(xb, wbits, ibits, fields)
    avail = unit.crossbars if crossbars_available is None else crossbars_available
    if not 1 <= avail <= unit.crossbars:
        raise ConfigError(f"crossbars_available: must be in [1, {unit.crossbars}], got {avail!r}")
    if resident_weights_bytes < 0:
        raise ConfigError(f"resident_weights_bytes: must be >= 0, got {resident_weights_bytes}")

    rt, ct, s = layout(unit, n, k, wbits)
    t = xb.input_cycles(ibits)
    # bit-serial inputs: T read steps per token, times G where scale groups split a crossbar
    reads = t * group_reads(unit, k, scale_group)
    copy = rt * ct
    weight_bytes = -(-n * k * wbits // 8)
    resident = min(float(resident_weights_bytes), float(weight_bytes))
    if resident > 0 and copy > avail:
        raise ConfigError(f"resident_weights_bytes: this {k}x{n} weight needs {copy} crossbars, "
                          f"more than the {avail} available, so it cannot stay resident")
    prog_frac = (weight_bytes - resident) / weight_bytes
    fits = copy <= avail

    # one read step: the read, or the conversions of the used columns, whichever is longer
    cpw = xb.columns_per_weight(wbits)
    per_xbar = xb.cols // cpw  # weights (output columns) per crossbar
    cols_used = min(per_xbar, n) * cpw
    convert_s = -(-(min(per_xbar, n) * s) // xb.adcs) * xb.adc_time_s
    step_s = max(xb.read_time_s, convert_s)
    latency_s = (xb.read_time_s + convert_s
                 + (1 + math.ceil(math.log2(rt))) / per.clock_hz)  # shift-add + adder tree
    rows_used = min(xb.rows, k)
    per_xbar_write_s = rows_used * -(-cols_used // xb.write_cells_parallel) * xb.write_time_s
    # outputs leave in the input format; without ``act_io`` the activations move in explicit
    # transfer ops (`mappers.transfers`, costed by `sim.units.cim.link`), not here
    act_bytes = (m * k * ibits + m * n * ibits) / 8 if act_io else 0.0
    io_s = act_bytes / unit.weight_load_bandwidth_bytes_per_s

    def program_s(crossbars: np.ndarray | int, nbytes: float) -> np.ndarray | float:
        if prog_frac == 0:
            return 0.0 * np.asarray(crossbars)
        waves = -(-np.asarray(crossbars) // unit.write_parallel_crossbars)
        write = waves * per_xbar_write_s * prog_frac
        return np.maximum(write, nbytes * prog_frac / unit.weight_load_bandwidth_bytes_per_s)

    if fits:
        passes = 1
        # copies only when every weight is programmed anyway (a copy is never resident)
        top = min(m, avail // copy) if resident == 0 else 1
        rho = np.arange(1, top + 1)
        prog = program_s(rho * copy, weight_bytes + scale_bytes)
        comp = -(-m // rho) * reads * step_s + latency_s
        best = int(np.argmin(prog + np.maximum(comp, io_s)))  # first minimum: fewest copies
        replicas = int(rho[best])
        program_total, compute_total = float(prog[best]), float(comp[best])
        used = replicas * copy
    else:
        replicas, passes = 1, -(-copy // avail)
        last = copy - (passes - 1) * avail
        per_pass_bytes = (weight_bytes + scale_bytes) / copy  # bytes per crossbar of W
        program_total = float((passes - 1) * program_s(avail, avail * per_pass_bytes)
                              + program_s(last, last * per_pass_bytes))
        compute_total = passes * (m * reads * step_s + latency_s)
        used = avail

    time_s = program_total + max(compute_total, io_s)
    conversions = m * reads * rt * n * s
    cells_prog = n * k * cpw * replicas * prog_frac
    program_bytes = weight_bytes * prog_frac  # brought in once, broadcast to the replicas
    # the scales sit in the periphery's registers: loaded with the weights they scale
    program_bytes += scale_bytes * prog_frac
    io_j = (program_bytes + act_bytes) * 8 * unit.io_energy_pj_per_bit * _PJ
    write_j = cells_prog * xb.write_energy_j
    energy = CimEnergy(dac=m * t * k * ct * xb.dac_energy_j,
                       crossbar_read=m * reads * copy * xb.read_energy_j,
                       adc=conversions * xb.adc_energy_j,
                       shift_add=conversions * per.shift_add_energy_j,
                       accumulate=(m * n * (rt - 1) + scale_multiplies(m, n, k, scale_group))
                       * per.accumulate_energy_j,
                       write=write_j, io=io_j)
    peak_macs = peak_macs_per_s(unit, wbits, ibits)
    return CimResult(
        m=m, n=n, k=k, weight_bits=wbits, input_bits=ibits, slices=s, input_cycles=t,
        row_tiles=rt, col_tiles=ct, crossbars_per_copy=copy, replicas=replicas, passes=passes,
        crossbars_used=used, fits=fits, step_s=step_s, compute_s=compute_total,
        program_s=program_total, io_s=io_s, time_s=time_s, cycles=time_s * per.clock_hz,
        program_cycles=program_total * per.clock_hz, weight_bytes=weight_bytes,
        program_bytes=program_bytes, act_bytes=act_bytes, cells_programmed=cells_prog,
        adc_conversions=conversions, energy=energy,
        program_energy_j=write_j + program_bytes * 8 * unit.io_energy_pj_per_bit * _PJ,
        utilization=m * n * k / (peak_macs * time_s))


# ---------------------------------------------------------------- ops

def op_bits(op: Op) -> tuple[int, int]:
    """Weight and activation bits of a GEMM op, from its operand formats (never from its
    byte counts, which include any quantisation scales)."""
    return op.formats.bits("weight"), op.formats.bits("act")


def _check_op(op: Op) -> None:
    if op.kind not in CIM_KINDS:
        raise ConfigError(f"op {op.name}: CiM runs {', '.join(sorted(CIM_KINDS))} ops, "
                          f"got {op.kind}")


def cim_op_result(op: Op, unit: CimUnit, *, resident_weights_bytes: int = 0,
                  act_io: bool = True) -> CimResult:
    """`cim_gemm` of a GEMM or LM-head op as `mappers.lower` builds it (M = tokens).
    ``act_io=False`` leaves out the activations' I/O (time, energy, bytes): in the engine
    they are explicit transfer ops."""
    _check_op(op)
    m, n, k = op.dims
    wbits, ibits = op_bits(op)
    return _gemm(unit, m, n, k, wbits, ibits, resident_weights_bytes, None,
                 (f"op {op.name} weights", f"op {op.name} dtype"), act_io,
                 op.formats.scale_group, op.formats.scale_bytes)


def cim_op_cost(op: Op, unit: CimUnit, *, resident_weights_bytes: int = 0,
                act_io: bool = True) -> Cost:
    """Cost of one instance of a GEMM or LM-head ``op`` on the CiM ``unit``.

    ``compute_s`` is the crossbars' time, ``memory_s`` the reprogramming plus activation
    transfers; ``bound`` is ``compute``, ``write`` (reprogramming dominates) or ``memory``
    (activation transfers dominate). ``dram_bytes`` counts the weights programmed and the
    activations. Use `sim.units.cim.residency.plan_weights` to decide
    ``resident_weights_bytes`` for a whole pass.
    """
    r = cim_op_result(op, unit, resident_weights_bytes=resident_weights_bytes, act_io=act_io)
    parts = {"compute": r.compute_s, "write": r.program_s, "memory": r.io_s}
    bound = "compute" if r.compute_s >= r.io_s and r.compute_s >= r.program_s else max(
        parts, key=parts.__getitem__)
    return Cost(time_s=r.time_s, compute_s=r.compute_s, memory_s=r.program_s + r.io_s,
                comm_s=0.0, energy_j=r.energy_j, bound=bound,
                dram_bytes=r.program_bytes + r.act_bytes, cycles=r.cycles,
                stall_cycles=(r.time_s - r.compute_s) * unit.periphery.clock_hz,
                utilization=r.utilization)
