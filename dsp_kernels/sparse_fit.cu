// Fused kernels of the accurate channel estimator (zakotfs/estimation.py), one launch each
// in place of hundreds of small array operations, so the estimator fits in a CUDA graph.
//
// periodic_sinc(x, L): the L-periodic band-limited pulse (estimation.periodic_sinc).
//
// omp_delay_fit: AccurateEstimator.fit_delays for one frame per thread block. Per
//   iteration: the tap of largest residual energy, the matched-filter score
//   sum_p |a^H R_p|^2 / |a|^2 (float32) of candidate delays within a sample of it (a coarse
//   grid, then the fine one around its best: estimation.COARSE_STEPS), the best one becomes
//   a new atom (active while its score exceeds the frame's chi-square floor and the previous
//   atom was active), and all atoms are refitted by ridge least squares (Cholesky, float64):
//   (A^T A + diag(ridge)) X = A^T C, ridge = (1e-9 if active else 1e9) * trace(A^T A).
//   The fit stops at the first inactive atom (the rest would stay inactive).
//
// atom_taps_fft: ChannelOperator.from_delay_doppler_atoms,
//   C_p(f) = sum_j a_jp exp(-j 2 pi nu(f) delta_j / L)   (cos(pi delta_j) at the Nyquist bin),
//   nu(f) the DFT frequency of bin f (numpy's fftfreq order).
#include <cupy/complex.cuh>

#define MAX_J 24
#define MAX_P 16
#define MAX_K 256
#define THREADS 512
#define PI 3.141592653589793

__device__ double periodic_sinc(double x, int L) {
    const double t = x / L;
    const double den = (t == 0.0) ? 1.0 : sinpi(t) / (PI * t);
    if (L % 2) {
        const double num = (x == 0.0) ? 1.0 : sinpi(x) / (PI * x);
        return num / den;
    }
    const double y = x * (L - 1.0) / L;
    const double core = (y == 0.0) ? 1.0 : sinpi(y) / (PI * y);
    return (L - 1.0) / L * core / den + cospi(x) / L;
}

__device__ float periodic_sinc_f(float x, int L) {
    const float t = x / L;
    const float den = (t == 0.0f) ? 1.0f : sinpif(t) / (3.14159265358979f * t);
    if (L % 2) {
        const float num = (x == 0.0f) ? 1.0f : sinpif(x) / (3.14159265358979f * x);
        return num / den;
    }
    const float y = x * (L - 1.0f) / L;
    const float core = (y == 0.0f) ? 1.0f : sinpif(y) / (3.14159265358979f * y);
    return (L - 1.0f) / L * core / den + cospif(x) / L;
}

// Block-wide argmax of (value, index), ties to the smaller index (numpy's argmax).
__device__ int block_argmax(double value, int index, double* s_val, int* s_idx) {
    s_val[threadIdx.x] = value;
    s_idx[threadIdx.x] = index;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
        if (threadIdx.x < stride) {
            const double v = s_val[threadIdx.x + stride];
            const int i = s_idx[threadIdx.x + stride];
            if (v > s_val[threadIdx.x] || (v == s_val[threadIdx.x] && i < s_idx[threadIdx.x])) {
                s_val[threadIdx.x] = v;
                s_idx[threadIdx.x] = i;
            }
        }
        __syncthreads();
    }
    const int best = s_idx[0];
    __syncthreads();
    return best;
}

// table [K, 2W - 1]: periodic_sinc(n - (W - 1) - o_k, L), o_k = (k - R) / R, K = 2R + 1: the
// candidate atoms of omp_delay_fit wherever the candidate is not clipped (a shift of these).
extern "C" __global__ void psinc_table(int W, int R, int L, float* table) {
    const int n_taps = 2 * W - 1;
    const long long i = (long long)blockDim.x * blockIdx.x + threadIdx.x;
    if (i >= (long long)(2 * R + 1) * n_taps) return;
    const int k = (int)(i / n_taps), n = (int)(i % n_taps);
    table[i] = (float)periodic_sinc((double)(n - (W - 1)) - (double)(k - R) / R, L);
}

