"""The DRAM command-stream checker (sim/units/cid/check.py): every stream of every shipped CiD
preset is legal; random engine streams are legal; each rule catches its own mutation of a
legal stream (one timing gap shortened by one cycle, a refresh dropped, an address out of
range, the op's end before its data); ``pdsim cid --check`` and ``pdsim run --check-dram``."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mappers.ir import Phase, Precision
from mappers.mapping import apply_mapping
from mappers.models import load_model
from sim.cli.main import main
from sim.presets import load_hardware, preset_names
from sim.step import compile_step
from sim.units.cid import audit as audit_module
from sim.units.cid import ops as cid_ops
from sim.units.cid.audit import StreamAudit
from sim.units.cid.check import Violation, check_stream
from sim.units.cid.dram import load_dram
from sim.units.cid.engine import COMMANDS, MODES, run_channel

HBM3 = load_dram("hbm3")
AIM = load_dram("gddr6-aim")
CID_PRESETS = [n for n in preset_names() if load_hardware(n).system.chip.cid is not None]
#: Each preset under its own lists, and the HALO package under the mappings that put more on
#: its CiD than its default does (prefill GEMMs and attention: CENT-style; attention only).
CASES = [(n, None) for n in CID_PRESETS] + [("halo-package", "all-pim"),
                                            ("halo-package", "attention-on-pim")]


def _codes(*names):
    return [COMMANDS.index(n) for n in names]


def test_every_shipped_cid_preset_is_covered():
    assert {"attacc", "cent", "halo-package"} <= set(CID_PRESETS)


@pytest.mark.parametrize(("preset", "mapping"), CASES)
def test_every_cid_stream_of_every_preset_is_legal(preset, mapping):
    """Every command stream the CiD model generates for this preset (under ``mapping``, if
    given) is legal: whole steps (prefill of 37 tokens, batch-3 decode at two contexts) of a
    MHA and a GQA model, plus each op kind directly at shapes with remainders (rows not a
    multiple of the units, keys not a multiple of a row, KV bytes not a multiple of a burst)."""
    system = load_hardware(preset).system
    if mapping is not None:
        system = apply_mapping(system, mapping)
    unit = system.chip.cid
    audit = StreamAudit()
    placed = set()
    for name in ("llama2-7b", "llama3-8b"):
        model = load_model(name).config
        for phase, batch, new, context in ((Phase.PREFILL, 1, 37, 0), (Phase.DECODE, 3, 1, 1000),
                                           (Phase.DECODE, 3, 1, 2047)):
            sched = compile_step(model, system, phase=phase, batch=batch, new_tokens=new,
                                 context=context, precision=Precision(), dram_audit=audit)
            placed |= {s.op.kind for s in sched.ops if s.op.unit == "cid"}
    from_steps = audit.streams
    assert (from_steps > 0) == bool(placed)
    device = cid_ops.unit_device(unit)
    for n, k in ((4096, 4096), (4097, 11008), (77, 130), (32000, 4096)):
        cid_ops.unit_gemv(unit, n, k, "fp16", audit)
    for batch, heads, kv_heads, keys in ((1, 32, 32, 2048), (3, 32, 8, 1001)):
        cid_ops.attention(device, unit.mode, batch=batch, heads=heads, kv_heads=kv_heads,
                          queries=1, keys=keys, head_dim=128, dtype="fp16",
                          pcs=device.org.pcs * unit.stacks, audit=audit)
    for nbytes in (16384, 12345, 3 * 2**20 + 5):
        cid_ops.kv_append(device, nbytes, audit)
    assert audit.violations == [], audit.lines()
    assert audit.streams > from_steps


def _random_timing(rng, device):
    t = dict(zip(("tBL", "tCL", "tCWL", "tRCD", "tRP", "tRAS", "tRC", "tCCD_S", "tCCD_L",
                  "tCCD_AB", "tRRD_S", "tRRD_L", "tFAW", "tWR", "tRTP", "tWTR", "tREFI",
                  "tRFC"), device.timing.as_tuple()))
    t["tRCD"] = int(rng.integers(1, 30))
    t["tRAS"] = t["tRCD"] + int(rng.integers(0, 40))
    t["tRC"] = t["tRAS"] + int(rng.integers(0, 30))
    t["tRP"] = int(rng.integers(1, 30))
    t["tCCD_L"] = t["tCCD_S"] + int(rng.integers(0, 5))
    t["tCCD_AB"] = int(rng.integers(1, 9))
    t["tRRD_S"] = int(rng.integers(1, 6))
    t["tRRD_L"] = t["tRRD_S"] + int(rng.integers(0, 6))
    t["tFAW"] = int(rng.integers(1, 60))
    t["tRTP"] = int(rng.integers(1, 12))
    t["tWR"] = int(rng.integers(1, 25))
    t["tRFC"] = int(rng.integers(20, 200))
    t["tREFI"] = t["tRFC"] + int(rng.integers(50, 1500))
    return device.with_timing(**t)


def test_random_streams_pass_the_checker():
    """Random modes, shapes and timing parameters (seeded): every emitted stream obeys every
    rule, data latency included. The refresh allowance is JEDEC's 8 postponed: with tREFI as
    short as tRFC + 50 a step can outlast tREFI, and the engine catches up at its end."""
    rng = np.random.default_rng(7)
    for case in range(30):
        base = HBM3 if case % 2 else AIM
        dev = _random_timing(rng, base)
        mode = MODES[int(rng.integers(len(MODES)))]
        if mode == "aim" and not dev.global_buffer_bytes:
            mode = "bank"
        limit = dev.org.columns * (dev.org.groups_per_pc if mode in ("buffer", "write") else 1)
        cols = int(rng.integers(1, min(limit, 70) + 1))
        run = run_channel(dev, mode, steps=int(rng.integers(1, 12)), cols=cols,
                          cols_last=int(rng.integers(1, cols + 1)),
                          chunks=int(rng.integers(1, 3)), gb_writes=int(rng.integers(0, 4)),
                          reads=int(rng.integers(0, 3)), record=True)
        assert len(run.stream) == sum(run.counts.values())
        errors = check_stream(run.stream, dev, end_cycle=run.cycles, max_postponed=8)
        assert errors == [], (case, mode, [str(e) for e in errors[:3]])


# (rule, timing changes, mode, program, later command, earlier commands, required gap, scope)
# Each case names a pair of commands whose gap the engine made exactly the rule's minimum
# (timing changes make the rule the binding one); scope: "pc" the latest earlier command of
# the PC, "group" of the same bank group.
GAPS = [
    ("tRCD", {}, "bank", dict(steps=2, cols=4), "MAC_AB", ["ACT_AB"], lambda t: t.tRCD, "pc"),
    ("tCCD_AB", {}, "bank", dict(steps=2, cols=4), "MAC_AB", ["MAC_AB"], lambda t: t.tCCD_AB, "pc"),
    ("tRP", {}, "bank", dict(steps=2, cols=32), "ACT_AB", ["PRE_AB"], lambda t: t.tRP, "pc"),
    ("tRAS", {}, "bank", dict(steps=2, cols=1), "PRE_AB", ["ACT_AB"], lambda t: t.tRAS, "pc"),
    ("tRC", {"tRC": 80}, "bank", dict(steps=2, cols=1), "ACT_AB", ["ACT_AB"], lambda t: t.tRC,
     "pc"),
    ("tRTP", {}, "bank", dict(steps=2, cols=32), "PRE_AB", ["MAC_AB"], lambda t: t.tRTP, "pc"),
    ("tWR", {}, "write", dict(steps=3, cols=256), "PRE_AB", ["WR"],
     lambda t: t.tCWL + t.tBL + t.tWR, "pc"),
    ("tRRD_S", {}, "buffer", dict(steps=1, cols=64), "ACT", ["ACT"], lambda t: t.tRRD_S, "pc"),
    ("tRRD_L", {"tRRD_L": 30}, "bankgroup", dict(steps=4, cols=2), "ACT_SB", ["ACT_SB"],
     lambda t: t.tRRD_L, "pc"),
    ("tFAW", {}, "buffer", dict(steps=1, cols=64), "ACT", None, lambda t: t.tFAW, "fifth"),
    ("tCCD_S", {}, "buffer", dict(steps=1, cols=64), "RD", ["RD"], lambda t: t.tCCD_S, "pc"),
    ("tCCD_L", {"tCCD_L": 20}, "buffer", dict(steps=1, cols=64), "RD", ["RD"], lambda t: t.tCCD_L,
     "group"),
    ("tCCD_L", {"tCCD_L": 12}, "bank", dict(steps=2, cols=4, reads=1), "RDRES", ["MAC_AB"],
     lambda t: t.tCCD_L, "pc"),
    ("tWTR", {"tWTR": 60}, "bank", dict(steps=1, cols=1, gb_writes=1, reads=1), "RDRES",
     ["WRGB"], lambda t: t.tCWL + t.tBL + t.tWTR, "pc"),
    ("tRTW", {}, "bank", dict(steps=1, cols=4, chunks=2, gb_writes=2, reads=1), "WRGB",
     ["RDRES"], lambda t: t.tCL + t.tBL + 2 - t.tCWL, "pc"),
    ("tRFC", {}, "bank", dict(steps=30, cols=32), "ACT_AB", ["REF"], lambda t: t.tRFC, "pc"),
    ("tRP", {}, "bank", dict(steps=30, cols=32), "REF", ["PRE_AB"], lambda t: t.tRP, "pc"),
    ("tRC", {"tRC": 80}, "bank", dict(steps=300, cols=1), "REF", ["ACT_AB"], lambda t: t.tRC, "pc"),
    ("command bus", {"tRRD_S": 1}, "buffer", dict(steps=1, cols=64), "ACT", ["ACT"], lambda t: 1,
     "pc"),
]


def _binding_pair(s, later, earlier, gap, scope):
    """The first (i, j): command j of kind ``later`` exactly ``gap`` cycles after i, the latest
    earlier command of ``earlier`` kinds in its scope (or, for "fifth", the activate four
    activates back)."""
    if scope == "fifth":
        acts = np.flatnonzero(s[:, 1] == COMMANDS.index(later))
        hits = [(acts[q - 4], acts[q]) for q in range(4, len(acts))
                if s[acts[q], 0] - s[acts[q - 4], 0] == gap]
        return hits[0]
    for j in np.flatnonzero(s[:, 1] == COMMANDS.index(later)):
        mask = np.isin(s[:j, 1], _codes(*earlier))
        if scope == "group":
            mask &= s[:j, 2] == s[j, 2]
        if mask.any() and s[j, 0] - s[np.flatnonzero(mask)[-1], 0] == gap:
            return np.flatnonzero(mask)[-1], j
    raise AssertionError("no binding pair: the case does not exercise its rule")


@pytest.mark.parametrize("rule, changes, mode, program, later, earlier, gap, scope", GAPS,
                         ids=[f"{g[0]}-{g[4]}" for g in GAPS])
def test_each_timing_gap_shortened_by_one_cycle_is_caught(rule, changes, mode, program, later,
                                                          earlier, gap, scope):
    """A legal stream in which command j sits exactly the rule's minimum after command i; j
    and every later command moved one cycle earlier: the checker names the rule at j, with the
    gap found one below the one required."""
    dev = HBM3.with_timing(**changes) if changes else HBM3
    need = gap(dev.timing)
    run = run_channel(dev, mode, record=True, **program)
    s = run.stream
    assert check_stream(s, dev, end_cycle=run.cycles) == []
    i, j = _binding_pair(s, later, earlier, need, scope)
    shortened = s.copy()
    shortened[j:, 0] -= 1
    found = check_stream(shortened, dev)
    assert any(v.rule == rule and v.index == j and v.found == need - 1 and v.required == need
               for v in found), [str(v) for v in found]


def _long_bank_stream():
    run = run_channel(HBM3, "bank", steps=300, cols=32, record=True)
    assert run.counts["REF"] >= 10  # spans ten refresh intervals
    return run


def test_a_dropped_refresh_is_caught():
    """Drop the third REF of a legal stream: from there each REF comes one interval late."""
    run = _long_bank_stream()
    s = run.stream
    refs = np.flatnonzero(s[:, 1] == COMMANDS.index("REF"))
    assert check_stream(s, HBM3, end_cycle=run.cycles) == []
    dropped = np.delete(s, refs[2], axis=0)
    found = [v for v in check_stream(dropped, HBM3, end_cycle=run.cycles) if v.rule == "tREFI"]
    assert found and found[0].index == refs[3] - 1  # the old fourth REF, now the third
    assert (found[0].found, found[0].required) == (2, 3)
    assert found[0].cycle == 4 * HBM3.timing.tREFI  # REF 3 due at 3 tREFI, one interval late
    # JEDEC allows 8 postponed refreshes: one missing refresh is within that allowance.
    assert check_stream(dropped, HBM3, end_cycle=run.cycles, max_postponed=8) == []


def test_no_refresh_over_18_intervals_is_caught():
    """The engine with refresh off, over more than 18 x tREFI: the checker owes every REF."""
    run = run_channel(HBM3, "bank", steps=600, cols=32, refresh=False, record=True)
    assert run.cycles > 18 * HBM3.timing.tREFI
    found = check_stream(run.stream, HBM3, end_cycle=run.cycles)
    assert [v.rule for v in found] == ["tREFI"]
    assert found[0].found == 0 and found[0].required >= 17
    assert [v.rule for v in check_stream(run.stream, HBM3, max_postponed=8)] == ["tREFI"]


def test_banks_stay_closed_for_trfc_after_a_refresh():
    """An activate moved to one cycle inside tRFC after its REF: tRFC (the REF -> ACT gap)."""
    run = _long_bank_stream()
    s = run.stream.copy()
    ref = np.flatnonzero(s[:, 1] == COMMANDS.index("REF"))[0]
    assert s[ref + 1, 1] == COMMANDS.index("ACT_AB")
    s[ref + 1:, 0] -= s[ref + 1, 0] - s[ref, 0] - (HBM3.timing.tRFC - 1)
    found = check_stream(s, HBM3)
    assert Violation("tRFC", ref + 1, int(s[ref + 1, 0]), HBM3.timing.tRFC - 1,
                     HBM3.timing.tRFC, "ACT_AB while a REF is busy (tRFC)") in found


@pytest.mark.parametrize("command, column, value, rule, required", [
    ("RD", 2, 99, "bank_group", 8),          # HBM3: 2 ranks x 4 groups per PC
    ("ACT", 2, 99, "bank_group", 8),
    ("ACT", 3, 4, "bank", 4),
    ("RD", 4, 16384, "row", 16384),
    ("ACT", 4, -1, "row", 16384),
    ("RD", 5, 32, "column", 32),
    ("ACT", 1, 99, "command", len(COMMANDS)),
])
def test_addresses_out_of_range_are_violations_not_crashes(command, column, value, rule,
                                                           required):
    """A buffer-mode stream with one field of one command set out of the organisation."""
    run = run_channel(HBM3, "buffer", steps=2, cols=64, record=True)
    s = run.stream.copy()
    i = int(np.flatnonzero(s[:, 1] == COMMANDS.index(command))[3])
    s[i, column] = value
    found = check_stream(s, HBM3)
    assert any(v.rule == rule and v.index == i and v.found == value and v.required == required
               for v in found), [str(v) for v in found]


def test_lockstep_commands_must_address_every_bank():
    """An all-bank activate carrying bank group 2 is malformed (group must be -1)."""
    run = run_channel(HBM3, "bank", steps=2, cols=4, record=True)
    s = run.stream.copy()
    s[0, 2] = 2
    assert [(v.rule, v.index, v.found, v.required) for v in check_stream(s, HBM3)
            if v.index == 0] == [("bank_group", 0, 2, -1)]


def test_a_row_shifted_is_a_state_violation():
    """A MAC addressed to the row after the one its ACT opened."""
    run = run_channel(HBM3, "bank", steps=3, cols=8, record=True, refresh=False)
    s = run.stream.copy()
    i = int(np.flatnonzero(s[:, 1] == COMMANDS.index("MAC_AB"))[0])
    s[i, 4] += 1
    found = check_stream(s, HBM3)
    assert [(v.rule, v.index, v.found, v.required) for v in found] == [("state", i, 0, 1)]


def test_refresh_with_a_bank_open_and_activate_of_an_open_bank():
    run = _long_bank_stream()
    s = run.stream
    ref = int(np.flatnonzero(s[:, 1] == COMMANDS.index("REF"))[0])
    assert s[ref - 1, 1] == COMMANDS.index("PRE_AB")
    no_pre = np.delete(s, ref - 1, axis=0)  # the precharge before the REF dropped
    states = [v for v in check_stream(no_pre, HBM3) if v.rule == "state"]
    assert [v.index for v in states] == [ref - 1, ref]  # REF with banks open, then ACT_AB
    assert "refreshes with a bank open" in states[0].what
    assert "activates an open bank" in states[1].what


def test_op_end_before_the_data_is_caught():
    """The op's reported end one cycle early: the last result read's data (tCL + tBL) is not
    out. A write stream ends with a precharge tWR after its data, so there the end is put one
    cycle before the last write's data is in (tCWL + tBL)."""
    t = HBM3.timing
    run = run_channel(HBM3, "bank", steps=2, cols=8, reads=1, record=True)
    assert check_stream(run.stream, HBM3, end_cycle=run.cycles) == []
    found = check_stream(run.stream, HBM3, end_cycle=run.cycles - 1)
    last = len(run.stream) - 1
    assert run.stream[last, 1] == COMMANDS.index("RDRES")
    assert [(v.rule, v.index, v.found, v.required) for v in found] == [
        ("data latency", last, t.tCL + t.tBL - 1, t.tCL + t.tBL)]
    run = run_channel(HBM3, "write", steps=2, cols=8, record=True)
    assert check_stream(run.stream, HBM3, end_cycle=run.cycles) == []
    i = int(np.flatnonzero(run.stream[:, 1] == COMMANDS.index("WR"))[-1])
    early = int(run.stream[i, 0]) + t.tCWL + t.tBL - 1
    found = check_stream(run.stream, HBM3, end_cycle=early)
    assert ("data latency", i, t.tCWL + t.tBL - 1, t.tCWL + t.tBL) in [
        (v.rule, v.index, v.found, v.required) for v in found]


