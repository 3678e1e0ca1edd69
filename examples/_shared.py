"""Small pieces every example uses: argument defaults, checkpoints, the RESULT line.

Not part of the library: the examples import it as a sibling module (they run as scripts).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Dict, Optional

try:
    import rnnkit
except ImportError:
    # Not installed: run from a source checkout (after `bash .ci/dev-build`) via ../python.
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir,
                                    "python"))
    import rnnkit


def parser(description: str) -> argparse.ArgumentParser:
    """The options every example shares: --quick, --threads, --out, --seed."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true",
                   help="a small, fast run (under a minute; what CI runs)")
    p.add_argument("--threads", type=int, help="kernel threads (default: all cores)")
    p.add_argument("--out", help="checkpoint path (default: <example>.npz in the current "
                                 "directory)")
    p.add_argument("--seed", type=int, default=0)
    return p


def setup(args: argparse.Namespace, name: str) -> float:
    """Apply --threads, default --out; returns the start time."""
    if args.threads:
        rnnkit.set_num_threads(args.threads)
    if not args.out:
        args.out = f"{name}{'-quick' if args.quick else ''}.npz"
    return time.perf_counter()


def save_checkpoint(model: "rnnkit.nn.Module", path: str,
                    metadata: Optional[Dict[str, Any]] = None) -> None:
    """Save the model with ``rnnkit.save``, ``metadata`` (what using it needs: the
    vocabulary, the label names, the input scaling) stored with it.

    ``rnnkit.load(path)`` then returns the model and ``rnnkit.load_metadata(path)`` the
    metadata, as for the model of ``python -m rnnkit demo``; a character model whose metadata
    has ``"vocab"`` also works with ``python -m rnnkit sample``.
    """
    rnnkit.save(model, path, metadata=metadata)
    print(f"saved {path}", flush=True)


def report(result: Dict[str, Any], start: float) -> None:
    """Print the machine-readable last line the tests parse: ``RESULT {json}``."""
    result = dict(result, seconds=round(time.perf_counter() - start, 1))
    print("RESULT " + json.dumps(result), flush=True)
