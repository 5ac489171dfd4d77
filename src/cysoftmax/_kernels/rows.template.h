/*
 * rows.template.h -- the row kernels, written once for an element type T.
 * Included by rows.c with T (float|double), S (f|d) and CS_EXP defined.
 *
 * Per row, three passes that stay in L1:
 *   1. r = max_j z_j                     (-inf entries never win; NaN ignored)
 *   2. e_j = exp(z_j - r), s = sum e_j   (s in double; a NaN entry makes s NaN)
 *      Pass 1 also finds the row min: when min - r >= CS_EXP_LO, every
 *      exp(z_j - r) is a normal number and the cheaper CS_EXP_NR computes
 *      it (same bits, a third of the work); otherwise (-inf masks, huge
 *      spreads) the general CS_EXP, with its clamps and gradual underflow.
 *   3. scale, or subtract log s
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

/* o_j = exp(z_j - r); returns sum_j o_j in double.  o may equal z. */
CS_ALWAYS_INLINE double FN(exp_shift_sum_with)(const T *z, T *o, ptrdiff_t m, T r, T (*ex)(T))
{
    double s = 0.0;
    if (z == o) {
#pragma omp simd reduction(+ : s)
        for (ptrdiff_t j = 0; j < m; j++) {
            T e = ex(o[j] - r);
            o[j] = e;
            s += (double)e;
        }
    } else {
#pragma omp simd reduction(+ : s)
        for (ptrdiff_t j = 0; j < m; j++) {
            T e = ex(z[j] - r);
            o[j] = e;
            s += (double)e;
        }
    }
    return s;
}

/* sum_j exp(z_j - r) without storing. */
CS_ALWAYS_INLINE double FN(exp_shift_sum_only_with)(const T *z, ptrdiff_t m, T r, T (*ex)(T))
{
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (ptrdiff_t j = 0; j < m; j++)
        s += (double)ex(z[j] - r);
    return s;
}

static inline double FN(exp_shift_sum)(const T *z, T *o, ptrdiff_t m, T r, int nr)
{
    return CS_EXP_SEL(nr, FN(exp_shift_sum_with), z, o, m, r);
}

static inline double FN(exp_shift_sum_only)(const T *z, ptrdiff_t m, T r, int nr)
{
    return CS_EXP_SEL(nr, FN(exp_shift_sum_only_with), z, m, r);
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
 * On return: buf holds exp(z - r), r[b] the row max, s[b] the sum (double),
 * and ok[b] is 1 where the row max is finite (else the row is a NaN row).
 */
/* col[b] = exp(col[b] - r[b]), s[b] += col[b] over the m columns of buf */
CS_ALWAYS_INLINE void FN(block_exp_cols)(T *buf, ptrdiff_t m, const T *r, double *s, T (*ex)(T))
{
    for (ptrdiff_t j = 0; j < m; j++) {
        T *col = buf + j * CS_BLK;
#pragma omp simd
        for (ptrdiff_t b = 0; b < CS_BLK; b++) {
            T e = ex(col[b] - r[b]);
            col[b] = e;
            s[b] += (double)e;
        }
    }
}

static inline void FN(block_exp)(const T *z, ptrdiff_t ldz, ptrdiff_t nb, ptrdiff_t m,
                                 T *buf, T *r, double *s)
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
        s[b] = 0.0;
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
    CS_EXP_SEL(nr, FN(block_exp_cols), buf, m, r, s);
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
    double s[CS_BLK];
    for (ptrdiff_t i0 = 0; i0 < n; i0 += CS_BLK) {
        ptrdiff_t nb = n - i0 < CS_BLK ? n - i0 : CS_BLK;
        FN(block_exp)(z + i0 * ldz, ldz, nb, m, buf, r, s);
#pragma omp simd
        for (ptrdiff_t b = 0; b < CS_BLK; b++)
            inv[b] = CS_FINITE(r[b]) ? (T)(1.0 / s[b]) : (T)NAN;
        FN(block_store_scaled)(buf, inv, out + i0 * ldo, ldo, nb, m);
    }
}

static void FN(log_softmax_small)(const T *z, ptrdiff_t ldz, T *out, ptrdiff_t ldo,
                                  ptrdiff_t n, ptrdiff_t m)
{
    T buf[CS_SMALL_M * CS_BLK], r[CS_BLK], ls[CS_BLK];
    double s[CS_BLK];
    for (ptrdiff_t i0 = 0; i0 < n; i0 += CS_BLK) {
        ptrdiff_t nb = n - i0 < CS_BLK ? n - i0 : CS_BLK;
        FN(block_exp)(z + i0 * ldz, ldz, nb, m, buf, r, s);
#pragma omp simd
        for (ptrdiff_t b = 0; b < CS_BLK; b++)   /* (padding lanes: s = m) */
            ls[b] = CS_FINITE(r[b]) ? (T)cs_log1_d(s[b]) : (T)NAN;
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
        double s = FN(exp_shift_sum)(zi, oi, m, r, nr);
        T inv = (T)(1.0 / s);
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
           everything when |r| is huge. */
        T ls = (T)log(FN(exp_shift_sum_only)(zi, m, r, nr));
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
        out[i] = (T)((double)r + log(FN(exp_shift_sum_only)(zi, m, r, nr)));
    }
}


