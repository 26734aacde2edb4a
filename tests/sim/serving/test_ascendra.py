"""Ascendra's two tiers: no request past its TTFT deadline stays in the low-priority pool,
and moving requests between instances loses or duplicates nothing."""

import functools

import pytest

from sim.errors import ConfigError
from sim.serving.cluster import build_instances, parse_cluster
from sim.serving.instance import Instance
from sim.serving.policies import policy
from sim.serving.policies.ascendra import deadline
from sim.serving.simulator import simulate_serving

from tests.sim.serving.test_simulator import affine_step, random_requests

SLO = {"ttft": (90.0, 0.15), "tbt": (90.0, 0.05)}


def _cluster(lp=3, hp=1, slo=SLO):
    return ([Instance(name=f"lp{k}", role="collocated", step_time=affine_step, kv_blocks=4096,
                      policy=policy("ascendra"), max_tokens=2048, slo=slo) for k in range(lp)]
            + [Instance(name=f"hp{k}", role="collocated", step_time=affine_step,
                        kv_blocks=4096, policy=policy("ascendra-hp"), max_tokens=2048, slo=slo)
               for k in range(hp)])


def _watch(inst, log):
    """Wrap ``inst``'s policy: before each decision no waiting request that has not started
    may be past its deadline; after it, none may reach it before the iteration chosen ends."""
    real = inst.policy

    @functools.wraps(real)
    def spy(i, now):
        log["before"] += sum(1 for s in i.waiting if s.generated == 0
                             and deadline(s, SLO) <= now)
        batch = real(i, now)
        end = now + (i.step_time([(n, s.computed) for s, n in batch]) if batch else 0.0)
        log["after"] += sum(1 for s in i.waiting if s.generated == 0
                            and deadline(s, SLO) <= end)
        log["decisions"] += 1
        return batch
    inst.policy = spy


@pytest.mark.parametrize("rate", [700.0, 1400.0])
def test_no_request_past_its_deadline_stays_low_priority(rate):
    reqs = random_requests(800, rate, seed=3)
    insts = _cluster()
    log = {"before": 0, "after": 0, "decisions": 0}
    for inst in insts[:3]:
        _watch(inst, log)
    res = simulate_serving(reqs, insts, router="least_loaded")
    assert log["decisions"] > 100
    assert log["before"] == 0 and log["after"] == 0
    moved = [s for s in res.sequences if s.moves]
    assert moved  # the load is high enough that the check is exercised
    # Only the high-priority instance serves moved requests; none is lost or duplicated.
    assert sorted(s.request.id for s in res.sequences) == list(range(len(reqs)))
    for s in res.sequences:
        assert s.generated == s.request.output_tokens
        assert len(s.tbts) == s.request.output_tokens - 1
    for inst in insts:
        assert inst.used_blocks == 0 and not inst.running and not inst.waiting


def test_high_priority_takes_no_arrivals():
    reqs = random_requests(50, 1.0, seed=4)  # light load: nothing is urgent
    insts = _cluster()
    res = simulate_serving(reqs, insts, router="round_robin")
    assert all(s.moves == 0 for s in res.sequences)
    assert not insts[3].timeline


def test_cluster_checks():
    with pytest.raises(ConfigError, match="needs a group with batching ascendra-hp"):
        parse_cluster({"instances": [{"hardware": "h100", "batching": "ascendra"}]}, "t")
    cluster = parse_cluster({"instances": [{"hardware": "h100", "batching": "ascendra"},
                                           {"hardware": "h100", "batching": "ascendra-hp"}]},
                            "t")
    with pytest.raises(ConfigError, match="--slo: batching ascendra .* ttft_pNN"):
        build_instances(cluster, random_requests(5, 1.0), slo={"tbt": (90.0, 0.05)})
