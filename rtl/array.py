"""Systolic array of `ProcessingElement`s (output- or weight-stationary) with its skew registers."""

from __future__ import annotations

from amaranth.hdl import Array, Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from sim.units.systolic.datapath import MODES

from .pe import ProcessingElement


class SystolicArray(wiring.Component):
    """``rows x cols`` systolic array, output-stationary (``os``) or weight-stationary (``ws``).

    ``os``: A flows right, B flows down, C stays. The inputs are aligned: in one cycle the
    caller presents column ``k`` of the A tile (one code per row) and row ``k`` of the B tile
    (one code per column). Row ``i`` of A is delayed ``i`` cycles and column ``j`` of B ``j``
    cycles (the skew), so PE ``(i, j)`` does its ``k``-th MAC ``k + i + j`` cycles after the
    beat entered: a fold of ``K`` beats is finished in every PE ``K + rows + cols - 2`` cycles
    after its first beat (the fold model of `sim.units.systolic.array`). Row ``i`` is complete
    ``K + i + cols - 1`` cycles after the first beat and stays readable until the next fold's
    first beat reaches it.

    ``ws``: B stays, A flows right, partial sums flow down. ``rows`` cycles of ``w_load``
    shift a ``rows x cols`` weight tile in from the top (the row presented last ends in row 0).
    Then row ``m`` of the A tile (one code per array row, i.e. per ``k``) enters in one cycle,
    row ``i`` delayed ``i`` cycles; ``psum[j]`` shows ``sum_i A[m, i] W[i, j]``
    ``rows + j`` cycles after row ``m`` entered.

    Parameters
    ----------
    rows, cols : int
        Array shape (>= 1).
    mode : str
        Operand mode, a key of `sim.units.systolic.datapath.MODES`.
    dataflow : str
        ``"os"`` (default) or ``"ws"``.

    Attributes
    ----------
    a : In(ArrayLayout(a_bits, rows))
        ``os``: column ``k`` of the A tile; ``ws``: row ``m`` of the A tile.
    b : In(ArrayLayout(b_bits, cols))
        ``os``: row ``k`` of the B tile; ``ws``: the weights shifted in at the top.
    valid, first : In(1)
        ``os`` only: the beat carries data; it is ``k = 0`` (the accumulators restart).
    row_sel : In(range(rows))
        ``os`` only: which row of accumulators ``row`` shows.
    row : Out(ArrayLayout(signed(acc_bits), cols))
        ``os`` only: the accumulators of row ``row_sel`` (combinational).
    w_load : In(1)
        ``ws`` only: shift the weights down one row this cycle.
    psum : Out(ArrayLayout(signed(acc_bits), cols))
        ``ws`` only: the partial sums leaving the bottom row (registered).
    """

    def __init__(self, *, rows: int, cols: int, mode: str, dataflow: str = "os") -> None:
        for name, value in (("rows", rows), ("cols", cols)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: must be an integer >= 1, got {value!r}")
        if mode not in MODES:
            raise ValueError(f"mode: unknown operand mode {mode!r} (allowed: {', '.join(MODES)})")
        if dataflow not in ("os", "ws"):
            raise ValueError(f"dataflow: unknown dataflow {dataflow!r} (allowed: os, ws)")
        self.rows, self.cols, self.mode, self.dataflow = rows, cols, mode, dataflow
        a_bits, b_bits, acc_bits, _ = MODES[mode]
        ports = {"a": In(data.ArrayLayout(a_bits, rows)), "b": In(data.ArrayLayout(b_bits, cols))}
        if dataflow == "os":
            ports.update({"valid": In(1), "first": In(1), "row_sel": In(range(rows)),
                          "row": Out(data.ArrayLayout(signed(acc_bits), cols))})
        else:
            ports.update({"w_load": In(1),
                          "psum": Out(data.ArrayLayout(signed(acc_bits), cols))})
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        rows, cols = self.rows, self.cols
        pes = [[ProcessingElement(mode=self.mode, dataflow=self.dataflow) for _ in range(cols)]
               for _ in range(rows)]
        for i in range(rows):
            for j in range(cols):
                m.submodules[f"pe_{i}_{j}"] = pes[i][j]

        def delay(value, n, name):
            for s in range(n):
                reg = Signal.like(value, name=f"{name}_d{s}")
                m.d.sync += reg.eq(value)
                value = reg
            return value

        for i in range(rows):       # A enters at the left, row i delayed i cycles
            m.d.comb += pes[i][0].a_in.eq(delay(self.a[i], i, f"a{i}"))
            for j in range(1, cols):
                m.d.comb += pes[i][j].a_in.eq(pes[i][j - 1].a_out)
        if self.dataflow == "ws":
            for j in range(cols):
                m.d.comb += [pes[0][j].w_in.eq(self.b[j]), pes[0][j].psum_in.eq(0),
                             self.psum[j].eq(pes[rows - 1][j].psum_out)]
                for i in range(rows):
                    m.d.comb += pes[i][j].w_load.eq(self.w_load)
                for i in range(1, rows):
                    m.d.comb += [pes[i][j].w_in.eq(pes[i - 1][j].w_out),
                                 pes[i][j].psum_in.eq(pes[i - 1][j].psum_out)]
            return m
        for i in range(rows):
            m.d.comb += [pes[i][0].valid_in.eq(delay(self.valid, i, f"v{i}")),
                         pes[i][0].first_in.eq(delay(self.first, i, f"f{i}"))]
            for j in range(1, cols):
                left, pe = pes[i][j - 1], pes[i][j]
                m.d.comb += [pe.valid_in.eq(left.valid_out), pe.first_in.eq(left.first_out)]
        for j in range(cols):
            m.d.comb += pes[0][j].b_in.eq(delay(self.b[j], j, f"b{j}"))
            for i in range(1, rows):
                m.d.comb += pes[i][j].b_in.eq(pes[i - 1][j].b_out)
            m.d.comb += self.row[j].eq(Array(pes[i][j].acc for i in range(rows))[self.row_sel])
        return m
