/*
 * dispatch.c -- run-time choice among the SIMD variants of the row kernels.
 *
 * Each variant (rows.c compiled with its own -march) exports the same
 * kernels with a suffix.  A table of function pointers per variant is
 * built here, and the public cs_* functions forward through `active`: one
 * indirect call per kernel call, nothing per row.
 *
 * `active` is chosen on first use from CYSOFTMAX_SIMD (when it names a
 * variant this CPU runs) or else the best variant the CPU supports.  Every
 * extension module that links this file has its own copy of `active`, and
 * each makes the same choice from the same environment, so the modules
 * agree without talking to each other.  (The Python side validates
 * CYSOFTMAX_SIMD at import and raises ImportError for a bad value.)
 * The first-use race between threads is benign: they store the same pointer.
 *
 * CS_HAVE_AVX2 / CS_HAVE_AVX512 are defined by meson when those variants
 * are built (x86-64 with -Dsimd=auto); a portable build has baseline only.
 */
#include <stdlib.h>
#include <string.h>
#include "rows.h"

#define CS_FIELD(R, name, params, args) R (*name) params;
typedef struct {
    const char *name;
    CS_ALL_KERNELS(CS_FIELD)
} cs_table;

#define CS_DECL_VARIANT(R, name, params, args) R name##_baseline params;
CS_ALL_KERNELS(CS_DECL_VARIANT)
#undef CS_DECL_VARIANT
#define CS_INIT(R, name, params, args) name##_baseline,
static const cs_table table_baseline = {"baseline", CS_ALL_KERNELS(CS_INIT)};
#undef CS_INIT

#ifdef CS_HAVE_AVX2
#define CS_DECL_VARIANT(R, name, params, args) R name##_avx2 params;
CS_ALL_KERNELS(CS_DECL_VARIANT)
#undef CS_DECL_VARIANT
#define CS_INIT(R, name, params, args) name##_avx2,
static const cs_table table_avx2 = {"avx2", CS_ALL_KERNELS(CS_INIT)};
#undef CS_INIT
#endif

#ifdef CS_HAVE_AVX512
#define CS_DECL_VARIANT(R, name, params, args) R name##_avx512 params;
CS_ALL_KERNELS(CS_DECL_VARIANT)
#undef CS_DECL_VARIANT
#define CS_INIT(R, name, params, args) name##_avx512,
static const cs_table table_avx512 = {"avx512", CS_ALL_KERNELS(CS_INIT)};
#undef CS_INIT
#endif

static const cs_table *tables[] = {
    &table_baseline,
#ifdef CS_HAVE_AVX2
    &table_avx2,
#endif
#ifdef CS_HAVE_AVX512
    &table_avx512,
#endif
};

static const cs_table *volatile active = NULL;

static int cpu_has(const char *name)
{
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
    if (strcmp(name, "avx2") == 0)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
               && __builtin_cpu_supports("bmi2");
    if (strcmp(name, "avx512") == 0)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
               && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")
               && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    return strcmp(name, "baseline") == 0;
}

static const cs_table *find(const char *name)
{
    for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++)
        if (strcmp(tables[i]->name, name) == 0)
            return tables[i];
    return NULL;
}

static const cs_table *choose(void)
{
    const char *want = getenv("CYSOFTMAX_SIMD");
    if (want != NULL && want[0] != '\0') {
        const cs_table *t = find(want);
        if (t != NULL && cpu_has(want))
            return t;
    }
    for (size_t i = sizeof(tables) / sizeof(tables[0]); i-- > 0;)
        if (cpu_has(tables[i]->name))
            return tables[i];
    return &table_baseline;
}

static inline const cs_table *get_active(void)
{
    const cs_table *t = active;
    if (t == NULL)
        active = t = choose();
    return t;
}

int cs_simd_compiled(const char *name) { return find(name) != NULL; }

int cs_simd_supported(const char *name) { return find(name) != NULL && cpu_has(name); }

int cs_simd_select(const char *name)
{
    const cs_table *t = find(name);
    if (t == NULL)
        return -1;
    if (!cpu_has(name))
        return -2;
    active = t;
    return 0;
}

const char *cs_simd_active(void) { return get_active()->name; }

