#include "layers/selective_scan.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/parallel.h"
#include "layers/activations.h"

namespace bytelm {

namespace {

// A = -exp(A_log), transposed to [N, Di] like the states, so that the inner loops run along the channels
// (contiguous, and free of reductions: they vectorise).
template <class T>
std::vector<T> state_matrix(const T* A_log, int Di, int N) {
  std::vector<T> A((size_t)N * Di);
  for (int i = 0; i < Di; i++)
    for (int n = 0; n < N; n++) A[(size_t)n * Di + i] = -std::exp(A_log[(size_t)i * N + n]);
  return A;
}

// The inputs at one of the B*T rows.
template <class T>
ScanInputs<T> row_of(ScanInputs<T> in, size_t row, int Di, int N) {
  return {in.x + row * Di, in.dt + row * Di, in.BC + row * 2 * N, in.z + row * Di};
}

// Per-channel values of the row being stepped, [Di] each.
template <class T>
struct RowScratch {
  std::vector<T> delta, delta_x, out, decay;
  explicit RowScratch(int Di) : delta(Di), delta_x(Di), out(Di), decay(Di) {}

  // The step sizes of row r, delta = softplus(dt + dt_bias) and delta * x; out zeroed for the row's sums.
  void start_row(ScanInputs<T> r, SelectiveScanWeights<T> w, int Di) {
    for (int i = 0; i < Di; i++) {
      delta[i] = softplus(r.dt[i] + w.dt_bias[i]);
      delta_x[i] = delta[i] * r.x[i];
      out[i] = 0;
    }
  }
};

// Advances one sequence's state h [N, Di] from h_{t-1} to h_t with the inputs r of row t. decay ([N, Di],
// or null) receives the row's exp(delta A); y (or null) the row's output. The forward, the backward's
// recompute and streaming all step through here, so the recomputed states are the forward's to the bit.
template <class T>
void scan_step(T* h, T* decay, T* y, ScanInputs<T> r, const T* A, SelectiveScanWeights<T> w, int Di, int N,
               RowScratch<T>& s) {
  s.start_row(r, w, Di);
  for (int n = 0; n < N; n++) {
    const T* An = A + (size_t)n * Di;
    T* hn = h + (size_t)n * Di;
    T* decay_n = decay ? decay + (size_t)n * Di : s.decay.data();
    T Bn = r.BC[n], Cn = r.BC[N + n];
    for (int i = 0; i < Di; i++) decay_n[i] = std::exp(s.delta[i] * An[i]);
#pragma omp simd
    for (int i = 0; i < Di; i++) hn[i] = decay_n[i] * hn[i] + s.delta_x[i] * Bn;
    if (y) {
#pragma omp simd
      for (int i = 0; i < Di; i++) s.out[i] += Cn * hn[i];
    }
  }
  if (y)
    for (int i = 0; i < Di; i++) y[i] = (s.out[i] + w.D[i] * r.x[i]) * silu(r.z[i]);
}

}  // namespace

template <class T>
void selective_scan_init(T* A_log, T* D, T* dt_bias, int Di, int N, Rng& rng) {
  double lo = std::log(1e-3), hi = std::log(1e-1);
  for (int i = 0; i < Di; i++) {
    for (int n = 0; n < N; n++) A_log[(size_t)i * N + n] = T(std::log(double(n + 1)));
    D[i] = T(1);
    dt_bias[i] = T(inverse_softplus(std::exp(lo + rng.uniform() * (hi - lo))));
  }
}

template <class T>
void selective_scan_forward(T* y, ScanInputs<T> in, SelectiveScanWeights<T> w, int B, int T_, int Di, int N, T* state) {
  std::vector<T> A = state_matrix(w.A_log, Di, N);
  size_t hsize = (size_t)N * Di;
#pragma omp parallel for schedule(static)
  for (int b = 0; b < B; b++) {
    std::vector<T> zero_state(state ? 0 : hsize, T(0));
    T* h = state ? state + b * hsize : zero_state.data();
    RowScratch<T> scratch(Di);
    for (int t = 0; t < T_; t++) {
      size_t row = (size_t)b * T_ + t;
      scan_step(h, (T*)nullptr, y + row * Di, row_of(in, row, Di, N), A.data(), w, Di, N, scratch);
    }
  }
}

template <class T>
void selective_scan_backward(ScanInputGrads<T> grad_in, SelectiveScanGrads<T> g, const T* dy, ScanInputs<T> in,
                             SelectiveScanWeights<T> w, int B, int T_, int Di, int N) {
  std::vector<T> A = state_matrix(w.A_log, Di, N);
  size_t hsize = (size_t)N * Di;
  int S = std::max(1, (int)std::ceil(std::sqrt(double(T_))));  // chunk length
  int chunks = (T_ + S - 1) / S;
  // per-thread partials: d/dA [N, Di], then dD [Di], then d dt_bias [Di]
  std::vector<T> partials(hsize + 2 * (size_t)Di, T(0));
  parallel_rows_reduce(B, (int)partials.size(), partials.data(), [&](int b, T* part) {
    T* dA = part;
    T* dD = part + hsize;
    T* dbias = part + hsize + Di;
    RowScratch<T> s(Di);
    auto step = [&](T* h, T* decay, int t) {
      scan_step(h, decay, (T*)nullptr, row_of(in, (size_t)b * T_ + t, Di, N), A.data(), w, Di, N, s);
    };
    // boundary[c] = the state before chunk c's first step
    std::vector<T> boundary((size_t)chunks * hsize, T(0));
    for (int c = 1; c < chunks; c++) {
      T* h = boundary.data() + c * hsize;
      std::copy(h - hsize, h, h);
      for (int t = (c - 1) * S; t < c * S; t++) step(h, (T*)nullptr, t);
    }
    // While chunk c is walked: states[j] = the state before its step j (j = 0..S), decays[j] = that step's
    // exp(delta A).
    std::vector<T> states((size_t)(S + 1) * hsize), decays((size_t)S * hsize);
    std::vector<T> dh(hsize, T(0));  // d(loss)/d(h_t) through the steps after t
    std::vector<T> dgate(Di), dx(Di), ddelta(Di);
    for (int c = chunks - 1; c >= 0; c--) {
      int start = c * S, end = std::min(T_, start + S);
      std::copy(boundary.begin() + c * hsize, boundary.begin() + (c + 1) * hsize, states.begin());
      for (int t = start; t < end; t++) {
        T* next = states.data() + (size_t)(t - start + 1) * hsize;
        std::copy(next - hsize, next, next);
        step(next, decays.data() + (size_t)(t - start) * hsize, t);
      }
      for (int t = end - 1; t >= start; t--) {
        size_t row = (size_t)b * T_ + t;
        ScanInputs<T> r = row_of(in, row, Di, N);
        const T* h_prev = states.data() + (size_t)(t - start) * hsize;
        const T* h_t = h_prev + hsize;
        const T* decay = decays.data() + (size_t)(t - start) * hsize;
        // the row's step sizes and its output before the gate, as the forward had them
        s.start_row(r, w, Di);
        for (int n = 0; n < N; n++) {
#pragma omp simd
          for (int i = 0; i < Di; i++) s.out[i] += r.BC[N + n] * h_t[(size_t)n * Di + i];
        }
        for (int i = 0; i < Di; i++) {
          T gate_in = s.out[i] + w.D[i] * r.x[i], dyi = dy[row * Di + i];
          grad_in.z[row * Di + i] = dyi * gate_in * silu_grad(r.z[i]);
          dgate[i] = dyi * silu(r.z[i]);  // d/d(C.h + D x)
          dD[i] += dgate[i] * r.x[i];
          dx[i] = dgate[i] * w.D[i];
          ddelta[i] = 0;
        }
        T* dB = grad_in.BC + row * 2 * N;
        T* dC = dB + N;
        for (int n = 0; n < N; n++) {
          size_t o = (size_t)n * Di;
          T Bn = r.BC[n], Cn = r.BC[N + n], dBn = 0, dCn = 0;
#pragma omp simd reduction(+ : dBn, dCn)
          for (int i = 0; i < Di; i++) {
            T dhn = dh[o + i] + dgate[i] * Cn;  // all of d/d(h_t[n, i])
            dCn += dgate[i] * h_t[o + i];
            dBn += dhn * s.delta_x[i];
            dx[i] += dhn * s.delta[i] * Bn;
            ddelta[i] += dhn * (A[o + i] * decay[o + i] * h_prev[o + i] + Bn * r.x[i]);
            dA[o + i] += dhn * s.delta[i] * decay[o + i] * h_prev[o + i];
            dh[o + i] = dhn * decay[o + i];  // carried to h_{t-1}
          }
          dB[n] = dBn;
          dC[n] = dCn;
        }
        for (int i = 0; i < Di; i++) {
          T ddt = ddelta[i] * sigmoid(r.dt[i] + w.dt_bias[i]);  // softplus' = sigmoid
          grad_in.dt[row * Di + i] = ddt;
          dbias[i] += ddt;
          grad_in.x[row * Di + i] = dx[i];
        }
      }
    }
  });
  for (int i = 0; i < Di; i++)
    for (int n = 0; n < N; n++) {
      size_t k = (size_t)n * Di + i;
      g.A_log[(size_t)i * N + n] += partials[k] * A[k];  // dA/dA_log = -exp(A_log) = A
    }
  for (int i = 0; i < Di; i++) {
    g.D[i] += partials[hsize + i];
    g.dt_bias[i] += partials[hsize + Di + i];
  }
}

#define BYTELM_INSTANTIATE(T)                                                                                  \
  template void selective_scan_init<T>(T*, T*, T*, int, int, Rng&);                                            \
  template void selective_scan_forward<T>(T*, ScanInputs<T>, SelectiveScanWeights<T>, int, int, int, int, T*); \
  template void selective_scan_backward<T>(ScanInputGrads<T>, SelectiveScanGrads<T>, const T*, ScanInputs<T>,  \
                                           SelectiveScanWeights<T>, int, int, int, int);
BYTELM_INSTANTIATE(float)
BYTELM_INSTANTIATE(double)
#undef BYTELM_INSTANTIATE

}  // namespace bytelm
