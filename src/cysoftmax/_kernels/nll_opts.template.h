/*
 * nll_opts.template.h -- the cross-entropy with PyTorch's options (class
 * weights, ignore_index, label smoothing, soft targets) and sample
 * weights: loss and gradient in one pass over the logits, written once for
 * an element type T.  Included by rows.c right after rows.template.h, with
 * the same T, S, CS_EXP, CS_EXP_NR, CS_EXP_LO; it builds on that file's
 * row primitives (row_max_nr, exp_split, block_load, block_exp_loaded,
 * block_exp_cols' split sums, fill, CS_FINITE).  The plain NLL (labels,
 * nothing else) stays cs_nll; this is the general kernel.
 *
 * Row i has class weights c_k (1 when cw == NULL), smoothing eps in [0, 1],
 * u = eps / m, and either a label y or a row q of class probabilities.  Its
 * target weights a_k are PyTorch's:
 *   labels:        a_k = u c_k + (1 - eps) c_y [k == y]
 *   soft targets:  a_k = c_k ((1 - eps) q_k + u)
 * and with A = sum_k a_k, r the row max, log s = log1p(t) the split
 * normalizer (rows.template.h):
 *   l_i = sum_k a_k (-log p_k) = sum_k a_k (r - z_k) + A log1p(t)
 *   dl_i/dz_j = A p_j - a_j
 * Every term of l_i is >= 0, so l_i is exact in relative terms like the
 * plain NLL (no m r - sum_k z_k: the distances r - z_k are summed, in
 * double and in blocks as exp_split's tail).  A class with a_k = 0 adds 0
 * even where z_k = -inf: a zero weight masks the class (no 0 * inf).
 *   total = sum_i w_i l_i (returned, double); loss[i] = w_i l_i (if loss);
 *   grad[i, j] = w_i gmul (A p_ij - a_ij) (if grad)
 * w == NULL means unit sample weights.  A row with y_i == ignore or
 * w_i == 0 contributes exactly 0 and a zero gradient row, whatever its
 * logits; a row with no finite max gives NaN and a NaN gradient row.
 * Labels are in [0, m) or equal to ignore (then never used as an index);
 * q == NULL for labels, y == NULL for soft targets.  The label entry of the
 * gradient, when p_y >= 1/2, is taken without cancelling against 1:
 *   A p_y - a_y = (A - a_y) - A (1 - p_y),   A - a_y = u (sum_k c_k - c_y),
 *   1 - p_y = (sum_{k != y} e_k) / s        (as cs_nll computes it)
 * and as A p_y - a_y when p_y < 1/2: either way its two terms are at most
 * about A p_y + a_y, so its error is a few eps of that (the first form
 * alone would err by eps A on a small p_y with smoothing).
 * The gradient is scaled in T when its coefficients are well inside T's
 * range (CS_OPTS_IN_T), else in double (huge or tiny weights, float32).
 */

/* The gradient's coefficients (h = w_i gmul, h A / s, h a_j <= h A, h u)
   are far inside T's range (float: 2^-126 .. 2^128): scale the row in T.
   Else (huge or tiny weights) in double, where (T) of a coefficient could
   overflow, or round to 0 and turn 0 * inf into NaN */
#define CS_OPTS_IN_T(h, A) \
    ((h) <= 0x1p60 && (h) >= 0x1p-60 && (A) <= 0x1p60 && (h) * (A) <= 0x1p60)

/* sum_k c_k: A's constant part for labels (m when cw == NULL) */
static inline double FN(opts_wsum)(const T *cw, ptrdiff_t m)
{
    if (!cw)
        return (double)m;
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (ptrdiff_t j = 0; j < m; j++)
        s += (double)cw[j];
    return s;
}

