/*
 * rows.template.h -- the row kernels, written once for an element type T.
 * Included by rows.c with T (float|double), S (f|d) and CS_EXP defined.
 *
 * Per row, three passes that stay in L1:
 *   1. r = max_j z_j                     (-inf entries never win; NaN ignored)
 *   2. e_j = exp(z_j - r), split as s = sum_j e_j = n1 + tail: n1 the
 *      number of e_j that are exactly 1 (the max, its ties), tail the sum
 *      of the others, in double (a NaN entry makes it NaN).  So
 *      log s = log1p(t) with t = (n1 - 1) + tail, the sum of every exp but
 *      one arg-max entry's: no tail below eps is lost (log_softmax of the
 *      dominant class, logsumexp, the NLL of a confident row are exact in
 *      relative terms), and t is summed without a 1 in it, in blocks of
 *      CS_SUM_BLK (a vectorized reduction each, added into the row's
 *      double), so long float64 rows keep s to a few eps.
 *      Pass 1 also finds the row min: when min - r >= CS_EXP_LO, every
 *      exp(z_j - r) is a normal number and the cheaper CS_EXP_NR computes
 *      it (same bits, a third of the work); otherwise (-inf masks, huge
 *      spreads) the general CS_EXP, with its clamps and gradual underflow.
 *   3. scale, or subtract log1p(t)
 * A row whose max is not finite (+inf present, or only -inf/NaN) has no
 * meaningful softmax: it becomes NaN, as in PyTorch; a NaN anywhere in a
 * finite row turns s, hence the whole row, into NaN without a branch.
 * The loops carry `omp simd` so that the reductions (max, sum) vectorize
 * without -ffast-math; the build passes -fopenmp-simd (no OpenMP runtime).
 */
#define CS_CAT3_(a, b, c) a##_##b##_##c
#define CS_CAT3(a, b, c) CS_CAT3_(a, b, c)
#define FN(name) CS_CAT3(name, S, CS_VARIANT)

/* max of a row (NaN entries are skipped: their effect comes through s),
   and whether every exp(z_j - max) is in CS_EXP_NR's range (a NaN or
   infinite min or max answers no) */
static inline T FN(row_max_nr)(const T *z, ptrdiff_t m, int *nr)
{
    T r = -(T)INFINITY, lo = (T)INFINITY;
#pragma omp simd reduction(max : r) reduction(min : lo)
    for (ptrdiff_t j = 0; j < m; j++) {
        r = z[j] > r ? z[j] : r;
        lo = z[j] < lo ? z[j] : lo;
    }
    *nr = lo - r >= CS_EXP_LO;
    return r;
}

/* The loops below take the exp as an argument and are called with a
   constant one (CS_EXP_NR when the caller knows x >= CS_EXP_LO, else
   CS_EXP): once inlined, each call site is its own loop with its own exp.
   (A `nr ? CS_EXP_NR(x) : CS_EXP(x)` in the loop body is if-converted by
   gcc into computing both and blending, which is slower than either.) */
#define CS_EXP_SEL(nr, f, ...) ((nr) ? f(__VA_ARGS__, CS_EXP_NR) : f(__VA_ARGS__, CS_EXP))

/* One block of the split sum (pass 2 above): e = exp(x) is added to the
   tail unless it is exactly 1, and counted in *cb if it is (cb in T: exact
   for a block).  `e == 1 ? 0 : e` keeps a NaN in the tail. */
#define CS_SPLIT_ACC(e, tb, cb)                                                     \
    do {                                                                            \
        tb += (double)((e) == (T)1 ? (T)0 : (e));                                   \
        cb += (e) == (T)1 ? (T)1 : (T)0;                                            \
    } while (0)

/* o_j = exp(z_j - r) (when o != NULL; o may equal z); returns the tail
   (the sum of the e_j that are not exactly 1) and sets *n1 to the count
   of those that are. */
