"""Near-bank processing unit of the decode datapath: a GEMV MAC unit beside one DRAM bank.

Numerics, command set and the translation from the CiD engine's command stream are defined by
the unit's reference model, `sim.units.cid.nearbank_model` (docs/rtl.md has the diagram).

Pipeline: a command accepted at edge ``t`` is forwarded to the bank (``bank_req``, registered:
visible in cycle ``t + 1``). ``MAC`` also reads its GB entry (one-cycle synchronous read) and
queues a tag ``{acc, input burst}``; ``RDRES`` queues a tag ``{acc, n, clear mask}`` behind
the MACs before it. The bank answers a read with ``bank_data`` (one beat: the burst and its
16-bit side-band) into a FIFO. The queue head executes in order: a MAC tag pairs with the
oldest bank burst and enters six register stages (`MAC_STAGES`: the heads; four of
products, shifts, adder tree and scale, the last of which also adds the accumulator's low
half and registers its carry; the high half); an RDRES tag waits until all but the last are
empty, registers what it reads, and the next cycle puts ``n`` accumulators on ``result`` in
one beat and clears them.
``cmd.ready`` (a flip-flop) is low only when the tag queue is (nearly) full. docs/rtl.md
gives the latency against the CiD engine's RDRES timing.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.fifo import SyncFIFO, SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from sim.units.cid.nearbank_model import BF16_EXP_HI, BF16_EXP_LO, OPS, NearBankConfig


def _bits(n: int) -> int:
    """Bits for indices ``0 .. n - 1`` (at least one)."""
    return max(1, (n - 1).bit_length())


def row_command_layout(cfg: NearBankConfig) -> data.StructLayout:
    """Row-command payload (ACT, PRE, REF): opcode and row."""
    return data.StructLayout({"op": 3, "row": _bits(cfg.rows)})


def command_layout(cfg: NearBankConfig) -> data.StructLayout:
    """Column-command payload (MAC, WRGB, RDRES): opcode, column, GB entry, accumulator,
    count, WRGB data."""
    return data.StructLayout({"op": 3, "col": _bits(cfg.columns),
                              "gb": _bits(cfg.gb_entries), "acc": _bits(cfg.acc_rows),
                              "n": range(cfg.rd_max + 1), "data": cfg.burst_bits})


def bank_req_layout(cfg: NearBankConfig) -> data.StructLayout:
    """Request to the bank: a row command (``row_valid``, opcode of `OPS`: ACT, PRE or REF,
    row) and a read (``rd_valid``, column), each at most one per cycle."""
    return data.StructLayout({"row_valid": 1, "op": 3, "row": _bits(cfg.rows),
                              "rd_valid": 1, "col": _bits(cfg.columns)})


def result_layout(cfg: NearBankConfig) -> data.StructLayout:
    return data.StructLayout({"n": range(cfg.rd_max + 1),
                              "values": data.ArrayLayout(signed(cfg.acc_bits), cfg.rd_max)})


def _float_code(code, wdtype: str):
    """(sign, significand, shift) of an fp16 or bf16 code, as `sim.units.cid.nearbank_model`
    reads it. fp16: 11-bit significand, shift 0..29, value ``(-1)^s sig 2^(shift - 24)``,
    inf/NaN give significand 0. bf16: 8-bit significand, shift 0..47, value
    ``(-1)^s sig 2^(shift - 39)`` within the window, 0 below it and for inf/NaN, the
    window's largest magnitude above it."""
    if wdtype == "fp16":
        sign, exp, frac = code[15], code[10:15], code[0:10]
        sig = Mux(exp == 31, 0, Mux(exp != 0, Cat(frac, 1), Cat(frac, 0)))
        shift = Mux(exp != 0, exp - 1, 0)[:5]
        return sign, sig, shift
    sign, exp, frac = code[15], code[7:15], code[0:7]
    inside = (exp >= BF16_EXP_LO) & (exp <= BF16_EXP_HI)
    over = (exp > BF16_EXP_HI) & (exp != 255)
    sig = Mux(inside, Cat(frac, 1), Mux(over, 255, 0))
    shift = Mux(inside, exp - BF16_EXP_LO, Mux(over, BF16_EXP_HI - BF16_EXP_LO, 0))[:6]
    return sign, sig, shift


