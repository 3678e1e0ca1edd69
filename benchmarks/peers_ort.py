"""ONNX Runtime peer for the inference forward: the torch layer exported with torch.onnx.export.

The exported graph takes x only (h0 = zeros, as for every peer) and returns y and the final
state(s). Import this module only when onnxruntime and torch are installed.
"""
from __future__ import annotations

import os
import warnings
from typing import Callable

import onnxruntime as ort
import torch

from benchmarks import peers_torch
from benchmarks.configs import cell_spec
from benchmarks.problems import Arrays, Problem


def version() -> str:
    return ort.__version__


def export(p: Problem, directory: str) -> str:
    """Export ``p``'s torch layer to ``directory`` and return the .onnx path.

    ``dynamo=False`` selects the TorchScript exporter: the default (dynamo) exporter needs the
    extra ``onnxscript`` package, and both produce the fused ONNX LSTM/GRU/RNN operators here.
    The shapes are fixed to the benchmark's, which is all ORT is asked to run.
    """
    layer = peers_torch.make_layer(p).eval()
    names = ["y", *cell_spec(p.cell).state_n_names]
    path = os.path.join(directory, f"{p.cfg.name}_{p.cell}.onnx")
    with warnings.catch_warnings():
        # torch warns that a batch size other than 1 is baked into the graph: intended here.
        warnings.simplefilter("ignore")
        torch.onnx.export(layer, (torch.from_numpy(p.x),), path, input_names=["x"],
                          output_names=names, dynamo=False)
    return path


def forward(p: Problem, path: str, threads: int) -> Callable[[], Arrays]:
    """An ORT session on ``threads`` intra-op threads, default graph optimisations."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # ORT's workers otherwise spin between calls, and in this shared process they keep a core
    # from whoever runs next: measured 2x slower rnnkit 2-thread forwards with ORT loaded.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    feed = {"x": p.x}

    def run() -> Arrays:
        outs = dict(zip(names, session.run(None, feed)))
        # ONNX RNN ops return y as (T, num_directions, B, H) and states as (1, B, H); torch's
        # exporter squeezes y back to (T, B, H).
        res = {"y": outs["y"]}
        for name in names[1:]:
            res[name] = outs[name][0]
        return res
    return run
