"""The Trainer's seams: the hook between backward and the optimiser step, metrics that come
from the loss, the scheduler protocol, truncated BPTT in its own module, and lengths
checked by the one validator of rnnkit.ops."""

import numpy as np
import pytest

from rnnkit import losses, nn, optim
from rnnkit.ops import _validate
from rnnkit.optim import lr_scheduler
from rnnkit.train import Callback, Trainer, tbptt

from _train_helpers import (assert_params_differ, assert_params_equal, make_trainer, params,
                            reg_data, reg_model, token_data, token_model)


# ============================================================================ on_after_backward


class GradProbe(Callback):
    """Records every parameter's gradient and the global step at on_after_backward."""

    def __init__(self):
        self.grads, self.steps, self.batches = [], [], []

    def on_after_backward(self, trainer, batch):
        self.grads.append({n: p.grad.copy() for n, p in trainer.model.named_parameters()})
        self.steps.append(trainer.global_step)
        self.batches.append(batch)


def test_after_backward_sees_the_clipped_gradients_the_step_uses():
    x, y = reg_data(n=8)
    model = reg_model()
    before = params(model)
    probe = GradProbe()
    tr = make_trainer(model, lr=0.5, clip=0.05)
    tr.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0, callbacks=[probe])
    assert probe.steps == [0] and probe.batches == [0]   # before the (only) step
    g = probe.grads[0]
    norm = np.sqrt(sum((v.astype(np.float64) ** 2).sum() for v in g.values()))
    assert norm == pytest.approx(0.05, rel=1e-4)           # clipped, not raw
    # the step used exactly those gradients: p_new = p_old - lr * g
    for name, p in model.named_parameters():
        np.testing.assert_array_equal(p.data, before[name] - 0.5 * g[name], err_msg=name)


class ScaleGrads(Callback):
    def __init__(self, factor):
        self.factor = factor

    def on_after_backward(self, trainer, batch):
        for p in trainer.model.parameters():
            p.grad *= self.factor


def test_after_backward_can_change_the_gradients():
    x, y = reg_data(n=12)
    # Halving every gradient under plain SGD is the same as halving the learning rate
    # (x 0.5 is exact in floating point).
    a, b = reg_model(), reg_model()
    make_trainer(a, lr=0.2).fit(x, y, epochs=2, batch_size=4, verbose=0,
                                callbacks=[ScaleGrads(0.5)])
    make_trainer(b, lr=0.1).fit(x, y, epochs=2, batch_size=4, verbose=0)
    assert_params_equal(params(a), params(b))
    # Zeroing them freezes the model.
    c = reg_model()
    before = params(c)
    make_trainer(c, lr=0.2).fit(x, y, epochs=1, batch_size=4, verbose=0,
                                callbacks=[ScaleGrads(0.0)])
    assert_params_equal(params(c), before)


def test_after_backward_runs_once_per_tbptt_chunk():
    x, y = token_data(n=6, t=8)
    probe = GradProbe()
    model = token_model()
    tr = Trainer(model, losses.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1))
    tr.fit(x, y, epochs=1, batch_size=3, tbptt=3, verbose=0, callbacks=[probe])
    # 2 batches x ceil(8 / 3) = 3 chunks, one optimiser step each
    assert tr.global_step == 6
    assert probe.steps == list(range(6))
    assert probe.batches == [0, 0, 0, 1, 1, 1]


# ============================================================================ metrics from the loss


class MSEWithMAE(losses.MSELoss):
    """A user's loss that reports one more metric, as (sum, count) per batch."""

    def metrics(self, prediction, target):
        return {"mae": (float(np.abs(prediction - target).sum()), int(np.size(target)))}


def test_epoch_metrics_come_from_the_loss():
    x, y = reg_data(n=10)
    tr = make_trainer(reg_model(), loss=MSEWithMAE())
    history = tr.fit(x, y, epochs=2, batch_size=4, verbose=0, validation_data=(x, y))
    assert set(history.history) == {"loss", "mae", "val_loss", "val_mae"}
    got = tr.evaluate(x, y, batch_size=3)
    pred = tr.predict(x)
    assert got["mae"] == pytest.approx(np.abs(pred - y).mean(), rel=1e-12)
    assert got["loss"] == pytest.approx(((pred - y) ** 2).mean(), rel=1e-12)


