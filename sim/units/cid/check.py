"""Independent checker of recorded compute-in-DRAM command streams
(`sim.units.cid.engine.run_channel` with ``record=True``).

`check_stream` takes one pseudo-channel's stream alone (rows of cycle, command, bank group,
bank, row, column) and returns every rule it breaks as `Violation` records; it never raises on
a bad stream. It shares no code path with the engine's bookkeeping (it imports only the command
codes), so a wrong rule in the engine cannot hide here. The rules are those of docs/cid.md:

* **timing**: every minimum gap the engine honours (tRCD, tRP, tRAS, tRC, tRRD_S/L, tFAW,
  tRTP, tWR, tWTR, read-to-write, tCCD_S/L, tCCD_AB, tRFC, one command per bus per cycle);
* **refresh cadence** (``tREFI``): the k-th REF (k = 1, 2, ...) must be issued before cycle
  ``(k + max_postponed) x tREFI``; banks stay closed for tRFC after a REF;
* **addresses**: command code, bank group (ranks included), bank, row and column inside the
  device's organisation, in the form the command takes (one bank, bank k of every group, or
  every bank); an out-of-range command is reported and left out of the other rules;
* **bank states**: activate only a closed bank, access only its open row, refresh only with
  every bank closed;
* **data latency**: the op's reported end cycle is after every command and no earlier than
  each command's data (tCL + tBL after RD / MAC / RDRES, tCWL + tBL after WR / WRGB).

Linear time: each "latest earlier command of class C sharing a bank, a group or the PC" is a
running maximum (``numpy.maximum.accumulate``) over the commands of that scope, so the pairwise
rules cost O(commands x banks touched) and the tFAW window is a shift by four activates. Banks
that every command touches alike (all banks in ``bank`` mode) are computed once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.units.cid.dram import TIMING_FIELDS, DramDevice
from sim.units.cid.engine import (ACT, ACT_AB, ACT_SB, COMMANDS, MAC_AB, MAC_SB, PRE, PRE_AB,
                                  PRE_SB, RD, RDRES, REF, ROW_COMMANDS, WR, WRGB)

_NEVER = np.iinfo(np.int64).min // 4  # "no earlier command": far below any cycle, no overflow
_ACTS, _PRES, _MACS = (ACT, ACT_AB, ACT_SB), (PRE, PRE_AB, PRE_SB), (MAC_AB, MAC_SB)
_ONE_BANK = (ACT, PRE, RD, WR)             # bank group g, bank k
_SAME_BANK = (ACT_SB, PRE_SB, MAC_SB)      # bank k of every group (group -1)
_ALL_BANKS = (ACT_AB, PRE_AB, MAC_AB, REF)  # every bank (group -1, bank -1)
_NO_BANK = (WRGB, RDRES)                   # the global buffer / result registers only


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule of a recorded stream.

    ``rule``: a timing parameter (``tRCD`` ... ``tRFC``, ``tRTW`` for read-to-write, ``tREFI``
    for refresh cadence), ``command bus``, ``order``, ``command``, ``bank_group``, ``bank``,
    ``row``, ``column``, ``state`` or ``data latency``. ``index`` is the stream row of the
    offending (later) command and ``cycle`` its cycle (for ``tREFI``, the missed deadline).
    ``found`` against ``required``: for timing rules the gap in cycles and its minimum; for
    ``tREFI`` the REFs issued before the deadline and the REFs due; for address rules the value
    and the count it must stay below (-1 where the field must be -1); for ``state`` the open row
    (-1: closed) and the row needed (-1: closed); for ``data latency`` the cycles from the
    command to the op's end and the command's latency; for ``order`` the step back in cycles
    and 0. ``what`` says it in words.
    """

    rule: str
    index: int
    cycle: int
    found: int
    required: int
    what: str

    def __str__(self) -> str:
        return (f"{self.rule}: command {self.index} at cycle {self.cycle}: {self.what} "
                f"(found {self.found}, required {self.required})")


