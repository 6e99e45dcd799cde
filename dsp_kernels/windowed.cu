// Fused steps of the windowed channel operator (zakotfs/windowed_operator.py), one thread per
// output element, each one pass over memory. Shapes: F frames, K window polynomials, S windows
// of Lw samples, L = S Lw; blocks are [.., S, 2 Lw] overlap-save blocks; `shift` = d0 + Lw.
//
// window_gather:  blocks[f, w, t] = s[f, (w Lw + t - shift) mod L]                t < 2 Lw
// window_sum:     y[f, w Lw + m] = sum_k phi[k, m] filtered[f, k, w, m]           m < Lw
// window_weight:  out[f, k, w, m] = phi[k, m] r[f, w Lw + m] (m < Lw), 0 (Lw <= m < 2 Lw)
// window_reduce:  out[f, w, t] = sum_k g[f, k, w, t] z[f, k, w, t]
// window_scatter: out[f, q] = y[f, w, m] + y[f, w - 1 mod S, m + Lw],  (w, m) = divmod((q + shift) mod L, Lw)
//                 (the adjoint of window_gather); window_scatter_add adds n0[f] s[f, q].
#include <cupy/complex.cuh>

typedef complex<float> cf;

__device__ __forceinline__ long long element() {
    return (long long)blockDim.x * blockIdx.x + threadIdx.x;
}

extern "C" __global__ void window_gather(const cf* s, cf* blocks, long long F, long long S, long long Lw,
                                         long long shift) {
    const long long i = element();
    if (i >= F * S * 2 * Lw) return;
    const long long L = S * Lw, f = i / (S * 2 * Lw), w = (i / (2 * Lw)) % S, t = i % (2 * Lw);
    blocks[i] = s[f * L + (((w * Lw + t - shift) % L) + L) % L];
}

extern "C" __global__ void window_sum(const cf* filtered, const float* phi, cf* y, long long F, int K,
                                      long long S, long long Lw) {
    const long long i = element();
    if (i >= F * S * Lw) return;
    const long long f = i / (S * Lw), w = (i / Lw) % S, m = i % Lw;
    cf acc = cf(0.0f, 0.0f);
    for (int k = 0; k < K; ++k) acc += phi[k * Lw + m] * filtered[((f * K + k) * S + w) * 2 * Lw + m];
    y[i] = acc;
}

extern "C" __global__ void window_weight(const cf* r, const float* phi, cf* out, long long F, int K,
                                         long long S, long long Lw) {
    const long long i = element();
    if (i >= F * K * S * 2 * Lw) return;
    const long long f = i / (K * S * 2 * Lw), k = (i / (S * 2 * Lw)) % K, w = (i / (2 * Lw)) % S,
                    m = i % (2 * Lw);
    out[i] = m < Lw ? phi[k * Lw + m] * r[(f * S + w) * Lw + m] : cf(0.0f, 0.0f);
}

extern "C" __global__ void window_reduce(const cf* g, const cf* z, cf* out, long long F, int K,
                                         long long S, long long Lw) {
    const long long i = element();
    const long long block = S * 2 * Lw;
    if (i >= F * block) return;
    const long long f = i / block, j = i % block;
    cf acc = cf(0.0f, 0.0f);
    for (int k = 0; k < K; ++k) acc += g[(f * K + k) * block + j] * z[(f * K + k) * block + j];
    out[i] = acc;
}

__device__ __forceinline__ cf scattered(const cf* y, long long i, long long S, long long Lw, long long shift) {
    const long long L = S * Lw, f = i / L, p = ((i % L + shift) % L + L) % L, w = p / Lw, m = p % Lw;
    const long long before = (w + S - 1) % S;
    return y[(f * S + w) * 2 * Lw + m] + y[(f * S + before) * 2 * Lw + m + Lw];
}

extern "C" __global__ void window_scatter(const cf* y, cf* out, long long F, long long S, long long Lw,
                                          long long shift) {
    const long long i = element();
    if (i >= F * S * Lw) return;
    out[i] = scattered(y, i, S, Lw, shift);
}

extern "C" __global__ void window_scatter_add(const cf* y, const cf* s, const float* n0, cf* out, long long F,
                                              long long S, long long Lw, long long shift) {
    const long long i = element();
    if (i >= F * S * Lw) return;
    out[i] = scattered(y, i, S, Lw, shift) + n0[i / (S * Lw)] * s[i];
}
