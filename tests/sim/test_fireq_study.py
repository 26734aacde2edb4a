"""``pdsim reproduce fireq`` writes its folder, and its numbers hold together.

Independent checks: fp16 normalised to itself is 1; the paper's ratios are REFERENCE.md's
(1.68, 1.26); with 4-bit weights the weight-bound FFN cannot gain more than 4x over fp16
(the weight bytes shrink 4x) and must gain more than 2x; the step ratios reproduce from
`ffn_seconds` and `prefill_tokens_per_s`; on the CiD decode path the int4 schemes'
dequant ops run on the near-bank unit (none left on the host's vector lanes) and on the CiM
crossbars an int4 weight is ceil(3 / 2) = 2 slices of 2-bit cells (differential: the sign
is the column pair), int8 ceil(7 / 2) = 4, an 8-bit input 7 reads through 1-bit DACs.
"""

import json

from sim.cli.main import main


def test_reproduce_fireq(tmp_path, capsys):
    out = tmp_path / "fireq"
    assert main(["reproduce", "fireq", "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "fireq.json", "fireq.png"]
    d = json.loads((out / "fireq.json").read_text())
    assert {k: v["paper"] for k, v in d["fireq_over_qserve"].items()} == \
        {"llama2-7b FFN batch 16": 1.68, "llama3-8b prefill batch 16 x 1024": 1.26}
    for model, by_scheme in d["ffn_vs_fp16"].items():
        assert set(by_scheme["fp16"].values()) == {1.0}
        for scheme in ("w4a8-qserve", "w4fp8-fireq"):
            assert all(2 < v < 4 for v in by_scheme[scheme].values()), (model, scheme)
    s = d["ffn_seconds"]["llama2-7b"]
    ours = d["fireq_over_qserve"]["llama2-7b FFN batch 16"]["pdsim"]
    assert ours == s["w4a8-qserve"]["16"] / s["w4fp8-fireq"]["16"] > 1
    p = d["prefill_tokens_per_s"]
    assert d["fireq_over_qserve"]["llama3-8b prefill batch 16 x 1024"]["pdsim"] == \
        p["w4fp8-fireq"]["1024"] / p["w4a8-qserve"]["1024"]
    assert "1.68x" in capsys.readouterr().out
    for scheme in ("w4a16", "w4a8-qserve", "w4fp8-fireq"):
        cid = d["cid_decode_path"][scheme]
        assert cid["gemm_unit"] == cid["dequant_unit"] == ["cid"]
        assert cid["dequant_us"] == 0 < cid["dequant_us_on_host_vector"]
    assert d["cid_decode_path"]["w4a16"]["scale_read_share"] > 0
    slices = {s: (v["slices"], v["input_reads"]) for s, v in d["cim_crossbars"].items()}
    assert slices == {"fp16": (8, 15), "w8a8": (4, 7), "w4a16": (2, 15),
                      "w4a8-qserve": (2, 7), "w4fp8-fireq": (2, 7)}