def check_stream(stream: np.ndarray, device: DramDevice, *, end_cycle: int | None = None,
                 timing: tuple[int, ...] | None = None,
                 max_postponed: int = 1) -> list[Violation]:
    """Every rule (module docstring) a recorded one-PC stream breaks, in stream order.

    ``stream``: int array of rows (cycle, command, bank group, bank, row, column), cycles of
    the device's ``tck_s``. ``end_cycle``: the op's reported end (`ChannelRun.cycles`) for the
    data-latency rule (None: not checked). ``timing`` overrides the device's timing tuple
    (`DramTiming.as_tuple` order). ``max_postponed``: how many tREFI intervals a refresh may
    trail the cycle it falls due (the engine issues it at the next step boundary, so 1; JEDEC
    allows 8 postponed). Pure: the stream is not modified.
    """
    s = np.asarray(stream)
    if s.ndim != 2 or s.shape[1] != 6:
        raise ValueError(f"check_stream: a stream has 6 columns, got shape {s.shape}")
    s = s.astype(np.int64)
    t = dict(zip(TIMING_FIELDS, device.timing.as_tuple() if timing is None else timing))
    out: list[Violation] = []
    if not len(s):
        return out
    cyc, cmd = s[:, 0], s[:, 1]
    ok = _check_addresses(s, device, out)
    banks = _bank_matrix(s, ok, device)
    cls = {name: ok & _is(cmd, codes) for name, codes in (
        ("act", _ACTS), ("pre", _PRES), ("mac", _MACS), ("ref", (REF,)),
        ("rdmac", (RD,) + _MACS), ("wr", (WR,)), ("rdwr", (RD, WR)),
        ("col", (RD, WR, WRGB, RDRES)), ("wrbus", (WR, WRGB)), ("rdbus", (RD, RDRES)),
        ("row", tuple(ROW_COMMANDS)), ("bankcol", (RD, WR) + _MACS))}
    cls["column"] = ok & ~cls["row"]
    pc = {name: _prev(cyc, cls[name]) for name in (
        "act", "pre", "ref", "mac", "col", "wrbus", "rdbus", "row", "column")}
    bank_scopes = _scopes(banks)
    bank = _prev_each(cyc, cls, ("act", "pre", "rdmac", "wr"), bank_scopes)
    bpg = device.org.banks_per_group
    in_group = banks[:, 0::bpg].copy()  # bank index = group x banks_per_group + bank
    for k in range(1, bpg):
        in_group |= banks[:, k::bpg]
    group = _prev_each(cyc, cls, ("act", "rdwr"), _scopes(in_group))

    def need(rule: str, later: np.ndarray, prev: np.ndarray, gap: int, what: str) -> None:
        found = cyc - prev
        for i in np.flatnonzero(later & (prev > _NEVER) & (found < gap)):
            out.append(Violation(rule, int(i), int(cyc[i]), int(found[i]), gap,
                                 f"{COMMANDS[cmd[i]]} {what}"))

    act, pre = cls["act"], cls["pre"]
    need("command bus", cls["row"], pc["row"], 1, "shares the row command bus")
    need("command bus", cls["column"], pc["column"], 1, "shares the column command bus")
    need("tRC", act, bank["act"], t["tRC"], "after an ACT to the same bank")
    need("tRP", act, bank["pre"], t["tRP"], "after a PRE to the same bank")
    need("tRRD_S", act, pc["act"], t["tRRD_S"], "after an ACT in the PC")
    need("tRRD_L", act, group["act"], t["tRRD_L"], "after an ACT in the same bank group")
    need("tRAS", pre, bank["act"], t["tRAS"], "after the ACT of its bank")
    need("tRTP", pre, bank["rdmac"], t["tRTP"], "after a RD / MAC of its bank")
    need("tWR", pre, bank["wr"], t["tCWL"] + t["tBL"] + t["tWR"],
         "after a WR to its bank (tCWL + tBL + tWR)")
    ref = cls["ref"]
    need("tRP", ref, pc["pre"], t["tRP"], "after a PRE")
    need("tRC", ref, pc["act"], t["tRC"], "after an ACT")
    need("tRFC", ref | act | pre | cls["bankcol"], pc["ref"], t["tRFC"],
         "while a REF is busy (tRFC)")
    need("tRCD", cls["bankcol"], bank["act"], t["tRCD"], "after the ACT of its bank")
    mac, col = cls["mac"], cls["col"]
    need("tCCD_AB", mac, pc["mac"], t["tCCD_AB"], "after a MAC")
    need("tCCD_L", mac, pc["col"], t["tCCD_L"], "after a non-MAC column command")
    need("tCCD_S", col, pc["col"], t["tCCD_S"], "after a column command on the data bus")
    need("tCCD_L", col, pc["mac"], t["tCCD_L"], "after a MAC")
    need("tCCD_L", cls["rdwr"], group["rdwr"], t["tCCD_L"], "after a RD / WR in its group")
    need("tWTR", cls["rdbus"], pc["wrbus"], t["tCWL"] + t["tBL"] + t["tWTR"],
         "after write data (tCWL + tBL + tWTR)")
    need("tRTW", cls["wrbus"], pc["rdbus"], t["tCL"] + t["tBL"] + 2 - t["tCWL"],
         "after read data (tCL + tBL + 2 - tCWL)")
    _check_faw(cyc, cmd, act, t["tFAW"], out)
    _check_order(cyc, out)
    _check_states(s, cls, bank_scopes, out)
    _check_refresh(cyc, ref, t["tREFI"], max_postponed, end_cycle, out)
    if end_cycle is not None:
        _check_end(cyc, cmd, ok, cls, t, end_cycle, out)
    out.sort(key=lambda v: v.index)
    return out


