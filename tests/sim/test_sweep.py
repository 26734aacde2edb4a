"""``pdsim sweep`` and `sim.sweep`: spec expansion and validation, rows equal to direct runs,
failed points as rows, the point cache (a killed sweep resumes), a Dask distributed cluster,
the Pareto front, and the public API's doctests (docs/api.md, `sim.api`).

References: a row must equal `sim.api.run` of the same inputs (the sweep adds only
orchestration); the Pareto front is checked on hand-made points; grid sizes are products of
the axis lengths."""

from __future__ import annotations

import doctest
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from sim import api
from sim.cli.main import main
from sim.errors import ConfigError
from sim.sweep.execute import run_sweep
from sim.sweep.output import pareto_front, read_table
from sim.sweep.spec import parse_spec

REPO = Path(__file__).resolve().parents[2]
SMALL = {"hw": "h100", "model": "llama2-7b", "batch": 1, "prompt": 64, "gen": 3,
         "detail": "roofline"}


def _spec(tmp_path: Path, data: dict, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_grid_is_every_combination_in_order():
    spec = parse_spec({"base": SMALL, "grid": {"chip.cores": [66, 99, 132],
                                               "model": ["llama2-7b", "llama3-8b"]}}, "s")
    assert len(spec.points) == 6
    assert [p.axes for p in spec.points[:2]] == [{"chip.cores": 66, "model": "llama2-7b"},
                                                 {"chip.cores": 66, "model": "llama3-8b"}]
    assert len({p.key for p in spec.points}) == 6  # distinct inputs, distinct cache keys


def test_random_samples_are_seeded():
    data = {"base": SMALL, "random": {"samples": 5, "seed": 3, "axes": {
        "chip.cores": {"low": 66, "high": 132, "int": True}, "batch": [1, 2, 4]}}}
    a, b = parse_spec(data, "s"), parse_spec(data, "s")
    assert [p.axes for p in a.points] == [p.axes for p in b.points]
    assert all(66 <= p.axes["chip.cores"] <= 132 for p in a.points)
    other = parse_spec({**data, "random": {**data["random"], "seed": 4}}, "s")
    assert [p.axes for p in other.points] != [p.axes for p in a.points]


def test_rows_equal_direct_runs(tmp_path):
    spec = parse_spec({"base": SMALL, "grid": {"chip.cores": [66, 132], "batch": [1, 2]}},
                      "s")
    result = run_sweep(spec, workers=1, cache_dir=None)
    assert result.computed == 4 and result.failed == 0
    for point, row in zip(spec.points, result.rows):
        system = api.load_system("h100", overrides={"chip.cores": point.axes["chip.cores"]})
        direct = api.run(system, "llama2-7b", batch=point.axes["batch"], prompt=64, gen=3,
                         detail="roofline")
        assert row["chip.cores"] == point.axes["chip.cores"]
        for key, value in direct.summary.items():
            if isinstance(value, float) and value != value:  # NaN is a null in a row
                assert row[key] is None
            else:
                assert row[key] == value, key


def test_failed_point_is_a_row_and_the_sweep_goes_on(tmp_path):
    # 64 k-token prompts at batch 256 need far more KV cache than one h100 holds.
    spec = parse_spec({"base": SMALL, "grid": {"batch": [1, 256], "prompt": [64, 65536]}},
                      "s")
    result = run_sweep(spec, workers=1, cache_dir=None)
    errors = [r["error"] for r in result.rows]
    assert errors.count(None) == 3
    assert "does not fit" in [e for e in errors if e][0]


@pytest.mark.parametrize("data, needle", [
    ({"base": SMALL, "grid": {"chip.corez": [1]}}, "chip.corez: unknown field path"),
    ({"base": SMALL, "grid": {"chip.cores": []}}, "grid.chip.cores: expected a non-empty"),
    ({"base": SMALL, "grid": {"chip.cores": [66, -1]}}, "chip.cores"),
    ({"base": SMALL, "grid": {"model": ["nosuch"]}}, "nosuch"),
    ({"base": {**SMALL, "bach": 1}, "grid": {"batch": [1]}}, "base.bach: unknown run input"),
    ({"base": SMALL, "grid": {"dtype": ["fp7"]}}, "unknown dtype"),
    ({"base": SMALL}, "give exactly one of grid or random"),
    ({"base": SMALL, "grid": {"batch": [1]}, "pareto": {"x": 1}}, "pareto"),
])
def test_bad_spec_exits_2_before_any_point(tmp_path, capsys, data, needle):
    cache = tmp_path / "cache"
    code = main(["sweep", str(_spec(tmp_path, data)), "-o", str(tmp_path / "t.csv"),
                 "--cache", str(cache)])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and needle in err
    assert not cache.exists() and not (tmp_path / "t.csv").exists()


def test_cli_writes_table_and_pareto_plot(tmp_path, capsys):
    spec = _spec(tmp_path, {"base": SMALL, "grid": {"chip.cores": [66, 132],
                                                    "model": ["llama2-7b", "llama3-8b"]},
                            "pareto": {"x": "system_cost_usd", "y": "tbt_mean_s"}})
    out = tmp_path / "out" / "sweep.parquet"
    assert main(["sweep", str(spec), "-o", str(out), "--no-cache", "--workers", "1"]) == 0
    rows = read_table(out)
    assert len(rows) == 4 and [r["model"] for r in rows[:2]] == ["llama2-7b", "llama3-8b"]
    assert (tmp_path / "out" / "sweep.pareto.png").stat().st_size > 0
    assert "Pareto front" in capsys.readouterr().out
    assert {p.name for p in out.parent.iterdir()} == {"sweep.parquet", "sweep.pareto.png"}


def test_pareto_front_by_hand():
    rows = [{"x": 1, "y": 5}, {"x": 2, "y": 3}, {"x": 3, "y": 4}, {"x": 4, "y": 1},
            {"x": 2, "y": 3.5}, {"error": "failed"}]
    # (3, 4) is dominated by (2, 3); (2, 3.5) by (2, 3); the failed row has no metrics.
    assert pareto_front(rows, "x", "y") == [0, 1, 3]


def test_killed_sweep_recomputes_only_missing_points(tmp_path):
    """Kill a sweep after its first points are cached, then re-run: only the rest run."""
    cache = tmp_path / "cache"
    data = {"base": {**SMALL, "detail": "tile", "prompt": 512, "gen": 512},
            "grid": {"chip.cores": [40, 50, 60, 70, 80, 90, 100, 110]}}
    spec_path = _spec(tmp_path, data)
    proc = subprocess.Popen([sys.executable, "-m", "sim.cli.main", "sweep", str(spec_path),
                             "-o", str(tmp_path / "t.csv"), "--cache", str(cache),
                             "--workers", "1"], cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if cache.exists() and list(cache.glob("*.json")):
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait(timeout=30)
    done = len(list(cache.glob("*.json")))
    assert 1 <= done < 8  # killed part-way
    result = run_sweep(parse_spec(data, "s"), workers=1, cache_dir=cache)
    assert (result.computed, result.cached) == (8 - done, done)
    again = run_sweep(parse_spec(data, "s"), workers=1, cache_dir=cache)
    assert (again.computed, again.cached) == (0, 8)
    assert again.rows == result.rows


def test_distributed_local_cluster_gives_the_same_rows(tmp_path):
    distributed = pytest.importorskip("distributed")
    spec = parse_spec({"base": SMALL, "grid": {"chip.cores": [66, 132], "batch": [1, 2]}},
                      "s")
    local = run_sweep(spec, workers=1, cache_dir=None)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        remote = run_sweep(spec, scheduler=cluster.scheduler_address,
                           cache_dir=tmp_path / "cache")
    assert remote.rows == local.rows
    assert len(list((tmp_path / "cache").glob("*.json"))) == 4


def test_unreachable_scheduler_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("sim.sweep.execute.CONNECT_TIMEOUT", "1s")
    spec = _spec(tmp_path, {"base": SMALL, "grid": {"batch": [1]}})
    code = main(["sweep", str(spec), "-o", str(tmp_path / "t.csv"), "--no-cache",
                 "--scheduler", "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 2 and "--scheduler" in err and len(err.strip().splitlines()) == 1


def test_api_doctests():
    import sim.api
    assert doctest.testmod(sim.api, optionflags=doctest.ELLIPSIS).failed == 0
    result = doctest.testfile(str(REPO / "docs" / "api.md"), module_relative=False,
                              optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_unknown_override_path_names_it():
    with pytest.raises(ConfigError, match="chip.memory.bandwith: unknown field path"):
        api.load_system("h100", overrides={"chip.memory.bandwith": 1})


def test_spad_sweep_study_bounds(tmp_path):
    """``pdsim reproduce spad-sweep``: against the stock chip, a point can slow down at most
    by the factor its shrunk resource shrank (every op time is a max of terms each scaling
    at most that much) and never speed up when bandwidth falls; decode slows with bandwidth
    at every core count. The shipped spec also runs as a plain ``pdsim sweep``."""
    from sim.studies.spad_sweep import write_spad_sweep

    paths = write_spad_sweep(tmp_path)
    assert {p.name for p in paths} == {"spad_sweep.json", "spad_sweep.png", "README.md",
                                       "spec.yaml"}
    import json
    data = json.loads((tmp_path / "spad_sweep.json").read_text())
    bw0, cores0 = data["hbm_tb_per_s"][0], data["cores"][0]
    assert len(data["points"]) == 25
    for p in data["points"]:
        bound = (bw0 / p["hbm_tb_per_s"]) * (cores0 / p["cores"]) * (1 + 1e-9)
        assert p["decode_rel"] <= bound and p["prefill_rel"] <= bound
    for cores in data["cores"]:
        col = [p["decode_rel"] for p in data["points"] if p["cores"] == cores]
        by_bw = [c for _, c in sorted(zip([p["hbm_tb_per_s"] for p in data["points"]
                                           if p["cores"] == cores], col), reverse=True)]
        assert all(a < b for a, b in zip(by_bw, by_bw[1:]))
    stock = [p for p in data["points"] if p["cores"] == cores0 and p["hbm_tb_per_s"] == bw0]
    assert stock[0]["prefill_rel"] == stock[0]["decode_rel"] == 1.0
