/*
 * masked.template.h -- softmax, log_softmax and logsumexp with a mask
 * (where=), written once for an element type T.  Included by rows.c after
 * rows.template.h, with the same T, S, CS_EXP, CS_EXP_NR, CS_EXP_LO; it
 * runs rows.template.h's own primitives (exp_split_with, exp_split_k_with,
 * exp_seg_with, first_index, block_exp_cols, block_store_scaled, fill), so
 * the numerics are the unmasked kernels' over the kept entries: r = the max
 * of the kept entries, s = n1 + tail around one arg-max entry, log1p of
 * (n1 - 1) + tail, sums in double by blocks, and below CS_SMALL_M classes
 * a block of rows at a time.
 *
 * Mask row i starts at mask + i * ldmask (m bytes; ldmask 0: one mask row
 * for every row, a (1, m) mask broadcast without copying); a nonzero byte
 * keeps the entry.
 *
 * A masked entry's value is never used: every value is selected first,
 * v_j = keep_j ? z_j : -inf (after an unconditional load, which keeps the
 * loops vectorizable without masked loads), and the primitives see only
 * v.  So a NaN or inf under the mask changes nothing, and a masked entry
 * gets probability 0 and log-probability -inf, as a kept -inf does.  v is
 * written where the result goes (softmax, log_softmax: the output row,
 * then the primitives run in place), or, for logsumexp, into a stack
 * buffer of CS_STAGE entries at a time.  Masked entries are left out of
 * the row min that picks CS_EXP_NR (row_max_nr in rows.template.h), and
 * exp_nr_masked maps their shifted value -inf to 0 itself: a mask costs
 * a select per entry, not the general exp.  (A kept -inf takes the general
 * exp, as in the unmasked kernels; the small-m blocks leave every -inf
 * out.  CS_EXP_NR and CS_EXP give the same bits on [CS_EXP_LO, 0], and
 * CS_EXP(-inf) is 0, so the choice never changes a result.)
 *
 * Per row: kept entries with a finite max give the unmasked kernel's
 * result for the row of the kept entries.  Kept entries whose max is not
 * finite (a kept +inf, or only -inf / NaN kept) give a NaN row as the
 * unmasked kernels do (logsumexp: NaN for a kept NaN, else the max, as
 * SciPy).  No kept entry at all: softmax 0, log_softmax -inf, logsumexp
 * -inf -- not NaN: attention over a fully padded row, a policy over a
 * state with no legal action.
 */

#ifndef CS_STAGE
#define CS_STAGE 1024   /* logsumexp: selected entries staged at a time (a multiple of
                           CS_SUM_BLK and CS_BLK; 8 KB of float64, in L1) */
#endif

/* CS_EXP_NR where the argument may also be -inf (a masked or -inf entry's
   v_j - r, r finite): exp(-inf) = 0 without leaving CS_EXP_NR's range */
CS_ALWAYS_INLINE T FN(exp_nr_masked)(T x)
{
    T e = CS_EXP_NR(x == -(T)INFINITY ? (T)0 : x);
    return x == -(T)INFINITY ? (T)0 : e;
}

/* f(..., exp): the exp for the row or block (nr: every kept argument in
   [CS_EXP_LO, 0]), as CS_EXP_SEL in rows.template.h */
#define CS_EXP_SEL_MASKED(nr, f, ...) \
    ((nr) ? f(__VA_ARGS__, FN(exp_nr_masked)) : f(__VA_ARGS__, CS_EXP))

/* max of the kept entries of a row (-inf when none is kept; NaN skipped),
   whether any is kept, and whether the exp of every kept entry is in
   CS_EXP_NR's range (masked entries left out: exp_nr_masked takes them).
   The min's select is written from k and z, not from v: gcc 12 at
   -march=x86-64-v3/v4 miscompiles this loop (a wrong max) when it is
   `v == -inf ? inf : v` (found by tests/test_where.py) */
static inline T FN(row_max_masked)(const T *z, const unsigned char *k, ptrdiff_t m,
                                   int *nr, int *any)
{
    T r = -(T)INFINITY, lo = (T)INFINITY;
    unsigned char a = 0;
#pragma omp simd reduction(max : r) reduction(min : lo) reduction(| : a)
    for (ptrdiff_t j = 0; j < m; j++) {
        T zj = z[j];
        T v = k[j] ? zj : -(T)INFINITY;
        T w = k[j] ? zj : (T)INFINITY;
        r = v > r ? v : r;
        lo = w < lo ? w : lo;
        a |= k[j];
    }
    *nr = lo - r >= CS_EXP_LO;
    *any = a != 0;
    return r;
}

