"""Slow, obvious float64 numpy reference cells (the one place a time loop is welcome).

Semantics are those of API.md ("Conventions", "Functional kernels"):

* x is (T, B, I), time-major; h0 / c0 are (B, H) or None (zeros); biases may be None (zeros).
* PyTorch weight layout: w_ih (G*H, I), w_hh (G*H, H), b_ih / b_hh (G*H,).
  LSTM gates i, f, g, o (G = 4); GRU gates r, z, n (G = 3) with
  n = tanh(W_in x + b_in + r * (W_hn h + b_hn)) and h' = (1 - z) * n + z * h;
  RNN (G = 1): h' = act(W_ih x + b_ih + W_hh h + b_hh), act = tanh | relu.
* Variants (same layout and gate order):
  GRU reset_after=False (Cho et al.; ONNX linear_before_reset=0; Keras reset_after=False):
  n = tanh(W_in x + b_in + W_hn (r * h) + b_hn).
  Peephole LSTM, peephole = [p_i, p_f, p_o] (3H,) (our gate order; ONNX's P is i, o, f):
  i = sigmoid(a_i + p_i * c_{t-1}), f = sigmoid(a_f + p_f * c_{t-1}),
  o = sigmoid(a_o + p_o * c_t), where a = W_ih x + b_ih + W_hh h + b_hh.
* lengths (B,) ints in 0..T: outputs at t >= lengths[b] are 0; the final state of sequence b is
  its state after its last processed step (h0 / c0 if lengths[b] == 0).
* reverse=True processes sequence b from its own last valid step lengths[b]-1 down to 0;
  the output of the step at time t is stored in y[t].

Each sequence of the batch is run on its own, one step at a time, with matrix-vector
products, so the code reads like the equations.  Forward returns the outputs plus a cache (a
"tape" of every step); backward walks the tape in reverse (BPTT) and returns the gradients
as a named tuple with the same fields as rnnkit.ops.
"""

from collections import namedtuple

import numpy as np

LSTMGrads = namedtuple("LSTMGrads", "dx dh0 dc0 dw_ih dw_hh db_ih db_hh")
# A separate type (rather than an eighth field on LSTMGrads) so that code unpacking the seven
# gradients of a plain LSTM keeps working; dpeephole is last, shaped like peephole (3H,).
PeepholeLSTMGrads = namedtuple("PeepholeLSTMGrads", LSTMGrads._fields + ("dpeephole",))
Grads = namedtuple("Grads", "dx dh0 dw_ih dw_hh db_ih db_hh")


def sigmoid(a):
    # tanh form: exact to rounding and never overflows (1/(1+exp(-a)) warns for a < -709).
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def _f64(a):
    return None if a is None else np.array(a, dtype=np.float64)


def _time_order(length, reverse):
    """Time indices that sequence of length `length` visits, in processing order."""
    return list(range(length - 1, -1, -1)) if reverse else list(range(length))


def _setup(x, h0, w_ih, w_hh, b_ih, b_hh, gates, lengths):
    x = _f64(x)
    w_ih, w_hh = _f64(w_ih), _f64(w_hh)
    T, B, I = x.shape
    H = w_hh.shape[1]
    assert w_ih.shape == (gates * H, I) and w_hh.shape == (gates * H, H)
    has_bias = b_ih is not None
    assert (b_hh is not None) == has_bias, "reference: give both biases or neither"
    b_ih = np.zeros(gates * H) if b_ih is None else _f64(b_ih)
    b_hh = np.zeros(gates * H) if b_hh is None else _f64(b_hh)
    h0 = np.zeros((B, H)) if h0 is None else _f64(h0)
    if lengths is None:
        lengths = np.full(B, T, dtype=np.int64)
    lengths = np.asarray(lengths).astype(np.int64)
    assert lengths.shape == (B,) and np.all(lengths >= 0) and np.all(lengths <= T)
    return x, h0, w_ih, w_hh, b_ih, b_hh, lengths, has_bias, (T, B, I, H)


def _grad_buffers(cache, dy, dh_n):
    T, B, I, H = cache["dims"]
    G = cache["gates"]
    dy = _f64(dy)
    assert dy.shape == (T, B, H)
    dh_n = np.zeros((B, H)) if dh_n is None else _f64(dh_n)
    return (dy, dh_n, np.zeros((T, B, I)), np.zeros((B, H)),
            np.zeros((G * H, I)), np.zeros((G * H, H)), np.zeros(G * H), np.zeros(G * H))


