"""Unsegmented sequence recognition with CTC: reading strings of handwritten digits.

Data: ``rnnkit.datasets.digit_strings()``: 3 to 8 of scikit-learn's 8x8 handwritten digit
images side by side with random gaps, read column by column (the OCR analogue of speech
recognition: frames in, a label string out, no alignment given). Test strings are built from
images no training string uses (the file has no writer ids, so the split is by image, in
contiguous blocks). Model: a bidirectional LSTM over the columns, a Linear layer to 11 classes
(blank + 10 digits) and LogSoftmax, trained with ``rnnkit.losses.CTCLoss``; decoded greedily and
by CTC prefix beam search. Reports the test character error rate (edit distance / reference
length) against the better of two trivial readers: the empty string, and the most frequent
digit repeated the most frequent number of times.

    python examples/ocr_ctc.py            # the README's figures (a few minutes on 2 cores)
    python examples/ocr_ctc.py --quick    # well under a minute
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from _shared import parser, report, save_checkpoint, setup

from rnnkit import ctc, losses, nn, optim
from rnnkit.datasets import digit_strings
from rnnkit.train.progress import Progress

BLANK = 0          # class 0 is CTC's blank; digit d is class d + 1
WINDOW = 3         # each frame: a column and its two neighbours (as speech stacks frames)


def frames(columns: np.ndarray) -> np.ndarray:
    """(N, W, 8) columns -> (W, N, 8 * WINDOW) time-major frames, zero beyond the edges."""
    half = WINDOW // 2
    padded = np.pad(columns, ((0, 0), (half, half), (0, 0)))
    stacked = np.concatenate([padded[:, k:k + columns.shape[1]] for k in range(WINDOW)], axis=2)
    return np.ascontiguousarray(stacked.transpose(1, 0, 2))


def main() -> None:
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--hidden", type=int, default=96)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--train-strings", type=int, default=12000)
    p.add_argument("--beam", type=int, default=8)
    args = p.parse_args()
    start = setup(args, "ocr_ctc")
    if args.quick:
        args.epochs, args.hidden, args.layers, args.train_strings = 5, 48, 1, 3000
    train, test = digit_strings(args.train_strings, 1000, seed=args.seed)
    print(f"{len(train.labels)} training and {len(test.labels)} test strings of 3-8 digits, "
          f"{train.columns.shape[1]} columns at most", flush=True)

    model = nn.Sequential(
        nn.LSTM(8 * WINDOW, args.hidden, args.layers, bidirectional=True, seed=args.seed),
        nn.Linear(2 * args.hidden, 11, seed=args.seed + 1),
        nn.LogSoftmax())
    loss_fn = losses.CTCLoss(blank=BLANK)
    params = list(model.parameters())
    # A high rate gets CTC off its plateau (all blanks) within a few hundred steps.
    opt = optim.Adam(params, lr=1e-2 if args.quick else 5e-3)
    schedule = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)
    rng = np.random.default_rng(args.seed + 2)
    batch_size = 16
    n = len(train.labels)
    for epoch in range(args.epochs):
        model.train()
        progress = Progress(n, epoch, args.epochs, verbose=1, unit="strings")
        total = 0.0
        order = rng.permutation(n)
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size]
            widths = train.widths[idx]
            x = frames(train.columns[idx, :widths.max()])
            labels = [train.labels[j] + 1 for j in idx]
            target_lengths = np.array([len(t) for t in labels])
            opt.zero_grad()
            log_probs = model(x, lengths=widths)                # (W, B, 11), time-major
            loss = loss_fn(log_probs, np.concatenate(labels), widths, target_lengths)
            model.backward(loss_fn.backward())
            optim.clip_grad_norm_(params, 5.0)
            opt.step()
            total += loss * len(idx)
            progress.update(len(idx), {"loss": total / min(i + batch_size, n)})
        schedule.step()
        progress.close({"loss": total / n})

    model.eval()
    log_probs = model(frames(test.columns), lengths=test.widths)
    refs = [list(t + 1) for t in test.labels]
    greedy = ctc.greedy_decode(log_probs, test.widths, blank=BLANK)
    beam = ctc.prefix_beam_search(log_probs, test.widths, beam_width=args.beam, blank=BLANK)
    cer_greedy = ctc.character_error_rate(greedy, refs)
    cer_beam = ctc.character_error_rate(beam, refs)
    exact = float(np.mean([h == r for h, r in zip(beam, refs)]))
    digit = Counter(int(d) for t in train.labels for d in t).most_common(1)[0][0]
    length = Counter(len(t) for t in train.labels).most_common(1)[0][0]
    # The better of two trivial readers: nothing at all (100%), or a constant string.
    cer_const = ctc.character_error_rate([[digit + 1] * length] * len(refs), refs)
    cer_base = min(1.0, cer_const)
    print(f"test character error rate: beam {args.beam} {100 * cer_beam:.2f}%, greedy "
          f"{100 * cer_greedy:.2f}%; strings read exactly: {100 * exact:.1f}%; baselines: "
          f"empty 100%, '{digit}' x {length} {100 * cer_const:.2f}%", flush=True)
    for h, r in list(zip(beam, refs))[:5]:
        print(f"  read {''.join(str(c - 1) for c in h):>8s}   truth "
              f"{''.join(str(c - 1) for c in r)}")
    result = {"example": "ocr_ctc", "metric": "test_character_error_rate", "value": cer_beam,
              "baseline": cer_base, "higher_is_better": False, "greedy": cer_greedy,
              "exact": exact}
    save_checkpoint(model, args.out, {"blank": BLANK, "classes": "blank, then digits 0-9",
                                      "input": f"{WINDOW} columns of 8 pixels in [0, 1] per frame, "
                                               "time-major (see frames())",
                                      "example": "ocr_ctc", "result": result})
    report(result, start)


if __name__ == "__main__":
    main()