/* o_j = v_j = keep_j ? z_j : -inf (o may equal z); returns max_j v_j */
static inline T FN(select_row)(const T *z, const unsigned char *k, T *o, ptrdiff_t m)
{
    T r = -(T)INFINITY;
#pragma omp simd reduction(max : r)
    for (ptrdiff_t j = 0; j < m; j++) {
        T zj = z[j];
        T v = k[j] ? zj : -(T)INFINITY;
        o[j] = v;
        r = v > r ? v : r;
    }
    return r;
}

/* logsumexp's t = (n1 - 1) + tail for the kept entries of a row (r their
   finite max): the selected values staged through buf, CS_STAGE at a time;
   the stage holding the first arg-max entry is split around it
   (exp_split_k_with), the others summed whole (exp_seg_with), the stages'
   sums added with Kahan's compensation as exp_seg_with adds its blocks */
CS_ALWAYS_INLINE double FN(lse_tail_masked_with)(const T *z, const unsigned char *k,
                                                 ptrdiff_t m, T r, T (*ex)(T))
{
    T buf[CS_STAGE];
    double total = 0.0, comp = 0.0;
    int found = 0;
    for (ptrdiff_t j0 = 0; j0 < m; j0 += CS_STAGE) {
        ptrdiff_t len = m - j0 < CS_STAGE ? m - j0 : CS_STAGE;
        T sm = FN(select_row)(z + j0, k + j0, buf, len);
        double tb, n1;
        if (!found && sm == r) {
            tb = FN(exp_split_k_with)(buf, NULL, len, r, FN(first_index)(buf, len, r), &n1, ex);
            found = 1;
        } else {
            tb = FN(exp_seg_with)(buf, NULL, 0, len, r, ex);
        }
        double yk = tb - comp, tk = total + yk;
        comp = (tk - total) - yk;
        total = tk;
    }
    return total;
}


/*
 * Small m: rows.template.h's block_exp with the mask applied in the
 * transpose (masked -> -inf) and a per-lane flag any[b] (row b keeps an
 * entry).  Lanes whose max is not finite are shifted by 0 instead, so an
 * all-masked row leaves exp(-inf) = 0 in buf, not NaN; r[b] keeps the true
 * max for the callers' CS_FINITE tests.  Padding lanes (b >= nb) hold 0,
 * kept.
 */
static inline void FN(block_exp_masked)(const T *z, ptrdiff_t ldz, const unsigned char *k,
                                        ptrdiff_t ldk, ptrdiff_t nb, ptrdiff_t m, T *buf,
                                        T *r, double *tail, double *n1, unsigned char *any)
{
#pragma omp simd
    for (ptrdiff_t b = 0; b < CS_BLK; b++)
        any[b] = 0;
    if (nb == CS_BLK) {
        for (ptrdiff_t j = 0; j < m; j++)
            for (ptrdiff_t b = 0; b < CS_BLK; b++) {
                T v = z[b * ldz + j];
                unsigned char kb = k[b * ldk + j];
                buf[j * CS_BLK + b] = kb ? v : -(T)INFINITY;
                any[b] |= kb;
            }
    } else {
        for (ptrdiff_t j = 0; j < m; j++)
            for (ptrdiff_t b = 0; b < CS_BLK; b++) {
                unsigned char kb = b < nb ? k[b * ldk + j] : 1;
                buf[j * CS_BLK + b] = b < nb ? (kb ? z[b * ldz + j] : -(T)INFINITY) : 0;
                any[b] |= kb;
            }
    }
    T lo[CS_BLK], r0[CS_BLK];
#pragma omp simd
    for (ptrdiff_t b = 0; b < CS_BLK; b++) {
        r[b] = -(T)INFINITY;
        lo[b] = (T)INFINITY;
        tail[b] = 0.0;
    }
    for (ptrdiff_t j = 0; j < m; j++) {
        const T *col = buf + j * CS_BLK;
#pragma omp simd
        for (ptrdiff_t b = 0; b < CS_BLK; b++) {
            T v = col[b];
            T w = v == -(T)INFINITY ? (T)INFINITY : v;
            r[b] = v > r[b] ? v : r[b];
            lo[b] = w < lo[b] ? w : lo[b];
        }
    }
    int nr = 1;
#pragma omp simd reduction(& : nr)
    for (ptrdiff_t b = 0; b < CS_BLK; b++) {
        nr &= lo[b] - r[b] >= CS_EXP_LO;
        r0[b] = CS_FINITE(r[b]) ? r[b] : (T)0;
    }
    CS_EXP_SEL_MASKED(nr, FN(block_exp_cols), buf, m, r0, tail, n1);
}

