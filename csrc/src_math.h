// src_math.h — the transcendental functions of the cell, per backend and precision.
//
// The cell needs tanh and sigmoid. On CUDA they are the device library's accurate tanh/exp.
// On the CPU, double uses <cmath>; float uses a branch-free exp (Cephes-style range
// reduction and a degree-6 polynomial, about 1 ulp) so that the compiler can vectorise the
// lane loops of the CPU kernels (std::tanh calls do not vectorise). Both stay within a few
// ulp of torch.tanh / torch.sigmoid; the tests bound the difference.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define SRC_HD __host__ __device__ __forceinline__
#elif defined(__GNUC__)
#define SRC_HD inline __attribute__((always_inline))
#else
#define SRC_HD inline
#endif

namespace srcext {
namespace math {

#if !defined(__CUDA_ARCH__)
// exp(x) for float, vectorisable: x = n ln2 + r, |r| <= ln2/2, exp(r) by polynomial, 2^n by
// exponent bits.
// NaN propagates (comparisons with NaN are false, so the clamps leave it alone).
SRC_HD float exp_vec(float x) {
  x = x > 88.3762626647949f ? 88.3762626647949f : x;
  x = x < -87.3365447504f ? -87.3365447504f : x;
  // n = round(x / ln2) by the 1.5 * 2^23 trick (std::floor would not vectorise).
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}
#endif

SRC_HD float tanh(float x) {
#if defined(__CUDA_ARCH__)
  return ::tanhf(x);
#else
  // tanh(x) = 1 - 2 / (exp(2x) + 1): absolute error ~1e-7 everywhere, saturates cleanly.
  return 1.0f - 2.0f / (exp_vec(2.0f * x) + 1.0f);
#endif
}

SRC_HD double tanh(double x) { return ::tanh(x); }

SRC_HD float sigmoid(float x) {
#if defined(__CUDA_ARCH__)
  return 1.0f / (1.0f + ::expf(-x));
#else
  return 1.0f / (1.0f + exp_vec(-x));
#endif
}

SRC_HD double sigmoid(double x) { return 1.0 / (1.0 + ::exp(-x)); }

}  // namespace math
}  // namespace srcext
