"""Fuzz every numeric flag of ``pdsim run``, ``gemm`` (one array and ``--hw``), ``cid`` and
``cim`` with integers from -10^30 to 10^30, int64 and float64 edges, and texts such as "1e23",
"0x10" or 24 digits, one or two flags at a time on top of a small valid command.

Property: `tests.fuzz.harness.check` (exit 0 with finite, non-negative JSON, or exit 2 with
one line; no traceback; nothing left but the output asked for).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz.harness import (FUZZ, budget, check, flag_args, float_text, fuzz_flags,
                                invoke)

#: Small valid commands: each example adds its fuzzed flags to one of these (a later
#: ``--flag=`` overrides an earlier one), so an accepted example is milliseconds of work.
RUN_BASE = {"batch": "1", "prompt": "16", "gen": "4", "decode-sample": "2"}
RUN_FLAGS = ("batch", "prompt", "gen", "tp", "pp", "decode-sample", "seed")
RUN_HW = ("h100", "a100", "spad-decode", "halo-package", "halo-package", "cent", "attacc")
#: Mappings fuzzed on the HALO package (one hardware description, several mappings; ``auto``
#: is left out: its search is seconds, not milliseconds).
MAPPINGS = (None, "phase-aware", "attention-on-pim", "all-pim", "all-cim", "fixed")
MODELS = ("llama2-7b", "qwen3-8b", "llada-8b", "bloom-176b")
DTYPES = ("fp16", "bf16", "fp8", "int8", "int4", "fp32", "tf32", "fp4", "fp12")


@settings(FUZZ, max_examples=budget(150))
@given(hw=st.sampled_from(RUN_HW), model=st.sampled_from(MODELS),
       detail=st.sampled_from(("roofline", "roofline", "tile")),
       dtype=st.sampled_from(DTYPES), fuzzed=fuzz_flags(RUN_FLAGS),
       no_capacity_check=st.booleans(), trace=st.booleans(), mapping=st.sampled_from(MAPPINGS))
def test_run(hw, model, detail, dtype, fuzzed, no_capacity_check, trace, mapping):
    argv = ["run", "--hw", hw, "--model", model, "--detail", detail, "--dtype", dtype,
            "--json", *flag_args(RUN_BASE | fuzzed)]
    argv += ["--mapping", mapping] if mapping and hw == "halo-package" else []
    argv += ["--no-capacity-check"] if no_capacity_check else []
    argv += ["-o", "out/t.h5"] if trace else ["--no-trace"]
    with tempfile.TemporaryDirectory() as folder:
        o = invoke(argv, Path(folder))
        data = check(o, outputs=frozenset({"out", "out/t.h5"}) if trace else frozenset())
        if data is not None and trace:
            assert o.new_paths == {"out", "out/t.h5"}, o


GEMM_BASE = {"m": "24", "n": "40", "k": "16"}
ARRAY_FLAGS = ("m", "n", "k", "rows", "cols", "sram-kb", "word-bytes")


@settings(FUZZ, max_examples=budget(120))
@given(dataflow=st.sampled_from(("os", "ws", "is")), fuzzed=fuzz_flags(ARRAY_FLAGS),
       bw=st.one_of(st.none(), st.none(), float_text))
def test_gemm_one_array(dataflow, fuzzed, bw):
    args = GEMM_BASE | {"rows": "8", "cols": "4"} | fuzzed
    if bw is not None:
        args["bw"] = bw
    argv = ["gemm", "--dataflow", dataflow, "--json", *flag_args(args)]
    with tempfile.TemporaryDirectory() as folder:
        check(invoke(argv, Path(folder)))


@settings(FUZZ, max_examples=budget(80))
@given(hw=st.sampled_from(("h100", "a100", "spad-prefill", "spad-decode", "halo-package")),
       dtype=st.sampled_from(DTYPES), fuzzed=fuzz_flags(("m", "n", "k"), most=3))
def test_gemm_on_a_chip(hw, dtype, fuzzed):
    argv = ["gemm", "--hw", hw, "--dtype", dtype, "--json", *flag_args(GEMM_BASE | fuzzed)]
    with tempfile.TemporaryDirectory() as folder:
        check(invoke(argv, Path(folder)))


CID_BASE = {"rows": "64", "cols": "64", "context": "64", "heads": "4", "kv-heads": "4",
            "head-dim": "16", "batch": "1"}
CID_FLAGS = ("rows", "cols", "stacks", "tccd-ab", "context", "heads", "kv-heads", "head-dim",
             "batch")


@settings(FUZZ, max_examples=budget(120))
@given(op=st.sampled_from(("gemv", "attention", "kv-append")),
       hw=st.sampled_from(("hbm3", "gddr6-aim", "attacc", "cent", "halo-package")),
       mode=st.sampled_from((None, "bank", "bankgroup", "buffer", "aim")),
       dtype=st.sampled_from(DTYPES), fuzzed=fuzz_flags(CID_FLAGS))
def test_cid(op, hw, mode, dtype, fuzzed):
    argv = ["cid", "--op", op, "--hw", hw, "--dtype", dtype, "--json",
            *flag_args(CID_BASE | fuzzed)]
    argv += ["--mode", mode] if mode else []
    with tempfile.TemporaryDirectory() as folder:
        check(invoke(argv, Path(folder)))


@settings(FUZZ, max_examples=budget(80))
@given(weights=st.sampled_from((None, *DTYPES)), acts=st.sampled_from((None, *DTYPES)),
       resident=st.booleans(), fuzzed=fuzz_flags(("m", "n", "k"), most=3))
def test_cim(weights, acts, resident, fuzzed):
    argv = ["cim", "--json", *flag_args({"m": "4", "n": "64", "k": "96"} | fuzzed)]
    argv += [f"--weight-dtype={weights}"] if weights else []
    argv += [f"--act-dtype={acts}"] if acts else []
    argv += ["--resident"] if resident else []
    with tempfile.TemporaryDirectory() as folder:
        check(invoke(argv, Path(folder)))


def test_word_bytes_near_int64_is_refused_not_wrapped(tmp_path):
    """Found by the fuzz above with a larger budget (PDSIM_FUZZ_SCALE): stall_cycles -1.4e17
    (each operand's bytes fitted int64, their sum did not). Refused now: --word-bytes is at
    most `sim.limits.MAX_WORD_BYTES` and the three operands' bytes together must fit."""
    check(invoke(["gemm", "--m=24", "--n=40", "--k=16", "--rows=65", "--cols=4",
                  f"--word-bytes={2**53 + 1}", "--bw=4", "--json"], tmp_path))


def test_memory_bound_fraction_is_a_share(tmp_path):
    """Found by the fuzz after merging main: 1.0011 on the plainest run (memory-bound op
    time over wall time, with ops overlapping); now a share of op time."""
    data = check(invoke(["run", "--prompt=16", "--gen=4", "--json", "--no-trace",
                         "--detail=roofline"], tmp_path))
    assert data["summary"]["prefill_memory_bound_fraction"] <= 1
