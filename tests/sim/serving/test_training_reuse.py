"""Alchemist's reuse beside serving: recorded bytes by hand, the prefill latency they add,
PCIe offload with hedged recomputes, throughput with and without reuse, and refusals."""

import json

import pytest

from sim.serving.instance import Instance
from sim.serving.policies import policy
from sim.serving.request import Request
from sim.serving.simulator import simulate_serving
from sim.serving.training import Trainer, TrainPlan
from tests.sim.serving.test_training import CLUSTER, serve_json


def test_record_bytes_per_token_is_the_hand_count():
    """Toy (tests/mappers/test_train.py): a layer keeps 27008 B for 16 tokens, 1688 B a
    token; 2 layers record 3376 B per prefilled token."""
    from mappers.train import TrainSpec
    from sim.api import load_system
    from sim.serving.training import Training, train_plan
    from tests.mappers.test_train import BF16, TOY

    system = load_system("h100")
    p = train_plan(Training(spec=TrainSpec(batch=2, seq=8), reuse="activations"), TOY, system,
                   precision=BF16, detail="roofline", where="t")
    assert p.record_bytes_per_token == 3376
    assert p.dram_bytes_per_s == system.chip.memory.bandwidth_bytes_per_s
    assert p.reuse_step_s < p.step_s


def test_offloaded_plan_reads_back_what_was_recorded():
    """With PCIe the plan's read-back moves the toy's 1688 B a token a layer, the 3376 B a
    token recorded; the reuse step it interpolates with stays the on-chip one."""
    from mappers.train import TrainSpec
    from sim.api import load_system
    from sim.serving.training import Training, train_plan
    from tests.mappers.test_train import BF16, TOY

    system = load_system("h100")
    kw = dict(precision=BF16, detail="roofline", where="t")
    spec = TrainSpec(batch=2, seq=8)
    chip = train_plan(Training(spec=spec, reuse="activations"), TOY, system, **kw)
    host = train_plan(Training(spec=spec, reuse="activations", pcie_bytes_per_s=1e9), TOY,
                      system, **kw)
    assert chip.prefetch is None
    assert host.prefetch.layers * host.prefetch.layer_bytes_per_token == 3376
    assert host.prefetch.pcie_bytes_per_s == 1e9
    assert host.reuse_step_s == pytest.approx(chip.reuse_step_s, rel=1e-12)
    assert host.extra_bytes == chip.extra_bytes  # 2 layers: the buffers are all of them


def _run(pcie):
    # One 0.05 s chunk per step (0.02 s reusing); serving steps 0.01 s; 1000 B a token
    # recorded at 1 MB/s: a 10-token prefill gains 0.01 s. The first chunk runs from 0 (no
    # samples yet), request 0 prefills 0.05-0.07; the next step at 0.07 takes its sample:
    # ready at once in DRAM, at 0.07 + 10000 B / pcie over PCIe.
    p = TrainPlan(chunk_s=0.05, chunks=1, tokens=8, step_s=0.05, extra_bytes=0, memory={},
                  batch=1, reuse_step_s=0.02, record_bytes_per_token=1000,
                  dram_bytes_per_s=1e6, pcie_bytes_per_s=pcie)
    inst = Instance(name="i", role="collocated", step_time=lambda shapes: 0.01,
                    kv_blocks=100, policy=policy("fcfs"))
    inst.trainer = Trainer(plan=p, share=0.0)
    reqs = [Request(id=0, arrival_s=0.0, prompt_tokens=10, output_tokens=1),
            Request(id=1, arrival_s=1.0, prompt_tokens=10, output_tokens=1)]
    res = simulate_serving(reqs, [inst])
    assert sorted(s.request.id for s in res.sequences) == [0, 1]
    assert res.sequences[0].first_token_s == pytest.approx(0.07)
    return inst.trainer


def test_recording_adds_prefill_latency_and_feeds_a_reused_step():
    t = _run(None)
    assert t.recorded == 2 and t.recorded_bytes == 20_000
    assert t.record_s == pytest.approx(0.02)
    assert t.reused_steps == 2 and t.hedged == 0 and t.split == 1
    assert t.log[1] == pytest.approx((0.07, 0.09, 0))
    # The next step reuses the prompt's other 2 tokens: (0.05 x 6 + 0.02 x 2) / 8 s
    assert t.log[2] == pytest.approx((0.09, 0.09 + 0.34 / 8, 0))


def test_late_pcie_offload_is_recomputed_and_counted():
    late = _run(1e5)  # 0.1 s offload: not ready at 0.07
    # ... and its last 2 tokens, split off for the next step at 0.12, are still late then
    assert late.hedged == 2 and late.reused_steps == 0
    assert late.log[1] == pytest.approx((0.07, 0.12, 0))
    # Idle training starts its step as the prefill ends: any offload is late then
    assert _run(1e9).hedged == 1


