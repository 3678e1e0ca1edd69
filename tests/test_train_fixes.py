"""rnnkit.train, issue 16: an overflowing optimiser step is undone, fit(epochs) counts this
call's epochs (a restore excepted), corrupted trainer state is rejected at load time, a
time-major model gets a batch_first hint, and the progress display keeps the metrics visible
at 80 columns.

References are independent of the code under test: manual numpy steps, fresh trainers trained
in one go, optimiser state recorded by a callback, and a terminal emulated from the bytes
written (carriage returns overwrite the line).
"""

import copy
import io
import os
import sys
import threading

import numpy as np
import pytest

import rnnkit
from rnnkit import losses, nn, optim
from rnnkit.optim.lr_scheduler import StepLR
from rnnkit.train import Callback, Trainer

from _train_helpers import (Recorder, assert_params_equal, class_data, params, reg_data,
                            reg_model, token_data, token_model)


# ============================================================================ 1. overflow


def _linear_data(n=8, scale=1.0, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, 3)) * scale).astype(np.float32)
    y = rng.standard_normal((n, 2)).astype(np.float32)
    return x, y


def _linear_model():
    return nn.Sequential(nn.Linear(3, 2, seed=0))      # float32


def _one_manual_sgd_step(model, x, y, lr):
    """What one SGD step does to the parameters, by hand in float32 numpy."""
    loss = losses.MSELoss()
    for p in model.parameters():
        p.grad[...] = 0
    value = loss(model(x), y)
    model.backward(loss.backward())
    grads = [p.grad.copy() for p in model.parameters()]
    with np.errstate(over="ignore"):
        after = [p.data - np.float32(lr) * g for p, g in zip(model.parameters(), grads)]
    return value, grads, after


def test_first_step_that_overflows_is_undone():
    # Inputs ~1e5 give finite loss and gradients (~1e10 in float32) but lr * grad ~1e40
    # overflows float32: the step itself makes the parameters inf.
    x, y = _linear_data(scale=1e5)
    lr = 1e30
    value, grads, after = _one_manual_sgd_step(_linear_model(), x, y, lr)
    assert np.isfinite(value) and all(np.isfinite(g).all() for g in grads)
    assert not all(np.isfinite(a).all() for a in after), "the scenario needs an overflow"

    model = _linear_model()
    before = params(model)
    tr = Trainer(model, losses.MSELoss(), optim.SGD(model.parameters(), lr=lr, momentum=0.9))
    hist = tr.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    assert_params_equal(params(model), before, "after the undone step")
    assert tr.global_step == 0 and tr.epoch == 0 and hist.history == {}
    reason = hist.stop_reason
    assert reason is not None and "undone" in reason and "'0.weight'" in reason
    assert "non-finite" in reason and "finite" in reason

    # Undone completely, optimiser state included (no momentum buffer from the bad step): with
    # a sane lr it now trains exactly as a fresh trainer does.
    tr.optimizer.param_groups[0]["lr"] = 1e-12
    tr.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    ref = _linear_model()
    Trainer(ref, losses.MSELoss(), optim.SGD(ref.parameters(), lr=1e-12, momentum=0.9)).fit(
        x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    assert_params_equal(params(model), params(ref), "continued after the undo")


class _OptimizerRecorder(Callback):
    """A deep copy of the optimiser's state after each batch."""

    def __init__(self):
        self.states = []

    def on_batch_end(self, trainer, batch, logs):
        self.states.append(copy.deepcopy(trainer.optimizer.state_dict()))


def _assert_optimizer_state_equal(a, b):
    assert a["param_groups"] == b["param_groups"]
    assert a["state"].keys() == b["state"].keys()
    for key in b["state"]:
        assert a["state"][key].keys() == b["state"][key].keys()
        for buf, val in b["state"][key].items():
            np.testing.assert_array_equal(a["state"][key][buf], val, err_msg=f"{key} {buf}")


def test_step_that_overflows_the_optimiser_state_is_undone_mid_training():
    # Batches 1 and 2 are ordinary; batch 3 has inputs ~1e12: its gradient (~1e24) is finite
    # in float32 but Adam's exp_avg_sq gets (1 - beta2) * g**2 ~ 1e45 = inf, while the
    # parameters stay finite (m / sqrt(v) = 0): silent damage unless the state is checked.
    x, y = _linear_data(n=12)
    x[8:] *= 1e12
    model = _linear_model()
    rec, opt_rec = Recorder(), _OptimizerRecorder()
    tr = Trainer(model, losses.MSELoss(), optim.Adam(model.parameters(), lr=0.01))
    hist = tr.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0,
                  callbacks=[rec, opt_rec])
    assert tr.global_step == 2 and len(rec.batch_params) == 2
    assert_params_equal(params(model), rec.batch_params[-1], "after batch 2")
    _assert_optimizer_state_equal(tr.optimizer.state_dict(), opt_rec.states[-1])
    assert "exp_avg_sq" in hist.stop_reason and "undone" in hist.stop_reason


