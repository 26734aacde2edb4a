"""Wall time of the compute-in-DRAM model (the issue's acceptance targets).

    python benchmarks/bench_cid.py [--repeat 20] [--json]

Times (median of ``--repeat``, after one warm-up call that compiles the Numba kernels):
  * a 4096 x 4096 fp16 GEMV on one HBM3-PIM stack (per-bank mode, AttAcc's HBM3), the
    command-level engine run from scratch each time (op cache cleared) - target < 50 ms;
  * the same with its command stream recorded and re-verified by the checker (for scale);
  * the checker alone on streams of about 17k, 170k and 200k commands, in ``bank`` mode
    (every command addresses every bank) and ``buffer`` mode (one bank per command):
    seconds and commands per second; linear time shows as a flat commands/s;
  * one llama2-7b decode step on ``cent`` (lower, place, cost every op, schedule) at a
    2048-token context, op caches cleared each time - target < 1 s;
  * the same step with warm op caches (what the engine sees after the first step).
Speed claims in notes and READMEs quote this script's output, never a pass/fail test.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root
from benchmarks.timing import median_time  # noqa: E402
from mappers.ir import Phase, Precision
from mappers.models import load_model
from sim.step import compile_step
from sim.units.cid import ops as cid_ops
from sim.units.cid.engine import run_channel
from sim.units.cid.check import check_stream
from sim.units.cid.dram import load_dram
from sim.presets import load_hardware


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    clear = cid_ops._channel.cache_clear  # time the simulation, not the memo
    hbm3 = load_dram("hbm3")
    cent = load_hardware("cent").system
    model = load_model("llama2-7b").config
    lay = cid_ops.gemv_layout(hbm3, "bank", 4096, 4096, "fp16")

    def gemv():
        return cid_ops.gemv(hbm3, "bank", 4096, 4096, "fp16")

    def checked():
        run = run_channel(hbm3, "bank", steps=lay.steps, cols=lay.cols, chunks=lay.chunks_local,
                          gb_writes=lay.gb_writes, reads=lay.reads, record=True)
        assert not check_stream(run.stream, hbm3, end_cycle=run.cycles)

    def step():
        return compile_step(model, cent, phase=Phase.DECODE, batch=1, new_tokens=1,
                            context=2048, precision=Precision())

    out = {
        "machine": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "gemv_4096x4096_hbm3_stack_s": median_time(gemv, args.repeat, before=clear),
        "gemv_4096x4096_recorded_and_checked_s": median_time(
            checked, max(1, args.repeat // 10), before=clear),
        "llama2_7b_decode_step_cent_cold_s": median_time(step, args.repeat, before=clear),
        "llama2_7b_decode_step_cent_warm_s": median_time(step, args.repeat),
    }
    for mode in ("bank", "buffer"):
        for target in (17_000, 170_000, 200_000):
            run = _stream(hbm3, mode, target)
            n = len(run.stream)
            secs = median_time(partial(check_stream, run.stream, hbm3, end_cycle=run.cycles),
                               max(1, args.repeat // 4))
            out[f"check_{mode}_{target // 1000}k_commands"] = n
            out[f"check_{mode}_{target // 1000}k_s"] = secs
            out[f"check_{mode}_{target // 1000}k_commands_per_s"] = round(n / secs)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    for key, value in out.items():
        print(f"{key:<42} {value * 1e3:.3f} ms" if isinstance(value, float) else
              f"{key:<42} {value:,}" if isinstance(value, int) else f"{key:<42} {value}")


def _stream(device, mode, commands):
    """A recorded full-row stream of ``mode`` with about ``commands`` commands (refresh on)."""
    cols = device.org.columns * (device.org.groups_per_pc if mode == "buffer" else 1)
    per_step = len(run_channel(device, mode, steps=20, cols=cols, record=True).stream) / 20
    return run_channel(device, mode, steps=max(1, round(commands / per_step)), cols=cols,
                       record=True)


if __name__ == "__main__":
    main()
