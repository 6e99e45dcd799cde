// Per-axis max-log LLR of 38.211 QAM (see zakotfs/modulation.py).
// z: complex64 [n]; inv_var: float32 [n]; levels: float32 [L]; level_bits: uint8 [L, h];
// out: float32 [n, 2h], bit 2j from the in-phase axis, 2j+1 from the quadrature axis.
#include <cupy/complex.cuh>

extern "C" __global__ void maxlog_llr(const complex<float>* z, const float* inv_var,
                                      const float* levels, const unsigned char* level_bits,
                                      int n, int n_levels, int h, float* out) {
    int i = blockDim.x * blockIdx.x + threadIdx.x;
    if (i >= n) return;
    const float axis_value[2] = {z[i].real(), z[i].imag()};
    const float inf = __int_as_float(0x7f800000);   // NVRTC defines no INFINITY
    for (int axis = 0; axis < 2; ++axis) {
        const float x = axis_value[axis];
        for (int j = 0; j < h; ++j) {
            float d0 = inf, d1 = inf;
            for (int m = 0; m < n_levels; ++m) {
                const float d = (x - levels[m]) * (x - levels[m]);
                if (level_bits[m * h + j]) d1 = fminf(d1, d); else d0 = fminf(d0, d);
            }
            out[(long long)i * 2 * h + 2 * j + axis] = (d1 - d0) * inv_var[i];
        }
    }
}