def test_finite_steps_are_not_touched():
    # The guard must not change an ordinary run: same parameters as a manual float32 loop.
    x, y = _linear_data()
    model = _linear_model()
    tr = Trainer(model, losses.MSELoss(), optim.SGD(model.parameters(), lr=0.1))
    tr.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    _, _, after = _one_manual_sgd_step(ref := _linear_model(), x, y, 0.1)
    for (name, p), a in zip(ref.named_parameters(), after):
        np.testing.assert_array_equal(params(model)[name], a, err_msg=name)


# ============================================================================ 2. epochs


def _token_trainer(seed=0):
    model = token_model(seed=seed, dropout=0.3, num_layers=2, mid_dropout=0.25)
    opt = optim.Adam(model.parameters(), lr=0.02)
    return Trainer(model, losses.CrossEntropyLoss(ignore_index=0), opt, clip_grad_norm=0.5,
                   scheduler=StepLR(opt, step_size=1, gamma=0.5), seed=seed)


def test_second_fit_trains_more_epochs_as_one_long_fit():
    x, y = token_data(n=18, t=6)
    xv, yv = token_data(n=6, t=6, seed=9)
    fit = dict(batch_size=4, validation_data=(xv, yv), verbose=0)
    whole = _token_trainer()
    h_whole = whole.fit(x, y, epochs=4, **fit)

    parts = _token_trainer()
    h1 = parts.fit(x, y, epochs=2, **fit)
    h2 = parts.fit(x, y, epochs=2, **fit)
    assert h1.epochs == [0, 1] and h2.epochs == [2, 3] and parts.epoch == 4
    assert h2.history["loss"] == h_whole.history["loss"][2:]
    assert h2.history["val_loss"] == h_whole.history["val_loss"][2:]
    assert_params_equal(params(parts.model), params(whole.model))
    # the schedule went on: four StepLR(gamma=0.5) steps in both
    assert parts.optimizer.param_groups[0]["lr"] == whole.optimizer.param_groups[0]["lr"] \
        == pytest.approx(0.02 * 0.5 ** 4)
    assert parts.global_step == whole.global_step


def test_progress_numbers_epochs_of_the_second_call(capsys):
    x, y = reg_data(n=8)
    tr = Trainer(reg_model(), losses.MSELoss(), optim.SGD(reg_model().parameters(), lr=0.0))
    tr.fit(x, y, epochs=2, batch_size=4, verbose=2)
    capsys.readouterr()
    tr.fit(x, y, epochs=2, batch_size=4, verbose=2)
    out, err = capsys.readouterr()
    lines = [ln for ln in (out + err).splitlines() if ln.strip()]
    assert [ln.split()[1] for ln in lines] == ["3/4", "4/4"]


