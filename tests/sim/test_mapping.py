"""`--mapping` end to end (`sim.mapping`, `mappers.mapping`): names are checked before
anything runs, a system's ``mapping:`` is its default, ``--explain`` prints the lists, and
``auto`` is never slower than the best named policy on a small grid."""

from __future__ import annotations

import dataclasses

import pytest

from mappers.ir import Precision
from mappers.mapping import POLICIES
from mappers.models import load_model
from sim.cli.main import main
from sim.engine import Workload, simulate
from sim.errors import ConfigError
from sim.mapping import resolve
from sim.presets import load_hardware, parse_hardware

INT8 = Precision(weight="int8", activation="int8", kv="int8")


def test_unknown_mapping_exits_2_listing_the_names(tmp_path, capsys):
    out = tmp_path / "t.h5"
    code = main(["run", "--hw", "halo-package", "--mapping", "cent", "-o", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--mapping" in err
    assert "all-pim" in err and "auto" in err and not out.exists()


def test_a_policy_the_chip_cannot_run_exits_2(capsys):
    assert main(["run", "--hw", "h100", "--mapping", "all-cim", "--no-trace"]) == 2
    assert "needs a cim unit" in capsys.readouterr().err


def _package_text(mapping: str) -> str:
    """The package's YAML with its default ``mapping:`` line replaced by ``mapping``."""
    text = load_hardware("halo-package").text
    old = "\nmapping: phase-aware "
    assert text.count(old) == 1
    return text.replace(old, f"\n{mapping} ")


def test_yaml_mapping_is_checked_and_is_the_default():
    with pytest.raises(ConfigError, match="mapping: unknown mapping 'x'"):
        parse_hardware(_package_text("mapping: x"), "t.yaml")
    system = parse_hardware(_package_text("mapping: all-pim"), "t.yaml")
    model = load_model("llama2-7b").config
    work = Workload(prompt_tokens=64, gen_tokens=2, precision=INT8)
    # Reference: the same hardware with all-pim's lists written by hand (CENT-style: every
    # GEMM, the LM head, attention and KV writes of both phases on the CiD) and no policy;
    # the YAML's decode lists already are (CiD: all five kinds, CiM: none).
    lists = {"    prefill_ops: [kv_write] ":
             "    prefill_ops: [gemm, lm_head, attn_score, attn_value, kv_write] ",
             "    prefill_ops: [gemm, lm_head] ": "    prefill_ops: [] "}
    text = _package_text("")
    for old, new in lists.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    by_hand = parse_hardware(text, "h.yaml")
    assert by_hand.mapping is None
    want = simulate(by_hand, model, work)
    got = simulate(system, model, work)
    assert got.summary["e2e_s"] == pytest.approx(want.summary["e2e_s"], rel=1e-12)


def test_explain_prints_each_units_lists(capsys):
    assert main(["run", "--hw", "halo-package", "--mapping", "all-pim", "--explain",
                 "--prompt", "16", "--gen", "2", "--no-trace"]) == 0
    out = capsys.readouterr().out
    assert "cim: prefill [], decode []" in out
    assert "cid: prefill [gemm, lm_head, attn_score, attn_value, kv_write]" in out


@pytest.mark.parametrize(("prompt", "gen"), [(512, 8), (2048, 16)])
def test_auto_is_never_slower_than_the_best_named_policy(prompt, gen):
    system = load_hardware("halo-package").system
    model = load_model("llama2-7b").config
    work = Workload(prompt_tokens=prompt, gen_tokens=gen, precision=INT8)
    named = {n: simulate(dataclasses.replace(system, mapping=n), model, work).summary["e2e_s"]
             for n in POLICIES}
    auto_sys, choices = resolve(system, model, work, name="auto")
    auto = simulate(auto_sys, model, work).summary["e2e_s"]
    assert choices and auto <= min(named.values()) * (1 + 1e-9), (auto, named)
