// Stand-in for CuPy's complex header when a kernel file is compiled as C++ on the CPU
// (see ../shim.hpp): the same complex<T> API (real(), imag(), conj, arithmetic with T).
#pragma once
#include <complex>
using std::complex;
using std::conj;