def test_offload_queue_is_fifo_and_ready_samples_are_reused():
    # 10000 B at 1e5 B/s: 0.1 s each, one after the other: ready at 0.1 and 0.2.
    p = TrainPlan(chunk_s=0.05, chunks=2, tokens=8, step_s=0.1, extra_bytes=0, memory={},
                  batch=1, reuse_step_s=0.04, record_bytes_per_token=1000,
                  dram_bytes_per_s=1e6, pcie_bytes_per_s=1e5)
    t = Trainer(plan=p, share=0.0)
    t.record(0.0, 10)
    t.record(0.0, 10)
    assert [x.ready_s for x in t.samples.samples] == pytest.approx([0.1, 0.2])
    assert t.start(0.15, 0) == pytest.approx(0.17)  # sample 1 ready: a reused chunk
    t.finish()
    assert t.start(0.17, 0) == pytest.approx(0.19)  # same step, same chunk time
    t.finish()
    # Next step: sample 1's last 2 tokens (ready) and 6 of sample 2 (late at 0.19: 0.2):
    # chunk (0.1 x 6 / 8 + 0.04 x 2 / 8) / 2 = 0.0425 s
    assert t.start(0.19, 0) == pytest.approx(0.2325)
    assert (t.reused_steps, t.hedged, t.reused_tokens) == (2, 1, 10)


def test_offloaded_reused_tokens_are_read_back_by_hand():
    """The queue above, plus the read-back: 2 layers of 100 B a token (the plan's 1000 B a
    token is what the offload moves), backward 0.001 s a layer, no head. The first step
    reuses sample 1's 8 tokens: 0.008 s a layer over the link, so x1 0-0.008, x2
    0.008-0.016, backward 0.008-0.009 and 0.016-0.017, against 0.002 on the chip: 0.015 s
    more, the step 0.04 + 0.015 s in 2 chunks. The next, at 0.19, reuses 2 tokens (sample 2
    is late: recomputed, no read-back) at 0.002 s a layer: x1 0-0.002, x2 0.002-0.004,
    backward 0.002-0.003 and 0.004-0.005: 0.003 s more on (0.1 x 6 + 0.04 x 2) / 8 = 0.085."""
    from mappers.readback import Prefetch

    pre = Prefetch(lead_s=0.0, layer_s=0.001, layers=2, layer_bytes_per_token=100,
                   pcie_bytes_per_s=1e5)
    p = TrainPlan(chunk_s=0.05, chunks=2, tokens=8, step_s=0.1, extra_bytes=0, memory={},
                  batch=1, reuse_step_s=0.04, record_bytes_per_token=1000,
                  dram_bytes_per_s=1e6, pcie_bytes_per_s=1e5, prefetch=pre)
    t = Trainer(plan=p, share=0.0)
    t.record(0.0, 10)
    t.record(0.0, 10)
    assert t.start(0.15, 0) == pytest.approx(0.15 + 0.055 / 2)
    t.finish()
    t.start(0.18, 0)
    t.finish()
    assert t.start(0.19, 0) == pytest.approx(0.19 + 0.088 / 2)
    assert (t.reused_tokens, t.hedged) == (10, 1)
    assert t.readback_s == pytest.approx(0.018)


def test_reuse_raises_training_throughput_and_serves_every_request(capsys, tmp_path):
    block = "training: {batch: 1, seq: 256, lora_rank: 8, chunks: 16"
    code, out, _ = serve_json(capsys, tmp_path, CLUSTER + block + "}\n")
    base = json.loads(out)
    code2, out, _ = serve_json(capsys, tmp_path, CLUSTER + block + ", reuse: activations}\n")
    s = json.loads(out)
    assert code == code2 == 0
    assert s["completed"] == s["requests"] == base["requests"]
    r = s["training"]["reuse"]
    assert r["reused_steps"] > 0 and r["hedged_recomputes"] == 0
    assert r["recorded_sequences"] == s["requests"]
    assert r["recorded_bytes"] % r["record_bytes_per_token"] == 0
    assert r["added_prefill_s"] > 0
    assert r["reuse_step_s"] < s["training"]["step_s"]["collocated0.0"]
    assert s["training"]["tokens_per_s"] > base["training"]["tokens_per_s"]
    assert "reuse" not in base["training"]


@pytest.mark.parametrize("extra, words", [
    ("reuse: kv", "training.reuse: must be one of none, activations, got 'kv'"),
    ("reuse: activations, pcie_bytes_per_s: 0",
     "training.pcie_bytes_per_s: must be a positive number"),
    ("reuse: activations, pcie_bytes_per_s: -3e9", "training.pcie_bytes_per_s"),
    ("reuse: activations, pcie_bytes_per_s: fast", "training.pcie_bytes_per_s"),
    ("pcie_bytes_per_s: 3.2e+10", "training.pcie_bytes_per_s: needs reuse: activations"),
])
def test_bad_reuse_fields_exit_2_one_line(capsys, tmp_path, extra, words):
    code, out, err = serve_json(capsys, tmp_path,
                                CLUSTER + f"training: {{batch: 1, seq: 8, {extra}}}\n")
    assert code == 2 and out == ""
    assert words in err and len(err.strip().splitlines()) == 1
