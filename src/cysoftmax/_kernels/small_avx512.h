/*
 * small_avx512.h -- in-register transposes for the small-m block path
 * (rows.template.h, "Small class counts"), AVX-512 variant only.
 *
 * The small-m kernels work on a block of CS_BLK rows (one 64-byte vector
 * of rows: 16 float / 8 double) transposed into a column-major scratch
 * buf[j][b], so that every pass is lane-wise across rows.  The generic C
 * (block_load, block_store_scaled) moves the block element by element:
 * at m = 10 those two loops were most of the time.  Here each row is one
 * masked load (lanes >= m zero, rows >= nb zero), the N x N tile is
 * transposed with log2(N) stages of two-source permutes, and the columns
 * are stored as whole vectors; the way back is the same transpose and one
 * masked store per row.  Only data movement: the values, hence the bits,
 * are those of the generic C (tests/test_small_blocks.py compares every
 * variant with it, every m < CS_SMALL_M).
 *
 * A stage h (h = N/2 ... 1) exchanges bit h of the row index with bit h
 * of the lane index: rows i and i + h (bit h of i clear) become
 *   lo[l] = l & h ? v[i+h][l-h] : v[i][l]      hi[l] = l & h ? v[i+h][l] : v[i][l+h]
 * The stages commute, and together they transpose the tile.  A tile of w
 * < N columns needs fewer permutes: loading, only the outputs i <
 * roundup(w, h) of stage h feed a wanted column (stages N/2 ... 1);
 * storing, rows >= w are don't-cares and stage h (1 ... N/2) needs only
 * its outputs i < roundup(w, 2h).  w is made a constant by a switch, so
 * each case is straight-line code in registers.
 *
 * Guarded by __AVX512F__ (with BW/DQ/VL: -march=x86-64-v4): the baseline,
 * avx2 and portable builds never see an intrinsic from here.
 */
#ifndef CS_SMALL_AVX512_H
#define CS_SMALL_AVX512_H
#if defined(__AVX512F__) && defined(__AVX512DQ__)
#include <immintrin.h>

#define CS_SMALL_SIMD 1

#define CS_IXLO(l, h, N) (((l) & (h)) ? (N) + (l) - (h) : (l))
#define CS_IXHI(l, h, N) (((l) & (h)) ? (N) + (l) : (l) + (h))
#define CS_IX16(F, h) _mm512_setr_epi32(F(0, h, 16), F(1, h, 16), F(2, h, 16), F(3, h, 16), \
    F(4, h, 16), F(5, h, 16), F(6, h, 16), F(7, h, 16), F(8, h, 16), F(9, h, 16),          \
    F(10, h, 16), F(11, h, 16), F(12, h, 16), F(13, h, 16), F(14, h, 16), F(15, h, 16))
#define CS_IX8(F, h) _mm512_setr_epi64(F(0, h, 8), F(1, h, 8), F(2, h, 8), F(3, h, 8),    \
    F(4, h, 8), F(5, h, 8), F(6, h, 8), F(7, h, 8))
#define CS_RUP(w, h) (((w) + (h) - 1) / (h) * (h))

/* one stage h on the rows v[0, N), computing the outputs i < lim only */
#define CS_TR_STAGE(VEC, PERM, IX, N, v, h, lim)                                    \
    do {                                                                            \
        const __m512i ixlo_ = IX(CS_IXLO, h), ixhi_ = IX(CS_IXHI, h);               \
        _Pragma("GCC unroll 16")                                                    \
        for (int i_ = 0; i_ < (N); i_++) {                                          \
            if ((h) >= (N) || (i_ & (h)) || i_ >= (lim))                            \
                continue;                                                           \
            VEC a_ = v[i_], b_ = v[i_ + (h)];                                       \
            v[i_] = PERM(a_, ixlo_, b_);                                            \
            if (i_ + (h) < (lim))                                                   \
                v[i_ + (h)] = PERM(a_, ixhi_, b_);                                  \
        }                                                                           \
    } while (0)

