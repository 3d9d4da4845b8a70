// src_cpu_clones.h — SRC_CPU_CLONES: a CPU entry point compiled for AVX-512, AVX2+FMA and
// baseline x86-64 (GCC's target_clones), the loader picking the best for the running CPU, so
// that one build is fast on any x86-64 machine and safe on all of them. Everything an entry
// point calls must inline into it. GCC only: Clang does not multi-version function templates,
// which the entry points are (there they are compiled once, for the baseline).
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(SRCEXT_NO_CPU_CLONES)
#define SRC_CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define SRC_CPU_CLONES
#endif