# ----------------------------------------------------------------------------------- LSTM


def _peephole(peephole, H):
    """peephole as a float64 (3H,) array [p_i, p_f, p_o], or None."""
    if peephole is None:
        return None
    p = _f64(peephole)
    if p.shape != (3 * H,):
        raise ValueError(f"peephole: expected shape (3*H,) = ({3 * H},) with gates i, f, o, "
                         f"got {p.shape}")
    return p


def lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, *, lengths=None, reverse=False,
                 peephole=None):
    """Returns y (T,B,H), h_n (B,H), c_n (B,H), cache.

    peephole: None (plain LSTM) or (3H,) [p_i, p_f, p_o]: i and f also see c_{t-1}
    (i = sigmoid(a_i + p_i * c_{t-1}), f likewise) and o sees the new c_t.
    """
    x, h0, w_ih, w_hh, b_ih, b_hh, lengths, has_bias, dims = _setup(
        x, h0, w_ih, w_hh, b_ih, b_hh, 4, lengths)
    T, B, I, H = dims
    peep = _peephole(peephole, H)
    # zeros give exactly the plain LSTM (p * c adds 0.0), so one code path serves both
    p_i, p_f, p_o = np.split(np.zeros(3 * H) if peep is None else peep, 3)
    c0 = np.zeros((B, H)) if c0 is None else _f64(c0)
    y = np.zeros((T, B, H))
    h_n = np.zeros((B, H))
    c_n = np.zeros((B, H))
    tape = []
    for b in range(B):
        h, c = h0[b].copy(), c0[b].copy()
        steps = []
        for t in _time_order(lengths[b], reverse):
            a = w_ih @ x[t, b] + b_ih + w_hh @ h + b_hh
            i = sigmoid(a[0 * H:1 * H] + p_i * c)
            f = sigmoid(a[1 * H:2 * H] + p_f * c)
            g = np.tanh(a[2 * H:3 * H])
            c_new = f * c + i * g
            o = sigmoid(a[3 * H:4 * H] + p_o * c_new)
            h_new = o * np.tanh(c_new)
            steps.append(dict(t=t, h_prev=h, c_prev=c, i=i, f=f, g=g, o=o, c=c_new))
            h, c = h_new, c_new
            y[t, b] = h
        h_n[b], c_n[b] = h, c
        tape.append(steps)
    cache = dict(x=x, w_ih=w_ih, w_hh=w_hh, has_bias=has_bias, tape=tape, dims=dims, gates=4,
                 peephole=peep)
    return y, h_n, c_n, cache


def lstm_backward(cache, dy, dh_n=None, dc_n=None):
    """Gradients of <dy, y> + <dh_n, h_n> + <dc_n, c_n>: LSTMGrads, or PeepholeLSTMGrads
    (the same fields plus dpeephole (3H,)) when the forward had a peephole."""
    dy, dh_n, dx, dh0, dw_ih, dw_hh, db_ih, db_hh = _grad_buffers(cache, dy, dh_n)
    T, B, I, H = cache["dims"]
    dc_n = np.zeros((B, H)) if dc_n is None else _f64(dc_n)
    dc0 = np.zeros((B, H))
    x, w_ih, w_hh = cache["x"], cache["w_ih"], cache["w_hh"]
    peep = cache.get("peephole")
    p_i, p_f, p_o = np.split(np.zeros(3 * H) if peep is None else peep, 3)
    dp_i, dp_f, dp_o = np.zeros(H), np.zeros(H), np.zeros(H)
    for b in range(B):
        dh = dh_n[b].copy()  # dL/dh after the current step (excluding its own output)
        dc = dc_n[b].copy()  # dL/dc after the current step
        for s in reversed(cache["tape"][b]):
            t, i, f, g, o = s["t"], s["i"], s["f"], s["g"], s["o"]
            dh = dh + dy[t, b]
            tanh_c = np.tanh(s["c"])
            do = dh * tanh_c
            dao = do * o * (1.0 - o)
            # c_t reaches the loss through h = o * tanh(c) and, with a peephole, through o
            dc = dc + dh * o * (1.0 - tanh_c ** 2) + dao * p_o
            di = dc * g
            dg = dc * i
            df = dc * s["c_prev"]
            dai = di * i * (1.0 - i)
            daf = df * f * (1.0 - f)
            da = np.concatenate([dai, daf, dg * (1.0 - g ** 2), dao])
            dx[t, b] = w_ih.T @ da
            dw_ih += np.outer(da, x[t, b])
            dw_hh += np.outer(da, s["h_prev"])
            db_ih += da
            db_hh += da
            dp_i += dai * s["c_prev"]
            dp_f += daf * s["c_prev"]
            dp_o += dao * s["c"]
            dh = w_hh.T @ da
            # c_{t-1} feeds c_t through f and, with a peephole, the i and f gates
            dc = dc * f + dai * p_i + daf * p_f
        dh0[b] = dh
        dc0[b] = dc
    if not cache["has_bias"]:
        db_ih = db_hh = None
    if peep is None:
        return LSTMGrads(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh)
    return PeepholeLSTMGrads(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh,
                             np.concatenate([dp_i, dp_f, dp_o]))