def _check_addresses(s: np.ndarray, device: DramDevice, out: list[Violation]) -> np.ndarray:
    """Command code and address of every command against the organisation; returns the mask
    of commands whose address is well formed (the only ones the other rules see)."""
    org = device.org
    cyc, cmd, g, k, row, col = s.T
    known = (cmd >= 0) & (cmd < len(COMMANDS))
    ok = known.copy()
    for i in np.flatnonzero(~known):
        out.append(Violation("command", int(i), int(cyc[i]), int(cmd[i]), len(COMMANDS),
                             f"unknown command code (0 .. {len(COMMANDS) - 1})"))
    one = known & _is(cmd, _ONE_BANK)
    same = known & _is(cmd, _SAME_BANK)
    wide = known & _is(cmd, _ALL_BANKS + _NO_BANK)
    needs_row = known & _is(cmd, _ACTS + (RD, WR) + _MACS)
    checks = (  # (rule, commands, value, allowed mask, limit shown, what is allowed)
        ("bank_group", one, g, (g >= 0) & (g < org.groups_per_pc), org.groups_per_pc,
         f"bank group outside 0 .. {org.groups_per_pc - 1} (ranks x bank_groups)"),
        ("bank_group", same | wide, g, g == -1, -1, "bank group must be -1 (every group)"),
        ("bank", one | same, k, (k >= 0) & (k < org.banks_per_group), org.banks_per_group,
         f"bank outside 0 .. {org.banks_per_group - 1}"),
        ("bank", wide, k, k == -1, -1, "bank must be -1 (every bank, or none)"),
        ("row", needs_row, row, (row >= 0) & (row < org.rows), org.rows,
         f"row outside 0 .. {org.rows - 1}"),
        ("column", known & _is(cmd, (RD, WR) + _MACS), col,
         (col >= 0) & (col < org.columns), org.columns,
         f"column outside 0 .. {org.columns - 1}"),
        ("column", known & _is(cmd, _NO_BANK), col, col >= 0, 0,
         "buffer burst index must be >= 0"),
    )
    for rule, applies, value, allowed, limit, what in checks:
        bad = applies & ~allowed
        ok &= ~bad
        for i in np.flatnonzero(bad):
            out.append(Violation(rule, int(i), int(cyc[i]), int(value[i]), limit,
                                 f"{COMMANDS[cmd[i]]} {what}"))
    return ok