/*
 * The four tile movers, per type (VEC, N lanes, masked load / store):
 *   cs_tload_<S>_w(z, ldz, nb, dst, w): rows b < nb of z (w entries each)
 *     into dst[j * N + b], j < w (lanes b >= nb: 0)
 *   cs_tstore_<S>_w(src, c, out, ldo, nb, w): out[b * ldo + j] =
 *     src[j * N + b] * c[b] for b < nb, j < w
 * w a constant in [1, N] after inlining (the switch below).
 */
#define CS_SMALL_DEFINE(S, T, VEC, N, MASK, LOADZ, STOREU, MSTORE, LOADA, MUL, PERM, IX, ZERO) \
CS_ALWAYS_INLINE void cs_tload_##S##_w(const T *z, ptrdiff_t ldz, ptrdiff_t nb, T *dst,       \
                                       const int w)                                             \
{                                                                                               \
    VEC v[N];                                                                                   \
    const MASK k = (MASK)((1u << w) - 1u);                                                      \
    _Pragma("GCC unroll 16")                                                                    \
    for (int b = 0; b < N; b++)   /* rows past nb: a zero mask, from row 0's address */         \
        v[b] = LOADZ(b < nb ? k : (MASK)0, z + (b < nb ? b * ldz : 0));                         \
    CS_TR_STAGE(VEC, PERM, IX, N, v, 8, CS_RUP(w, 8));                                          \
    CS_TR_STAGE(VEC, PERM, IX, N, v, 4, CS_RUP(w, 4));                                          \
    CS_TR_STAGE(VEC, PERM, IX, N, v, 2, CS_RUP(w, 2));                                          \
    CS_TR_STAGE(VEC, PERM, IX, N, v, 1, w);                                                     \
    _Pragma("GCC unroll 16")                                                                    \
    for (int j = 0; j < w; j++)                                                                 \
        STOREU(dst + j * N, v[j]);                                                              \
}                                                                                               \
CS_ALWAYS_INLINE void cs_tstore_##S##_w(const T *src, const T *c, T *out, ptrdiff_t ldo,        \
                                        ptrdiff_t nb, const int w)                              \
{                                                                                               \
    VEC v[N];                                                                                   \
    const VEC cv = LOADA(c);                                                                    \
    _Pragma("GCC unroll 16")                                                                    \
    for (int j = 0; j < N; j++)                                                                 \
        v[j] = j < w ? MUL(cv, LOADA(src + j * N)) : ZERO();                                    \
    CS_TR_STAGE(VEC, PERM, IX, N, v, 1, CS_RUP(w, 2) < N ? CS_RUP(w, 2) : N);                   \
    CS_TR_STAGE(VEC, PERM, IX, N, v, 2, CS_RUP(w, 4) < N ? CS_RUP(w, 4) : N);                   \
    CS_TR_STAGE(VEC, PERM, IX, N, v, 4, CS_RUP(w, 8) < N ? CS_RUP(w, 8) : N);                   \
    CS_TR_STAGE(VEC, PERM, IX, N, v, 8, N);                                                     \
    const MASK k = (MASK)((1u << w) - 1u);                                                      \
    if (nb == N) {                                                                              \
        _Pragma("GCC unroll 16")                                                                \
        for (int b = 0; b < N; b++)                                                             \
            MSTORE(out + b * ldo, k, v[b]);                                                     \
    } else {                                                                                    \
        for (int b = 0; b < nb; b++)                                                            \
            MSTORE(out + b * ldo, k, v[b]);                                                     \
    }                                                                                           \
}                                                                                               \
/* the block's m columns, tile by tile (dst / src: CS_BLK = N lanes per column) */              \
static inline void cs_small_tload_##S(const T *z, ptrdiff_t ldz, ptrdiff_t nb, ptrdiff_t m,     \
                                      T *dst)                                                   \
{                                                                                               \
    for (ptrdiff_t j0 = 0; j0 < m; j0 += N) {                                                   \
        switch (m - j0 >= N ? N : (int)(m - j0)) {                                              \
        CS_SMALL_CASES_##N(cs_tload_##S##_w, z + j0, ldz, nb, dst + j0 * N)                     \
        }                                                                                       \
    }                                                                                           \
}                                                                                               \
static inline void cs_small_tstore_##S(const T *src, const T *c, T *out, ptrdiff_t ldo,         \
                                       ptrdiff_t nb, ptrdiff_t m)                               \
{                                                                                               \
    for (ptrdiff_t j0 = 0; j0 < m; j0 += N) {                                                   \
        switch (m - j0 >= N ? N : (int)(m - j0)) {                                              \
        CS_SMALL_CASES_##N(cs_tstore_##S##_w, src + j0 * N, c, out + j0, ldo, nb)               \
        }                                                                                       \
    }                                                                                           \
}

