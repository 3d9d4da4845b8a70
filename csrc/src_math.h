// src_math.h — the transcendental functions of the cell, per backend and precision.
//
// The cell needs tanh (with its derivative) and sigmoid, both built on exp. On the CPU,
// double uses <cmath>; float uses a branch-free exp (Cephes-style range reduction and a
// degree-6 polynomial, about 1 ulp) so that the compiler can vectorise the lane loops of the
// CPU kernels (std::tanh calls do not vectorise). On CUDA, double uses the device library's
// exp and IEEE division; float uses the special-function unit directly: one MUFU.EX2
// (ex2.approx.ftz, 2 ulp) per exponential and one MUFU.RCP (rcp.approx.ftz, 1 ulp) per
// reciprocal, where expf and 1.0f / d cost 9 and ~10 instructions with a range-check branch
// (benchmarks/GPU_NOTES.md). All stay within a few ulp of torch.tanh / torch.sigmoid in
// absolute terms; the tests bound the difference. (tanh.approx.f32, one MUFU.TANH, was
// measured and left out: at its documented error the bfloat16 gradients miss their tolerance;
// GPU_NOTES.md.)
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

// The device branches below are taken by the CUDA kernels, on the GPU and in their host
// emulation (csrc/cuda/emulation), which must run the same math as the device.
#if defined(__CUDA_ARCH__) || defined(SRCEXT_CUDA_EMULATION)
#define SRC_DEVICE_MATH 1
#endif

#if defined(SRCEXT_CUDA_EMULATION) && !defined(__CUDA_ARCH__)
#include <cuda_runtime.h>  // the emulation's stand-in: approx_result, the error model below
#endif

namespace srcext {
namespace math {

#if !defined(SRC_DEVICE_MATH)
// exp(x) for float, vectorisable: x = n ln2 + r, |r| <= ln2/2, exp(r) by polynomial, 2^n by
// exponent bits.
// For x <= 80 (its callers bound x from above; 2^n must stay a normal number). Below, x is
// clamped where exp underflows. NaN propagates (comparisons with NaN are false).
SRC_HD float exp_vec(float x) {
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

// 1 / d for float, vectorisable and without the divider (whose throughput bounds the CPU
// kernels): a bit-level first guess refined by three Newton steps to about 1 ulp. Valid for
// normal d >= 1, which is all the cell uses it for.
SRC_HD float reciprocal_vec(float d) {
  int32_t bits;
  std::memcpy(&bits, &d, sizeof(bits));
  bits = 0x7EF311C3 - bits;
  float r;
  std::memcpy(&r, &bits, sizeof(r));
  r = r * (2.0f - d * r);
  r = r * (2.0f - d * r);
  r = r * (2.0f - d * r);
  return r;
}
#endif

#if defined(SRC_DEVICE_MATH)
// The special-function unit's approximations, one MUFU instruction each (inline PTX: the
// CUDA intrinsics add range checks the cell does not need). `.ftz`: subnormal inputs and
// results are zero, which changes nothing here (exp2 of less than -126 is 0 instead of
// 2^-127; the cell only takes reciprocals of numbers >= 1). Documented maximum errors (PTX
// ISA): ex2 2 ulp, rcp 1 ulp.
// The host emulation runs the correctly rounded host functions instead, through the
// emulation's error model (csrc/cuda/emulation/cuda_runtime.h), which the tests can set to put
// every result at the documented bound: the emulation's approximations differ from the
// device's by up to that bound.
SRC_HD float exp2_approx(float x) {
#if defined(__CUDA_ARCH__)
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
#else
  return cuda::emulation::approx_result(std::exp2(x), cuda::emulation::kEx2ApproxError);
#endif
}

SRC_HD float reciprocal_approx(float x) {
#if defined(__CUDA_ARCH__)
  float y;
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
#else
  return cuda::emulation::approx_result(1.0f / x, cuda::emulation::kRcpApproxError);
#endif
}

#endif  // SRC_DEVICE_MATH

SRC_HD float reciprocal(float d) {
#if defined(SRC_DEVICE_MATH)
  return reciprocal_approx(d);
#else
  return reciprocal_vec(d);
#endif
}

SRC_HD double reciprocal(double d) { return 1.0 / d; }

SRC_HD float exp(float x) {
#if defined(SRC_DEVICE_MATH)
  return exp2_approx(x * 1.44269504088896341f);
#else
  return exp_vec(x);
#endif
}

SRC_HD double exp(double x) { return ::exp(x); }

// tanh(x) and its derivative 1 - tanh(x)^2, from one exp and one division:
//   e = exp(2x), q = 1 / (e + 1), tanh = 1 - 2q, 1 - tanh^2 = 4 e q^2.
// The derivative keeps full relative precision where tanh saturates (1 - tanh^2 computed
// from a rounded tanh would not), which is where a resting or spiking neuron sits.
template <typename Acc>
SRC_HD void tanh_and_derivative(Acc x, Acc& value, Acc& derivative) {
  Acc two_x = Acc(2) * x;
  two_x = two_x > Acc(80) ? Acc(80) : two_x;  // tanh is 1 to the last bit well before this
  const Acc e = exp(two_x);
  const Acc q = reciprocal(e + Acc(1));
  value = Acc(1) - Acc(2) * q;
  derivative = Acc(4) * (e * q) * q;
}

template <typename Acc>
SRC_HD Acc sigmoid(Acc x) {
  Acc minus_x = -x;
  minus_x = minus_x > Acc(80) ? Acc(80) : minus_x;  // keeps 1 + e a normal number
  return reciprocal(Acc(1) + exp(minus_x));
}

#if defined(SRC_DEVICE_MATH)
// The same on the special-function unit, with the scalings folded: e = 2^(2x log2 e),
// p = 2 / (e + 1) = 1 / (e/2 + 1/2), tanh = 1 - p, 1 - tanh^2 = e p^2.
SRC_HD void tanh_and_derivative(float x, float& value, float& derivative) {
  float a = x * 2.88539008177792681f;  // 2 x log2(e)
  a = a > 115.415603f ? 115.415603f : a;  // 2x <= 80, as above: keeps e p^2 finite
  const float e = exp2_approx(a);
  const float p = reciprocal_approx(0.5f * e + 0.5f);
  value = 1.0f - p;
  derivative = (e * p) * p;
}

// 1 / (1 + 2^(-x log2 e)): an infinite exponential gives 1 / inf = 0, so no clamp.
SRC_HD float sigmoid(float x) {
  return reciprocal_approx(1.0f + exp2_approx(x * -1.44269504088896341f));
}

#endif  // SRC_DEVICE_MATH

}  // namespace math
}  // namespace srcext
