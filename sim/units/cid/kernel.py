"""The Numba kernels of the command-level engine (`sim.units.cid.engine`, whose docstring
describes the modes and the timing rules): one pseudo-channel's program issued command by
command. Imported by `sim.units.cid.engine.run_channel` on first use, so that describing or
validating a CiD chip loads no compiled code.
"""

from __future__ import annotations

from functools import partial

import numpy as np
from numba import boolean, int64, njit, types

from sim.units.cid.engine import (
    ACT, ACT_AB, ACT_SB, MAC_AB, MAC_SB, PRE, PRE_AB, PRE_SB, RD, RDRES, REF, WR, WRGB,
    _BL, _CCDAB, _CCDL, _CCDS, _CL, _CWL, _FAW, _RAS, _RC, _RCD, _REFI, _RFC, _RP, _RRDL,
    _RRDS, _RTP, _WR, _WTR)

_NEVER = -(1 << 40)
# Scalar state slots.
(_S_NOW, _S_ROWBUS, _S_COLBUS, _S_COL, _S_MAC, _S_RD, _S_WR, _S_ACT, _S_REF, _S_DUE,
 _S_FAWPOS, _S_N, _S_NREF) = range(13)
_S_FAW = 13  # four slots from here

# Explicit signatures: each kernel is compiled once, eagerly, for int64 scalars and C-contiguous
# int64 arrays. Left to infer types, Numba compiled a new specialization per call site whose
# arguments are literal constants (9 of `_issue` alone), which made a cold cache cost ~17 CPU-s.
# `_open` and `_close_all` are inlined into `simulate_channel` in Numba's IR instead: compiled on
# their own they would each re-optimise a linked copy of `_issue` (about 1 CPU-s for nothing).
_I, _V, _M = int64, int64[::1], int64[:, ::1]
_STATE = (_V,) * 9  # S, act_t, pre_t, colb_t, wr_t, open_row, actg_t, colg_t, counts
_SIG_BANK_OK = boolean(_I, _I, _I, _I, _I)
_SIG_ISSUE = _I(_I, _I, _I, _I, _I, _V, _I, _I, *_STATE, _M, boolean)
_SIG_TARGET = types.UniTuple(_I, 2)(_I, _I, _I, _I, _I)
_SIG_SIMULATE_CHANNEL = types.Tuple((_I, _V, _I))(_I, _I, _I, _I, _V, _I, _I, _I, _I, _I, _I,
                                                  _I, _I, boolean, boolean, _M)
# Kernels called only from compiled code: no Python or C entry points to build for them.
_inner = partial(njit, cache=True, no_cpython_wrapper=True, no_cfunc_wrapper=True)


@_inner(_SIG_BANK_OK)
def _bank_ok(cmd, b, bpg, g_sel, k_sel):
    """Whether bank ``b`` is addressed by a command with group ``g_sel``, bank ``k_sel``."""
    if g_sel < 0 and k_sel < 0:
        return True
    if g_sel < 0:
        return b % bpg == k_sel
    return b == g_sel * bpg + k_sel


