"""Speed of the analog CiM models (`sim.units.cim.numerics`, `sim.units.cim.cost`).

    python benchmarks/bench_cim.py [--repeat 5] [--json]

Times (median of ``--repeat``, after one warm-up call that compiles or loads the Numba
kernel):
  * one 4096x4096 MVM (one token, int8) through the numerical model on `halo-cim`'s crossbar,
    with ideal devices and with the preset's programming and read noise (read-noise draws
    included; programming the weights, done once per weight matrix, is timed separately);
  * programming those 4096x4096 int8 weights (`program`: slicing, differential encoding,
    conductances and their squares, 4 slices -> two 4096x16384 float32 arrays), ideal and
    with the preset's programming noise (two float32 standard-normal draws per cell pair,
    drawn by the numpy Generator, which bound the noisy time from below);
  * the timing model costing every GEMM and the LM head of a llama2-7b prefill (2048 tokens,
    int8): `mappers.lower`, `plan_weights` and `cim_op_cost` for each op.
Targets (issue 5): MVM < 0.5 s warm; whole-prefill costing < 1 s. Speed claims quote this
script's output, never a pass/fail test.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root
from benchmarks.timing import median_time  # noqa: E402
import numpy as np

from mappers.ir import Phase, Precision
from mappers.lower import lower
from mappers.models import load_model
from sim.units.cim.numerics import mvm, program
from sim.units.cim.cost import CIM_KINDS, cim_op_cost
from sim.units.cim.residency import plan_weights
from sim.units.cim.crossbar import load_cim


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    unit = load_cim("halo-cim").unit
    xb = unit.crossbar
    ideal = dataclasses.replace(xb, programming_noise=0.0, read_noise=0.0)
    rng = np.random.default_rng(0)
    w = rng.integers(-127, 128, size=(4096, 4096))
    x = rng.integers(-127, 128, size=(1, 4096))
    out = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"}
    for name, crossbar in (("ideal", ideal), ("noisy", xb)):
        prog = program(crossbar, w, rng=rng)
        out[f"mvm_4096x4096_{name}_s"] = median_time(lambda p=prog: mvm(p, x, rng=rng),
                                                     args.repeat)
        del prog  # one programmed matrix (2 x 268 MB) alive at a time
    for name, crossbar in (("ideal", ideal), ("noisy", xb)):
        out[f"program_4096x4096_{name}_s"] = median_time(
            lambda c=crossbar: program(c, w, rng=rng), args.repeat)

    cfg = load_model("llama2-7b").config

    def prefill() -> float:
        g = lower(cfg, phase=Phase.PREFILL, batch=1, new_tokens=2048, context=0,
                  precision=Precision(weight="int8", activation="int8", kv="int8"))
        plan = plan_weights(g, unit)
        return sum(seg.repeat * cim_op_cost(op, unit,
                                            resident_weights_bytes=plan.resident_bytes(op)).time_s
                   for seg in g.segments for op in seg.ops if op.kind in CIM_KINDS)

    out["timing_model_llama2_7b_prefill_s"] = median_time(prefill, args.repeat)
    out["llama2_7b_prefill_gemm_time_on_halo_cim_s"] = prefill()
    if args.json:
        print(json.dumps(out, indent=2))
        return
    for key, value in out.items():
        print(f"{key:<44} {value:.4g}" if isinstance(value, float) else f"{key:<44} {value}")


if __name__ == "__main__":
    main()
