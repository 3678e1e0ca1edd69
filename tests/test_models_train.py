"""End-to-end training of tiny models, one per recurrent model shape: many-to-one,
many-to-many and one-to-many (with generation). Each checks that the loss falls well below
its starting value. The optimiser is a few lines of Adam over Parameter.data / .grad."""

import numpy as np

import rnnkit.nn as nn
from rnnkit.generate import sample
from rnnkit.losses import CrossEntropyLoss


class TinyAdam:
    def __init__(self, params, lr):
        self.params, self.lr, self.t = list(params), lr, 0
        self.m = [np.zeros_like(p.data) for p in self.params]
        self.v = [np.zeros_like(p.data) for p in self.params]

    def step(self):
        self.t += 1
        for p, m, v in zip(self.params, self.m, self.v):
            m[...] = 0.9 * m + 0.1 * p.grad
            v[...] = 0.999 * v + 0.001 * p.grad ** 2
            mhat = m / (1 - 0.9 ** self.t)
            vhat = v / (1 - 0.999 ** self.t)
            p.data -= (self.lr * mhat / (np.sqrt(vhat) + 1e-8)).astype(p.data.dtype)


def train(model, loss_fn, x, y, steps, lr, lengths=None):
    opt = TinyAdam(model.parameters(), lr)
    losses = []
    for _ in range(steps):
        model.zero_grad()
        out = model(x, lengths=lengths)
        losses.append(loss_fn(out, y))
        model.backward(loss_fn.backward())
        opt.step()
    return losses


def test_many_to_one_sign_of_sum():
    """Classify whether a variable-length sequence's sum is positive."""
    rng = np.random.default_rng(0)
    T, B = 10, 128
    lengths = rng.integers(3, T + 1, B)
    x = rng.standard_normal((T, B, 1)).astype(np.float32)
    x[np.arange(T)[:, None] >= lengths[None, :]] = 0.0
    y = (x.sum(axis=(0, 2)) > 0).astype(np.int64)
    model = nn.Sequential(nn.LSTM(1, 16, seed=1), nn.Last(), nn.Linear(16, 2, seed=2))
    losses = train(model, CrossEntropyLoss(), x, y, steps=150, lr=0.02, lengths=lengths)
    assert losses[-1] < 0.05 * losses[0], (losses[0], losses[-1])
    model.eval()
    acc = np.mean(model(x, lengths=lengths).argmax(-1) == y)
    assert acc > 0.9


def test_many_to_many_tag_repeats():
    """Tag each step 1 if its token equals the previous token (needs memory)."""
    rng = np.random.default_rng(1)
    B, T, V = 64, 12, 4
    tokens = rng.integers(0, V, (B, T))
    lengths = rng.integers(4, T + 1, B)
    tags = np.zeros((B, T), np.int64)
    tags[:, 1:] = tokens[:, 1:] == tokens[:, :-1]
    tags[np.arange(T)[None, :] >= lengths[:, None]] = -100      # padding: ignored
    model = nn.Sequential(nn.Embedding(V, 8, seed=0),
                          nn.GRU(8, 16, batch_first=True, bidirectional=True, seed=1),
                          nn.Linear(32, 2, seed=2))
    losses = train(model, CrossEntropyLoss(), tokens, tags, steps=120, lr=0.02, lengths=lengths)
    assert losses[-1] < 0.05 * losses[0], (losses[0], losses[-1])


def test_one_to_many_learns_and_generates_a_pattern():
    """Next-token prediction on a repeating pattern, then generate it back from a seed."""
    pattern = np.array([0, 1, 2, 3, 4, 2])
    V, T, B = 5, 14, 32
    rng = np.random.default_rng(2)
    offsets = rng.integers(0, len(pattern), B)
    seqs = pattern[(offsets[:, None] + np.arange(T + 1)[None, :]) % len(pattern)]   # (B, T+1)
    x, y = seqs[:, :-1].T, seqs[:, 1:].T                                            # (T, B)
    model = nn.Sequential(nn.Embedding(V, 8, seed=0), nn.LSTM(8, 24, seed=1),
                          nn.Linear(24, V, seed=2))
    losses = train(model, CrossEntropyLoss(), x, y, steps=150, lr=0.03)
    assert losses[-1] < 0.05 * losses[0], (losses[0], losses[-1])

    prime = np.array([3, 4, 2])                       # unambiguous context: ... 3 4 2 -> 0 1 2
    expected = np.tile(pattern, 3)[:12]
    greedy = sample(*model, prime, 12, temperature=0.0)
    np.testing.assert_array_equal(greedy, expected)
    np.testing.assert_array_equal(sample(*model, prime, 12, top_k=1, seed=5), expected)
    # sampling is reproducible from the seed; a batch of primes works
    a = sample(*model, prime, 12, temperature=1.5, seed=3)
    np.testing.assert_array_equal(a, sample(*model, prime, 12, temperature=1.5, seed=3))
    both = sample(*model, np.stack([prime, prime]), 12, temperature=0.0)
    np.testing.assert_array_equal(both, np.stack([expected, expected]))
    assert model.training, "sample restores the mode"
    # the same weights in an LSTMCell generate the same sequence step by step
    cell = nn.LSTMCell(8, 24)
    cell.load_state_dict({k[:-3]: v for k, v in model[1].state_dict().items()})
    np.testing.assert_array_equal(sample(model[0], cell, model[2], prime, 12, temperature=0.0),
                                  expected)