/* The row sums below (of non-negative terms, in double) are taken in
   blocks of CS_QBLK entries, the block sums added in double, and each block
   is cut into four quarters summed side by side: four independent
   accumulators, where one (omp simd's reduction) made the sum a chain of
   dependent vector adds, latency-bound at half the cost of the exp pass.
   Each lane then adds at most CS_QBLK / 4 / lanes terms: the sum's
   relative error is below (CS_QBLK / 32 + m / CS_QBLK) eps64.
   CS_QSUM(a, TERM) adds TERM(j) for j in [j0, j1) into a. */
#define CS_QBLK 1024
#define CS_QSUM(a, TERM)                                                            \
    do {                                                                            \
        /* quarters of a multiple of 16 entries (whole vectors, no epilogue), */   \
        /* the rest in one more vectorized loop */                                 \
        const ptrdiff_t q_ = ((j1 - j0) / 4) & ~(ptrdiff_t)15;                      \
        double a0_ = 0.0, a1_ = 0.0, a2_ = 0.0, a3_ = 0.0, ar_ = 0.0;               \
        _Pragma("omp simd reduction(+ : a0_, a1_, a2_, a3_)")                       \
        for (ptrdiff_t k_ = 0; k_ < q_; k_++) {                                     \
            a0_ += TERM(j0 + k_);                                                   \
            a1_ += TERM(j0 + q_ + k_);                                              \
            a2_ += TERM(j0 + 2 * q_ + k_);                                          \
            a3_ += TERM(j0 + 3 * q_ + k_);                                          \
        }                                                                           \
        _Pragma("omp simd reduction(+ : ar_)")                                      \
        for (ptrdiff_t j_ = j0 + 4 * q_; j_ < j1; j_++)                             \
            ar_ += TERM(j_);                                                        \
        a += ((a0_ + a1_) + (a2_ + a3_)) + ar_;                                     \
    } while (0)

/* labels: sum_k c_k (r - z_k) over a row, in double; a class of weight 0
   adds 0 (where the row has -inf logits: `masked`) */
#define CS_DIST_C(j) (masked && cw[j] == 0 ? 0.0 : (double)cw[j] * (rd - (double)z[j]))
#define CS_DIST_1(j) (rd - (double)z[j])
CS_ALWAYS_INLINE double FN(opts_dist_with)(const T *z, const T *cw, ptrdiff_t m, T r,
                                           int masked)
{
    const double rd = (double)r;
    double acc = 0.0;
    for (ptrdiff_t j0 = 0; j0 < m; j0 += CS_QBLK) {
        ptrdiff_t j1 = m - j0 < CS_QBLK ? m : j0 + CS_QBLK;
        if (cw)
            CS_QSUM(acc, CS_DIST_C);
        else
            CS_QSUM(acc, CS_DIST_1);
    }
    return acc;
}

static inline double FN(opts_dist)(const T *z, const T *cw, ptrdiff_t m, T r, int nr)
{
    /* constant arguments: each call its own loop (as CS_EXP_SEL) */
    return nr ? FN(opts_dist_with)(z, cw, m, r, 0) : FN(opts_dist_with)(z, cw, m, r, 1);
}

/* soft targets: sum_k a_k (r - z_k), and *A = sum_k a_k, a_k = c_k (om q_k + u).
   `masked`: the row may hold -inf logits (not nr), where a_k = 0 must add 0,
   not 0 * inf; without them the select is dead weight (a third of the loop) */
#define CS_SOFT_A(j) ((cw ? (double)cw[j] : 1.0) * (om * (double)q[j] + u))
#define CS_SOFT_D(j) (masked && CS_SOFT_A(j) == 0.0 ? 0.0 \
                      : CS_SOFT_A(j) * (rd - (double)z[j]))
CS_ALWAYS_INLINE double FN(opts_soft_dist_with)(const T *z, const T *q, const T *cw, ptrdiff_t m,
                                                T r, double om, double u, double *A, int masked)
{
    const double rd = (double)r;
    double acc = 0.0, asum = 0.0;
    for (ptrdiff_t j0 = 0; j0 < m; j0 += CS_QBLK) {
        ptrdiff_t j1 = m - j0 < CS_QBLK ? m : j0 + CS_QBLK;
        CS_QSUM(asum, CS_SOFT_A);
        CS_QSUM(acc, CS_SOFT_D);
    }
    *A = asum;
    return acc;
}

