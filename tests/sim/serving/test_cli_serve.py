"""`pdsim serve`: summary, trace file, and one-line refusals of bad traces and clusters."""

import json
import re

import h5py
import pytest

from sim.cli.main import main


def run(capsys, *argv):
    code = main(["serve", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_default_summary_keys(capsys, tmp_path):
    out_file = tmp_path / "t.h5"
    code, out, _ = run(capsys, "--duration", "30", "--json", "-o", str(out_file),
                       "--slo", "ttft_p90=1,tbt_p90=0.2")
    assert code == 0
    s = json.loads(out)
    for key in ("requests", "completed", "ttft_p50_s", "ttft_p90_s", "ttft_p99_s",
                "tbt_p50_s", "tbt_p90_s", "tbt_p99_s", "goodput_rps", "throughput_rps"):
        assert key in s
    assert s["completed"] == s["requests"] > 0
    with h5py.File(out_file) as f:
        assert len(f["requests"]) == s["requests"]
        assert (f["requests"]["generated"] == f["requests"]["output_tokens"]).all()
        assert list(f["instances"]) == ["collocated0.0"]


@pytest.mark.parametrize("text, words", [
    ("arrival_s,prompt_tokens,output_tokens\n0,10,5\n1,-3,5\n", "prompt_tokens must be >= 1"),
    ("arrival_s,prompt_tokens,output_tokens\n2,10,5\n1,3,5\n", "not sorted"),
    ("arrival_s,prompt_tokens\n0,10\n", "missing columns"),
    ("", "missing columns"),
    ("arrival_s,prompt_tokens,output_tokens\n", "empty"),
])
def test_bad_trace_exits_2_one_line_nothing_written(capsys, tmp_path, text, words):
    trace = tmp_path / "bad.csv"
    trace.write_text(text)
    out_file = tmp_path / "o.h5"
    code, _, err = run(capsys, "--trace", str(trace), "-o", str(out_file))
    assert code == 2
    assert words in err and len(err.strip().splitlines()) == 1
    assert not out_file.exists()


@pytest.mark.parametrize("yaml_text, words", [
    ("model: llama2-70b\ninstances: [{hardware: h100}]\n", "does not fit"),
    ("instances: [{hardware: h100, role: prefill}]\n", "need decode"),
    ("instances: [{hardware: h100, count: 0}]\n", "count"),
    ("instances: [{hardware: h100, batching: nope}]\n", "batching"),
    ("instances: [{hardware: h100}]\nlink: {bandwidth_bytes_per_s: true}\n",
     "link.bandwidth_bytes_per_s: must be a finite number"),
    ("instances: [{hardware: h100}]\nlink: {bandwidth_bytes_per_s: 0}\n",
     "link.bandwidth_bytes_per_s: must be > 0"),
    ("instances: [{hardware: h100}]\nlink: {latency_s: -1e-6}\n", "link.latency_s: must be >= 0"),
    ("instances: [{hardware: h100}]\nlink: {bw: 3}\n", "link: unknown field 'bw'"),
    ("instances: [{hardware: h100}]\nlink: 5\n", "link: must be a mapping"),
])
def test_impossible_cluster_exits_2(capsys, tmp_path, yaml_text, words):
    cluster = tmp_path / "c.yaml"
    cluster.write_text(yaml_text)
    code, _, err = run(capsys, "--duration", "5", "--cluster", str(cluster))
    assert code == 2
    assert words in err and len(err.strip().splitlines()) == 1


def test_csv_trace_and_poisson_rate(capsys, tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text("arrival_s,prompt_tokens,output_tokens\n5,100,3\n5.5,200,2\n")
    code, out, _ = run(capsys, "--trace", str(trace), "--json")
    assert code == 0 and json.loads(out)["completed"] == 2
    code, out, _ = run(capsys, "--trace", str(trace), "--rate", "4", "--duration", "50",
                       "--json")
    n = json.loads(out)["requests"]
    assert 140 < n < 260  # Poisson(200): 4 sigma is 57


def test_plots_written(capsys, tmp_path):
    cdf, slo = tmp_path / "cdf.png", tmp_path / "slo.png"
    code, out, _ = run(capsys, "--duration", "10", "--cdf", str(cdf), "--rates", "1,3",
                       "--slo-plot", str(slo), "--slo", "ttft_p90=1", "--json")
    assert code == 0 and cdf.stat().st_size > 0 and slo.stat().st_size > 0
    assert [r["rate"] for r in json.loads(out)["slo_vs_rate"]] == [1, 3]


@pytest.mark.parametrize("argv, words", [
    (["--rates", "1,-2", "--slo-plot", "x.png"], "--rates"),
    (["--cdf", "x.nope"], "--cdf"),
    (["--slo", "ttft=3"], "--slo"),
])
def test_bad_flags_exit_2(capsys, tmp_path, argv, words):
    code, _, err = run(capsys, "--duration", "5", *argv)
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("target, words", [
    ("/dev/zero", "not a regular file"),
    ("dup", "key 'model' given twice"),
    ("missing", "cannot read"),
])
def test_cluster_file_goes_through_the_one_reader(capsys, tmp_path, target, words):
    """A cluster file is read like every other input: regular files only, keys given twice
    refused (PyYAML alone keeps the last one silently)."""
    if target == "dup":
        path = tmp_path / "c.yaml"
        path.write_text("model: llama2-7b\nmodel: llama2-13b\ninstances: [{hardware: h100}]\n")
        target = str(path)
    elif target == "missing":
        target = str(tmp_path / "none.yaml")
    code, _, err = run(capsys, "--duration", "5", "--cluster", target)
    assert code == 2
    assert words in err and len(err.strip().splitlines()) == 1


TRAINING = ("model: llama2-7b\ninstances: [{hardware: h100, role: collocated}]\n"
            "training: {batch: 1, seq: 256, lora_rank: 8, chunks: 16")


def _section(out: str) -> dict[str, str]:
    """The text summary's training rows, label -> value, from the line ``training`` on."""
    lines = out.splitlines()
    assert lines.count("training") == 1
    rows = lines[lines.index("training") + 1:]
    return {label.strip(): value for label, value in (re.split(r"\s{2,}", r.strip())
                                                       for r in rows)}


def test_text_summary_has_a_training_section_only_with_training(capsys, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(TRAINING.split("training:")[0])
    code, out, _ = run(capsys, "--duration", "5", "--cluster", str(path))
    assert code == 0 and "training" not in out and "throughput_rps" in out
    path.write_text(TRAINING + "}\n")
    code, out, _ = run(capsys, "--duration", "20", "--cluster", str(path))
    code2, js, _ = run(capsys, "--duration", "20", "--cluster", str(path), "--json")
    t = json.loads(js)["training"]
    assert code == code2 == 0 and t["steps"] > 0
    rows = _section(out)
    assert list(rows) == ["steps", "training tokens/s"]  # no reuse rows without reuse
    assert rows["steps"] == f"{t['steps']:,}"
    # tokens/s = steps x batch x seq over the makespan, to the 4 digits printed
    assert float(rows["training tokens/s"]) == pytest.approx(
        t["steps"] * 256 / json.loads(js)["makespan_s"], rel=1e-3)


def test_text_summary_training_reuse_rows(capsys, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(TRAINING + ", reuse: activations, pcie_bytes_per_s: 2.5e10}\n")
    code, out, _ = run(capsys, "--duration", "20", "--cluster", str(path))
    code2, js, _ = run(capsys, "--duration", "20", "--cluster", str(path), "--json")
    s = json.loads(js)
    r = s["training"]["reuse"]
    assert code == code2 == 0 and r["reused_steps"] > 0
    rows = _section(out)
    assert list(rows) == ["steps", "training tokens/s", "recorded sequences", "reused steps",
                          "reused tokens", "hedged recomputes", "dropped samples",
                          "cut samples", "added to prefill", "added by PCIe read-back",
                          "sample store peak"]
    assert int(rows["reused tokens"].replace(",", "")) == r["reused_tokens"]
    assert int(rows["dropped samples"]) == r["dropped_samples"]
    peak, cap = rows["sample store peak"].replace(" GB", "").split(" of ")
    assert float(peak) == pytest.approx(r["peak_sample_bytes"] / 1e9, rel=1e-2)
    assert float(cap) == pytest.approx(r["sample_capacity_bytes"] / 1e9, rel=1e-2)
    assert int(rows["recorded sequences"]) == r["recorded_sequences"] == s["requests"]
    assert int(rows["reused steps"]) == r["reused_steps"]
    assert int(rows["hedged recomputes"]) == r["hedged_recomputes"]
    number, unit = rows["added to prefill"].split()
    assert float(number) * {"s": 1, "ms": 1e-3, "us": 1e-6}[unit] == pytest.approx(
        r["added_prefill_s"], rel=1e-3)
    number, unit = rows["added by PCIe read-back"].split()
    assert float(number) * {"s": 1, "ms": 1e-3, "us": 1e-6}[unit] == pytest.approx(
        r["readback_added_s"], rel=1e-3)
    assert r["readback_added_s"] > 0 and r["readback_bytes"] == \
        r["reused_tokens"] * r["record_bytes_per_token"]


def test_training_text_reads_the_summary_defensively():
    from sim.cli.serve import _training_text

    assert _training_text(None) is None and _training_text({}) is None
    # A field it does not know (another helper's) is skipped; a missing one is not printed.
    text = _training_text({"steps": 1234, "dropped_samples": 5,
                           "reuse": {"reused_steps": 7, "added_prefill_s": 0.0025}})
    assert text.splitlines()[0] == "training"
    assert [line.split("  ")[1] for line in text.splitlines()[1:]] == \
        ["steps", "reused steps", "added to prefill"]
    assert "1,234" in text and "2.5 ms" in text and "dropped" not in text