@pytest.mark.parametrize("epochs", [-1, 1.5, True, "2", None])
def test_bad_epochs_is_rejected(epochs):
    x, y = reg_data(n=4)
    tr = Trainer(reg_model(), losses.MSELoss(), optim.SGD(reg_model().parameters(), lr=0.1))
    with pytest.raises(ValueError, match="epochs must be an integer >= 0"):
        tr.fit(x, y, epochs=epochs, batch_size=4, verbose=0)


def test_restored_trainer_counts_to_a_total_once(tmp_path):
    x, y = token_data(n=12, t=5)
    tr = _token_trainer()
    tr.fit(x, y, epochs=2, batch_size=4, verbose=0)
    rnnkit.save(tr, tmp_path / "t.rnnkit")

    done = rnnkit.load(tmp_path / "t.rnnkit", into=_token_trainer(5))
    # the run is already 2 epochs long: nothing to do, and it says so
    h = done.fit(x, y, epochs=2, batch_size=4, verbose=0)
    assert h.history == {} and done.epoch == 2
    assert "nothing to train" in h.stop_reason and "epochs=3" in h.stop_reason
    # the resume is used up: now epochs counts per call again
    h = done.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert h.epochs == [2] and done.epoch == 3

    again = rnnkit.load(tmp_path / "t.rnnkit", into=_token_trainer(6))
    with pytest.raises(ValueError, match="batch_size"):
        again.fit(x, y, epochs=4, batch_size=0, verbose=0)
    # a rejected call does not use up the resume: epochs=4 still means "up to epoch 4"
    h = again.fit(x, y, epochs=4, batch_size=4, verbose=0)
    assert h.epochs == [2, 3] and again.epoch == 4
    whole = _token_trainer()
    whole.fit(x, y, epochs=4, batch_size=4, verbose=0)
    assert_params_equal(params(again.model), params(whole.model))


# ============================================================================ 3. state


def _trainer_with_progress():
    x, y = reg_data(n=8)
    model = reg_model()
    opt = optim.SGD(model.parameters(), lr=0.05)
    tr = Trainer(model, losses.MSELoss(), opt, clip_grad_norm=2.0,
                 scheduler=StepLR(opt, step_size=1, gamma=0.5), seed=3)
    tr.fit(x, y, epochs=2, batch_size=4, verbose=0)
    return tr


def _rng(**change):
    state = np.random.default_rng(1).bit_generator.state
    for k, v in change.items():
        if k in ("state", "inc"):
            state["state"][k] = v
        elif v is _DROP:
            del state[k]
        else:
            state[k] = v
    return state


_DROP = object()


@pytest.mark.parametrize("change, error, pattern", [
    (dict(epoch=-1), ValueError, r"'epoch' must be an integer >= 0, got -1"),
    (dict(epoch=2.0), TypeError, r"'epoch' must be an integer >= 0, got float"),
    (dict(epoch="2"), TypeError, r"'epoch'.*got str"),
    (dict(epoch=True), TypeError, r"'epoch'.*got bool"),
    (dict(epoch=np.array([1, 2])), TypeError, r"'epoch'.*array of shape \(2,\)"),
    (dict(global_step=-5), ValueError, r"'global_step' must be an integer >= 0, got -5"),
    (dict(global_step=None), TypeError, r"'global_step'.*NoneType"),
    (dict(rng="PCG64"), TypeError, r"'rng' must be a bit-generator state"),
    (dict(rng=_rng(bit_generator="MT19937")), ValueError, r"'rng' is not a valid PCG64"),
    (dict(rng=_rng(state=-1)), ValueError, r"'rng' is not a valid PCG64"),
    (dict(rng=_rng(state=2 ** 200)), ValueError, r"'rng' is not a valid PCG64"),
    (dict(rng=_rng(state="7")), ValueError, r"'rng' is not a valid PCG64"),
    (dict(rng=_rng(state=5.5)), ValueError, r"'rng' is not an exact PCG64"),
    (dict(rng=_rng(has_uint32=_DROP)), ValueError, r"'rng' is not a valid PCG64"),
    (dict(clip_grad_norm=-1.0), ValueError, r"'clip_grad_norm' must be > 0 or None"),
    (dict(clip_grad_norm=float("nan")), ValueError, r"'clip_grad_norm' must be > 0"),
    (dict(clip_grad_norm="1"), TypeError, r"'clip_grad_norm'.*got str"),
    (dict(scheduler=[1, 2]), TypeError, r"'scheduler' must be a scheduler state_dict"),
    (dict(surprise=1), ValueError, r"unknown key\(s\) 'surprise'"),
    (dict(epoch=_DROP), ValueError, r"missing 'epoch'"),
    (dict(rng=_DROP), ValueError, r"missing 'rng'"),
])
def test_corrupted_state_is_rejected_at_load_and_changes_nothing(change, error, pattern):
    tr = _trainer_with_progress()
    good = tr.state_dict()
    bad = dict(good)
    for k, v in change.items():
        if v is _DROP:
            del bad[k]
        else:
            bad[k] = v
    other = _trainer_with_progress()
    other.fit(*reg_data(n=8), epochs=1, batch_size=4, verbose=0)
    before = copy.deepcopy(other.state_dict())
    with pytest.raises(error, match=pattern):
        other.load_state_dict(bad)
    after = other.state_dict()
    assert after == before
    # and the intact state still loads, restoring what state_dict() reported
    other.load_state_dict(good)
    assert other.state_dict() == good


