"""``pdsim edge --gen N --sequences S``: several sequences decoded pipelined after the prefill
(`sim.edge_decode.simulate_sequences`), checked against the per-token decode and hand counts,
and its flags' refusals (one line, exit 2)."""

from __future__ import annotations

import json

import pytest

from mappers.ir import Precision
from mappers.models import load_model
from sim.cli.main import main
from sim.edge import load_multi
from sim.edge_decode import simulate_sequences

L7 = load_model("llama2-7b").config


def _json(argv, capsys) -> dict:
    assert main(["edge", "--system-file", "orin-pair-1gbe", "--prompt", "256", "--json",
                 *argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_sequences_json_by_hand(capsys):
    one = _json(["--gen", "5"], capsys)
    many = _json(["--gen", "5", "--sequences", "3"], capsys)
    assert many["ttft_s"] == one["ttft_s"]  # one prefill of the shared prompt
    assert (many["sequences"], many["micro_batches"]) == (3, 2)  # min(3, 2 devices)
    # groups of 2 and 1 sequences, 4 rounds each: the hidden state of 3 x 4 tokens crosses
    # orin0->orin1 (4096 x 2 bytes each), and 3 x 3 ids go back (none after the last round)
    assert many["decode_link_bytes"] == {"orin0->orin1": 12 * 8192, "orin1->orin0": 9 * 4}
    assert many["e2e_s"] == pytest.approx(many["ttft_s"] + many["decode_s"])
    assert many["tbt_s"] == pytest.approx(many["decode_s"] / 4)
    parts = many["decode_compute_s"] + many["decode_transfer_s"] + many["decode_waiting_s"]
    assert parts == pytest.approx(many["decode_s"])
    # three sequences take longer than one, and less than three one after the other
    assert one["e2e_s"] - one["ttft_s"] < many["decode_s"] < 3 * (one["e2e_s"] - one["ttft_s"])


def test_one_sequence_per_group_splits_evenly():
    ms = load_multi("orin-pair-1gbe")
    run = simulate_sequences(ms, L7, prompt_tokens=64, gen=3, sequences=5, micro_batches=2,
                             precision=Precision())
    assert [g.sequences for g in run.groups] == [3, 2]
    assert all(g.context == 64 and len(g.rounds) == 2 for g in run.groups)


def test_cli_sequences_text(capsys):
    assert main(["edge", "--system-file", "orin-pair-1gbe", "--prompt", "256", "--gen", "3",
                 "--sequences", "4", "--micro-batches", "1"]) == 0
    out = capsys.readouterr().out
    assert "decode: 4 sequences x 2 steps in 1 micro-batches" in out and "end-to-end" in out


@pytest.mark.parametrize("argv, words", [
    (["--sequences", "2"], "--sequences: decodes 2 sequences after the prefill; give --gen"),
    (["--sequences", "0", "--gen", "3"], "--sequences"),
    (["--sequences", "2", "--gen", "3", "--micro-batches", "3"], "--micro-batches: must be "
     "between 1 and the 2 sequences"),
    (["--gen", "3", "--micro-batches", "2"], "--micro-batches: only with --compare or "
     "--sequences"),
    (["--sequences", "2", "--compare"], "--sequences: not with --compare"),
    (["--sequences", "2", "--gen", "3", "--gamma", "2"], "--gamma: only with --compare"),
])
def test_cli_bad_sequences_exit_2_with_one_line(argv, words, capsys, tmp_path):
    out = tmp_path / "t.json"
    try:  # argparse's own checks (a bound) exit 2 themselves
        code = main(["edge", "--system-file", "orin-pair-1gbe", "--prompt", "64", *argv,
                     "-o", str(out)])
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1
    assert not out.exists()


def test_cli_sequences_memory_is_refused(capsys):
    # 64 sequences of 2048 + 63 tokens: each board holds half the layers' KV for all, far
    # over 16 GB (64 x 2111 x 16 layers x 2 x 4096 x 2 bytes = 35 GB on orin1)
    assert main(["edge", "--system-file", "orin-nx-2-wifi", "--prompt", "2048", "--gen", "64",
                 "--sequences", "64"]) == 2
    err = capsys.readouterr().err
    assert "devices.nx" in err and "GB" in err and err.count("\n") == 1
