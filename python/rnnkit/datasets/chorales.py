"""The melodies of J. S. Bach's chorales, for one-to-many generation.

The PyPI package ``music21`` (BSD-3) ships in its corpus about 400 four-part chorale
harmonisations as compressed MusicXML (``music21/corpus/bach/*.mxl``, encoded by Margaret
Greentree, public domain). The files are read directly with ``zipfile`` and ElementTree;
music21 itself is not imported (it takes seconds to import and is not needed to read a melody).

What the task holds, and why:
- The melody of each chorale is its soprano part (the first part whose name starts with
  "Soprano"; files with none, such as a keyboard prelude that the corpus keeps beside the
  chorales, are left out).
- A melody is a sequence of notes: MIDI pitch (-1 for a rest) and duration in quarter notes.
  Tied notes are merged into one note, consecutive rests into one rest, grace notes (three in
  the corpus) are dropped, and rests before the first note and after the last are trimmed.
  Repeat signs are not expanded: a melody is the music as written once.
- Many tunes are harmonised more than once (in different cantatas, often in another key). The
  split is by tune, not by file: each melody goes to train, validation or test by a hash
  (blake2b) of its sequence of pitch intervals, which transposition does not change, so every
  harmonisation of one tune lands in the same split and no test tune is seen in training.
  Tunes whose versions differ by a note can still fall in different splits.
"""
from __future__ import annotations

import zipfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import List, NamedTuple, Optional, Tuple

import numpy as np

from ._resources import package_file
from ._split import check_fractions, split_of

__all__ = ["bach_chorales", "Chorales", "Melody", "REST"]

REST = -1                                   # the pitch of a rest
_STEP_SEMITONES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


class Melody(NamedTuple):
    """One chorale's soprano line.

    ``pitches``: int16 MIDI note numbers (60 = middle C), ``REST`` (-1) for a rest.
    ``durations``: float64 lengths in quarter notes (0.5 = an eighth note), all positive.
    ``name``: the corpus file's stem, such as ``"bwv1.6"`` (BWV number and movement).
    """

    name: str
    pitches: np.ndarray
    durations: np.ndarray


class Chorales(NamedTuple):
    """Melodies split by tune (see the module docstring), each list in file-name order."""

    train: List[Melody]
    validation: List[Melody]
    test: List[Melody]


def _score_xml(path: Path) -> ET.Element:
    """The root element of a compressed MusicXML file (its container names the score)."""
    with zipfile.ZipFile(path) as z:
        container = ET.fromstring(z.read("META-INF/container.xml"))
        rootfile = container.find(".//rootfile")
        if rootfile is None or not rootfile.get("full-path"):
            raise ValueError(f"{path.name}: META-INF/container.xml names no rootfile")
        return ET.fromstring(z.read(rootfile.get("full-path")))


def _soprano_part(score: ET.Element) -> Optional[ET.Element]:
    """The first part named Soprano..., or None."""
    for sp in score.iter("score-part"):
        if (sp.findtext("part-name") or "").strip().lower().startswith("soprano"):
            return next((p for p in score.iter("part") if p.get("id") == sp.get("id")), None)
    return None


def _midi_pitch(pitch: ET.Element, where: str) -> int:
    step, octave = pitch.findtext("step"), pitch.findtext("octave")
    if step not in _STEP_SEMITONES or octave is None:
        raise ValueError(f"{where}: a pitch without a valid step/octave")
    alter = float(pitch.findtext("alter") or 0.0)
    return 12 * (int(octave) + 1) + _STEP_SEMITONES[step] + int(round(alter))


def _notes(part: ET.Element, where: str) -> List[Tuple[int, float]]:
    """(pitch, quarter length) for each note of one part, ties and rests merged."""
    notes: List[Tuple[int, float]] = []
    divisions = None
    tie_open = False                        # the previous note's tie continues into this one
    for measure in part.iter("measure"):
        for item in measure:
            if item.tag == "attributes" and item.findtext("divisions"):
                divisions = float(item.findtext("divisions"))
            if item.tag not in ("note", "forward") or item.find("grace") is not None:
                continue
            if item.find("chord") is not None:
                continue                    # a second note sounding with the previous one
            if divisions is None or not divisions > 0:
                raise ValueError(f"{where}: a note before any positive <divisions>")
            length = float(item.findtext("duration") or 0.0) / divisions
            if not length > 0:
                continue
            pitch_el = item.find("pitch") if item.tag == "note" else None
            pitch = REST if pitch_el is None else _midi_pitch(pitch_el, where)
            ties = {t.get("type") for t in item.findall("tie")}
            continues = tie_open and "stop" in ties and notes and notes[-1][0] == pitch
            if continues or (pitch == REST and notes and notes[-1][0] == REST):
                notes[-1] = (pitch, notes[-1][1] + length)
            else:
                notes.append((pitch, length))
            tie_open = "start" in ties and pitch != REST
    while notes and notes[0][0] == REST:
        notes.pop(0)
    while notes and notes[-1][0] == REST:
        notes.pop()
    return notes


def _tune_key(pitches: np.ndarray) -> str:
    """The tune's pitch intervals as text: what transposition does not change."""
    sounding = pitches[pitches != REST].astype(np.int64)
    return ",".join(str(d) for d in np.diff(sounding))


def bach_chorales(*, validation_fraction: float = 0.1, test_fraction: float = 0.1) -> Chorales:
    """Load the chorale melodies, split by tune (see the module docstring).

    Args:
        validation_fraction, test_fraction: shares of the tunes held out; both in [0, 1) and
            together below 1.

    Raises:
        ImportError: the ``music21`` package is not installed (extra ``examples-music``).
        ValueError: fractions out of range, or a corpus file that cannot be read as MusicXML.
    """
    check_fractions(validation_fraction, test_fraction)
    folder = package_file("music21", "corpus/bach", "bach_chorales", extra="examples-music")
    splits: Tuple[List[Melody], List[Melody], List[Melody]] = ([], [], [])
    for path in sorted(folder.glob("*.mxl")):
        try:
            part = _soprano_part(_score_xml(path))
        except (zipfile.BadZipFile, KeyError, ET.ParseError) as e:
            raise ValueError(f"{path}: not a readable compressed MusicXML file ({e})") from e
        if part is None:
            continue
        notes = _notes(part, str(path))
        if len(notes) < 2:
            continue
        melody = Melody(path.name[:-len(".mxl")],
                        np.array([p for p, _ in notes], dtype=np.int16),
                        np.array([d for _, d in notes], dtype=np.float64))
        which = split_of(_tune_key(melody.pitches), validation_fraction, test_fraction)
        splits[which].append(melody)
    return Chorales(*splits)
