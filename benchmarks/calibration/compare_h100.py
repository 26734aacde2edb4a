"""Compare pdsim's ``h100-sxm`` preset (the measured card) with the measured H100 data.

    python benchmarks/calibration/compare_h100.py [--json]

Reads ``h100-measured.json`` (written on a real H100 SXM by ``measure_h100.py``; see README)
and prints, for every measured fp16 GEMM and for the Llama-2-7B prefill and decode steps, the
measured time, pdsim's prediction and their ratio. ``tests/sim/test_calibration.py`` checks the
same ratios against stated bands.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
from pathlib import Path

from mappers.ir import Op, OperandFormats, OpKind, Phase
from mappers.models import load_model
from sim.step import compile_step
from sim.engine import Workload
from sim.presets import load_hardware
from sim.roofline import roofline_cost
from sim.units.systolic.tile import tile_cost

MEASURED = Path(__file__).with_name("h100-measured.json")
#: The preset describing the measured card; ``h100`` (SPAD's model of it) is shown beside it.
PRESET = "h100-sxm"


def load_measured() -> dict:
    return json.loads(MEASURED.read_text())


def gemm_comparison(data: dict) -> list[dict]:
    """One row per measured fp16 GEMM: shape, measured and predicted seconds, ratio."""
    system = load_hardware(PRESET).system
    spad_h100 = load_hardware("h100").system
    rows = []
    FP16 = OperandFormats(act="fp16", weight="fp16", acc="fp32")
    for g in data["gemm"]:
        if g["dtype"] != "float16" or g.get("note"):
            continue
        m, n, k = g["M"], g["N"], g["K"]
        op = Op(name="gemm", kind=OpKind.GEMM, dims=(m, n, k), formats=FP16,
                flops=2 * m * n * k, weight_bytes=2 * n * k, act_bytes=2 * (m * k + m * n),
                unit="tensor")
        roof, tile = roofline_cost(system, op), tile_cost(system, op)
        spad = tile_cost(spad_h100, op)
        rows.append({"m": m, "n": n, "k": k, "layout": g["layout"],
                     "measured_s": g["time_s"], "predicted_s": roof.time_s,
                     "ratio": roof.time_s / g["time_s"], "bound": roof.bound,
                     "tile_s": tile.time_s, "tile_ratio": tile.time_s / g["time_s"],
                     "spad_tile_ratio": spad.time_s / g["time_s"],
                     "sm_clock_mhz": g["sm_clock_MHz_mean"]})
    return rows


#: Shape groups of the GEMM bands (tests/sim/test_calibration.py): by M, the token count.
GROUPS = {"M=1": lambda m: m == 1, "M=16": lambda m: m == 16, "M=64": lambda m: m == 64,
          "M=256": lambda m: m == 256, "M>=1024": lambda m: m >= 1024}


def step_comparison(data: dict) -> list[dict]:
    """Llama-2-7B prefill (batch 1) and decode (context 2048) against the measured steps:
    without a runtime (roofline and tile), and at tile detail under the runtime preset that
    matches how each was measured (``stack``: eager transformers for prefill, the same kernels
    replayed from a CUDA graph for decode)."""
    system = load_hardware(PRESET).system
    model = load_model("llama2-7b").config
    precision = Workload().precision
    s = data["summary"]
    rows = []

    def predict(stack, **kw):
        out = {detail: compile_step(model, system, precision=precision, detail=detail,
                                    **kw).time_s for detail in ("roofline", "tile")}
        out["stack"] = compile_step(model, dataclasses.replace(system, runtime=stack),
                                    precision=precision, detail="tile", **kw).time_s
        return out

    for length in (512, 2048, 8192):
        pred = predict("eager", phase=Phase.PREFILL, batch=1, new_tokens=length, context=0)
        rows.append({"step": f"prefill b1 L={length}", "predicted_s": pred["roofline"],
                     "tile_s": pred["tile"], "stack": "eager", "stack_s": pred["stack"],
                     "measured_s": s["llama_prefill_s"][f"{length}_last_token_logits"],
                     "measured_gpu_s": s["llama_prefill_gpu_kernel_s"][str(length)]})
    for batch in (1, 16):
        pred = predict("cuda-graph", phase=Phase.DECODE, batch=batch, new_tokens=1,
                       context=2048)
        graph = s["llama_decode_step_s"][f"b{batch}_StaticCache_cuda_graph"][0]
        gpu = s["llama_decode_step_s"][f"b{batch}_StaticCache_eager"][1]
        rows.append({"step": f"decode b{batch} ctx=2048", "predicted_s": pred["roofline"],
                     "tile_s": pred["tile"], "stack": "cuda-graph", "stack_s": pred["stack"],
                     "measured_s": graph, "measured_gpu_s": gpu})
    for r in rows:
        r["ratio"] = r["predicted_s"] / r["measured_s"]
        r["tile_ratio"] = r["tile_s"] / r["measured_s"]
        r["stack_ratio"] = r["stack_s"] / r["measured_s"]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    data = load_measured()
    gemms, steps = gemm_comparison(data), step_comparison(data)
    if args.json:
        print(json.dumps({"gemm": gemms, "steps": steps}, indent=2))
        return
    print(f"{'M':>6}{'N':>7}{'K':>7} {'layout':<6}{'measured':>11}{'roofline':>11}{'ratio':>7}"
          f"{'tile':>11}{'ratio':>7}  bound   SM MHz")
    for r in gemms:
        print(f"{r['m']:>6}{r['n']:>7}{r['k']:>7} {r['layout']:<6}"
              f"{r['measured_s'] * 1e6:>9.1f}us{r['predicted_s'] * 1e6:>9.1f}us"
              f"{r['ratio']:>7.2f}{r['tile_s'] * 1e6:>9.1f}us{r['tile_ratio']:>7.2f}"
              f"  {r['bound']:<7} {r['sm_clock_mhz']:.0f}")
    for label, pick in GROUPS.items():
        sel = [r for r in gemms if pick(r["m"])]
        for model, key in (("roofline", "ratio"), ("tile", "tile_ratio"),
                           ("tile, SPAD's h100", "spad_tile_ratio")):
            ratios = [r[key] for r in sel]
            print(f"{label}, {model}: predicted/measured median "
                  f"{statistics.median(ratios):.2f}, range {min(ratios):.2f}-"
                  f"{max(ratios):.2f} over {len(ratios)} shapes")
    print(f"\n{'step':<22}{'measured':>11}{'GPU kernels':>13}{'roofline':>11}{'ratio':>7}"
          f"{'tile':>11}{'ratio':>7}  {'stack':<11}{'tile+stack':>11}{'ratio':>7}")
    for r in steps:
        print(f"{r['step']:<22}{r['measured_s'] * 1e3:>9.2f}ms{r['measured_gpu_s'] * 1e3:>11.2f}ms"
              f"{r['predicted_s'] * 1e3:>9.2f}ms{r['ratio']:>7.2f}"
              f"{r['tile_s'] * 1e3:>9.2f}ms{r['tile_ratio']:>7.2f}  {r['stack']:<11}"
              f"{r['stack_s'] * 1e3:>9.2f}ms{r['stack_ratio']:>7.2f}")


if __name__ == "__main__":
    main()
