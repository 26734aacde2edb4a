"""Edge and network hardware as data, and ``pdsim edge`` (sim/edge.py, sim/cli/edge.py):
datasheet figures of the presets, transfers conserved against a hand count, the pipeline
timeline against a closed form, and bad multi-system files refused with one line, exit 2."""

from __future__ import annotations

import json
import textwrap

import pytest

from mappers.edge import COMPUTE
from mappers.ir import Precision
from mappers.models import load_model
from sim.cli.main import main
from sim.edge import load_multi, load_net, simulate_prefill, stage_time_s
from sim.presets import load_hardware

LLAMA7B = load_model("llama2-7b").config


@pytest.mark.parametrize("name, fp16_tflops, int8_tops, gb_per_s, capacity_gb", [
    # dense GPU figures: half NVIDIA's sparse headlines (tech brief / datasheets)
    ("jetson-agx-orin-64gb", 42.5, 85.0, 204.8, 68.72),
    ("jetson-orin-nx-16gb", 15.0, 30.1, 102.4, 17.18),
    ("a6000", 154.8, 309.7, 768.0, 51.54),
])
def test_presets_match_datasheets(name, fp16_tflops, int8_tops, gb_per_s, capacity_gb):
    chip = load_hardware(name).system.chip
    assert chip.peak_tensor_flops("fp16") / 1e12 == pytest.approx(fp16_tflops, rel=0.005)
    assert chip.peak_tensor_flops("int8") / 1e12 == pytest.approx(int8_tops, rel=0.005)
    assert chip.memory.bandwidth_bytes_per_s / 1e9 == pytest.approx(gb_per_s)
    assert chip.memory.capacity_bytes / 1e9 == pytest.approx(capacity_gb, abs=0.01)


def test_net_presets():
    eth = load_net("ethernet-1g")
    # 1 MB over 940 Mb/s after 0.1 ms: 1e-4 + 8e6 / 940e6 s
    assert eth.transfer_s(10**6) == pytest.approx(1e-4 + 8e6 / 940e6)
    assert {load_net(n).jitter_s > 0 for n in ("wifi", "ethernet-1g", "wan")} == {True}


def test_transfers_conserve_bytes_u_shape():
    """hat-ushape: 1000 tokens in chunks of 128 leave the device and come back once each:
    2 x 1000 x 4096 x 2 bytes, by hand 16 384 000."""
    r = simulate_prefill(load_multi("hat-ushape"), LLAMA7B, prompt_tokens=1000)
    moved = r.transfer_bytes()
    assert moved == {"device->cloud": 8_192_000, "cloud->device": 8_192_000}
    assert sum(moved.values()) == 16_384_000


def test_pipeline_matches_the_closed_form():
    """2 devices, 3 chunks. Each device's stage time grows with its chunk's context, so the
    timeline's closed form is the pipeline recurrence: device a ends chunk c at
    A_c = sum of a's first c+1 stage times; the hop lands at A_c + X; device b ends at
    B_c = max(A_c + X, B_{c-1}) + b_c (X = latency + bytes / bandwidth, the link faster
    than a stage here)."""
    ms = load_multi("orin-pair-1gbe")
    r = simulate_prefill(ms, LLAMA7B, prompt_tokens=768, chunk_tokens=256)
    a_stage, b_stage = r.stages
    sys_a, sys_b = ms.systems["orin0"], ms.systems["orin1"]
    a = [stage_time_s(sys_a, LLAMA7B, a_stage, 256, 256 * c, Precision(), "roofline")
         for c in range(3)]
    b = [stage_time_s(sys_b, LLAMA7B, b_stage, 256, 256 * c, Precision(), "roofline")
         for c in range(3)]
    x = 1e-4 + 256 * 4096 * 2 / 117.5e6
    end_a = end_b = 0.0
    for c in range(3):
        end_a += a[c]
        end_b = max(end_a + x, end_b) + b[c]
    assert r.ttft_s == pytest.approx(end_b, rel=1e-12)
    # chunk 1 on orin0 overlaps chunk 0 on orin1
    comp = {(t.op.resource, t.op.chunk): t for t in r.timeline if t.op.kind == COMPUTE}
    assert comp["orin0", 1].start_s < comp["orin1", 0].end_s
    assert comp["orin0", 1].end_s > comp["orin1", 0].start_s
    # and pipelining beats one chunk (the serial sum of the same work)
    one = simulate_prefill(ms, LLAMA7B, prompt_tokens=768, chunk_tokens=768)
    assert r.ttft_s < one.ttft_s


