"""Wall time of whole runs: the default ``pdsim run`` and a long-context request.

    python benchmarks/bench_run.py [--repeat 5] [--json]

Times (median of ``--repeat``):
  * ``pdsim run`` with no arguments as a fresh process (imports included; no trace under
    --no-trace would hide the HDF5 write, so the trace is written to a temporary folder);
  * the same simulation in-process (``sim.engine.simulate``), without the CLI;
  * llama2-7b, 32768-token prompt, 1024 generated tokens, exact, in-process;
  * the same with ``decode_sample=64``.
Speed claims in notes and READMEs quote this script's output, never a pass/fail test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root
from benchmarks.timing import median_time  # noqa: E402
from mappers.models import load_model
from sim.engine import Workload, simulate
from sim.presets import load_hardware


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    system = load_hardware("h100").system
    model = load_model("llama2-7b").config
    default = Workload()
    long = Workload(prompt_tokens=32768, gen_tokens=1024)

    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "sim.cli.main", "run", "-o", os.path.join(tmp, "t.h5")]
        subprocess.run(cmd, check=True, capture_output=True)  # warm the file cache
        rows = {
            "pdsim run (default, fresh process)": median_time(
                lambda: subprocess.run(cmd, check=True, capture_output=True), args.repeat),
        }
    rows["simulate default (in-process)"] = median_time(
        lambda: simulate(system, model, default), args.repeat)
    rows["simulate 32k prompt + 1k gen, exact"] = median_time(
        lambda: simulate(system, model, long), args.repeat)
    rows["simulate 32k prompt + 1k gen, decode_sample=64"] = median_time(
        lambda: simulate(system, model, long, decode_sample=64), args.repeat)

    if args.json:
        print(json.dumps({"machine": platform.processor() or platform.machine(),
                          "cpus": os.cpu_count(), "seconds": rows}, indent=2))
        return
    print(f"median of {args.repeat} runs on {os.cpu_count()} CPUs")
    for name, seconds in rows.items():
        print(f"  {name:<48} {seconds * 1e3:9.1f} ms")


if __name__ == "__main__":
    main()
