/*
 * grads.template.h -- the scaled logsumexp (SciPy's b= and return_sign=) and
 * the backward functions of softmax and log_softmax, written once for an
 * element type T.  Included by rows.c right after rows.template.h, with the
 * same T, S, CS_EXP, CS_EXP_NR, CS_EXP_LO (and its helpers in scope).
 *
 * cs_logsumexp_b: out_i = log |S_i|, S_i = sum_k b_ik exp(z_ik), sign_i its
 * sign.  An entry with b = 0, or masked out (mask != NULL and mask = 0), is
 * never read: its z (NaN, +inf) has no effect.  Per row:
 *   1. scan: r = max z over the taking-part entries, their min (for
 *      CS_EXP_NR), max |b| over the terms that can be non-zero, and flags
 *      for the special values (NaN, infinite terms of either sign).
 *   2. S = sum_k b_k exp(z_k - r), each term in double (exact for float;
 *      one rounding for double), summed with TwoSum (Knuth) into a
 *      double-double hi + lo in CS_LSE_L independent lanes: the sum adds no
 *      error of its own (beyond ~m eps^2), so the only errors are the exps'
 *      (<= 1.5 ulp, none where z_k = r: exp(0) = 1 exactly), the rounding
 *      of z_k - r in T, and the double product -- each relative to its own
 *      term |b_k e_k|, hence amplified by sum |b_k e_k| / |S| and no more.
 *   3. log|S| = log|hi| + lo/hi: with b >= 0 and one dominant entry,
 *      hi = b_* exactly and lo the tail, so logsumexp([0, -40], b=[1, 1])
 *      = 0 + 4.2e-18 keeps the tail below eps (as the plain logsumexp's
 *      log1p of the tail does).  r + log|S| in double, rounded once.
 * The sum is scaled by 2^-E (exact) when max |b| is beyond 2^+-400, so
 * huge or subnormal double b neither overflow nor lose bits (SciPy gives
 * inf for b = [1e308, 1e308]); log 2^E is added back at the end.
 *
 * cs_softmax_backward: out = p (g - sum_k g_k p_k), the dot in double.
 * cs_log_softmax_backward: out = g - exp(lp) sum_k g_k, the sum in double;
 * an entry with lp = -inf gives g exactly (even when the sum is not finite).
 * Both elementwise after their row sum: out may be g or p/lp (in place).
 */

#ifndef CS_LSE_L
#define CS_LSE_L 16    /* TwoSum lanes: independent chains of dependent adds */
/* hs + cs += x with hs + cs exact: TwoSum, branch-free (no -ffast-math) */
#define CS_TWO_SUM_ACC(hs, cs, x)                                                   \
    do {                                                                            \
        double s_ = (hs) + (x), bp_ = s_ - (hs);                                    \
        (cs) += ((hs) - (s_ - bp_)) + ((x) - bp_);                                  \
        (hs) = s_;                                                                  \
    } while (0)
#endif

/* pass 1 of a row of cs_logsumexp_b (see the file comment).  flags: bit 0
   NaN result (NaN z or b taking part, inf * exp(-inf)), bits 1 / 2 a +inf /
   -inf term (z = +inf, or |b| = inf where exp(z) > 0). */
CS_ALWAYS_INLINE void FN(lseb_scan_with)(const T *z, const T *b, const unsigned char *w,
                                         ptrdiff_t m, int use_w, T *r_out, T *lo_out,
                                         double *bmax_out, int *flags)
{
    T r = -(T)INFINITY, lo = (T)INFINITY;
    double bmax = 0.0;
    int bad = 0, pinf = 0, ninf = 0;
#pragma omp simd reduction(max : r, bmax) reduction(min : lo) reduction(| : bad, pinf, ninf)
    for (ptrdiff_t j = 0; j < m; j++) {
        T zj = z[j], bj = b[j];
        int act = (use_w ? w[j] != 0 : 1) & (bj != 0);     /* (a NaN b takes part) */
        int binf = bj - bj != 0;                             /* +-inf (or NaN) */
        int live = act & (zj > -(T)INFINITY);                /* exp(z_j) > 0, z_j not NaN */
        bad |= act & ((zj != zj) | (bj != bj) | (binf & (zj == -(T)INFINITY)));
        int infterm = live & ((zj == (T)INFINITY) | binf);
        pinf |= infterm & (bj > 0);
        ninf |= infterm & (bj < 0);
        T za = act ? zj : -(T)INFINITY, zl = act ? zj : (T)INFINITY;
        r = za > r ? za : r;
        lo = zl < lo ? zl : lo;
        double ab = live ? fabs((double)bj) : 0.0;
        bmax = ab > bmax ? ab : bmax;
    }
    *r_out = r;
    *lo_out = lo;
    *bmax_out = bmax;
    *flags = bad | (pinf << 1) | (ninf << 2);
}