// The matched-filter scores sum_p |a^H R_p|^2 / |a|^2 (float32) of `count` candidate delays
// around the tap `peak`: candidate i at the fine offset k_i = clamp(first + i step, 0, 2R),
// delay clamp(tau0 + peak + (k_i - R) / R, lo, hi), its atom read from the table unless
// clamped (a warp a candidate). Leaves k_i, the delay and the score in s_k, s_cand, s_score;
// returns the i of the best (ties to the first, as numpy's argmax).
__device__ int best_offset(int first, int step, int count, int peak, const float* table, const float2* residual,
                           int resolution, int W, int P, int L, double tau0, double lo, double hi,
                           int* s_k, double* s_cand, double* s_score, double* s_val, int* s_idx) {
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, n_warps = blockDim.x / 32;
    for (int i = threadIdx.x; i < count; i += blockDim.x) {
        const int k = min(max(first + i * step, 0), 2 * resolution);
        s_k[i] = k;
        s_cand[i] = fmin(fmax(tau0 + peak + (double)(k - resolution) / resolution, lo), hi);
    }
    __syncthreads();
    for (int i = warp; i < count; i += n_warps) {
        const int k = s_k[i];
        const bool shifted = s_cand[i] == tau0 + peak + (double)(k - resolution) / resolution;  // not clamped
        const float* atom = table + (long long)k * (2 * W - 1) + (W - 1) - peak;
        float re[MAX_P], im[MAX_P];
        #pragma unroll
        for (int p = 0; p < MAX_P; ++p) { re[p] = 0.0f; im[p] = 0.0f; }
        float energy = 0.0f;
        for (int w = lane; w < W; w += 32) {
            const float a = shifted ? atom[w] : periodic_sinc_f((float)(tau0 + w - s_cand[i]), L);
            energy += a * a;
            #pragma unroll
            for (int p = 0; p < MAX_P; ++p) {
                if (p < P) {
                    const float2 r = residual[p * W + w];
                    re[p] += a * r.x;
                    im[p] += a * r.y;
                }
            }
        }
        float score = 0.0f;
        #pragma unroll
        for (int p = 0; p < MAX_P; ++p) {
            if (p < P) {
                float x = re[p], y = im[p];
                for (int o = 16; o > 0; o /= 2) {
                    x += __shfl_xor_sync(0xffffffff, x, o);
                    y += __shfl_xor_sync(0xffffffff, y, o);
                }
                score += x * x + y * y;
            }
        }
        for (int o = 16; o > 0; o /= 2) energy += __shfl_xor_sync(0xffffffff, energy, o);
        if (lane == 0) s_score[i] = score / energy;
    }
    __syncthreads();
    double best_s = -1.0;
    int best_i = 0;
    for (int i = threadIdx.x; i < count; i += blockDim.x)
        if (s_score[i] > best_s) { best_s = s_score[i]; best_i = i; }
    return block_argmax(best_s, best_i, s_val, s_idx);
}

// Where omp_delay_fit keeps its scratch arrays: bit set, in dynamic shared memory (packed in
// this order), else in the global array passed for it. The host sets the bits greedily in
// this order while the sizes fit (GpuBackend.sparse_delay_fit): the residual is read most
// (every candidate's score), then the atoms (each Gram row and residual), then the coefficients.
#define SHARED_RESIDUAL 1   // float2 [P, W]
#define SHARED_ATOMS 2      // double [J, W]
#define SHARED_COEFFS 4     // float2 [P, W]

// This block's scratch array of `bytes`: at *next in dynamic shared memory (moving *next on)
// when `placement` has `bit`, else `global`.
__device__ void* scratch(int placement, int bit, char** next, long long bytes, void* global) {
    if (!(placement & bit)) return global;
    void* here = *next;
    *next += bytes;
    return here;
}

