"""Quantized weights on a CiD unit: where the scales live and what dequantizing costs the
near-bank unit (issue 14; docs/quant.md, "CiD").

The near-bank MAC lanes dequantize as the weights stream: the repo's unit
(`rtl.nearbank.NearBankUnit`, `sim.units.cid.nearbank_model`) multiplies each burst's lane sum
by one scale in its second pipeline stage, one burst per column command, so a group of at
least one burst (``group`` a multiple of the burst's ``lanes`` weights) costs no MAC slot.
AiM and HBM-PIM apply their scales the same way, per burst in the MAC pipeline. A group that
splits a burst needs one multiply per group in it: the unit then takes a MAC burst only every
``scales_per_burst`` column slots (`dequant_device`). The lanes take one burst of weights per
column command whatever the inputs' format: 64 int4 x fp16 multipliers have the bit-products
of 16 fp16 x fp16 ones (64 x 4 x 16 = 16 x 16 x 16). The RTL builds only inputs of the
weights' width; mixed widths are a cost-model assumption.

Group scales are stored in the same DRAM row as their weights, after the step's weight
columns, and read by the same all-bank column commands into the unit's scale register: a step
holds fewer weights and issues `scale_columns` more column commands (the layout in
`sim.units.cid.layout.gemv_layout`). Per-output-channel scales (``group`` -1) multiply a whole
row's dot product once, where the accumulators are read out and a row's partial sums reduced
(the near-memory adder or the host): no bank column, no MAC slot; their bytes count in the
op's DRAM bytes. The global buffer holds the input vector in the activation format, which may
be wider than the weights' (fp16 inputs to INT4 weights fill it four times as fast).

KV cache: a quantized cache's scales cost the near-bank unit no MAC slot either. Per-token
scales (QServe's per head, with zero points) multiply one key's dot product in q.K^T, where
that row's accumulator is read out, as per-channel weight scales do; in p.V they fold into the
input element p_t (one multiply per key in the global buffer, and the zero point into one
sum per head). Static per-channel scales (FireQ) fold into the query vector for K and into
the output channels for V. Their bytes count in the attention op's DRAM bytes
(``formats.kv_scale_bytes``, read once per op) and the KV write writes the per-token ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.dtypes import DTYPE_BITS, check_dtype
from sim.units.cid.dram import DramDevice


@dataclass(frozen=True, slots=True, kw_only=True)
class GemvFormat:
    """Formats of a GEMV beyond its weights' width. ``act``: the input vector's format (None:
    the weights'). ``scale_group``: weights along ``K`` per scale (``-1``: one per output row,
    ``0``: none). ``scale``: the scales' format."""

    act: str | None = None
    scale_group: int = 0
    scale: str = "fp16"

    def __post_init__(self) -> None:
        if self.act is not None:
            check_dtype(self.act, "activation dtype")
        check_dtype(self.scale, "scale dtype")
        if self.scale_group < -1:
            raise ValueError(f"GemvFormat: scale_group must be >= -1, got {self.scale_group}")

    @property
    def grouped(self) -> bool:
        """Scales per group of ``K`` weights, read from the bank with the weights."""
        return self.scale_group > 0


#: Unquantized (or per-tensor) weights: inputs of the weights' width, no scales.
PLAIN = GemvFormat()


def scale_columns(groups: int, fmt: GemvFormat, burst_bytes: int) -> int:
    """Column commands that read the scales of ``groups`` weight groups of one step."""
    if not fmt.grouped or groups <= 0:
        return 0
    return -(-groups * DTYPE_BITS[fmt.scale] // (8 * burst_bytes))


def scale_bytes(n: int, k: int, fmt: GemvFormat) -> float:
    """Bytes of the scales of an ``n x k`` weight matrix under ``fmt``."""
    per_row = -(-k // fmt.scale_group) if fmt.grouped else (fmt.scale_group == -1)
    return n * per_row * DTYPE_BITS[fmt.scale] / 8


def scales_per_burst(lanes: int, fmt: GemvFormat) -> int:
    """Scales one burst of ``lanes`` weights needs (module): 1 unless groups split bursts; a
    group that neither divides nor is a multiple of ``lanes`` leaves some bursts straddling
    one group boundary more (the worst burst counts)."""
    g = fmt.scale_group
    if not fmt.grouped or g % lanes == 0:
        return 1
    return -(-lanes // g) + (lanes % g != 0)


def dequant_device(device: DramDevice, mode: str, lanes: int, fmt: GemvFormat) -> DramDevice:
    """``device`` as the GEMV's MAC stream sees it: in the lockstep modes (``bank``, ``aim``,
    ``bankgroup``) a burst that needs ``s`` scale multiplies holds the MAC pipeline ``s``
    column slots (`scales_per_burst`), so all-bank MACs are ``s x tCCD_AB`` apart. The
    buffer-die unit (``buffer`` mode) is not bound by a bank's area and keeps its rate."""
    s = scales_per_burst(lanes, fmt)
    if s == 1 or mode == "buffer":
        return device
    return device.with_timing(tCCD_AB=device.timing.tCCD_AB * s)