class NearBankUnit(wiring.Component):
    """One near-bank GEMV unit (see the module docstring and `NearBankConfig`).

    Attributes
    ----------
    row_cmd : In(stream.Signature(row_command_layout(config)))
        Row commands (ACT, PRE, REF; the row command bus); always ready.
    cmd : In(stream.Signature(command_layout(config)))
        Column commands (MAC, WRGB, RDRES; the column command bus, `OPS` codes); ``ready``
        low while the tag queue (``config.pending`` entries) is full.
    bank_req : Out(bank_req_layout(config))
        The command forwarded to the bank, one cycle after acceptance.
    bank_data : In(stream.Signature(burst_bits + 16))
        A read burst from the bank (codes in ``lanes`` fields of ``bits`` bits, LSB first;
        the fp16 scale in the top 16 bits); always ready.
    result : Out(stream.Signature(result_layout(config)))
        One beat per RDRES: ``n`` accumulators (signed, ``acc_bits``, ``2^frac_bits`` units).
    error : Out(1)
        Sticky: a MAC arrived with no open row.
    """

    def __init__(self, config: NearBankConfig) -> None:
        if not isinstance(config, NearBankConfig):
            raise TypeError(f"config: expected a NearBankConfig, got {type(config).__name__}")
        self.config = config
        super().__init__({
            "row_cmd": In(stream.Signature(row_command_layout(config))),
            "cmd": In(stream.Signature(command_layout(config))),
            "bank_req": Out(bank_req_layout(config)),
            "bank_data": In(stream.Signature(config.burst_bits + 16)),
            "result": Out(stream.Signature(result_layout(config))),
            "error": Out(1),
        })

    def elaborate(self, platform):
        cfg = self.config
        m = Module()
        c = self.cmd.payload
        accept = self.cmd.valid & self.cmd.ready
        acc_w, n_w = _bits(cfg.acc_rows), (cfg.rd_max).bit_length()

        # Global buffer: written by WRGB, read by MAC at acceptance.
        m.submodules.gb = gb = memory.Memory(shape=unsigned(cfg.burst_bits),
                                             depth=cfg.gb_entries, init=[])
        gb_w, gb_r = gb.write_port(), gb.read_port()
        m.d.comb += [gb_w.addr.eq(c.gb), gb_w.data.eq(c.data),
                     gb_w.en.eq(accept & (c.op == OPS["WRGB"])), gb_r.addr.eq(c.gb)]

        # Bank requests, registered; the open-row flag for the error check.
        row_open = Signal()
        rc = self.row_cmd.payload
        row_accept = self.row_cmd.valid
        m.d.comb += self.row_cmd.ready.eq(1)
        m.d.sync += [self.bank_req.row_valid.eq(row_accept),
                     self.bank_req.rd_valid.eq(accept & (c.op == OPS["MAC"]))]
        with m.If(row_accept):
            m.d.sync += [self.bank_req.op.eq(rc.op), self.bank_req.row.eq(rc.row),
                         row_open.eq(rc.op == OPS["ACT"])]
        with m.If(accept & (c.op == OPS["MAC"])):
            m.d.sync += self.bank_req.col.eq(c.col)
            with m.If(~row_open):
                m.d.sync += self.error.eq(1)

        # Tag queue: {is_rd, acc, n, x burst}; the x burst comes from the GB a cycle later.
        tag_layout = data.StructLayout({"rd": 1, "acc": acc_w, "n": n_w,
                                        "mask": cfg.acc_rows, "x": cfg.burst_bits})
        # The tag queue is buffered: its head comes from a register, so the pop decision
        # starts at a flip-flop. Its extra cycle is hidden: a MAC's tag waits tCL for its
        # burst, an RDRES's for the pipeline. The burst FIFO (on the MAC's latency) is not.
        m.submodules.tags = tags = SyncFIFOBuffered(width=tag_layout.size, depth=cfg.pending)
        m.submodules.bursts = bursts = SyncFIFO(width=cfg.burst_bits + 16, depth=cfg.pending)
        late = Signal(tag_layout)       # accepted last cycle, waiting for the GB read
        late_valid = Signal()
        m.d.sync += late_valid.eq(accept & ((c.op == OPS["MAC"]) | (c.op == OPS["RDRES"])))
        with m.If(accept):
            # An RDRES's clear mask (accumulators acc .. acc+n-1) is decoded here, off the
            # tag queue's head, where it would sit in the pop logic's path.
            m.d.sync += [late.rd.eq(c.op == OPS["RDRES"]), late.acc.eq(c.acc), late.n.eq(c.n),
                         late.mask.eq(Cat(*[(c.acc <= j) & (j < c.acc + c.n)
                                            for j in range(cfg.acc_rows)]))]
        # ``cmd.ready`` from a flip-flop: last cycle's occupancy plus last cycle's acceptance
        # must leave a slot (pops in between are not counted: one slot of margin, which the
        # engine-legal streams never reach, for a ready off the FIFO's level adder).
        ready = Signal(init=1)
        m.d.sync += ready.eq(tags.level + late_valid + accept < cfg.pending)
        tag_in = Signal(tag_layout)
        m.d.comb += [tag_in.rd.eq(late.rd), tag_in.acc.eq(late.acc), tag_in.n.eq(late.n),
                     tag_in.mask.eq(late.mask),
                     tag_in.x.eq(gb_r.data),
                     tags.w_data.eq(tag_in.as_value()), tags.w_en.eq(late_valid),
                     self.cmd.ready.eq(ready),
                     bursts.w_data.eq(self.bank_data.payload),
                     bursts.w_en.eq(self.bank_data.valid), self.bank_data.ready.eq(1)]

        head = data.View(tag_layout, tags.r_data)
        mac_go = tags.r_rdy & ~head.rd & bursts.r_rdy
        stages = []                 # valid bit of every pipeline register stage

        def stage(valid, acc):
            """One register stage of the MAC token (valid, accumulator index)."""
            v, a = Signal(name=f"s{len(stages)}_valid"), Signal(acc_w, name=f"s{len(stages)}_acc")
            m.d.sync += [v.eq(valid), a.eq(acc)]
            stages.append(v)
            return v, a

        def reg(value, name, shape=None):
            r = Signal(shape if shape is not None else value.shape(), name=name)
            m.d.sync += r.eq(value)
            return r

        # Stage 0: the FIFO heads (LUT-RAM reads) into registers.
        valid, acc = stage(mac_go, head.acc)
        lanes_w = reg(bursts.r_data[:cfg.burst_bits], "w_burst")
        lanes_x = reg(head.x, "x_burst")
        scale = reg(bursts.r_data[cfg.burst_bits:], "scale0")
        b = cfg.bits
        ws = [lanes_w[i * b:(i + 1) * b] for i in range(cfg.lanes)]
        xs = [lanes_x[i * b:(i + 1) * b] for i in range(cfg.lanes)]
        if cfg.scaled:
            # Stage 1: lane products w x.
            prods = [reg(w.as_signed() * x.as_signed(), f"prod{i}")
                     for i, (w, x) in enumerate(zip(ws, xs))]
        else:
            # Stage 1: significand products, exponent sums, signs; stage 2: shifted, signed.
            mags, shifts = [], []
            for i, (w, x) in enumerate(zip(ws, xs)):
                sw, mw, ew = _float_code(w, cfg.wdtype)
                sx, mx, ex = _float_code(x, cfg.wdtype)
                # The sign goes on the significand product (22 bits at most), not on the
                # shifted one (up to 110): a short negation in this stage, none in the next.
                mag = mw * mx
                mags.append(reg(Mux(sw ^ sx, -mag, mag), f"sig{i}"))
                shifts.append(reg(ew + ex, f"shift{i}"))
            valid, acc = stage(valid, acc)
            prod_bits = cfg.burst_bits_log - _bits(cfg.lanes) + 1
            prods = [reg(mags[i] << shifts[i], f"prod{i}", signed(prod_bits))
                     for i in range(cfg.lanes)]
        valid, acc = stage(valid, acc)
        scale = reg(scale, "scale1")
        if not cfg.scaled:
            # The float products are up to 111 bits wide: the adder tree takes two stages,
            # sums of four lanes, then their total. (Integer products are at most 16 bits:
            # one stage; every stage here is a cycle of the RDRES latency, see docs/rtl.md.)
            prods = [reg(sum(prods[i:i + 4]), f"quad{i // 4}") for i in range(0, cfg.lanes, 4)]
            valid, acc = stage(valid, acc)
        total = reg(sum(prods), "total")
        valid, acc = stage(valid, acc)
        scale = reg(scale, "scale2")
        if cfg.scaled:
            # Stage: times the scale's signed significand (the sign goes on the 11-bit
            # factor, not on the wide product); then shifted by the scale's exponent.
            ss, ms, es = _float_code(scale, "fp16")
            scaled = reg(total * Mux(ss, -ms, ms), "scaled")
            es = reg(es, "scale_shift")
            valid, acc = stage(valid, acc)
            contrib = reg(scaled << es, "contrib", signed(cfg.burst_bits_log + 1))
            valid, acc = stage(valid, acc)
        else:
            contrib = total

        # Accumulate in two halves (a carry-save step: the low half adds and registers its
        # carry, the high half adds it a cycle later), so the loop through each accumulator
        # is a half-width add. A MAC into the same accumulator every cycle stays exact.
        lo_w = (cfg.acc_bits + 1) // 2
        hi_w = cfg.acc_bits - lo_w
        wide = Signal(signed(cfg.acc_bits), name="contrib_wide")
        m.d.comb += wide.eq(contrib)
        hit_lo = [valid & (acc == j) for j in range(cfg.acc_rows)]
        c_hi = reg(wide[lo_w:], "contrib_hi")
        valid, acc = stage(valid, acc)
        hit_hi = [valid & (acc == j) for j in range(cfg.acc_rows)]
        carry = Signal(name="carry")

        accs_lo = [Signal(lo_w, name=f"acc{j}_lo") for j in range(cfg.acc_rows)]
        accs_hi = [Signal(hi_w, name=f"acc{j}_hi") for j in range(cfg.acc_rows)]
        accs = Array(Cat(lo, hi).as_signed() for lo, hi in zip(accs_lo, accs_hi))
        # RDRES in two cycles: when the pipeline is empty, pop the tag and register which
        # accumulators it reads (index, count, clear mask); the next cycle reads and clears
        # them. This keeps the FIFO head's compare-and-add off the accumulators' enables.
        rd_fire = Signal()
        rd_acc, rd_n = Signal(acc_w), Signal(n_w)
        rd_mask = Signal(cfg.acc_rows)
        # ``idle``: no MAC in any stage, as a flip-flop (cycles since the last MAC entered,
        # counted to the pipeline's depth) rather than an OR of every stage's valid bit in the
        # FIFO's pop logic. With an RDRES at the head no MAC can enter, so no ~mac_go term.
        # The last stage (the high half's add) may still be busy: it finishes at the edge
        # on which rd_go registers, before rd_fire reads.
        depth = len(stages) - 1
        quiet = Signal(range(depth + 1), init=depth)
        idle = Signal(init=1)
        with m.If(mac_go):
            m.d.sync += [quiet.eq(0), idle.eq(0)]
        with m.Elif(quiet != depth):
            m.d.sync += [quiet.eq(quiet + 1), idle.eq(quiet == depth - 1)]
        rd_go = (tags.r_rdy & head.rd & idle & ~rd_fire
                 & (~self.result.valid | self.result.ready))
        m.d.comb += [tags.r_en.eq(mac_go | rd_go), bursts.r_en.eq(mac_go)]
        m.d.sync += [rd_fire.eq(rd_go), rd_acc.eq(head.acc), rd_n.eq(head.n),
                     rd_mask.eq(head.mask)]
        with m.If(self.result.ready):
            m.d.sync += self.result.valid.eq(0)
        with m.If(rd_fire):
            m.d.sync += [self.result.valid.eq(1), self.result.payload.n.eq(rd_n)]
            for i in range(cfg.rd_max):
                idx = rd_acc + i
                m.d.sync += self.result.payload.values[i].eq(
                    Mux(i < rd_n, accs[idx[:acc_w]], 0))
        carries = []
        for j in range(cfg.acc_rows):
            clear = rd_fire & rd_mask[j]
            lo_sum = Signal(lo_w + 1, name=f"acc{j}_lo_sum")
            m.d.comb += lo_sum.eq(accs_lo[j] + wide[:lo_w])
            carries.append(hit_lo[j] & lo_sum[lo_w])
            # No MAC is in flight when RDRES clears (rd_go waits for empty stages, and a
            # MAC popped in the clearing cycle reaches the accumulators stages later).
            with m.If(clear):
                m.d.sync += [accs_lo[j].eq(0), accs_hi[j].eq(0)]
            with m.Else():
                with m.If(hit_lo[j]):
                    m.d.sync += accs_lo[j].eq(lo_sum[:lo_w])
                with m.If(hit_hi[j]):
                    m.d.sync += accs_hi[j].eq(accs_hi[j] + c_hi + carry)
        m.d.sync += carry.eq(Cat(*carries).any())
        return m
