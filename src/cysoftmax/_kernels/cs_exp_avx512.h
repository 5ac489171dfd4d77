/*
 * cs_exp_avx512.h -- the AVX-512 variant's exp and the large-m row loops
 * (exp-and-sum, scale, shift), in intrinsics.  Included by rows.c only when
 * the variant is built with AVX-512 (__AVX512F__, the avx512 variant); the
 * generic C of cs_exp.h and rows.template.h stays the portable source of
 * every one of these and is what the baseline and avx2 variants run.
 *
 * Why intrinsics: gcc does not emit vscalefps/pd from cs_exp.h's C, does
 * not keep several independent vectors in flight across a reduction (one
 * accumulator: every add waits for the last), and finishes a row with a
 * scalar or narrower epilogue.  Here:
 *   - the exp is cs_exp.h's, operation for operation (same constants, same
 *     range reduction, same polynomial, the FMAs the avx512 build contracts
 *     cs_exp.h into), but 2^n is applied with vscalef: p * 2^n in one
 *     correctly rounded operation, which is exactly the product of cs_exp.h
 *     for normal results (cs_exp_nr_*) and the same single rounding for the
 *     general exp's subnormal and overflowing results (cs_exp_*'s two-factor
 *     scaling rounds once, in the last product).  So the results are those
 *     of cs_exp.h in this variant (tests/test_exp.py: <= 1.5 ulp against
 *     mpmath, and the exhaustive float32 sweep), and the normal-range exp
 *     gives the same bits as the general one on [CS_EXP_LO, 0];
 *   - the row loop takes four vectors per step, each its own accumulator;
 *   - the last partial vector of a row is a masked load/store.
 *
 * The split sum (rows.template.h, pass 2), here: every exp that is exactly
 * 1 is left out of the tail and counted instead (n1), so t = (n1 - 1) +
 * tail is the sum of every exp but one arg-max entry's with no cancellation
 * and no search for the arg-max (the small-m blocks do the same lane-wise).
 * The tail is summed in T lanes over blocks, each block's sum then added
 * into double:
 *   float32: blocks of CS_V_BLK_f = 256 entries, 4 accumulators x 16 lanes,
 *     so each lane adds at most 4 terms (3 roundings), then the 4
 *     accumulators are added pairwise (2 roundings) and the 16 lanes are
 *     converted to double (exact) and added to two double accumulators.
 *     All terms are >= 0, so a block's sum errs by at most 5 u (u = 2^-24)
 *     of itself, and the tail by at most (5 u + m 2^-53) of itself: 2.5 eps
 *     of float32 in the worst case (the old double sum had ~0 here, the
 *     exps' own 1.5 ulp being the error; the README bounds, (8 + c) eps,
 *     keep their margin).  The 1 of the max is never in a float sum, which
 *     is what made t = s - 1 of the old plain double sum need a threshold.
 *   float64: blocks of CS_V_BLK_d = 128 entries, 4 accumulators x 8 lanes
 *     (4 terms per lane: 3 roundings, 2 more adding the accumulators), the
 *     block's lane sums added lane-wise with Kahan's compensation into
 *     (tot, comp), the 8 lanes added at the end (3 roundings): at most
 *     ~8 u (u = 2^-53) of the tail whatever m, as the generic code's
 *     blocks of CS_SUM_BLK (10 u).
 * Ties at the max (more than one exp exactly 1) are exact: counted in n1.
 */
#ifndef CS_EXP_AVX512_H
#define CS_EXP_AVX512_H

#include <immintrin.h>
#include <math.h>
#include "cs_exp.h"

#define CS_V_BLK_f 256   /* float32 entries per block of the tail sum */
#define CS_V_BLK_d 128   /* float64 entries per block */

/* the range reduction and polynomial of cs_exp_core_f/d, 16 / 8 lanes;
   returns exp(r), *nd = n = round(x / ln2) */