/* log_softmax's store, row by row (no transpose: it reads z again):
   out[b * ldo + j] = (z[b * ldz + j] - r[b]) - ls[b], b < nb, j < m,
   N lanes of a row per masked load / store (rows of a block are loaded
   one at a time, each before its own store: safe in place) */
#define CS_SMALL_DEFINE_SUB(S, T, VEC, N, MASK, LOADZ, MSTORE, SET1, SUB)                      \
static inline void cs_small_rows_sub_##S(const T *z, ptrdiff_t ldz, const T *r, const T *ls,    \
                                         T *out, ptrdiff_t ldo, ptrdiff_t nb, ptrdiff_t m)      \
{                                                                                               \
    for (ptrdiff_t b = 0; b < nb; b++) {                                                        \
        const VEC rb = SET1(r[b]), lb = SET1(ls[b]);                                            \
        for (ptrdiff_t j0 = 0; j0 < m; j0 += N) {                                               \
            const MASK k = m - j0 >= N ? (MASK)~(MASK)0 : (MASK)((1u << (m - j0)) - 1u);        \
            VEC v = LOADZ(k, z + b * ldz + j0);                                                 \
            MSTORE(out + b * ldo + j0, k, SUB(SUB(v, rb), lb));                                 \
        }                                                                                       \
    }                                                                                           \
}
CS_SMALL_DEFINE_SUB(f, float, __m512, 16, __mmask16, _mm512_maskz_loadu_ps,
                    _mm512_mask_storeu_ps, _mm512_set1_ps, _mm512_sub_ps)
CS_SMALL_DEFINE_SUB(d, double, __m512d, 8, __mmask8, _mm512_maskz_loadu_pd,
                    _mm512_mask_storeu_pd, _mm512_set1_pd, _mm512_sub_pd)

/* switch cases 1..N, w the last argument */
#define CS_SC(f, w, ...) case w: f(__VA_ARGS__, w); break;
#define CS_SMALL_CASES_8(f, ...) CS_SC(f, 1, __VA_ARGS__) CS_SC(f, 2, __VA_ARGS__)           \
    CS_SC(f, 3, __VA_ARGS__) CS_SC(f, 4, __VA_ARGS__) CS_SC(f, 5, __VA_ARGS__)               \
    CS_SC(f, 6, __VA_ARGS__) CS_SC(f, 7, __VA_ARGS__) CS_SC(f, 8, __VA_ARGS__)
#define CS_SMALL_CASES_16(f, ...) CS_SMALL_CASES_8(f, __VA_ARGS__)                           \
    CS_SC(f, 9, __VA_ARGS__) CS_SC(f, 10, __VA_ARGS__) CS_SC(f, 11, __VA_ARGS__)             \
    CS_SC(f, 12, __VA_ARGS__) CS_SC(f, 13, __VA_ARGS__) CS_SC(f, 14, __VA_ARGS__)            \
    CS_SC(f, 15, __VA_ARGS__) CS_SC(f, 16, __VA_ARGS__)

CS_SMALL_DEFINE(f, float, __m512, 16, __mmask16, _mm512_maskz_loadu_ps, _mm512_storeu_ps,
                _mm512_mask_storeu_ps, _mm512_loadu_ps, _mm512_mul_ps,
                _mm512_permutex2var_ps, CS_IX16, _mm512_setzero_ps)
CS_SMALL_DEFINE(d, double, __m512d, 8, __mmask8, _mm512_maskz_loadu_pd, _mm512_storeu_pd,
                _mm512_mask_storeu_pd, _mm512_loadu_pd, _mm512_mul_pd,
                _mm512_permutex2var_pd, CS_IX8, _mm512_setzero_pd)

#endif
#endif