static void FN(softmax_masked_small)(const T *z, ptrdiff_t ldz, const unsigned char *mask,
                                     ptrdiff_t ldmask, T *out, ptrdiff_t ldo,
                                     ptrdiff_t n, ptrdiff_t m)
{
    T buf[CS_SMALL_M * CS_BLK], r[CS_BLK], inv[CS_BLK];
    double tail[CS_BLK], n1[CS_BLK];
    unsigned char any[CS_BLK];
    for (ptrdiff_t i0 = 0; i0 < n; i0 += CS_BLK) {
        ptrdiff_t nb = n - i0 < CS_BLK ? n - i0 : CS_BLK;
        FN(block_exp_masked)(z + i0 * ldz, ldz, mask + i0 * ldmask, ldmask, nb, m,
                             buf, r, tail, n1, any);
        /* (an all-masked row: buf column 0, times 0) */
#pragma omp simd
        for (ptrdiff_t b = 0; b < CS_BLK; b++)
            inv[b] = CS_FINITE(r[b]) ? (T)(1.0 / (n1[b] + tail[b]))
                                     : (any[b] ? (T)NAN : (T)0);
        FN(block_store_scaled)(buf, inv, out + i0 * ldo, ldo, nb, m);
    }
}

static void FN(log_softmax_masked_small)(const T *z, ptrdiff_t ldz, const unsigned char *mask,
                                         ptrdiff_t ldmask, T *out, ptrdiff_t ldo,
                                         ptrdiff_t n, ptrdiff_t m)
{
    T buf[CS_SMALL_M * CS_BLK], r[CS_BLK], ls[CS_BLK];
    double tail[CS_BLK], n1[CS_BLK];
    unsigned char any[CS_BLK];
    for (ptrdiff_t i0 = 0; i0 < n; i0 += CS_BLK) {
        ptrdiff_t nb = n - i0 < CS_BLK ? n - i0 : CS_BLK;
        FN(block_exp_masked)(z + i0 * ldz, ldz, mask + i0 * ldmask, ldmask, nb, m,
                             buf, r, tail, n1, any);
#pragma omp simd
        for (ptrdiff_t b = 0; b < CS_BLK; b++)
            ls[b] = (T)cs_log1p_d((n1[b] - 1.0) + tail[b]);
        for (ptrdiff_t b = 0; b < nb; b++) {
            const T *zi = z + (i0 + b) * ldz;
            const unsigned char *ki = mask + (i0 + b) * ldmask;
            T *o = out + (i0 + b) * ldo;
            if (!CS_FINITE(r[b])) {
                FN(fill)(o, m, any[b] ? (T)NAN : -(T)INFINITY);
                continue;
            }
            for (ptrdiff_t j = 0; j < m; j++) {   /* elementwise: safe in place */
                T zj = zi[j];
                o[j] = ((ki[j] ? zj : -(T)INFINITY) - r[b]) - ls[b];
            }
        }
    }
}

/* logsumexp of a row whose kept max r is not finite, as SciPy: NaN if a
   kept entry is NaN, else r (+inf, or -inf: all -inf or none kept) */
static inline T FN(lse_special_masked)(const T *z, const unsigned char *k, ptrdiff_t m, T r)
{
    int has_nan = 0;
    for (ptrdiff_t j = 0; j < m; j++) {
        T zj = z[j];
        has_nan |= isnan(k[j] ? zj : (T)0);
    }
    return has_nan ? (T)NAN : r;
}

