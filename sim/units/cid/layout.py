"""The GEMV layout of a compute-in-DRAM unit and its functional model.

The GEMV layout (docs/cid.md has the picture): ``y[N] = W[N, K] @ x[K]`` on ``pcs``
pseudo-channels (PCs) with ``units`` MAC units per PC (every bank in the ``bank``/``aim``
modes, every bank group in ``bankgroup``, one buffer-die unit in ``buffer``).

* A *step* is what one unit reads between an activate and its precharge: one DRAM row
  (``E`` elements; in ``buffer`` mode one row in each bank group, ``groups x E``).
* ``K <= E``: ``r = (E / lanes) // ceil(K / lanes)`` weight rows are packed per step, each
  padded to whole bursts. ``K > E``: each weight row is cut into ``C = ceil(K / E)`` chunks,
  one step each.
* Weight rows go round-robin over *unit groups*: row ``n`` to group ``n mod G`` as its local
  row ``n div G``. When there are fewer rows than units, a row's chunks are also split over
  ``s`` PCs (``s`` a power of two dividing the PCs used, at most ``C``), chunk ``c`` to part
  ``c mod s``, and the partial sums are reduced across those PCs by the near-memory adder.
* The input vector (the chunk a step needs) is written into each PC's global buffer and
  broadcast to the PC's units; every unit keeps one accumulator per packed row and the
  accumulators are read out after each step (``RDRES``). Partial sums of the chunks of a row
  are added outside the banks (near-memory or host), as are those of split parts.
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
    pack: int           # r: weight rows per step (1 when K > E)
    cols_per_row: int   # bursts per packed weight row
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

    def address(self, n: np.ndarray, kk: np.ndarray) -> tuple[np.ndarray, ...]:
        """(pc, unit, local chunk, step, column, lane) of elements ``W[n, kk]``."""
        gi, loc = n % self.groups, n // self.groups
        pcg, unit = gi % (self.pcs // self.split), gi // (self.pcs // self.split)
        if self.chunks == 1:
            step, slot = loc // self.pack, loc % self.pack
            col = slot * self.cols_per_row + kk // self.lanes
            return pcg * self.split, unit, np.zeros_like(n), step, col, kk % self.lanes
        c, within = kk // self.step_elems, kk % self.step_elems
        pc = pcg * self.split + c % self.split
        return pc, unit, c // self.split, loc, within // self.lanes, within % self.lanes


def gemv_layout(device: DramDevice, mode: str, n: int, k: int, dtype: str,
                pcs: int | None = None, fmt: GemvFormat = PLAIN) -> GemvLayout:
    """The layout of an ``n x k`` GEMV of ``dtype`` weights on ``pcs`` PCs of ``device``;
    ``fmt`` adds the input vector's format and group scales stored beside the weights
    (`sim.units.cid.quant`: a step's columns hold its weights, then their scales)."""
    org = device.org
    pcs = org.pcs if pcs is None else pcs
    if n < 1 or k < 1:
        raise ConfigError(f"gemv: rows and cols must be >= 1, got {n} x {k}")
    if pcs < 1 or pcs & (pcs - 1):
        raise ConfigError(f"gemv: PCs used must be a power of two, got {pcs}")
    if dtype not in DTYPE_BITS:
        raise ConfigError(f"--dtype: unknown dtype {dtype!r} (allowed: {', '.join(DTYPE_BITS)})")
    bits = DTYPE_BITS[dtype]
    abits = DTYPE_BITS[fmt.act or dtype]
    lanes = org.burst_bytes * 8 // bits
    units = {"bank": org.banks_per_pc, "aim": org.banks_per_pc,
             "bankgroup": org.groups_per_pc, "buffer": 1}[mode]
    row_elems = org.row_bytes * 8 // bits
    if mode in ("bank", "aim", "bankgroup") and device.global_buffer_bytes:
        # the global buffer holds one step's inputs, in the activation format
        row_elems = min(row_elems, device.global_buffer_bytes * 8 // abits)
    step_elems = row_elems * (org.groups_per_pc if mode == "buffer" else 1)
    step_cols = step_elems // lanes  # weight columns one step's inputs cover
    # column commands the rows a step opens allow: weight columns and their scales' together
    row_cols = org.columns * (org.groups_per_pc if mode == "buffer" else 1)
    per_row = -(-k // fmt.scale_group) if fmt.grouped else 0  # group scales of one weight row

    def scols(groups: int) -> int:
        return scale_columns(groups, fmt, org.burst_bytes)

    cpr = -(-min(k, step_elems) // lanes)
    if k <= step_elems and cpr + scols(per_row) <= row_cols:
        pack, chunks = max(1, step_cols // cpr), 1
        while pack > 1 and pack * cpr + scols(pack * per_row) > row_cols:
            pack -= 1
    else:
        # as many weight columns as leave room in the row for their scales
        while fmt.grouped and step_cols > 1 and step_cols + scols(
                -(-step_cols * lanes // fmt.scale_group)) > row_cols:
            step_cols -= 1
        step_elems = step_cols * lanes
        cpr = -(-min(k, step_elems) // lanes)
        pack, chunks = 1, -(-k // step_elems)
    total_units = pcs * units
    split = 1
    if n < total_units and chunks > 1:
        split = min(pcs, 1 << int(math.log2(min(chunks, total_units // n))))
    groups = (pcs // split) * units
    local_rows = -(-n // groups)
    chunks_local = -(-chunks // split)
    steps = -(-local_rows // pack)
    if chunks == 1:
        rows_in_step = pack if local_rows >= pack else local_rows
        cols = cols_last = rows_in_step * cpr + scols(rows_in_step * per_row)
    else:
        cols = step_elems // lanes + scols(-(-step_elems // max(fmt.scale_group, 1)))
        tail = k - (chunks - 1) * step_elems
        cols_last = (-(-tail // lanes) + scols(-(-tail // max(fmt.scale_group, 1)))
                     if split == 1 else cols)
    gb_writes = -(-min(k, step_elems) * abits // 8 // org.burst_bytes)
    reads = -(-min(pack, local_rows) * units * ACC_BYTES // org.burst_bytes)
    needed = pcs * units * chunks_local * steps * (step_elems * bits // 8)
    have = pcs * org.banks_per_pc * org.rows * org.row_bytes
    if needed > have:
        raise ConfigError(f"gemv: {n} x {k} {dtype} needs {needed / 2**30:.2f} GiB laid out on "
                          f"{pcs} PCs of {device.name}, which hold {have / 2**30:.2f} GiB")
    return GemvLayout(mode=mode, n=n, k=k, bits=bits, pcs=pcs, units=units, lanes=lanes,
                      step_elems=step_elems, pack=pack, cols_per_row=cpr, chunks=chunks,
                      split=split, groups=groups, local_rows=local_rows, steps=steps,
                      chunks_local=chunks_local, cols=cols, cols_last=cols_last,
                      gb_writes=gb_writes, reads=reads)


def gemv_functional(layout: GemvLayout, w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Execute the layout bank by bank on integer data: place ``w`` in the units' rows, write
    ``x`` into each PC's global buffer, let every unit multiply-accumulate burst by burst,
    read the accumulators out and reduce the partial sums. Returns ``y`` (int64)."""
    lay = layout
    n_idx, k_idx = np.meshgrid(np.arange(lay.n), np.arange(lay.k), indexing="ij")
    pc, unit, cl, step, col, lane = lay.address(n_idx.ravel(), k_idx.ravel())
    ncols = lay.step_elems // lay.lanes
    store = np.zeros((lay.pcs, lay.units, lay.chunks_local, lay.steps, ncols, lay.lanes),
                     dtype=np.int64)
    flat = np.ravel_multi_index((pc, unit, cl, step, col, lane), store.shape)
    if len(np.unique(flat)) != flat.size:
        raise AssertionError("gemv layout maps two weight elements to one place")
    store.flat[flat] = w.ravel()
    y = np.zeros(lay.n, dtype=np.int64)
    for p in range(lay.pcs):
        for c in range(lay.chunks_local):
            # The PC's global buffer for this chunk, as the bursts of one step see it.
            gb = np.zeros(ncols * lay.lanes, dtype=np.int64)
            if lay.chunks == 1:
                seg = np.zeros(lay.cols_per_row * lay.lanes, dtype=np.int64)
                seg[:lay.k] = x
                gb[:lay.pack * len(seg)] = np.tile(seg, lay.pack)
            else:
                chunk = c * lay.split + p % lay.split
                lo = chunk * lay.step_elems
                part = x[lo:lo + lay.step_elems]
                gb[:len(part)] = part
            gb = gb.reshape(ncols, lay.lanes)
            for u in range(lay.units):
                # One MAC per burst: lanes products into the accumulator of the burst's row.
                prods = (store[p, u, c] * gb[None]).sum(axis=2)          # (steps, ncols)
                per_slot = prods[:, :lay.pack * lay.cols_per_row].reshape(
                    lay.steps, lay.pack, lay.cols_per_row).sum(axis=2)   # accumulators
                if lay.chunks > 1:
                    per_slot = prods.sum(axis=1, keepdims=True)
                # Read out and reduce into y: which weight row each accumulator holds.
                for s in range(lay.steps):
                    for slot in range(per_slot.shape[1]):
                        loc = s * lay.pack + slot if lay.chunks == 1 else s
                        pcg = p // lay.split
                        gi = u * (lay.pcs // lay.split) + pcg
                        row = loc * lay.groups + gi
                        if row < lay.n:
                            y[row] += per_slot[s, slot]
    return y