# ------------------------------------------------------------------------------------ GRU


def gru_forward(x, h0, w_ih, w_hh, b_ih, b_hh, *, lengths=None, reverse=False,
                reset_after=True):
    """Returns y (T,B,H), h_n (B,H), cache.

    reset_after=True (torch, cuDNN, ONNX linear_before_reset=1):
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn));
    reset_after=False (Cho et al. 2014, ONNX linear_before_reset=0, Keras reset_after=False):
        n = tanh(W_in x + b_in + W_hn (r * h) + b_hn).
    """
    x, h0, w_ih, w_hh, b_ih, b_hh, lengths, has_bias, dims = _setup(
        x, h0, w_ih, w_hh, b_ih, b_hh, 3, lengths)
    T, B, I, H = dims
    w_hn, b_hn = w_hh[2 * H:3 * H], b_hh[2 * H:3 * H]
    y = np.zeros((T, B, H))
    h_n = np.zeros((B, H))
    tape = []
    for b in range(B):
        h = h0[b].copy()
        steps = []
        for t in _time_order(lengths[b], reverse):
            gi = w_ih @ x[t, b] + b_ih  # input side, gates r, z, n
            gh = w_hh @ h + b_hh        # hidden side, gates r, z, n
            r = sigmoid(gi[0 * H:1 * H] + gh[0 * H:1 * H])
            z = sigmoid(gi[1 * H:2 * H] + gh[1 * H:2 * H])
            if reset_after:
                hn = gh[2 * H:3 * H]    # W_hn h + b_hn, which r multiplies
                n = np.tanh(gi[2 * H:3 * H] + r * hn)
            else:
                hn = None               # r acts on h before the product: nothing to keep
                n = np.tanh(gi[2 * H:3 * H] + w_hn @ (r * h) + b_hn)
            h_new = (1.0 - z) * n + z * h
            steps.append(dict(t=t, h_prev=h, r=r, z=z, n=n, hn=hn))
            h = h_new
            y[t, b] = h
        h_n[b] = h
        tape.append(steps)
    cache = dict(x=x, w_ih=w_ih, w_hh=w_hh, has_bias=has_bias, tape=tape, dims=dims, gates=3,
                 reset_after=bool(reset_after))
    return y, h_n, cache


