# Type stub for the compiled module rnnkit._core (cpp/bindings). Private: use rnnkit.ops.
# Kept in step with cpp/bindings/*.cpp in the same commit.
from typing import Any, Dict, Optional, Tuple

import numpy as np

Array = np.ndarray

def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def build_info() -> Dict[str, Any]: ...
def force_simd(level: str) -> str: ...
# Testing hooks (cpp/bindings/bind_kernels.cpp): one SIMD level's kernels called directly.
def _kernel_gemm(level: str, transA: bool, transB: bool, A: Array, B: Array, C: Array,
                 beta: float, packed: bool = ...) -> None: ...
def _kernel_unary(level: str, fn: str, x: Array, out: Optional[Array] = ...) -> Array: ...

def lstm_forward_f32(x: Array, h0: Optional[Array], c0: Optional[Array], w_ih: Array,
                     w_hh: Array, b_ih: Optional[Array], b_hh: Optional[Array],
                     lengths: Optional[Array], reverse: bool, training: bool
                     ) -> Tuple[Array, Array, Array, Optional[Array], Optional[Array]]: ...
lstm_forward_f64 = lstm_forward_f32
def lstm_backward_f32(dy: Array, dh_n: Optional[Array], dc_n: Optional[Array], x: Array,
                      h0: Optional[Array], c0: Optional[Array], w_ih: Array, w_hh: Array,
                      has_bias: bool, y: Array, gates: Array, cells: Array,
                      lengths: Optional[Array], reverse: bool
                      ) -> Tuple[Array, Array, Array, Array, Array, Optional[Array],
                                 Optional[Array]]: ...
lstm_backward_f64 = lstm_backward_f32

def gru_forward_f32(x: Array, h0: Optional[Array], w_ih: Array, w_hh: Array,
                    b_ih: Optional[Array], b_hh: Optional[Array], lengths: Optional[Array],
                    reverse: bool, training: bool
                    ) -> Tuple[Array, Array, Optional[Array], Optional[Array]]: ...
gru_forward_f64 = gru_forward_f32
def gru_backward_f32(dy: Array, dh_n: Optional[Array], x: Array, h0: Optional[Array],
                     w_ih: Array, w_hh: Array, has_bias: bool, y: Array, gates: Array,
                     hn: Array, lengths: Optional[Array], reverse: bool
                     ) -> Tuple[Array, Array, Array, Array, Optional[Array],
                                Optional[Array]]: ...
gru_backward_f64 = gru_backward_f32

def rnn_forward_f32(x: Array, h0: Optional[Array], w_ih: Array, w_hh: Array,
                    b_ih: Optional[Array], b_hh: Optional[Array], nonlinearity: str,
                    lengths: Optional[Array], reverse: bool, training: bool
                    ) -> Tuple[Array, Array, Optional[Array]]: ...
rnn_forward_f64 = rnn_forward_f32
def rnn_backward_f32(dy: Array, dh_n: Optional[Array], x: Array, h0: Optional[Array],
                     w_ih: Array, w_hh: Array, has_bias: bool, y: Array, acts: Array,
                     nonlinearity: str, lengths: Optional[Array], reverse: bool
                     ) -> Tuple[Array, Array, Array, Array, Optional[Array],
                                Optional[Array]]: ...
rnn_backward_f64 = rnn_backward_f32

# Single steps with packed weights (cpp/bindings/bind_step.cpp). x (B, I), h, c (B, H).
class LSTMStep_f32:
    def __init__(self, w_ih: Array, w_hh: Array, b_ih: Optional[Array],
                 b_hh: Optional[Array]) -> None: ...
    def step(self, x: Array, h: Array, c: Array) -> Tuple[Array, Array]: ...
class LSTMStep_f64(LSTMStep_f32): ...
class GRUStep_f32:
    def __init__(self, w_ih: Array, w_hh: Array, b_ih: Optional[Array],
                 b_hh: Optional[Array]) -> None: ...
    def step(self, x: Array, h: Array) -> Array: ...
class GRUStep_f64(GRUStep_f32): ...
class RNNStep_f32:
    def __init__(self, w_ih: Array, w_hh: Array, b_ih: Optional[Array],
                 b_hh: Optional[Array], nonlinearity: str) -> None: ...
    def step(self, x: Array, h: Array) -> Array: ...
class RNNStep_f64(RNNStep_f32): ...

# Linear layer (cpp/bindings/bind_linear.cpp): x (M, I), weight (O, I), bias (O,) or None.
def linear_forward_f32(x: Array, weight: Array, bias: Optional[Array]) -> Array: ...
linear_forward_f64 = linear_forward_f32
def linear_backward_f32(dy: Array, x: Array, weight: Array, dw: Array, db: Optional[Array],
                        want_dx: bool) -> Optional[Array]: ...
linear_backward_f64 = linear_backward_f32

# Optimiser updates (cpp/bindings/bind_optim.cpp): one fused pass over a parameter, in place.
def sgd_update_f32(param: Array, momentum_buffer: Optional[Array], grad: Array, lr: float,
                   momentum: float, dampening: float, weight_decay: float, nesterov: bool,
                   maximize: bool, first_step: bool) -> None: ...
sgd_update_f64 = sgd_update_f32
def adam_update_f32(param: Array, exp_avg: Array, exp_avg_sq: Array,
                    max_exp_avg_sq: Optional[Array], grad: Array, step: int, lr: float,
                    beta1: float, beta2: float, eps: float, weight_decay: float, amsgrad: bool,
                    maximize: bool, decoupled_weight_decay: bool) -> None: ...
adam_update_f64 = adam_update_f32
def rmsprop_update_f32(param: Array, square_avg: Array, grad_avg: Optional[Array],
                       momentum_buffer: Optional[Array], grad: Array, lr: float, alpha: float,
                       eps: float, weight_decay: float, momentum: float, centered: bool,
                       maximize: bool) -> None: ...
rmsprop_update_f64 = rmsprop_update_f32
def adagrad_update_f32(param: Array, sum: Array, grad: Array, step: int, lr: float,
                       lr_decay: float, weight_decay: float, eps: float,
                       maximize: bool) -> None: ...
adagrad_update_f64 = adagrad_update_f32
def abs_pow_sum_f32(x: Array, p: float) -> float: ...
abs_pow_sum_f64 = abs_pow_sum_f32
