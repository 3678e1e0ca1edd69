"""One-to-many music: a melody model of Bach's chorales that writes new tunes as MIDI files.

Data: ``rnnkit.datasets.bach_chorales()``: the soprano lines of about 400 chorales from
music21's corpus, split by tune (every harmonisation of a tune in one split). Each note is one
token, its pitch and its duration together (44 pitch symbols: MIDI 48-90 and a rest, times 11
durations from a 32nd to a breve), and token 0 marks the boundary between melodies, so a
sampled token is always a whole note and a tune ends when the model says so. Training melodies
are transposed into every key from 5 semitones down to 6 up (augmentation: the model learns
intervals, not one key); held-out melodies stay in their written keys.

Model: ``Embedding -> LSTM -> Linear`` predicting the next note, trained with
``rnnkit.train.Trainer`` on windows of the concatenated melodies. Reports held-out
cross-entropy in bits per note against two baselines fitted on the same training notes: the
unigram (note frequencies) and the bigram (next note given this one, interpolated with the
unigram), each fitted on the training tunes as written or transposed and with the weight
that is best on the validation tunes. Then samples tunes from seed notes and
writes them as MIDI files next to the checkpoint.

    python examples/music.py            # the README's figures (a few minutes on 2 cores)
    python examples/music.py --quick    # under a minute
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np

from _shared import parser, report, save_checkpoint, setup

import rnnkit
from rnnkit import losses, nn, optim
from rnnkit.datasets import REST, Melody, bach_chorales, write_midi
from rnnkit.train import Trainer

LOWEST, HIGHEST = 48, 90                 # MIDI pitch range of the vocabulary (C3 to F#6)
PITCHES = [REST] + list(range(LOWEST, HIGHEST + 1))
DURATIONS = (0.125, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)   # quarter notes
BOUNDARY = 0                             # token 0: between two melodies
VOCAB = 1 + len(PITCHES) * len(DURATIONS)
WINDOW = 64
NAMES = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]


def encode(melody: Melody, shift: int = 0) -> Tuple[np.ndarray, int]:
    """Note tokens of a melody transposed by ``shift`` semitones; also how many durations
    were not in DURATIONS and were snapped to the nearest (on a log scale)."""
    pitch = melody.pitches.astype(np.int64)
    pitch = np.where(pitch == REST, REST, pitch + shift)
    if np.any((pitch != REST) & ((pitch < LOWEST) | (pitch > HIGHEST))):
        raise ValueError(f"{melody.name} shifted by {shift} leaves MIDI {LOWEST}-{HIGHEST}")
    p_index = np.where(pitch == REST, 0, pitch - LOWEST + 1)
    log_d = np.log2(melody.durations)[:, None]
    d_index = np.abs(log_d - np.log2(DURATIONS)[None, :]).argmin(axis=1)
    snapped = int(np.sum(~np.isclose(np.asarray(DURATIONS)[d_index], melody.durations)))
    return 1 + p_index * len(DURATIONS) + d_index, snapped


def decode(tokens: Sequence[int]) -> Tuple[List[int], List[float]]:
    """Pitches and durations of note tokens, up to the first boundary."""
    pitches, durations = [], []
    for t in tokens:
        if t == BOUNDARY:
            break
        p, d = divmod(int(t) - 1, len(DURATIONS))
        pitches.append(PITCHES[p])
        durations.append(DURATIONS[d])
    return pitches, durations


def stream(melodies: List[Melody], shifts: Sequence[int]) -> Tuple[np.ndarray, int]:
    """Every melody at every shift that stays in range, each preceded by a boundary token."""
    parts, snapped = [np.array([BOUNDARY])], 0
    for m in melodies:
        sounding = m.pitches[m.pitches != REST]
        low, high = int(sounding.min()), int(sounding.max())
        for shift in shifts:
            if low + shift < LOWEST or high + shift > HIGHEST:
                continue
            tokens, s = encode(m, shift)
            parts += [tokens, np.array([BOUNDARY])]
            snapped += s
    return np.concatenate(parts), snapped


def ngram_baselines(trains: Sequence[np.ndarray], valid: np.ndarray, test: np.ndarray
                    ) -> Tuple[float, float]:
    """Bits per note on ``test`` of the add-one unigram and of the bigram interpolated with it.

    Each baseline is fitted on every stream of ``trains`` (the training tunes as written, and
    transposed) and keeps the fit, and for the bigram the interpolation weight, that is best on
    ``valid``: the strongest n-gram opponent the training data allow.
    """
    unigram_best, bigram_best = (math.inf, 0.0), (math.inf, 0.0)   # (valid bits, test bits)
    for train in trains:
        unigram = np.bincount(train, minlength=VOCAB) + 1.0
        unigram /= unigram.sum()
        pairs = np.zeros((VOCAB, VOCAB))
        np.add.at(pairs, (train[:-1], train[1:]), 1.0)
        rows = pairs.sum(axis=1, keepdims=True)
        bigram = np.divide(pairs, rows, out=np.zeros_like(pairs), where=rows > 0)

        def bits(seq: np.ndarray, weight: float) -> float:
            p = weight * bigram[seq[:-1], seq[1:]] + (1.0 - weight) * unigram[seq[1:]]
            return float(-np.log2(p).mean())

        unigram_best = min(unigram_best, (bits(valid, 0.0), bits(test, 0.0)))
        for weight in np.linspace(0.02, 0.98, 49):
            bigram_best = min(bigram_best, (bits(valid, weight), bits(test, weight)))
    return unigram_best[1], bigram_best[1]


def model_bits(model: nn.Module, seq: np.ndarray) -> float:
    """Bits per note of the model on a whole stream, read in one pass (no window edges)."""
    model.eval()
    logits = model(seq[None, :-1]).astype(np.float64)[0]
    logits -= logits.max(axis=1, keepdims=True)
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(seq) - 1), seq[1:]].mean() / math.log(2.0))


def note_names(pitches: Sequence[int], durations: Sequence[float]) -> str:
    return " ".join(("rest" if p == REST else f"{NAMES[p % 12]}{p // 12 - 1}") + f"/{d:g}"
                    for p, d in zip(pitches, durations))


def main() -> None:
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--samples", type=int, default=3, help="tunes to generate")
    p.add_argument("--temperature", type=float, default=0.8)
    args = p.parse_args()
    start = setup(args, "music")
    shifts = range(-5, 7)
    if args.quick:
        args.epochs, args.hidden, shifts = 6, 128, range(-3, 4)
    data = bach_chorales()
    train, snapped = stream(data.train, shifts)
    valid, _ = stream(data.validation, [0])
    test, _ = stream(data.test, [0])
    unigram, bigram = ngram_baselines([stream(data.train, [0])[0], train], valid, test)
    print(f"{len(data.train)} training tunes ({len(train):,} notes in {len(shifts)} keys; "
          f"{snapped} durations snapped), {len(data.validation)} validation and "
          f"{len(data.test)} test tunes ({len(test):,} notes); vocabulary {VOCAB}", flush=True)
    print(f"test baselines: unigram {unigram:.3f} bits/note, bigram {bigram:.3f}", flush=True)

    n = (len(train) - 1) // WINDOW
    x = train[:n * WINDOW].reshape(n, WINDOW)
    y = train[1:n * WINDOW + 1].reshape(n, WINDOW)
    m = (len(valid) - 1) // WINDOW
    xv, yv = valid[:m * WINDOW].reshape(m, WINDOW), valid[1:m * WINDOW + 1].reshape(m, WINDOW)
    model = nn.Sequential(nn.Embedding(VOCAB, 64, seed=args.seed),
                          nn.LSTM(64, args.hidden, batch_first=True, seed=args.seed + 1),
                          nn.Dropout(0.3, seed=args.seed + 2),
                          nn.Linear(args.hidden, VOCAB, seed=args.seed + 3))
    trainer = Trainer(model, losses.CrossEntropyLoss(),
                      optim.Adam(model.parameters(), lr=3e-3), clip_grad_norm=1.0,
                      seed=args.seed)
    trainer.fit(x, y, epochs=args.epochs, batch_size=32, validation_data=(xv, yv))
    bits_valid, bits_test = model_bits(model, valid), model_bits(model, test)
    print(f"held-out bits per note: test {bits_test:.3f}, validation {bits_valid:.3f} "
          f"(test baselines: unigram {unigram:.3f}, bigram {bigram:.3f})", flush=True)

    out_dir = Path(args.out).resolve().parent
    stem = Path(args.out).stem
    rng = np.random.default_rng(args.seed)
    written = []
    for k in range(args.samples):
        seed_tokens = [BOUNDARY, int(encode(data.test[k % len(data.test)])[0][0])]
        tokens = rnnkit.sample(model, np.array(seed_tokens), 200,
                               temperature=args.temperature, seed=int(rng.integers(2 ** 31)))
        pitches, durations = decode(seed_tokens[1:] + [int(t) for t in tokens])
        path = out_dir / f"{stem}-sample{k + 1}.mid"
        write_midi(path, pitches, durations, tempo=80, program=19)   # church organ
        written.append(str(path))
        print(f"\nsample {k + 1} ({len(pitches)} notes, {sum(durations):g} quarters) -> "
              f"{path.name}\n  {note_names(pitches, durations)}", flush=True)
    print()
    result = {"example": "music", "metric": "test_bits_per_note", "value": bits_test,
              "baseline": bigram, "unigram": unigram, "higher_is_better": False,
              "validation": bits_valid, "midi": written}
    save_checkpoint(model, args.out, {"example": "music", "pitches": PITCHES,
                                      "durations": list(DURATIONS), "boundary": BOUNDARY,
                                      "token": "1 + pitch_index * len(durations) + "
                                               "duration_index", "result": result})
    report(result, start)


if __name__ == "__main__":
    main()