static inline double FN(opts_soft_dist)(const T *z, const T *q, const T *cw, ptrdiff_t m, T r,
                                        double om, double u, double *A, int nr)
{
    /* constant arguments: each call its own loop (as CS_EXP_SEL) */
    if (cw)
        return nr ? FN(opts_soft_dist_with)(z, q, cw, m, r, om, u, A, 0)
                  : FN(opts_soft_dist_with)(z, q, cw, m, r, om, u, A, 1);
    return nr ? FN(opts_soft_dist_with)(z, q, NULL, m, r, om, u, A, 0)
              : FN(opts_soft_dist_with)(z, q, NULL, m, r, om, u, A, 1);
}

/* labels: g_j = e_j cA - hu c_j over a row whose e_j = exp(z_j - r) are in g */
static inline void FN(opts_grad_labels)(T *g, const T *cw, ptrdiff_t m, double cA, double hu,
                                        int in_t)
{
    if (in_t) {
        T ct = (T)cA, ht = (T)hu;
        if (hu == 0.0) {
#pragma omp simd
            for (ptrdiff_t j = 0; j < m; j++)
                g[j] *= ct;
        } else if (cw) {
#pragma omp simd
            for (ptrdiff_t j = 0; j < m; j++)
                g[j] = g[j] * ct - ht * cw[j];
        } else {
#pragma omp simd
            for (ptrdiff_t j = 0; j < m; j++)
                g[j] = g[j] * ct - ht;
        }
    } else if (cw) {
#pragma omp simd
        for (ptrdiff_t j = 0; j < m; j++)
            g[j] = (T)((double)g[j] * cA - hu * (double)cw[j]);
    } else {
#pragma omp simd
        for (ptrdiff_t j = 0; j < m; j++)
            g[j] = (T)((double)g[j] * cA - hu);
    }
}

/* soft targets: g_j = e_j cA - h a_j, a_j = c_j (om q_j + u) */
static inline void FN(opts_grad_soft)(T *g, const T *q, const T *cw, ptrdiff_t m, double cA,
                                      double h, double om, double u, int in_t)
{
    if (in_t) {
        T ct = (T)cA, ht = (T)h, omt = (T)om, ut = (T)u;
        if (cw) {
#pragma omp simd
            for (ptrdiff_t j = 0; j < m; j++)
                g[j] = g[j] * ct - ht * (cw[j] * (omt * q[j] + ut));
        } else {
#pragma omp simd
            for (ptrdiff_t j = 0; j < m; j++)
                g[j] = g[j] * ct - ht * (omt * q[j] + ut);
        }
    } else if (cw) {
#pragma omp simd
        for (ptrdiff_t j = 0; j < m; j++)
            g[j] = (T)((double)g[j] * cA - h * ((double)cw[j] * (om * (double)q[j] + u)));
    } else {
#pragma omp simd
        for (ptrdiff_t j = 0; j < m; j++)
            g[j] = (T)((double)g[j] * cA - h * (om * (double)q[j] + u));
    }
}

/*
 * Small m (< CS_SMALL_M): a block of CS_BLK rows at a time, lane-wise, as
 * cs_nll's nll_small: block_load transposes the logits into buf, the
 * weighted distances are summed from there (and from the soft targets,
 * transposed into qb the same way) before block_exp_loaded turns buf into
 * exps; the gradient is formed column by column in buf and copied out
 * (without smoothing: scaled as it is stored, as cs_nll's), and
 * only the label entries and the rare rows (ignored, weight 0, no finite
 * max) are fixed up row by row.  Dead rows (ignored or weight 0) are
 * computed with the block and overwritten: their lanes never reach the
 * total (sw = 0 there).
 */