static inline __m512 cs_v_exp_core_f(__m512 x, __m512 *nd_out)
{
    const __m512 shift = _mm512_set1_ps(CS_SHIFT_F);
    __m512 kd = _mm512_fmadd_ps(x, _mm512_set1_ps(0x1.715476p0f), shift);
    __m512 nd = _mm512_sub_ps(kd, shift);
    __m512 r = _mm512_fnmadd_ps(nd, _mm512_set1_ps(0x1.63p-1f), x);
    r = _mm512_fnmadd_ps(nd, _mm512_set1_ps(-0x1.bd0106p-13f), r);
    __m512 q = _mm512_set1_ps(0x1.6d754cp-10f);
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(0x1.120b72p-7f));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(0x1.5554b8p-5f));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(0x1.5554dcp-3f));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(0.5f));
    *nd_out = nd;
    return _mm512_add_ps(_mm512_set1_ps(1.0f), _mm512_fmadd_ps(_mm512_mul_ps(r, r), q, r));
}

static inline __m512d cs_v_exp_core_d(__m512d x, __m512d *nd_out)
{
    const __m512d shift = _mm512_set1_pd(CS_SHIFT_D);
    __m512d kd = _mm512_fmadd_pd(x, _mm512_set1_pd(0x1.71547652b82fep0), shift);
    __m512d nd = _mm512_sub_pd(kd, shift);
    __m512d r = _mm512_fnmadd_pd(nd, _mm512_set1_pd(0x1.62e42fee00000p-1), x);
    r = _mm512_fnmadd_pd(nd, _mm512_set1_pd(0x1.a39ef35793c76p-33), r);
    __m512d q = _mm512_set1_pd(0x1.af632bd579fc1p-26);
    q = _mm512_fmadd_pd(q, r, _mm512_set1_pd(0x1.28918606e1a89p-22));
    q = _mm512_fmadd_pd(q, r, _mm512_set1_pd(0x1.71ddf6b35affep-19));
    q = _mm512_fmadd_pd(q, r, _mm512_set1_pd(0x1.a019b90c8b607p-16));
    q = _mm512_fmadd_pd(q, r, _mm512_set1_pd(0x1.a01a01b00c685p-13));
    q = _mm512_fmadd_pd(q, r, _mm512_set1_pd(0x1.6c16c1788c092p-10));
    q = _mm512_fmadd_pd(q, r, _mm512_set1_pd(0x1.111111110f803p-7));
    q = _mm512_fmadd_pd(q, r, _mm512_set1_pd(0x1.5555555553d62p-5));
    q = _mm512_fmadd_pd(q, r, _mm512_set1_pd(0x1.5555555555558p-3));
    q = _mm512_fmadd_pd(q, r, _mm512_set1_pd(0x1.0000000000001p-1));
    *nd_out = nd;
    return _mm512_add_pd(_mm512_set1_pd(1.0), _mm512_fmadd_pd(_mm512_mul_pd(r, r), q, r));
}

/* Everything below is the same for both types: generated once per type by
   CS_V_DEFINE(S, T, V, M, SUF, L, HI, LO) with S the name suffix (f|d), V
   the vector type, M the mask type, SUF the intrinsics' suffix (ps|pd), L
   the lanes, HI/LO the general exp's clamps (cs_exp_f/d's). */

/* the tail mask of the last partial vector: its first `rem` lanes */
#define CS_V_TAIL(M, rem) ((M)((1u << (rem)) - 1u))

/* Per type: the block flush (add a block's 4 accumulators, move the sum
   into the row's double total) and the final total; see the file comment */
typedef struct { __m512d a, b; } cs_v_acc_f;   /* float32: two double accumulators */
static inline void cs_v_acc_init_f(cs_v_acc_f *t) { t->a = t->b = _mm512_setzero_pd(); }
static inline void cs_v_flush_f(cs_v_acc_f *t, __m512 a0, __m512 a1, __m512 a2, __m512 a3)
{
    __m512 s = _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));
    t->a = _mm512_add_pd(t->a, _mm512_cvtps_pd(_mm512_castps512_ps256(s)));
    t->b = _mm512_add_pd(t->b, _mm512_cvtps_pd(_mm512_extractf32x8_ps(s, 1)));
}
static inline double cs_v_acc_total_f(const cs_v_acc_f *t)
{
    return _mm512_reduce_add_pd(_mm512_add_pd(t->a, t->b));
}

