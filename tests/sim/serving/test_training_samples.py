"""Alchemist's recorded samples: the bounded store and its drop rules, packing a step of
``batch x seq`` tokens from samples of prompt length, counted by hand; the capacity's effect on
the KV budget; refusals of bad fields."""

import json

import pytest

from sim.serving.instance import Instance
from sim.serving.policies import policy
from sim.serving.request import Request
from sim.serving.samples import HOST_BYTES_PER_CHIP, Packed, Sample, SampleStore
from sim.serving.simulator import simulate_serving
from sim.serving.training import Trainer, TrainPlan
from tests.sim.serving.test_training import CLUSTER, serve_json


def _store(drop, capacity=25):
    s = SampleStore(capacity_bytes=capacity, drop=drop)
    kept = [s.add(Sample(0.0, 1, 10)) for _ in range(3)]
    return s, kept


def test_drop_oldest_keeps_the_newest_samples():
    s, kept = _store("oldest")
    assert kept == [True, True, True]
    # 3 x 10 B into 25 B: the first is dropped for the third
    assert (len(s), s.stored_bytes, s.peak_bytes, s.dropped, s.dropped_bytes) == (2, 20, 20, 1, 10)


def test_drop_newest_stops_recording_when_full():
    s, kept = _store("newest")
    assert kept == [True, True, False]
    assert (len(s), s.stored_bytes, s.dropped, s.dropped_bytes) == (2, 20, 1, 10)


def test_a_sample_larger_than_the_store_keeps_its_first_tokens():
    # 3 tokens of 10 B into a 25 B store: 2 tokens (20 B) kept, 10 B dropped. Oldest: the
    # stored 10 B sample makes room; newest: 10 + 20 > 25, the cut sample is dropped.
    for drop, stored, dropped in (("oldest", [(2, 20)], 1), ("newest", [(1, 10)], 1)):
        s = SampleStore(capacity_bytes=25, drop=drop)
        s.add(Sample(0.0, 1, 10))
        s.add(Sample(0.0, 3, 30))
        assert [(x.tokens, x.nbytes) for x in s.samples] == stored
        assert (s.cut, s.dropped) == (1, dropped)
    assert s.dropped_bytes == 10 + 20  # newest: the cut-off 10 B and the cut sample's 20 B
    tiny = SampleStore(capacity_bytes=5, drop="oldest")
    assert not tiny.add(Sample(0.0, 1, 10)) and (tiny.dropped, tiny.cut) == (1, 0)


def test_packing_a_step_by_hand():
    # A step of 2 x 256 = 512 tokens at t = 1 s from prompts of 300 (ready), 150 (offload
    # ends at 5 s: late) and 100 tokens (ready), 7 B a token: 300 reused, 150 recomputed, 62
    # of the 100 reused; its other 38 (266 B) wait, first in line, with the 40-token sample.
    s = SampleStore(capacity_bytes=1e9, drop="oldest")
    for ready, tokens in ((0.0, 300), (5.0, 150), (0.5, 100), (0.0, 40)):
        s.add(Sample(ready, tokens, tokens * 7))
    assert s.take(1.0, 512) == Packed(reused=362, recomputed=150, late=1, split=1)
    assert (len(s), s.stored_tokens, s.stored_bytes) == (2, 78, 78 * 7)
    assert s.samples[0] == Sample(0.5, 38, 266)
    assert s.take(1.0, 512) == Packed(reused=78)  # 434 tokens of fresh data
    assert s.take(1.0, 512) == Packed() and s.stored_bytes == s.stored_tokens == 0


def test_a_full_step_of_samples_in_dram_is_the_reuse_step():
    # Kept in DRAM every sample is ready: 300 + 150 + 62 of 100 fill 512 tokens; the step
    # runs at the reuse step's 0.04 s. The next reuses the 38 left: (0.1 x 474 + 0.04 x 38)
    # / 512 = 48.92 / 512 s; the one after finds no sample: 0.1 s.
    p = TrainPlan(chunk_s=0.1, chunks=1, tokens=512, step_s=0.1, extra_bytes=0, memory={},
                  batch=2, reuse_step_s=0.04, record_bytes_per_token=7)
    t = Trainer(plan=p, share=0.0)
    for tokens in (300, 150, 100):
        t.record(0.0, tokens)
    assert t.start(1.0, 0) == pytest.approx(1.04)
    t.finish()
    assert (t.reused_tokens, t.split, t.reused_steps, t.hedged) == (512, 1, 1, 0)
    assert t.start(1.04, 0) == pytest.approx(1.04 + 48.92 / 512)
    t.finish()
    assert t.start(2.0, 0) == pytest.approx(2.1)
    assert (t.reused_tokens, t.reused_steps) == (550, 2)


