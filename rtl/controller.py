"""Tile controller: A/B/C buffers, a command stream, folding over the array, C drain.

The command and data interfaces are `amaranth.lib.stream` streams. Commands
(`sim.units.systolic.datapath.OPS`):

* ``LOAD_A``: ``m x k`` A codes arrive on ``data_in``, row-major, into the A buffer;
* ``LOAD_B``: ``k x n`` B codes arrive on ``data_in``, row-major, into the B buffer;
* ``COMPUTE``: ``C = A @ B`` fold by fold: row folds outer, column folds inner, as
  `sim.units.systolic.array` orders them. Output-stationary: a fold issues ``K`` beats, then waits
  ``rows + cols - 2`` cycles (``K + rows + cols - 2`` per fold, the simulator's fold model);
  its results are written into the C buffer one row a cycle while the next fold computes.
  Weight-stationary: a fold shifts a ``rows x cols`` block of B in (``rows`` cycles), streams
  the ``M`` rows of A, and adds each column's partial sums into the C buffer as they leave
  the array (``M + 2 rows + cols - 2`` per fold; the first K fold writes, later ones
  read-modify-write);
* ``DRAIN_C``: the ``m x n`` result leaves on ``c_out``, row-major, one value a beat,
  honouring back-pressure.

Buffers are banked so the array gets one operand per row (column) each cycle: A row ``r``
lives in bank ``r % rows`` at ``(r // rows, k)`` (weight-stationary: A column ``k`` in bank
``k % rows`` at ``(k // rows, m)``), B column ``c`` in bank ``c % cols`` at
``(c // cols, k)``, C element ``(r, c)`` in bank ``c % cols`` at ``(r, c // cols)``; each
address is a bit concatenation (no multiplier), so the inner index is padded to a power of two.
Cycle counts of every command are predicted by
`sim.units.systolic.datapath.DatapathModel.command_cycles`.
Dimensions outside ``1..max`` are refused by the model and the CLI; the RTL does not check them.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from sim.units.systolic.datapath import OPS, DatapathConfig

from .array import SystolicArray


def _bits(n: int) -> int:
    """Address bits for indices ``0 .. n - 1`` (at least one)."""
    return max(1, (n - 1).bit_length())


def command_layout(config: DatapathConfig) -> data.StructLayout:
    """Payload of the command stream: opcode and the tile sizes (each up to its maximum)."""
    return data.StructLayout({"op": 2, "m": range(config.max_m + 1),
                              "n": range(config.max_n + 1), "k": range(config.max_k + 1)})


class SystolicDatapath(wiring.Component):
    """The prefill datapath: `SystolicArray` plus the tile controller and its buffers.

    Parameters
    ----------
    config : sim.units.systolic.datapath.DatapathConfig
        Array shape, operand mode, dataflow and buffer capacities (validated there).

    Attributes
    ----------
    cmd : In(stream.Signature(command_layout(config)))
        Commands; ``ready`` is high exactly when the controller is idle.
    data_in : In(stream.Signature(8))
        A codes (int8 or FP8 E4M3) or B codes (int8, or INT4 in bits 3:0) for a load.
    c_out : Out(stream.Signature(signed(acc_bits)))
        Results of a drain, in accumulator units (``C x 2^9`` for w4fp8).
    """

    def __init__(self, config: DatapathConfig) -> None:
        if not isinstance(config, DatapathConfig):
            raise TypeError(f"config: expected a DatapathConfig, got {config!r}")
        self.config = config
        super().__init__({
            "cmd": In(stream.Signature(command_layout(config))),
            "data_in": In(stream.Signature(8)),
            "c_out": Out(stream.Signature(signed(config.acc_bits))),
        })

    def elaborate(self, platform):
        cfg = self.config
        R, C, ws = cfg.rows, cfg.cols, cfg.dataflow == "ws"
        m = Module()
        m.submodules.array = arr = SystolicArray(rows=R, cols=C, mode=cfg.mode,
                                                 dataflow=cfg.dataflow)

        kw, mw = _bits(cfg.max_k), _bits(cfg.max_m)
        # os: A row r in bank r % R at (r // R, k); ws: A column k in bank k % R at (k // R, m)
        a_blocks = -(-(cfg.max_k if ws else cfg.max_m) // R)
        a_inner = mw if ws else kw
        b_blocks = -(-cfg.max_n // C)
        cw = _bits(b_blocks)
        a_banks = [memory.Memory(shape=cfg.a_bits, depth=a_blocks << a_inner, init=[])
                   for _ in range(R)]
        b_banks = [memory.Memory(shape=cfg.b_bits, depth=b_blocks << kw, init=[])
                   for _ in range(C)]
        c_banks = [memory.Memory(shape=signed(cfg.acc_bits), depth=cfg.max_m << cw, init=[])
                   for _ in range(C)]
        for name, banks in (("abuf", a_banks), ("bbuf", b_banks), ("cbuf", c_banks)):
            for i, bank in enumerate(banks):
                m.submodules[f"{name}{i}"] = bank
        a_wr = [bank.write_port() for bank in a_banks]
        a_rd = [bank.read_port() for bank in a_banks]
        b_wr = [bank.write_port() for bank in b_banks]
        b_rd = [bank.read_port() for bank in b_banks]
        c_wr = [bank.write_port() for bank in c_banks]
        c_rd = [bank.read_port() for bank in c_banks]

        # the command being executed
        op = Signal(2)
        M = Signal(range(cfg.max_m + 1))
        N = Signal(range(cfg.max_n + 1))
        K = Signal(range(cfg.max_k + 1))
        fold_len = Signal(range(max(cfg.max_k, cfg.max_m) + 2 * R + C))

        # load counters: row/column index, bank, block within the bank, k
        ld_k = Signal(range(cfg.max_k + 1))
        ld_r = Signal(range(max(cfg.max_m, cfg.max_n) + 1))
        ld_bank = Signal(range(max(R, C)))
        ld_blk = Signal(range(max(a_blocks, b_blocks) + 1))

        # compute: cycle within the fold; row fold (os: M blocks, ws: K blocks) and column fold
        t = Signal.like(fold_len)
        fr = Signal(range(a_blocks + 1))
        fc = Signal(range(b_blocks + 1))
        r0 = Signal(range(max(cfg.max_m, cfg.max_k) + R + 1))     # fr * R
        n0 = Signal(range(cfg.max_n + C + 1))                      # fc * C
        tail = Signal(2)
        issuing = Signal()

        if ws:
            self._ws_fold(m, arr, a_rd, b_rd, c_rd, c_wr, op, M, N, K, t, fr, fc, r0, n0,
                          issuing, mw, kw, cw)
        else:
            self._os_fold(m, arr, a_rd, b_rd, c_wr, M, N, K, t, fr, fc, r0, n0, issuing,
                          kw, cw)

        # --- drain: row-major over (r, c); c = bank + cols * block
        out_valid = Signal()
        sel = Signal(range(C))
        dr_left = Signal()
        dr_c = Signal(range(cfg.max_n + 1))
        advance = ~out_valid | self.c_out.ready
        drain_addr = Cat(ld_blk[:cw], ld_r)
        for j in range(C):
            if ws:   # the read port also serves the compute's read-modify-write
                with m.If(op == OPS["DRAIN_C"]):
                    m.d.comb += [c_rd[j].addr.eq(drain_addr), c_rd[j].en.eq(advance)]
            else:
                m.d.comb += [c_rd[j].addr.eq(drain_addr), c_rd[j].en.eq(advance)]
        m.d.comb += [self.c_out.valid.eq(out_valid),
                     self.c_out.payload.eq(Array(p.data for p in c_rd)[sel])]

        # --- loads: write the beat into its bank
        beat = self.data_in.valid & self.data_in.ready
        a_addr = Cat(ld_r[:mw], ld_blk) if ws else Cat(ld_k[:kw], ld_blk)
        for i in range(R):
            m.d.comb += [a_wr[i].addr.eq(a_addr), a_wr[i].data.eq(self.data_in.payload),
                         a_wr[i].en.eq(beat & (op == OPS["LOAD_A"]) & (ld_bank == i))]
        for j in range(C):
            m.d.comb += [b_wr[j].addr.eq(Cat(ld_k[:kw], ld_blk)),
                         b_wr[j].data.eq(self.data_in.payload[:cfg.b_bits]),
                         b_wr[j].en.eq(beat & (op == OPS["LOAD_B"]) & (ld_bank == j))]

        def next_bank(width):
            """Step (bank, block) to the next A row (os) or column (ws), or the next B column."""
            with m.If(ld_bank == width - 1):
                m.d.sync += [ld_bank.eq(0), ld_blk.eq(ld_blk + 1)]
            with m.Else():
                m.d.sync += ld_bank.eq(ld_bank + 1)

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.cmd.ready.eq(1)
                p = self.cmd.payload
                with m.If(self.cmd.valid):
                    length = p.m + (2 * R + C - 2) if ws else p.k + (R + C - 2)
                    m.d.sync += [op.eq(p.op), M.eq(p.m), N.eq(p.n), K.eq(p.k),
                                 fold_len.eq(length), ld_k.eq(0), ld_r.eq(0),
                                 ld_bank.eq(0), ld_blk.eq(0), t.eq(0), fr.eq(0), fc.eq(0),
                                 r0.eq(0), n0.eq(0), out_valid.eq(0), dr_left.eq(1),
                                 dr_c.eq(0)]
                    with m.Switch(p.op):
                        with m.Case(OPS["LOAD_A"]):
                            m.next = "LOAD_A"
                        with m.Case(OPS["LOAD_B"]):
                            m.next = "LOAD_B"
                        with m.Case(OPS["COMPUTE"]):
                            m.next = "COMPUTE"
                        with m.Case(OPS["DRAIN_C"]):
                            m.next = "DRAIN_C"
            with m.State("LOAD_A"):                             # row-major m x k
                m.d.comb += self.data_in.ready.eq(1)
                with m.If(self.data_in.valid):
                    m.d.sync += ld_k.eq(ld_k + 1)
                    if ws:
                        next_bank(R)
                    with m.If(ld_k == K - 1):
                        m.d.sync += [ld_k.eq(0), ld_r.eq(ld_r + 1)]
                        if ws:
                            m.d.sync += [ld_bank.eq(0), ld_blk.eq(0)]
                        else:
                            next_bank(R)
                        with m.If(ld_r == M - 1):
                            m.next = "IDLE"
            with m.State("LOAD_B"):                             # row-major k x n
                m.d.comb += self.data_in.ready.eq(1)
                with m.If(self.data_in.valid):
                    m.d.sync += ld_r.eq(ld_r + 1)
                    next_bank(C)
                    with m.If(ld_r == N - 1):
                        m.d.sync += [ld_r.eq(0), ld_bank.eq(0), ld_blk.eq(0), ld_k.eq(ld_k + 1)]
                        with m.If(ld_k == K - 1):
                            m.next = "IDLE"
            with m.State("COMPUTE"):
                m.d.comb += issuing.eq(1)
                m.d.sync += t.eq(t + 1)
                with m.If(t == fold_len - 1):
                    m.d.sync += t.eq(0)
                    with m.If(n0 + C >= N):
                        m.d.sync += [fc.eq(0), n0.eq(0), fr.eq(fr + 1), r0.eq(r0 + R)]
                        with m.If(r0 + R >= (K if ws else M)):
                            m.d.sync += tail.eq(1)
                            m.next = "TAIL"
                    with m.Else():
                        m.d.sync += [fc.eq(fc + 1), n0.eq(n0 + C)]
            with m.State("TAIL"):                               # the last fold's last row lands
                m.d.sync += tail.eq(tail - 1)
                with m.If(tail == 0):
                    m.next = "IDLE"
            with m.State("DRAIN_C"):
                with m.If(advance):
                    m.d.sync += [out_valid.eq(dr_left), sel.eq(ld_bank)]
                    with m.If(dr_left):                         # step (r, bank, block)
                        next_bank(C)
                        m.d.sync += dr_c.eq(dr_c + 1)
                        with m.If(dr_c == N - 1):
                            m.d.sync += [dr_c.eq(0), ld_bank.eq(0), ld_blk.eq(0),
                                         ld_r.eq(ld_r + 1)]
                            with m.If(ld_r == M - 1):
                                m.d.sync += dr_left.eq(0)
                    with m.Else():
                        m.next = "IDLE"
        return m

    def _os_fold(self, m, arr, a_rd, b_rd, c_wr, M, N, K, t, fr, fc, m0, n0, issuing, kw, cw):
        """Output-stationary fold: ``K`` beats, then write-back of the rows into C."""
        R, C = self.config.rows, self.config.cols
        # operand feed: read the banks at k = t while t < K; data reach the array a cycle later
        for i in range(R):
            m.d.comb += [a_rd[i].addr.eq(Cat(t[:kw], fr)), arr.a[i].eq(a_rd[i].data)]
        for j in range(C):
            m.d.comb += [b_rd[j].addr.eq(Cat(t[:kw], fc)), arr.b[j].eq(b_rd[j].data)]
        m.d.sync += [arr.valid.eq(issuing & (t < K)), arr.first.eq(issuing & (t == 0))]

        # write-back: a token leaves with the fold's last beat and arrives after cols cycles,
        # when row 0 of that fold is complete; then one row a cycle goes into the C buffer
        token = [(Signal(name=f"tok{s}"), Signal.like(m0, name=f"tok{s}_m0"),
                  Signal.like(fc, name=f"tok{s}_fc"), Signal.like(n0, name=f"tok{s}_n0"))
                 for s in range(C)]
        m.d.sync += [token[0][0].eq(issuing & (t == K - 1)), token[0][1].eq(m0),
                     token[0][2].eq(fc), token[0][3].eq(n0)]
        for s in range(1, C):
            m.d.sync += [a.eq(b) for a, b in zip(token[s], token[s - 1])]
        tok, tok_m0, tok_fc, tok_n0 = token[-1]
        wb_on = Signal()
        wb_i = Signal(range(R))
        wb_row = Signal.like(m0)
        wb_fc = Signal.like(fc)
        wb_n0 = Signal.like(n0)
        with m.If(tok):
            m.d.sync += [wb_on.eq(1), wb_i.eq(0), wb_row.eq(tok_m0), wb_fc.eq(tok_fc),
                         wb_n0.eq(tok_n0)]
        with m.Elif(wb_on):
            m.d.sync += [wb_i.eq(wb_i + 1), wb_row.eq(wb_row + 1)]
            with m.If(wb_i == R - 1):
                m.d.sync += wb_on.eq(0)
        m.d.comb += arr.row_sel.eq(wb_i)
        for j in range(C):
            m.d.comb += [c_wr[j].addr.eq(Cat(wb_fc[:cw], wb_row)), c_wr[j].data.eq(arr.row[j]),
                         c_wr[j].en.eq(wb_on & (wb_row < M) & (wb_n0 + j < N))]

    def _ws_fold(self, m, arr, a_rd, b_rd, c_rd, c_wr, op, M, N, K, t, fr, fc, k0, n0,
                 issuing, mw, kw, cw):
        """Weight-stationary fold: ``rows`` cycles of weight load, then ``M`` rows of A; each
        column's partial sums are added into the C buffer (read-modify-write after the first
        K fold) as they leave the array."""
        R, C = self.config.rows, self.config.cols
        # weights: at t < R read B row k0 + R - 1 - t (zero beyond K) and shift it in a cycle
        # later, so that row i of the array ends up holding B row k0 + i
        k_w = Signal.like(k0)
        m.d.comb += k_w.eq(k0 + (R - 1) - t)
        w_zero = Signal()
        m.d.sync += [arr.w_load.eq(issuing & (t < R)), w_zero.eq(k_w >= K)]
        for j in range(C):
            m.d.comb += [b_rd[j].addr.eq(Cat(k_w[:kw], fc)),
                         arr.b[j].eq(Mux(w_zero, 0, b_rd[j].data))]
        # activations: at R <= t < R + M read A row m = t - R (column k0 + i in bank i)
        row = Signal.like(t)
        m.d.comb += row.eq(t - R)
        for i in range(R):
            m.d.comb += [a_rd[i].addr.eq(Cat(row[:mw], fr)), arr.a[i].eq(a_rd[i].data)]
        # a token per A row follows it: column j's sum leaves rows + j cycles after the row
        # entered (1 + rows + j after the read), so stage rows + j - 1 reads the C buffer and
        # stage rows + j writes it
        token = [(Signal(name=f"tok{s}"), Signal(mw, name=f"tok{s}_m"),
                  Signal(name=f"tok{s}_acc"), Signal.like(fc, name=f"tok{s}_fc"),
                  Signal.like(n0, name=f"tok{s}_n0")) for s in range(R + C)]
        m.d.sync += [token[0][0].eq(issuing & (t >= R) & (row < M)), token[0][1].eq(row[:mw]),
                     token[0][2].eq(fr != 0), token[0][3].eq(fc), token[0][4].eq(n0)]
        for s in range(1, R + C):
            m.d.sync += [a.eq(b) for a, b in zip(token[s], token[s - 1])]
        for j in range(C):
            _, rm, _, rfc, _ = token[R + j - 1]
            valid, wm, acc, wfc, wn0 = token[R + j]
            with m.If(op != OPS["DRAIN_C"]):
                m.d.comb += c_rd[j].addr.eq(Cat(rfc[:cw], rm))
            m.d.comb += [c_wr[j].addr.eq(Cat(wfc[:cw], wm)),
                         c_wr[j].data.eq(arr.psum[j] + Mux(acc, c_rd[j].data, 0)),
                         c_wr[j].en.eq(valid & (wn0 + j < N))]