// coeffs [F, W, P] complex64 tap coefficients; floor [F]; fine delay offsets (k - resolution) / resolution,
// k < K = 2 resolution + 1, with their atoms in ``table`` (psinc_table), searched first every
// ``stride``-th; taus[w] = tau0 + w; delays clipped to [lo, hi]. Scratch, per frame, in shared
// memory or in the global arrays as ``placement`` says: the residual R and the coefficients C
// (float2 [F, P, W], so that the scores, Gram rows and residual read them contiguously) and
// the atoms A (double [F, J, W]).
// Out: amplitudes [F, J, P], delays [F, J], active [F, J].
extern "C" __global__ void __launch_bounds__(THREADS)
omp_delay_fit(const complex<float>* coeffs, const double* floor, const float* table, int resolution,
              int W, int P, int stride, int J, int L, double tau0, double lo, double hi, int placement,
              float2* residuals, double* atoms, float2* coeffs_t,
              complex<double>* amplitudes, double* delays, bool* active) {
    __shared__ double s_val[THREADS];
    __shared__ int s_idx[THREADS];
    __shared__ int s_k[MAX_K];
    __shared__ double s_cand[MAX_K];
    __shared__ double s_score[MAX_K];
    __shared__ double s_gram[MAX_J * MAX_J];          // A^T A, grown one atom at a time
    __shared__ complex<double> s_rhs[MAX_J * MAX_P];  // A^T C
    __shared__ double s_chol[MAX_J * MAX_J];           // its ridged Cholesky factor
    __shared__ complex<double> s_sol[MAX_J * MAX_P];
    __shared__ double s_delay[MAX_J];
    __shared__ bool s_active[MAX_J];
    extern __shared__ double s_dynamic[];

    const int f = blockIdx.x;
    const long long PW = (long long)P * W;
    char* next = (char*)s_dynamic;
    float2* R = (float2*)scratch(placement, SHARED_RESIDUAL, &next, 8 * PW, residuals + f * PW);
    double* A = (double*)scratch(placement, SHARED_ATOMS, &next, 8LL * J * W, atoms + (long long)f * J * W);
    float2* C = (float2*)scratch(placement, SHARED_COEFFS, &next, 8 * PW, coeffs_t + f * PW);
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, n_warps = blockDim.x / 32;

    for (int i = threadIdx.x; i < PW; i += blockDim.x) {   // [W, P] -> [P, W]
        const complex<float> c = coeffs[f * PW + i];
        C[(i % P) * W + i / P] = R[(i % P) * W + i / P] = make_float2(c.real(), c.imag());
    }
    __syncthreads();

    for (int j = 0; j < J; ++j) {
        // 1. the tap of largest residual energy among those an atom may sit on, [lo, hi]
        double best_e = -1.0;
        int best_w = 0;
        for (int w = threadIdx.x; w < W; w += blockDim.x) {
            if (tau0 + w < lo || tau0 + w > hi) continue;
            float e = 0.0f;
            for (int p = 0; p < P; ++p) e += R[p * W + w].x * R[p * W + w].x + R[p * W + w].y * R[p * W + w].y;
            if (e > best_e) { best_e = e; best_w = w; }
        }
        const int peak = block_argmax(best_e, best_w, s_val, s_idx);
        // 2. candidate delays within a sample of it: the coarse grid k = 0, stride, ..., 2R,
        //    then the fine one strictly between the best coarse k's neighbours (which scored
        //    no higher), clamped to 0 .. 2R
        const int ic = best_offset(0, stride, 2 * resolution / stride + 1, peak, table, R, resolution, W, P, L,
                                   tau0, lo, hi, s_k, s_cand, s_score, s_val, s_idx);
        const int kc = s_k[ic];
        __syncthreads();                                  // every thread has kc before s_k is rewritten
        const int kbest = best_offset(kc - stride + 1, 1, 2 * stride - 1, peak, table, R, resolution, W, P, L,
                                      tau0, lo, hi, s_k, s_cand, s_score, s_val, s_idx);
        if (threadIdx.x == 0) {
            s_delay[j] = s_cand[kbest];
            s_active[j] = s_score[kbest] > floor[f] && (j == 0 || s_active[j - 1]);
        }
        __syncthreads();
        if (!s_active[j]) {
            // This atom and all later ones are inactive: the array code goes on fitting them
            // under a ridge of 1e9 trace, which leaves the active amplitudes unchanged to
            // ~1e-9, so the fit ends here (the later delays repeat this candidate).
            for (int i = j + threadIdx.x; i < J; i += blockDim.x) {
                s_delay[i] = s_delay[j];
                s_active[i] = false;
            }
            for (int i = threadIdx.x; i < (J - j) * MAX_P; i += blockDim.x)
                s_sol[(j + i / MAX_P) * MAX_P + i % MAX_P] = complex<double>(0.0, 0.0);
            __syncthreads();
            break;
        }
        // 3. the new atom, its Gram row and right-hand side
        for (int w = threadIdx.x; w < W; w += blockDim.x)
            A[j * W + w] = periodic_sinc(tau0 + w - s_delay[j], L);
        __syncthreads();
        // (one warp per dot product: j + 1 Gram entries, then P right-hand sides)
        for (int t = warp; t <= j + P; t += n_warps) {
            double x = 0.0, y = 0.0;
            if (t <= j) {
                for (int w = lane; w < W; w += 32) x += A[t * W + w] * A[j * W + w];
            } else {
                const float2* c = C + (t - j - 1) * W;
                for (int w = lane; w < W; w += 32) {
                    x += A[j * W + w] * (double)c[w].x;
                    y += A[j * W + w] * (double)c[w].y;
                }
            }
            for (int o = 16; o > 0; o /= 2) {
                x += __shfl_xor_sync(0xffffffff, x, o);
                y += __shfl_xor_sync(0xffffffff, y, o);
            }
            if (lane == 0) {
                if (t <= j) { s_gram[t * MAX_J + j] = x; s_gram[j * MAX_J + t] = x; }
                else s_rhs[j * MAX_P + t - j - 1] = complex<double>(x, y);
            }
        }
        __syncthreads();
        // 4. ridge least squares over atoms 0..j in warp 0: the Cholesky factor of
        //    A^T A + diag(ridge) a column at a time (lane r the row r), then forward and back
        //    substitution (lane p the right-hand side p)
        const int n = j + 1;
        if (warp == 0) {
            double trace = 0.0;
            for (int i = 0; i < n; ++i) trace += s_gram[i * MAX_J + i];
            for (int c = 0; c < n; ++c) {
                double v = 0.0;
                if (lane >= c && lane < n) {
                    v = s_gram[lane * MAX_J + c] + (lane == c ? (s_active[c] ? 1e-9 : 1e9) * trace : 0.0);
                    for (int m = 0; m < c; ++m) v -= s_chol[lane * MAX_J + m] * s_chol[c * MAX_J + m];
                }
                const double diag = sqrt(__shfl_sync(0xffffffff, v, c));
                if (lane >= c && lane < n) s_chol[lane * MAX_J + c] = (lane == c) ? diag : v / diag;
                __syncwarp();
            }
            if (lane < P) {
                const int p = lane;
                for (int r = 0; r < n; ++r) {            // forward: L y = b
                    complex<double> v = s_rhs[r * MAX_P + p];
                    for (int m = 0; m < r; ++m) v -= s_chol[r * MAX_J + m] * s_sol[m * MAX_P + p];
                    s_sol[r * MAX_P + p] = v / s_chol[r * MAX_J + r];
                }
                for (int r = n - 1; r >= 0; --r) {       // backward: L^T x = y
                    complex<double> v = s_sol[r * MAX_P + p];
                    for (int m = r + 1; m < n; ++m) v -= s_chol[m * MAX_J + r] * s_sol[m * MAX_P + p];
                    s_sol[r * MAX_P + p] = v / s_chol[r * MAX_J + r];
                }
                for (int r = 0; r < n; ++r) if (!s_active[r]) s_sol[r * MAX_P + p] = complex<double>(0.0, 0.0);
            }
        }
        __syncthreads();
        // 5. residual C - A X
        for (int i = threadIdx.x; i < PW; i += blockDim.x) {
            const int p = i / W, w = i % W;
            complex<double> v = complex<double>(C[i].x, C[i].y);
            for (int m = 0; m < n; ++m) v -= A[m * W + w] * s_sol[m * MAX_P + p];
            R[i] = make_float2((float)v.real(), (float)v.imag());
        }
        __syncthreads();
    }
    for (int i = threadIdx.x; i < J * P; i += blockDim.x)
        amplitudes[(long long)f * J * P + i] = s_sol[(i / P) * MAX_P + i % P];
    for (int i = threadIdx.x; i < J; i += blockDim.x) {
        delays[f * J + i] = s_delay[i];
        active[f * J + i] = s_active[i];
    }
}

