"""The Bach chorale melodies and the MIDI writer.

The loader is checked against music21's own parser (an independent MusicXML reader); the MIDI
writer against a minimal reader written here from the file format and, where music21 is
installed, against music21's MIDI reader.
"""
from __future__ import annotations

import struct
import warnings

import numpy as np
import pytest

from rnnkit import datasets
from rnnkit.datasets import REST, write_midi


@pytest.fixture(scope="module")
def chorales():
    return datasets.bach_chorales()


def _music21_soprano(name: str):
    """(pitches, durations, tied) of a chorale's soprano part as music21 reads it: ties merged
    (``tied``: there were some), grace notes dropped, consecutive rests merged, rests at either
    end trimmed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import music21
        score = music21.corpus.parse(f"bach/{name}")
    part = next(p for p in score.parts if (p.partName or "").lower().startswith("soprano"))
    tied = any(n.tie is not None for n in part.flatten().notes)
    notes = []
    for n in part.flatten().stripTies().notesAndRests:
        if n.duration.isGrace or n.quarterLength == 0:
            continue
        pitch = REST if n.isRest else n.pitch.midi
        if pitch == REST and notes and notes[-1][0] == REST:
            notes[-1][1] += float(n.quarterLength)
        else:
            notes.append([pitch, float(n.quarterLength)])
    while notes and notes[0][0] == REST:
        notes.pop(0)
    while notes and notes[-1][0] == REST:
        notes.pop()
    return [p for p, _ in notes], [d for _, d in notes], tied


@pytest.mark.needs_data("chorales")
def test_melodies_match_music21(chorales):
    melodies = {m.name: m for m in chorales.train + chorales.validation + chorales.test}
    assert len(melodies) > 380                       # ~405 chorales with a soprano part
    with_rests = [n for n, m in melodies.items() if np.any(m.pitches == REST)]
    names = sorted(set(sorted(melodies)[::3] + with_rests[:3]))    # ~140 files, ~10 s
    any_tied = False
    for name in names:
        pitches, durations, tied = _music21_soprano(name)
        np.testing.assert_array_equal(melodies[name].pitches, pitches, err_msg=name)
        np.testing.assert_allclose(melodies[name].durations, durations, err_msg=name)
        any_tied |= tied
    assert any_tied and with_rests                   # the merging paths were exercised


@pytest.mark.needs_data("chorales")
def test_split_by_tune_and_stable(chorales):
    n = sum(len(s) for s in chorales)
    assert abs(len(chorales.test) / n - 0.1) < 0.04
    assert abs(len(chorales.validation) / n - 0.1) < 0.04

    def tune(m):                                     # the melody up to transposition
        sounding = m.pitches[m.pitches != REST].astype(int)
        return tuple(np.diff(sounding))

    train_tunes = {tune(m) for m in chorales.train}
    assert not {tune(m) for m in chorales.test + chorales.validation} & train_tunes
    # The corpus does hold a tune harmonised twice in different keys; both copies share a split.
    by_tune = {}
    for split, melodies in zip("tvs", chorales):
        for m in melodies:
            by_tune.setdefault(tune(m), []).append((split, int(m.pitches[m.pitches != REST][0])))
    repeated = [v for v in by_tune.values() if len(v) > 1]
    assert any(len({p for _, p in v}) > 1 for v in repeated)   # transposed duplicates exist
    assert all(len({s for s, _ in v}) == 1 for v in repeated)
    again = datasets.bach_chorales()
    assert [m.name for m in again.test] == [m.name for m in chorales.test]
    other = datasets.bach_chorales(validation_fraction=0.0, test_fraction=0.3)
    assert not other.validation and len(other.test) > len(chorales.test)


def test_bad_fractions_are_refused():
    with pytest.raises(ValueError, match="test_fraction"):
        datasets.bach_chorales(test_fraction=1.0)
    with pytest.raises(ValueError, match="below 1"):
        datasets.bach_chorales(validation_fraction=0.5, test_fraction=0.5)


# ------------------------------------------------------------------ MIDI
def _read_midi(path):
    """A minimal format-0 reader from the Standard MIDI File spec: returns the division, the
    tempo in microseconds per quarter, the program and the (start, end, pitch, velocity)
    notes in ticks."""
    data = path.read_bytes()
    assert data[:4] == b"MThd"
    length, fmt, ntracks, division = struct.unpack(">IHHH", data[4:14])
    assert (length, fmt, ntracks) == (6, 0, 1)
    assert data[14:18] == b"MTrk"
    (track_length,) = struct.unpack(">I", data[18:22])
    track, i, now = data[22:22 + track_length], 0, 0
    assert len(track) == track_length
    tempo = program = None
    open_notes, notes = {}, []
    while i < len(track):
        delta = 0
        while True:
            byte = track[i]
            i += 1
            delta = (delta << 7) | (byte & 0x7F)
            if byte < 0x80:
                break
        now += delta
        status = track[i]
        if status == 0xFF:
            kind, size = track[i + 1], track[i + 2]
            if kind == 0x51:
                tempo = int.from_bytes(track[i + 3:i + 3 + size], "big")
            if kind == 0x2F:
                assert i + 3 == len(track)            # end of track is the last event
            i += 3 + size
        elif status & 0xF0 == 0xC0:
            program = track[i + 1]
            i += 2
        elif status & 0xF0 in (0x80, 0x90):
            pitch, velocity = track[i + 1], track[i + 2]
            if status & 0xF0 == 0x90 and velocity > 0:
                open_notes[pitch] = (now, velocity)
            else:
                start, v = open_notes.pop(pitch)
                notes.append((start, now, pitch, v))
            i += 3
        else:
            raise AssertionError(f"unexpected MIDI status byte {status:#x}")
    assert not open_notes
    return division, tempo, program, notes


def test_midi_round_trip(tmp_path):
    pitches = [60, 62, REST, 64, 65, REST, REST, 67, 127, 0]
    durations = [1.0, 0.5, 0.5, 1 / 3, 2 / 3, 0.25, 1.0, 4.0, 300.0, 0.125]
    path = tmp_path / "m.mid"
    write_midi(path, pitches, durations, tempo=120, velocity=90, program=52,
               ticks_per_quarter=480)
    division, tempo, program, notes = _read_midi(path)
    assert (division, tempo, program) == (480, 500_000, 52)
    bounds = np.rint(np.concatenate([[0], np.cumsum(durations)]) * 480).astype(int)
    expected = [(bounds[k], bounds[k + 1], p, 90) for k, p in enumerate(pitches) if p != REST]
    assert notes == expected
    write_midi(path, [], [])                         # an empty melody is a valid empty file
    assert _read_midi(path)[3] == []


@pytest.mark.needs_data("chorales")
def test_midi_reads_back_in_music21(tmp_path):
    pitches, durations = [67, 69, 71, REST, 72, 74, 72], [1.0, 1.0, 2.0, 1.0, 1.0, 0.5, 1.5]
    path = tmp_path / "m.mid"
    write_midi(path, pitches, durations)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import music21
        score = music21.converter.parse(str(path))
    read = [(REST if n.isRest else n.pitch.midi, float(n.quarterLength))
            for n in score.flatten().stripTies().notesAndRests]
    assert read == list(zip(pitches, durations))


@pytest.mark.parametrize("kwargs, message", [
    (dict(pitches=[60, 61], durations=[1.0]), "one length"),
    (dict(pitches=[60, 128], durations=[1.0, 1.0]), "0-127"),
    (dict(pitches=[60, -2], durations=[1.0, 1.0]), "0-127"),
    (dict(pitches=[60.5], durations=[1.0]), "integers"),
    (dict(pitches=[60], durations=[0.0]), "positive"),
    (dict(pitches=[60], durations=[np.nan]), "positive"),
    (dict(pitches=[60], durations=[1.0], tempo=0), "tempo"),
    (dict(pitches=[60], durations=[1.0], velocity=0), "velocity"),
    (dict(pitches=[60], durations=[1.0], program=128), "program"),
    (dict(pitches=[60], durations=[1e-4], ticks_per_quarter=96), "zero ticks"),
])
def test_midi_bad_input(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        write_midi(tmp_path / "bad.mid", **kwargs)
    assert not (tmp_path / "bad.mid").exists()       # nothing half-written
