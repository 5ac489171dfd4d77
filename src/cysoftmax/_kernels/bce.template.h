/*
 * bce.template.h -- sigmoid outputs: binary cross-entropy from logits (the
 * multilabel output layer), sigmoid and log-sigmoid, written once for an
 * element type T.  Included by rows.c after nll_opts.template.h, with the
 * same T and S; it uses rows.template.h's fill().
 *
 * Every entry is independent (no row max, no normalizer), so the math is
 * per element, in double for both types: one cs_exp_d and one cs_log1p_d
 * per logit, branch-free (selects, no ifs), and the loops vectorize.  The
 * float kernels therefore round a double result once (<= 0.5 ulp of float
 * on top of the double error); a float-exp path would be faster, but float
 * has no vectorizable log1p here yet.
 *
 * With e = exp(-|z|) in (0, 1] (never overflows) and p = e / (1 + e), the
 * smaller of sigmoid(z) and sigmoid(-z):
 *   softplus(z) - t z = c z + log1p(e),   c = 1 - t (z >= 0), -t (z < 0)
 * Both terms are >= 0 for t in [0, 1] (c z >= 0 either way), so their sum
 * has no cancellation: the term is accurate to a few ulp *relative*,
 * whatever the logit.  For t = 1 it is softplus(-z), for t = 0 softplus(z),
 * each without a catastrophic max(z, 0) - z; z = 1e308, t = 1 gives
 * exp(-1e308) = 0 exactly, z = -1e308 gives 1e308.  c == 0 (t = 1, z >= 0
 * or t = 0, z < 0) contributes exactly 0, so z = +-inf there gives 0 and
 * not 0 * inf = NaN.
 *   sigmoid(z) - t = (1 - t) - p (z >= 0),  p - t (z < 0)
 * again without cancelling 1 against sigmoid(z) for t = 1 or t = 0 (a soft
 * target near sigmoid(z) cancels as the problem itself does: the error is a
 * few ulp of sigmoid(z) + t).
 *   log sigmoid(z) = min(z, 0) - log1p(e)    (two terms <= 0: exact)
 * A NaN logit makes every quantity NaN (the comparisons are false, the
 * exp and log1p pass NaN through); +-inf follow the limits.
 */
#ifndef CS_BCE_HELPERS
#define CS_BCE_HELPERS
/* one element's softplus(z) - t z, t in [0, 1] */
static inline double cs_bce_term(double z, double t)
{
    double a = z < 0 ? -z : z;               /* |z| (NaN stays NaN) */
    double c = z >= 0 ? 1.0 - t : -t;        /* NaN z: -t, and c z is NaN */
    double cz = c == 0 ? 0.0 : c * z;        /* c = 0: 0, even for z = +-inf */
    return cz + cs_log1p_d(cs_exp_d(-a));
}

/* one element's sigmoid(z) - t, the gradient of cs_bce_term */
static inline double cs_bce_grad(double z, double t)
{
    double a = z < 0 ? -z : z;
    double e = cs_exp_d(-a);
    double p = e / (1.0 + e);
    return z >= 0 ? (1.0 - t) - p : p - t;   /* NaN z: p - t = NaN */
}

static inline double cs_sigmoid_1(double z)
{
    double a = z < 0 ? -z : z;
    double e = cs_exp_d(-a);
    double r = 1.0 / (1.0 + e);
    return z >= 0 ? r : e * r;               /* NaN z: e * r = NaN */
}

static inline double cs_log_sigmoid_1(double z)
{
    double a = z < 0 ? -z : z;
    double lo = z < 0 ? z : 0.0;             /* min(z, 0); NaN: the log1p is NaN */
    return lo - cs_log1p_d(cs_exp_d(-a));
}
#endif

/*
 * Binary cross-entropy of n rows of m logits z with targets t in [0, 1]:
 *   l_i = sum_j softplus(z_ij) - t_ij z_ij          (in double)
 *   total = sum_i w_i l_i                            (returned)
 *   loss[i] = w_i l_i                                (if loss != NULL)
 *   grad[i, j] = gmul w_i (sigmoid(z_ij) - t_ij)     (if grad != NULL; may be z)
 * w == NULL means all weights 1.  A row with w_i == 0 contributes exactly 0
 * and a zero gradient row, whatever its logits (as cs_nll).
 */
double FN(cs_bce)(const T *z, ptrdiff_t ldz, const T *t, ptrdiff_t ldt,
                  const double *w, double gmul, T *loss, T *grad, ptrdiff_t ldg,
                  ptrdiff_t n, ptrdiff_t m)
{
    double total = 0.0;
    for (ptrdiff_t i = 0; i < n; i++) {
        const T *zi = z + i * ldz, *ti = t + i * ldt;
        double wi = w ? w[i] : 1.0;
        if (wi == 0.0) {
            if (loss) loss[i] = 0;
            if (grad) FN(fill)(grad + i * ldg, m, (T)0);
            continue;
        }
        double li = 0.0;
        if (grad) {
            T *gi = grad + i * ldg;   /* may be zi: element j is read before it is written */
            double h = wi * gmul;
#pragma omp simd reduction(+ : li)
            for (ptrdiff_t j = 0; j < m; j++) {
                double zj = (double)zi[j], tj = (double)ti[j];
                li += cs_bce_term(zj, tj);
                gi[j] = (T)(h * cs_bce_grad(zj, tj));
            }
        } else {
#pragma omp simd reduction(+ : li)
            for (ptrdiff_t j = 0; j < m; j++)
                li += cs_bce_term((double)zi[j], (double)ti[j]);
        }
        double wl = wi * li;
        if (loss) loss[i] = (T)wl;
        total += wl;
    }
    return total;
}

/* Elementwise over n rows of m: contiguous rows (ld == m) are one flat loop,
   so a small m still fills whole vectors. */
#define CS_ELEMENTWISE(f)                                                           \
    do {                                                                            \
        if (ldz == m && ldo == m) {                                                 \
            m *= n;                                                                 \
            n = 1;                                                                  \
        }                                                                           \
        for (ptrdiff_t i = 0; i < n; i++) {                                         \
            const T *zi = z + i * ldz;                                              \
            T *oi = out + i * ldo;                                                  \
            _Pragma("omp simd")                                                     \
            for (ptrdiff_t j = 0; j < m; j++)                                       \
                oi[j] = (T)f((double)zi[j]);                                        \
        }                                                                           \
    } while (0)

/* out = sigmoid(z) elementwise (out may be z) */
void FN(cs_sigmoid)(const T *z, ptrdiff_t ldz, T *out, ptrdiff_t ldo, ptrdiff_t n,
                    ptrdiff_t m)
{
    CS_ELEMENTWISE(cs_sigmoid_1);
}

/* out = log sigmoid(z) = -softplus(-z) elementwise (out may be z) */
void FN(cs_log_sigmoid)(const T *z, ptrdiff_t ldz, T *out, ptrdiff_t ldo, ptrdiff_t n,
                        ptrdiff_t m)
{
    CS_ELEMENTWISE(cs_log_sigmoid_1);
}

#undef CS_ELEMENTWISE