static double FN(nll_opts_small)(const T *z, ptrdiff_t ldz, const ptrdiff_t *y, const T *q,
                                 ptrdiff_t ldq, const T *cw, const double *w, ptrdiff_t ignore,
                                 double u, double om, double wsum, double gmul, T *loss,
                                 T *grad, ptrdiff_t ldg, ptrdiff_t n, ptrdiff_t m)
{
    T buf[CS_SMALL_M * CS_BLK], qb[CS_SMALL_M * CS_BLK], r[CS_BLK], cwt[CS_SMALL_M];
    double cwd[CS_SMALL_M];
    double tail[CS_BLK], n1[CS_BLK], sw[CS_BLK], zy[CS_BLK], cy[CS_BLK], A[CS_BLK], U[CS_BLK];
    double h[CS_BLK], inv[CS_BLK], cA[CS_BLK], ey[CS_BLK], oth[CS_BLK], lb[CS_BLK];
    ptrdiff_t yb[CS_BLK];
    for (ptrdiff_t j = 0; j < m; j++) {
        cwt[j] = cw ? cw[j] : (T)1;
        cwd[j] = (double)cwt[j];
    }
    double total = 0.0;
    for (ptrdiff_t i0 = 0; i0 < n; i0 += CS_BLK) {
        ptrdiff_t nb = n - i0 < CS_BLK ? n - i0 : CS_BLK;
        /* sw = 0 on dead and padding lanes; yb an index for every lane */
        int any_dead = 0;
        if (nb == CS_BLK) {
#pragma omp simd reduction(| : any_dead)
            for (ptrdiff_t b = 0; b < CS_BLK; b++) {
                double wb = w ? w[i0 + b] : 1.0;
                ptrdiff_t yv = y ? y[i0 + b] : 0;
                int live = wb != 0.0 && yv != ignore;
                sw[b] = live ? wb : 0.0;
                yb[b] = live ? yv : 0;
                any_dead |= !live;
            }
        } else {
            for (ptrdiff_t b = 0; b < CS_BLK; b++) {
                int live = b < nb && (!w || w[i0 + b] != 0.0) && (!y || y[i0 + b] != ignore);
                sw[b] = live ? (w ? w[i0 + b] : 1.0) : 0.0;
                yb[b] = y && live ? y[i0 + b] : 0;
                any_dead |= b < nb && !live;
            }
        }
        /* z_y is read before any gradient row (maybe z itself) is written */
        if (y)
            for (ptrdiff_t b = 0; b < CS_BLK; b++)
                zy[b] = b < nb ? (double)z[(i0 + b) * ldz + yb[b]] : 0.0;
        int nr = FN(block_load)(z + i0 * ldz, ldz, nb, m, buf, r);

        /* sum_k a_k (r - z_k) and A, lane-wise, while buf holds the logits
           (into local sums: in U and A, which escape, gcc keeps them in
           memory, a store and a load per column) */
        if (y) {
            double ub[CS_BLK] = {0};
            if (u != 0.0 && (nr || !cw)) {          /* no -inf logit, or no class weight */
                for (ptrdiff_t j = 0; j < m; j++) {
                    const double c = cwd[j];
                    const T *col = buf + j * CS_BLK;
#pragma omp simd
                    for (ptrdiff_t b = 0; b < CS_BLK; b++)
                        ub[b] += c * ((double)r[b] - (double)col[b]);
                }
            } else if (u != 0.0) {
                for (ptrdiff_t j = 0; j < m; j++) {
                    const double c = cwd[j];       /* a class of weight 0 adds 0 */
                    const T *col = buf + j * CS_BLK;
#pragma omp simd
                    for (ptrdiff_t b = 0; b < CS_BLK; b++) {
                        double d = (double)r[b] - (double)col[b];
                        ub[b] += c * (c != 0.0 ? d : 0.0);
                    }
                }
            }
#pragma omp simd
            for (ptrdiff_t b = 0; b < CS_BLK; b++)
                U[b] = ub[b];
            for (ptrdiff_t b = 0; b < CS_BLK; b++)
                cy[b] = cwd[yb[b]];
#pragma omp simd
            for (ptrdiff_t b = 0; b < CS_BLK; b++) {
                double v = om * cy[b];
                A[b] = u * wsum + v;
                U[b] = u * U[b] + (v != 0.0 ? v * ((double)r[b] - zy[b]) : 0.0);
            }
        } else {
            const T *qi = q + i0 * ldq;
            for (ptrdiff_t j = 0; j < m; j++)
                for (ptrdiff_t b = 0; b < CS_BLK; b++)
                    qb[j * CS_BLK + b] = b < nb ? qi[b * ldq + j] : 0;
            double aa[CS_BLK] = {0}, acc[CS_BLK] = {0};
            for (ptrdiff_t j = 0; j < m; j++) {
                const double c = cwd[j];
                const T *col = buf + j * CS_BLK, *qc = qb + j * CS_BLK;
                if (nr) {                           /* no -inf logit: no 0 * inf */
#pragma omp simd
                    for (ptrdiff_t b = 0; b < CS_BLK; b++) {
                        double a = c * (om * (double)qc[b] + u);
                        aa[b] += a;
                        acc[b] += a * ((double)r[b] - (double)col[b]);
                    }
                } else {
#pragma omp simd
                    for (ptrdiff_t b = 0; b < CS_BLK; b++) {
                        double a = c * (om * (double)qc[b] + u);
                        aa[b] += a;
                        acc[b] += a != 0.0 ? a * ((double)r[b] - (double)col[b]) : 0.0;
                    }
                }
            }
#pragma omp simd
            for (ptrdiff_t b = 0; b < CS_BLK; b++) {
                A[b] = aa[b];
                U[b] = acc[b];
            }
        }
        FN(block_exp_loaded)(buf, m, r, tail, n1, nr);

        double tb = 0.0;
#pragma omp simd reduction(+ : tb)
        for (ptrdiff_t b = 0; b < CS_BLK; b++) {
            double l = CS_FINITE(r[b]) ? U[b] + A[b] * cs_log1p_d((n1[b] - 1.0) + tail[b]) : NAN;
            l = sw[b] != 0.0 ? sw[b] * l : 0.0;     /* dead and padding lanes: 0 */
            lb[b] = l;
            tb += l;
        }
        total += tb;
        if (loss)
            for (ptrdiff_t b = 0; b < nb; b++)
                loss[i0 + b] = (T)lb[b];
        if (!grad)
            continue;

        int in_t = 1;
#pragma omp simd reduction(& : in_t)
        for (ptrdiff_t b = 0; b < CS_BLK; b++) {
            h[b] = sw[b] * gmul;
            inv[b] = 1.0 / (n1[b] + tail[b]);
            cA[b] = h[b] * A[b] * inv[b];
            in_t &= sw[b] == 0.0 || CS_OPTS_IN_T(h[b], A[b]);
        }
        if (y)   /* 1 - p_y = (sum_{k != y} e_k) / s: oth, before buf is scaled */
            for (ptrdiff_t b = 0; b < CS_BLK; b++) {
                ey[b] = (double)buf[yb[b] * CS_BLK + b];
                oth[b] = ey[b] == 1.0 ? (n1[b] - 1.0) + tail[b] : n1[b] + (tail[b] - ey[b]);
            }
        T *g0 = grad + i0 * ldg;
        if (in_t && y && u == 0.0) {
            /* no smoothing: the plain kernel's scaling as it is stored */
            T ct[CS_BLK];
#pragma omp simd
            for (ptrdiff_t b = 0; b < CS_BLK; b++)
                ct[b] = (T)cA[b];
            FN(block_store_scaled)(buf, ct, g0, ldg, nb, m);
        } else {
            /* column by column in buf (vectorized over the lanes), then copied out */
            if (in_t) {
                T ct[CS_BLK], ht[CS_BLK];
                const T omt = (T)om, ut = (T)u;
#pragma omp simd
                for (ptrdiff_t b = 0; b < CS_BLK; b++) {
                    ct[b] = (T)cA[b];
                    ht[b] = (T)(y ? h[b] * u : h[b]);
                }
                for (ptrdiff_t j = 0; j < m; j++) {
                    T *col = buf + j * CS_BLK;
                    const T c = cwt[j], *qc = qb + j * CS_BLK;
                    if (y) {
#pragma omp simd
                        for (ptrdiff_t b = 0; b < CS_BLK; b++)
                            col[b] = col[b] * ct[b] - ht[b] * c;
                    } else {
#pragma omp simd
                        for (ptrdiff_t b = 0; b < CS_BLK; b++)
                            col[b] = col[b] * ct[b] - ht[b] * (c * (omt * qc[b] + ut));
                    }
                }
            } else {
                for (ptrdiff_t j = 0; j < m; j++) {
                    T *col = buf + j * CS_BLK;
                    const double c = cwd[j];
                    const T *qc = qb + j * CS_BLK;
                    if (y) {
#pragma omp simd
                        for (ptrdiff_t b = 0; b < CS_BLK; b++)
                            col[b] = (T)((double)col[b] * cA[b] - h[b] * u * c);
                    } else {
#pragma omp simd
                        for (ptrdiff_t b = 0; b < CS_BLK; b++)
                            col[b] = (T)((double)col[b] * cA[b]
                                         - h[b] * (c * (om * (double)qc[b] + u)));
                    }
                }
            }
            for (ptrdiff_t b = 0; b < nb; b++) {
                T *gi = g0 + b * ldg;
                for (ptrdiff_t j = 0; j < m; j++)
                    gi[j] = buf[j * CS_BLK + b];
            }
        }
        if (y) {   /* the label entries (of dead rows too: they are zeroed below) */
            T gy[CS_BLK];
#pragma omp simd
            for (ptrdiff_t b = 0; b < CS_BLK; b++)
                gy[b] = (T)(h[b] * (2.0 * ey[b] >= n1[b] + tail[b]      /* p_y >= 1/2 */
                                    ? u * (wsum - cy[b]) - A[b] * (oth[b] * inv[b])
                                    : A[b] * (ey[b] * inv[b]) - (u + om) * cy[b]));
            for (ptrdiff_t b = 0; b < nb; b++)
                grad[(i0 + b) * ldg + yb[b]] = gy[b];
        }
        int all_finite = 1;   /* (padding lanes: max of zeros) */
#pragma omp simd reduction(& : all_finite)
        for (ptrdiff_t b = 0; b < CS_BLK; b++)
            all_finite &= CS_FINITE(r[b]);
        if (!any_dead && all_finite)
            continue;
        for (ptrdiff_t b = 0; b < nb; b++) {
            T *gi = grad + (i0 + b) * ldg;
            if (sw[b] == 0.0)
                FN(fill)(gi, m, (T)0);
            else if (!CS_FINITE(r[b]))
                FN(fill)(gi, m, (T)NAN);
        }
    }
    return total;
}

