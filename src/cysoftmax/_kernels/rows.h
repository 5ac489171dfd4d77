/*
 * rows.h -- C row kernels of cysoftmax, for float (suffix _f) and double (_d).
 *
 * Every kernel works on a block of n rows of m entries; row i of an array
 * starts at base + i * ld (ld >= m, in elements).  Input and output may be
 * the same buffer (in place), but must not partially overlap.  The callers
 * (the Cython layer) have validated shapes and labels; nothing here checks.
 *
 * One source, two types, several instruction sets: rows.template.h is
 * included once per type by rows.c, and rows.c is compiled once per SIMD
 * variant (names suffixed _baseline, _avx2, _avx512).  The unsuffixed
 * functions below (dispatch.c) forward to the variant chosen by
 * cs_simd_select(); sums are accumulated in double for both types (the
 * avx512 variant's large-m rows: float32 in float lanes over blocks of 256
 * entries, each block's sum added in double; cs_exp_avx512.h).
 */
#ifndef CS_ROWS_H
#define CS_ROWS_H
#include <stddef.h>
#include <stdint.h>

/* X-macro: every kernel once, as (return type, name, parameters, arguments) */
#define CS_KERNELS(X, T, S)                                                         \
    X(void, cs_softmax_##S,                                                         \
      (const T *z, ptrdiff_t ldz, T *out, ptrdiff_t ldo, ptrdiff_t n, ptrdiff_t m), \
      (z, ldz, out, ldo, n, m))                                                     \
    X(void, cs_log_softmax_##S,                                                     \
      (const T *z, ptrdiff_t ldz, T *out, ptrdiff_t ldo, ptrdiff_t n, ptrdiff_t m), \
      (z, ldz, out, ldo, n, m))                                                     \
    X(void, cs_logsumexp_##S,                                                       \
      (const T *z, ptrdiff_t ldz, T *out, ptrdiff_t n, ptrdiff_t m),                \
      (z, ldz, out, n, m))                                                          \
    X(double, cs_nll_##S,                                                           \
      (const T *z, ptrdiff_t ldz, const ptrdiff_t *y, const double *w, double gmul, \
       T *loss, T *grad, ptrdiff_t ldg, ptrdiff_t n, ptrdiff_t m),                  \
      (z, ldz, y, w, gmul, loss, grad, ldg, n, m))                                  \
    X(void, cs_exp_array_##S, (const T *x, T *out, ptrdiff_t n), (x, out, n))     \
    X(void, cs_exp_nr_array_##S, (const T *x, T *out, ptrdiff_t n), (x, out, n))

/* kernels that do not depend on the element type: one per variant (rows.c).
   cs_labels_ok: 1 when every label is in [0, m) (the Python fast path's
   range check); cs_log1_array / cs_log1p_array: the small-m kernels' log
   of a row sum (cs_log1_d, s >= 1) and log1p of its tail (cs_log1p_d,
   t >= 0), for testing */
#define CS_UNTYPED_KERNELS(X)                                                       \
    X(int, cs_labels_ok, (const ptrdiff_t *y, ptrdiff_t n, ptrdiff_t m), (y, n, m)) \
    X(void, cs_log1_array, (const double *x, double *out, ptrdiff_t n), (x, out, n)) \
    X(void, cs_log1p_array, (const double *x, double *out, ptrdiff_t n), (x, out, n))

/* the scaled logsumexp (SciPy's b=, return_sign=; mask: NULL, or nonzero
   where an entry takes part, as NumPy's where=; ldb / ldmask may be 0: one
   row for all) and the backward functions of softmax / log_softmax
   (grads.template.h) */
#define CS_GRAD_KERNELS(X, T, S)                                                    \
    X(void, cs_logsumexp_b_##S,                                                     \
      (const T *z, ptrdiff_t ldz, const T *b, ptrdiff_t ldb,                        \
       const unsigned char *mask, ptrdiff_t ldmask, T *out, T *sign,                \
       ptrdiff_t n, ptrdiff_t m),                                                   \
      (z, ldz, b, ldb, mask, ldmask, out, sign, n, m))                              \
    X(void, cs_softmax_backward_##S,                                                \
      (const T *g, ptrdiff_t ldg, const T *p, ptrdiff_t ldp, T *out, ptrdiff_t ldo, \
       ptrdiff_t n, ptrdiff_t m),                                                   \
      (g, ldg, p, ldp, out, ldo, n, m))                                             \
    X(void, cs_log_softmax_backward_##S,                                            \
      (const T *g, ptrdiff_t ldg, const T *lp, ptrdiff_t ldl, T *out, ptrdiff_t ldo,\
       ptrdiff_t n, ptrdiff_t m),                                                   \
      (g, ldg, lp, ldl, out, ldo, n, m))

/* the cross-entropy with PyTorch's options (nll_opts.template.h): y labels
   (or NULL) or q soft targets (or NULL), cw class weights (NULL: 1), w
   sample weights (NULL: 1), labels equal to `ignore` skipped; returns
   sum_i w_i l_i.  cs_nll_denom: the "mean" denominator sum_i w_i d_i */
#define CS_NLL_OPTS_KERNELS(X, T, S)                                                \
    X(double, cs_nll_opts_##S,                                                      \
      (const T *z, ptrdiff_t ldz, const ptrdiff_t *y, const T *q, ptrdiff_t ldq,    \
       const T *cw, const double *w, ptrdiff_t ignore, double smoothing,            \
       double gmul, T *loss, T *grad, ptrdiff_t ldg, ptrdiff_t n, ptrdiff_t m),     \
      (z, ldz, y, q, ldq, cw, w, ignore, smoothing, gmul, loss, grad, ldg, n, m))   \
    X(double, cs_nll_denom_##S,                                                     \
      (const ptrdiff_t *y, const T *cw, const double *w, ptrdiff_t ignore,          \
       ptrdiff_t n),                                                                \
      (y, cw, w, ignore, n))

/* where= (masked.template.h): mask rows of m bytes, row i at mask + i * ldmask
   (ldmask 0: one mask row for every row); a nonzero byte keeps the entry.
   A masked entry is never used; a row with no kept entry gives softmax 0,
   log_softmax -inf, logsumexp -inf. */
#define CS_MASKED_KERNELS(X, T, S)                                                  \
    X(void, cs_softmax_masked_##S,                                                  \
      (const T *z, ptrdiff_t ldz, const unsigned char *mask, ptrdiff_t ldmask,      \
       T *out, ptrdiff_t ldo, ptrdiff_t n, ptrdiff_t m),                            \
      (z, ldz, mask, ldmask, out, ldo, n, m))                                       \
    X(void, cs_log_softmax_masked_##S,                                              \
      (const T *z, ptrdiff_t ldz, const unsigned char *mask, ptrdiff_t ldmask,      \
       T *out, ptrdiff_t ldo, ptrdiff_t n, ptrdiff_t m),                            \
      (z, ldz, mask, ldmask, out, ldo, n, m))                                       \
    X(void, cs_logsumexp_masked_##S,                                                \
      (const T *z, ptrdiff_t ldz, const unsigned char *mask, ptrdiff_t ldmask,      \
       T *out, ptrdiff_t n, ptrdiff_t m),                                           \
      (z, ldz, mask, ldmask, out, n, m))

/* sigmoid outputs (bce.template.h): the binary cross-entropy of logits z
   and targets t in [0, 1], l_i = sum_j softplus(z_ij) - t_ij z_ij; returns
   sum_i w_i l_i (w NULL: 1), loss[i] = w_i l_i (loss may be NULL),
   grad[i, j] = gmul w_i (sigmoid(z_ij) - t_ij) (grad may be NULL or z);
   elementwise sigmoid and log-sigmoid (out may be z) */
#define CS_BCE_KERNELS(X, T, S)                                                     \
    X(double, cs_bce_##S,                                                           \
      (const T *z, ptrdiff_t ldz, const T *t, ptrdiff_t ldt, const double *w,       \
       double gmul, T *loss, T *grad, ptrdiff_t ldg, ptrdiff_t n, ptrdiff_t m),     \
      (z, ldz, t, ldt, w, gmul, loss, grad, ldg, n, m))                             \
    X(void, cs_sigmoid_##S,                                                         \
      (const T *z, ptrdiff_t ldz, T *out, ptrdiff_t ldo, ptrdiff_t n, ptrdiff_t m), \
      (z, ldz, out, ldo, n, m))                                                     \
    X(void, cs_log_sigmoid_##S,                                                     \
      (const T *z, ptrdiff_t ldz, T *out, ptrdiff_t ldo, ptrdiff_t n, ptrdiff_t m), \
      (z, ldz, out, ldo, n, m))

#define CS_ALL_KERNELS(X) CS_KERNELS(X, float, f) CS_KERNELS(X, double, d) \
    CS_GRAD_KERNELS(X, float, f) CS_GRAD_KERNELS(X, double, d) CS_UNTYPED_KERNELS(X) \
    CS_NLL_OPTS_KERNELS(X, float, f) CS_NLL_OPTS_KERNELS(X, double, d) \
    CS_MASKED_KERNELS(X, float, f) CS_MASKED_KERNELS(X, double, d) \
    CS_BCE_KERNELS(X, float, f) CS_BCE_KERNELS(X, double, d)

/* the dispatched entry points */
#define CS_DECL_PUBLIC(R, name, params, args) R name params;
CS_ALL_KERNELS(CS_DECL_PUBLIC)

/* SIMD variants: names as accepted by cs_simd_select / CYSOFTMAX_SIMD */
int cs_simd_select(const char *name);   /* 0 ok, -1 unknown or not built, -2 CPU lacks it */
const char *cs_simd_active(void);
int cs_simd_compiled(const char *name); /* built into this binary */
int cs_simd_supported(const char *name);/* built, and this CPU can run it */

/* OpenMP: whether the dispatch layer was built with it, and its team size */
int cs_openmp_enabled(void);
int cs_max_threads(void);
int cs_last_team_size(void);   /* threads of this thread's last row-kernel call */

#endif
