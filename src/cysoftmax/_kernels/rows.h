/*
 * rows.h -- C row kernels of cysoftmax, for float (suffix _f) and double (_d).
 *
 * Every kernel works on a block of n rows of m entries; row i of an array
 * starts at base + i * ld (ld >= m, in elements).  Input and output may be
 * the same buffer (in place), but must not partially overlap.  The callers
 * (the Cython layer) have validated shapes and labels; nothing here checks.
 *
 * One source, two types: rows.template.h is included once per type by
 * rows.c.  Sums are accumulated in double for both.
 */
#ifndef CS_ROWS_H
#define CS_ROWS_H
#include <stddef.h>
#include <stdint.h>

#define CS_DECLARE(T, S)                                                          \
void cs_softmax_##S(const T *z, ptrdiff_t ldz, T *out, ptrdiff_t ldo,            \
                    ptrdiff_t n, ptrdiff_t m);                                    \
void cs_log_softmax_##S(const T *z, ptrdiff_t ldz, T *out, ptrdiff_t ldo,        \
                        ptrdiff_t n, ptrdiff_t m);                                \
void cs_logsumexp_##S(const T *z, ptrdiff_t ldz, T *out, ptrdiff_t n, ptrdiff_t m); \
double cs_nll_##S(const T *z, ptrdiff_t ldz, const ptrdiff_t *y,                  \
                  const double *w, double gmul, T *loss, T *grad, ptrdiff_t ldg,  \
                  ptrdiff_t n, ptrdiff_t m);                                      \
void cs_exp_array_##S(const T *x, T *out, ptrdiff_t n);

CS_DECLARE(float, f)
CS_DECLARE(double, d)
#undef CS_DECLARE

#endif
