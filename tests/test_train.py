"""rnnkit.train: Trainer.fit / evaluate / predict, metrics, callbacks, progress output,
clipping, non-finite guard, Ctrl-C, truncated BPTT and resuming from checkpoints.

References are independent of the trainer: numpy metrics, manual training loops over the
layers' own forward/backward, numpy norms, and (optionally) torch.
"""

import os
import signal

import numpy as np
import pytest

import rnnkit
from rnnkit import losses, nn, optim
from rnnkit.optim.lr_scheduler import StepLR
from rnnkit.train import Callback, EarlyStopping, History, ModelCheckpoint, Trainer

from _train_helpers import (Recorder, ScriptedMetric, assert_params_differ,
                            assert_params_equal, class_data, class_model, make_trainer,
                            params, reg_data, reg_model, token_data, token_model)


# ============================================================================ helpers


def np_cross_entropy(logits, target, ignore_index=-100):
    """Mean CE over non-ignored targets, classes on the last axis (float64 numpy)."""
    z = logits.astype(np.float64).reshape(-1, logits.shape[-1])
    t = np.asarray(target).reshape(-1)
    keep = t != ignore_index
    z, t = z[keep], t[keep]
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(t)), t].mean())


def np_accuracy(logits, target, ignore_index=-100):
    t = np.asarray(target)
    keep = t != ignore_index
    return float((logits.argmax(-1) == t)[keep].mean())