static void FN(logsumexp_masked_small)(const T *z, ptrdiff_t ldz, const unsigned char *mask,
                                       ptrdiff_t ldmask, T *out, ptrdiff_t n, ptrdiff_t m)
{
    T buf[CS_SMALL_M * CS_BLK], r[CS_BLK];
    double tail[CS_BLK], n1[CS_BLK], v[CS_BLK];
    unsigned char any[CS_BLK];
    for (ptrdiff_t i0 = 0; i0 < n; i0 += CS_BLK) {
        ptrdiff_t nb = n - i0 < CS_BLK ? n - i0 : CS_BLK;
        FN(block_exp_masked)(z + i0 * ldz, ldz, mask + i0 * ldmask, ldmask, nb, m,
                             buf, r, tail, n1, any);
#pragma omp simd
        for (ptrdiff_t b = 0; b < CS_BLK; b++)
            v[b] = (double)r[b] + cs_log1p_d((n1[b] - 1.0) + tail[b]);
        for (ptrdiff_t b = 0; b < nb; b++)
            out[i0 + b] = CS_FINITE(r[b]) ? (T)v[b]
                : FN(lse_special_masked)(z + (i0 + b) * ldz, mask + (i0 + b) * ldmask, m, r[b]);
    }
}

void FN(cs_softmax_masked)(const T *z, ptrdiff_t ldz, const unsigned char *mask,
                           ptrdiff_t ldmask, T *out, ptrdiff_t ldo, ptrdiff_t n, ptrdiff_t m)
{
    if (m < CS_SMALL_M) {
        FN(softmax_masked_small)(z, ldz, mask, ldmask, out, ldo, n, m);
        return;
    }
    for (ptrdiff_t i = 0; i < n; i++) {
        const T *zi = z + i * ldz;
        const unsigned char *ki = mask + i * ldmask;
        T *oi = out + i * ldo;
        int nr, any;
        T r = FN(row_max_masked)(zi, ki, m, &nr, &any);
        if (!isfinite(r)) {
            FN(fill)(oi, m, any ? (T)NAN : (T)0);
            continue;
        }
        FN(select_row)(zi, ki, oi, m);   /* then in place, as the unmasked kernel */
        double n1, tail = CS_EXP_SEL_MASKED(nr, FN(exp_split_with), oi, oi, m, r, &n1);
        T inv = (T)(1.0 / (n1 + tail));
#pragma omp simd
        for (ptrdiff_t j = 0; j < m; j++)
            oi[j] *= inv;
    }
}

void FN(cs_log_softmax_masked)(const T *z, ptrdiff_t ldz, const unsigned char *mask,
                               ptrdiff_t ldmask, T *out, ptrdiff_t ldo, ptrdiff_t n,
                               ptrdiff_t m)
{
    if (m < CS_SMALL_M) {
        FN(log_softmax_masked_small)(z, ldz, mask, ldmask, out, ldo, n, m);
        return;
    }
    for (ptrdiff_t i = 0; i < n; i++) {
        const T *zi = z + i * ldz;
        const unsigned char *ki = mask + i * ldmask;
        T *oi = out + i * ldo;
        int nr, any;
        T r = FN(row_max_masked)(zi, ki, m, &nr, &any);
        if (!isfinite(r)) {
            FN(fill)(oi, m, any ? (T)NAN : -(T)INFINITY);
            continue;
        }
        /* (v_j - r) - log1p(t), as the unmasked kernel, v in the output row */
        FN(select_row)(zi, ki, oi, m);
        double n1, tail = CS_EXP_SEL_MASKED(nr, FN(exp_split_with), oi, NULL, m, r, &n1);
        T ls = (T)log1p((n1 - 1.0) + tail);
#pragma omp simd
        for (ptrdiff_t j = 0; j < m; j++)
            oi[j] = (oi[j] - r) - ls;
    }
}

void FN(cs_logsumexp_masked)(const T *z, ptrdiff_t ldz, const unsigned char *mask,
                             ptrdiff_t ldmask, T *out, ptrdiff_t n, ptrdiff_t m)
{
    if (m < CS_SMALL_M) {
        FN(logsumexp_masked_small)(z, ldz, mask, ldmask, out, n, m);
        return;
    }
    for (ptrdiff_t i = 0; i < n; i++) {
        const T *zi = z + i * ldz;
        const unsigned char *ki = mask + i * ldmask;
        int nr, any;
        T r = FN(row_max_masked)(zi, ki, m, &nr, &any);
        if (!isfinite(r)) {
            out[i] = FN(lse_special_masked)(zi, ki, m, r);
            continue;
        }
        /* r + log1p(t) rounded once from double, as the unmasked kernel */
        double t = CS_EXP_SEL_MASKED(nr, FN(lse_tail_masked_with), zi, ki, m, r);
        out[i] = (T)((double)r + log1p(t));
    }
}

#undef CS_EXP_SEL_MASKED