def _bank_matrix(s: np.ndarray, ok: np.ndarray, device: DramDevice) -> np.ndarray:
    """Bool (commands x banks of the PC): which banks each well-formed command addresses."""
    org = device.org
    nb, bpg = org.banks_per_pc, org.banks_per_group
    cmd, g, k = s[:, 1], s[:, 2], s[:, 3]
    banks = np.zeros((len(s), nb), dtype=bool)
    one = np.flatnonzero(ok & _is(cmd, _ONE_BANK))
    banks[one, g[one] * bpg + k[one]] = True
    same = np.flatnonzero(ok & _is(cmd, _SAME_BANK))
    banks[same] = (np.arange(nb) % bpg)[None, :] == k[same][:, None]
    banks[ok & _is(cmd, _ALL_BANKS)] = True
    return banks


def _scopes(touch: np.ndarray) -> list[np.ndarray]:
    """The distinct command sets of the columns of ``touch`` (commands x banks or groups), as
    index arrays: banks addressed by exactly the same commands share one scope."""
    seen: dict[bytes, np.ndarray] = {}
    packed = np.packbits(np.ascontiguousarray(touch.T), axis=1)
    for b in range(touch.shape[1]):
        key = packed[b].tobytes()
        if key not in seen:
            seen[key] = np.flatnonzero(touch[:, b])
    return [idx for idx in seen.values() if len(idx)]


def _is(cmd: np.ndarray, codes: tuple[int, ...]) -> np.ndarray:
    """``numpy.isin(cmd, codes)`` by table look-up (codes outside the table are False)."""
    table = np.zeros(len(COMMANDS) + 1, dtype=bool)
    table[list(codes)] = True
    return table[np.clip(cmd, -1, len(COMMANDS))]  # -1 and len(COMMANDS) both index False


def _prev(cyc: np.ndarray, members: np.ndarray) -> np.ndarray:
    """For every command, the latest cycle of an earlier command in ``members`` (``_NEVER`` if
    none). The latest, not the last: the max over earlier commands, so one comparison per
    command covers every earlier one even out of order."""
    prev = np.full(len(cyc), _NEVER, dtype=np.int64)
    np.maximum.accumulate(np.where(members, cyc, _NEVER)[:-1], out=prev[1:])
    return prev


def _prev_each(cyc: np.ndarray, cls: dict[str, np.ndarray], names: tuple[str, ...],
               scopes: list[np.ndarray]) -> dict[str, np.ndarray]:
    """`_prev` of each class in ``names`` within scopes (index arrays of the commands that
    address one bank or group): per command, the max over the scopes it belongs to."""
    out = {name: np.full(len(cyc), _NEVER, dtype=np.int64) for name in names}
    for idx in scopes:
        sub = cyc[idx]
        for name in names:
            prev = out[name]
            prev[idx] = np.maximum(prev[idx], _prev(sub, cls[name][idx]))
    return out


def _check_faw(cyc: np.ndarray, cmd: np.ndarray, act: np.ndarray, faw: int,
               out: list[Violation]) -> None:
    """Any five activates of the PC span at least tFAW (the four-activate window)."""
    idx = np.flatnonzero(act)
    span = cyc[idx[4:]] - cyc[idx[:-4]]
    for j in np.flatnonzero(span < faw):
        i = int(idx[j + 4])
        out.append(Violation("tFAW", i, int(cyc[i]), int(span[j]), faw,
                             f"{COMMANDS[cmd[i]]} is the fifth activate within tFAW"))


def _check_order(cyc: np.ndarray, out: list[Violation]) -> None:
    """Commands are recorded in issue order: cycles never step back, the first is >= 0."""
    if cyc[0] < 0:
        out.append(Violation("order", 0, int(cyc[0]), int(cyc[0]), 0, "negative cycle"))
    step = np.diff(cyc)
    for j in np.flatnonzero(step < 0):
        out.append(Violation("order", int(j + 1), int(cyc[j + 1]), int(step[j]), 0,
                             "issued before the command recorded ahead of it"))