typedef struct { __m512d tot, comp; } cs_v_acc_d;   /* float64: lane-wise Kahan */
static inline void cs_v_acc_init_d(cs_v_acc_d *t) { t->tot = t->comp = _mm512_setzero_pd(); }
static inline void cs_v_flush_d(cs_v_acc_d *t, __m512d a0, __m512d a1, __m512d a2, __m512d a3)
{
    __m512d s = _mm512_add_pd(_mm512_add_pd(a0, a1), _mm512_add_pd(a2, a3));
    __m512d y = _mm512_sub_pd(s, t->comp);
    __m512d tk = _mm512_add_pd(t->tot, y);
    t->comp = _mm512_sub_pd(_mm512_sub_pd(tk, t->tot), y);
    t->tot = tk;
}
static inline double cs_v_acc_total_d(const cs_v_acc_d *t)
{
    return _mm512_reduce_add_pd(t->tot) - _mm512_reduce_add_pd(t->comp);
}

#define CS_V_DEFINE(S, T, V, M, SUF, L, HI, LO)                                        \
/* exp on [CS_EXP_LO, 0] (or NaN): cs_exp_nr_S */                                       \
static inline V cs_v_exp_nr_##S(V x)                                                    \
{                                                                                       \
    V nd, p = cs_v_exp_core_##S(x, &nd);                                                \
    return _mm512_scalef_##SUF(p, nd);                                                  \
}                                                                                       \
/* exp everywhere: cs_exp_S (the clamps as there: min(HI, x) is x for a NaN x) */       \
static inline V cs_v_exp_##S(V x)                                                       \
{                                                                                       \
    x = _mm512_min_##SUF(_mm512_set1_##SUF(HI), x);                                     \
    x = _mm512_max_##SUF(_mm512_set1_##SUF(LO), x);                                     \
    V nd, p = cs_v_exp_core_##S(x, &nd);                                                \
    return _mm512_scalef_##SUF(p, nd);                                                  \
}                                                                                       \
                                                                                        \
/* out = exp(x) elementwise (nr: the normal-range exp) */                               \
static inline void cs_v_exp_array_##S(const T *x, T *out, ptrdiff_t n, int nr)          \
{                                                                                       \
    for (ptrdiff_t j = 0; j < n; j += L) {                                              \
        M k = n - j >= L ? (M)~(M)0 : CS_V_TAIL(M, n - j);                              \
        V v = _mm512_maskz_loadu_##SUF(k, x + j);                                       \
        _mm512_mask_storeu_##SUF(out + j, k, nr ? cs_v_exp_nr_##S(v) : cs_v_exp_##S(v));\
    }                                                                                   \
}                                                                                       \
                                                                                        \
/* one vector of the split sum: e = exp(z - r) on the lanes of k, stored in o   \
   (o NULL: not stored), added to acc unless exactly 1; returns the lanes       \
   added (the others are the 1s) */                                             \