def test_state_that_is_not_a_mapping():
    with pytest.raises(TypeError, match="trainer state must be a mapping.*list"):
        _trainer_with_progress().load_state_dict([("epoch", 1)])


def test_bad_scheduler_state_names_the_scheduler():
    tr = _trainer_with_progress()
    state = tr.state_dict()
    state["scheduler"] = {"not": "a StepLR state"}
    with pytest.raises(ValueError, match="'scheduler' does not load into StepLR"):
        _trainer_with_progress().load_state_dict(state)


def test_corrupted_trainer_file_is_rejected_before_changing_into(tmp_path, monkeypatch):
    tr = _trainer_with_progress()
    good_state = tr.state_dict
    monkeypatch.setattr(tr, "state_dict", lambda: dict(good_state(), epoch=-3))
    path = tmp_path / "bad.rnnkit"
    rnnkit.save(tr, path)
    into = _trainer_with_progress()
    for p in into.model.parameters():
        p.data[...] = 0.25      # differs from the file's parameters
    snapshot = params(into.model)
    with pytest.raises(ValueError, match="'epoch' must be an integer >= 0, got -3"):
        rnnkit.load(path, into=into)
    assert_params_equal(params(into.model), snapshot, "into after the rejected load")
    with pytest.raises(ValueError, match="'epoch'"):
        rnnkit.load(path)


def test_corrupted_optimiser_state_in_a_trainer_file_changes_nothing_of_into(tmp_path,
                                                                            monkeypatch):
    """A bad optimiser entry (here a wrong-shaped momentum buffer) is found before the model of
    `into` is loaded, not after."""
    x, y = reg_data(n=8)
    model = reg_model()
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    tr = Trainer(model, losses.MSELoss(), opt, seed=3)
    tr.fit(x, y, epochs=1, batch_size=4, verbose=0)
    good = opt.state_dict

    def bad():
        sd = good()
        sd["state"]["0"]["momentum_buffer"] = np.zeros(3, np.float32)  # not the param's shape
        return sd
    monkeypatch.setattr(opt, "state_dict", bad)
    path = tmp_path / "bad-opt.rnnkit"
    rnnkit.save(tr, path)
    model2 = reg_model()
    into = Trainer(model2, losses.MSELoss(),
                   optim.SGD(model2.parameters(), lr=0.05, momentum=0.9), seed=3)
    for p in into.model.parameters():
        p.data[...] = 0.25      # differs from the file's parameters
    snapshot = params(into.model)
    with pytest.raises(ValueError, match=str(path).replace("\\", "\\\\")):
        rnnkit.load(path, into=into)
    assert_params_equal(params(into.model), snapshot, "into after the rejected load")


