"""Pipelined and speculative decode over a multi-system (`sim.edge_decode`) and tensor
parallelism over links (`sim.edge_tp`), against hand sums, the per-token decode of
`sim.edge_run` and the ring all-reduce's closed form."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mappers.edge_decode import DecodeGroup
from mappers.ir import Precision
from mappers.models import load_model
from sim.edge import load_multi, load_net
from sim.edge_decode import (batch_spec_rounds, plain_rounds, sample_batch_rounds,
                             simulate_groups, spec_rounds)
from sim.edge_run import simulate_decode
from sim.edge_tp import allreduce_s, shard, simulate_tp
from sim.errors import ConfigError
from sim.speculative import sample_accepted

P = Precision()
L7 = load_model("llama2-7b").config
WIFI = load_net("wifi")  # 25e6 B/s, 3 ms


def test_spec_rounds_by_hand():
    # gamma 3: accept 3 (4 tokens), 0 (1), 1 (2): 7 tokens in three rounds of 4 verified
    assert spec_rounds(7, 3, [3, 0, 1]) == ((4, 4), (4, 1), (4, 2))
    # the last round is capped at what is left; the counts cycle
    assert spec_rounds(5, 3, [3]) == ((4, 4), (4, 1))
    assert plain_rounds(2) == ((1, 1), (1, 1))


def test_one_group_is_the_per_token_decode():
    # sim.edge_run sums every stage and hop per step, the token id back included after each
    # step; the pipelined decode sends no id after the last round: one id transfer less.
    ms = load_multi("orin-pair-1gbe")
    dec = simulate_decode(ms, L7, prompt_tokens=256, gen=4, precision=P)
    run = simulate_groups(ms, L7, [DecodeGroup(sequences=1, context=256,
                                               rounds=plain_rounds(3))], precision=P)
    one_id = ms.links["orin0|orin1"].transfer_s(4)
    assert run.makespan_s == pytest.approx(sum(dec.step_s) - one_id, rel=1e-9)
    b = run.breakdown()
    assert b["waiting"] == pytest.approx(0.0, abs=1e-12)
    assert b["compute"] + b["transfer"] == pytest.approx(run.makespan_s)


def test_pipelined_groups_conserve_bytes_and_overlap():
    ms = load_multi("orin-nx-4-wifi")
    groups = [DecodeGroup(sequences=2, context=128, rounds=plain_rounds(5)) for _ in range(4)]
    run = simulate_groups(ms, L7, groups, precision=P)
    # every hop moves 4 groups x 5 rounds x 2 sequences x 4096 x 2 bytes
    for hop in ("nx0->nx1", "nx1->nx2", "nx2->nx3"):
        assert run.link_bytes()[hop] == 4 * 5 * 2 * 4096 * 2
    assert run.link_bytes()["nx3->nx0"] == 4 * 4 * 2 * 4  # ids after all but the last round
    alone = simulate_groups(ms, L7, groups[:1], precision=P).makespan_s
    assert alone < run.makespan_s < 4 * alone  # overlapped, not serialised
    b = run.breakdown()
    assert b["waiting"] > 0
    assert sum(b.values()) == pytest.approx(run.makespan_s)


def test_decode_without_the_way_back_is_refused(tmp_path):
    path = tmp_path / "chain.yaml"
    path.write_text(
        "name: chain\ndevices:\n"
        + "".join(f"  - {{name: n{k}, hardware: jetson-orin-nx-16gb, layers: ['{8 * k}-"
                  f"{8 * k + 7}'], embedding: {str(k == 0).lower()}, lm_head: "
                  f"{str(k == 3).lower()}}}\n" for k in range(4))
        + "links:\n" + "".join(f"  - {{between: [n{k}, n{k + 1}], net: wifi}}\n"
                               for k in range(3)))
    with pytest.raises(ConfigError, match="token ids from n3 back to n0"):
        simulate_groups(load_multi(str(path)), L7,
                        [DecodeGroup(sequences=1, context=8, rounds=plain_rounds(2))],
                        precision=P)


def test_allreduce_closed_form_on_wifi():
    # each link its own medium: 4 boards, 4 MB: 6 steps of 1 MB at 25 MB/s plus 3 ms
    own = replace(load_multi("orin-nx-4-wifi"), media={})
    assert allreduce_s(own, 4_000_000) == pytest.approx(6 * 0.043)
    # the preset's one Wi-Fi medium: a piece's airtime a = 0.04 s >= the 3 ms latency, so the
    # air is never idle: the 2 x 4 x 3 = 24 pieces back to back, then the last one's latency
    assert allreduce_s(load_multi("orin-nx-4-wifi"), 4_000_000) == pytest.approx(
        24 * 0.04 + 3e-3)
    # 2 boards, one token's hidden state (8192 B): pieces of 4096 B, a = 163.84 us < 3 ms:
    # step 0 sends nx0's piece then nx1's; step 1 sends nx1's (its input landed first, at
    # a + l) at a + l, then nx0's at 2a + l, landing 3a + 2l = 2 (a + l) + a
    a = 4096 / 25e6
    assert allreduce_s(load_multi("orin-nx-2-wifi"), 8192) == pytest.approx(
        3 * a + 2 * 3e-3)
    assert allreduce_s(replace(load_multi("orin-nx-2-wifi"), media={}), 8192) == (
        pytest.approx(2 * (3e-3 + a)))
    # each direction its own air (the study's ablation): a ring never queues two pieces on one
    # direction, so the own links' figures
    assert allreduce_s(load_multi("orin-nx-2-wifi").own_media(), 8192) == pytest.approx(
        2 * (3e-3 + a))
    assert allreduce_s(load_multi("orin-nx-4-wifi").own_media(), 4_000_000) == (
        pytest.approx(6 * 0.043))


def test_shard_by_hand_and_refusal():
    part = shard(L7, 4)
    assert (part.num_heads, part.num_kv_heads, part.intermediate_size, part.vocab_size) == (
        8, 8, 2752, 8000)
    with pytest.raises(ConfigError, match="must divide"):
        shard(L7, 3)


def test_tp_decode_charges_two_allreduces_per_layer_per_token():
    ms = load_multi("orin-nx-2-wifi")  # one shared medium: see the all-reduce test above
    r = simulate_tp(ms, L7, prompt_tokens=64, gen=3, precision=P)
    a = 4096 / 25e6  # one token's all-reduce over 2 boards: latency-bound, 3a + 2l
    assert r.decode_transfer_s == pytest.approx(2 * 64 * (3 * a + 2 * 3e-3))
    a = 64 * 4096 / 25e6  # the prompt's: airtime-bound, 4 pieces back to back + l
    assert r.prefill_transfer_s == pytest.approx(64 * (4 * a + 3e-3))
    assert r.e2e_s == pytest.approx(r.ttft_s + r.decode_compute_s + r.decode_transfer_s)


def test_per_token_decode_without_the_way_back_exits_2(tmp_path, capsys):
    # was a KeyError traceback in sim.edge_run.simulate_decode
    from sim.cli.main import main

    path = tmp_path / "chain.yaml"
    path.write_text(
        "name: chain\ndevices:\n"
        + "".join(f"  - {{name: n{k}, hardware: jetson-orin-nx-16gb, layers: ['{16 * k}-"
                  f"{16 * k + 15}'], embedding: {str(k == 0).lower()}, lm_head: "
                  f"{str(k == 1).lower()}}}\n" for k in range(2))
        + "  - {name: n2, hardware: jetson-orin-nx-16gb, embedding: false}\n"
        + "links:\n  - {between: [n0, n1], net: wifi}\n")
    assert main(["edge", "--system-file", str(path), "--model", "llama2-7b", "--gen",
                 "2"]) == 0  # two boards: the one link carries both ways
    capsys.readouterr()
    path.write_text(path.read_text().replace("layers: ['16-31'], embedding: false, "
                                             "lm_head: true", "layers: ['16-31']")
                    .replace("{name: n2, hardware: jetson-orin-nx-16gb, embedding: false}",
                             "{name: n2, hardware: jetson-orin-nx-16gb, lm_head: true}")
                    + "  - {between: [n1, n2], net: wifi}\n")
    assert main(["edge", "--system-file", str(path), "--model", "llama2-7b", "--gen",
                 "2"]) == 2
    err = capsys.readouterr().err
    assert "token ids from n2 back to n0" in err and err.count("\n") == 1


def test_batch_spec_rounds_by_hand():
    # gamma 2, 4 tokens each: A accepts 2 (3 tokens) then is capped at its last 1; B accepts
    # none, 1 token a round; A leaves after round 1, B ends the batch after round 3
    assert batch_spec_rounds(4, 2, [[2, 2], [0]]) == (
        (3, (3, 1)), (3, (1, 1)), (3, (0, 1)), (3, (0, 1)))
    # one sequence: spec_rounds' rounds, the advance per sequence
    assert batch_spec_rounds(7, 3, [[3, 0, 1]]) == tuple(
        (q, (a,)) for q, a in spec_rounds(7, 3, [3, 0, 1]))


def test_sampled_batch_rounds_seeded_and_complete():
    rounds = sample_batch_rounds(32, 4, 0.6, [7, 8, 9])
    assert rounds == sample_batch_rounds(32, 4, 0.6, [7, 8, 9])  # deterministic
    per_seq = [sum(a[i] for _, a in rounds) for i in range(3)]
    assert per_seq == [32, 32, 32]
    sizes = [sum(1 for n in a if n) for _, a in rounds]
    assert sizes == sorted(sizes, reverse=True) and sizes[-1] >= 1  # leave, never come back
    # each sequence draws from its own seed, whatever the batch: alone, spec_rounds' counts
    for i, seed in enumerate((7, 8, 9)):
        alone = spec_rounds(32, 4, sample_accepted(0.6, 4, 32, seed))
        assert [a[i] for _, a in rounds if a[i]] == [a for _, a in alone]
    # acceptance 1: every sequence takes gamma + 1 a round, so the batch stays whole
    assert {a for _, a in sample_batch_rounds(10, 4, 1.0, [0, 1, 2])} == {(5, 5, 5)}


def test_shared_medium_moves_the_same_bytes_later():
    ms = load_multi("orin-nx-4-wifi")
    assert set(ms.media.values()) == {"air"} and len(ms.media) == 4
    groups = [DecodeGroup(sequences=2, context=128, rounds=plain_rounds(5)) for _ in range(4)]
    air = simulate_groups(ms, L7, groups, precision=P)
    own = simulate_groups(replace(ms, media={}), L7, groups, precision=P)
    assert air.link_bytes() == own.link_bytes()
    assert air.makespan_s >= own.makespan_s


def test_medium_in_the_file(tmp_path):
    text = tmp_path / "m.yaml"
    text.write_text("name: m\ndevices:\n"
                    "  - {name: a, hardware: jetson-orin-nx-16gb, layers: ['0-15'], "
                    "embedding: true}\n"
                    "  - {name: b, hardware: jetson-orin-nx-16gb, layers: ['16-31'], "
                    "lm_head: true}\n"
                    "links:\n  - {between: [a, b], net: wifi, medium: ch6}\n")
    assert load_multi(str(text)).media == {"a|b": "ch6"}
    text.write_text(text.read_text().replace("ch6", "''"))
    with pytest.raises(ConfigError, match="medium: must be a non-empty name"):
        load_multi(str(text))
