// A constant removed and a frequency shift, per frame, one thread per sample, one pass:
//   out[f, q] = (r[f, q] - offset[f]) exp(j 2 pi cycles[f] q),
// the phase cycles[f] q reduced modulo one turn in float64 (q reaches ~1e6, where float32
// would lose the phase), the rotation itself in float32.
#include <cupy/complex.cuh>

typedef complex<float> cf;

extern "C" __global__ void frequency_shift(const cf* r, const double* cycles, const cf* offset, cf* out,
                                           long long L, long long n) {
    const long long i = (long long)blockDim.x * blockIdx.x + threadIdx.x;
    if (i >= n) return;
    double turns = cycles[i / L] * (double)(i % L);
    turns -= rint(turns);
    float s, c;
    sincospif(2.0f * (float)turns, &s, &c);
    out[i] = (r[i] - offset[i / L]) * cf(c, s);
}