/* b_j scl exp(z_j - r) in double, or 0 for an entry that does not take part
   (its exp then sees 0, whatever z_j holds).  z_j is loaded unconditionally:
   a load under the condition is control flow to SSE2 (no masked loads) */
#define CS_LSEB_TERM(j)                                                             \
    T bj = b[j], zj = z[j];                                                         \
    int act = (use_w ? w[j] != 0 : 1) & (bj != 0);                                  \
    T e = ex(act ? zj - r : (T)0);                                                  \
    double x = act ? ((double)bj * scl) * (double)e : 0.0;

/* pass 2: hi + lo = sum_j b_j scl exp(z_j - r), |lo| <= ulp(hi) / 2 */
CS_ALWAYS_INLINE void FN(lseb_sum_with)(const T *z, const T *b, const unsigned char *w,
                                        ptrdiff_t m, int use_w, T r, double scl,
                                        double *hi_out, double *lo_out, T (*ex)(T))
{
    double hs[CS_LSE_L], cs[CS_LSE_L];
#pragma omp simd
    for (ptrdiff_t l = 0; l < CS_LSE_L; l++)
        hs[l] = cs[l] = 0.0;
    ptrdiff_t j0 = 0;
    for (; j0 + CS_LSE_L <= m; j0 += CS_LSE_L) {
#pragma omp simd
        for (ptrdiff_t l = 0; l < CS_LSE_L; l++) {
            CS_LSEB_TERM(j0 + l)
            CS_TWO_SUM_ACC(hs[l], cs[l], x);
        }
    }
    for (ptrdiff_t l = 0; j0 + l < m; l++) {
        CS_LSEB_TERM(j0 + l)
        CS_TWO_SUM_ACC(hs[l], cs[l], x);
    }
    double hi = 0.0, lo = 0.0;
    for (ptrdiff_t l = 0; l < CS_LSE_L; l++) {
        CS_TWO_SUM_ACC(hi, lo, hs[l]);
        lo += cs[l];
    }
    double s = 0.0, c = 0.0;       /* renormalize: hi = fl(hi + lo) */
    CS_TWO_SUM_ACC(s, c, hi);
    CS_TWO_SUM_ACC(s, c, lo);
    *hi_out = s;
    *lo_out = c;
}
#undef CS_LSEB_TERM

static inline void FN(lseb_sum)(const T *z, const T *b, const unsigned char *w, ptrdiff_t m,
                                T r, double scl, int nr, double *hi, double *lo)
{
    if (w)
        CS_EXP_SEL(nr, FN(lseb_sum_with), z, b, w, m, 1, r, scl, hi, lo);
    else
        CS_EXP_SEL(nr, FN(lseb_sum_with), z, b, NULL, m, 0, r, scl, hi, lo);
}

static void FN(lseb_row)(const T *z, const T *b, const unsigned char *w, ptrdiff_t m,
                         T *out, T *sign)
{
    T r, lo;
    double bmax, res, sg;
    int flags;
    if (w)
        FN(lseb_scan_with)(z, b, w, m, 1, &r, &lo, &bmax, &flags);
    else
        FN(lseb_scan_with)(z, b, NULL, m, 0, &r, &lo, &bmax, &flags);
    if ((flags & 1) || flags == 6) {           /* NaN, or inf - inf */
        res = NAN;
        sg = NAN;
    } else if (flags) {                        /* an infinite term of one sign */
        res = INFINITY;
        sg = flags == 2 ? 1.0 : -1.0;
    } else if (r == -(T)INFINITY) {            /* nothing takes part, or all exp(z) = 0 */
        res = -INFINITY;
        sg = 0.0;
    } else {
        /* r finite: some live term has 0 < |b| < inf, so bmax > 0 */
        int e2 = 0;
        double scl = 1.0;
        if (bmax > 0x1p400 || bmax < 0x1p-400) {
            (void)frexp(bmax, &e2);
            e2 = e2 < -1000 ? -1000 : e2;      /* (subnormal b: 2^-e2 stays finite) */
            scl = ldexp(1.0, -e2);
        }
        double hi, lo2;
        FN(lseb_sum)(z, b, w, m, r, scl, lo - r >= CS_EXP_LO, &hi, &lo2);
        if (hi == 0.0) {                       /* an exact cancellation */
            res = -INFINITY;
            sg = 0.0;
        } else {
            double lg = log(fabs(hi)) + lo2 / hi;
            /* + E ln 2, ln 2 split as in cs_exp.h: E ln2_hi is exact */
            res = e2 ? ((double)r + (double)e2 * 0x1.62e42fee00000p-1)
                           + (lg + (double)e2 * 0x1.a39ef35793c76p-33)
                     : (double)r + lg;
            sg = hi > 0.0 ? 1.0 : hi < 0.0 ? -1.0 : NAN;
        }
    }
    if (sign)
        *sign = (T)sg;
    else if (sg < 0.0)
        res = NAN;                             /* SciPy: a negative sum's log is NaN */
    *out = (T)res;
}

