"""The planner returns the smallest count that meets the SLOs."""

import dataclasses

import pytest

from sim.errors import ConfigError
from sim.serving.cluster import parse_cluster
from sim.serving.plan import meets, plan
from sim.serving.run import requests_for, serve


def test_plan_is_the_boundary():
    reqs = requests_for("azure-conv", rate=12, duration_s=20)
    template = parse_cluster({"instances": [{"hardware": "h100"}]}, "t")
    slo = {"ttft": (90, 0.12)}
    best = plan(template, reqs, slo, max_count=4)
    n = best["counts"]["collocated:h100"]
    assert meets(best["summary"], slo)
    if n > 1:
        fewer = dataclasses.replace(template, groups=(dataclasses.replace(
            template.groups[0], count=n - 1),))
        assert not meets(serve(reqs, fewer, slo)[1], slo)


def test_plan_refuses_without_slo():
    template = parse_cluster({"instances": [{"hardware": "h100"}]}, "t")
    with pytest.raises(ConfigError, match="--slo"):
        plan(template, requests_for("azure-conv", rate=1, duration_s=5), {})


def test_disaggregated_cluster_runs(tmp_path):
    cluster = parse_cluster({"instances": [
        {"hardware": "h100", "role": "prefill", "batching": "vllm"},
        {"hardware": "h100", "role": "decode", "count": 2, "batching": "vllm"}]}, "t")
    reqs = requests_for("azure-code", rate=None, duration_s=30)
    _, s = serve(reqs, cluster, {})
    assert s["completed"] == s["requests"] == s["kv_transfers"]  # every code request > 1 token
    # llama2-7b: 2 x 32 layers x 32 KV heads x 128 x 2 B = 512 KiB a token of the prompt
    assert s["kv_transfer_bytes"] == 524288 * sum(r.prompt_tokens for r in reqs)


def test_two_percentiles_of_one_metric_both_count():
    from sim.serving.metrics import parse_slo

    slo = parse_slo("ttft_p90=1000,ttft_p99=1e-9")  # the first always met, the second never
    assert slo == {"ttft_p90": (90, 1000.0), "ttft_p99": (99, 1e-9)}
    template = parse_cluster({"instances": [{"hardware": "h100"}]}, "t")
    _, s = serve(requests_for("azure-conv", rate=2, duration_s=5), template, slo)
    assert s["slo_ttft_p90_met"] and not s["slo_ttft_p99_met"]
    assert not meets(s, slo) and s["slo_attainment"] == 0.0  # the tightest target counts
