"""``pdsim hat``: bad values exit 2 with one line naming the flag; a run's bytes by hand."""

from __future__ import annotations

import json

import pytest

from sim.cli.main import main

SMALL = ["hat", "--devices", "2", "--cloud-gpus", "1", "--prompt", "64", "--gen", "9"]


def _code(argv) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's own refusals
        return exc.code


@pytest.mark.parametrize("extra, flag", [
    (["--accept", "1.5"], "--accept"), (["--accept", "nan"], "--accept"),
    (["--gamma", "0"], "--gamma"), (["--k", "0"], "--k"), (["--k", "20", "--m", "20"], "--k/--m"),
    (["--mode", "foo"], "--mode"), (["--net", "nosuch"], "--net"),
    (["--device", "nosuch"], "--device"), (["--cloud", "nosuch"], "--cloud"),
    (["--devices", "0"], "--devices"), (["--stagger", "-1"], "--stagger"),
    (["--stagger", "inf"], "--stagger"), (["--cloud-gpus", "0"], "--cloud-gpus"),
    (["--adapter-layers", "-1"], "--adapter-layers"),
    (["--model", "llama2-13b", "--k", "18", "--m", "19"], "devices[0]"),
    (["--device-model", "nosuch"], "--device-model"),
    (["--device-model", "llama2-70b", "--mode", "device"], "devices[0]"),  # 138 GB on 16 GB
])
def test_bad_values_exit_2_with_one_line(extra, flag, capsys):
    assert _code(SMALL + extra) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flag in err and "Traceback" not in err


def test_json_run_moves_the_hand_counted_bytes(capsys):
    # accept 1: gen 9 = the prefill's token + 2 rounds of gamma + 1 = 4; the U-shape sends
    # one position per generated token after the first
    assert main(SMALL + ["--accept", "1", "--gamma", "3", "--mode", "hat-nochunk",
                         "--mode", "ushape", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    tok = 4096 * 2
    assert out["modes"]["hat-nochunk"]["uplink_bytes"] == (64 + 2 * 4) * tok
    assert out["modes"]["ushape"]["uplink_bytes"] == (64 + 8) * tok
    assert out["modes"]["ushape"]["downlink_bytes"] == (64 + 8) * tok
    for r in out["modes"].values():
        assert sum(r["ttft_split_s"].values()) == pytest.approx(r["ttft_s"])
        assert sum(r["tbt_split_s"].values()) == pytest.approx(r["tbt_s"])


def test_a_zero_bandwidth_link_is_refused(tmp_path, capsys):
    net = tmp_path / "z.yaml"
    net.write_text("name: z\nbandwidth_bytes_per_s: 0\nlatency_s: 0.01\n")
    assert _code(SMALL + ["--net", str(net)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--net" in err and "bandwidth_bytes_per_s" in err


def test_device_model_replaces_the_target_in_the_device_baseline_only(capsys):
    runs = {}
    for extra in ([], ["--device-model", "tinyllama-1.1b"]):
        assert main(SMALL + ["--mode", "device", "--mode", "ushape", "--json"] + extra) == 0
        out = json.loads(capsys.readouterr().out)
        runs[out["device_model"]] = out["modes"]
    assert set(runs) == {"llama2-7b", "tinyllama-1.1b"}
    assert runs["tinyllama-1.1b"]["ushape"] == runs["llama2-7b"]["ushape"]  # target unchanged
    assert runs["tinyllama-1.1b"]["device"]["tbt_s"] < runs["llama2-7b"]["device"]["tbt_s"]