CS_ALWAYS_INLINE unsigned cs_v_split_step_##S(const T *z, T *o, V rv, M k, V *acc,      \
                                              V (*ex)(V))                               \
{                                                                                       \
    V e = ex(_mm512_maskz_sub_##SUF(k, _mm512_maskz_loadu_##SUF(k, z), rv));            \
    if (o != NULL)                                                                      \
        _mm512_mask_storeu_##SUF(o, k, e);                                              \
    M ne = _mm512_mask_cmp_##SUF##_mask(k, e, _mm512_set1_##SUF(1), _CMP_NEQ_UQ);       \
    *acc = _mm512_mask_add_##SUF(*acc, ne, *acc, e);                                    \
    return (unsigned)__builtin_popcount((unsigned)ne);                                  \
}                                                                                       \
                                                                                        \
/* pass 2 of a row: o_j = exp(z_j - r) (o NULL: not stored; o may be z);        \
   returns the tail (the exps that are not exactly 1), *n1 the count of 1s       \
   (see the file comment for the blocks and their error) */                     \
CS_ALWAYS_INLINE double cs_v_exp_split_with_##S(const T *z, T *o, ptrdiff_t m, T r,     \
                                                double *n1, V (*ex)(V))                 \
{                                                                                       \
    const ptrdiff_t blk = CS_V_BLK_##S;                                                 \
    const M all = (M)~(M)0;                                                             \
    V rv = _mm512_set1_##SUF(r);                                                        \
    cs_v_acc_##S acc;                                                                   \
    cs_v_acc_init_##S(&acc);                                                            \
    ptrdiff_t added = 0, j = 0;                                                         \
    while (m - j >= 4 * L) {                                                            \
        V a0 = _mm512_setzero_##SUF(), a1 = a0, a2 = a0, a3 = a0;                       \
        ptrdiff_t jb = m - j >= blk ? j + blk : j + (m - j) / (4 * L) * (4 * L);        \
        for (; j < jb; j += 4 * L) {                                                    \
            added += cs_v_split_step_##S(z + j, o ? o + j : NULL, rv, all, &a0, ex);    \
            added += cs_v_split_step_##S(z + j + L, o ? o + j + L : NULL, rv, all, &a1, ex); \
            added += cs_v_split_step_##S(z + j + 2 * L, o ? o + j + 2 * L : NULL, rv, all, &a2, ex); \
            added += cs_v_split_step_##S(z + j + 3 * L, o ? o + j + 3 * L : NULL, rv, all, &a3, ex); \
        }                                                                               \
        cs_v_flush_##S(&acc, a0, a1, a2, a3);                                           \
    }                                                                                   \
    if (j < m) {   /* the last < 4 vectors, the final one masked */                     \
        V a0 = _mm512_setzero_##SUF(), a1 = a0;                                         \
        for (; j < m; j += L) {                                                         \
            M k = m - j >= L ? all : CS_V_TAIL(M, m - j);                               \
            added += cs_v_split_step_##S(z + j, o ? o + j : NULL, rv, k, &a0, ex);      \
        }                                                                               \
        cs_v_flush_##S(&acc, a0, a1, a1, a1);                                           \
    }                                                                                   \
    *n1 = (double)(m - added);                                                          \
    return cs_v_acc_total_##S(&acc);                                                    \
}                                                                                       \
                                                                                        \
static inline double cs_v_exp_split_##S(const T *z, T *o, ptrdiff_t m, T r, int nr,    \
                                        double *n1)                                     \
{   /* (each case its own loop: no test of o per vector) */                             \
    if (o == NULL)                                                                      \
        return nr ? cs_v_exp_split_with_##S(z, NULL, m, r, n1, cs_v_exp_nr_##S)         \
                  : cs_v_exp_split_with_##S(z, NULL, m, r, n1, cs_v_exp_##S);           \
    return nr ? cs_v_exp_split_with_##S(z, o, m, r, n1, cs_v_exp_nr_##S)                \
              : cs_v_exp_split_with_##S(z, o, m, r, n1, cs_v_exp_##S);                  \
}                                                                                       \
                                                                                        \
/* pass 1 of a row: its max (NaN entries skipped: max(z, acc) keeps acc for a   \
   NaN z) and whether min - max >= lo (rows.template.h, row_max_nr), with four  \
   max/min accumulator pairs in flight and a masked last vector */              \