// amplitudes [F, J, P] complex128, delays [F, J] -> taps_fft [F, P, L] complex64.
// One thread per (frame, bin); the phase nu delta / L is reduced modulo 1 in float64, the
// rest runs in float32 (relative error ~1e-7).
extern "C" __global__ void atom_taps_fft(const complex<double>* amplitudes, const double* delays,
                                         int J, int P, int L, int F, complex<float>* taps_fft) {
    const long long i = (long long)blockDim.x * blockIdx.x + threadIdx.x;
    if (i >= (long long)F * L) return;
    const int f = (int)(i / L), bin = (int)(i % L);
    const bool nyquist = (L % 2 == 0) && (bin == L / 2);
    const double nu = (bin <= (L - 1) / 2) ? (double)bin : (double)(bin - L);
    float re[MAX_P], im[MAX_P];
    #pragma unroll
    for (int p = 0; p < MAX_P; ++p) { re[p] = 0.0f; im[p] = 0.0f; }
    for (int j = 0; j < J; ++j) {
        const double d = delays[f * J + j];
        float c, s;
        if (nyquist) { c = (float)cospi(d); s = 0.0f; }
        else {
            double cycles = nu * d / L;
            cycles -= rint(cycles);
            sincospif(-2.0f * (float)cycles, &s, &c);
        }
        const complex<double>* a = amplitudes + ((long long)f * J + j) * P;
        #pragma unroll
        for (int p = 0; p < MAX_P; ++p) {
            if (p < P) {
                const float ar = (float)a[p].real(), ai = (float)a[p].imag();
                re[p] += ar * c - ai * s;
                im[p] += ar * s + ai * c;
            }
        }
    }
    #pragma unroll
    for (int p = 0; p < MAX_P; ++p)
        if (p < P) taps_fft[((long long)f * P + p) * L + bin] = complex<float>(re[p], im[p]);
}