def _check_states(s: np.ndarray, cls: dict[str, np.ndarray], scopes: list[np.ndarray],
                  out: list[Violation]) -> None:
    """Replay every bank's state from the stream alone: ACT only to a closed bank, RD / WR /
    MAC only to the open row, REF only with the bank closed. One record per command."""
    cyc, cmd, row = s[:, 0], s[:, 1], s[:, 4]
    bad: dict[tuple[int, str], tuple[int, int]] = {}
    for idx in scopes:
        pos = np.arange(len(idx))
        last_act = np.maximum.accumulate(np.where(cls["act"][idx], pos, -1))
        last_pre = np.maximum.accumulate(np.where(cls["pre"][idx], pos, -1))
        act_before = np.concatenate(([-1], last_act[:-1]))
        pre_before = np.concatenate(([-1], last_pre[:-1]))
        is_open = act_before > pre_before
        open_row = np.where(is_open, row[idx][np.maximum(act_before, 0)], -1)
        for what, later, wrong, need_row in (
                ("activates an open bank", cls["act"], is_open, None),
                ("refreshes with a bank open", cls["ref"], is_open, None),
                ("accesses a row that is not open", cls["bankcol"], None, row)):
            here = later[idx]
            if need_row is None:
                hit = here & wrong
                want = np.full(len(idx), -1)
            else:
                want = need_row[idx]
                hit = here & (open_row != want)
            for p in np.flatnonzero(hit):
                bad.setdefault((int(idx[p]), what), (int(open_row[p]), int(want[p])))
    for (i, what), (found, want) in bad.items():
        out.append(Violation("state", i, int(cyc[i]), found, want, f"{COMMANDS[cmd[i]]} {what}"))


def _check_refresh(cyc: np.ndarray, ref: np.ndarray, refi: int, max_postponed: int,
                   end_cycle: int | None, out: list[Violation]) -> None:
    """Refresh cadence: REF number k (k >= 1) falls due at k x tREFI and must be issued before
    ``(k + max_postponed) x tREFI``, for every deadline before the stream's end (``end_cycle``,
    else the cycle after the last command)."""
    end = int(end_cycle) if end_cycle is not None else int(cyc.max()) + 1
    due = max(0, -(-end // refi) - 1 - max_postponed)  # REFs whose deadline is before `end`
    idx = np.flatnonzero(ref)
    issued = np.sort(cyc[idx])
    k = np.arange(1, min(len(idx), due) + 1)
    deadline = (k + max_postponed) * refi
    before = np.searchsorted(issued, deadline, side="left")
    for j in np.flatnonzero(before < k):
        out.append(Violation("tREFI", int(idx[j]), int(deadline[j]), int(before[j]),
                             int(k[j]), f"REF {k[j]} (due at {k[j] * refi}) not issued by its "
                             f"deadline ({max_postponed} x tREFI later)"))
    if due > len(idx):  # the stream ends owing refreshes it never issues: one record
        first = (len(idx) + 1 + max_postponed) * refi
        out.append(Violation("tREFI", len(cyc) - 1, first, len(idx), due,
                             f"{due - len(idx)} REF(s) missing before the end (cycle {end}); "
                             f"the first was due at {(len(idx) + 1) * refi}"))


def _check_end(cyc: np.ndarray, cmd: np.ndarray, ok: np.ndarray, cls: dict[str, np.ndarray],
               t: dict[str, int], end_cycle: int, out: list[Violation]) -> None:
    """The op's end is after every command and after each command's data is out."""
    latency = np.where(cls["rdbus"] | cls["mac"], t["tCL"] + t["tBL"],
                       np.where(cls["wrbus"], t["tCWL"] + t["tBL"], 1))
    found = end_cycle - cyc
    for i in np.flatnonzero(ok & (found < latency)):
        out.append(Violation("data latency", int(i), int(cyc[i]), int(found[i]),
                             int(latency[i]), f"{COMMANDS[cmd[i]]}'s data is not out by the "
                             f"op's end (cycle {end_cycle})"))