CS_ALWAYS_INLINE double FN(exp_split_with)(const T *z, T *o, ptrdiff_t m, T r, double *n1,
                                           T (*ex)(T))
{
    double tail = 0.0, ones = 0.0;
    for (ptrdiff_t j0 = 0; j0 < m; j0 += CS_SUM_BLK) {
        ptrdiff_t j1 = m - j0 < CS_SUM_BLK ? m : j0 + CS_SUM_BLK;
        double tb = 0.0;
        T cb = 0;
        if (o == NULL) {
#pragma omp simd reduction(+ : tb, cb)
            for (ptrdiff_t j = j0; j < j1; j++) {
                T e = ex(z[j] - r);
                CS_SPLIT_ACC(e, tb, cb);
            }
        } else if (o == z) {
#pragma omp simd reduction(+ : tb, cb)
            for (ptrdiff_t j = j0; j < j1; j++) {
                T e = ex(o[j] - r);
                o[j] = e;
                CS_SPLIT_ACC(e, tb, cb);
            }
        } else {
#pragma omp simd reduction(+ : tb, cb)
            for (ptrdiff_t j = j0; j < j1; j++) {
                T e = ex(z[j] - r);
                o[j] = e;
                CS_SPLIT_ACC(e, tb, cb);
            }
        }
        tail += tb;
        ones += (double)cb;
    }
    *n1 = ones;
    return tail;
}

/* the split sum with the exp chosen for the row (nr: see row_max_nr) */
static inline double FN(exp_split)(const T *z, T *o, ptrdiff_t m, T r, int nr, double *n1)
{
    return CS_EXP_SEL(nr, FN(exp_split_with), z, o, m, r, n1);
}

static inline void FN(fill)(T *o, ptrdiff_t m, T v)
{
    for (ptrdiff_t j = 0; j < m; j++)
        o[j] = v;
}


/*
 * Small class counts (m < CS_SMALL_M): a row is too short to fill a vector
 * and the per-row overhead (reductions, epilogues) dominates.  So a block of
 * CS_BLK rows is transposed into a column-major scratch buf[j][b] and every
 * pass vectorizes across the rows b instead: max, exp, sum all become
 * lane-wise operations of fixed trip count.  Unused lanes of the last block
 * are padded with 0 and never written back.
 * On return: buf holds exp(z - r), r[b] the row max, tail[b] and n1[b]
 * the split sum (double: see the file comment), and ok[b] is 1 where the
 * row max is finite (else the row is a NaN row).
 */
/* col[b] = exp(col[b] - r[b]) over the m columns of buf, split-summed */
CS_ALWAYS_INLINE void FN(block_exp_cols)(T *buf, ptrdiff_t m, const T *r, double *tail,
                                         double *n1, T (*ex)(T))
{
    T cb[CS_BLK];
#pragma omp simd
    for (ptrdiff_t b = 0; b < CS_BLK; b++)
        cb[b] = 0;
    for (ptrdiff_t j = 0; j < m; j++) {
        T *col = buf + j * CS_BLK;
#pragma omp simd
        for (ptrdiff_t b = 0; b < CS_BLK; b++) {
            T e = ex(col[b] - r[b]);
            col[b] = e;
            CS_SPLIT_ACC(e, tail[b], cb[b]);
        }
    }
#pragma omp simd
    for (ptrdiff_t b = 0; b < CS_BLK; b++)
        n1[b] = (double)cb[b];
}

/* block_exp in two steps, so that a kernel can read the transposed logits
   between them (nll_opts.template.h): block_load fills buf with the block
   (padding lanes 0) and r with the row maxima, and returns whether the
   whole block is in CS_EXP_NR's range; block_exp_loaded exponentiates buf
   and split-sums it */
static inline int FN(block_load)(const T *z, ptrdiff_t ldz, ptrdiff_t nb, ptrdiff_t m,
                                 T *buf, T *r)
{
    /* j outer, b inner: the compiler turns the b loop into plain loads
       (a full block) rather than scatters, which are slow (measured: the
       b-outer order cost 1.9 ns/element at m = 10 in float, this 1.1) */
    if (nb == CS_BLK) {
        for (ptrdiff_t j = 0; j < m; j++)
            for (ptrdiff_t b = 0; b < CS_BLK; b++)
                buf[j * CS_BLK + b] = z[b * ldz + j];
    } else {
        for (ptrdiff_t j = 0; j < m; j++)
            for (ptrdiff_t b = 0; b < CS_BLK; b++)
                buf[j * CS_BLK + b] = b < nb ? z[b * ldz + j] : 0;
    }
    T lo[CS_BLK];
#pragma omp simd
    for (ptrdiff_t b = 0; b < CS_BLK; b++) {
        r[b] = -(T)INFINITY;
        lo[b] = (T)INFINITY;
    }
    for (ptrdiff_t j = 0; j < m; j++) {
        T *col = buf + j * CS_BLK;
#pragma omp simd
        for (ptrdiff_t b = 0; b < CS_BLK; b++) {
            r[b] = col[b] > r[b] ? col[b] : r[b];
            lo[b] = col[b] < lo[b] ? col[b] : lo[b];
        }
    }
    int nr = 1;   /* the whole block in CS_EXP_NR's range (padding lanes are 0) */
#pragma omp simd reduction(& : nr)
    for (ptrdiff_t b = 0; b < CS_BLK; b++)
        nr &= lo[b] - r[b] >= CS_EXP_LO;
    return nr;
}