double FN(cs_nll_opts)(const T *z, ptrdiff_t ldz, const ptrdiff_t *y, const T *q, ptrdiff_t ldq,
                       const T *cw, const double *w, ptrdiff_t ignore, double smoothing,
                       double gmul, T *loss, T *grad, ptrdiff_t ldg, ptrdiff_t n, ptrdiff_t m)
{
    const double u = smoothing / (double)m, om = 1.0 - smoothing;
    const double wsum = FN(opts_wsum)(cw, m);
    if (m < CS_SMALL_M)
        return FN(nll_opts_small)(z, ldz, y, q, ldq, cw, w, ignore, u, om, wsum, gmul, loss,
                                  grad, ldg, n, m);
    double total = 0.0;
    for (ptrdiff_t i = 0; i < n; i++) {
        const T *zi = z + i * ldz;
        T *gi = grad ? grad + i * ldg : NULL;
        double wi = w ? w[i] : 1.0, li;
        ptrdiff_t yi = y ? y[i] : 0;
        if (wi == 0.0 || (y && yi == ignore)) {
            if (loss) loss[i] = 0;
            if (gi) FN(fill)(gi, m, (T)0);
            continue;
        }
        int nr;
        T r = FN(row_max_nr)(zi, m, &nr);
        if (!isfinite(r)) {
            li = NAN;
            if (gi) FN(fill)(gi, m, (T)NAN);
        } else {
            /* sum_k a_k (r - z_k) and A, read from z before grad (maybe z) is written */
            double A, U, cy = 0.0;
            if (y) {
                cy = cw ? (double)cw[yi] : 1.0;
                double v = om * cy, dzy = (double)r - (double)zi[yi];
                A = u * wsum + v;
                U = (u != 0.0 ? u * FN(opts_dist)(zi, cw, m, r, nr) : 0.0)
                    + (v != 0.0 ? v * dzy : 0.0);
            } else {
                U = FN(opts_soft_dist)(zi, q + i * ldq, cw, m, r, om, u, &A, nr);
            }
            double n1, tail = FN(exp_split)(zi, gi, m, r, nr, &n1);
            double s = n1 + tail, t = (n1 - 1.0) + tail;
            li = U + A * log1p(t);
            if (gi) {
                double h = wi * gmul, cA = h * A / s;
                int in_t = CS_OPTS_IN_T(h, A);
                if (y) {
                    double ey = (double)gi[yi];     /* exp(z_y - r), before scaling */
                    FN(opts_grad_labels)(gi, cw, m, cA, h * u, in_t);
                    double oth = ey == 1.0 ? t : n1 + (tail - ey);
                    gi[yi] = (T)(h * (2.0 * ey >= s                      /* p_y >= 1/2 */
                                      ? u * (wsum - cy) - A * (oth / s)
                                      : A * (ey / s) - (u + om) * cy));
                } else {
                    FN(opts_grad_soft)(gi, q + i * ldq, cw, m, cA, h, om, u, in_t);
                }
            }
        }
        double wl = wi * li;
        if (loss) loss[i] = (T)wl;
        total += wl;
    }
    return total;
}

