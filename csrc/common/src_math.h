// src_math.h — the transcendental functions of the cell, per backend and precision.
//
// The cell needs tanh (with its derivative) and sigmoid, both built on exp. On the CPU,
// double uses <cmath>; float uses a branch-free exp (Cephes-style range reduction and a
// degree-6 polynomial, about 1 ulp) so that the compiler can vectorise the lane loops of the
// CPU kernels (std::tanh calls do not vectorise). On CUDA, double uses the device library's
// exp and IEEE division; float uses the special-function unit directly: one MUFU.EX2
// (ex2.approx.ftz, 2 ulp) per exponential and one MUFU.RCP (rcp.approx.ftz, 1 ulp) per
// reciprocal, where expf and 1.0f / d cost 9 and ~10 instructions with a range-check branch
// (benchmarks/GPU_NOTES.md). (tanh.approx.f32, one MUFU.TANH, was measured and left out: at
// its documented error the bfloat16 gradients miss their tolerance; GPU_NOTES.md.)
//
// tanh is accurate in relative terms near 0 where that matters: the cell multiplies
// tanh(i / rho) by rho, so an absolute error of 1e-7 becomes 3e-3 at rho = 3e4, and a tanh(0)
// that is not exactly 0 makes a spike out of rounding. The CPU computes tanh from expm1 (exact
// at 0, relative everywhere); the GPU's input tanh switches to its series below
// |i / rho| = 1/40, its candidate tanh (whose error nothing scales) keeps the exp form, exact
// at 0. The derivatives go to exactly 0 where tanh saturates, as 1 - tanh^2 does in the
// reference (an infinite input gives a NaN weight gradient, not an infinite one).
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

// The device branches below are taken by the CUDA kernels. A host build of the CUDA kernels
// (the tests' emulation) runs the same math: it defines SRC_DEVICE_MATH itself, and the two
// special-function approximations below (exp2_approx, reciprocal_approx), before this header.
#if defined(__CUDA_ARCH__) && !defined(SRC_DEVICE_MATH)
#define SRC_DEVICE_MATH 1
#endif