static inline void FN(block_exp_loaded)(T *buf, ptrdiff_t m, const T *r, double *tail,
                                        double *n1, int nr)
{
#pragma omp simd
    for (ptrdiff_t b = 0; b < CS_BLK; b++)
        tail[b] = 0.0;
    CS_EXP_SEL(nr, FN(block_exp_cols), buf, m, r, tail, n1);
}

static inline void FN(block_exp)(const T *z, ptrdiff_t ldz, ptrdiff_t nb, ptrdiff_t m,
                                 T *buf, T *r, double *tail, double *n1)
{
    int nr = FN(block_load)(z, ldz, nb, m, buf, r);
    FN(block_exp_loaded)(buf, m, r, tail, n1, nr);
}

/* finite without a branch or a libm call: x - x is 0 only for finite x */
#define CS_FINITE(x) ((x) - (x) == 0)

/* out row b = buf column b * c[b], for the nb rows of a block */
static inline void FN(block_store_scaled)(const T *buf, const T *c, T *out, ptrdiff_t ldo,
                                          ptrdiff_t nb, ptrdiff_t m)
{
    for (ptrdiff_t b = 0; b < nb; b++) {
        T *o = out + b * ldo;
        for (ptrdiff_t j = 0; j < m; j++)
            o[j] = buf[j * CS_BLK + b] * c[b];
    }
}

static void FN(softmax_small)(const T *z, ptrdiff_t ldz, T *out, ptrdiff_t ldo,
                              ptrdiff_t n, ptrdiff_t m)
{
    T buf[CS_SMALL_M * CS_BLK], r[CS_BLK], inv[CS_BLK];
    double tail[CS_BLK], n1[CS_BLK];
    for (ptrdiff_t i0 = 0; i0 < n; i0 += CS_BLK) {
        ptrdiff_t nb = n - i0 < CS_BLK ? n - i0 : CS_BLK;
        FN(block_exp)(z + i0 * ldz, ldz, nb, m, buf, r, tail, n1);
#pragma omp simd
        for (ptrdiff_t b = 0; b < CS_BLK; b++)
            inv[b] = CS_FINITE(r[b]) ? (T)(1.0 / (n1[b] + tail[b])) : (T)NAN;
        FN(block_store_scaled)(buf, inv, out + i0 * ldo, ldo, nb, m);
    }
}

static void FN(log_softmax_small)(const T *z, ptrdiff_t ldz, T *out, ptrdiff_t ldo,
                                  ptrdiff_t n, ptrdiff_t m)
{
    T buf[CS_SMALL_M * CS_BLK], r[CS_BLK], ls[CS_BLK];
    double tail[CS_BLK], n1[CS_BLK];
    for (ptrdiff_t i0 = 0; i0 < n; i0 += CS_BLK) {
        ptrdiff_t nb = n - i0 < CS_BLK ? n - i0 : CS_BLK;
        FN(block_exp)(z + i0 * ldz, ldz, nb, m, buf, r, tail, n1);
#pragma omp simd
        for (ptrdiff_t b = 0; b < CS_BLK; b++)   /* (padding lanes: n1 = m) */
            ls[b] = CS_FINITE(r[b]) ? (T)cs_log1p_d((n1[b] - 1.0) + tail[b]) : (T)NAN;
        for (ptrdiff_t b = 0; b < nb; b++) {
            const T *zi = z + (i0 + b) * ldz;
            T *o = out + (i0 + b) * ldo;
            for (ptrdiff_t j = 0; j < m; j++)     /* elementwise: safe in place */
                o[j] = (zi[j] - r[b]) - ls[b];
        }
    }
}

