"""Command-level DRAM timing engine for compute-in-DRAM (PIM) operations.

One pseudo-channel (PC) is simulated command by command: the program of a PIM operation is
expanded into DRAM commands, each issued **in program order at the earliest cycle that every
timing parameter allows** (`sim.units.cid.dram.DramTiming`), with all-bank refresh every
``tREFI``. All PCs of a stack run the same program in lockstep (the host broadcasts the
commands, as AttAcc and AiM do), so one PC's cycle count is the operation's; the op layer
(`sim.units.cid.ops`) simulates each distinct per-PC program once. The Numba kernels live in
`sim.units.cid.kernel`, loaded on the first run.

Modes (``MODES``), after AttAcc (ASPLOS'24) and CENT / GDDR6-AiM (ASPLOS'25):

``bank``
    A MAC unit per bank; all banks of the PC work in lockstep: ``ACT_AB`` opens the same row in
    every bank, each ``MAC_AB`` reads one burst from every bank, ``PRE_AB`` closes them.
    Consecutive MACs are ``tCCD_AB`` apart (the power-limited all-bank column delay).
``bankgroup``
    A MAC unit per bank group; ``ACT_SB k`` / ``MAC_SB k`` / ``PRE_SB k`` address bank ``k`` of
    every group at once. Banks within a group take turns, so the next bank's activate hides
    under the current bank's MACs.
``buffer``
    The MAC units sit on the buffer (base) die: ordinary ``RD`` bursts over the PC's data
    path, interleaved over bank groups and banks; the internal bandwidth is the pin bandwidth.
``aim``
    GDDR6-AiM: a per-bank mode with 16 banks per channel in which the input vector is first
    written into the channel's global buffer (``WRGB``) and broadcast to all banks' MAC units.
``write``
    Ordinary ``WR`` bursts (a KV-cache append), interleaved like ``buffer``.

Every mode may write the input vector into the global buffer (``WRGB``) at the start of each
input chunk and read results out (``RDRES``) after each step. Refresh: when ``tREFI`` has
elapsed, the engine closes the open rows at the next step boundary, issues ``REF`` and re-opens
(postponing a refresh by less than one step, well inside JEDEC's allowance of 8 postponed).

The fast path counts cycles and commands; with ``record=True`` it also returns the command
stream (cycle, command, bank group, bank, row, column), which `sim.units.cid.check.check_stream`
re-verifies (timing, refresh cadence, addresses, bank states, data latency) independently of
the engine's bookkeeping.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.units.cid.dram import PIM_MODES, TIMING_FIELDS, DramDevice
from sim.errors import ConfigError

MODES = PIM_MODES + ("write",)  # "write": a plain write stream (KV-cache append)

#: Command codes of the stream.
COMMANDS = ("ACT", "PRE", "RD", "WR", "REF", "ACT_AB", "PRE_AB", "MAC_AB", "ACT_SB", "PRE_SB",
            "MAC_SB", "WRGB", "RDRES")
(ACT, PRE, RD, WR, REF, ACT_AB, PRE_AB, MAC_AB, ACT_SB, PRE_SB, MAC_SB, WRGB,
 RDRES) = range(len(COMMANDS))
ROW_COMMANDS = frozenset({ACT, PRE, REF, ACT_AB, PRE_AB, ACT_SB, PRE_SB})
_NT = len(TIMING_FIELDS)
(_BL, _CL, _CWL, _RCD, _RP, _RAS, _RC, _CCDS, _CCDL, _CCDAB, _RRDS, _RRDL, _FAW, _WR, _RTP,
 _WTR, _REFI, _RFC) = range(_NT)


@dataclass(frozen=True, slots=True)
class ChannelRun:
    """Result of one PC's program. ``cycles`` is the cycle after the last command's data
    (last command + its latency: tCL + tBL for reads and MACs, tCWL + tBL for writes).
    ``counts`` maps command names to how many were issued; ``stream`` is None unless recorded:
    an int64 array of rows (cycle, command, bank group, bank, row, column), -1 where a field
    does not apply (bank group -1 with bank k means bank k of every group; both -1, all banks).
    """

    cycles: int
    counts: dict[str, int]
    stream: np.ndarray | None


def run_channel(device: DramDevice, mode: str, *, steps: int, cols: int,
                cols_last: int | None = None, chunks: int = 1, gb_writes: int = 0,
                reads: int = 0, passes: int = 1, sub_cols: int = 0, refresh: bool = True,
                record: bool = False,
                timing: tuple[int, ...] | None = None) -> ChannelRun:
    """Simulate one PC running ``chunks`` x (``gb_writes`` global-buffer writes, ``steps`` row
    steps of ``passes`` x ``cols`` column commands, ``reads`` result reads after each step).

    ``cols_last`` (default ``cols``) is the column count of the steps of the last chunk (a
    partial chunk of the input vector). ``passes``: how many times each step streams its open
    row's columns, once per input vector resident in the global buffer (a multi-token GEMM:
    one activate per row for all of them; 1 for a GEMV). ``sub_cols`` > 0: the buffer is
    re-written inside each step, before every ``sub_cols`` columns, with those columns' inputs
    for every pass (``passes`` x the sub-slice's columns of WRGB). ``timing``
    overrides the device's timing tuple (`DramTiming.as_tuple` order), e.g. for tests.
    """
    if mode not in MODES:
        raise ConfigError(f"mode: unknown PIM mode {mode!r} (allowed: {', '.join(MODES)})")
    cols_last = cols if cols_last is None else cols_last
    org = device.org
    for name, value, low in (("steps", steps, 1), ("chunks", chunks, 1), ("cols", cols, 1),
                             ("cols_last", cols_last, 1), ("gb_writes", gb_writes, 0),
                             ("reads", reads, 0), ("passes", passes, 1),
                             ("sub_cols", sub_cols, 0)):
        if value < low:
            raise ConfigError(f"{name}: must be >= {low}, got {value}")
    per_step = org.columns * (org.groups_per_pc if mode in ("buffer", "write") else 1)
    if max(cols, cols_last) > per_step:
        raise ConfigError(f"cols: a {mode}-mode step has at most {per_step} column commands "
                          f"(one row per bank it opens), got {max(cols, cols_last)}")
    if mode == "aim" and device.global_buffer_bytes == 0:
        raise ConfigError(f"mode: 'aim' needs a global buffer; {device.name} has "
                          f"global_buffer_bytes 0")
    t = np.array(device.timing.as_tuple() if timing is None else timing, dtype=np.int64)
    nb, bpg = org.banks_per_pc, org.banks_per_group
    mode_id = MODES.index(mode)
    args = (mode_id, nb, bpg, org.rows, t, chunks, steps, cols, cols_last, passes, sub_cols,
            gb_writes, reads, refresh)
    empty = np.zeros((0, 6), dtype=np.int64)
    from sim.units.cid.kernel import simulate_channel  # Numba: compiled or loaded on first use

    cycles, counts, n = simulate_channel(*args, False, empty)
    stream = None
    if record:
        rec = np.zeros((int(n), 6), dtype=np.int64)
        cycles, counts, n = simulate_channel(*args, True, rec)
        stream = rec
    return ChannelRun(cycles=int(cycles),
                      counts={c: int(v) for c, v in zip(COMMANDS, counts) if v},
                      stream=stream)