/* PyTorch's "mean" denominator sum_i w_i d_i: d_i = c_{y_i} for a label
   (0 when y_i == ignore), 1 for soft targets (y == NULL) */
double FN(cs_nll_denom)(const ptrdiff_t *y, const T *cw, const double *w, ptrdiff_t ignore,
                        ptrdiff_t n)
{
    double d = 0.0;
    if (!y) {
        if (!w)
            return (double)n;
#pragma omp simd reduction(+ : d)
        for (ptrdiff_t i = 0; i < n; i++)
            d += w[i];
        return d;
    }
    if (cw) {
#pragma omp simd reduction(+ : d)
        for (ptrdiff_t i = 0; i < n; i++) {
            int keep = y[i] != ignore;
            double c = (double)cw[keep ? y[i] : 0];   /* never indexed with ignore */
            d += keep ? (w ? w[i] : 1.0) * c : 0.0;
        }
    } else {
#pragma omp simd reduction(+ : d)
        for (ptrdiff_t i = 0; i < n; i++)
            d += y[i] != ignore ? (w ? w[i] : 1.0) : 0.0;
    }
    return d;
}

#undef CS_OPTS_IN_T
#undef CS_QSUM
#undef CS_QBLK
#undef CS_DIST_C
#undef CS_DIST_1
#undef CS_SOFT_A
#undef CS_SOFT_D