void FN(cs_logsumexp_b)(const T *z, ptrdiff_t ldz, const T *b, ptrdiff_t ldb,
                        const unsigned char *mask, ptrdiff_t ldmask, T *out, T *sign,
                        ptrdiff_t n, ptrdiff_t m)
{
    for (ptrdiff_t i = 0; i < n; i++)
        FN(lseb_row)(z + i * ldz, b + i * ldb, mask ? mask + i * ldmask : NULL, m, out + i,
                     sign ? sign + i : NULL);
}


/* sum_j x_j y_j in double, in blocks of CS_SUM_BLK (as the split sum) */
static inline double FN(dot_d)(const T *x, const T *y, ptrdiff_t m)
{
    double acc = 0.0;
    for (ptrdiff_t j0 = 0; j0 < m; j0 += CS_SUM_BLK) {
        ptrdiff_t j1 = m - j0 < CS_SUM_BLK ? m : j0 + CS_SUM_BLK;
        double tb = 0.0;
#pragma omp simd reduction(+ : tb)
        for (ptrdiff_t j = j0; j < j1; j++)
            tb += (double)x[j] * (double)y[j];
        acc += tb;
    }
    return acc;
}

void FN(cs_softmax_backward)(const T *g, ptrdiff_t ldg, const T *p, ptrdiff_t ldp,
                             T *out, ptrdiff_t ldo, ptrdiff_t n, ptrdiff_t m)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        const T *gi = g + i * ldg, *pi = p + i * ldp;
        T *oi = out + i * ldo;
        double dot = FN(dot_d)(gi, pi, m);
        /* g_j - dot in double: no rounding of dot to T before the
           difference (it may cancel); one rounding at the end */
#pragma omp simd
        for (ptrdiff_t j = 0; j < m; j++)
            oi[j] = (T)((double)pi[j] * ((double)gi[j] - dot));
    }
}

CS_ALWAYS_INLINE void FN(lsm_backward_row_with)(const T *g, const T *lp, T *o, ptrdiff_t m,
                                                double sg, T (*ex)(T))
{
#pragma omp simd
    for (ptrdiff_t j = 0; j < m; j++) {
        T gj = g[j], lj = lp[j];
        T e = ex(lj);
        o[j] = lj == -(T)INFINITY ? gj : (T)((double)gj - (double)e * sg);
    }
}

void FN(cs_log_softmax_backward)(const T *g, ptrdiff_t ldg, const T *lp, ptrdiff_t ldl,
                                 T *out, ptrdiff_t ldo, ptrdiff_t n, ptrdiff_t m)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        const T *gi = g + i * ldg, *li = lp + i * ldl;
        T *oi = out + i * ldo;
        double sg = 0.0;
        T hi = -(T)INFINITY, lo = (T)INFINITY;
        for (ptrdiff_t j0 = 0; j0 < m; j0 += CS_SUM_BLK) {
            ptrdiff_t j1 = m - j0 < CS_SUM_BLK ? m : j0 + CS_SUM_BLK;
            double tb = 0.0;
#pragma omp simd reduction(+ : tb) reduction(max : hi) reduction(min : lo)
            for (ptrdiff_t j = j0; j < j1; j++) {
                tb += (double)gi[j];
                hi = li[j] > hi ? li[j] : hi;
                lo = li[j] < lo ? li[j] : lo;
            }
            sg += tb;
        }
        /* log-probabilities are <= 0: CS_EXP_NR where all are in its range */
        CS_EXP_SEL(hi <= 0 && lo >= CS_EXP_LO, FN(lsm_backward_row_with), gi, li, oi, m, sg);
    }
}

