"""One processing element of the output-stationary array: a multiplier and an accumulator."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from sim.units.systolic.datapath import MODES


def product(m: Module, mode: str, a, b):
    """The exact product of one A code and one B code, in accumulator units (a signed Value).

    ``int8``: ``a x b``. ``w4fp8``: ``2^9 x fp8(a) x int4(b)``, built as a 5 x 4-bit multiply of
    the FP8 significand by the weight, shifted by the exponent (see
    `sim.units.systolic.datapath`); NaN is 0.
    """
    if mode == "int8":
        return a.as_signed() * b.as_signed()
    sign, exp, man = a[7], a[3:7], a[0:3]
    mant = Mux(exp != 0, Cat(man, 1), Cat(man, 0))           # hidden bit unless subnormal
    shift = Mux(exp != 0, exp - 1, 0)[:4]
    mag = (Cat(mant, 0).as_signed() * b.as_signed()) << shift  # |.| <= 8 x 448 x 2^9 < 2^21
    nan = (exp == 15) & (man == 7)
    return Mux(nan, 0, Mux(sign, -mag, mag))


class ProcessingElement(wiring.Component):
    """One PE, output-stationary (``os``) or weight-stationary (``ws``).

    ``os``: ``acc <= (first ? 0 : acc) + product(a, b)`` on a valid beat; A passes right, B
    passes down. ``ws``: a weight register ``w`` (loaded by shifting down the column while
    ``w_load`` is high) and ``psum_out <= psum_in + product(a, w)`` every cycle; A passes right,
    partial sums pass down.

    Parameters
    ----------
    mode : str
        Operand mode, a key of `sim.units.systolic.datapath.MODES`.
    dataflow : str
        ``"os"`` or ``"ws"``.

    Attributes
    ----------
    a_in : In(a_bits)
        A code from the left neighbour (or the row's edge).
    a_out : Out(a_bits)
        ``a_in`` delayed one cycle, to the right neighbour.
    valid_in, first_in : In(1)
        ``os`` only: the beat carries data; it is the first of a fold (clears the accumulator).
    valid_out, first_out : Out(1)
        ``os`` only: ``valid_in``, ``first_in`` delayed one cycle, to the right neighbour.
    b_in : In(b_bits)
        ``os`` only: B code from the neighbour above (or the column's edge).
    b_out : Out(b_bits)
        ``os`` only: ``b_in`` delayed one cycle, to the neighbour below.
    acc : Out(signed(acc_bits))
        ``os`` only: the accumulator (32 bits for int8, 40 for w4fp8).
    w_in : In(b_bits)
        ``ws`` only: the weight shifted in from above while ``w_load``.
    w_load : In(1)
        ``ws`` only: shift the weights down one PE this cycle.
    w_out : Out(b_bits)
        ``ws`` only: the stationary weight, to the neighbour below.
    psum_in : In(signed(acc_bits))
        ``ws`` only: the partial sum from above (0 at the top row).
    psum_out : Out(signed(acc_bits))
        ``ws`` only: ``psum_in + product(a_in, w)``, registered.
    """

    def __init__(self, *, mode: str, dataflow: str = "os") -> None:
        if mode not in MODES:
            raise ValueError(f"mode: unknown operand mode {mode!r} (allowed: {', '.join(MODES)})")
        if dataflow not in ("os", "ws"):
            raise ValueError(f"dataflow: unknown dataflow {dataflow!r} (allowed: os, ws)")
        self.mode, self.dataflow = mode, dataflow
        a_bits, b_bits, acc_bits, _ = MODES[mode]
        if dataflow == "os":
            ports = {"a_in": In(a_bits), "valid_in": In(1), "first_in": In(1),
                     "b_in": In(b_bits), "a_out": Out(a_bits), "valid_out": Out(1),
                     "first_out": Out(1), "b_out": Out(b_bits), "acc": Out(signed(acc_bits))}
        else:
            ports = {"a_in": In(a_bits), "w_in": In(b_bits), "w_load": In(1),
                     "psum_in": In(signed(acc_bits)), "a_out": Out(a_bits),
                     "w_out": Out(b_bits), "psum_out": Out(signed(acc_bits))}
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.a_out.eq(self.a_in)
        if self.dataflow == "ws":
            with m.If(self.w_load):
                m.d.sync += self.w_out.eq(self.w_in)
            m.d.sync += self.psum_out.eq(self.psum_in + product(m, self.mode, self.a_in,
                                                                self.w_out))
            return m
        m.d.sync += [self.valid_out.eq(self.valid_in), self.first_out.eq(self.first_in),
                     self.b_out.eq(self.b_in)]
        p = product(m, self.mode, self.a_in, self.b_in)
        with m.If(self.valid_in):
            m.d.sync += self.acc.eq(Mux(self.first_in, 0, self.acc) + p)
        return m