def gru_backward(cache, dy, dh_n=None):
    """Gradients of <dy, y> + <dh_n, h_n> for either reset_after variant of the forward."""
    dy, dh_n, dx, dh0, dw_ih, dw_hh, db_ih, db_hh = _grad_buffers(cache, dy, dh_n)
    T, B, I, H = cache["dims"]
    x, w_ih, w_hh = cache["x"], cache["w_ih"], cache["w_hh"]
    reset_after = cache.get("reset_after", True)
    w_hn = w_hh[2 * H:3 * H]
    for b in range(B):
        dh = dh_n[b].copy()
        for s in reversed(cache["tape"][b]):
            t, r, z, n, hn, h_prev = s["t"], s["r"], s["z"], s["n"], s["hn"], s["h_prev"]
            dh = dh + dy[t, b]
            dn = dh * (1.0 - z)
            dz = dh * (h_prev - n)
            dan = dn * (1.0 - n ** 2)           # d pre-activation of n
            daz = dz * z * (1.0 - z)
            if reset_after:
                dr = dan * hn
                dar = dr * r * (1.0 - r)
                dgi = np.concatenate([dar, daz, dan])      # d(W_ih x + b_ih)
                dgh = np.concatenate([dar, daz, dan * r])  # d(W_hh h + b_hh)
                dw_hh += np.outer(dgh, h_prev)
                dh = dh * z + w_hh.T @ dgh
            else:
                drh = w_hn.T @ dan                  # d(r * h)
                dar = drh * h_prev * r * (1.0 - r)
                dgi = np.concatenate([dar, daz, dan])
                # the n rows multiply r * h, not h; the bias b_hn sits outside r here
                dgh = dgi
                dw_hh[:2 * H] += np.outer(dgi[:2 * H], h_prev)
                dw_hh[2 * H:] += np.outer(dan, r * h_prev)
                dh = dh * z + w_hh[:2 * H].T @ dgi[:2 * H] + r * drh
            dx[t, b] = w_ih.T @ dgi
            dw_ih += np.outer(dgi, x[t, b])
            db_ih += dgi
            db_hh += dgh
        dh0[b] = dh
    if not cache["has_bias"]:
        db_ih = db_hh = None
    return Grads(dx, dh0, dw_ih, dw_hh, db_ih, db_hh)


# ------------------------------------------------------------------------------------ RNN


def rnn_forward(x, h0, w_ih, w_hh, b_ih, b_hh, *, nonlinearity="tanh", lengths=None,
                reverse=False):
    """Returns y (T,B,H), h_n (B,H), cache."""
    assert nonlinearity in ("tanh", "relu")
    x, h0, w_ih, w_hh, b_ih, b_hh, lengths, has_bias, dims = _setup(
        x, h0, w_ih, w_hh, b_ih, b_hh, 1, lengths)
    T, B, I, H = dims
    y = np.zeros((T, B, H))
    h_n = np.zeros((B, H))
    tape = []
    for b in range(B):
        h = h0[b].copy()
        steps = []
        for t in _time_order(lengths[b], reverse):
            a = w_ih @ x[t, b] + b_ih + w_hh @ h + b_hh
            h_new = np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0.0)
            steps.append(dict(t=t, h_prev=h, h=h_new))
            h = h_new
            y[t, b] = h
        h_n[b] = h
        tape.append(steps)
    cache = dict(x=x, w_ih=w_ih, w_hh=w_hh, has_bias=has_bias, tape=tape, dims=dims, gates=1,
                 nonlinearity=nonlinearity)
    return y, h_n, cache


def rnn_backward(cache, dy, dh_n=None):
    dy, dh_n, dx, dh0, dw_ih, dw_hh, db_ih, db_hh = _grad_buffers(cache, dy, dh_n)
    T, B, I, H = cache["dims"]
    x, w_ih, w_hh = cache["x"], cache["w_ih"], cache["w_hh"]
    for b in range(B):
        dh = dh_n[b].copy()
        for s in reversed(cache["tape"][b]):
            t, h = s["t"], s["h"]
            dh = dh + dy[t, b]
            if cache["nonlinearity"] == "tanh":
                da = dh * (1.0 - h ** 2)
            else:
                da = dh * (h > 0.0)
            dx[t, b] = w_ih.T @ da
            dw_ih += np.outer(da, x[t, b])
            dw_hh += np.outer(da, s["h_prev"])
            db_ih += da
            db_hh += da
            dh = w_hh.T @ da
        dh0[b] = dh
    if not cache["has_bias"]:
        db_ih = db_hh = None
    return Grads(dx, dh0, dw_ih, dw_hh, db_ih, db_hh)


# ------------------------------------------------------------------------ LayerNorm cells
# LN(v; gamma) = gamma * (v - mean(v)) / sqrt(var(v) + eps) over the WHOLE vector (all G*H
# pre-activations of a side, not gate by gate), biased variance and eps as torch.nn.LayerNorm.
# There is no LN bias on the gate sides: b_ih / b_hh, added right after, play that part.

LN_EPS = 1e-5  # torch.nn.LayerNorm's default; fixed, so the compiled cells must use it too

