"""Start-up and per-step cost of whole ``pdsim`` processes (issue 12, "Speed").

    python benchmarks/bench_speed.py [--repeat 3] [--repo PATH] [--json]

Every figure is a fresh ``python -m sim.cli.main ...`` process run from ``--repo`` (default:
this checkout; point it at an export of an older commit for "before" figures), measured with
``/usr/bin/time``: wall seconds, CPU seconds (user + system) and peak resident memory. Rows:

  * which heavy modules (numba, h5py, matplotlib) each command imports, the process's total
    import time (``python -X importtime``: wall time, top-level imports summed) and the
    process's CPU time (one run each);
  * ``pdsim cid --op gemv --rows 4096 --cols 4096 --hw attacc`` with a cold Numba cache (a
    fresh, empty ``NUMBA_CACHE_DIR``: every kernel compiled) and then warm - target: cold
    under 5 CPU-s;
  * ``pdsim run`` (h100, llama2-7b, trace written) with 2048 + 8 and 2048 + 1024 tokens, every
    decode step simulated - target: the long run under 1.5x the short one;
  * ``pdsim run --hw cent --prompt 512 --gen 3584`` (the issue's trace-memory case).

Warm rows take the median of ``--repeat`` runs after one untimed run that fills the Numba
cache. Speed claims quote this script's output (benchmarks/results/bench_speed.txt).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HEAVY = ("numba", "h5py", "matplotlib")


def process(repo: Path, args: list[str], cache: str, *, importtime: bool = False
            ) -> dict[str, object]:
    """Run ``python -m sim.cli.main ARGS`` in ``repo``; wall s, CPU s, peak MB, and with
    ``importtime`` the heavy modules imported and the total import s."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=str(repo))
    with tempfile.NamedTemporaryFile("r", suffix=".time") as stats:
        cmd = ["/usr/bin/time", "-f", "%e %U %S %M", "-o", stats.name, sys.executable,
               *(["-X", "importtime"] if importtime else []), "-m", "sim.cli.main", *args]
        done = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr[-2000:]}")
        wall, user, system, rss_kb = stats.read().split()[-4:]
    out: dict[str, object] = {"wall_s": float(wall), "cpu_s": float(user) + float(system),
                              "peak_mb": int(rss_kb) / 1024}
    if importtime:
        names, total = set(), 0.0
        for line in done.stderr.splitlines():
            if line.startswith("import time:") and "cumulative" not in line:
                _, cumulative, name = line.split("|")
                names.add(name.strip())
                if not name[1:].startswith(" "):  # a top-level import: count it once
                    total += int(cumulative) / 1e6
        out["heavy"] = [h for h in HEAVY if h in names]
        out["import_s"] = total
    return out


def median(repo: Path, args: list[str], cache: str, repeat: int) -> dict[str, float]:
    process(repo, args, cache)  # fill the Numba cache and the file cache
    runs = [process(repo, args, cache) for _ in range(repeat)]
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    repo = args.repo.resolve()

    out: dict[str, object] = {"machine": platform.processor() or platform.machine(),
                              "cpus": os.cpu_count(), "repo": str(repo)}
    with tempfile.TemporaryDirectory() as tmp:
        warm = os.path.join(tmp, "numba-warm")
        trace = ["-o", os.path.join(tmp, "t.h5")]
        commands = {
            "run (default)": ["run", *trace],
            "run --detail roofline --no-trace": ["run", "--detail", "roofline", "--no-trace"],
            "list": ["list"],
            "describe h100": ["describe", "h100"],
        }
        process(repo, ["run", *trace], warm)  # fill the warm cache
        imports = {}
        for name, cmd in commands.items():
            r = process(repo, cmd, warm, importtime=True)
            imports[name] = {"heavy_imports": r["heavy"], "import_s": r["import_s"],
                             "cpu_s": r["cpu_s"]}
        out["imports"] = imports

        cid = ["cid", "--op", "gemv", "--rows", "4096", "--cols", "4096", "--hw", "attacc"]
        out["cid gemv 4096 attacc, cold Numba cache"] = process(
            repo, cid, os.path.join(tmp, "numba-cold"))
        out["cid gemv 4096 attacc, warm"] = median(repo, cid, warm, args.repeat)

        for label, extra in (("run 2048 + 8", ["--gen", "8"]),
                             ("run 2048 + 1024", ["--gen", "1024"]),
                             ("run cent 512 + 3584", ["--hw", "cent", "--prompt", "512",
                                                      "--gen", "3584"])):
            out[label] = median(repo, ["run", *extra, *trace], warm, args.repeat)
    short, long = out["run 2048 + 8"], out["run 2048 + 1024"]
    out["ratio 1024 / 8 (wall)"] = long["wall_s"] / short["wall_s"]
    out["ratio 1024 / 8 (cpu)"] = long["cpu_s"] / short["cpu_s"]

    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{out['repo']}: {out['cpus']} CPUs, median of {args.repeat} warm runs")
    for name, r in out["imports"].items():
        print(f"  pdsim {name:<34} imports {', '.join(r['heavy_imports']) or '-':<12} "
              f"{r['import_s']:6.3f} s; process {r['cpu_s']:5.2f} CPU-s")
    for key, value in out.items():
        if isinstance(value, dict) and "wall_s" in value:
            print(f"  {key:<42} {value['wall_s']:7.2f} s wall {value['cpu_s']:7.2f} CPU-s "
                  f"{value['peak_mb']:7.0f} MB")
        elif key.startswith("ratio"):
            print(f"  {key:<42} {value:7.2f}")


if __name__ == "__main__":
    main()
