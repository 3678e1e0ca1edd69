"""The Trainer with the losses' newer options: a batch whose targets are all ignored (its mean
is NaN, as in torch) is skipped, not taken for a diverged run; a weighted loss's epoch metric
is the whole set's weighted mean, whatever the batching (its count is a sum of weights)."""
import numpy as np

from rnnkit import losses, nn, optim
from rnnkit.train import Trainer


def _model(seed=0):
    model = nn.Sequential(nn.Linear(3, 4, seed=seed))
    return model


def test_all_ignored_batch_is_skipped_not_a_divergence():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 3)).astype(np.float32)
    y = rng.integers(0, 4, 8)
    y[:4] = -100  # the first batch of 4 has nothing to learn from
    model = _model()
    start = [p.data.copy() for p in model.parameters()]
    trainer = Trainer(model, losses.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1))
    history = trainer.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0)
    assert history.stop_reason is None
    # The reference: one SGD step on the second batch alone.
    ref = _model()
    ref_trainer = Trainer(ref, losses.CrossEntropyLoss(), optim.SGD(ref.parameters(), lr=0.1))
    ref_trainer.fit(x[4:], y[4:], epochs=1, batch_size=4, shuffle=False, verbose=0)
    for p, q, s in zip(model.parameters(), ref.parameters(), start):
        assert not np.array_equal(p.data, s)
        np.testing.assert_array_equal(p.data, q.data)


def test_weighted_loss_metric_is_the_weighted_mean_over_the_set():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((10, 3)).astype(np.float64)
    y = rng.integers(0, 4, 10)
    weight = np.array([0.5, 2.0, 1.0, 3.0])
    model = nn.Sequential(nn.Linear(3, 4, seed=2, dtype="float64"))
    trainer = Trainer(model, losses.CrossEntropyLoss(weight=weight),
                      optim.SGD(model.parameters(), lr=0.1))
    got = trainer.evaluate(x, y, batch_size=3)["loss"]
    # numpy: -sum_i w[y_i] log softmax(z_i)[y_i] / sum_i w[y_i]
    z = x @ model[0].weight.data.T + model[0].bias.data
    logp = z - z.max(axis=1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
    want = -(weight[y] * logp[np.arange(10), y]).sum() / weight[y].sum()
    np.testing.assert_allclose(got, want, rtol=1e-12)