void FN(cs_softmax)(const T *z, ptrdiff_t ldz, T *out, ptrdiff_t ldo,
                    ptrdiff_t n, ptrdiff_t m)
{
    if (m < CS_SMALL_M) {
        FN(softmax_small)(z, ldz, out, ldo, n, m);
        return;
    }
    for (ptrdiff_t i = 0; i < n; i++) {
        const T *zi = z + i * ldz;
        T *oi = out + i * ldo;
        int nr;
        T r = FN(row_max_nr)(zi, m, &nr);
        if (!isfinite(r)) {
            FN(fill)(oi, m, (T)NAN);
            continue;
        }
        double n1, tail = FN(exp_split)(zi, oi, m, r, nr, &n1);
        T inv = (T)(1.0 / (n1 + tail));
#pragma omp simd
        for (ptrdiff_t j = 0; j < m; j++)
            oi[j] *= inv;
    }
}

void FN(cs_log_softmax)(const T *z, ptrdiff_t ldz, T *out, ptrdiff_t ldo,
                        ptrdiff_t n, ptrdiff_t m)
{
    if (m < CS_SMALL_M) {
        FN(log_softmax_small)(z, ldz, out, ldo, n, m);
        return;
    }
    for (ptrdiff_t i = 0; i < n; i++) {
        const T *zi = z + i * ldz;
        T *oi = out + i * ldo;
        int nr;
        T r = FN(row_max_nr)(zi, m, &nr);
        if (!isfinite(r)) {
            FN(fill)(oi, m, (T)NAN);
            continue;
        }
        /* (z_j - r) - log s, never z_j - (r + log s): the latter loses
           everything when |r| is huge; log s = log1p(t), both terms of one
           sign, so every entry is accurate in relative terms. */
        double n1, tail = FN(exp_split)(zi, NULL, m, r, nr, &n1);
        T ls = (T)log1p((n1 - 1.0) + tail);
        if (zi == oi) {
#pragma omp simd
            for (ptrdiff_t j = 0; j < m; j++)
                oi[j] = (oi[j] - r) - ls;
        } else {
#pragma omp simd
            for (ptrdiff_t j = 0; j < m; j++)
                oi[j] = (zi[j] - r) - ls;
        }
    }
}

/* scipy's semantics: NaN if any NaN, +inf if any +inf, -inf if all -inf
   (or m == 0). */
void FN(cs_logsumexp)(const T *z, ptrdiff_t ldz, T *out, ptrdiff_t n, ptrdiff_t m)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        const T *zi = z + i * ldz;
        int nr;
        T r = FN(row_max_nr)(zi, m, &nr);
        if (!isfinite(r)) {
            int has_nan = 0;
            for (ptrdiff_t j = 0; j < m; j++)
                has_nan |= isnan(zi[j]);
            out[i] = has_nan ? (T)NAN : r;   /* r is +inf or -inf here */
            continue;
        }
        /* r + log s rounded once from double: a float32 result beyond
           FLT_MAX correctly becomes +inf. */
        double n1, tail = FN(exp_split)(zi, NULL, m, r, nr, &n1);
        out[i] = (T)((double)r + log1p((n1 - 1.0) + tail));
    }
}


/*
 * Small m, a block of rows at a time (see block_exp), everything lane-wise
 * that can be: the gradient is scaled column by column in the block buffer
 * and copied out like softmax's; only the label entry and the rare rows
 * (weight 0, no finite max) are fixed up row by row.  The per-row
 * log1p(t_i) is one vectorized cs_log1p_d over the block's lanes (no libm
 * call per row, no dependency between blocks), so every C_i, and hence
 * the total (a sum of non-negative terms), is exact in relative terms.
 */