LayerNormLSTMGrads = namedtuple("LayerNormLSTMGrads", LSTMGrads._fields + (
    "dln_weight_ih", "dln_weight_hh", "dln_weight_c", "dln_bias_c"))
LayerNormGRUGrads = namedtuple("LayerNormGRUGrads", Grads._fields + (
    "dln_weight_ih", "dln_weight_hh"))


def _ln_param(name, value, width):
    """A LayerNorm gain or bias as a float64 (width,) array; refuses None and other shapes."""
    if value is None:
        raise ValueError(f"{name}: required, shape ({width},)")
    v = _f64(value)
    if v.shape != (width,):
        raise ValueError(f"{name}: expected shape ({width},), got {v.shape}")
    return v


def _layernorm(v, gamma):
    """Returns gamma * v_hat, v_hat and rstd = 1 / sqrt(var(v) + eps) (both kept for backward)."""
    mu = v.mean()
    rstd = 1.0 / np.sqrt(np.mean((v - mu) ** 2) + LN_EPS)
    v_hat = (v - mu) * rstd
    return gamma * v_hat, v_hat, rstd


def _layernorm_backward(dout, gamma, v_hat, rstd):
    """(dv, dgamma) from dout = dL/d(gamma * v_hat).  mean and variance depend on every
    element, so each dv sees the whole vector: dv = rstd * (dg - mean(dg) - v_hat *
    mean(dg * v_hat)) with dg = dout * gamma."""
    dg = dout * gamma
    dv = rstd * (dg - dg.mean() - v_hat * np.mean(dg * v_hat))
    return dv, dout * v_hat


def layernorm_lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, *, lengths=None, reverse=False,
                           ln_weight_ih, ln_weight_hh, ln_weight_c, ln_bias_c):
    """Returns y (T,B,H), h_n (B,H), c_n (B,H), cache.

    a = LN(W_ih x; ln_weight_ih) + b_ih + LN(W_hh h; ln_weight_hh) + b_hh   (LN over all 4H)
    i, f, o = sigmoid(a_i, a_f, a_o);  g = tanh(a_g);  c' = f * c + i * g  (c not normalised)
    h' = o * tanh(LN(c'; ln_weight_c) + ln_bias_c)                         (LN over H)
    ln_weight_ih, ln_weight_hh: (4H,); ln_weight_c, ln_bias_c: (H,).  The tape keeps the
    normalised rows x_hat, h_hat (4H,) and c_hat (H,) of every step.
    """
    x, h0, w_ih, w_hh, b_ih, b_hh, lengths, has_bias, dims = _setup(
        x, h0, w_ih, w_hh, b_ih, b_hh, 4, lengths)
    T, B, _, H = dims
    g_ih = _ln_param("ln_weight_ih", ln_weight_ih, 4 * H)
    g_hh = _ln_param("ln_weight_hh", ln_weight_hh, 4 * H)
    g_c = _ln_param("ln_weight_c", ln_weight_c, H)
    beta_c = _ln_param("ln_bias_c", ln_bias_c, H)
    c0 = np.zeros((B, H)) if c0 is None else _f64(c0)
    y = np.zeros((T, B, H))
    h_n = np.zeros((B, H))
    c_n = np.zeros((B, H))
    tape = []
    for b in range(B):
        h, c = h0[b].copy(), c0[b].copy()
        steps = []
        for t in _time_order(lengths[b], reverse):
            lx, x_hat, rstd_x = _layernorm(w_ih @ x[t, b], g_ih)
            lh, h_hat, rstd_h = _layernorm(w_hh @ h, g_hh)
            a = lx + b_ih + lh + b_hh
            i = sigmoid(a[0 * H:1 * H])
            f = sigmoid(a[1 * H:2 * H])
            g = np.tanh(a[2 * H:3 * H])
            o = sigmoid(a[3 * H:4 * H])
            c_new = f * c + i * g
            lc, c_hat, rstd_c = _layernorm(c_new, g_c)
            tanh_m = np.tanh(lc + beta_c)
            h_new = o * tanh_m
            steps.append({"t": t, "h_prev": h, "c_prev": c, "i": i, "f": f, "g": g, "o": o,
                          "tanh_m": tanh_m, "x_hat": x_hat, "rstd_x": rstd_x, "h_hat": h_hat,
                          "rstd_h": rstd_h, "c_hat": c_hat, "rstd_c": rstd_c})
            h, c = h_new, c_new
            y[t, b] = h
        h_n[b], c_n[b] = h, c
        tape.append(steps)
    cache = {"x": x, "w_ih": w_ih, "w_hh": w_hh, "has_bias": has_bias, "tape": tape,
             "dims": dims, "gates": 4,
             "ln_weight_ih": g_ih, "ln_weight_hh": g_hh, "ln_weight_c": g_c}
    return y, h_n, c_n, cache


