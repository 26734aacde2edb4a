"""Amaranth RTL of pdsim's prefill datapath: PE, output-stationary systolic array, tile
controller. Each block's reference model is `sim.units.systolic.datapath.DatapathModel`."""

from .array import SystolicArray
from .controller import SystolicDatapath
from .pe import ProcessingElement

__all__ = ["ProcessingElement", "SystolicArray", "SystolicDatapath"]
