"""Serving at small batches: the eval forward of one LSTM/GRU layer at DeepBench's inference
sizes, rnnkit against torch, ONNX Runtime and OpenVINO in float32, and int8 against int8
(issue 11).

    python -m benchmarks.serving [--sizes lstm:512 gru:1024 ...] [--batches 1 4]
        [--threads 1 2] [--steps 25] [--rounds 3] [--seconds 1.0]

Each problem is a single-layer unidirectional layer with biases, I = H, T steps, initial states
zero, float32, inference only. The ONNX peers run the file ``rnnkit.onnx.export`` writes for the
same layer (ONNX's own LSTM/GRU operators); OpenVINO is told ``INFERENCE_PRECISION_HINT=f32``
(it would otherwise compute in bfloat16 on CPUs that have it) and given its thread count. torch
runs ``nn.LSTM/GRU`` under ``no_grad`` with the same weights.

int8 peers: ``rnnkit-int8`` is ``rnnkit.quantize(layer)`` (per-channel int8 weights, per-row
dynamic activations); ``onnxruntime-int8`` runs the file through
``onnxruntime.quantization.quantize_dynamic`` (QInt8 weights: DynamicQuantizeLSTM for the LSTM;
ONNX Runtime has no int8 GRU, so its GRU stays float32 there); ``torch-int8`` is
``torch.ao.quantization.quantize_dynamic`` (qint8 LSTM and GRU). Their GB/s count one byte per
weight. ``rnnkit-bf16`` is ``rnnkit.quantize(layer, "bfloat16")`` (two bytes per weight; no
bfloat16 peer is timed here).

Every (peer, threads) times itself in its own process (thread pools of the peers spin and
distort each other in one process), the processes taking turns over the rounds; each round's
figure is the median of its samples, and the report gives the median over the rounds. Next to
the times: the GB/s of weights streamed (each step reads W_hh; W_ih is read once per call) and
rnnkit's speed-up over the fastest peer. Peers that are not installed are left out.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

if __package__ in (None, ""):  # run as a script: python benchmarks/serving.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from benchmarks.env import child_env, snapshot_source_tree  # noqa: E402

# DeepBench's inference-server recurrent sizes (hidden = input) that fit this suite's budget.
SIZES: Tuple[str, ...] = ("lstm:256", "lstm:512", "lstm:1024", "gru:512", "gru:1024")
PEERS: Tuple[str, ...] = ("rnnkit", "torch", "onnxruntime", "openvino", "rnnkit-int8",
                          "onnxruntime-int8", "torch-int8", "rnnkit-bf16")
INT8 = ("rnnkit-int8", "onnxruntime-int8", "torch-int8")
GATES = {"lstm": 4, "gru": 3}
SEED = 1234


def _layer(cell: str, hidden: int):
    import rnnkit.nn as nn
    return {"lstm": nn.LSTM, "gru": nn.GRU}[cell](hidden, hidden, seed=SEED).eval()


def _runner(peer: str, cell: str, hidden: int, batch: int, steps: int, threads: int,
            onnx_path: str):
    """A zero-argument callable that runs one forward of the problem with ``peer``."""
    x = np.random.default_rng(SEED).standard_normal((steps, batch, hidden)).astype(np.float32)
    if peer in ("rnnkit", "rnnkit-int8", "rnnkit-bf16"):
        import rnnkit
        rnnkit.set_num_threads(threads)
        layer = _layer(cell, hidden)
        if peer != "rnnkit":
            layer = rnnkit.quantize(layer, "int8" if peer == "rnnkit-int8" else "bfloat16")
        return lambda: layer(x)
    if peer in ("torch", "torch-int8"):
        import torch
        torch.set_num_threads(threads)
        if torch.get_num_interop_threads() != 1:   # settable once per process
            torch.set_num_interop_threads(1)
        module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](hidden, hidden).eval()
        module.load_state_dict({k: torch.from_numpy(v) for k, v in
                                _layer(cell, hidden).state_dict().items()})
        if peer == "torch-int8":
            module = torch.ao.quantization.quantize_dynamic(
                module, {torch.nn.LSTM, torch.nn.GRU}, dtype=torch.qint8)
        xt = torch.from_numpy(x)

        def run_torch():
            with torch.no_grad():
                return module(xt)
        return run_torch
    if peer in ("onnxruntime", "onnxruntime-int8"):
        import onnxruntime as ort
        if peer == "onnxruntime-int8":
            onnx_path = onnx_path.replace(".onnx", ".int8.onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda: session.run(None, {name: x})
    if peer == "openvino":
        import openvino as ov
        compiled = ov.Core().compile_model(onnx_path, "CPU", {
            "INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads,
            "PERFORMANCE_HINT": "LATENCY"})
        request = compiled.create_infer_request()
        return lambda: request.infer([x])
    raise ValueError(f"unknown peer {peer!r}")


def _worker(args: argparse.Namespace) -> None:
    """Time one peer on every problem for one round; print {problem: median ms} as JSON.
    Worker "export" writes the ONNX files of the sizes instead."""
    import time
    if args.worker == "export":
        import rnnkit.onnx
        for size in args.problems:
            cell, hidden = size.split(":")
            path = str(Path(args.onnx_dir) / f"{cell}{hidden}.onnx")
            rnnkit.onnx.export(_layer(cell, int(hidden)), path)
            if _available("onnxruntime"):
                from onnxruntime.quantization import QuantType, quantize_dynamic
                quantize_dynamic(path, path.replace(".onnx", ".int8.onnx"),
                                 weight_type=QuantType.QInt8)
        return
    out: Dict[str, float] = {}
    for key in args.problems:
        cell, hidden, batch = key.split(":")
        fn = _runner(args.worker, cell, int(hidden), int(batch), args.steps, args.threads[0],
                     str(Path(args.onnx_dir) / f"{cell}{hidden}.onnx"))
        for _ in range(3):
            fn()                                     # warm up: packing, plans, caches
        samples: List[float] = []
        deadline = time.perf_counter() + args.seconds
        while len(samples) < 5 or time.perf_counter() < deadline:
            t0 = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t0)
        out[key] = 1e3 * statistics.median(samples)
    print(json.dumps(out))


def _available(peer: str) -> bool:
    import importlib.util
    base = peer.split("-")[0]
    return base == "rnnkit" or importlib.util.find_spec(base) is not None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or "unknown CPU"


def weight_gbs(cell: str, hidden: int, steps: int, ms: float, nbytes: int = 4) -> float:
    """GB/s of weights read (nbytes per weight): W_hh at every step, W_ih once (I = H)."""
    g = GATES[cell]
    return nbytes * g * hidden * hidden * (steps + 1) / (ms * 1e-3) / 1e9


def main(argv: Optional[Sequence[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), help="cell:hidden, e.g. lstm:512")
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 4])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=1.0, help="sampling time per problem")
    ap.add_argument("--peers", nargs="+", default=list(PEERS))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--problems", nargs="*", help=argparse.SUPPRESS)
    ap.add_argument("--onnx-dir", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        _worker(args)
        return
    for size in args.sizes:
        cell, _, hidden = size.partition(":")
        if cell not in GATES or not hidden.isdigit():
            ap.error(f"--sizes: {size!r} is not cell:hidden with cell lstm or gru")
    peers = [p for p in args.peers if _available(p)]
    problems = [f"{s}:{b}" for s in args.sizes for b in args.batches]
    snapshot = snapshot_source_tree()
    with tempfile.TemporaryDirectory() as onnx_dir:
        if any(p.startswith(("onnxruntime", "openvino")) for p in peers):
            # rnnkit is imported only in child processes (from the source snapshot).
            subprocess.run([sys.executable, "-m", "benchmarks.serving", "--worker", "export",
                            "--onnx-dir", onnx_dir, "--problems", *args.sizes],
                           check=True, env=child_env(1, snapshot))
        results: Dict[Tuple[str, int], List[Dict[str, float]]] = {}
        for r in range(args.rounds):
            for threads in args.threads:
                for peer in peers:
                    cmd = [sys.executable, "-m", "benchmarks.serving", "--worker", peer,
                           "--threads", str(threads), "--steps", str(args.steps),
                           "--seconds", str(args.seconds), "--onnx-dir", onnx_dir,
                           "--problems", *problems]
                    done = subprocess.run(cmd, capture_output=True, text=True,
                                          env=child_env(threads, snapshot))
                    if done.returncode != 0:
                        print(f"{peer} ({threads} threads) failed:\n{done.stderr[-2000:]}",
                              file=sys.stderr)
                        continue
                    results.setdefault((peer, threads), []).append(
                        json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    print(f"{_cpu_model()}; eval forward, T={args.steps}, I=H, median ms of "
          f"{args.rounds} rounds (each peer in its own process); GB/s = weights read")
    for threads in args.threads:
        header = (f"{'problem':<16}" + "".join(f"{p:>22}" for p in peers) +
                  "  rnnkit vs best fp32 peer, rnnkit-int8 vs best int8 peer")
        print(f"\n{threads} thread(s)\n{header}")
        for key in problems:
            cell, hidden, batch = key.split(":")
            row, times = f"{cell} H{hidden} B{batch}".ljust(16), {}
            for peer in peers:
                rounds = [res[key] for res in results.get((peer, threads), []) if key in res]
                if not rounds:
                    row += f"{'-':>22}"
                    continue
                ms = statistics.median(rounds)
                times[peer] = ms
                nbytes = 1 if peer in INT8 else 2 if peer == "rnnkit-bf16" else 4
                gbs = weight_gbs(cell, int(hidden), args.steps, ms, nbytes)
                row += f"{ms:>9.3f} ms {gbs:>5.1f} GB/s"
            for ours in ("rnnkit", "rnnkit-int8"):
                group = INT8 if ours == "rnnkit-int8" else tuple(
                    p for p in PEERS if p not in INT8 and p != "rnnkit-bf16")
                others = [v for p, v in times.items() if p in group and p != ours]
                if ours in times and others:
                    row += f"  {min(others) / times[ours]:.2f}x"
            print(row)


if __name__ == "__main__":
    main()