def layernorm_lstm_backward(cache, dy, dh_n=None, dc_n=None):
    """Gradients of <dy, y> + <dh_n, h_n> + <dc_n, c_n>: LayerNormLSTMGrads (LSTMGrads' fields,
    then dln_weight_ih, dln_weight_hh (4H,), dln_weight_c, dln_bias_c (H,))."""
    dy, dh_n, dx, dh0, dw_ih, dw_hh, db_ih, db_hh = _grad_buffers(cache, dy, dh_n)
    _, B, _, H = cache["dims"]
    dc_n = np.zeros((B, H)) if dc_n is None else _f64(dc_n)
    dc0 = np.zeros((B, H))
    x, w_ih, w_hh = cache["x"], cache["w_ih"], cache["w_hh"]
    g_ih, g_hh, g_c = cache["ln_weight_ih"], cache["ln_weight_hh"], cache["ln_weight_c"]
    dg_ih, dg_hh = np.zeros(4 * H), np.zeros(4 * H)
    dg_c, dbeta_c = np.zeros(H), np.zeros(H)
    for b in range(B):
        dh = dh_n[b].copy()  # dL/dh after the current step (excluding its own output)
        dc = dc_n[b].copy()  # dL/dc after the current step
        for s in reversed(cache["tape"][b]):
            t, i, f, g, o, tanh_m = s["t"], s["i"], s["f"], s["g"], s["o"], s["tanh_m"]
            dh = dh + dy[t, b]
            dao = dh * tanh_m * o * (1.0 - o)
            dm = dh * o * (1.0 - tanh_m ** 2)   # d(LN(c') + ln_bias_c)
            dbeta_c += dm
            dc_ln, dgc = _layernorm_backward(dm, g_c, s["c_hat"], s["rstd_c"])
            dg_c += dgc
            # c' reaches the loss through h' (via its LN) and through the next step's f * c
            dc = dc + dc_ln
            dai = dc * g * i * (1.0 - i)
            daf = dc * s["c_prev"] * f * (1.0 - f)
            dag = dc * i * (1.0 - g ** 2)
            da = np.concatenate([dai, daf, dag, dao])
            db_ih += da
            db_hh += da
            # both LN outputs enter a with weight one, so each side's LN gets all of da
            dux, dgx = _layernorm_backward(da, g_ih, s["x_hat"], s["rstd_x"])
            duh, dgh = _layernorm_backward(da, g_hh, s["h_hat"], s["rstd_h"])
            dg_ih += dgx
            dg_hh += dgh
            dx[t, b] = w_ih.T @ dux
            dw_ih += np.outer(dux, x[t, b])
            dw_hh += np.outer(duh, s["h_prev"])
            dh = w_hh.T @ duh
            dc = dc * f
        dh0[b] = dh
        dc0[b] = dc
    if not cache["has_bias"]:
        db_ih = db_hh = None
    return LayerNormLSTMGrads(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dg_ih, dg_hh, dg_c,
                              dbeta_c)


