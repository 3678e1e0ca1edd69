// Cell pointwise loops shared by the per-ISA files pointwise_generic.cpp, pointwise_avx2.cpp and
// pointwise_avx512.cpp.
// NOT a standalone header: never compile it on its own and never include it anywhere else. Each
// pointwise_<isa>.cpp includes it inside its own namespace rnnkit::<isa>_isa::{anonymous}, after
// <cstdint> and kernels.h, so every ISA compiles a private copy with its own flags and only
// register_<isa>_pointwise is visible to the linker.
//
// The loops are written once, as plain element-wise C++ the compiler vectorises at each file's
// width (RNNKIT_IVDEP: the arrays of one call never overlap, except where a comment says an
// array is read and rewritten at the same index). CMakeLists.txt compiles these files with
// -ffp-contract=off, so no multiply and add are fused: every element gets the roundings of the
// expression as written, on every level, which are those of the cells' own scalar loops
// (cells/lstm.h) that ran before these kernels existed. Results are bitwise the same on every
// level and as before.
#ifndef RNNKIT_POINTWISE_IMPL_INSIDE_ISA_FILE
#error "pointwise_impl.inl is included only by pointwise_<isa>.cpp, inside its ISA namespace"
#endif

#if defined(__clang__)
#define RNNKIT_IVDEP _Pragma("clang loop vectorize(assume_safety)")
#elif defined(__GNUC__)
#define RNNKIT_IVDEP _Pragma("GCC ivdep")
#else
#define RNNKIT_IVDEP
#endif

// The plain LSTM's backward over units [0, n) of one row and step (LstmBackwardFn in kernels.h).
// The product order of each expression is the cell's (cells/lstm.h, Backward::backward).
template <class T>
void lstm_backward(int64_t n, int64_t H, const T* gates, const T* c_prev, const T* dh,
                   const T* dy, T* dc, T* dg_step, T* dg_seq) {
  const T* gi = gates;
  const T* gf = gates + H;
  const T* gg = gates + 2 * H;
  const T* go = gates + 3 * H;
  T* si = dg_step;
  T* sf = dg_step + H;
  T* sg = dg_step + 2 * H;
  T* so = dg_step + 3 * H;  // in: tanh(c_t); out: the o gate's gradient (same index)
  T* qi = dg_seq;
  T* qf = dg_seq + H;
  T* qg = dg_seq + 2 * H;
  T* qo = dg_seq + 3 * H;
  RNNKIT_IVDEP
  for (int64_t j = 0; j < n; ++j) {
    const T i = gi[j], f = gf[j], g = gg[j], o = go[j];
    const T tc = so[j];
    const T cp = c_prev[j];
    const T dht = dh[j] + dy[j];
    const T dct = dc[j] + dht * o * (T(1) - tc * tc);
    const T dao = dht * tc * o * (T(1) - o);
    const T dai = dct * g * i * (T(1) - i);
    const T daf = dct * cp * f * (T(1) - f);
    const T dag = dct * i * (T(1) - g * g);
    dc[j] = dct * f;
    si[j] = qi[j] = dai;
    sf[j] = qf[j] = daf;
    sg[j] = qg[j] = dag;
    so[j] = qo[j] = dao;
  }
}

// The plain GRU's (reset-after) backward over units [0, n) of one row and step
// (GruBackwardFn in kernels.h); the product order is the cell's (cells/gru.h).
template <class T>
void gru_backward(int64_t n, int64_t H, const T* gates, const T* hn, const T* h_prev,
                  const T* dy, T* dh, T* dg_step, T* dg_seq) {
  const T* gr = gates;
  const T* gz = gates + H;
  const T* gn = gates + 2 * H;
  RNNKIT_IVDEP
  for (int64_t j = 0; j < n; ++j) {
    const T r = gr[j], z = gz[j], nn = gn[j];
    const T dht = dh[j] + dy[j];  // dh: read and rewritten at the same index
    const T dn = dht * (T(1) - z);
    const T dz = dht * (h_prev[j] - nn);
    const T d_n = dn * (T(1) - nn * nn);
    const T dar = d_n * hn[j] * r * (T(1) - r);
    const T daz = dz * z * (T(1) - z);
    dg_step[j] = dg_seq[j] = dar;
    dg_step[H + j] = dg_seq[H + j] = daz;
    dg_step[2 * H + j] = d_n * r;
    dg_seq[2 * H + j] = d_n;
    dh[j] = dht * z;
  }
}

template <class T>
void register_pointwise_type(PointwiseKernels<T>& k) {
  k.lstm_backward = lstm_backward<T>;
  k.gru_backward = gru_backward<T>;
}