static inline T cs_v_row_max_nr_##S(const T *z, ptrdiff_t m, int *nr, T lo)             \
{                                                                                       \
    V r0 = _mm512_set1_##SUF(-(T)INFINITY), r1 = r0, r2 = r0, r3 = r0;                  \
    V l0 = _mm512_set1_##SUF((T)INFINITY), l1 = l0, l2 = l0, l3 = l0;                   \
    ptrdiff_t j = 0;                                                                    \
    for (; m - j >= 4 * L; j += 4 * L) {                                                \
        V x0 = _mm512_loadu_##SUF(z + j), x1 = _mm512_loadu_##SUF(z + j + L);           \
        V x2 = _mm512_loadu_##SUF(z + j + 2 * L), x3 = _mm512_loadu_##SUF(z + j + 3 * L); \
        r0 = _mm512_max_##SUF(x0, r0); l0 = _mm512_min_##SUF(x0, l0);                   \
        r1 = _mm512_max_##SUF(x1, r1); l1 = _mm512_min_##SUF(x1, l1);                   \
        r2 = _mm512_max_##SUF(x2, r2); l2 = _mm512_min_##SUF(x2, l2);                   \
        r3 = _mm512_max_##SUF(x3, r3); l3 = _mm512_min_##SUF(x3, l3);                   \
    }                                                                                   \
    for (; j < m; j += L) {                                                             \
        M k = m - j >= L ? (M)~(M)0 : CS_V_TAIL(M, m - j);                              \
        V x = _mm512_maskz_loadu_##SUF(k, z + j);                                       \
        r0 = _mm512_mask_max_##SUF(r0, k, x, r0);                                       \
        l0 = _mm512_mask_min_##SUF(l0, k, x, l0);                                       \
    }                                                                                   \
    r0 = _mm512_max_##SUF(_mm512_max_##SUF(r0, r1), _mm512_max_##SUF(r2, r3));          \
    l0 = _mm512_min_##SUF(_mm512_min_##SUF(l0, l1), _mm512_min_##SUF(l2, l3));          \
    T r = _mm512_reduce_max_##SUF(r0), mn = _mm512_reduce_min_##SUF(l0);                \
    *nr = mn - r >= lo;                                                                 \
    return r;                                                                           \
}                                                                                       \
                                                                                        \
/* o_j *= c over a row (softmax's scale pass) */                                        \
static inline void cs_v_scale_##S(T *o, ptrdiff_t m, T c)                               \
{                                                                                       \
    V cv = _mm512_set1_##SUF(c);                                                        \
    ptrdiff_t j = 0;                                                                    \
    for (; m - j >= 2 * L; j += 2 * L) {                                                \
        _mm512_storeu_##SUF(o + j, _mm512_mul_##SUF(_mm512_loadu_##SUF(o + j), cv));    \
        _mm512_storeu_##SUF(o + j + L,                                                  \
                            _mm512_mul_##SUF(_mm512_loadu_##SUF(o + j + L), cv));       \
    }                                                                                   \
    for (; j < m; j += L) {                                                             \
        M k = m - j >= L ? (M)~(M)0 : CS_V_TAIL(M, m - j);                              \
        _mm512_mask_storeu_##SUF(o + j, k,                                              \
                                 _mm512_mul_##SUF(_mm512_maskz_loadu_##SUF(k, o + j), cv)); \
    }                                                                                   \
}                                                                                       \
                                                                                        \
/* o_j = (z_j - r) - ls over a row (log_softmax's pass 3; o may be z) */                \
static inline void cs_v_shift_##S(const T *z, T *o, ptrdiff_t m, T r, T ls)             \
{                                                                                       \
    V rv = _mm512_set1_##SUF(r), lv = _mm512_set1_##SUF(ls);                            \
    ptrdiff_t j = 0;                                                                    \
    for (; m - j >= 2 * L; j += 2 * L) {                                                \
        V x0 = _mm512_loadu_##SUF(z + j), x1 = _mm512_loadu_##SUF(z + j + L);           \
        _mm512_storeu_##SUF(o + j, _mm512_sub_##SUF(_mm512_sub_##SUF(x0, rv), lv));     \
        _mm512_storeu_##SUF(o + j + L, _mm512_sub_##SUF(_mm512_sub_##SUF(x1, rv), lv)); \
    }                                                                                   \
    for (; j < m; j += L) {                                                             \
        M k = m - j >= L ? (M)~(M)0 : CS_V_TAIL(M, m - j);                              \
        V x = _mm512_maskz_loadu_##SUF(k, z + j);                                       \
        _mm512_mask_storeu_##SUF(o + j, k, _mm512_sub_##SUF(_mm512_sub_##SUF(x, rv), lv)); \
    }                                                                                   \
}

CS_V_DEFINE(f, float, __m512, __mmask16, ps, 16, 89.0f, -104.0f)
CS_V_DEFINE(d, double, __m512d, __mmask8, pd, 8, 710.0, -746.0)

#undef CS_V_DEFINE

#endif