def layernorm_gru_forward(x, h0, w_ih, w_hh, b_ih, b_hh, *, lengths=None, reverse=False,
                          ln_weight_ih, ln_weight_hh):
    """Returns y (T,B,H), h_n (B,H), cache.

    ax = LN(W_ih x; ln_weight_ih) + b_ih;  ah = LN(W_hh h; ln_weight_hh) + b_hh  (LN over 3H)
    r = sigmoid(ax_r + ah_r);  z = sigmoid(ax_z + ah_z);  n = tanh(ax_n + r * ah_n)
    h' = (1 - z) * n + z * h      (reset_after=True: r scales the normalised ah_n, b_hn too)
    ln_weight_ih, ln_weight_hh: (3H,).  The tape keeps the normalised rows x_hat, h_hat.
    """
    x, h0, w_ih, w_hh, b_ih, b_hh, lengths, has_bias, dims = _setup(
        x, h0, w_ih, w_hh, b_ih, b_hh, 3, lengths)
    T, B, _, H = dims
    g_ih = _ln_param("ln_weight_ih", ln_weight_ih, 3 * H)
    g_hh = _ln_param("ln_weight_hh", ln_weight_hh, 3 * H)
    y = np.zeros((T, B, H))
    h_n = np.zeros((B, H))
    tape = []
    for b in range(B):
        h = h0[b].copy()
        steps = []
        for t in _time_order(lengths[b], reverse):
            lx, x_hat, rstd_x = _layernorm(w_ih @ x[t, b], g_ih)
            lh, h_hat, rstd_h = _layernorm(w_hh @ h, g_hh)
            ax = lx + b_ih  # input side, gates r, z, n
            ah = lh + b_hh  # hidden side, gates r, z, n
            r = sigmoid(ax[0 * H:1 * H] + ah[0 * H:1 * H])
            z = sigmoid(ax[1 * H:2 * H] + ah[1 * H:2 * H])
            hn = ah[2 * H:3 * H]  # what r multiplies
            n = np.tanh(ax[2 * H:3 * H] + r * hn)
            h_new = (1.0 - z) * n + z * h
            steps.append({"t": t, "h_prev": h, "r": r, "z": z, "n": n, "hn": hn,
                          "x_hat": x_hat, "rstd_x": rstd_x, "h_hat": h_hat, "rstd_h": rstd_h})
            h = h_new
            y[t, b] = h
        h_n[b] = h
        tape.append(steps)
    cache = {"x": x, "w_ih": w_ih, "w_hh": w_hh, "has_bias": has_bias, "tape": tape,
             "dims": dims, "gates": 3, "ln_weight_ih": g_ih, "ln_weight_hh": g_hh}
    return y, h_n, cache


def layernorm_gru_backward(cache, dy, dh_n=None):
    """Gradients of <dy, y> + <dh_n, h_n>: LayerNormGRUGrads (the GRU's fields, then
    dln_weight_ih, dln_weight_hh (3H,))."""
    dy, dh_n, dx, dh0, dw_ih, dw_hh, db_ih, db_hh = _grad_buffers(cache, dy, dh_n)
    _, B, _, H = cache["dims"]
    x, w_ih, w_hh = cache["x"], cache["w_ih"], cache["w_hh"]
    g_ih, g_hh = cache["ln_weight_ih"], cache["ln_weight_hh"]
    dg_ih, dg_hh = np.zeros(3 * H), np.zeros(3 * H)
    for b in range(B):
        dh = dh_n[b].copy()
        for s in reversed(cache["tape"][b]):
            t, r, z, n, hn, h_prev = s["t"], s["r"], s["z"], s["n"], s["hn"], s["h_prev"]
            dh = dh + dy[t, b]
            dan = dh * (1.0 - z) * (1.0 - n ** 2)  # d pre-activation of n
            daz = dh * (h_prev - n) * z * (1.0 - z)
            dar = dan * hn * r * (1.0 - r)
            dax = np.concatenate([dar, daz, dan])      # d(LN(W_ih x) + b_ih)
            dah = np.concatenate([dar, daz, dan * r])  # d(LN(W_hh h) + b_hh)
            db_ih += dax
            db_hh += dah
            dux, dgx = _layernorm_backward(dax, g_ih, s["x_hat"], s["rstd_x"])
            duh, dgh = _layernorm_backward(dah, g_hh, s["h_hat"], s["rstd_h"])
            dg_ih += dgx
            dg_hh += dgh
            dx[t, b] = w_ih.T @ dux
            dw_ih += np.outer(dux, x[t, b])
            dw_hh += np.outer(duh, h_prev)
            dh = dh * z + w_hh.T @ duh
        dh0[b] = dh
    if not cache["has_bias"]:
        db_ih = db_hh = None
    return LayerNormGRUGrads(dx, dh0, dw_ih, dw_hh, db_ih, db_hh, dg_ih, dg_hh)