# ============================================================================ 4. layout hint


def _time_major_class_model():
    return nn.Sequential(nn.LSTM(3, 8, seed=0), nn.Last(), nn.Linear(8, 3, seed=1))


def test_time_major_model_gets_a_batch_first_hint():
    x, y = class_data(n=12, t=5)       # x (N, T, F): the LSTM reads N as time, T as batch
    model = _time_major_class_model()
    tr = Trainer(model, losses.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(ValueError, match=r"target has shape .*batch_first=True") as info:
        tr.fit(x, y, epochs=1, batch_size=4, verbose=0)
    msg = str(info.value)
    assert "layers '0' (LSTM), '1' (Last) are time-major" in msg
    assert isinstance(info.value.__cause__, ValueError)
    assert "hint" not in str(info.value.__cause__)     # the original message, unchanged
    with pytest.raises(ValueError, match=r"lengths has shape.*batch_first=True"):
        tr.fit(x, y, epochs=1, batch_size=4, lengths=np.full(12, 5), verbose=0)
    with pytest.raises(ValueError, match="batch_first=True"):
        tr.evaluate(x, y)
    with pytest.raises(ValueError, match="batch_first=True"):
        tr.predict(x, lengths=np.full(12, 5))


def test_batch_first_model_gets_no_hint():
    x, y = class_data(n=12, t=5)
    model = nn.Sequential(nn.GRU(3, 8, batch_first=True, seed=0), nn.Last(batch_first=True),
                          nn.Linear(8, 3, seed=1))
    tr = Trainer(model, losses.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(ValueError) as info:
        tr.fit(x, y[:, None].repeat(2, axis=1), epochs=1, batch_size=4, verbose=0)
    assert "hint" not in str(info.value) and "batch_first" not in str(info.value)


# ============================================================================ 5. progress


class _FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def _screen(text):
    """The lines a terminal shows for `text`: '\\r' returns to column 0 and overwrites."""
    shown = []
    for line in text.replace("\r\n", "\n").split("\n"):
        cells = []
        for part in line.split("\r"):
            cells = list(part) + cells[len(part):]
        shown.append("".join(cells).rstrip())
    return [ln for ln in shown if ln]


def _class_fit_on(stream, monkeypatch, epochs=2):
    x, y = class_data(n=24)
    xv, yv = class_data(n=12, seed=1)
    model = nn.Sequential(nn.GRU(3, 8, batch_first=True, seed=0), nn.Last(batch_first=True),
                          nn.Linear(8, 3, seed=1))
    tr = Trainer(model, losses.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=0.01))
    monkeypatch.setattr(sys, "stderr", stream)
    try:
        return tr.fit(x, y, epochs=epochs, batch_size=4, validation_data=(xv, yv), verbose=1)
    finally:
        monkeypatch.setattr(sys, "stderr", sys.__stderr__)


def _check_epoch_lines(lines, hist, width):
    assert all(len(ln) <= width for ln in lines), [ln for ln in lines if len(ln) > width]
    text = "\n".join(lines)
    for e in range(len(hist.epochs)):
        # the epoch's summary starts its own line, and every metric follows in full
        start = next(i for i, ln in enumerate(lines) if ln.startswith(f"epoch {e + 1}/"))
        summary = " ".join(lines[start:start + 3])
        for name, values in hist.history.items():
            assert f"{name} {values[e]:.4g}" in summary, (name, summary)
    assert "val_accuracy" in text


@pytest.mark.parametrize("width", [80, 100, 60])
def test_progress_bar_keeps_validation_metrics_visible(width, monkeypatch):
    pytest.importorskip("tqdm")
    monkeypatch.setenv("COLUMNS", str(width))
    term = _FakeTerminal()
    hist = _class_fit_on(term, monkeypatch)
    assert "\r" in term.getvalue(), "a live bar was drawn"
    lines = _screen(term.getvalue())
    _check_epoch_lines(lines, hist, width)
    assert len(lines) <= 2 * 3      # at most the summary lines: the bars were cleared


def test_progress_in_a_real_80_column_terminal(monkeypatch):
    pytest.importorskip("tqdm")
    pty = pytest.importorskip("pty")
    fcntl, termios, struct = (pytest.importorskip(m) for m in ("fcntl", "termios", "struct"))
    monkeypatch.delenv("COLUMNS", raising=False)
    try:
        master, slave = pty.openpty()
    except OSError as exc:      # a container without /dev/pts
        pytest.skip(f"no pseudo-terminal available: {exc}")
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    chunks = []

    def drain():     # read while writing, so that a full pty buffer cannot block the writer
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:        # EIO once the terminal side is closed
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain)
    reader.start()
    stream = os.fdopen(slave, "w", encoding="utf-8", buffering=1)
    try:
        hist = _class_fit_on(stream, monkeypatch)
    finally:
        stream.close()
        reader.join(timeout=10)
        os.close(master)
    lines = _screen(b"".join(chunks).decode("utf-8"))
    _check_epoch_lines(lines, hist, 80)


