// src_lanes.cuh — a thread's lanes: the neurons n0 .. n0 + L - 1 that one forward thread runs
// (src_recurrence_kernels.cuh: src_forward_kernel), and how their values of one time step move
// as one word.
//
// A per-step tensor is (T, N), so the L values of a thread's lanes at one step are adjacent:
// one vector access (Lanes, aligned to L elements) loads or stores all of them. Kept in
// registers in storage form (the forward's ring) they are converted at their use.
#pragma once

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

namespace srcext {
namespace cuda {

template <typename T, int L>
struct alignas(L * sizeof(T)) Lanes {
  T v[L];
};

template <typename To, typename From>
__host__ __device__ __forceinline__ To bits_as(From from) {
  static_assert(sizeof(To) == sizeof(From), "same size");
  To to;
  std::memcpy(&to, &from, sizeof(to));
  return to;
}

// A 16-bit storage type's value from its bits as a float, and the bits of a float rounded to
// it (to nearest even). bfloat16 is a float's high half: one shift or mask.
template <typename scalar_t>
struct Bits16;

template <>
struct Bits16<c10::BFloat16> {
  // w: the bits in the low half (high: false) or the high half of a 32-bit word
  __host__ __device__ __forceinline__ static float get(uint32_t w, bool high) {
    return bits_as<float>(high ? w & 0xFFFF0000u : w << 16);
  }
  __host__ __device__ __forceinline__ static uint32_t bits(float v) { return c10::BFloat16(v).x; }
};

template <>
struct Bits16<c10::Half> {
  __host__ __device__ __forceinline__ static float get(uint32_t w, bool high) {
    return static_cast<float>(
        c10::Half(static_cast<uint16_t>(high ? w >> 16 : w), c10::Half::from_bits()));
  }
  __host__ __device__ __forceinline__ static uint32_t bits(float v) { return c10::Half(v).x; }
};

// How the lanes' values of one step move. Word: what one access loads or stores; Slot: what a
// register of the forward's ring holds (converted at its use); get: lane l in the math's
// precision; put: L values as a Word. In general the storage's own Lanes, element by element.
template <typename scalar_t, typename Acc, int L, typename = void>
struct LaneWord {
  using Word = Lanes<scalar_t, L>;
  using Slot = Word;
  __host__ __device__ __forceinline__ static Acc get(const Slot& w, int l) {
    return static_cast<Acc>(w.v[l]);
  }
  __host__ __device__ __forceinline__ static Word put(const Acc (&v)[L]) {
    Word w;
#pragma unroll
    for (int l = 0; l < L; ++l) w.v[l] = static_cast<scalar_t>(v[l]);
    return w;
  }
};

template <typename scalar_t>
constexpr bool kIs16Bit =
    std::is_same_v<scalar_t, c10::BFloat16> || std::is_same_v<scalar_t, c10::Half>;

// 16-bit storage as bits in 32-bit registers. Element-wise, the compiler packs two 16-bit
// values into a register and unpacks them through byte permutes (~3 instructions a step), and
// the packed ring let ptxas sink the one-lane loads below Little's law. One lane: a 16-bit load
// zero-extended into its own register. Two lanes: one 32-bit word, lane 0 in the low half;
// on the GPU both round into it with one conversion (cvt.rn.bf16x2.f32 / f16x2, sm_80+; the
// host, which runs the emulation, rounds each the same way).
template <typename scalar_t, int L>
struct LaneWord<scalar_t, float, L, std::enable_if_t<kIs16Bit<scalar_t>>> {
  static_assert(L == 1 || L == 2, "one or two 16-bit lanes");
  using Word = std::conditional_t<L == 1, uint16_t, uint32_t>;
  using Slot = uint32_t;
  __host__ __device__ __forceinline__ static float get(Slot w, int l) {
    return Bits16<scalar_t>::get(w, l == 1);
  }
  __host__ __device__ __forceinline__ static Word put(const float (&v)[L]) {
    if constexpr (L == 1) {
      return static_cast<Word>(Bits16<scalar_t>::bits(v[0]));
    } else {
#if defined(__CUDA_ARCH__)
      Word w;
      if constexpr (std::is_same_v<scalar_t, c10::BFloat16>) {
        asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(w) : "f"(v[1]), "f"(v[0]));
      } else {
        asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(w) : "f"(v[1]), "f"(v[0]));
      }
      return w;
#else
      return Bits16<scalar_t>::bits(v[0]) | (Bits16<scalar_t>::bits(v[1]) << 16);
#endif
    }
  }
};

}  // namespace cuda
}  // namespace srcext