class IdProbe(nn.Module):
    """x (N, 1) holds sample ids; records the ids of every training batch."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(1, 1, dtype="float64", seed=0)
        self.seen = []

    def forward(self, x):
        if self.training:
            self.seen.append(x[:, 0].astype(int).tolist())
        return self.lin(x)

    def backward(self, dy):
        return self.lin.backward(dy)


class BadLoss:
    """MSELoss whose value is `bad` on chosen calls (1-based), or whose gradient is."""

    def __init__(self, bad_calls, bad=float("nan"), where="loss"):
        self.inner, self.bad_calls, self.bad, self.where = losses.MSELoss(), set(bad_calls), \
            bad, where
        self.calls = 0

    def __call__(self, pred, y):
        self.calls += 1
        value = float(self.inner(pred, y))
        if self.where == "loss" and self.calls in self.bad_calls:
            return self.bad
        return value

    def backward(self):
        g = self.inner.backward()
        if self.where == "grad" and self.calls in self.bad_calls:
            g = g.copy()
            g.flat[0] = self.bad
        return g


# ============================================================================ fit basics


def test_fit_classification_loss_falls_and_history_contents():
    x, y = class_data(n=48)
    xv, yv = class_data(n=20, seed=1)
    model = class_model()
    tr = Trainer(model, losses.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=0.03))
    hist = tr.fit(x, y, epochs=12, batch_size=8, validation_data=(xv, yv), verbose=0)
    assert isinstance(hist, History)
    assert set(hist.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 12 for v in hist.history.values())
    assert hist.epochs == list(range(12))
    assert hist.stop_reason is None and tr.epoch == 12 and tr.global_step == 12 * 6
    assert hist.history["loss"][-1] < 0.6 * hist.history["loss"][0]
    assert all(0.0 <= a <= 1.0 for a in hist.history["accuracy"])
    # validation metrics are those of the model after the epoch: for the last epoch, the
    # final model. Checked against numpy on predict's output.
    logits = model.eval()(xv)
    model.train()
    assert hist.history["val_loss"][-1] == pytest.approx(np_cross_entropy(logits, yv), rel=1e-5)
    assert hist.history["val_accuracy"][-1] == pytest.approx(np_accuracy(logits, yv), abs=1e-12)
    assert hist.history["val_accuracy"][-1] > 0.6


def test_fit_regression_has_no_accuracy():
    x, y = reg_data()
    tr = make_trainer(reg_model(), lr=0.1)
    hist = tr.fit(x, y, epochs=5, batch_size=5, verbose=0)
    assert set(hist.history) == {"loss"}
    assert hist.history["loss"][-1] < hist.history["loss"][0]


def test_training_accuracy_with_ignore_index_matches_numpy():
    # lr = 0: the parameters never move, so the epoch's training metrics are those of the
    # initial model over the whole data (one batch), which numpy computes independently.
    x, y = token_data(n=12, ignore_frac=0.3, ignore_index=3)
    model = token_model()
    tr = Trainer(model, losses.CrossEntropyLoss(ignore_index=3),
                 optim.SGD(model.parameters(), lr=0.0))
    logits = model(x)
    hist = tr.fit(x, y, epochs=1, batch_size=len(x), verbose=0, shuffle=False)
    assert hist.history["accuracy"][0] == pytest.approx(np_accuracy(logits, y, 3), abs=1e-12)
    assert hist.history["loss"][0] == pytest.approx(np_cross_entropy(logits, y, 3), rel=1e-5)


def test_evaluate_matches_numpy_and_does_not_depend_on_batch_size():
    # Per-step targets with ignored positions, so batches hold different numbers of counted
    # targets: the dataset's mean loss / accuracy is over all counted targets, whatever the
    # batch size used to compute it.
    x, y = token_data(n=13, ignore_frac=0.5, seed=3)
    y[:4] = -100                 # the first batches count (almost) nothing
    y[0, 0] = 1
    model = token_model()
    tr = Trainer(model, losses.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1))
    logits = model.eval()(x)
    model.train()
    ref = {"loss": np_cross_entropy(logits, y), "accuracy": np_accuracy(logits, y)}
    whole = tr.evaluate(x, y, batch_size=100)
    assert whole["loss"] == pytest.approx(ref["loss"], rel=1e-5)
    assert whole["accuracy"] == pytest.approx(ref["accuracy"], abs=1e-12)
    small = tr.evaluate(x, y, batch_size=4)
    assert small["loss"] == pytest.approx(ref["loss"], rel=1e-5)
    assert small["accuracy"] == pytest.approx(ref["accuracy"], abs=1e-12)


def test_predict_batched_equals_whole_and_restores_mode():
    x, _ = class_data(n=11)
    model = nn.Sequential(nn.GRU(3, 8, batch_first=True, seed=0), nn.Dropout(0.5, seed=1),
                          nn.Last(batch_first=True), nn.Linear(8, 3, seed=2))
    tr = Trainer(model, losses.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1))
    lengths = np.array([5, 1, 3, 4, 5, 2, 5, 0, 1, 3, 5])
    out = tr.predict(x, batch_size=3, lengths=lengths)
    assert model.training, "predict must restore training mode"
    model.eval()
    ref = model(x, lengths=lengths)
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-7)
    assert out.shape == (11, 3)


def test_batches_cover_every_sample_once_per_epoch_and_shuffle_is_seeded():
    n = 23
    x = np.arange(n, dtype=np.float64)[:, None]
    y = np.zeros((n, 1))

    def run(seed, shuffle=True, epochs=3):
        probe = IdProbe()
        tr = Trainer(probe, losses.MSELoss(), optim.SGD(probe.parameters(), lr=0.0), seed=seed)
        tr.fit(x, y, epochs=epochs, batch_size=5, shuffle=shuffle, verbose=0)
        return probe.seen

    seen = run(seed=7)
    assert len(seen) == 3 * 5
    assert [len(b) for b in seen[:5]] == [5, 5, 5, 5, 3]
    epochs = [sum(seen[e * 5:(e + 1) * 5], []) for e in range(3)]
    for ids in epochs:
        assert sorted(ids) == list(range(n)), "each sample exactly once per epoch"
    assert epochs[0] != list(range(n)) and epochs[0] != epochs[1], "shuffled, anew each epoch"
    assert run(seed=7) == seen, "same seed, same order"
    assert run(seed=8) != seen, "another seed, another order"
    assert sum(run(seed=7, shuffle=False, epochs=1), []) == list(range(n))


def test_fit_epochs_counts_this_calls_epochs():
    # Keras semantics (issue 16): a second fit trains `epochs` more, numbering on; only the
    # first fit after a restore counts to a total (see the resume tests below).
    x, y = reg_data()
    tr = make_trainer(reg_model())
    tr.fit(x, y, epochs=2, batch_size=10, verbose=0)
    hist = tr.fit(x, y, epochs=3, batch_size=10, verbose=0)
    assert tr.epoch == 5 and hist.epochs == [2, 3, 4] and len(hist.history["loss"]) == 3


# ============================================================================ bad arguments


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(batch_size=0), "batch_size"),
    (dict(batch_size=-3), "batch_size"),
    (dict(tbptt=0), "tbptt"),
    (dict(lengths=np.array([3, 3])), "lengths"),
])
def test_fit_bad_arguments(kwargs, pattern):
    x, y = reg_data(n=6)
    tr = make_trainer(reg_model())
    args = dict(epochs=1, batch_size=2, verbose=0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=pattern):
        tr.fit(x, y, **args)
    assert tr.global_step == 0


def test_fit_mismatched_x_y_names_them():
    x, y = reg_data(n=6)
    tr = make_trainer(reg_model())
    with pytest.raises(ValueError, match=r"\bx\b.*\by\b"):
        tr.fit(x, y[:5], epochs=1, batch_size=2, verbose=0)


def test_tbptt_needs_per_step_targets():
    x, y = class_data(n=6)
    tr = Trainer(class_model(), losses.CrossEntropyLoss(),
                 optim.SGD(class_model().parameters(), lr=0.1))
    with pytest.raises(ValueError, match="tbptt"):
        tr.fit(x, y, epochs=1, batch_size=2, tbptt=2, verbose=0)


def test_bad_validation_data_is_rejected_before_training():
    # A mistake in validation_data must not cost an epoch of training first, and the error
    # must say which argument is wrong.
    x, y = reg_data(n=6)
    model = reg_model()
    before = params(model)
    tr = make_trainer(model)
    with pytest.raises(ValueError, match="validation_data"):
        tr.fit(x, y, epochs=1, batch_size=2, validation_data=(x, y[:4]), verbose=0)
    assert tr.global_step == 0
    assert_params_equal(params(model), before)


@pytest.mark.parametrize("method", ["evaluate", "predict"])
def test_evaluate_predict_bad_batch_size(method):
    x, y = reg_data(n=6)
    tr = make_trainer(reg_model())
    args = (x, y) if method == "evaluate" else (x,)
    with pytest.raises(ValueError, match="batch_size"):
        getattr(tr, method)(*args, batch_size=0)


def test_trainer_rejects_bad_clip():
    with pytest.raises(ValueError, match="clip_grad_norm"):
        make_trainer(reg_model(), clip=0.0)


# ============================================================================ callbacks


def test_callback_hooks_in_order_and_stop_training():
    x, y = reg_data(n=10)
    rec = Recorder()

    class StopAfterSecond(Callback):
        def on_batch_end(self, trainer, batch, logs):
            assert set(logs) == {"loss"}

        def on_epoch_end(self, trainer, epoch, logs):
            if epoch == 1:
                trainer.stop_training = True

    tr = make_trainer(reg_model())
    hist = tr.fit(x, y, epochs=5, batch_size=4, validation_data=(x, y), verbose=0,
                  callbacks=[rec, StopAfterSecond()])
    epoch = lambda e: [("epoch_begin", e), ("batch_end", 0), ("batch_end", 1),  # noqa: E731
                       ("batch_end", 2), ("epoch_end", e)]
    assert rec.calls == [("train_begin",)] + epoch(0) + epoch(1) + [("train_end",)]
    assert tr.epoch == 2 and len(hist.history["loss"]) == 2
    assert set(rec.epoch_logs[0]) == {"loss", "val_loss"}
    assert rec.epoch_logs[1]["val_loss"] == hist.history["val_loss"][1]


def _es_run(values, **kw):
    x, y = reg_data(n=8)
    model = reg_model()
    rec = Recorder()
    es = EarlyStopping(monitor="val_loss", **kw)
    tr = make_trainer(model)
    hist = tr.fit(x, y, epochs=len(values), batch_size=4, validation_data=(x, y), verbose=0,
                  callbacks=[ScriptedMetric("val_loss", values), rec, es])
    return tr, hist, rec, es, model


def test_early_stopping_patience_counts_epochs_without_improvement():
    # Keras semantics ("number of epochs with no improvement after which training will be
    # stopped"): best at epoch 1, then epochs 2 and 3 do not improve -> stop after epoch 3.
    tr, hist, _, es, _ = _es_run([1.0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0], patience=2)
    assert tr.epoch == 4, f"ran {tr.epoch} epochs"
    assert es.best_epoch == 1
    assert "early stopping" in hist.stop_reason and "val_loss" in hist.stop_reason


def test_early_stopping_patience_zero_and_never_stops_while_improving():
    tr, _, _, _, _ = _es_run([1.0, 0.9, 0.95, 0.5], patience=0)
    assert tr.epoch == 3
    tr, hist, _, _, _ = _es_run([1.0, 0.9, 0.8, 0.7, 0.6], patience=0)
    assert tr.epoch == 5 and hist.stop_reason is None


def test_early_stopping_min_delta():
    # improvements smaller than min_delta do not count (patience large: no stop here)
    values = [1.0, 0.95, 0.92, 0.5, 0.45, 0.42]
    tr, _, _, es, _ = _es_run(values, patience=5, min_delta=0.1)
    assert es.best_epoch == 3 and tr.epoch == 6
    _, _, _, es, _ = _es_run(values, patience=5)
    assert es.best_epoch == 5


@pytest.mark.parametrize("mode", ["max", "auto"])
def test_early_stopping_mode_max(mode):
    x, y = reg_data(n=8)
    es = EarlyStopping(monitor="val_accuracy", patience=0, mode=mode)
    tr = make_trainer(reg_model())
    tr.fit(x, y, epochs=6, batch_size=4, verbose=0,
           callbacks=[ScriptedMetric("val_accuracy", [0.1, 0.5, 0.7, 0.6, 0.9, 0.95]), es])
    assert tr.epoch == 4 and es.best_epoch == 2


def test_early_stopping_restore_best_weights():
    tr, _, rec, es, model = _es_run([1.0, 0.2, 0.6, 0.7, 0.8], patience=1,
                                    restore_best_weights=True)
    assert es.best_epoch == 1
    assert len(rec.epoch_params) >= 3               # stopped after a non-improving epoch
    assert_params_differ(params(model), rec.epoch_params[-1])
    assert_params_equal(params(model), rec.epoch_params[1], "restored best")
    # without restore the model keeps the last epoch's weights
    _, _, rec2, _, model2 = _es_run([1.0, 0.2, 0.6, 0.7, 0.8], patience=1)
    assert_params_equal(params(model2), rec2.epoch_params[-1])


def test_early_stopping_missing_monitor_is_clear():
    x, y = reg_data(n=8)
    tr = make_trainer(reg_model())
    with pytest.raises(KeyError, match="val_loss"):
        tr.fit(x, y, epochs=2, batch_size=4, verbose=0, callbacks=[EarlyStopping()])


def test_model_checkpoint_every_epoch_path_formatting(tmp_path):
    x, y = reg_data(n=8)
    model = reg_model()
    rec = Recorder()
    ck = ModelCheckpoint(str(tmp_path / "ck-{epoch:02d}-{val_loss:.4f}.rnnkit"))
    tr = make_trainer(model)
    hist = tr.fit(x, y, epochs=3, batch_size=4, validation_data=(x, y), verbose=0,
                  callbacks=[rec, ck])
    expected = [f"ck-{e + 1:02d}-{v:.4f}.rnnkit" for e, v in enumerate(hist.history["val_loss"])]
    assert sorted(os.listdir(tmp_path)) == expected
    for e, name in enumerate(expected):
        t = rnnkit.load(tmp_path / name)
        assert t.epoch == e + 1
        assert_params_equal(params(t.model), rec.epoch_params[e])


def test_model_checkpoint_save_best_only(tmp_path):
    x, y = reg_data(n=8)
    ck = ModelCheckpoint(str(tmp_path / "best.rnnkit"), save_best_only=True)
    rec = Recorder()
    tr = make_trainer(reg_model())
    values = [1.0, 0.5, 0.7, 0.4, 0.9]
    tr.fit(x, y, epochs=5, batch_size=4, validation_data=(x, y), verbose=0,
           callbacks=[ScriptedMetric("val_loss", values), rec, ck])
    assert len(ck.saved) == 3                      # epochs 0, 1, 3 improved
    t = rnnkit.load(tmp_path / "best.rnnkit")
    assert t.epoch == 4
    assert_params_equal(params(t.model), rec.epoch_params[3])


def test_model_checkpoint_never_saves_non_finite_epoch(tmp_path):
    x, y = reg_data(n=8)
    xv = x.copy()
    xv[0, 0, 0] = np.nan                            # val_loss is NaN every epoch
    ck = ModelCheckpoint(str(tmp_path / "ck-{epoch}.rnnkit"))
    tr = make_trainer(reg_model())
    tr.fit(x, y, epochs=2, batch_size=4, validation_data=(xv, y), verbose=0, callbacks=[ck])
    assert os.listdir(tmp_path) == []


def test_nan_midway_keeps_last_good_checkpoint(tmp_path):
    x, y = reg_data(n=8)
    rec = Recorder()
    ck = ModelCheckpoint(str(tmp_path / "last.rnnkit"), monitor="loss")

    class PoisonData(Callback):      # a NaN appears in the data after epoch 2
        def on_epoch_end(self, trainer, epoch, logs):
            if epoch == 1:
                x[5, 0, 0] = np.nan

    model = reg_model()
    tr = make_trainer(model)
    hist = tr.fit(x, y, epochs=5, batch_size=4, shuffle=False, verbose=0,
                  callbacks=[rec, ck, PoisonData()])
    assert len(hist.history["loss"]) == 2 and "nan" in hist.stop_reason.lower()
    assert tr.global_step == 2 * 2 + 1
    assert os.listdir(tmp_path) == ["last.rnnkit"]
    t = rnnkit.load(tmp_path / "last.rnnkit", into=make_trainer(reg_model(seed=5)))
    assert t.epoch == 2
    assert_params_equal(params(t.model), rec.epoch_params[1])
    # the model in memory holds the parameters after the last finite step
    assert_params_equal(params(model), rec.batch_params[-1])


# ============================================================================ progress


def test_verbose_zero_prints_nothing(capfd):
    x, y = reg_data(n=8)
    make_trainer(reg_model()).fit(x, y, epochs=2, batch_size=4, validation_data=(x, y),
                                  verbose=0)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


@pytest.mark.parametrize("verbose", [1, 2])
def test_verbose_to_non_terminal_prints_plain_lines(capsys, verbose):
    x, y = reg_data(n=8)
    make_trainer(reg_model()).fit(x, y, epochs=3, batch_size=4, validation_data=(x, y),
                                  verbose=verbose)
    out, err = capsys.readouterr()
    text = out + err
    assert "\x1b" not in text and "\r" not in text
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert len(lines) == 3
    for e, ln in enumerate(lines):
        assert f"{e + 1}/3" in ln and "loss" in ln and "val_loss" in ln


def test_stop_message_is_printed(capsys):
    x, y = reg_data(n=8)
    model = reg_model()
    tr = Trainer(model, BadLoss([2]), optim.SGD(model.parameters(), lr=0.05))
    tr.fit(x, y, epochs=2, batch_size=4, verbose=1)
    out, err = capsys.readouterr()
    assert "nan" in (out + err).lower()
    assert "\x1b" not in out + err


# ============================================================================ clipping


def _manual_sgd_step(model, x, y, lr, max_norm):
    """One full-batch SGD step with numpy clipping; returns the total norm before clipping."""
    loss = losses.MSELoss()
    for p in model.parameters():
        p.grad[...] = 0
    loss(model(x), y)
    model.backward(loss.backward())
    grads = [p.grad.astype(np.float64) for p in model.parameters()]
    norm = float(np.sqrt(sum((g * g).sum() for g in grads)))
    scale = min(1.0, max_norm / (norm + 1e-6)) if max_norm is not None else 1.0
    for p in model.parameters():
        p.data -= lr * (p.grad * scale)
    return norm


@pytest.mark.parametrize("max_norm", [0.05, 1e6])
def test_clip_grad_norm_clips(max_norm):
    x, y = reg_data(n=8)
    lr = 0.5
    ref = reg_model()
    before = params(ref)
    norm = _manual_sgd_step(ref, x, y, lr, max_norm)
    assert norm > 0.05 * 2, "the test needs a gradient larger than the clip"
    model = reg_model()
    tr = make_trainer(model, lr=lr, clip=max_norm)
    tr.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    got = params(model)
    for k in got:
        np.testing.assert_allclose(got[k], params(ref)[k], rtol=1e-10, atol=1e-12, err_msg=k)
    step = np.sqrt(sum(((got[k] - before[k]) ** 2).sum() for k in got))
    if max_norm < 1:
        assert step == pytest.approx(lr * max_norm, rel=1e-5)
    else:
        assert step == pytest.approx(lr * norm, rel=1e-6)


def test_clip_grad_norm_agrees_with_optim_clip():
    # the trainer's clipping = rnnkit.optim.clip_grad_norm_ applied by hand
    x, y = reg_data(n=8)
    ref = reg_model()
    loss = losses.MSELoss()
    opt = optim.SGD(ref.parameters(), lr=0.3)
    opt.zero_grad()
    loss(ref(x), y)
    ref.backward(loss.backward())
    optim.clip_grad_norm_(list(ref.parameters()), 0.1)
    opt.step()
    model = reg_model()
    make_trainer(model, lr=0.3, clip=0.1).fit(x, y, epochs=1, batch_size=8, shuffle=False,
                                              verbose=0)
    assert_params_equal(params(model), params(ref))


# ============================================================================ non-finite


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_loss_stops_with_last_good_parameters(bad):
    x, y = reg_data(n=20)
    model = reg_model()
    rec = Recorder()
    tr = Trainer(model, BadLoss([3], bad=bad), optim.SGD(model.parameters(), lr=0.05))
    hist = tr.fit(x, y, epochs=3, batch_size=4, verbose=0, callbacks=[rec])
    assert tr.global_step == 2
    assert len(rec.batch_params) == 2
    assert_params_equal(params(model), rec.batch_params[1], "after batch 2")
    assert hist.stop_reason is not None and str(bad) in hist.stop_reason.lower()
    assert tr.stop_reason == hist.stop_reason
    assert hist.history == {} and tr.epoch == 0
    assert rec.calls[-1] == ("train_end",)


@pytest.mark.parametrize("clip", [None, 1.0])
def test_non_finite_gradient_stops_before_the_step(clip):
    # Trainer docstring: "a non-finite loss or gradient stops training *before* the optimiser
    # step, so the parameters stay the last good ones" -- with or without clipping.
    x, y = reg_data(n=12)
    model = reg_model()
    rec = Recorder()
    tr = Trainer(model, BadLoss([2], bad=float("inf"), where="grad"),
                 optim.SGD(model.parameters(), lr=0.05), clip_grad_norm=clip)
    hist = tr.fit(x, y, epochs=2, batch_size=4, verbose=0, callbacks=[rec])
    assert all(np.isfinite(v).all() for v in params(model).values())
    assert_params_equal(params(model), rec.batch_params[0])
    assert tr.global_step == 1
    assert hist.stop_reason is not None and "grad" in hist.stop_reason.lower()


# ============================================================================ Ctrl-C


class _SigintAt(Callback):
    def __init__(self, epoch, batch=None):
        self.epoch, self.batch = epoch, batch

    def on_batch_end(self, trainer, batch, logs):
        if self.batch is not None and trainer.epoch == self.epoch and batch == self.batch:
            os.kill(os.getpid(), signal.SIGINT)

    def on_epoch_end(self, trainer, epoch, logs):
        if self.batch is None and epoch == self.epoch:
            os.kill(os.getpid(), signal.SIGINT)


def _with_sentinel_handler(fn):
    calls = []

    def sentinel(signum, frame):
        calls.append(signum)

    old = signal.signal(signal.SIGINT, sentinel)
    try:
        result = fn()
        assert signal.getsignal(signal.SIGINT) is sentinel, "previous SIGINT handler restored"
    finally:
        signal.signal(signal.SIGINT, old)
    assert calls == [], "the trainer's handler, not the previous one, got the signal"
    return result


def test_ctrl_c_stops_after_current_batch():
    x, y = reg_data(n=20)
    model = reg_model()
    rec = Recorder()
    tr = make_trainer(model)
    hist = _with_sentinel_handler(lambda: tr.fit(
        x, y, epochs=3, batch_size=4, verbose=0, callbacks=[rec, _SigintAt(1, batch=1)]))
    assert tr.global_step == 5 + 2, "stopped right after epoch 2's second batch"
    assert_params_equal(params(model), rec.batch_params[-1])
    assert "interrupt" in hist.stop_reason.lower()
    assert tr.epoch == 1 and len(hist.history["loss"]) == 1
    assert rec.calls[-1] == ("train_end",)
    # the model is intact: it can predict and train on
    assert np.isfinite(tr.predict(x)).all()
    tr.fit(x, y, epochs=2, batch_size=4, verbose=0)
    assert tr.epoch == 3      # two more epochs: only a restore makes `epochs` a total


def test_ctrl_c_between_epochs_runs_no_further_batch():
    x, y = reg_data(n=8)
    model = reg_model()
    tr = make_trainer(model)
    rec = Recorder()
    hist = _with_sentinel_handler(lambda: tr.fit(
        x, y, epochs=4, batch_size=4, validation_data=(x, y), verbose=0,
        callbacks=[rec, _SigintAt(0)]))
    assert tr.global_step == 2, "a Ctrl-C during validation/callbacks must not start a batch"
    assert_params_equal(params(model), rec.epoch_params[0])
    assert hist.stop_reason is not None and "interrupt" in hist.stop_reason.lower()


def test_sigint_handler_restored_after_normal_fit_and_after_error():
    x, y = reg_data(n=8)
    tr = make_trainer(reg_model())
    _with_sentinel_handler(lambda: tr.fit(x, y, epochs=1, batch_size=4, verbose=0))

    class Boom(Callback):
        def on_batch_end(self, trainer, batch, logs):
            raise RuntimeError("boom")

    def run():
        with pytest.raises(RuntimeError, match="boom"):
            tr.fit(x, y, epochs=3, batch_size=4, verbose=0, callbacks=[Boom()])

    _with_sentinel_handler(run)


# ============================================================================ truncated BPTT


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN"])
def test_tbptt_k_ge_T_equals_full_bptt_bitwise(cell):
    x, y = reg_data(n=10, t=6)
    lengths = np.array([6, 3, 1, 6, 5, 0, 2, 6, 4, 6])
    runs = []
    for k in (None, 6, 50):
        model = reg_model(cell=cell, num_layers=2)
        tr = make_trainer(model, opt="Adam", lr=0.01, clip=1.0)
        hist = tr.fit(x, y, epochs=2, batch_size=4, lengths=lengths, tbptt=k, verbose=0)
        runs.append((params(model), hist.history))
    for p, h in runs[1:]:
        assert_params_equal(p, runs[0][0])
        assert h == runs[0][1]


def _manual_tbptt(model, x, y, k, lr, batch_size, lengths=None):
    """TBPTT by hand: LSTM called with hx passed explicitly, one SGD step per chunk."""
    rec, lin = model[0], model[1]
    loss = losses.MSELoss()
    opt = optim.SGD(model.parameters(), lr=lr)
    n, t = x.shape[:2]
    for s in range(0, n, batch_size):
        xb, yb = x[s:s + batch_size], y[s:s + batch_size]
        lb = None if lengths is None else lengths[s:s + batch_size]
        hx = None
        for c0 in range(0, t, k):
            xc, yc = xb[:, c0:c0 + k], yb[:, c0:c0 + k]
            steps = xc.shape[1]
            lc = None if lb is None else np.minimum(np.maximum(lb - c0, 0), steps)
            out, state = rec(xc, hx=hx, lengths=lc)
            pred = lin(out)
            loss(pred, yc)
            opt.zero_grad()
            lin_dx = lin.backward(loss.backward())
            rec.backward(lin_dx)                      # no dhx: the gradient is cut here
            opt.step()
            # carry the values only
            hx = tuple(s_.copy() for s_ in state) if isinstance(state, tuple) else state.copy()


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_tbptt_carries_state_like_a_manual_chunked_loop(cell, with_lengths):
    x, y = reg_data(n=8, t=7)
    lengths = np.array([7, 2, 5, 0, 7, 3, 6, 1]) if with_lengths else None
    ref = reg_model(cell=cell, num_layers=2)
    _manual_tbptt(ref, x, y, k=3, lr=0.1, batch_size=4, lengths=lengths)
    model = reg_model(cell=cell, num_layers=2)
    tr = make_trainer(model, lr=0.1)
    tr.fit(x, y, epochs=1, batch_size=4, lengths=lengths, tbptt=3, shuffle=False, verbose=0)
    assert tr.global_step == 2 * 3, "one optimiser step per chunk"
    got, want = params(model), params(ref)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-12, atol=1e-14,
                                   err_msg=name)


def test_tbptt_state_is_really_carried():
    # Zero-state chunks (what a trainer that forgot to carry would do) give another result.
    x, y = reg_data(n=4, t=6)
    ref = reg_model()
    rec, lin = ref[0], ref[1]
    loss, opt = losses.MSELoss(), optim.SGD(ref.parameters(), lr=0.1)
    for c0 in range(0, 6, 3):
        out, _ = rec(x[:, c0:c0 + 3])                 # fresh zero state each chunk
        loss(lin(out), y[:, c0:c0 + 3])
        opt.zero_grad()
        rec.backward(lin.backward(loss.backward()))
        opt.step()
    model = reg_model()
    make_trainer(model, lr=0.1).fit(x, y, epochs=1, batch_size=4, tbptt=3, shuffle=False,
                                    verbose=0)
    assert_params_differ(params(model), params(ref))


def test_tbptt_k_lt_T_differs_but_trains_and_state_resets_per_batch():
    x, y = reg_data(n=16, t=12)
    full, trunc = reg_model(), reg_model()
    make_trainer(full, lr=0.05, opt="Adam").fit(x, y, epochs=3, batch_size=8, verbose=0)
    tr = make_trainer(trunc, lr=0.05, opt="Adam")
    hist = tr.fit(x, y, epochs=20, batch_size=8, tbptt=4, verbose=0)
    assert_params_differ(params(full), params(trunc))
    assert hist.history["loss"][-1] < 0.5 * hist.history["loss"][0]
    # after fit, no state is carried into ordinary calls
    layer = trunc[0]
    assert not layer.carry_state
    out1 = tr.predict(x)
    out2 = tr.predict(x)
    np.testing.assert_array_equal(out1, out2)


def test_tbptt_with_last_batch_smaller():
    # N not a multiple of batch_size: the carried state must not leak into the smaller batch
    x, y = reg_data(n=10, t=6)
    ref = reg_model()
    _manual_tbptt(ref, x, y, k=2, lr=0.1, batch_size=4)
    model = reg_model()
    make_trainer(model, lr=0.1).fit(x, y, epochs=1, batch_size=4, tbptt=2, shuffle=False,
                                    verbose=0)
    for name, want in params(ref).items():
        np.testing.assert_allclose(params(model)[name], want, rtol=1e-12, atol=1e-14)


def test_tbptt_bidirectional_is_rejected_before_any_step():
    x, y = reg_data(n=8, t=6)
    model = reg_model(bidirectional=True)
    before = params(model)
    tr = make_trainer(model)
    with pytest.raises(ValueError, match="bidirectional|unidirectional"):
        tr.fit(x, y, epochs=1, batch_size=4, tbptt=2, verbose=0)
    assert tr.global_step == 0
    assert_params_equal(params(model), before, "no step may be taken before the error")


def test_tbptt_without_recurrent_layer_is_clear():
    x, y = reg_data(n=4, t=6)
    model = nn.Sequential(nn.Linear(3, 2, dtype="float64"))
    tr = make_trainer(model)
    with pytest.raises(ValueError, match="tbptt"):
        tr.fit(x, y, epochs=1, batch_size=2, tbptt=2, verbose=0)


# ============================================================================ resume


def _resume_setup(seed, with_scheduler):
    model = token_model(seed=seed, dropout=0.3, num_layers=2, mid_dropout=0.25)
    opt = optim.Adam(model.parameters(), lr=0.02)
    sched = StepLR(opt, step_size=3, gamma=0.5) if with_scheduler else None
    return Trainer(model, losses.CrossEntropyLoss(ignore_index=0), opt, clip_grad_norm=0.5,
                   scheduler=sched, seed=seed)


@pytest.mark.parametrize("how", ["fresh", "into", "into_with_scheduler"])
def test_resume_equals_uninterrupted_bitwise(tmp_path, how):
    x, y = token_data(n=18, t=6)
    xv, yv = token_data(n=6, t=6, seed=9)
    sched = how == "into_with_scheduler"
    fit = dict(batch_size=4, validation_data=(xv, yv), verbose=0)

    full = _resume_setup(0, sched)
    h_full = full.fit(x, y, epochs=4, **fit)

    first = _resume_setup(0, sched)
    first.fit(x, y, epochs=2, **fit)
    path = tmp_path / "run.rnnkit"
    rnnkit.save(first, path)
    # keep training the saved trainer: the file must not be affected by later changes
    first.fit(x, y, epochs=3, **fit)
    if how == "fresh":
        second = rnnkit.load(path)
    else:
        other = _resume_setup(123, sched)    # other seeds: everything must come from the file
        second = rnnkit.load(path, into=other)
        assert second is other
    assert second.epoch == 2
    h2 = second.fit(x, y, epochs=4, **fit)
    assert_params_equal(params(second.model), params(full.model))
    assert h2.history["loss"] == h_full.history["loss"][2:]
    assert h2.history["val_loss"] == h_full.history["val_loss"][2:]
    assert second.global_step == full.global_step
    if sched:
        assert second.optimizer.param_groups[0]["lr"] == full.optimizer.param_groups[0]["lr"]
    st_a, st_b = second.optimizer.state_dict(), full.optimizer.state_dict()
    assert st_a["param_groups"] == st_b["param_groups"]
    for key in st_b["state"]:
        for buf, val in st_b["state"][key].items():
            np.testing.assert_array_equal(st_a["state"][key][buf], val)


def test_resume_from_model_checkpoint_file(tmp_path):
    x, y = token_data(n=12, t=5)
    full = _resume_setup(0, True)
    full.fit(x, y, epochs=3, batch_size=4, verbose=0,
             callbacks=[ModelCheckpoint(str(tmp_path / "e{epoch}.rnnkit"), monitor="loss")])
    resumed = rnnkit.load(tmp_path / "e1.rnnkit", into=_resume_setup(7, True))
    resumed.fit(x, y, epochs=3, batch_size=4, verbose=0)
    assert_params_equal(params(resumed.model), params(full.model))


def test_loaded_trainer_keeps_loss_and_clip(tmp_path):
    tr = _resume_setup(0, False)
    rnnkit.save(tr, tmp_path / "t.rnnkit")
    t2 = rnnkit.load(tmp_path / "t.rnnkit")
    assert isinstance(t2.loss, losses.CrossEntropyLoss) and t2.loss.ignore_index == 0
    assert t2.clip_grad_norm == 0.5
    assert type(t2.optimizer) is optim.Adam


# ============================================================================ torch


def test_trainer_matches_torch_loop():
    torch = pytest.importorskip("torch")
    x, y = reg_data(n=12, t=5)
    model = reg_model(h=4)
    tm = torch.nn.LSTM(3, 4, batch_first=True, dtype=torch.float64)
    tl = torch.nn.Linear(4, 2, dtype=torch.float64)
    sd = model.state_dict()
    with torch.no_grad():
        for name, p in tm.named_parameters():
            p.copy_(torch.from_numpy(sd["0." + name]))
        tl.weight.copy_(torch.from_numpy(sd["1.weight"]))
        tl.bias.copy_(torch.from_numpy(sd["1.bias"]))
    tparams = list(tm.parameters()) + list(tl.parameters())
    opt = torch.optim.Adam(tparams, lr=0.01)
    for _ in range(2):
        for s in range(0, 12, 5):
            opt.zero_grad()
            out, _ = tm(torch.from_numpy(x[s:s + 5]))
            loss = torch.nn.functional.mse_loss(tl(out), torch.from_numpy(y[s:s + 5]))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(tparams, 0.2)
            opt.step()
    tr = make_trainer(model, opt="Adam", lr=0.01, clip=0.2)
    tr.fit(x, y, epochs=2, batch_size=5, shuffle=False, verbose=0)
    got = model.state_dict()
    for name, p in tm.named_parameters():
        np.testing.assert_allclose(got["0." + name], p.detach().numpy(), rtol=1e-9,
                                   atol=1e-11)
    np.testing.assert_allclose(got["1.weight"], tl.weight.detach().numpy(), rtol=1e-9,
                               atol=1e-11)
