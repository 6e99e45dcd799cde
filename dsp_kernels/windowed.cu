// Fused steps of the windowed channel operator (zakotfs/windowed_operator.py), one thread per
// output element, each one pass over memory. Shapes: F frames, K window polynomials, S windows
// of Lw samples, L = S Lw; blocks are [.., S, B] overlap-save blocks of B = Lw + V samples
// (V <= Lw the overlap); `shift` = d0 + V.
//
// window_gather:  blocks[f, w, t] = s[f, (w Lw + t - shift) mod L]                t < B
// window_sum:     y[f, w Lw + m] = sum_k phi[k, m] filtered[f, k, w, m]           m < Lw
// window_weight:  out[f, k, w, m] = phi[k, m] r[f, w Lw + m] (m < Lw), 0 (Lw <= m < B)
// window_reduce:  out[f, w, t] = sum_k g[f, k, w, t] z[f, k, w, t]
// window_scatter: out[f, q] = y[f, w, m] + (m < B - Lw ? y[f, w - 1 mod S, m + Lw] : 0),
//                 (w, m) = divmod((q + shift) mod L, Lw)   (the adjoint of window_gather);
//                 window_scatter_add adds n0[f] s[f, q].
#include <cupy/complex.cuh>

typedef complex<float> cf;

__device__ __forceinline__ long long element() {
    return (long long)blockDim.x * blockIdx.x + threadIdx.x;
}

extern "C" __global__ void window_gather(const cf* s, cf* blocks, long long F, long long S, long long Lw,
                                         long long B, long long shift) {
    const long long i = element();
    if (i >= F * S * B) return;
    const long long L = S * Lw, f = i / (S * B), w = (i / B) % S, t = i % B;
    blocks[i] = s[f * L + (((w * Lw + t - shift) % L) + L) % L];
}

extern "C" __global__ void window_sum(const cf* filtered, const float* phi, cf* y, long long F, int K,
                                      long long S, long long Lw, long long B) {
    const long long i = element();
    if (i >= F * S * Lw) return;
    const long long f = i / (S * Lw), w = (i / Lw) % S, m = i % Lw;
    cf acc = cf(0.0f, 0.0f);
    for (int k = 0; k < K; ++k) acc += phi[k * Lw + m] * filtered[((f * K + k) * S + w) * B + m];
    y[i] = acc;
}

extern "C" __global__ void window_weight(const cf* r, const float* phi, cf* out, long long F, int K,
                                         long long S, long long Lw, long long B) {
    const long long i = element();
    if (i >= F * K * S * B) return;
    const long long f = i / (K * S * B), k = (i / (S * B)) % K, w = (i / B) % S, m = i % B;
    out[i] = m < Lw ? phi[k * Lw + m] * r[(f * S + w) * Lw + m] : cf(0.0f, 0.0f);
}

extern "C" __global__ void window_reduce(const cf* g, const cf* z, cf* out, long long F, int K,
                                         long long S, long long B) {
    const long long i = element();
    const long long n = S * B;
    if (i >= F * n) return;
    const long long f = i / n, j = i % n;
    cf acc = cf(0.0f, 0.0f);
    for (int k = 0; k < K; ++k) acc += g[(f * K + k) * n + j] * z[(f * K + k) * n + j];
    out[i] = acc;
}

__device__ __forceinline__ cf scattered(const cf* y, long long i, long long S, long long Lw, long long B,
                                        long long shift) {
    const long long L = S * Lw, f = i / L, p = ((i % L + shift) % L + L) % L, w = p / Lw, m = p % Lw;
    const cf here = y[(f * S + w) * B + m];
    if (m + Lw >= B) return here;
    return here + y[(f * S + (w + S - 1) % S) * B + m + Lw];
}

extern "C" __global__ void window_scatter(const cf* y, cf* out, long long F, long long S, long long Lw,
                                          long long B, long long shift) {
    const long long i = element();
    if (i >= F * S * Lw) return;
    out[i] = scattered(y, i, S, Lw, B, shift);
}

extern "C" __global__ void window_scatter_add(const cf* y, const cf* s, const float* n0, cf* out, long long F,
                                              long long S, long long Lw, long long B, long long shift) {
    const long long i = element();
    if (i >= F * S * Lw) return;
    out[i] = scattered(y, i, S, Lw, B, shift) + n0[i / (S * Lw)] * s[i];
}
