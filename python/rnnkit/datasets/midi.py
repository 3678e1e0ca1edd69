"""Write a melody as a Standard MIDI File, so generated music can be played anywhere.

A format-0 file (one track) with a tempo, an instrument and one note-on/note-off pair per note:
the smallest file every player, DAW and notation program reads. Written with the standard
library alone (the format is a few dozen bytes of header and variable-length delta times).
"""
from __future__ import annotations

import os
import struct
from typing import Sequence, Union

import numpy as np

from .chorales import REST

__all__ = ["write_midi"]


def _var_length(value: int) -> bytes:
    """MIDI's variable-length quantity: 7 bits per byte, high bit set on all but the last."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def write_midi(path: Union[str, os.PathLike], pitches: Sequence[int],
               durations: Sequence[float], *, tempo: float = 90.0, velocity: int = 80,
               program: int = 0, ticks_per_quarter: int = 480) -> None:
    """Write one monophonic line as a format-0 MIDI file.

    Args:
        path: the file to write (conventionally ``*.mid``).
        pitches: MIDI note numbers 0-127, or ``REST`` (-1) for a silence.
        durations: each note's length in quarter notes (> 0), as many as ``pitches``.
        tempo: quarter notes per minute.
        velocity: loudness of every note, 1-127.
        program: General MIDI instrument, 0-127 (0: acoustic grand piano; 19: church organ;
            52: choir aahs).
        ticks_per_quarter: the file's time resolution. Note boundaries are rounded to it from
            the running total, so rounding never accumulates into drift.

    Raises:
        ValueError: mismatched lengths, a pitch or duration out of range, or bad options.
    """
    p = np.asarray(pitches)
    d = np.asarray(durations, dtype=np.float64)
    if p.ndim != 1 or d.ndim != 1 or p.shape != d.shape:
        raise ValueError(f"pitches and durations must be 1-D and of one length, got shapes "
                         f"{p.shape} and {d.shape}")
    if p.size and (not np.issubdtype(p.dtype, np.integer)
                   or not np.all((p == REST) | ((p >= 0) & (p <= 127)))):
        raise ValueError(f"pitches must be integers in 0-127 or REST ({REST}), got "
                         f"{p[(p != REST) & ((p < 0) | (p > 127))][:5].tolist() or p.dtype}")
    if not np.all(np.isfinite(d) & (d > 0)):
        raise ValueError(f"durations must be positive and finite, got "
                         f"{d[~(np.isfinite(d) & (d > 0))][:5].tolist()}")
    if not (np.isfinite(tempo) and tempo > 0):
        raise ValueError(f"tempo must be a positive number of quarter notes per minute, got "
                         f"{tempo!r}")
    for name, value, low, high in (("velocity", velocity, 1, 127), ("program", program, 0, 127),
                                   ("ticks_per_quarter", ticks_per_quarter, 1, 0x7FFF)):
        if not (isinstance(value, (int, np.integer)) and low <= value <= high):
            raise ValueError(f"{name} must be an integer in {low}-{high}, got {value!r}")
    ends = np.rint(np.cumsum(d) * ticks_per_quarter).astype(np.int64)
    if p.size and np.any(np.diff(np.concatenate([[0], ends])) <= 0):
        raise ValueError(f"a duration rounds to zero ticks at ticks_per_quarter="
                         f"{ticks_per_quarter}; raise it")
    microseconds = int(round(60_000_000 / tempo))
    if microseconds > 0xFFFFFF:
        raise ValueError(f"tempo {tempo} is too slow for MIDI (at least 3.58 per minute)")

    events = bytearray()
    events += b"\x00\xff\x51\x03" + microseconds.to_bytes(3, "big")      # set tempo
    events += b"\x00" + bytes([0xC0, program])                           # program change
    now = 0                      # time of the last event written, in ticks
    start = 0
    for pitch, end in zip(p.tolist(), ends.tolist()):
        if pitch != REST:
            events += _var_length(start - now) + bytes([0x90, pitch, velocity])   # note on
            events += _var_length(end - start) + bytes([0x80, pitch, 0])          # note off
            now = end
        start = end
    events += _var_length(start - now) + b"\xff\x2f\x00"                 # end of track
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, ticks_per_quarter)
    with open(path, "wb") as f:
        f.write(header + b"MTrk" + struct.pack(">I", len(events)) + bytes(events))
