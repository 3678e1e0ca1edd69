"""nn.Seq2Seq: gradients against finite differences, teacher forcing against step-by-step
decoding, beam search against an exhaustive search, greedy against beam width 1, save/load."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

import rnnkit
from rnnkit import losses, nn

V_SRC, V_TGT, BOS, EOS = 7, 5, 1, 2


def _model(score="general", layers=1, dtype="float64", seed=0, **kw):
    return nn.Seq2Seq(V_SRC, V_TGT, embedding_dim=4, hidden_size=6, num_layers=layers,
                      score=score, bos=BOS, eos=EOS, dtype=dtype, seed=seed, **kw)


def _batch(rng, B=3, S=5, T=4):
    src_len = np.array([S, 2, 4][:B])
    src = rng.integers(1, V_SRC, (B, S))
    src[np.arange(S)[None, :] >= src_len[:, None]] = 0
    t_in = rng.integers(0, V_TGT, (B, T))
    t_in[:, 0] = BOS
    t_out = rng.integers(0, V_TGT, (B, T))
    tgt_len = np.array([T, 3, 1][:B])
    t_out[np.arange(T)[None, :] >= tgt_len[:, None]] = -100
    return src, src_len, t_in, t_out, tgt_len


def _loss(model, batch):
    src, src_len, t_in, t_out, tgt_len = batch
    fn = losses.CrossEntropyLoss(reduction="sum")
    return fn(model(src, t_in, src_len, tgt_len), t_out), fn


@pytest.mark.parametrize("score,layers", [("general", 1), ("dot", 2), ("additive", 1)])
def test_gradients_match_finite_differences(score, layers):
    rng = np.random.default_rng(1)
    model = _model(score, layers)
    batch = _batch(rng)
    model.zero_grad()
    loss, fn = _loss(model, batch)
    model.backward(fn.backward())
    eps = 1e-6
    for name, p in model.named_parameters():
        flat = p.data.reshape(-1)
        for i in rng.choice(flat.size, size=min(3, flat.size), replace=False):
            old = flat[i]
            flat[i] = old + eps
            up, _ = _loss(model, batch)
            flat[i] = old - eps
            down, _ = _loss(model, batch)
            flat[i] = old
            numeric = (up - down) / (2 * eps)
            analytic = p.grad.reshape(-1)[i]
            assert abs(numeric - analytic) <= 1e-5 * max(1.0, abs(numeric)), (name, i)


def _sequence_logprob(model, src, src_len, tokens):
    """log P(tokens + [eos] | src) from one teacher-forced forward (eval mode)."""
    t_in = np.array([[BOS] + tokens], np.int64)
    logits = model(src, t_in, src_len).astype(np.float64)[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(sum(logp[t, tok] for t, tok in enumerate(tokens + [EOS])))


def test_beam_search_with_a_wide_beam_is_exhaustive():
    rng = np.random.default_rng(2)
    model = _model(seed=3).eval()
    src, src_len = rng.integers(1, V_SRC, (1, 4)), np.array([4])
    max_length = 4
    for alpha in (0.0, 1.0):
        best, best_seq = -np.inf, None
        others = [t for t in range(V_TGT) if t != EOS]
        for n in range(max_length):
            for seq in itertools.product(others, repeat=n):
                score = _sequence_logprob(model, src, src_len, list(seq)) / (n + 1) ** alpha
                if score > best:
                    best, best_seq = score, list(seq)
        found = model.beam_search(src, src_len, beam_width=len(others) ** max_length,
                                  max_length=max_length, length_penalty=alpha)
        assert found == [best_seq], alpha


def test_greedy_equals_beam_width_one_and_teacher_forcing():
    rng = np.random.default_rng(4)
    model = _model("additive", 2, seed=5).eval()
    src, src_len, _, _, _ = _batch(rng)
    greedy = model.greedy_decode(src, src_len, max_length=6)
    assert greedy == model.beam_search(src, src_len, beam_width=1, max_length=6)
    # Each greedy token is the argmax of the teacher-forced logits given the ones before it.
    for b, seq in enumerate(greedy):
        t_in = np.array([[BOS] + seq], np.int64)
        logits = model(src[b:b + 1], t_in, src_len[b:b + 1])[0]
        expected = logits.argmax(axis=1)
        n = len(seq)
        assert seq == expected[:n].tolist()
        if n < 6:
            assert expected[n] == EOS


def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(6)
    model = _model(dtype="float32", seed=7).eval()
    src, src_len, t_in, _, tgt_len = _batch(rng)
    path = tmp_path / "s2s.npz"
    rnnkit.save(model, path)
    loaded = rnnkit.load(path).eval()
    np.testing.assert_array_equal(loaded(src, t_in, src_len, tgt_len),
                                  model(src, t_in, src_len, tgt_len))
    assert loaded.beam_search(src, src_len) == model.beam_search(src, src_len)


def test_bad_arguments():
    with pytest.raises(ValueError, match="hidden_size must be even"):
        nn.Seq2Seq(5, 5, hidden_size=7)
    with pytest.raises(ValueError, match="eos"):
        nn.Seq2Seq(5, 5, eos=9)
    model = _model()
    with pytest.raises(ValueError, match="source"):
        model(np.zeros(3, np.int64), np.zeros((1, 2), np.int64))
    with pytest.raises(TypeError, match="target_in"):
        model(np.zeros((1, 3), np.int64), np.zeros((1, 2)))
    with pytest.raises(ValueError, match="batch"):
        model(np.ones((2, 3), np.int64), np.ones((1, 2), np.int64))


def test_hostile_file_is_refused_before_building(tmp_path):
    # A file naming a huge Seq2Seq but holding no weights: refused from the metadata, before
    # the sub-layers (terabytes of embeddings) are built.
    meta = {"format": "rnnkit", "format_version": 1, "kind": "model",
            "model": {"architecture": {"class": "Seq2Seq", "config": {
                "source_vocab": 10 ** 7, "target_vocab": 10 ** 7, "embedding_dim": 10 ** 5,
                "hidden_size": 10 ** 5}}, "rng": {}}}
    path = tmp_path / "f.rnnkit"
    with open(path, "wb") as f:
        np.savez(f, __meta__=np.frombuffer(json.dumps(meta).encode(), np.uint8))
    with pytest.raises(ValueError, match="needs the parameter 'source_embedding.weight'"):
        rnnkit.load(path)
