"""The program the distributed tests launch, under ``mpiexec -n N`` or as one plain process.

``python mpi_worker.py SCENARIO OUT_DIR [JSON_OPTIONS]``: builds a small model on fixed random
data, trains it with ``Trainer`` (``distributed=True`` under mpiexec) and writes what the test
compares to ``OUT_DIR/rank{r}.npz``: the final parameters, the History and the stop reason.

Scenarios:
- ``train``: plain training (options: dtype, cell, batch, epochs, optimizer, lengths, tbptt,
  n, ignore, checkpoint, resume, stop_rank, stop_epoch, reduction, bucket_bytes, jitter:
  each rank sleeps a random 0-2 ms after each layer's backward, so ranks reach their buckets
  at different moments).
- ``kill``: rank 1 kills itself with SIGKILL in its third step.
- ``raise``: rank 1 raises in its third step.
- ``stall``: rank 1 sleeps in its third step, far longer than the collectives' timeout.
- ``interrupt``: trains until stopped by Ctrl-C (prints "training" first).
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time

import numpy as np

import rnnkit
from rnnkit import distributed, losses, nn, optim
from rnnkit.train import Callback, ModelCheckpoint, Trainer

V = 11


class _Misbehave(Callback):
    """Makes one rank fail in one of the ways the failure tests need."""

    def __init__(self, scenario: str, stop_rank: int = -1, stop_epoch: int = -1) -> None:
        self.scenario, self.stop_rank, self.stop_epoch = scenario, stop_rank, stop_epoch

    def on_after_backward(self, trainer, batch):
        if distributed.rank() != 1 or trainer.global_step != 2:
            return
        if self.scenario == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if self.scenario == "raise":
            raise RuntimeError("rank 1 fails on purpose")
        if self.scenario == "stall":
            time.sleep(600)

    def on_epoch_end(self, trainer, epoch, logs):
        if distributed.rank() == self.stop_rank and epoch == self.stop_epoch:
            trainer.stop_training = True
            trainer.stop_reason = f"stopped by rank {self.stop_rank}"


def data(opts):
    rng = np.random.default_rng(123)
    n, t = opts.get("n", 61), 12
    x = rng.integers(0, V, (n, t))
    y = rng.integers(0, V, (n, t))
    if opts.get("ignore"):
        y[rng.random((n, t)) < 0.3] = -100   # uneven counted targets between ranks
    lengths = rng.integers(1, t + 1, n) if opts.get("lengths") else None
    return x, y, lengths


def model_for(opts):
    dtype = opts.get("dtype", "float32")
    cell = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[opts.get("cell", "lstm")]
    return nn.Sequential(nn.Embedding(V, 6, seed=1, dtype=dtype),
                         cell(6, 10, batch_first=True, seed=2, dtype=dtype),
                         nn.GRU(10, 8, batch_first=True, seed=3, dtype=dtype),
                         nn.Linear(8, V, seed=4, dtype=dtype))


def main() -> None:
    scenario, out = sys.argv[1], sys.argv[2]
    opts = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    rnnkit.set_num_threads(1)
    under_mpi = opts.get("distributed", True)
    if under_mpi:
        distributed.init(timeout=opts.get("timeout", 60))
    x, y, lengths = data(opts)
    model = model_for(opts)
    if opts.get("rank_seed") and under_mpi:   # different inits: rank 0's must win
        for p in model.parameters():
            p.data += distributed.rank()
    params = model.parameters()
    opt = optim.Adam(params, lr=1e-2) if opts.get("optimizer", "adam") == "adam" \
        else optim.SGD(params, lr=0.5, momentum=0.9)
    dist = under_mpi
    if under_mpi and opts.get("bucket_bytes"):
        dist = distributed.DataParallel(model, bucket_bytes=opts["bucket_bytes"])
    if opts.get("jitter"):
        jitter = np.random.default_rng(distributed.rank() + 7)
        model.register_layer_backward_hook(lambda i, layer: time.sleep(jitter.random() * 2e-3))
    loss = losses.CrossEntropyLoss(reduction=opts.get("reduction", "mean"))
    trainer = Trainer(model, loss, opt, clip_grad_norm=0.5,
                      distributed=dist)
    if opts.get("resume"):
        trainer = rnnkit.load(opts["resume"], into=trainer)
    callbacks = [_Misbehave(scenario, opts.get("stop_rank", -1), opts.get("stop_epoch", -1))]
    checkpoint = ModelCheckpoint(opts["checkpoint"], monitor="loss") \
        if opts.get("checkpoint") else None
    if checkpoint is not None:
        callbacks.append(checkpoint)
    epochs = opts.get("epochs", 2)
    if scenario == "interrupt":
        epochs = 10_000
        print("training", flush=True)
    history = trainer.fit(x, y, lengths=lengths, epochs=epochs,
                          batch_size=opts.get("batch", 8), tbptt=opts.get("tbptt"),
                          validation_data=(x[:17], y[:17]), callbacks=callbacks, verbose=0)
    result = {k: v.data for k, v in model.named_parameters()}
    result.update({f"history_{k}": np.array(v) for k, v in history.history.items()})
    result["stop_reason"] = np.array(history.stop_reason or "")
    result["global_step"] = np.array(trainer.global_step)
    buckets = trainer.distributed.buckets if trainer.distributed is not None else None
    result["bucket_timings"] = np.array([] if buckets is None else
                                        [buckets.last_wait_s, buckets.last_comm_s,
                                         buckets.last_overlap_s])
    result["checkpoints_written"] = np.array(0 if checkpoint is None else len(checkpoint.saved))
    np.savez(os.path.join(out, f"rank{distributed.rank()}.npz"), **result)


if __name__ == "__main__":
    main()
