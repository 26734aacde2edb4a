"""Independent checker of recorded compute-in-DRAM command streams (`sim.units.cid.engine.run_channel` with
``record=True``).

The checker shares no state or code path with the engine's bookkeeping: it takes the stream
alone (rows of cycle, command, bank group, bank, row, column), compares each command with
**every** earlier command that shares a bank, a bank group or a bus with it, using the pairwise
minimum gaps of docs/cid.md, and replays the bank states (open, closed, which row). It imports
only the command codes from the engine, so a wrong timing rule in the engine cannot hide here.
"""

from __future__ import annotations

import numpy as np

from sim.units.cid.engine import (ACT, ACT_AB, ACT_SB, COMMANDS, MAC_AB, MAC_SB, PRE, PRE_AB, PRE_SB, RD, RDRES,
                  REF, ROW_COMMANDS, WR, WRGB)
from sim.units.cid.dram import TIMING_FIELDS, DramDevice


def check_stream(stream: np.ndarray, device: DramDevice,
                 timing: tuple[int, ...] | None = None) -> list[str]:
    """Every violated constraint of a recorded one-PC stream, as readable lines (empty: legal).

    Independent of the engine: each command is compared with **every** earlier command that
    shares a bank, a bank group or a bus with it, using the pairwise minimum gaps of
    docs/cid.md, and bank states (open, closed, row) are replayed from the stream alone.
    """
    t = dict(zip(TIMING_FIELDS, device.timing.as_tuple() if timing is None else timing))
    org = device.org
    nb, bpg = org.banks_per_pc, org.banks_per_group
    if nb > 62:
        raise ValueError("check_stream: at most 62 banks per PC (bank sets are int64 masks)")
    n = len(stream)
    cyc = stream[:, 0]
    cmd = stream[:, 1]
    masks = np.zeros(n, dtype=np.int64)
    gmask = np.zeros(n, dtype=np.int64)
    all_banks = (1 << nb) - 1
    for i in range(n):
        g, k = int(stream[i, 2]), int(stream[i, 3])
        c = int(cmd[i])
        if c in (WRGB, RDRES):
            m = 0
        elif c == REF or (g < 0 and k < 0):
            m = all_banks
        elif g < 0:
            m = sum(1 << (gg * bpg + k) for gg in range(nb // bpg))
        else:
            m = 1 << (g * bpg + k)
        masks[i] = m
        gm = 0
        for b in range(nb):
            if m >> b & 1:
                gm |= 1 << (b // bpg)
        gmask[i] = gm

    acts = np.isin(cmd, (ACT, ACT_AB, ACT_SB))
    pres = np.isin(cmd, (PRE, PRE_AB, PRE_SB))
    reads = np.isin(cmd, (RD,))
    macs = np.isin(cmd, (MAC_AB, MAC_SB))
    writes = cmd == WR
    refs = cmd == REF
    bus_rd = np.isin(cmd, (RD, RDRES))
    bus_wr = np.isin(cmd, (WR, WRGB))
    rowcmd = np.isin(cmd, list(ROW_COMMANDS))
    errors: list[str] = []

    def need(j: int, earlier: np.ndarray, gap: int, what: str) -> None:
        idx = np.nonzero(earlier[:j])[0]
        if len(idx):
            bad = idx[cyc[j] - cyc[idx] < gap]
            if len(bad):
                i = int(bad[-1])
                errors.append(f"{what}: {COMMANDS[cmd[i]]}@{cyc[i]} -> "
                              f"{COMMANDS[cmd[j]]}@{cyc[j]} is {cyc[j] - cyc[i]} cycles, "
                              f"needs >= {gap}")

    for j in range(n):
        c = int(cmd[j])
        share_b = (masks & masks[j]) != 0
        share_g = (gmask & gmask[j]) != 0
        if j and cyc[j] < cyc[j - 1]:
            errors.append(f"order: command {j} at {cyc[j]} before command {j - 1}")
        same_bus = rowcmd if c in ROW_COMMANDS else ~rowcmd
        need(j, same_bus, 1, "command bus")
        if c in (ACT, ACT_AB, ACT_SB):
            need(j, acts & share_b, t["tRC"], "tRC")
            need(j, pres & share_b, t["tRP"], "tRP")
            need(j, acts, t["tRRD_S"], "tRRD_S")
            need(j, acts & share_g, t["tRRD_L"], "tRRD_L")
            need(j, refs, t["tRFC"], "tRFC")
            prev = np.nonzero(acts[:j])[0]
            if len(prev) >= 4 and cyc[j] - cyc[prev[-4]] < t["tFAW"]:
                errors.append(f"tFAW: five activates within {cyc[j] - cyc[prev[-4]]} cycles "
                              f"(ending {cyc[j]}), needs >= {t['tFAW']}")
        elif c in (PRE, PRE_AB, PRE_SB):
            need(j, acts & share_b, t["tRAS"], "tRAS")
            need(j, (reads | macs) & share_b, t["tRTP"], "tRTP")
            need(j, writes & share_b, t["tCWL"] + t["tBL"] + t["tWR"], "tWR")
        elif c == REF:
            need(j, pres, t["tRP"], "tRP before REF")
            need(j, acts, t["tRC"], "tRC before REF")
            need(j, refs, t["tRFC"], "tRFC")
        else:  # column commands
            if c in (RD, WR, MAC_AB, MAC_SB):
                need(j, acts & share_b, t["tRCD"], "tRCD")
            if c in (MAC_AB, MAC_SB):
                need(j, macs, t["tCCD_AB"], "tCCD_AB")
                need(j, ~rowcmd & ~macs, t["tCCD_L"], "tCCD_L (MAC after column)")
            else:
                need(j, ~rowcmd & ~macs, t["tCCD_S"], "tCCD_S")
                need(j, macs, t["tCCD_L"], "tCCD_L (column after MAC)")
                if c in (RD, WR):
                    need(j, (reads | writes) & share_g, t["tCCD_L"], "tCCD_L")
                if c in (RD, RDRES):
                    need(j, bus_wr, t["tCWL"] + t["tBL"] + t["tWTR"], "tWTR")
                else:
                    need(j, bus_rd, t["tCL"] + t["tBL"] + 2 - t["tCWL"], "read-to-write")
    errors += _replay_states(stream, nb, bpg, masks)
    return errors


def _replay_states(stream: np.ndarray, nb: int, bpg: int, masks: np.ndarray) -> list[str]:
    """Bank-state rules: activate only closed banks, access only the open row, refresh only
    with every bank closed."""
    open_row = [-1] * nb
    errors = []
    for i, (cycle, c, _g, _k, row, _col) in enumerate(stream.tolist()):
        banks = [b for b in range(nb) if masks[i] >> b & 1]
        if c in (ACT, ACT_AB, ACT_SB):
            for b in banks:
                if open_row[b] >= 0:
                    errors.append(f"state: ACT@{cycle} to open bank {b}")
                open_row[b] = row
        elif c in (PRE, PRE_AB, PRE_SB):
            for b in banks:
                open_row[b] = -1
        elif c == REF:
            if any(r >= 0 for r in open_row):
                errors.append(f"state: REF@{cycle} with a bank open")
        elif c in (RD, WR, MAC_AB, MAC_SB):
            for b in banks:
                if open_row[b] != row:
                    errors.append(f"state: {COMMANDS[c]}@{cycle} to bank {b} whose open row "
                                  f"is {open_row[b]}, not {row}")
    return errors
