"""Many-to-many: restore capitalisation and punctuation in Shakespeare, one tag per character.

Data: ``rnnkit.datasets.capitalisation_tagging`` turns the plays into lowercase text without
punctuation and, for each character, a tag = (upper or lower case, the mark that followed
it: none , . ? ! : ;). Training text and validation text are different plays. Model: a
character ``Embedding`` and a bidirectional 2-layer LSTM (a tag depends on what comes next:
a full stop is decided by the capital after it), with a ``Linear`` head over the 14 tags.
Spaces are always (lower, none), so they are left out of the loss (``ignore_index``) and of
the metrics. Reports per-class F1 against the trivial tagger (always lowercase, no
punctuation), whose F1 is 0 for every class.

    python examples/tagging.py            # a few minutes on 2 cores
    python examples/tagging.py --quick    # under a minute
"""
from __future__ import annotations

from typing import Dict

import numpy as np

from _shared import parser, report, save_checkpoint, setup

from rnnkit import losses, nn, optim
from rnnkit.datasets import (CASES, PUNCTUATION, Vocab, capitalisation_tagging, restore_text,
                             shakespeare)
from rnnkit.train import Trainer

IGNORE = -100


def windows(tagged, vocab: Vocab, width: int):
    """Cut the tagged text into rows of ``width`` characters: (x, y) with spaces ignored."""
    x = vocab.encode(tagged.text)
    y = np.where(tagged.mask, tagged.labels, IGNORE)
    n = len(x) // width
    return x[:n * width].reshape(n, width), y[:n * width].reshape(n, width)


def f1_scores(pred_case, pred_punct, case, punct) -> Dict[str, float]:
    """F1 of "upper" and of each punctuation mark, each as a one-vs-rest detection."""
    def f1(p: np.ndarray, t: np.ndarray) -> float:
        denom = p.sum() + t.sum()
        return float(2.0 * (p & t).sum() / denom) if denom else 0.0
    scores = {"upper": f1(pred_case == 1, case == 1)}
    for i, mark in enumerate(PUNCTUATION[1:], start=1):
        scores[mark] = f1(pred_punct == i, punct == i)
    return scores


def main() -> None:
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--batch", type=int, default=32)
    args = p.parse_args()
    start = setup(args, "tagging")
    train_text, valid_text = shakespeare()
    if args.quick:
        train_text, valid_text = train_text[:400_000], valid_text[:50_000]
        args.epochs, args.hidden, args.layers, args.batch = 4, 64, 1, 16
    else:
        # 1.5 million characters (a third of the plays) keep a full run to a few minutes.
        train_text, valid_text = train_text[:1_500_000], valid_text[:200_000]
    train_tags, valid_tags = capitalisation_tagging(train_text), capitalisation_tagging(valid_text)
    vocab = Vocab.from_text(train_tags.text, valid_tags.text)
    x, y = windows(train_tags, vocab, 128)
    xv, yv = windows(valid_tags, vocab, 128)
    n_tags = len(CASES) * len(PUNCTUATION)
    print(f"{x.size:,} training characters, {xv.size:,} validation characters; input "
          f"alphabet {len(vocab)}, {n_tags} tags", flush=True)

    model = nn.Sequential(
        nn.Embedding(len(vocab), 32, seed=args.seed),
        nn.LSTM(32, args.hidden, num_layers=args.layers, batch_first=True, bidirectional=True,
                seed=args.seed + 1),
        nn.Linear(2 * args.hidden, n_tags, seed=args.seed + 2))
    trainer = Trainer(model, losses.CrossEntropyLoss(ignore_index=IGNORE),
                      optim.Adam(model.parameters(), lr=5e-3), clip_grad_norm=5.0,
                      seed=args.seed)
    trainer.fit(x, y, epochs=args.epochs, batch_size=args.batch, validation_data=(xv, yv))

    pred = trainer.predict(xv).argmax(axis=-1)          # (N, T) combined tags
    keep = yv != IGNORE
    true = yv[keep]
    guess = pred[keep]
    k = len(PUNCTUATION)
    scores = f1_scores(guess // k, guess % k, true // k, true % k)
    macro = float(np.mean(list(scores.values())))
    # Headline: F1 over every tag that is not the trivial (lower, none), pooled; the common
    # tags (capitals, commas, full stops) dominate it, where macro-F1 weighs the rare ones
    # (! : ;) equally.
    hit = (guess == true) & (true != 0)
    denom = (guess != 0).sum() + (true != 0).sum()
    micro = float(2.0 * hit.sum() / denom) if denom else 0.0
    acc = float(np.mean(guess == true))
    base_acc = float(np.mean(true == 0))                # always (lower, none)
    print("per-class F1 (validation plays; the trivial tagger scores 0 on each):")
    for name, v in scores.items():
        print(f"  {name or 'none':>6}  {v:.3f}")
    print(f"F1 over all non-trivial tags {micro:.3f}, macro-F1 {macro:.3f} (trivial: 0.000 "
          f"each); tag accuracy {acc:.3f} (trivial: "
          f"{base_acc:.3f})", flush=True)
    demo = valid_tags.text[:300]
    tags = pred.reshape(-1)[:300]
    print("\ninput:    " + demo + "\nrestored: " + restore_text(demo, tags // k, tags % k),
          flush=True)
    result = {"example": "tagging", "metric": "tag_f1", "value": micro, "baseline": 0.0,
              "macro_f1": macro, "higher_is_better": True, "f1": scores, "accuracy": acc,
              "baseline_accuracy": base_acc}
    # Tag t = case index * len(punctuation) + mark index; rnnkit.datasets.restore_text
    # applies them.
    save_checkpoint(model, args.out, {"vocab": vocab.itos, "cases": list(CASES),
                                      "punctuation": list(PUNCTUATION), "example": "tagging",
                                      "result": result})
    report(result, start)


if __name__ == "__main__":
    main()