/*
 * Threads.  Rows are independent, so a large call is cut into one
 * contiguous chunk of rows per thread, each chunk handed to the variant's
 * kernel unchanged.  Small calls stay on the calling thread: waking a
 * thread team costs a few microseconds, which a call of fewer than
 * CS_PAR_MIN elements does not earn back.  The team size is OpenMP's
 * (OMP_NUM_THREADS, omp_set_num_threads, threadpoolctl's limits).  Chunks
 * are fixed by (n, thread count), and the NLL's per-chunk totals are added
 * in chunk order, so a result depends on the thread count but not on timing.
 */
#ifdef _OPENMP
#include <omp.h>
#endif
#define CS_PAR_MIN 32768
#define CS_MAX_CHUNKS 256

int cs_openmp_enabled(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

/* The team size of the calling thread's last row-kernel call (1 when it
 * stayed serial): written by the team's thread 0, which is the caller, into
 * the caller's thread-local slot, so concurrent callers do not race.  For
 * the tests (the thread count a call really used); costs one store. */
static _Thread_local int last_team = 1;

int cs_last_team_size(void)
{
    return last_team;
}

#ifdef _OPENMP
#define CS_RECORD_TEAM()                                                            \
    do { if (omp_get_thread_num() == 0) last_team = omp_get_num_threads(); } while (0)
#else
#define CS_RECORD_TEAM() ((void)0)
#endif

int cs_max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static int n_chunks(ptrdiff_t n, ptrdiff_t m)
{
#ifdef _OPENMP
    if (n < 2 || n * m < CS_PAR_MIN || omp_in_parallel())
        return 1;
    int t = omp_get_max_threads();
    if (t > CS_MAX_CHUNKS) t = CS_MAX_CHUNKS;
    if (t > n) t = (int)n;
    return t < 1 ? 1 : t;
#else
    (void)n; (void)m;
    return 1;
#endif
}

#define CS_ROW0(c) (n * (c) / nc)

/* The body of every threaded wrapper: the call (__VA_ARGS__, on the active
   table t, for the chunk of nr_ rows from row i0) once per chunk; with
   CS_CHUNKS_SUM the call returns a double and the chunks' values are added
   in chunk order.  n and m are the wrapper's row and class counts. */
#define CS_CHUNKS_BEGIN                                                             \
    const cs_table *t = get_active();                                               \
    int nc = n_chunks(n, m);                                                        \
    last_team = 1;
#define CS_CHUNKS(...)                                                              \
    CS_CHUNKS_BEGIN                                                                 \
    if (nc == 1) {     /* (no parallel region: even an inactive one costs) */       \
        const ptrdiff_t i0 = 0, nr_ = n;                                            \
        __VA_ARGS__;                                                                \
        return;                                                                     \
    }                                                                               \
    _Pragma("omp parallel for num_threads(nc) schedule(static)")                    \
    for (int c = 0; c < nc; c++) {                                                  \
        CS_RECORD_TEAM();                                                           \
        ptrdiff_t i0 = CS_ROW0(c), nr_ = CS_ROW0(c + 1) - i0;                       \
        __VA_ARGS__;                                                                \
    }
#define CS_CHUNKS_SUM(...)                                                          \
    CS_CHUNKS_BEGIN                                                                 \
    if (nc == 1) {                                                                  \
        const ptrdiff_t i0 = 0, nr_ = n;                                            \
        return __VA_ARGS__;                                                         \
    }                                                                               \
    double part[CS_MAX_CHUNKS];                                                     \
    _Pragma("omp parallel for num_threads(nc) schedule(static)")                    \
    for (int c = 0; c < nc; c++) {                                                  \
        CS_RECORD_TEAM();                                                           \
        ptrdiff_t i0 = CS_ROW0(c), nr_ = CS_ROW0(c + 1) - i0;                       \
        part[c] = __VA_ARGS__;                                                      \
    }                                                                               \
    double total = part[0];                                                         \
    for (int c = 1; c < nc; c++)                                                    \
        total += part[c];                                                           \
    return total;

/* a row pointer of chunk i0, or NULL for an absent argument */
#define CS_AT(p, ld) ((p) ? (p) + i0 * (ld) : NULL)

#define CS_DEFINE_ROWS(T, S)                                                        \
void cs_softmax_##S(const T *z, ptrdiff_t ldz, T *out, ptrdiff_t ldo,              \
                    ptrdiff_t n, ptrdiff_t m)                                       \
{                                                                                   \
    CS_CHUNKS(t->cs_softmax_##S(z + i0 * ldz, ldz, out + i0 * ldo, ldo, nr_, m))    \
}                                                                                   \
void cs_log_softmax_##S(const T *z, ptrdiff_t ldz, T *out, ptrdiff_t ldo,          \
                        ptrdiff_t n, ptrdiff_t m)                                   \
{                                                                                   \
    CS_CHUNKS(t->cs_log_softmax_##S(z + i0 * ldz, ldz, out + i0 * ldo, ldo, nr_, m)) \
}                                                                                   \
void cs_logsumexp_##S(const T *z, ptrdiff_t ldz, T *out, ptrdiff_t n, ptrdiff_t m) \
{                                                                                   \
    CS_CHUNKS(t->cs_logsumexp_##S(z + i0 * ldz, ldz, out + i0, nr_, m))             \
}                                                                                   \
double cs_nll_##S(const T *z, ptrdiff_t ldz, const ptrdiff_t *y, const double *w,  \
                  double gmul, T *loss, T *grad, ptrdiff_t ldg, ptrdiff_t n,        \
                  ptrdiff_t m)                                                      \
{                                                                                   \
    CS_CHUNKS_SUM(t->cs_nll_##S(z + i0 * ldz, ldz, y + i0, CS_AT(w, 1), gmul,       \
                                CS_AT(loss, 1), CS_AT(grad, ldg), ldg, nr_, m))     \
}                                                                                   \
void cs_exp_array_##S(const T *x, T *out, ptrdiff_t n)                             \
{                                                                                   \
    get_active()->cs_exp_array_##S(x, out, n);                                      \
}                                                                                   \
void cs_exp_nr_array_##S(const T *x, T *out, ptrdiff_t n)                          \
{                                                                                   \
    get_active()->cs_exp_nr_array_##S(x, out, n);                                   \
}

