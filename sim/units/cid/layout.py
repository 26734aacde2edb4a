"""Where a CiD GEMV's (or multi-token GEMM's) weights live, the per-PC program that streams
them, and a bank-by-bank functional model of it (docs/cid.md has the picture).

``Y[M, N] = X[M, K] @ W[N, K]^T`` on ``pcs`` pseudo-channels (PCs) with ``units`` MAC units
per PC (every bank in the ``bank``/``aim`` modes, every bank group in ``bankgroup``, one
buffer-die unit in ``buffer``). A GEMV is ``M = 1``.

* A *step* is what one unit reads between an activate and its precharge: one DRAM row
  (``E`` elements; in ``buffer`` mode one row in each bank group, ``groups x E``), capped by
  the global buffer's size in the modes that have one.
* The global buffer holds ``t`` input vectors at once (``tokens``; 1 for a GEMV), each cut
  into *K-slices* of ``w = min(E, gb_elems // t)`` elements (whole bursts), so
  ``t = gb_bytes / (K-slice bytes)``: AiM's 2 KB global buffer per channel (ISSCC'22) holds
  1024 fp16 inputs, one vector's 1024-element slice or four 256-element slices.
* ``K <= w``: ``r = (E / lanes) // ceil(K / lanes)`` weight rows are packed per step, each
  padded to whole bursts. ``K > w``: each weight row is cut into ``C = ceil(K / w)`` chunks;
  a step holds chunk ``c`` of ``r = (E / lanes) // (w / lanes)`` weight rows (``r = 1`` for
  a GEMV, whose slice is the whole step).
* Weight rows go round-robin over *unit groups*: row ``n`` to group ``n mod G`` as its local
  row ``n div G``. When there are fewer rows than units, a row's chunks are also split over
  ``s`` PCs (``s`` a power of two dividing the PCs used, at most ``C``), chunk ``c`` to part
  ``c mod s``, and the partial sums are reduced across those PCs by the near-memory adder.
* The ``t`` vectors' slices of a chunk are written into each PC's global buffer (``WRGB``)
  and broadcast to the PC's units; each step's open row is streamed ``t`` times, once per
  vector (``passes``: one activate, ``t`` x the MAC commands); every unit keeps one
  accumulator per packed row and vector (at most one per column of a step, so ``t`` is about
  ``sqrt(E / lanes)`` at most), read out after each step (``RDRES``). Partial sums
  of the chunks of a row are added outside the banks (near-memory or host), as are those of
  split parts.
* *Reload* instead (``reload``): the GEMV's layout, and each step re-fills the buffer while
  its row stays open: before every ``gb / (t x burst)`` columns, the ``t`` vectors' inputs of
  those columns (``WRGB``), then ``t`` passes over them. One activate per row for all ``t``
  vectors, as above, but the inputs are written once per step rather than once per chunk:
  the better choice when a unit holds few rows (the writes are then not shared anyway).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.dtypes import DTYPE_BITS
from sim.errors import ConfigError
from sim.units.cid.dram import DramDevice
from sim.units.cid.quant import PLAIN, GemvFormat, scale_columns

ACC_BYTES = 4  # int32 / fp32 accumulators read out of the MAC units
#: Modes whose MAC units take their inputs from a global buffer (AiM's, AttAcc's GEMV buffer)
#: and so can hold several input vectors at once.
BUFFERED_MODES = ("bank", "aim", "bankgroup")


@dataclass(frozen=True, slots=True)
class GemvLayout:
    """Where every element of ``W[N, K]`` lives, and the per-PC program that streams it."""

    mode: str
    n: int
    k: int
    bits: int
    pcs: int
    units: int          # MAC units per PC
    lanes: int          # elements per burst
    step_elems: int     # E: elements one unit reads per step
    pack: int           # r: weight rows per step
    cols_per_row: int   # bursts per packed weight row (per K-slice)
    chunks: int         # C: chunks per weight row
    split: int          # s: PCs a row's chunks are spread over
    groups: int         # G: unit groups
    local_rows: int     # L: weight rows per unit
    steps: int          # steps per chunk per unit
    chunks_local: int   # chunks per unit
    cols: int
    cols_last: int
    gb_writes: int
    reads: int
    tokens: int = 1     # t: input vectors in the global buffer at once (column passes a step)
    slice_elems: int = 0  # w: elements of a K-slice (a chunk); 0: step_elems (a GEMV)
    sub_cols: int = 0   # reload: columns per buffer refill inside a step (0: none)

    @property
    def width(self) -> int:
        """Elements of one chunk of a weight row (``w``)."""
        return self.slice_elems or self.step_elems

    def address(self, n: np.ndarray, kk: np.ndarray) -> tuple[np.ndarray, ...]:
        """(pc, unit, local chunk, step, column, lane) of elements ``W[n, kk]``."""
        gi, loc = n % self.groups, n // self.groups
        pcg, unit = gi % (self.pcs // self.split), gi // (self.pcs // self.split)
        step, slot = loc // self.pack, loc % self.pack
        if self.chunks == 1:
            col = slot * self.cols_per_row + kk // self.lanes
            return pcg * self.split, unit, np.zeros_like(n), step, col, kk % self.lanes
        c, within = kk // self.width, kk % self.width
        pc = pcg * self.split + c % self.split
        col = slot * self.cols_per_row + within // self.lanes
        return pc, unit, c // self.split, step, col, within % self.lanes


def max_tokens(device: DramDevice, mode: str, dtype: str, fmt: GemvFormat = PLAIN) -> int:
    """Most input vectors the global buffer holds at once with a K-slice of at least one
    burst of weights each, inputs in the activation format (1 in modes without a buffer, whose
    units hold one vector, and with group scales, whose columns this layout does not slice)."""
    if mode not in BUFFERED_MODES or not device.global_buffer_bytes or fmt.grouped:
        return 1
    lanes = device.org.burst_bytes * 8 // DTYPE_BITS[dtype]
    return max(1, device.global_buffer_bytes * 8 // (lanes * DTYPE_BITS[fmt.act or dtype]))


def gemv_layout(device: DramDevice, mode: str, n: int, k: int, dtype: str,
                pcs: int | None = None, fmt: GemvFormat = PLAIN, *, tokens: int = 1,
                reload: bool = False) -> GemvLayout:
    """The layout of an ``n x k`` GEMV of ``dtype`` weights on ``pcs`` PCs of ``device``;
    ``fmt`` adds the input vector's format and group scales stored beside the weights
    (`sim.units.cid.quant`: a step's columns hold its weights, then their scales). With
    ``tokens`` input vectors held in the global buffer at once (module docstring): K-slices
    of ``buffer / tokens`` (``reload`` False), or the GEMV's layout with the buffer re-filled
    inside each open row (``reload`` True)."""
    org = device.org
    pcs = org.pcs if pcs is None else pcs
    if n < 1 or k < 1:
        raise ConfigError(f"gemv: rows and cols must be >= 1, got {n} x {k}")
    if pcs < 1 or pcs & (pcs - 1):
        raise ConfigError(f"gemv: PCs used must be a power of two, got {pcs}")
    if dtype not in DTYPE_BITS:
        raise ConfigError(f"--dtype: unknown dtype {dtype!r} (allowed: {', '.join(DTYPE_BITS)})")
    if not 1 <= tokens <= max_tokens(device, mode, dtype, fmt):
        raise ConfigError(f"gemv: tokens must be in 1..{max_tokens(device, mode, dtype, fmt)} "
                          f"(input vectors the {mode}-mode buffer holds), got {tokens}")
    bits = DTYPE_BITS[dtype]
    abits = DTYPE_BITS[fmt.act or dtype]
    lanes = org.burst_bytes * 8 // bits
    units = {"bank": org.banks_per_pc, "aim": org.banks_per_pc,
             "bankgroup": org.groups_per_pc, "buffer": 1}[mode]
    row_elems = org.row_bytes * 8 // bits
    gb_elems = device.global_buffer_bytes * 8 // abits  # inputs in the activation format
    if mode in BUFFERED_MODES and device.global_buffer_bytes:
        # the global buffer holds one step's inputs
        row_elems = min(row_elems, gb_elems)
    step_elems = row_elems * (org.groups_per_pc if mode == "buffer" else 1)
    step_cols = step_elems // lanes  # weight columns one step's inputs cover
    # column commands the rows a step opens allow: weight columns and their scales' together
    row_cols = org.columns * (org.groups_per_pc if mode == "buffer" else 1)
    per_row = -(-k // fmt.scale_group) if fmt.grouped else 0  # group scales of one weight row

    def scols(groups: int) -> int:
        return scale_columns(groups, fmt, org.burst_bytes)

    width = step_elems
    if tokens > 1 and not reload:  # t vectors' K-slices share the buffer: whole bursts each
        width = min(step_elems, gb_elems // tokens // lanes * lanes)
    cpr = -(-min(k, width) // lanes)
    if k <= width and cpr + scols(per_row) <= row_cols:
        pack, chunks = max(1, step_cols // cpr), 1
        while pack > 1 and pack * cpr + scols(pack * per_row) > row_cols:
            pack -= 1
    elif width < step_elems:  # K-slices of several vectors (no group scales: `max_tokens`)
        pack, chunks = max(1, step_cols // cpr), -(-k // width)
    else:
        # as many weight columns as leave room in the row for their scales
        while fmt.grouped and step_cols > 1 and step_cols + scols(
                -(-step_cols * lanes // fmt.scale_group)) > row_cols:
            step_cols -= 1
        step_elems = width = step_cols * lanes
        cpr = -(-min(k, step_elems) // lanes)
        pack, chunks = 1, -(-k // step_elems)
    if tokens * pack > step_cols:
        # One accumulator per packed row and vector; a unit has one per column of a step (as
        # the near-bank unit's `acc_rows`, sim.units.cid.nearbank_model.unit_config), which
        # also keeps a step (and so a refresh's postponement) short.
        raise ConfigError(f"gemv: {tokens} vectors x {pack} packed rows need {tokens * pack} "
                          f"accumulators per unit; it has {step_cols}")
    t = device.timing
    if tokens > 1 and 2 * tokens * step_cols * (t.tCCD_AB + t.tCCD_S) > t.tREFI:
        # A refresh waits for the next step boundary: a step of t passes (and its buffer
        # writes) must stay under half a refresh interval for it to keep its deadline.
        raise ConfigError(f"gemv: a step of {tokens} passes over {step_cols} columns is too "
                          f"long for {device.name}'s refresh interval")
    total_units = pcs * units
    split = 1
    if n < total_units and chunks > 1:
        split = min(pcs, 1 << int(math.log2(min(chunks, total_units // n))))
    groups = (pcs // split) * units
    local_rows = -(-n // groups)
    chunks_local = -(-chunks // split)
    steps = -(-local_rows // pack)
    rows_in_step = min(pack, local_rows)
    if chunks == 1:
        cols = cols_last = rows_in_step * cpr + scols(rows_in_step * per_row)
    elif width < step_elems:
        # Several rows' chunks per step: the last chunk's steps still stream every slot's
        # columns (their padding multiplies zeros), so its MAC count is the other chunks'.
        cols = cols_last = rows_in_step * cpr
    else:
        cols = step_elems // lanes + scols(-(-step_elems // max(fmt.scale_group, 1)))
        tail = k - (chunks - 1) * step_elems
        cols_last = (-(-tail // lanes) + scols(-(-tail // max(fmt.scale_group, 1)))
                     if split == 1 else cols)
    gb_writes = tokens * -(-min(k, width) * abits // 8 // org.burst_bytes)
    sub_cols = 0
    if reload and tokens > 1:  # every step writes its columns' inputs, t per column
        sub_cols = device.global_buffer_bytes // tokens // (lanes * abits // 8)
        gb_writes = 0
    reads = -(-tokens * rows_in_step * units * ACC_BYTES // org.burst_bytes)
    needed = pcs * units * chunks_local * steps * (step_elems * bits // 8)
    have = pcs * org.banks_per_pc * org.rows * org.row_bytes
    if needed > have:
        raise ConfigError(f"gemv: {n} x {k} {dtype} needs {needed / 2**30:.2f} GiB laid out on "
                          f"{pcs} PCs of {device.name}, which hold {have / 2**30:.2f} GiB")
    return GemvLayout(mode=mode, n=n, k=k, bits=bits, pcs=pcs, units=units, lanes=lanes,
                      step_elems=step_elems, pack=pack, cols_per_row=cpr, chunks=chunks,
                      split=split, groups=groups, local_rows=local_rows, steps=steps,
                      chunks_local=chunks_local, cols=cols, cols_last=cols_last,
                      gb_writes=gb_writes, reads=reads, tokens=tokens,
                      slice_elems=0 if width == step_elems else width, sub_cols=sub_cols)


def gemv_functional(layout: GemvLayout, w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Execute the layout bank by bank on integer data: place ``w`` in the units' rows, write
    the input vectors into each PC's global buffer, let every unit multiply-accumulate burst
    by burst (once per vector), read the accumulators out and reduce the partial sums.
    ``x``: one vector (``k``) or ``layout.tokens`` of them (``tokens x k``); returns ``y``
    (int64) of the same rank."""
    lay = layout
    xs = np.atleast_2d(x)
    if xs.shape != (lay.tokens, lay.k):
        raise ValueError(f"gemv_functional: x must be {lay.tokens} x {lay.k}, got {xs.shape}")
    n_idx, k_idx = np.meshgrid(np.arange(lay.n), np.arange(lay.k), indexing="ij")
    pc, unit, cl, step, col, lane = lay.address(n_idx.ravel(), k_idx.ravel())
    ncols = lay.step_elems // lay.lanes
    store = np.zeros((lay.pcs, lay.units, lay.chunks_local, lay.steps, ncols, lay.lanes),
                     dtype=np.int64)
    flat = np.ravel_multi_index((pc, unit, cl, step, col, lane), store.shape)
    if len(np.unique(flat)) != flat.size:
        raise AssertionError("gemv layout maps two weight elements to one place")
    store.flat[flat] = w.ravel()
    y = np.zeros((lay.tokens, lay.n), dtype=np.int64)
    width = lay.width
    for p in range(lay.pcs):
        for c in range(lay.chunks_local):
            chunk = c * lay.split + p % lay.split
            lo = chunk * width if lay.chunks > 1 else 0
            for t in range(lay.tokens):
                # Vector t's slice in the PC's global buffer, as the bursts of a step see it:
                # one copy per packed slot.
                seg = np.zeros(lay.cols_per_row * lay.lanes, dtype=np.int64)
                part = xs[t, lo:lo + min(width, lay.k)]
                seg[:len(part)] = part
                gb = np.zeros(ncols * lay.lanes, dtype=np.int64)
                gb[:lay.pack * len(seg)] = np.tile(seg, lay.pack)
                gb = gb.reshape(ncols, lay.lanes)
                for u in range(lay.units):
                    # One MAC per burst: lanes products into the accumulator of its row.
                    prods = (store[p, u, c] * gb[None]).sum(axis=2)          # (steps, ncols)
                    per_slot = prods[:, :lay.pack * lay.cols_per_row].reshape(
                        lay.steps, lay.pack, lay.cols_per_row).sum(axis=2)   # accumulators
                    # Read out and reduce into y: which weight row each accumulator holds.
                    gi = u * (lay.pcs // lay.split) + p // lay.split
                    for s in range(lay.steps):
                        for slot in range(lay.pack):
                            row = (s * lay.pack + slot) * lay.groups + gi
                            if row < lay.n:
                                y[t, row] += per_slot[s, slot]
    return y if np.ndim(x) == 2 else y[0]
