"""One-to-many: a character-level language model of Shakespeare, sampled at several temperatures.

Data: ``rnnkit.datasets.shakespeare()`` (34 plays to train on, 4 whole plays held out).
Model: ``Embedding -> LSTM -> Linear`` predicting the next character at every step, trained
with ``rnnkit.train.Trainer`` on windows of 100 characters. Reports validation bits per
character against the unigram baseline (character frequencies alone), then generates text
with ``rnnkit.sample`` at temperatures from cautious (0.3: repetitive, common words) to wild
(1.3: invented words). For the long-running, resumable version see ``python -m rnnkit demo``.

    python examples/char_lm.py            # a few minutes on 2 cores
    python examples/char_lm.py --quick    # under a minute
    mpiexec -n 2 python examples/char_lm.py --distributed   # data-parallel over 2 ranks (MPI)
    python -m rnnkit sample char_lm.npz --prompt "My lord, "    # more text from the checkpoint
"""
from __future__ import annotations

import math

import numpy as np

from _shared import parser, report, save_checkpoint, setup

import rnnkit
from rnnkit import distributed, losses, nn, optim
from rnnkit.datasets import Vocab, shakespeare
from rnnkit.train import Trainer

WINDOW = 100


def _quiet(*args, **kwargs) -> None:
    """print's stand-in on the ranks other than 0."""


def main() -> None:
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--batch", type=int, default=32,
                   help="batch per rank: with --distributed the global batch is N times it")
    p.add_argument("--distributed", action="store_true",
                   help="train data-parallel over the ranks of mpiexec (needs rnnkit[mpi])")
    args = p.parse_args()
    if args.distributed:
        distributed.init()   # before setup: with k ranks per machine, cores / k threads each
    say = print if distributed.is_main() else _quiet
    start = setup(args, "char_lm")
    train_text, valid_text = shakespeare()
    valid_text = valid_text[:100_000]
    if args.quick:
        train_text, valid_text = train_text[:300_000], valid_text[:30_000]
        args.epochs, args.hidden = 4, 96
    vocab = Vocab.from_text(train_text, valid_text)
    ids, vids = vocab.encode(train_text), vocab.encode(valid_text)

    def rows(a: np.ndarray):
        n = (len(a) - 1) // WINDOW
        return (a[:n * WINDOW].reshape(n, WINDOW), a[1:n * WINDOW + 1].reshape(n, WINDOW))

    x, y = rows(ids)
    xv, yv = rows(vids)
    counts = np.bincount(ids, minlength=len(vocab)) + 1.0
    unigram = float(-np.log2(counts / counts.sum())[yv].mean())
    say(f"{ids.size:,} training characters, {vids.size:,} validation (held-out plays); "
          f"vocabulary {len(vocab)}; unigram baseline {unigram:.3f} bits/char", flush=True)

    model = nn.Sequential(nn.Embedding(len(vocab), 48, seed=args.seed),
                          nn.LSTM(48, args.hidden, batch_first=True, seed=args.seed + 1),
                          nn.Linear(args.hidden, len(vocab), seed=args.seed + 2))
    trainer = Trainer(model, losses.CrossEntropyLoss(),
                      optim.Adam(model.parameters(), lr=3e-3), clip_grad_norm=1.0,
                      seed=args.seed, distributed=args.distributed)
    trainer.fit(x, y, epochs=args.epochs, batch_size=args.batch, validation_data=(xv, yv))
    bpc = trainer.evaluate(xv, yv)["loss"] / math.log(2.0)
    if not trainer.is_main:
        return   # distributed: every rank holds the same model; rank 0 samples and saves
    print(f"validation {bpc:.3f} bits/char (unigram baseline {unigram:.3f})", flush=True)

    prompt = vocab.encode("The king ")
    for temperature in (0.3, 0.6, 1.0, 1.3):
        out = rnnkit.sample(*model, prompt, 200, temperature=temperature, seed=args.seed)
        print(f"\n--- temperature {temperature} ---\nThe king {vocab.decode(out)}", flush=True)
    print()
    result = {"example": "char_lm", "metric": "val_bpc", "value": bpc, "baseline": unigram,
              "higher_is_better": False}
    # "vocab": token id -> character, so `python -m rnnkit sample` can use this file too.
    save_checkpoint(model, args.out, {"vocab": vocab.itos, "example": "char_lm",
                                      "window": WINDOW, "result": result})
    report(result, start)


if __name__ == "__main__":
    main()