namespace srcext {
namespace math {

#if !defined(SRC_DEVICE_MATH)
// expm1(r) for |r| <= ln2/2 (degree-6 polynomial, Cephes), and 2^n for an integral float n in
// the normal range (exponent bits): the parts of the vectorisable exponentials below.
SRC_HD float expm1_reduced(float r) {
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  return p * r * r + r;
}

SRC_HD float pow2_integral(float n) {
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return scale;
}

// expm1(x) for float, vectorisable: x = n ln2 + r, |r| <= ln2/2, m = expm1(r) by polynomial,
// scale = 2^n, expm1(x) = scale m + (scale - 1): exactly m where n = 0, which is what keeps
// the relative precision near 0. For x <= 80 (its callers bound x from above; 2^n must stay a
// normal number). Below, x is clamped where exp underflows (the result is -1). NaN propagates
// (comparisons with NaN are false).
SRC_HD float expm1_vec(float x) {
  x = x < -87.3365447504f ? -87.3365447504f : x;
  // n = round(x / ln2) by the 1.5 * 2^23 trick (std::floor would not vectorise).
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  const float m = expm1_reduced(r), scale = pow2_integral(n);
  return scale * m + (scale - 1.0f);
}

// 2^z for float, vectorisable: z = n + f, |f| <= 1/2 exact, 2^f = 1 + expm1(f ln2). For
// z <= 115 (callers bound it); clamped below where 2^z underflows.
SRC_HD float exp2_vec(float z) {
  z = z < -126.0f ? -126.0f : z;
  const float n = (z + 12582912.0f) - 12582912.0f;
  return (expm1_reduced((z - n) * 0.693147180559945309f) + 1.0f) * pow2_integral(n);
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

#if defined(__CUDA_ARCH__)
// The special-function unit's approximations, one MUFU instruction each (inline PTX: the
// CUDA intrinsics add range checks the cell does not need). `.ftz`: subnormal inputs and
// results are zero, which changes nothing here (exp2 of less than -126 is 0 instead of
// 2^-127; the cell only takes reciprocals of numbers >= 1). Documented maximum errors (PTX
// ISA): ex2 2 ulp, rcp 1 ulp.
SRC_HD float exp2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

SRC_HD float reciprocal_approx(float x) {
  float y;
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
#endif

SRC_HD float reciprocal(float d) {
#if defined(SRC_DEVICE_MATH)
  return reciprocal_approx(d);
#else
  return reciprocal_vec(d);
#endif
}

SRC_HD double reciprocal(double d) { return 1.0 / d; }

SRC_HD float exp2(float z) {
#if defined(SRC_DEVICE_MATH)
  return exp2_approx(z);
#else
  return exp2_vec(z);
#endif
}

SRC_HD double exp2(double z) { return ::exp2(z); }

#if !defined(SRC_DEVICE_MATH)
SRC_HD float expm1(float x) { return expm1_vec(x); }
#endif

SRC_HD double expm1(double x) { return ::expm1(x); }

// Where the exponentials of tanh are clamped from above: tanh is 1 to the last bit well
// before, e^max + 2 stays a normal number, and 1 / (e^max + 1) squared underflows to 0 (the
// saturated derivative).
template <typename Acc>
struct ExpLimit;
template <>
struct ExpLimit<float> {
  static constexpr float value = 80.0f;
};
template <>
struct ExpLimit<double> {
  static constexpr double value = 700.0;
};

// tanh(x) and its derivative 1 - tanh(x)^2, from one expm1 and one division:
//   m = expm1(2x), q = 1 / (m + 2) = 1 / (e + 1), tanh = m q, 1 - tanh^2 = 4 e q^2, e = m + 1.
// m q keeps full relative precision near 0 (tanh(0) is exactly 0; m + 2 >= 1 never cancels);
// 4 e q^2 keeps it where tanh nears 1 (a spiking neuron) and is as precise as the
// reference's 1 - tanh^2 where tanh nears -1 (e = m + 1 cancels there, to ~6e-8 absolute),
// and exactly 0 beyond: q^2 underflows above, m + 1 rounds to 0 below.
template <typename Acc>
SRC_HD void tanh_and_derivative(Acc x, Acc& value, Acc& derivative) {
  Acc two_x = Acc(2) * x;
  two_x = two_x > ExpLimit<Acc>::value ? ExpLimit<Acc>::value : two_x;  // NaN passes through
  const Acc m = expm1(two_x);
  const Acc q = reciprocal(m + Acc(2));
  value = m * q;
  derivative = Acc(4) * (m + Acc(1)) * (q * q);
}

// The candidate's tanh reads its argument scaled, a = tanh_arg_scale() x, so that the GPU's
// scale, -2 log2(e), makes e^(-2x) one ex2 of it: the cell folds the scale into its constants
// (CellConstants: r_arg, r_s_arg), the bias (candidate_bias) and one FMA of the drive x.
// Elsewhere (the CPU, double) the scale is 1 and tanh_of_arg is tanh_and_derivative.
// gpu_tanh_arg_scale: the GPU's, for the constants a CUDA launcher builds on the host.
template <typename Acc>
SRC_HD constexpr Acc gpu_tanh_arg_scale() {
  return Acc(1);
}
template <>
SRC_HD constexpr float gpu_tanh_arg_scale<float>() {
  return -2.88539008177792681f;  // -2 log2(e)
}

template <typename Acc>
SRC_HD constexpr Acc tanh_arg_scale() {
#if defined(SRC_DEVICE_MATH)
  return gpu_tanh_arg_scale<Acc>();
#else
  return Acc(1);
#endif
}

template <typename Acc>
SRC_HD void tanh_of_arg(Acc a, Acc& value, Acc& derivative) {
  tanh_and_derivative(a, value, derivative);
}

// max(a, b) where b is never NaN, NaN when a is (a NaN state must show, not turn into b): on
// the GPU one instruction (max.NaN, sm_80+).
SRC_HD float max_nan(float a, float b) {
#if defined(__CUDA_ARCH__)
  float y;
  asm("max.NaN.f32 %0, %1, %2;" : "=f"(y) : "f"(a), "f"(b));
  return y;
#else
  return a < b ? b : a;
#endif
}

SRC_HD double max_nan(double a, double b) { return a < b ? b : a; }

// s tanh(i / s) and d/di of it (the cell's bounded input, s = rho), accurate in relative terms
// near 0, which matters here: s scales the error up.
template <typename Acc>
SRC_HD void scaled_tanh_and_derivative(Acc i, Acc s, Acc inv_s, Acc& value, Acc& derivative) {
  Acc t;
  tanh_and_derivative(i * inv_s, t, derivative);
  value = s * t;
}

// The candidate's term of the input x = s tanh(i / s) and the bias: tanh_arg_scale() x + b_arg
// (b_arg: the bias in the argument's units), with x and dx/di. neg_s_arg = -tanh_arg_scale() s
// and b_at_s_arg = b_arg + tanh_arg_scale() s serve the GPU's form below; here the term is
// formed from x. The derivative comes multiplied by derivative_scale.
template <typename Acc>
SRC_HD Acc scaled_tanh_term(Acc i, Acc s, Acc inv_s, Acc neg_s_arg, Acc b_arg, Acc b_at_s_arg,
                            Acc& x, Acc& derivative, Acc derivative_scale) {
  (void)neg_s_arg;
  (void)b_at_s_arg;
  scaled_tanh_and_derivative(i, s, inv_s, x, derivative);
  derivative *= derivative_scale;
  return x * tanh_arg_scale<Acc>() + b_arg;
}

// sigmoid(z ln2) = 1 / (1 + 2^-z): the sigmoid with its argument in base-2 units, so that a
// caller can fold the scaling into its own constants (the cell's gate: one FMA).
template <typename Acc>
SRC_HD Acc sigmoid_exp2(Acc z) {
  Acc minus_z = -z;
  // keeps 1 + 2^-z a normal number (the exp2 of the CPU needs it)
  minus_z = minus_z > Acc(115) ? Acc(115) : minus_z;
  return reciprocal(Acc(1) + exp2(minus_z));
}

#if defined(SRC_DEVICE_MATH)
// tanh(x) and its derivative from the candidate's scaled argument a = -2 log2(e) x (see
// tanh_arg_scale): e = 2^a = e^(-2x), p = 2 / (e + 1) in [0, 2], tanh = p - 1,
// 1 - tanh^2 = e p^2. No |x| and no copysign: e may overflow to inf (x very negative), where
// p = 0 and tanh = -1 exactly; the clamp of e, in the derivative only (the forward drops it),
// keeps inf * 0 from making a NaN there (0: saturated). e p^2 keeps full relative precision
// where tanh nears -1 or 1 (a spiking or hyperpolarised neuron: p (2 - p) would lose it
// there) and is exactly 0 once p^2 underflows; the value is accurate in absolute terms near 0
// (p - 1 cancels: ex2 has no expm1), and exactly 0 at 0 (ex2(0) = 1 and rcp(1) = 1 are exact).
SRC_HD void tanh_of_arg(float a, float& value, float& derivative) {
  const float e = exp2_approx(a);
  const float p = reciprocal_approx(0.5f * e + 0.5f);
  value = p - 1.0f;
  derivative = fminf(e, 0x1p126f) * (p * p);
}

// s tanh(i / s), accurate in relative terms near 0: below |y| = |i / s| = 1/40 it is the series
// i (1 - y^2/3), whose first omitted term, 2 y^4 / 15, is under 3.5e-8 of the value there
// (half an ulp); above, the exp form s - s p, whose error (~2e-7 absolute in tanh) is under
// 1e-5 of the value and falls as 1/|y|. The derivative needs no switch: p (2 - p) has full
// relative precision near 0 (p near 1) and is exactly 0 at e = 0 or inf (no clamp needed);
// where tanh nears -1 (a strongly negative input) its absolute error is ~2.4e-7 (an ulp of p
// near 2), 4x the reference's 1 - tanh^2 there. The candidate's tanh could not afford that
// (the bias gradients of tests/test_cuda_emulation.py missed their bound); the input's
// derivative passes them: it is itself near 0 there (x saturates at -rho).
// `small`: whether the series applies; the other values serve scaled_tanh_term.
SRC_HD void scaled_tanh_parts(float i, float s, float inv_s, float& series, float& p, bool& small) {
  // The parenthesised products of s and inv_s are loop invariants: the kernels compute them
  // once per neuron, not per step.
  const float a = i * (inv_s * 2.88539008177792681f);  // 2 y log2(e), y = i / s
  const float e = exp2_approx(a);
  p = reciprocal_approx(0.5f * e + 0.5f);  // 2 / (e + 1); tanh = 1 - p
  // i (1 - y^2 / 3), y^2 = a^2 / (2 log2 e)^2
  series = (i * (a * a)) * (-1.0f / (3.0f * 2.88539008177792681f * 2.88539008177792681f)) + i;
  small = fabsf(a) < 0.025f * 2.88539008177792681f;  // |y| < 1/40
}

SRC_HD void scaled_tanh_and_derivative(float i, float s, float inv_s, float& value,
                                       float& derivative) {
  float series, p;
  bool small;
  scaled_tanh_parts(i, s, inv_s, series, p, small);
  value = small ? series : s - s * p;
  derivative = p * (2.0f - p);  // e p^2, as e p = 2 - p
}

// The term with x's exp form folded into the bias (and the derivative times derivative_scale,
// a factor its caller would otherwise multiply by, at no cost): tanh_arg_scale() (s - s p) + b_arg =
// neg_s_arg p + b_at_s_arg, one FMA of per-neuron values (s - s p needs s twice, which the
// GPU reads from its constant bank into a register every step). The rounding of b_at_s_arg
// adds an ulp of tanh_arg_scale() (s + b) to the argument, of the order of x's own error
// (~2e-7 s above). The series keeps the plain form.
SRC_HD float scaled_tanh_term(float i, float s, float inv_s, float neg_s_arg, float b_arg,
                              float b_at_s_arg, float& x, float& derivative,
                              float derivative_scale) {
  float series, p;
  bool small;
  scaled_tanh_parts(i, s, inv_s, series, p, small);
  x = small ? series : s - s * p;  // read only by the constants' gradients
  // d (p (2 - p)): one FMA and one product for any d (at d = 1, 2 - p exactly as before)
  derivative = p * (2.0f * derivative_scale - derivative_scale * p);
  return small ? series * gpu_tanh_arg_scale<float>() + b_arg : p * neg_s_arg + b_at_s_arg;
}

// 1 / (1 + 2^-z): an infinite exponential gives 1 / inf = 0, so no clamp.
SRC_HD float sigmoid_exp2(float z) { return reciprocal_approx(1.0f + exp2_approx(-z)); }

#endif  // SRC_DEVICE_MATH

}  // namespace math
}  // namespace srcext
