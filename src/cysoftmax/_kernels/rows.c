/*
 * rows.c -- one SIMD variant of the row kernels.
 *
 * Built once per variant by meson with -DCS_VARIANT=<name> and that
 * variant's -march flags (baseline: none; avx2: x86-64-v3; avx512:
 * x86-64-v4), so every function name carries the variant's suffix, e.g.
 * cs_softmax_f_avx2.  dispatch.c picks one variant at run time.
 * rows.template.h (and grads.template.h, nll_opts.template.h,
 * masked.template.h and bce.template.h after it) is included once per element type.
 */
#include <math.h>
#include "rows.h"
#include "cs_exp.h"
#include "small_avx512.h"   /* in-register transposes of the small-m blocks (avx512 only) */
/* The avx512 variant (-march=x86-64-v4) runs the exp, the exp-and-sum pass
   and the scale / shift passes of the large-m rows in intrinsics
   (cs_exp_avx512.h: vscalef, four vectors in flight, masked row tails); the
   other variants, and any build without AVX-512, the generic C below.
   CS_V(name): that header's name_<S> for the template's type. */
#if defined(__AVX512F__) && defined(__AVX512DQ__)
#include "cs_exp_avx512.h"
#define CS_AVX512 1
#define CS_VCAT_(a, b) a##_##b
#define CS_VCAT(a, b) CS_VCAT_(a, b)
#define CS_V(name) CS_VCAT(name, S)
#endif

#ifndef CS_VARIANT
#error "CS_VARIANT must be defined (baseline, avx2, avx512)"
#endif

#define CS_BLK (64 / (ptrdiff_t)sizeof(T))  /* rows per block on the small-m path: one 64-byte vector */
#define CS_SMALL_M 32   /* below this many classes, vectorize across rows */
/* FN(name): name_<S>_<variant>, the templates' function names */
#define CS_CAT3_(a, b, c) a##_##b##_##c
#define CS_CAT3(a, b, c) CS_CAT3_(a, b, c)
#define FN(name) CS_CAT3(name, S, CS_VARIANT)
#define CS_CAT2_(a, b) a##b
#define CS_CAT2(a, b) CS_CAT2_(a, b)
/* a loop helper that takes the exp as a constant argument, called with the
   one the row needs (see rows.template.h) */
#define CS_EXP_SEL(nr, f, ...) ((nr) ? f(__VA_ARGS__, CS_EXP_NR) : f(__VA_ARGS__, CS_EXP))
/* float64 entries per block of a row's sum (rows.template.h, exp_seg):
   few enough that a block's sum stays within a few eps even when the
   compiler does not vectorize it (one accumulator: sanitizer builds, other
   compilers), and a tie at the max costs at most 16 eps of the sum */
#define CS_SUM_BLK 64

#define T float
#define S f
#define CS_EXP cs_exp_f
#define CS_EXP_NR cs_exp_nr_f
#define CS_EXP_LO CS_EXP_NR_LO_F
#define CS_ITYPE int32_t   /* an integer as wide as T */
#define CS_PROD_T 0x1p-10  /* nll_small: the smallest tail of the product path */
#include "rows.template.h"
#include "grads.template.h"
#include "nll_opts.template.h"
#include "masked.template.h"
#include "bce.template.h"
#undef T
#undef S
#undef CS_EXP
#undef CS_EXP_NR
#undef CS_EXP_LO
#undef CS_ITYPE
#undef CS_PROD_T

#define T double
#define S d
#define CS_EXP cs_exp_d
#define CS_EXP_NR cs_exp_nr_d
#define CS_EXP_LO CS_EXP_NR_LO_D
#define CS_ITYPE int64_t
#define CS_PROD_T 0.25
#include "rows.template.h"
#include "grads.template.h"
#include "nll_opts.template.h"
#include "masked.template.h"
#include "bce.template.h"
#undef T
#undef S
#undef CS_EXP
#undef CS_EXP_NR
#undef CS_EXP_LO
#undef CS_ITYPE
#undef CS_PROD_T

/* the kernels that do not depend on T (rows.h, CS_UNTYPED_KERNELS) */
#define CS_VNAME_(name, v) name##_##v
#define CS_VNAME(name, v) CS_VNAME_(name, v)

int CS_VNAME(cs_labels_ok, CS_VARIANT)(const ptrdiff_t *y, ptrdiff_t n, ptrdiff_t m)
{
    int bad = 0;
#pragma omp simd reduction(| : bad)
    for (ptrdiff_t i = 0; i < n; i++)
        bad |= (size_t)y[i] >= (size_t)m;   /* a negative label wraps to huge */
    return !bad;
}

void CS_VNAME(cs_log1_array, CS_VARIANT)(const double *x, double *out, ptrdiff_t n)
{
#pragma omp simd
    for (ptrdiff_t i = 0; i < n; i++)
        out[i] = cs_log1_d(x[i]);
}

void CS_VNAME(cs_log1p_array, CS_VARIANT)(const double *x, double *out, ptrdiff_t n)
{
#pragma omp simd
    for (ptrdiff_t i = 0; i < n; i++)
        out[i] = cs_log1p_d(x[i]);
}