def test_commands_out_of_order_and_bad_shapes():
    run = run_channel(HBM3, "bank", steps=2, cols=4, record=True)
    s = run.stream.copy()
    s[3, 0] = s[2, 0] - 1
    assert "order" in {v.rule for v in check_stream(s, HBM3)}
    assert check_stream(s[:0], HBM3) == []
    with pytest.raises(ValueError, match="6 columns"):
        check_stream(s[:, :5], HBM3)


def test_the_checker_is_pure():
    run = run_channel(HBM3, "buffer", steps=2, cols=64, record=True)
    s = run.stream.copy()
    s[5, 2] = 99
    before = s.copy()
    assert check_stream(s, HBM3) == check_stream(s, HBM3)
    np.testing.assert_array_equal(s, before)


def test_the_audit_checks_each_program_once():
    audit = StreamAudit()
    for _ in range(2):
        cid_ops.gemv(HBM3, "bank", 300, 1000, "fp16", audit=audit)
    assert audit.streams == 1 and audit.violations == []
    assert audit.commands == sum(cid_ops.gemv(HBM3, "bank", 300, 1000, "fp16").counts.values())


def _fake_violation(stream, device, **kwargs):
    return [Violation("tRCD", 1, int(stream[1, 0]), 18, 19, "MAC_AB after the ACT")]