def test_step_time_by_hand_with_a_late_sample():
    p = TrainPlan(chunk_s=0.1, chunks=1, tokens=512, step_s=0.1, extra_bytes=0, memory={},
                  batch=2, reuse_step_s=0.04, record_bytes_per_token=7, pcie_bytes_per_s=700.0)
    t = Trainer(plan=p, share=0.0)
    # 300 tokens x 7 B at 700 B/s: offload ends at 3 s; the 100-token one queues behind it
    # to 4 s. A step at 3.5 s reuses 300 tokens, recomputes 100 (late), 112 fresh.
    t.record(0.0, 300)
    t.record(0.0, 100)
    end = t.start(3.5, 0)
    assert end == pytest.approx(3.5 + (0.1 * 212 + 0.04 * 300) / 512)
    assert (t.reused_tokens, t.hedged, t.split, t.reused_steps) == (300, 1, 0, 1)


def test_dram_store_beyond_one_step_comes_off_the_kv_budget():
    """Toy (3,376 B a token, a step of 2 x 8 tokens: 54,016 B kept as activations already):
    a 1,054,016 B store in DRAM holds 1,000,000 B more than the job; offloaded, nothing."""
    from mappers.train import TrainSpec
    from sim.api import load_system
    from sim.serving.training import Training, train_plan
    from tests.mappers.test_train import BF16, TOY

    system = load_system("h100")

    def plan(**kw):
        return train_plan(Training(spec=TrainSpec(batch=2, seq=8), reuse="activations", **kw),
                          TOY, system, precision=BF16, detail="roofline", where="t")

    base = plan()
    assert base.sample_capacity_bytes == 54_016
    big = plan(sample_bytes=1_054_016.0)
    assert big.extra_bytes - base.extra_bytes == 1_000_000
    host = plan(pcie_bytes_per_s=1e10)
    assert host.sample_capacity_bytes == HOST_BYTES_PER_CHIP == 2.5e11
    assert host.extra_bytes == base.extra_bytes


def test_a_small_store_drops_samples_in_a_serving_run(capsys, tmp_path):
    block = ("training: {batch: 1, seq: 256, lora_rank: 8, chunks: 16, reuse: activations, "
             "pcie_bytes_per_s: 2.5e+10, readback: all, sample_bytes: 2.0e+9, drop: %s}\n")
    runs = {}
    for drop in ("oldest", "newest"):
        code, out, _ = serve_json(capsys, tmp_path, CLUSTER + block % drop)
        assert code == 0
        runs[drop] = json.loads(out)["training"]["reuse"]
    for r in runs.values():
        assert r["dropped_samples"] > 0 and r["dropped_bytes"] > 0
        assert r["peak_sample_bytes"] <= r["sample_capacity_bytes"] == 2e9
        assert r["reused_tokens"] > 0


@pytest.mark.parametrize("extra, words", [
    ("reuse: activations, sample_bytes: 0", "training.sample_bytes: must be a positive number"),
    ("reuse: activations, sample_bytes: -1", "training.sample_bytes"),
    ("reuse: activations, sample_bytes: lots", "training.sample_bytes"),
    ("reuse: activations, drop: random", "training.drop: must be one of oldest, newest"),
    ("sample_bytes: 1.0e+9", "training.sample_bytes: needs reuse: activations"),
    ("drop: oldest", "training.drop: needs reuse: activations"),
    ("data: all", "training.data: must be one of mixed, served, got 'all'"),
])
def test_bad_store_fields_exit_2_one_line(capsys, tmp_path, extra, words):
    code, out, err = serve_json(capsys, tmp_path,
                                CLUSTER + f"training: {{batch: 1, seq: 8, {extra}}}\n")
    assert code == 2 and out == ""
    assert words in err and len(err.strip().splitlines()) == 1


def _served(reuse_step_s):
    # Steps of 16 tokens (0.05 s, one chunk), prompts of 10 tokens at 0, 1 and 2 s, each
    # prefilled in one 0.01 s iteration. Served data: no step until 20 >= 16 tokens are
    # stored at 1.01 s; that step takes 10 + 6 tokens, 4 wait; with the third prompt 14 are
    # too few, and training stops with the last request.
    p = TrainPlan(chunk_s=0.05, chunks=1, tokens=16, step_s=0.05, extra_bytes=0, memory={},
                  batch=2, reuse_step_s=reuse_step_s, data="served",
                  record_bytes_per_token=0 if reuse_step_s is None else 1)
    inst = Instance(name="i", role="collocated", step_time=lambda shapes: 0.01,
                    kv_blocks=100, policy=policy("fcfs"))
    inst.trainer = Trainer(plan=p, share=0.0)
    reqs = [Request(id=k, arrival_s=float(k), prompt_tokens=10, output_tokens=1)
            for k in range(3)]
    res = simulate_serving(reqs, [inst])
    assert sorted(s.request.id for s in res.sequences) == [0, 1, 2]
    return inst.trainer


def test_served_data_waits_for_a_full_step_of_prompts():
    t = _served(None)
    assert len(t.log) == 1 and t.log[0] == pytest.approx((1.01, 1.06, 0))
    assert (t.steps, t.split, t.samples.stored_tokens) == (1, 1, 14)


def test_served_data_with_reuse_runs_the_reuse_step():
    t = _served(0.02)  # kept in DRAM: both samples ready, all 16 tokens reused
    assert len(t.log) == 1 and t.log[0] == pytest.approx((1.01, 1.03, 0))
    assert (t.reused_tokens, t.reused_steps, t.split, t.hedged) == (16, 1, 1, 0)
