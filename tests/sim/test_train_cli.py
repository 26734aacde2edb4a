"""``pdsim train``: the printed step, JSON by category, and bad input (one line, exit 2, no
file written)."""

import json

import pytest

from sim.cli.main import main


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_json_flops_and_memory_add_up(in_tmp, capsys):
    assert main(["train", "--model", "llama2-7b", "--batch", "1", "--seq", "128",
                 "--detail", "roofline", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    flops, mem = out["flops"], out["memory_bytes"]
    assert flops["total"] == flops["forward"] + flops["recompute"] + flops["backward"] \
        + flops["update"]
    assert flops["update"] == 16 * 6_738_415_616  # AdamW FLOPs per Llama-2-7B parameter
    # bf16 weights and gradients, fp32 m, v and master weights: 2 + 2 + 12 bytes a parameter
    assert (mem["weights"], mem["gradients"], mem["optimizer"]) == \
        (2 * 6_738_415_616, 2 * 6_738_415_616, 12 * 6_738_415_616)
    assert out["time_s"] > 0 and not out["fits"]  # 7B full fine-tuning: > 80 GB
    assert list(in_tmp.iterdir()) == []


def test_lora_text_output(in_tmp, capsys):
    assert main(["train", "--model", "llama2-7b", "--batch", "2", "--seq", "64",
                 "--lora-rank", "8", "--lora-targets", "q,v", "--recompute", "full",
                 "--detail", "roofline"]) == 0
    out = capsys.readouterr().out
    assert "LoRA r=8 on q,v" in out and "recompute" in out and "optimizer" in out


@pytest.mark.parametrize("argv, flag", [
    (["--lora-rank", "0"], "--lora-rank"), (["--batch", "-2"], "--batch"),
    (["--seq", "0"], "--seq"), (["--lora-rank", "4", "--lora-targets", "q,w"], "--lora-targets"),
    (["--lora-targets", "q"], "--lora-targets"), (["--recompute", "half"], "--recompute"),
    (["--reuse", "kv"], "--reuse"),
    (["--reuse", "activations", "--pcie-bytes-per-s", "0"], "--pcie-bytes-per-s"),
    (["--reuse", "activations", "--pcie-bytes-per-s", "-3e9"], "--pcie-bytes-per-s"),
    (["--reuse", "activations", "--pcie-bytes-per-s", "nan"], "--pcie-bytes-per-s"),
    (["--pcie-bytes-per-s", "5e10"], "--pcie-bytes-per-s: needs --reuse activations"),
    (["--optimizer-dtype", "int4"], "--optimizer-dtype"),
    (["--model", "mixtral-8x7b"], "--model")])
def test_bad_input_is_one_line_exit_2_nothing_written(in_tmp, capsys, argv, flag):
    try:
        code = main(["train", *argv])
    except SystemExit as exc:  # argparse's own checks exit from inside main
        code = exc.code
    err = capsys.readouterr()
    assert code == 2
    assert err.out == "" and len(err.err.strip().splitlines()) == 1 and flag in err.err
    assert list(in_tmp.iterdir()) == []


def test_reuse_flag_drops_the_layers_forward(in_tmp, capsys):
    runs = {}
    for reuse in ("none", "activations"):
        assert main(["train", "--seq", "64", "--lora-rank", "4", "--detail", "roofline",
                     "--reuse", reuse, "--json"]) == 0
        runs[reuse] = json.loads(capsys.readouterr().out)
    base, reused = runs["none"], runs["activations"]
    assert reused["reuse"] == "activations"
    assert reused["flops"]["backward"] == base["flops"]["backward"]
    assert reused["flops"]["forward"] < base["flops"]["forward"] / 10  # the head's only
    assert reused["time_s"] < base["time_s"]


def test_pcie_read_back_in_json_and_text(in_tmp, capsys):
    """llama2-7b, LoRA r=16 on q,v, records 101,576 B a token a layer (3.25 MB a token over
    32 layers, docs/serving.md's measured figure): 64 tokens at 1 GB/s take 6.5 ms a layer, all 32
    layers 208 MB. Without the flag the records are said to be on the chip."""
    argv = ["train", "--seq", "64", "--lora-rank", "16", "--detail", "roofline", "--reuse",
            "activations"]
    assert main([*argv, "--json"]) == 0
    chip = json.loads(capsys.readouterr().out)
    assert "readback" not in chip and chip["records"].startswith("on the chip")
    assert main([*argv, "--pcie-bytes-per-s", "1e9", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rb = out["readback"]
    assert rb["bytes"] == 32 * 64 * 101_576
    assert rb["layer_transfer_s"] == pytest.approx(64 * 101_576 / 1e9)
    assert out["time_s"] == pytest.approx(chip["time_s"] + rb["exposed_s"])
    assert out["time_s"] > 32 * rb["layer_transfer_s"]  # the link alone takes that long
    assert out["memory_bytes"]["activations"] < chip["memory_bytes"]["activations"]
    assert main([*argv, "--pcie-bytes-per-s", "1e9"]) == 0
    text = capsys.readouterr().out
    assert "read back over PCIe" in text and "on the host" in text