def test_pdsim_cid_check(capsys, monkeypatch):
    assert main(["cid", "--rows", "4096", "--cols", "4096", "--check"]) == 0
    out = capsys.readouterr().out
    issued = sum(cid_ops.gemv(HBM3, "bank", 4096, 4096, "fp16").counts.values())
    assert (f"DRAM command stream: {issued:,} commands checked, 0 violations (1 distinct "
            f"stream)") in out
    assert main(["cid", "--hw", "cent", "--op", "attention", "--check", "--json"]) == 0
    check = json.loads(capsys.readouterr().out)["dram_check"]
    assert check["streams"] == 1 and check["commands"] > 0 and check["violations"] == []
    monkeypatch.setattr(audit_module, "check_stream", _fake_violation)
    assert main(["cid", "--op", "kv-append", "--check"]) == 1  # a simulator bug: exit 1
    captured = capsys.readouterr()
    assert "1 violations" in captured.out
    assert "tRCD: command 1 at cycle" in captured.err and "(found 18, required 19)" in captured.err


def test_pdsim_run_check_dram(capsys, monkeypatch, tmp_path):
    argv = ["run", "--hw", "attacc", "--prompt", "64", "--gen", "3", "--check-dram"]
    assert main([*argv, "--no-trace"]) == 0
    out = capsys.readouterr().out
    assert "commands checked, 0 violations" in out
    assert main(["run", "--hw", "h100", "--prompt", "64", "--gen", "2", "--no-trace",
                 "--check-dram"]) == 0
    assert "0 commands checked, 0 violations (0 distinct streams) (h100 has no CiD unit)" \
        in capsys.readouterr().out
    monkeypatch.setattr(audit_module, "check_stream", _fake_violation)
    trace = tmp_path / "t.h5"
    assert main([*argv, "-o", str(trace)]) == 1
    err = capsys.readouterr().err
    assert "no trace written" in err and "tRCD: command 1" in err
    assert not trace.exists()


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.integers(-2**60, 2**60), st.integers(-3, 15), st.integers(-2, 99),
                          st.integers(-2, 99), st.integers(-2, 20000), st.integers(-2, 40)),
                max_size=40),
       st.one_of(st.none(), st.integers(0, 2**60)))
def test_any_stream_gives_records_never_an_exception(rows, end):
    """Arbitrary rows (cycles within +-2^60, any codes and addresses): a list of records."""
    stream = np.array(rows, dtype=np.int64).reshape(-1, 6)
    found = check_stream(stream, HBM3, end_cycle=end)
    assert all(isinstance(v, Violation) and v.rule for v in found)
