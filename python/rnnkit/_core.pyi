# Type stub for the compiled module rnnkit._core (cpp/bindings). Private: use rnnkit.ops.
# Kept in step with cpp/bindings/*.cpp in the same commit.
from typing import Any, Dict, Optional, Tuple

import numpy as np

Array = np.ndarray

def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def build_info() -> Dict[str, Any]: ...
def force_simd(level: str) -> str: ...

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