CS_DEFINE_ROWS(float, f)
CS_DEFINE_ROWS(double, d)

/* grads.template.h's kernels; b and mask may have a row stride of 0 */
#define CS_DEFINE_GRADS(T, S)                                                       \
void cs_logsumexp_b_##S(const T *z, ptrdiff_t ldz, const T *b, ptrdiff_t ldb,      \
                        const unsigned char *mask, ptrdiff_t ldmask, T *out,        \
                        T *sign, ptrdiff_t n, ptrdiff_t m)                          \
{                                                                                   \
    CS_CHUNKS(t->cs_logsumexp_b_##S(z + i0 * ldz, ldz, b + i0 * ldb, ldb,           \
                                    CS_AT(mask, ldmask), ldmask, out + i0,          \
                                    CS_AT(sign, 1), nr_, m))                        \
}                                                                                   \
void cs_softmax_backward_##S(const T *g, ptrdiff_t ldg, const T *p, ptrdiff_t ldp, \
                             T *out, ptrdiff_t ldo, ptrdiff_t n, ptrdiff_t m)       \
{                                                                                   \
    CS_CHUNKS(t->cs_softmax_backward_##S(g + i0 * ldg, ldg, p + i0 * ldp, ldp,      \
                                         out + i0 * ldo, ldo, nr_, m))              \
}                                                                                   \
void cs_log_softmax_backward_##S(const T *g, ptrdiff_t ldg, const T *lp,           \
                                 ptrdiff_t ldl, T *out, ptrdiff_t ldo, ptrdiff_t n, \
                                 ptrdiff_t m)                                       \
{                                                                                   \
    CS_CHUNKS(t->cs_log_softmax_backward_##S(g + i0 * ldg, ldg, lp + i0 * ldl, ldl, \
                                             out + i0 * ldo, ldo, nr_, m))          \
}

CS_DEFINE_GRADS(float, f)
CS_DEFINE_GRADS(double, d)

/* the cross-entropy with options: totals in chunk order, like cs_nll */
#define CS_DEFINE_NLL_OPTS(T, S)                                                    \
double cs_nll_opts_##S(const T *z, ptrdiff_t ldz, const ptrdiff_t *y, const T *q,  \
                       ptrdiff_t ldq, const T *cw, const double *w, ptrdiff_t ignore, \
                       double smoothing, double gmul, T *loss, T *grad, ptrdiff_t ldg, \
                       ptrdiff_t n, ptrdiff_t m)                                    \
{                                                                                   \
    CS_CHUNKS_SUM(t->cs_nll_opts_##S(z + i0 * ldz, ldz, CS_AT(y, 1), CS_AT(q, ldq), \
                                     ldq, cw, CS_AT(w, 1), ignore, smoothing, gmul, \
                                     CS_AT(loss, 1), CS_AT(grad, ldg), ldg, nr_, m)) \
}                                                                                   \
double cs_nll_denom_##S(const ptrdiff_t *y, const T *cw, const double *w,          \
                        ptrdiff_t ignore, ptrdiff_t n)                              \
{                                                                                   \
    return get_active()->cs_nll_denom_##S(y, cw, w, ignore, n);   /* O(n): serial */ \
}