def test_overflow_of_mixed_sign_is_undone_without_a_warning():
    """A step that sends one parameter to +inf and another to -inf: the finiteness check's own
    sum (inf + -inf) must not raise RuntimeWarning (pytest turns warnings into errors)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 3))
    y = rng.standard_normal((8, 2)) * 1e3
    model = nn.Sequential(nn.Linear(3, 2, seed=0)).double()
    before = params(model)
    tr = Trainer(model, losses.MSELoss(), optim.Adam(model.parameters(), lr=1e308))
    history = tr.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert history.stop_reason is not None and "undone" in history.stop_reason
    assert_params_equal(params(model), before, "parameters after the undone step")


def test_frozen_parameters_stale_gradient_does_not_scale_clipping():
    """Fine-tuning: a frozen layer left with a large old .grad must not enter the clipping
    norm of the trainable ones (reference: the same model with that layer's grad cleared)."""
    def run(stale):
        rng = np.random.default_rng(1)
        x = rng.standard_normal((8, 3)).astype(np.float32)
        y = rng.standard_normal((8, 2)).astype(np.float32)
        model = nn.Sequential(nn.Linear(3, 4, seed=0), nn.Linear(4, 2, seed=1))
        model[0].requires_grad_(False)
        model[0].weight.grad[...] = stale
        trainable = [p for p in model.parameters() if p.requires_grad]
        tr = Trainer(model, losses.MSELoss(), optim.SGD(trainable, lr=0.1), clip_grad_norm=0.5)
        tr.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
        return params(model)
    assert_params_equal(run(1e3), run(0.0), "trainable parameters with a stale frozen grad")


def test_trainer_file_with_another_schedule_changes_nothing_of_into(tmp_path):
    """A file saved with StepLR loaded into a trainer with ExponentialLR: rejected before the
    model, optimiser or schedule of `into` change, and the error says what does not fit."""
    from rnnkit.optim.lr_scheduler import ExponentialLR
    x, y = reg_data(n=8)
    tr = _trainer_with_progress()        # StepLR, two epochs done
    path = tmp_path / "steplr.rnnkit"
    rnnkit.save(tr, path)
    model = reg_model()
    opt = optim.SGD(model.parameters(), lr=0.1)
    into = Trainer(model, losses.MSELoss(), opt, scheduler=ExponentialLR(opt, gamma=0.9),
                   seed=3)
    for p in into.model.parameters():
        p.data[...] = 0.25
    snapshot = params(into.model)
    lrs = [g["lr"] for g in opt.param_groups]
    sched_before = into.scheduler.state_dict()
    with pytest.raises(ValueError, match="does not load into the trainer's ExponentialLR"):
        rnnkit.load(path, into=into)
    assert_params_equal(params(into.model), snapshot, "into after the rejected load")
    assert [g["lr"] for g in opt.param_groups] == lrs and into.epoch == 0
    assert into.scheduler.state_dict() == sched_before
