"""Analog compute-in-memory (CiM): the crossbar tile and a chip of them as data, built from
YAML (presets in ``sim/presets/cim/``) by the validated builder of `sim.schema`.

A crossbar of ``rows x cols`` cells holds weights as conductances. A weight of ``b`` bits is
sliced over ``S = ceil(b / cell_bits)`` adjacent columns (ISAAC, ISCA 2016), or, with the
differential encoding, its ``b - 1`` magnitude bits over ``S`` column pairs (``2 S`` columns);
a crossbar holds ``rows x (cols // columns per weight)`` weights. Inputs enter bit-serially
through ``dac_bits`` DACs, one input slice per crossbar read: ``T = ceil(input_bits /
dac_bits)`` reads per input vector (the sign bit excluded when differential). Each read yields
one current per slice (per column, or per pair); ``adcs`` ADCs per crossbar convert them in
turn.

What a GEMM on these units costs (time, energy, reprogramming, weight residency) is
`sim.units.cim.cost`; the values the crossbars compute, noise and ADC clipping included, are
`sim.units.cim.numerics`. `docs/cim.md` has the format and the models with their closed forms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sim.errors import ConfigError
from sim.schema import parse_yaml
from sim.shipped import Shelf

#: How a crossbar holds signs (see `Crossbar`).
ENCODINGS = ("offset", "differential")


def _at_least(value: int, low: int, name: str, high: int | None = None) -> None:
    if value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ConfigError(f"{name}: must be {allowed}, got {value!r}")


def _positive(value: float, name: str) -> None:
    if not value > 0:
        raise ConfigError(f"{name}: must be > 0, got {value!r}")


def _non_negative(value: float, name: str, what: str = "") -> None:
    if not value >= 0:
        raise ConfigError(f"{name}: must be >= 0{what}, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Crossbar:
    """One analog crossbar tile with its DACs, ADCs and write circuits.

    Times in seconds, energies in joules per event: ``dac_energy_j`` per DAC drive of one row
    for one read, ``read_energy_j`` per read of the whole array, ``adc_energy_j`` per
    conversion, ``write_energy_j`` per cell programmed (program-and-verify, all pulses).
    ``write_time_s`` programs and verifies one cell; ``write_cells_parallel`` cells of a row are
    programmed at once. ``adc_range`` is the ADC's full scale as a fraction of the largest
    possible column sum (``rows x (2^dac_bits - 1) x (2^cell_bits - 1)``); sums above it clip.
    ``programming_noise`` and ``read_noise`` are relative standard deviations of a cell's
    conductance: once per programming, and afresh at every read. ``off_conductance_levels``
    is a cell's conductance at level 0 (the off state) in level steps; it carries noise too.

    ``encoding`` says how signs are held. ``offset`` (ISAAC's biased encoding): weights and
    inputs are stored as ``value + 2^(bits-1)``, unipolar DACs, an unsigned ADC, and the
    offsets are removed digitally. ``differential``: a weight's magnitude sits on one of a
    pair of columns (G+ or G-, the pair's currents subtracted before one ADC), inputs are
    sign and magnitude through bipolar DACs, and the ADC is signed (one more bit for the
    sign). Differential costs twice the columns; its sums carry no offset.
    """

    rows: int
    cols: int
    cell_bits: int
    weight_bits: int
    input_bits: int
    dac_bits: int
    adc_bits: int
    adcs: int
    adc_range: float = 1.0
    adc_time_s: float
    adc_energy_j: float
    dac_energy_j: float
    read_time_s: float
    read_energy_j: float
    write_time_s: float
    write_energy_j: float
    write_cells_parallel: int
    programming_noise: float = 0.0
    read_noise: float = 0.0
    off_conductance_levels: float = 0.0
    encoding: str = "offset"

    def __post_init__(self) -> None:
        _at_least(self.rows, 1, "rows")
        _at_least(self.cols, 1, "cols")
        _at_least(self.cell_bits, 1, "cell_bits", 8)
        _at_least(self.weight_bits, 1, "weight_bits", 32)
        if self.encoding not in ENCODINGS:
            raise ConfigError(f"encoding: unknown {self.encoding!r} (allowed: "
                              f"{', '.join(ENCODINGS)})")
        sign = self.encoding == "differential"  # the sign bit is not sliced
        if self.cell_bits > self.weight_bits - sign:
            raise ConfigError(f"cell_bits: must be <= the {self.weight_bits - sign} "
                              f"{'magnitude ' if sign else ''}bits of a weight (weight_bits "
                              f"{self.weight_bits}, sliced across cells), got {self.cell_bits}")
        if self.columns_per_weight() > self.cols:
            raise ConfigError(f"weight_bits: a weight needs {self.columns_per_weight()} "
                              f"columns, more than cols ({self.cols})")
        _at_least(self.input_bits, 1, "input_bits", 32)
        _at_least(self.dac_bits, 1, "dac_bits", 8)
        if self.dac_bits > self.input_bits - sign:
            raise ConfigError(f"dac_bits: must be <= the {self.input_bits - sign} "
                              f"{'magnitude ' if sign else ''}bits of an input (input_bits "
                              f"{self.input_bits}, fed dac_bits at a time), got {self.dac_bits}")
        _at_least(self.adc_bits, 1, "adc_bits", 32)
        _at_least(self.adcs, 1, "adcs", self.cols)
        if not 0 < self.adc_range <= 1:
            raise ConfigError(f"adc_range: must be in (0, 1] (fraction of the largest column "
                              f"sum), got {self.adc_range!r}")
        for name in ("adc_time_s", "read_time_s", "write_time_s"):
            _positive(getattr(self, name), name)
        for name in ("adc_energy_j", "dac_energy_j", "read_energy_j", "write_energy_j"):
            _non_negative(getattr(self, name), name)
        _at_least(self.write_cells_parallel, 1, "write_cells_parallel", self.cols)
        for name in ("programming_noise", "read_noise"):
            _non_negative(getattr(self, name), name, " (a relative standard deviation)")
        _non_negative(self.off_conductance_levels, "off_conductance_levels")

    @property
    def signed(self) -> bool:
        """True for the differential encoding (signed sums, signed ADC)."""
        return self.encoding == "differential"

    def slices(self, weight_bits: int | None = None) -> int:
        """Cell slices per weight of ``weight_bits`` (default: the tile's own):
        ``ceil(bits / cell_bits)``, the sign bit excluded when differential. Each slice is
        one ADC conversion per read."""
        return -(-((weight_bits or self.weight_bits) - self.signed) // self.cell_bits)

    def columns_per_weight(self, weight_bits: int | None = None) -> int:
        """Columns per weight: its slices, twice over when differential."""
        return self.slices(weight_bits) * (2 if self.signed else 1)

    def input_cycles(self, input_bits: int | None = None) -> int:
        """Reads per input vector: ``ceil(bits / dac_bits)``, the sign bit excluded when
        differential (it sets the DAC's polarity)."""
        return -(-((input_bits or self.input_bits) - self.signed) // self.dac_bits)

    @property
    def max_column_sum(self) -> int:
        """Largest column sum (magnitude) of one read, in units of one cell level times one
        DAC level."""
        return self.rows * ((1 << self.dac_bits) - 1) * ((1 << self.cell_bits) - 1)

    @property
    def adc_full_scale(self) -> int:
        """Column sum at the top of the ADC's range (``adc_range x max_column_sum``)."""
        return max(1, math.floor(self.adc_range * self.max_column_sum))

    @property
    def adc_bits_exact(self) -> int:
        """ADC bits that resolve every column sum up to the full scale exactly (one more for
        the sign when differential)."""
        return self.adc_full_scale.bit_length() + self.signed

    @property
    def adc_codes(self) -> tuple[int, int]:
        """Lowest and highest ADC code: ``[0, 2^b - 1]``, or ``+-(2^(b-1) - 1)`` signed."""
        if self.signed:
            return -((1 << (self.adc_bits - 1)) - 1), (1 << (self.adc_bits - 1)) - 1
        return 0, (1 << self.adc_bits) - 1

    @property
    def adc_step(self) -> int:
        """Column-sum units per ADC code: a power of two, 1 when the ADC has enough bits."""
        return 1 << max(0, self.adc_bits_exact - self.adc_bits)


@dataclass(frozen=True, slots=True, kw_only=True)
class Periphery:
    """Digital logic around the crossbars: shift-and-add of ADC codes (one per conversion)
    and the adders that sum partial outputs across row tiles; its clock sets ``cycles``."""

    shift_add_energy_j: float
    accumulate_energy_j: float
    clock_hz: float

    def __post_init__(self) -> None:
        _non_negative(self.shift_add_energy_j, "shift_add_energy_j")
        _non_negative(self.accumulate_energy_j, "accumulate_energy_j")
        _positive(self.clock_hz, "clock_hz")


@dataclass(frozen=True, slots=True, kw_only=True)
class CimUnit:
    """A CiM chip: ``crossbars`` identical tiles, their digital periphery, and the path that
    brings weights (to program) and activations in from memory."""

    name: str
    description: str = ""
    crossbars: int
    crossbar: Crossbar
    periphery: Periphery
    write_parallel_crossbars: int
    weight_load_bandwidth_bytes_per_s: float
    io_energy_pj_per_bit: float = 0.0

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("name: must not be empty")
        _at_least(self.crossbars, 1, "crossbars")
        _at_least(self.write_parallel_crossbars, 1, "write_parallel_crossbars", self.crossbars)
        _positive(self.weight_load_bandwidth_bytes_per_s, "weight_load_bandwidth_bytes_per_s")
        _non_negative(self.io_energy_pj_per_bit, "io_energy_pj_per_bit")

    @property
    def cells(self) -> int:
        """Cells on the chip."""
        return self.crossbars * self.crossbar.rows * self.crossbar.cols

    def weight_capacity(self, weight_bits: int | None = None) -> int:
        """Weights of ``weight_bits`` the chip holds at once (one copy)."""
        xb = self.crossbar
        return self.crossbars * xb.rows * (xb.cols // xb.columns_per_weight(weight_bits))


# ---------------------------------------------------------------- presets

CIM_PRESETS = Shelf(package="sim", folder="presets/cim", suffixes=(".yaml", ".yml"),
                    flag="--hw", noun="CiM preset")


@dataclass(frozen=True, slots=True)
class CimSpec:
    """A loaded CiM unit with the exact text it came from."""

    unit: CimUnit
    text: str
    source: str


def load_cim(spec: str) -> CimSpec:
    """Load a CiM preset by name (``halo-cim``) or a YAML file by path."""
    text, path = CIM_PRESETS.read(spec)
    return CimSpec(unit=parse_cim(text, spec), text=text,
                   source=spec if path is None else str(path))


def parse_cim(text: str, where: str) -> CimUnit:
    """Parse YAML text into a validated `CimUnit`; errors name ``where`` and the field."""
    return parse_yaml(CimUnit, text, where)
