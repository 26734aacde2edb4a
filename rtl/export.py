"""Verilog export of the datapath with a JSON sidecar describing its ports and parameters."""

from __future__ import annotations

from amaranth.hdl import Shape
from amaranth.lib import data, wiring

from sim.units.systolic.datapath import OPS, DatapathConfig, k_bound

from .controller import SystolicDatapath, command_layout

#: Name of the exported top-level module.
TOP = "pdsim_systolic"


def command_fields(config: DatapathConfig) -> dict[str, tuple[int, int]]:
    """``{field: (bit offset, width)}`` of the command payload (LSB first)."""
    layout = command_layout(config)
    return {name: (f.offset, Shape.cast(f.shape).width) for name, f in layout}


def _ports(component: wiring.Component) -> list[dict]:
    """Verilog ports as Amaranth names them: ``<member>__<sub-member>``, plus clk and rst."""
    ports = [{"name": "clk", "direction": "input", "width": 1},
             {"name": "rst", "direction": "input", "width": 1}]
    for path, member, _ in component.signature.flatten(component):
        name = "__".join(str(p) for p in path)
        shape = member.shape
        width = Shape.cast(shape).width if not isinstance(shape, data.Layout) else shape.size
        ports.append({"name": name, "direction": "input" if member.flow == wiring.In
                      else "output", "width": width,
                      "signed": bool(Shape.cast(shape).signed)})
    return ports


def export_verilog(config: DatapathConfig) -> tuple[str, dict]:
    """``(verilog text, sidecar dict)`` of the datapath for ``config`` (validated first, so
    bad parameters are refused before any HDL is generated)."""
    from amaranth.back import verilog

    dut = SystolicDatapath(config)
    text = verilog.convert(dut, name=TOP, emit_src=False)
    sidecar = {
        "top": TOP,
        "parameters": {"rows": config.rows, "cols": config.cols, "mode": config.mode,
                       "max_m": config.max_m, "max_n": config.max_n, "max_k": config.max_k,
                       "a_bits": config.a_bits, "b_bits": config.b_bits,
                       "acc_bits": config.acc_bits, "acc_frac_bits": config.frac_bits,
                       "k_bound": k_bound(config.mode), "dataflow": config.dataflow},
        "ports": _ports(dut),
        "clock": "clk (rising edge)", "reset": "rst (synchronous, active high)",
        "command_fields": {k: {"offset": o, "width": w}
                           for k, (o, w) in command_fields(config).items()},
        "opcodes": dict(OPS),
        "cycles": {"LOAD_A": "m*k + input stalls", "LOAD_B": "k*n + input stalls",
                   "COMPUTE": ("ceil(m/rows)*ceil(n/cols)*(k+rows+cols-2) + 2"
                               if config.dataflow == "os" else
                               "ceil(k/rows)*ceil(n/cols)*(m+2*rows+cols-2) + 2"),
                   "DRAIN_C": "m*n + 1 + output stalls"},
    }
    return text, sidecar


def export_nearbank(config) -> tuple[str, dict]:
    """``(verilog text, sidecar dict)`` of the near-bank GEMV unit for a
    `sim.units.cid.nearbank_model.NearBankConfig`."""
    from amaranth.back import verilog

    from sim.units.cid.nearbank_model import OPS as NB_OPS

    from .nearbank import NearBankUnit, command_layout as nb_layout

    dut = NearBankUnit(config)
    text = verilog.convert(dut, name="pdsim_nearbank", emit_src=False)
    fields = {name: {"offset": f.offset, "width": Shape.cast(f.shape).width}
              for name, f in nb_layout(config)}
    sidecar = {
        "top": "pdsim_nearbank",
        "parameters": {"lanes": config.lanes, "wdtype": config.wdtype,
                       "acc_rows": config.acc_rows, "gb_entries": config.gb_entries,
                       "max_macs": config.max_macs, "rows": config.rows,
                       "columns": config.columns, "rd_max": config.rd_max,
                       "pending": config.pending, "acc_bits": config.acc_bits,
                       "acc_frac_bits": config.frac_bits},
        "ports": _ports(dut),
        "clock": "clk (rising edge)", "reset": "rst (synchronous, active high)",
        "command_fields": fields, "opcodes": dict(NB_OPS),
    }
    return text, sidecar