static double FN(nll_small)(const T *z, ptrdiff_t ldz, const ptrdiff_t *y,
                            const double *w, double gmul, T *loss, T *grad, ptrdiff_t ldg,
                            ptrdiff_t n, ptrdiff_t m)
{
    T buf[CS_SMALL_M * CS_BLK], r[CS_BLK];
    double tail[CS_BLK], n1[CS_BLK], zy[CS_BLK], ci[CS_BLK], inv[CS_BLK], oth[CS_BLK];
    double c[CS_BLK];
    double total = 0.0;
    for (ptrdiff_t i0 = 0; i0 < n; i0 += CS_BLK) {
        ptrdiff_t nb = n - i0 < CS_BLK ? n - i0 : CS_BLK;
        /* z_y is read before any gradient row (maybe z itself) is written */
        for (ptrdiff_t b = 0; b < nb; b++)
            zy[b] = (double)z[(i0 + b) * ldz + y[i0 + b]];
        for (ptrdiff_t b = nb; b < CS_BLK; b++)
            zy[b] = 0.0;
        FN(block_exp)(z + i0 * ldz, ldz, nb, m, buf, r, tail, n1);
        /* C_i = log1p(t_i) + (r_i - z_y), both >= 0 (padding lanes: 0) */
        double rz = 0.0;
#pragma omp simd reduction(+ : rz)
        for (ptrdiff_t b = 0; b < CS_BLK; b++) {
            double cb = CS_FINITE(r[b])
                ? cs_log1p_d((n1[b] - 1.0) + tail[b]) + ((double)r[b] - zy[b]) : NAN;
            cb = b < nb ? cb : 0.0;
            ci[b] = cb;
            rz += cb;
        }
        if (loss || w) {
            for (ptrdiff_t b = 0; b < nb; b++) {
                double wi = w ? w[i0 + b] : 1.0;
                double wc = wi != 0.0 ? wi * ci[b] : 0.0;
                if (loss) loss[i0 + b] = (T)wc;
                total += wc;
            }
        } else {
            total += rz;
        }
        if (!grad)
            continue;

        /* p_y - 1 = -(sum_{k != y} e_k) / s, the sum without a cancellation:
           when e_y is exactly 1 it is t; else n1 + (tail - e_y) >= 1, and
           tail - e_y errs by eps tail at most */
#pragma omp simd
        for (ptrdiff_t b = 0; b < CS_BLK; b++)
            inv[b] = 1.0 / (n1[b] + tail[b]);
        for (ptrdiff_t b = 0; b < CS_BLK; b++) {   /* (padding lanes: column 0) */
            double ey = (double)buf[(b < nb ? y[i0 + b] : 0) * CS_BLK + b];
            oth[b] = ey == 1.0 ? (n1[b] - 1.0) + tail[b] : n1[b] + (tail[b] - ey);
        }
        /* the scale w_i gmul / s_i is applied in T when every w_i gmul <= 1
           (s_i >= 1), as softmax's 1 / s; else in double: (T)(w gmul / s)
           could overflow float for huge weights, and 0 * inf would turn an
           underflowed probability into NaN.  (Unit weights and no weights
           give the same bits.) */
        int t_scale = w ? 1 : gmul <= 1.0;
        if (w)
            for (ptrdiff_t b = 0; b < nb; b++)
                t_scale &= w[i0 + b] * gmul <= 1.0;
        if (t_scale) {
            T ct[CS_BLK];
            if (w) {
                for (ptrdiff_t b = 0; b < nb; b++)
                    ct[b] = (T)(w[i0 + b] * gmul * inv[b]);
            } else {
#pragma omp simd
                for (ptrdiff_t b = 0; b < CS_BLK; b++)
                    ct[b] = (T)(gmul * inv[b]);
            }
            FN(block_store_scaled)(buf, ct, grad + i0 * ldg, ldg, nb, m);
        } else {
            for (ptrdiff_t b = 0; b < nb; b++)
                c[b] = (w ? w[i0 + b] : 1.0) * gmul * inv[b];
            for (ptrdiff_t j = 0; j < m; j++) {
                T *col = buf + j * CS_BLK;
#pragma omp simd
                for (ptrdiff_t b = 0; b < CS_BLK; b++)
                    col[b] = (T)((double)col[b] * c[b]);
            }
            for (ptrdiff_t b = 0; b < nb; b++) {
                T *gi = grad + (i0 + b) * ldg;
                for (ptrdiff_t j = 0; j < m; j++)
                    gi[j] = buf[j * CS_BLK + b];
            }
        }
        int all_finite = 1;   /* (padding lanes: max of zeros) */
#pragma omp simd reduction(& : all_finite)
        for (ptrdiff_t b = 0; b < CS_BLK; b++)
            all_finite &= CS_FINITE(r[b]);
        if (!w && all_finite) {
            T gy[CS_BLK];
#pragma omp simd
            for (ptrdiff_t b = 0; b < CS_BLK; b++)
                gy[b] = (T)(-(oth[b] * inv[b]) * gmul);
            for (ptrdiff_t b = 0; b < nb; b++)
                grad[(i0 + b) * ldg + y[i0 + b]] = gy[b];
            continue;
        }
        for (ptrdiff_t b = 0; b < nb; b++) {
            T *gi = grad + (i0 + b) * ldg;
            double wi = w ? w[i0 + b] : 1.0;
            if (wi == 0.0)
                FN(fill)(gi, m, (T)0);
            else if (!CS_FINITE(r[b]))
                FN(fill)(gi, m, (T)NAN);
            else
                gi[y[i0 + b]] = (T)(-(oth[b] * inv[b]) * (wi * gmul));
        }
    }
    return total;
}