def test_cross_entropy_accuracy_is_its_metric():
    ce = losses.CrossEntropyLoss(ignore_index=2)
    pred = np.array([[0.0, 1.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 5.0], [1.0, 0.0, 0.0]])
    target = np.array([1, 1, 2, 0])
    assert ce.metrics(pred, target) == {"accuracy": (2, 3)}   # the third is ignored
    assert ce.count(pred, target) == 3
    assert losses.CrossEntropyLoss(reduction="sum").count(pred, target) == 1
    assert losses.MSELoss().metrics(pred, pred) == {}
    assert losses.MSELoss().count(pred, pred) == pred.size


# ============================================================================ scheduler protocol


class MetricSchedule:
    """A user's schedule that wants the monitored metric, marked by the protocol attribute."""

    _steps_on_metric = True

    def __init__(self):
        self.seen = []

    def step(self, metric):
        self.seen.append(metric)

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


class ReduceLROnPlateau:
    """Named like torch's class but steps once per epoch without a metric."""

    def __init__(self):
        self.calls = 0

    def step(self):
        self.calls += 1

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def test_scheduler_protocol_is_an_attribute_not_a_class_name():
    x, y = reg_data(n=8)
    sched = MetricSchedule()
    tr = make_trainer(reg_model(), scheduler=lambda o: sched)
    history = tr.fit(x, y, epochs=3, batch_size=4, verbose=0, validation_data=(x, y))
    assert sched.seen == history.history["val_loss"]
    by_name = ReduceLROnPlateau()
    make_trainer(reg_model(), scheduler=lambda o: by_name).fit(x, y, epochs=2, batch_size=4,
                                                               verbose=0)
    assert by_name.calls == 2
    assert lr_scheduler.ReduceLROnPlateau._steps_on_metric
    assert not lr_scheduler.StepLR._steps_on_metric


# ============================================================================ tbptt module


def test_tbptt_chunks_and_their_lengths():
    xb = np.arange(2 * 7).reshape(2, 7)
    lb = np.array([7, 2])
    got = list(tbptt.chunks(xb, xb + 100, lb, 3))
    assert [c[0].shape for c in got] == [(2, 3), (2, 3), (2, 1)]
    assert [c[2].tolist() for c in got] == [[3, 2], [3, 0], [1, 0]]
    np.testing.assert_array_equal(np.concatenate([c[1] for c in got], axis=1), xb + 100)


def test_state_carriers_are_the_recurrent_layers():
    model = token_model(num_layers=2)
    found = tbptt.state_carriers(model)
    assert found == [model[1]]
    with pytest.raises(ValueError, match="recurrent"):
        tbptt.state_carriers(nn.Sequential(nn.Linear(2, 2)))
    with tbptt.CarriedState(found):
        assert model[1].carry_state
    assert not model[1].carry_state


# ============================================================================ lengths, checked once


@pytest.mark.parametrize("bad", [np.array([5, 7, 1]), np.array([4, 3]), np.array([1.0, 2.0, 3.0]),
                                 np.array([True, False, True])])
def test_fit_checks_lengths_before_training_even_if_no_layer_reads_them(bad):
    x, y = reg_data(n=3, t=6)
    model = nn.Sequential(nn.Linear(3, 2, dtype="float64", seed=0))   # ignores lengths
    before = params(model)
    tr = make_trainer(model)
    with pytest.raises((TypeError, ValueError), match="lengths"):
        tr.fit(x, y, epochs=1, batch_size=2, lengths=bad, verbose=0)
    assert_params_equal(params(model), before)
    assert tr.epoch == 0


@pytest.mark.parametrize("bad", [np.array([5, 1]), np.array([1, 2, 3]), np.array([1.5, 2.0])])
def test_last_reports_lengths_errors_as_the_kernels_do(bad):
    x = np.zeros((4, 2, 3), np.float32)            # T=4, B=2
    with pytest.raises((TypeError, ValueError)) as ops_err:
        _validate.lengths_array(bad, 2, 4)
    with pytest.raises(type(ops_err.value)) as last_err:
        nn.Last()(x, lengths=bad)
    assert str(last_err.value) == str(ops_err.value)


def test_valid_lengths_still_train():
    x, y = reg_data(n=6, t=5)
    model = reg_model()
    before = params(model)
    make_trainer(model).fit(x, y, epochs=1, batch_size=3, lengths=np.array([5, 1, 0, 3, 5, 2],
                                                                           np.int32), verbose=0)
    assert_params_differ(params(model), before)