/*
 * Small m, a block of rows at a time (see block_exp), everything lane-wise
 * that can be: the gradient is scaled column by column in the block buffer
 * and copied out like softmax's; only the label entry and the rare rows
 * (weight 0, no finite max) are fixed up row by row.  Without per-row
 * losses or weights, sum_i log s_i is taken as the log of one running
 * product: each block's product (1 <= s_i <= m < 32, so it cannot
 * overflow) is multiplied in, and the product's binary exponent is moved
 * into an integer after every block, so it stays in [1, 2).  One log per
 * call replaces one per row (a third of the time at m = 10), and one per
 * block (a long dependency chain that stalled the pipeline every block:
 * 15% at m = 10).  Relative error of the product: one rounding per block,
 * far below the total's own.
 */
static double FN(nll_small)(const T *z, ptrdiff_t ldz, const ptrdiff_t *y,
                            const double *w, double gmul, T *loss, T *grad, ptrdiff_t ldg,
                            ptrdiff_t n, ptrdiff_t m)
{
    T buf[CS_SMALL_M * CS_BLK], r[CS_BLK];
    double s[CS_BLK], zy[CS_BLK], ey[CS_BLK], c[CS_BLK];
    double total = 0.0;
    double pacc = 1.0;          /* running product of the s_i, in [1, 2) */
    int64_t eacc = 0;           /* ... times 2^eacc */
    int nan_seen = 0;
    for (ptrdiff_t i0 = 0; i0 < n; i0 += CS_BLK) {
        ptrdiff_t nb = n - i0 < CS_BLK ? n - i0 : CS_BLK;
        /* z_y is read before any gradient row (maybe z itself) is written */
        for (ptrdiff_t b = 0; b < nb; b++)
            zy[b] = (double)z[(i0 + b) * ldz + y[i0 + b]];
        for (ptrdiff_t b = nb; b < CS_BLK; b++)
            zy[b] = 0.0;
        FN(block_exp)(z + i0 * ldz, ldz, nb, m, buf, r, s);

        if (loss || w) {
            for (ptrdiff_t b = 0; b < nb; b++) {
                double wi = w ? w[i0 + b] : 1.0, wc = 0.0;
                if (wi != 0.0)
                    wc = wi * (CS_FINITE(r[b]) ? log(s[b]) + ((double)r[b] - zy[b]) : NAN);
                if (loss) loss[i0 + b] = (T)wc;
                total += wc;
            }
        } else {
            double prod = 1.0, rz = 0.0;
#pragma omp simd reduction(* : prod) reduction(+ : rz)
            for (ptrdiff_t b = 0; b < CS_BLK; b++) {
                prod *= b < nb ? s[b] : 1.0;
                rz += b >= nb ? 0.0 : CS_FINITE(r[b]) ? (double)r[b] - zy[b] : NAN;
            }
            total += rz;
            nan_seen |= prod != prod;
            uint64_t u = cs_bits_d(pacc * prod);    /* >= 1, finite (or NaN) */
            eacc += (int64_t)(u >> 52) - 1023;
            pacc = cs_from_bits_d((u & 0x000fffffffffffffull) | 0x3ff0000000000000ull);
        }
        if (!grad)
            continue;

        for (ptrdiff_t b = 0; b < CS_BLK; b++)   /* (padding lanes: column 0) */
            ey[b] = (double)buf[(b < nb ? y[i0 + b] : 0) * CS_BLK + b];
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
                    ct[b] = (T)(w[i0 + b] * gmul / s[b]);
            } else {
#pragma omp simd
                for (ptrdiff_t b = 0; b < CS_BLK; b++)
                    ct[b] = (T)(gmul / s[b]);
            }
            FN(block_store_scaled)(buf, ct, grad + i0 * ldg, ldg, nb, m);
        } else {
            for (ptrdiff_t b = 0; b < nb; b++)
                c[b] = (w ? w[i0 + b] : 1.0) * gmul / s[b];
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
            T gy[CS_BLK];     /* p_y - 1 in double */
#pragma omp simd
            for (ptrdiff_t b = 0; b < CS_BLK; b++)
                gy[b] = (T)((ey[b] / s[b] - 1.0) * gmul);
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
            else   /* p_y - 1 in double */
                gi[y[i0 + b]] = (T)((ey[b] / s[b] - 1.0) * (wi * gmul));
        }
    }
    if (!(loss || w))
        total += nan_seen ? NAN : (double)eacc * 0x1.62e42fefa39efp-1 + log(pacc);
    return total;
}

/*
 * Negative log-likelihood and its gradient in one pass over the logits.
 *   C_i = log s_i + (r_i - z_{i,y_i})          (= logsumexp(z_i) - z_{i,y_i})
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
            double s = FN(exp_shift_sum)(zi, gi, m, r, nr);
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
            gi[yi] = (T)((ey / s - 1.0) * scale);   /* p_y - 1 in double */
            ci = log(s) + ((double)r - zy);
        } else {
            double s = FN(exp_shift_sum_only)(zi, m, r, nr);
            ci = log(s) + ((double)r - (double)zi[yi]);
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
#undef CS_EXP_SEL
#undef CS_CAT3
#undef CS_CAT3_