CS_DEFINE_NLL_OPTS(float, f)
CS_DEFINE_NLL_OPTS(double, d)

/* where= (rows.h, CS_MASKED_KERNELS): a chunk's mask rows start at
   mask + i0 * ldmask (the same row when ldmask is 0) */
#define CS_DEFINE_MASKED_SOFTMAX(T, S, name)                                        \
void name##_##S(const T *z, ptrdiff_t ldz, const unsigned char *mask,             \
                ptrdiff_t ldmask, T *out, ptrdiff_t ldo, ptrdiff_t n, ptrdiff_t m)  \
{                                                                                   \
    CS_CHUNKS(t->name##_##S(z + i0 * ldz, ldz, mask + i0 * ldmask, ldmask,          \
                            out + i0 * ldo, ldo, nr_, m))                           \
}

#define CS_DEFINE_MASKED(T, S)                                                      \
CS_DEFINE_MASKED_SOFTMAX(T, S, cs_softmax_masked)                                   \
CS_DEFINE_MASKED_SOFTMAX(T, S, cs_log_softmax_masked)                               \
void cs_logsumexp_masked_##S(const T *z, ptrdiff_t ldz, const unsigned char *mask, \
                             ptrdiff_t ldmask, T *out, ptrdiff_t n, ptrdiff_t m)    \
{                                                                                   \
    CS_CHUNKS(t->cs_logsumexp_masked_##S(z + i0 * ldz, ldz, mask + i0 * ldmask,     \
                                         ldmask, out + i0, nr_, m))                 \
}

CS_DEFINE_MASKED(float, f)
CS_DEFINE_MASKED(double, d)

/* sigmoid outputs (bce.template.h): totals in chunk order, like cs_nll.  (The
   targets are `tg` here: `t` is CS_CHUNKS's table.) */
#define CS_DEFINE_BCE(T, S)                                                         \
double cs_bce_##S(const T *z, ptrdiff_t ldz, const T *tg, ptrdiff_t ldt,           \
                  const double *w, double gmul, T *loss, T *grad, ptrdiff_t ldg,    \
                  ptrdiff_t n, ptrdiff_t m)                                         \
{                                                                                   \
    CS_CHUNKS_SUM(t->cs_bce_##S(z + i0 * ldz, ldz, tg + i0 * ldt, ldt, CS_AT(w, 1),  \
                                gmul, CS_AT(loss, 1), CS_AT(grad, ldg), ldg, nr_, m)) \
}                                                                                   \
void cs_sigmoid_##S(const T *z, ptrdiff_t ldz, T *out, ptrdiff_t ldo, ptrdiff_t n, \
                    ptrdiff_t m)                                                    \
{                                                                                   \
    CS_CHUNKS(t->cs_sigmoid_##S(z + i0 * ldz, ldz, out + i0 * ldo, ldo, nr_, m))    \
}                                                                                   \
void cs_log_sigmoid_##S(const T *z, ptrdiff_t ldz, T *out, ptrdiff_t ldo,          \
                        ptrdiff_t n, ptrdiff_t m)                                   \
{                                                                                   \
    CS_CHUNKS(t->cs_log_sigmoid_##S(z + i0 * ldz, ldz, out + i0 * ldo, ldo, nr_, m)) \
}

CS_DEFINE_BCE(float, f)
CS_DEFINE_BCE(double, d)

int cs_labels_ok(const ptrdiff_t *y, ptrdiff_t n, ptrdiff_t m)
{
    return get_active()->cs_labels_ok(y, n, m);
}

void cs_log1_array(const double *x, double *out, ptrdiff_t n)
{
    get_active()->cs_log1_array(x, out, n);
}

void cs_log1p_array(const double *x, double *out, ptrdiff_t n)
{
    get_active()->cs_log1p_array(x, out, n);
}
