// Batched complex matrix product with a short inner dimension, one thread per output
// element, one pass over the output: out[b, i, k] = sum_j a[b, i, j] x[b, j, k].
// The inner dimension J is short where the receiver uses it (P <= 16 basis functions, K <= 4
// window polynomials, J <= 24 delay atoms), so each thread loops over J; the rows of a are
// shared by the K threads of a row (cache), the columns of x are read coalesced along k.
// a_stride / x_stride: elements between batches (0: one matrix for every batch).
#include <cupy/complex.cuh>

typedef complex<float> cf;

extern "C" __global__ void batched_matmul(const cf* a, const cf* x, cf* out, long long B, long long I,
                                          long long J, long long K, long long a_stride, long long x_stride) {
    const long long e = (long long)blockDim.x * blockIdx.x + threadIdx.x;
    if (e >= B * I * K) return;
    const long long b = e / (I * K), i = (e / K) % I, k = e % K;
    const cf* row = a + b * a_stride + i * J;
    const cf* column = x + b * x_stride + k;
    cf acc = cf(0.0f, 0.0f);
    for (long long j = 0; j < J; ++j) acc += row[j] * column[j * K];
    out[e] = acc;
}