@_inner(_SIG_ISSUE)
def _issue(cmd, g_sel, k_sel, row, col, t, nb, bpg, S, act_t, pre_t, colb_t, wr_t, open_row,
           actg_t, colg_t, counts, rec, record):
    """Issue one command at its earliest legal cycle; update the state; return the cycle."""
    at = S[_S_NOW]
    is_row = (cmd == ACT or cmd == PRE or cmd == REF or cmd == ACT_AB or cmd == PRE_AB
              or cmd == ACT_SB or cmd == PRE_SB)
    if is_row:
        at = max(at, S[_S_ROWBUS] + 1)
    else:
        at = max(at, S[_S_COLBUS] + 1)
    if cmd == ACT or cmd == ACT_AB or cmd == ACT_SB:
        at = max(at, S[_S_ACT] + t[_RRDS], S[_S_REF] + t[_RFC])
        at = max(at, S[_S_FAW + (S[_S_FAWPOS] % 4)] + t[_FAW])
        for b in range(nb):
            if _bank_ok(cmd, b, bpg, g_sel, k_sel):
                at = max(at, pre_t[b] + t[_RP], act_t[b] + t[_RC], actg_t[b // bpg] + t[_RRDL])
    elif cmd == PRE or cmd == PRE_AB or cmd == PRE_SB:
        for b in range(nb):
            if _bank_ok(cmd, b, bpg, g_sel, k_sel) and open_row[b] >= 0:
                at = max(at, act_t[b] + t[_RAS], colb_t[b] + t[_RTP],
                         wr_t[b] + t[_CWL] + t[_BL] + t[_WR])
    elif cmd == REF:
        at = max(at, S[_S_REF] + t[_RFC])
        for b in range(nb):
            at = max(at, pre_t[b] + t[_RP], act_t[b] + t[_RC])
    elif cmd == RD or cmd == WR:
        b = g_sel * bpg + k_sel
        at = max(at, act_t[b] + t[_RCD], colg_t[g_sel] + t[_CCDL], S[_S_COL] + t[_CCDS],
                 S[_S_MAC] + t[_CCDL])
        if cmd == RD:
            at = max(at, S[_S_WR] + t[_CWL] + t[_BL] + t[_WTR])
        else:
            at = max(at, S[_S_RD] + t[_CL] + t[_BL] + 2 - t[_CWL])
    elif cmd == MAC_AB or cmd == MAC_SB:
        # Lockstep MACs, all-bank or same-bank, are tCCD_AB apart, as in AttAcc's cycle model
        # (scale-snu/attacc_simulator c1540de, pim_ramulator_src/HBM3-PIM.cpp line 374:
        # MACAB -> MACAB nCCDAB; line 390: MACSB -> MACSB nCCDSB, equal to nCCDAB in its
        # 5.2 Gb/s rows, lines 35-36). AttAcc's summary 8x per bank group (src/config.py
        # lines 152-164) instead assumes a burst per group every tCCD_S (docs/cid.md).
        at = max(at, S[_S_MAC] + t[_CCDAB], S[_S_COL] + t[_CCDL])
        for b in range(nb):
            if _bank_ok(cmd, b, bpg, g_sel, k_sel):
                at = max(at, act_t[b] + t[_RCD])
    else:  # WRGB, RDRES: a burst over the data bus, no bank
        at = max(at, S[_S_COL] + t[_CCDS], S[_S_MAC] + t[_CCDL])
        if cmd == RDRES:
            at = max(at, S[_S_WR] + t[_CWL] + t[_BL] + t[_WTR])
        else:
            at = max(at, S[_S_RD] + t[_CL] + t[_BL] + 2 - t[_CWL])

    # Update the state.
    if is_row:
        S[_S_ROWBUS] = at
    else:
        S[_S_COLBUS] = at
    if cmd == ACT or cmd == ACT_AB or cmd == ACT_SB:
        S[_S_ACT] = at
        S[_S_FAW + (S[_S_FAWPOS] % 4)] = at
        S[_S_FAWPOS] += 1
        for b in range(nb):
            if _bank_ok(cmd, b, bpg, g_sel, k_sel):
                act_t[b] = at
                open_row[b] = row
                actg_t[b // bpg] = at
    elif cmd == PRE or cmd == PRE_AB or cmd == PRE_SB:
        for b in range(nb):
            if _bank_ok(cmd, b, bpg, g_sel, k_sel) and open_row[b] >= 0:
                pre_t[b] = at
                open_row[b] = -1
    elif cmd == REF:
        S[_S_REF] = at
        S[_S_NREF] += 1
    elif cmd == RD or cmd == WR:
        b = g_sel * bpg + k_sel
        colg_t[g_sel] = at
        S[_S_COL] = at
        if cmd == RD:
            colb_t[b] = at
            S[_S_RD] = at
        else:
            wr_t[b] = at
            S[_S_WR] = at
    elif cmd == MAC_AB or cmd == MAC_SB:
        S[_S_MAC] = at
        for b in range(nb):
            if _bank_ok(cmd, b, bpg, g_sel, k_sel):
                colb_t[b] = at
    else:
        S[_S_COL] = at
        if cmd == RDRES:
            S[_S_RD] = at
        else:
            S[_S_WR] = at
    S[_S_NOW] = at
    counts[cmd] += 1
    n = S[_S_N]
    if record and n < rec.shape[0]:
        rec[n, 0] = at
        rec[n, 1] = cmd
        rec[n, 2] = g_sel
        rec[n, 3] = k_sel
        rec[n, 4] = row
        rec[n, 5] = col
    S[_S_N] = n + 1
    return at


@njit(inline="always")
def _close_all(nb, bpg, t, S, act_t, pre_t, colb_t, wr_t, open_row, actg_t, colg_t, counts,
               rec, record):
    any_open = False
    for b in range(nb):
        if open_row[b] >= 0:
            any_open = True
    if not any_open:
        return
    _issue(PRE_AB, -1, -1, -1, -1, t, nb, bpg, S, act_t, pre_t, colb_t, wr_t, open_row, actg_t,
           colg_t, counts, rec, record)


@_inner(_SIG_TARGET)
def _target(mode, gstep, nb, bpg, rows):
    """(bank k, row) of step ``gstep``; lockstep modes use every bank (k = -1)."""
    if mode == 0 or mode == 3:
        return -1, gstep % rows
    return gstep % bpg, (gstep // bpg) % rows


@njit(inline="always")
def _open(mode, g, k, row, t, nb, bpg, S, act_t, pre_t, colb_t, wr_t, open_row, actg_t, colg_t,
          counts, rec, record):
    """Open ``row`` in the banks of a target (group ``g`` of interleaved modes, or all)."""
    b0 = 0 if k < 0 else (k if g < 0 else g * bpg + k)
    if open_row[b0] == row:
        return
    if mode == 0 or mode == 3:
        pre, act = PRE_AB, ACT_AB
    elif mode == 1:
        pre, act = PRE_SB, ACT_SB
    else:
        pre, act = PRE, ACT
    if open_row[b0] >= 0:
        _issue(pre, g, k, -1, -1, t, nb, bpg, S, act_t, pre_t, colb_t, wr_t, open_row, actg_t,
               colg_t, counts, rec, record)
    _issue(act, g, k, row, -1, t, nb, bpg, S, act_t, pre_t, colb_t, wr_t, open_row, actg_t,
           colg_t, counts, rec, record)


@njit(_SIG_SIMULATE_CHANNEL, cache=True)
def simulate_channel(mode, nb, bpg, rows, t, chunks, steps, cols, cols_last, passes, sub_cols,
                     gb_writes, reads, refresh, record, rec):
    """One PC's program: ``chunks`` x (``gb_writes`` WRGB, then ``steps`` row steps of
    ``passes`` x ``cols`` column commands (``cols_last`` in every step of the last chunk), each
    followed by ``reads`` RDRES). Returns (end cycle, counts per command, commands issued).

    ``passes`` > 1: the open row's columns are streamed once per input vector held in the
    global buffer (a multi-token GEMM, `sim.units.cid.ops`): one activate, ``passes`` x the
    column commands. ``passes`` = 1 is the single-vector GEMV, command for command.
    ``sub_cols`` > 0: the step's columns go in sub-slices of ``sub_cols``, each preceded by
    ``passes`` x its columns of WRGB (the buffer re-written with the vectors' next K-slices
    while the row stays open); 0: no writes inside a step.

    Step ``s`` reads row ``s // bpg`` of bank ``s % bpg`` in every group (interleaved modes;
    bursts go round-robin over the groups, so a step has up to groups x columns bursts) or
    row ``s`` of every bank (lockstep modes)."""
    S = np.full(_S_FAW + 4, _NEVER, dtype=np.int64)
    S[_S_NOW] = 0
    S[_S_FAWPOS] = 0
    S[_S_N] = 0
    S[_S_NREF] = 0
    S[_S_DUE] = t[_REFI]
    act_t = np.full(nb, _NEVER, dtype=np.int64)
    pre_t = np.full(nb, _NEVER, dtype=np.int64)
    colb_t = np.full(nb, _NEVER, dtype=np.int64)
    wr_t = np.full(nb, _NEVER, dtype=np.int64)
    open_row = np.full(nb, -1, dtype=np.int64)
    ng = nb // bpg
    actg_t = np.full(ng, _NEVER, dtype=np.int64)
    colg_t = np.full(ng, _NEVER, dtype=np.int64)
    counts = np.zeros(13, dtype=np.int64)
    lockstep = mode == 0 or mode == 3
    per_group = mode == 2 or mode == 4
    colcmd = MAC_AB if lockstep else (MAC_SB if mode == 1 else (RD if mode == 2 else WR))
    lat = t[_CWL] + t[_BL] if mode == 4 else t[_CL] + t[_BL]
    last_data = 0
    gstep = 0
    total = chunks * steps
    for c in range(chunks):
        for w in range(gb_writes):
            at = _issue(WRGB, -1, -1, -1, w, t, nb, bpg, S, act_t, pre_t, colb_t, wr_t,
                        open_row, actg_t, colg_t, counts, rec, record)
            last_data = max(last_data, at + t[_CWL] + t[_BL])
        for _ in range(steps):
            n_col = cols_last if c == chunks - 1 else cols
            k, row = _target(mode, gstep, nb, bpg, rows)
            if refresh and S[_S_NOW] >= S[_S_DUE]:
                _close_all(nb, bpg, t, S, act_t, pre_t, colb_t, wr_t, open_row, actg_t,
                           colg_t, counts, rec, record)
                while S[_S_NOW] >= S[_S_DUE]:
                    _issue(REF, -1, -1, -1, -1, t, nb, bpg, S, act_t, pre_t, colb_t, wr_t,
                           open_row, actg_t, colg_t, counts, rec, record)
                    S[_S_DUE] += t[_REFI]
            if per_group:
                for g in range(min(ng, n_col)):
                    _open(mode, g, k, row, t, nb, bpg, S, act_t, pre_t, colb_t, wr_t, open_row,
                          actg_t, colg_t, counts, rec, record)
            else:
                _open(mode, -1, k, row, t, nb, bpg, S, act_t, pre_t, colb_t, wr_t, open_row,
                      actg_t, colg_t, counts, rec, record)
            # Interleaved modes open the next step's banks while this step's bursts stream:
            # one group's activate after every `spacing` bursts (tRRD/tFAW spread them).
            nxt = gstep + 1
            ahead = (not lockstep) and nxt < total
            nk, nrow = _target(mode, nxt, nb, bpg, rows)
            if ahead and nk == k:
                ahead = False
            n_ahead = ng if per_group else 1
            n_cmd = n_col * passes
            spacing = max(1, n_cmd // (n_ahead + 1))
            # Column commands in sub-slices of `sub` columns: (with `sub_cols`) the buffer
            # writes of the sub-slice's inputs for every pass, then each pass over its columns.
            sub = sub_cols if sub_cols > 0 else n_col
            j = 0
            for j0 in range(0, n_col * passes, sub * passes):
                lo = j0 // passes
                width = min(sub, n_col - lo)
                if sub_cols > 0:
                    for w in range(width * passes):
                        at = _issue(WRGB, -1, -1, -1, w, t, nb, bpg, S, act_t, pre_t, colb_t,
                                    wr_t, open_row, actg_t, colg_t, counts, rec, record)
                        last_data = max(last_data, at + t[_CWL] + t[_BL])
                for jj in range(width * passes):
                    jc = lo + jj % width  # the column of the open row this command reads
                    g = jc % ng if per_group else -1
                    colidx = jc // ng if per_group else jc
                    at = _issue(colcmd, g, k, row, colidx, t, nb, bpg, S, act_t, pre_t, colb_t,
                                wr_t, open_row, actg_t, colg_t, counts, rec, record)
                    last_data = max(last_data, at + lat)
                    j += 1
                    if not (ahead and j % spacing == 0 and j // spacing <= n_ahead):
                        continue
                    if not (refresh and S[_S_NOW] >= S[_S_DUE]):
                        ga = j // spacing - 1 if per_group else -1
                        # Close the previous step's bank first, so the next bank's activate
                        # never waits on a precharge of its own.
                        pk = (k + bpg - 1) % bpg
                        pb = pk if ga < 0 else ga * bpg + pk
                        if pk != k and pk != nk and open_row[pb] >= 0:
                            _issue(PRE_SB if mode == 1 else PRE, ga, pk, -1, -1, t, nb, bpg,
                                   S, act_t, pre_t, colb_t, wr_t, open_row, actg_t, colg_t,
                                   counts, rec, record)
                        _open(mode, ga, nk, nrow, t, nb, bpg, S, act_t, pre_t, colb_t, wr_t,
                              open_row, actg_t, colg_t, counts, rec, record)
            if lockstep:
                _issue(PRE_AB, -1, -1, -1, -1, t, nb, bpg, S, act_t, pre_t, colb_t, wr_t,
                       open_row, actg_t, colg_t, counts, rec, record)
            for r in range(reads):
                at = _issue(RDRES, -1, -1, -1, r, t, nb, bpg, S, act_t, pre_t, colb_t, wr_t,
                            open_row, actg_t, colg_t, counts, rec, record)
                last_data = max(last_data, at + t[_CL] + t[_BL])
            gstep += 1
    _close_all(nb, bpg, t, S, act_t, pre_t, colb_t, wr_t, open_row, actg_t, colg_t, counts,
               rec, record)
    return max(last_data, S[_S_NOW] + 1), counts, S[_S_N]
