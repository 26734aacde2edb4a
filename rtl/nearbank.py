"""Near-bank processing unit of the decode datapath: a GEMV MAC unit beside one DRAM bank.

Numerics, command set and the translation from the CiD engine's command stream are defined by
the unit's reference model, `sim.units.cid.nearbank_model` (docs/rtl.md has the diagram).

Pipeline: a command accepted at edge ``t`` is forwarded to the bank (``bank_req``, registered:
visible in cycle ``t + 1``). ``MAC`` also reads its GB entry (one-cycle synchronous read) and
queues a tag ``{acc, input burst}``; ``RDRES`` queues a tag ``{acc, n}`` behind the MACs
before it. The bank answers a read with ``bank_data`` (one beat: the burst and its 16-bit
side-band) into a FIFO. The queue head executes in order: a MAC tag pairs with the oldest bank
burst and enters three stages (lane products; lane sum, times the scale for integer formats;
accumulate); an RDRES tag waits until those stages are empty, then puts ``n`` accumulators on
``result`` in one beat and clears them. ``cmd.ready`` is low only when the tag queue is full.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from sim.units.cid.nearbank_model import OPS, NearBankConfig


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


def _fp16(m: Module, code):
    """(sign, 11-bit significand, shift 0..29) of an fp16 code; value
    ``(-1)^s sig 2^(shift - 24)``; inf/NaN give significand 0."""
    sign, exp, frac = code[15], code[10:15], code[0:10]
    sig = Mux(exp == 31, 0, Mux(exp != 0, Cat(frac, 1), Cat(frac, 0)))
    shift = Mux(exp != 0, exp - 1, 0)[:5]
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
                                        "x": cfg.burst_bits})
        m.submodules.tags = tags = SyncFIFO(width=tag_layout.size, depth=cfg.pending)
        m.submodules.bursts = bursts = SyncFIFO(width=cfg.burst_bits + 16, depth=cfg.pending)
        late = Signal(tag_layout)       # accepted last cycle, waiting for the GB read
        late_valid = Signal()
        m.d.sync += late_valid.eq(accept & ((c.op == OPS["MAC"]) | (c.op == OPS["RDRES"])))
        with m.If(accept):
            m.d.sync += [late.rd.eq(c.op == OPS["RDRES"]), late.acc.eq(c.acc), late.n.eq(c.n)]
        tag_in = Signal(tag_layout)
        m.d.comb += [tag_in.rd.eq(late.rd), tag_in.acc.eq(late.acc), tag_in.n.eq(late.n),
                     tag_in.x.eq(gb_r.data),
                     tags.w_data.eq(tag_in.as_value()), tags.w_en.eq(late_valid),
                     self.cmd.ready.eq(tags.level + late_valid < cfg.pending),
                     bursts.w_data.eq(self.bank_data.payload),
                     bursts.w_en.eq(self.bank_data.valid), self.bank_data.ready.eq(1)]

        head = data.View(tag_layout, tags.r_data)
        # Stage 1: lane products; stage 2: the burst's contribution; stage 3: accumulate.
        s1_valid, s2_valid = Signal(), Signal()
        s1_acc, s2_acc = Signal(acc_w), Signal(acc_w)
        lanes_w, scale = bursts.r_data[:cfg.burst_bits], bursts.r_data[cfg.burst_bits:]
        s1_scale = Signal(16)
        prod_bits = 81 if cfg.wdtype == "fp16" else 2 * cfg.bits
        prods = [Signal(signed(prod_bits), name=f"prod{i}") for i in range(cfg.lanes)]
        contrib = Signal(signed(cfg.burst_bits_log + 1))
        mac_go = tags.r_rdy & ~head.rd & bursts.r_rdy
        m.d.sync += [s1_valid.eq(mac_go), s1_acc.eq(head.acc), s1_scale.eq(scale),
                     s2_valid.eq(s1_valid), s2_acc.eq(s1_acc)]
        b = cfg.bits
        for i in range(cfg.lanes):
            w, x = lanes_w[i * b:(i + 1) * b], head.x[i * b:(i + 1) * b]
            if cfg.wdtype == "fp16":
                sw, mw, ew = _fp16(m, w)
                sx, mx, ex = _fp16(m, x)
                mag = Signal(prod_bits - 1, name=f"mag{i}")
                m.d.comb += mag.eq((mw * mx) << (ew + ex))
                m.d.sync += prods[i].eq(Mux(sw ^ sx, -mag, mag))
            else:
                m.d.sync += prods[i].eq(w.as_signed() * x.as_signed())
        total = sum(p for p in prods)          # Amaranth sizes the adder tree exactly
        if cfg.scaled:
            ss, ms, es = _fp16(m, s1_scale)
            mag = (total * ms) << es
            m.d.sync += contrib.eq(Mux(ss, -mag, mag))
        else:
            m.d.sync += contrib.eq(total)

        accs = Array(Signal(signed(cfg.acc_bits), name=f"acc{j}") for j in range(cfg.acc_rows))
        rd_go = (tags.r_rdy & head.rd & ~s1_valid & ~s2_valid & ~mac_go
                 & (~self.result.valid | self.result.ready))
        m.d.comb += [tags.r_en.eq(mac_go | rd_go), bursts.r_en.eq(mac_go)]
        with m.If(self.result.ready):
            m.d.sync += self.result.valid.eq(0)
        with m.If(rd_go):
            m.d.sync += [self.result.valid.eq(1), self.result.payload.n.eq(head.n)]
            for i in range(cfg.rd_max):
                idx = head.acc + i
                m.d.sync += self.result.payload.values[i].eq(
                    Mux(i < head.n, accs[idx[:acc_w]], 0))
        for j, acc in enumerate(accs):
            clear = rd_go & (head.acc <= j) & (j < head.acc + head.n)
            with m.If(clear):
                m.d.sync += acc.eq(0)
            with m.Elif(s2_valid & (s2_acc == j)):
                m.d.sync += acc.eq(acc + contrib)
        return m
