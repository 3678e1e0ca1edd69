"""A slow, obvious float64 reference of attention (rnnkit.nn.Attention), written from the
formulas with loops over the batch, the query steps and the key steps: no shared code with the
layer, no vectorised tricks, no masking by -inf.

Everything is batch-major here: query (B, Tq, Hq), keys (B, Tk, Hk), values (B, Tk, Hv);
returns context (B, Tq, Hv) and weights (B, Tq, Tk).
"""
import math

import numpy as np


def score(kind, q, k, params, scale=False):
    """The score of one query vector q (Hq,) against one key vector k (Hk,)."""
    q = np.asarray(q, np.float64)
    k = np.asarray(k, np.float64)
    if kind == "dot":
        s = float(np.dot(q, k))
        return s / math.sqrt(k.shape[0]) if scale else s
    if kind == "general":
        w = np.asarray(params["weight"], np.float64)           # (Hq, Hk)
        total = 0.0
        for a in range(w.shape[0]):
            for c in range(w.shape[1]):
                total += q[a] * w[a, c] * k[c]
        return total
    if kind == "additive":
        w_q = np.asarray(params["weight_query"], np.float64)   # (A, Hq)
        w_k = np.asarray(params["weight_key"], np.float64)     # (A, Hk)
        b = np.asarray(params["bias"], np.float64)             # (A,)
        v = np.asarray(params["v"], np.float64)                # (A,)
        total = 0.0
        for a in range(v.shape[0]):
            total += v[a] * math.tanh(w_q[a] @ q + w_k[a] @ k + b[a])
        return total
    raise ValueError(kind)


def attention(kind, query, keys, values=None, params=None, key_lengths=None, scale=False):
    """context, weights of ``kind`` ("dot", "general", "additive") attention; keys at steps
    j >= key_lengths[b] are skipped altogether (weight 0); a sequence with no valid key gets
    weights 0 and context 0."""
    query = np.asarray(query, np.float64)
    keys = np.asarray(keys, np.float64)
    values = keys if values is None else np.asarray(values, np.float64)
    params = params or {}
    bsz, tq, _ = query.shape
    tk = keys.shape[1]
    hv = values.shape[2]
    context = np.zeros((bsz, tq, hv))
    weights = np.zeros((bsz, tq, tk))
    for b in range(bsz):
        n = tk if key_lengths is None else int(key_lengths[b])
        for i in range(tq):
            if n == 0:
                continue
            s = [score(kind, query[b, i], keys[b, j], params, scale) for j in range(n)]
            top = max(s)
            e = [math.exp(x - top) for x in s]
            z = sum(e)
            for j in range(n):
                weights[b, i, j] = e[j] / z
                context[b, i] += weights[b, i, j] * values[b, j]
    return context, weights