def _write(path, text):
    path.write_text(textwrap.dedent(text))
    return str(path)


_PAIR = """\
    name: t
    model: {model}
    devices:
      - name: a
        hardware: {hw}
        layers: [{la}]
        embedding: true
      - name: b
        hardware: {hwb}
        layers: [{lb}]
        lm_head: true
    links:
      - between: [a, b]
        net: {net}
    """


@pytest.mark.parametrize("fields, words", [
    (dict(model="llama2-13b", hw="jetson-orin-nx-16gb", la='"0-38"', lb='"39"'),
     "devices.a: needs"),                                            # does not fit
    (dict(la='"0-20"', lb='"24-31"'), "layers 21-23 are held by no device"),
    (dict(la='"0-20"', lb='"20-31"'), "layer 20 is also held by a"),
    (dict(net="ZERO"), "bandwidth_bytes_per_s: must be > 0, got 0"),  # zero-bandwidth link
    (dict(la='"0-x"'), "layers: a range is 'first-last'"),
])
def test_bad_multi_system_exits_2_one_line_nothing_written(tmp_path, capsys, fields, words):
    zero = _write(tmp_path / "zero.yaml", "name: z\nbandwidth_bytes_per_s: 0\nlatency_s: 1e-3\n")
    values = dict(model="llama2-7b", hw="jetson-agx-orin-64gb", la='"0-15"', lb='"16-31"',
                  net="ethernet-1g", hwb="jetson-agx-orin-64gb")
    values.update(fields)
    values["net"] = zero if values["net"] == "ZERO" else values["net"]
    path = _write(tmp_path / "multi.yaml", _PAIR.format(**values))
    out = tmp_path / "out.json"
    code = main(["edge", "--system-file", path, "--prompt", "512", "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and words in err, err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["multi.yaml", "zero.yaml"]


def test_cli_json_and_timeline(tmp_path, capsys):
    out = tmp_path / "t.json"
    assert main(["edge", "--system-file", "orin-pair-1gbe", "--prompt", "600",
                 "--chunk-tokens", "200", "--json", "-o", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["link_bytes"] == {"orin0->orin1": 600 * 4096 * 2}
    data = json.loads(out.read_text())
    assert data["ttft_s"] == summary["ttft_s"] == max(r["end_s"] for r in data["timeline"])
    # a transfer lets go of its link when its bytes are out, a latency before it arrives
    moves = [r for r in data["timeline"] if r["kind"] != "compute"]
    assert moves and all(r["start_s"] < r["free_s"] < r["end_s"] for r in moves)
    assert [r["chunk"] for r in data["timeline"] if r["resource"] == "orin1"] == [0, 1, 2]


def test_plan_moves_layers_to_the_faster_device(tmp_path):
    """AGX Orin (42.5 TFLOPS) + Orin NX (15 TFLOPS) split 16/16: the NX is the bottleneck;
    the planner gives the AGX more layers, and the simulated TTFT drops."""
    from sim.edge import plan_split

    path = _write(tmp_path / "het.yaml", _PAIR.format(
        model="llama2-7b", hw="jetson-agx-orin-64gb", la='"0-15"', lb='"16-31"',
        net="ethernet-1g", hwb="jetson-orin-nx-16gb"))
    ms = load_multi(path)
    assert ms.systems["b"].name == "jetson-orin-nx-16gb"
    even = simulate_prefill(ms, LLAMA7B, prompt_tokens=2048, chunk_tokens=256)
    planned = plan_split(ms, LLAMA7B, prompt_tokens=2048, chunk_tokens=256)
    layers = [d.ranges for d in planned.spec.devices]
    assert layers[0][0][0] == 0 and layers[1][0][1] == 31
    assert layers[0][0][1] - layers[0][0][0] + 1 > 16
    better = simulate_prefill(planned, LLAMA7B, prompt_tokens=2048, chunk_tokens=256)
    assert better.ttft_s < 0.8 * even.ttft_s


def test_missing_link_is_refused(tmp_path, capsys):
    path = _write(tmp_path / "m.yaml", _PAIR.format(
        model="llama2-7b", hw="jetson-agx-orin-64gb", la='"0-15"', lb='"16-31"',
        net="ethernet-1g", hwb="jetson-agx-orin-64gb").split("links:")[0])
    assert main(["edge", "--system-file", path, "--prompt", "64"]) == 2
    assert "no link joins them" in capsys.readouterr().err