/*
 * Negative log-likelihood and its gradient in one pass over the logits.
 *   C_i = log1p(t_i) + (r_i - z_{i,y_i})       (= logsumexp(z_i) - z_{i,y_i})
 *   total = sum_i w_i C_i                       (returned, double)
 *   loss[i] = w_i C_i                           (if loss != NULL)
 *   grad[i, j] = w_i gmul (p_ij - [j == y_i])   (if grad != NULL)
 * w == NULL means all weights 1.  A row with w_i == 0 contributes exactly 0
 * (and a zero gradient row), whatever its logits.  A row with no finite max
 * gives C_i = NaN and a NaN gradient row; a label whose logit is -inf in an
 * otherwise finite row gives C_i = +inf.
 */
double FN(cs_nll)(const T *z, ptrdiff_t ldz, const ptrdiff_t *y,
                  const double *w, double gmul, T *loss, T *grad, ptrdiff_t ldg,
                  ptrdiff_t n, ptrdiff_t m)
{
    if (m < CS_SMALL_M)
        return FN(nll_small)(z, ldz, y, w, gmul, loss, grad, ldg, n, m);
    double total = 0.0;
    for (ptrdiff_t i = 0; i < n; i++) {
        const T *zi = z + i * ldz;
        T *gi = grad ? grad + i * ldg : NULL;
        double wi = w ? w[i] : 1.0;
        ptrdiff_t yi = y[i];
        if (wi == 0.0) {
            if (loss) loss[i] = 0;
            if (gi) FN(fill)(gi, m, (T)0);
            continue;
        }
        int nr;
        T r = FN(row_max_nr)(zi, m, &nr);
        double ci;
        if (!isfinite(r)) {
            ci = NAN;
            if (gi) FN(fill)(gi, m, (T)NAN);
        } else if (gi) {
            double zy = (double)zi[yi];     /* read before grad (maybe == z) is written */
            double n1, tail = FN(exp_split)(zi, gi, m, r, nr, &n1);
            double s = n1 + tail, t = (n1 - 1.0) + tail;
            double scale = wi * gmul;
            double ey = (double)gi[yi];     /* exp(z_y - r), before scaling */
            /* c <= 1 (scale <= 1, s >= 1) is applied in T, as softmax's
               1 / s; a larger scale stays in double: (T)(scale / s) can
               overflow float for huge weights, and 0 * inf would turn an
               underflowed probability into NaN */
            double c = scale / s;
            if (scale <= 1.0) {
                T ct = (T)c;
#pragma omp simd
                for (ptrdiff_t j = 0; j < m; j++)
                    gi[j] *= ct;
            } else {
#pragma omp simd
                for (ptrdiff_t j = 0; j < m; j++)
                    gi[j] = (T)((double)gi[j] * c);
            }
            /* p_y - 1 = -(sum_{k != y} e_k) / s without a cancellation (see
               nll_small) */
            double oth = ey == 1.0 ? t : n1 + (tail - ey);
            gi[yi] = (T)(-(oth / s) * scale);
            ci = log1p(t) + ((double)r - zy);
        } else {
            double n1, tail = FN(exp_split)(zi, NULL, m, r, nr, &n1);
            ci = log1p((n1 - 1.0) + tail) + ((double)r - (double)zi[yi]);
        }
        double wc = wi * ci;
        if (loss) loss[i] = (T)wc;
        total += wc;
    }
    return total;
}

/* elementwise exp, exposed for testing the exp's accuracy. */
void FN(cs_exp_array)(const T *x, T *out, ptrdiff_t n)
{
#pragma omp simd
    for (ptrdiff_t i = 0; i < n; i++)
        out[i] = CS_EXP(x[i]);
}

/* the same, with the exp the kernels use on [CS_EXP_LO, 0] (tests only:
   outside that range its result is meaningless) */
void FN(cs_exp_nr_array)(const T *x, T *out, ptrdiff_t n)
{
#pragma omp simd
    for (ptrdiff_t i = 0; i < n; i++)
        out[i] = CS_EXP_NR(x[i]);
}

#undef FN
#undef CS_SPLIT_ACC
#undef CS_EXP_SEL
#undef CS_CAT3
#undef CS_CAT3_
