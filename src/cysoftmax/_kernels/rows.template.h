/*
 * rows.template.h -- the row kernels, written once for an element type T.
 * Included by rows.c with T (float|double), S (f|d) and CS_EXP defined.
 *
 * Per row, three passes that stay in L1:
 *   1. r = max_j z_j                     (-inf entries never win; NaN ignored)
 *   2. e_j = exp(z_j - r), split as s = sum_j e_j = n1 + tail, so that
 *      log s = log1p(t) with t = (n1 - 1) + tail, the sum of every exp but
 *      one arg-max entry's: no tail below eps is lost (log_softmax of the
 *      dominant class, logsumexp, the NLL of a confident row are exact in
 *      relative terms), and t is summed without a 1 in it, in double (a
 *      NaN entry makes it NaN), float64 in blocks of CS_SUM_BLK (a
 *      vectorized reduction each, added into the row's double), so long
 *      rows keep s to a few eps.  Row by row (m >= CS_SMALL_M) the first
 *      arg-max entry is left out by index (n1 = 1, ties are 1s in the
 *      tail); on the small-m blocks, lane-wise, n1 counts the exps that are
 *      exactly 1 and the tail sums the others.
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
 * In the avx512 variant (CS_AVX512, rows.c) passes 1-3 of the large-m rows
 * (row_max_nr, exp_split, the scale of softmax and the NLL gradient, the
 * shift of log_softmax) and the exp arrays run the intrinsic loops of
 * cs_exp_avx512.h instead: the same exp (vscalef for 2^n); the split sum
 * there counts every exp exactly 1 into n1 and sums the others, float32 in
 * float lanes over blocks (its file comment: the error bound).  The masked
 * (where=) kernels call exp_split_with / exp_seg_with directly and keep
 * the generic loops.
 */

/* max of a row (NaN entries are skipped: their effect comes through s),
   and whether every exp(z_j - max) is in CS_EXP_NR's range (a NaN or
   infinite min or max answers no) */
static inline T FN(row_max_nr)(const T *z, ptrdiff_t m, int *nr)
{
#ifdef CS_AVX512
    return CS_V(cs_v_row_max_nr)(z, m, nr, CS_EXP_LO);
#endif
    T r = -(T)INFINITY, lo = (T)INFINITY;
#pragma omp simd reduction(max : r) reduction(min : lo)
    for (ptrdiff_t j = 0; j < m; j++) {
        r = z[j] > r ? z[j] : r;
        lo = z[j] < lo ? z[j] : lo;
    }
    *nr = lo - r >= CS_EXP_LO;
    return r;
}

/* the same, in blocks of CS_ARG_BLK entries, also giving *kb, the start
   of the first block that holds the max (first_index then looks there
   only) */
#define CS_ARG_BLK 128
static inline T FN(row_max_nr_at)(const T *z, ptrdiff_t m, int *nr, ptrdiff_t *kb)
{
    T r = -(T)INFINITY, lo = (T)INFINITY;
    ptrdiff_t at = 0;
    for (ptrdiff_t j0 = 0; j0 < m; j0 += CS_ARG_BLK) {
        ptrdiff_t j1 = m - j0 <= CS_ARG_BLK ? m : j0 + CS_ARG_BLK;
        T bm = -(T)INFINITY, bl = (T)INFINITY;
#pragma omp simd reduction(max : bm) reduction(min : bl)
        for (ptrdiff_t j = j0; j < j1; j++) {
            bm = z[j] > bm ? z[j] : bm;
            bl = z[j] < bl ? z[j] : bl;
        }
        at = bm > r ? j0 : at;
        r = bm > r ? bm : r;
        lo = bl < lo ? bl : lo;
    }
    *nr = lo - r >= CS_EXP_LO;
    *kb = at;
    return r;
}

/* The loops below take the exp as an argument and are called with a
   constant one (CS_EXP_NR when the caller knows x >= CS_EXP_LO, else
   CS_EXP): once inlined, each call site is its own loop with its own exp.
   (A `nr ? CS_EXP_NR(x) : CS_EXP(x)` in the loop body is if-converted by
   gcc into computing both and blending, which is slower than either.)
   The dispatch is CS_EXP_SEL, defined in rows.c with FN for every template. */

/* One block of the split sum (pass 2 above): e = exp(x) is added to the
   tail unless it is exactly 1, and counted in *cb if it is (cb in T: exact
   for a block).  `e == 1 ? 0 : e` keeps a NaN in the tail. */
#define CS_SPLIT_ACC(e, tb, cb)                                                     \
    do {                                                                            \
        tb += (double)((e) == (T)1 ? (T)0 : (e));                                   \
        cb += (e) == (T)1 ? (T)1 : (T)0;                                            \
    } while (0)

/* The first index of r (the row max, an entry of z) in z[j0, m), r known
   to be in the block [j0, j0 + CS_ARG_BLK): a vectorized min of the
   offset in the block, as an integer of T's width (CS_ITYPE: lanes as
   wide as z's, so the compare's mask selects it directly) */
static inline ptrdiff_t FN(index_in_block)(const T *z, ptrdiff_t j0, ptrdiff_t m, T r)
{
    const T *zb = z + j0;
    CS_ITYPE k = CS_ARG_BLK;
    if (m - j0 >= CS_ARG_BLK) {
#pragma omp simd reduction(min : k)
        for (CS_ITYPE j = 0; j < CS_ARG_BLK; j++)
            k = zb[j] == r && j < k ? j : k;
    } else {
        CS_ITYPE len = (CS_ITYPE)(m - j0);
#pragma omp simd reduction(min : k)
        for (CS_ITYPE j = 0; j < len; j++)
            k = zb[j] == r && j < k ? j : k;
    }
    return j0 + k < m ? j0 + k : m - 1;   /* (k = CS_ARG_BLK is not reached) */
}

/* The first index of r in z, anywhere: blocks of CS_ARG_BLK entries are
   searched with a vectorized count of the entries equal to r (in T lanes:
   a compare and a masked add per vector) until one has it */
static inline ptrdiff_t FN(first_index)(const T *z, ptrdiff_t m, T r)
{
    for (ptrdiff_t j0 = 0; j0 < m; j0 += CS_ARG_BLK) {
        ptrdiff_t j1 = m - j0 <= CS_ARG_BLK ? m : j0 + CS_ARG_BLK;
        T hits = 0;
        if (j1 - j0 == CS_ARG_BLK) {   /* a fixed trip count: unrolled, no epilogue */
            const T *zb = z + j0;
#pragma omp simd reduction(+ : hits)
            for (ptrdiff_t j = 0; j < CS_ARG_BLK; j++)
                hits += zb[j] == r ? (T)1 : (T)0;
        } else {
#pragma omp simd reduction(+ : hits)
            for (ptrdiff_t j = j0; j < j1; j++)
                hits += z[j] == r ? (T)1 : (T)0;
        }
        if (hits > 0)
            return FN(index_in_block)(z, j0, m, r);
    }
    return m - 1;   /* (not reached for a finite r taken from z) */
}

/* sum_{j in [j0, j1)} exp(z_j - r), storing o_j (o NULL: no store; o may
   equal z), in double.  float64 in blocks of CS_SUM_BLK, each a vectorized
   reduction, the block sums added with Kahan's compensation: the error of
   the sum is then that of one block's lane sums (CS_SUM_BLK / lanes terms
   each), whatever m; in particular a tie at the max (an exp of exactly 1
   in the sum) costs at most CS_SUM_BLK / lanes / 2 eps of the sum's
   absolute value, while the sum is then >= 1 and s >= 2.  float32 in one
   block: its double sum is far below float's eps anyway. */
CS_ALWAYS_INLINE double FN(exp_seg_with)(const T *z, T *o, ptrdiff_t j0, ptrdiff_t j1, T r,
                                         T (*ex)(T))
{
    const ptrdiff_t blk = sizeof(T) == 4 ? PTRDIFF_MAX : CS_SUM_BLK;
    double total = 0.0, comp = 0.0;
    for (ptrdiff_t b0 = j0; b0 < j1; b0 += blk) {
        ptrdiff_t b1 = j1 - b0 <= blk ? j1 : b0 + blk;
        double tb = 0.0;
        if (o == NULL) {
#pragma omp simd reduction(+ : tb)
            for (ptrdiff_t j = b0; j < b1; j++)
                tb += (double)ex(z[j] - r);
        } else if (o == z) {
#pragma omp simd reduction(+ : tb)
            for (ptrdiff_t j = b0; j < b1; j++) {
                T e = ex(o[j] - r);
                o[j] = e;
                tb += (double)e;
            }
        } else {
#pragma omp simd reduction(+ : tb)
            for (ptrdiff_t j = b0; j < b1; j++) {
                T e = ex(z[j] - r);
                o[j] = e;
                tb += (double)e;
            }
        }
        /* Kahan: total + comp carries the sum of the blocks */
        double yk = tb - comp, tk = total + yk;
        comp = (tk - total) - yk;
        total = tk;
        if (j1 - b0 <= blk)
            break;
    }
    return total;
}

/* the same over [j0, j1) for one vector's worth of entries (j1 - j0 <=
   CS_BLK), leaving out entry k (in [j0, j1)) from the sum (o_k is still
   stored: exactly 1).  The exps in one vectorized loop, the sum in a
   scalar one (an index test per entry in the vector loop would keep gcc
   from vectorizing it) */
CS_ALWAYS_INLINE double FN(exp_seg_but_with)(const T *z, T *o, ptrdiff_t j0, ptrdiff_t j1,
                                             ptrdiff_t k, T r, T (*ex)(T))
{
    T ev[CS_BLK];
    ptrdiff_t len = j1 - j0;
    if (len == CS_BLK) {
#pragma omp simd
        for (ptrdiff_t j = 0; j < CS_BLK; j++)
            ev[j] = ex(z[j0 + j] - r);
    } else {
#pragma omp simd
        for (ptrdiff_t j = 0; j < len; j++)
            ev[j] = ex(z[j0 + j] - r);
    }
    double tb = 0.0;
    for (ptrdiff_t j = 0; j < len; j++) {
        if (o != NULL)
            o[j0 + j] = ev[j];
        tb += j0 + j == k ? 0.0 : (double)ev[j];
    }
    return tb;
}

/* o_j = exp(z_j - r) (when o != NULL; o may equal z); returns the tail
   and sets *n1 so that s = n1 + tail and (n1 - 1) + tail is the sum of
   every exp but one arg-max entry's.  The first arg-max entry k is left
   out by index: the vector of CS_BLK entries around it is summed on its
   own with k masked, the rest in two plain loops that start on vector
   boundaries (so no loop gets an epilogue the single loop over the row
   did not have); n1 = 1, and other ties at the max are 1s in the tail
   (see exp_seg_with for their cost). */
CS_ALWAYS_INLINE double FN(exp_split_k_with)(const T *z, T *o, ptrdiff_t m, T r,
                                             ptrdiff_t k, double *n1, T (*ex)(T))
{
    ptrdiff_t ka = k - k % CS_BLK, kb = m - ka <= CS_BLK ? m : ka + CS_BLK;
    double t = FN(exp_seg_with)(z, o, 0, ka, r, ex)
             + FN(exp_seg_but_with)(z, o, ka, kb, k, r, ex)
             + FN(exp_seg_with)(z, o, kb, m, r, ex);
    *n1 = 1.0;
    return t;
}

/* sum_{j != k} v_j in double (stored exps: no exp taken) */
static inline double FN(sum_but)(const T *v, ptrdiff_t m, ptrdiff_t k)
{
    double a = 0.0, b = 0.0;
#pragma omp simd reduction(+ : a)
    for (ptrdiff_t j = 0; j < k; j++)
        a += (double)v[j];
#pragma omp simd reduction(+ : b)
    for (ptrdiff_t j = k + 1; j < m; j++)
        b += (double)v[j];
    return a + b;
}

/* exp_split_k with k found here (r the row max, taken from z).
   float32 first tries one plain pass: every exp, the 1 of the max
   included, summed in double, and t = s - 1.  The 1 costs at most one
   rounding of 2^-53 per later addition into its lane (at most m of them),
   so t is exact to 2^-27 of itself -- far below float's eps -- whenever
   t >= m 2^-26, which holds for all but very confident rows (p_max >
   1 - m 2^-26); those are summed again without the max entry: from the
   stored exps when there are (no exp taken again), else from z.
   float64 has no such headroom: the max entry is always left out by
   index (exp_split_k). */
CS_ALWAYS_INLINE double FN(exp_split_with)(const T *z, T *o, ptrdiff_t m, T r, double *n1,
                                           T (*ex)(T))
{
    if (sizeof(T) == 4) {
        double t = FN(exp_seg_with)(z, o, 0, m, r, ex) - 1.0;
        *n1 = 1.0;
        if (t >= (double)m * 0x1p-26)
            return t;
        if (o != NULL)   /* (also in place: o holds the exps now) */
            return FN(sum_but)(o, m, FN(first_index)(o, m, (T)1));
    }
    return FN(exp_split_k_with)(z, o, m, r, FN(first_index)(z, m, r), n1, ex);
}

/* the split sum with the exp chosen for the row (nr: see row_max_nr) */
static inline double FN(exp_split)(const T *z, T *o, ptrdiff_t m, T r, int nr, double *n1)
{
#ifdef CS_AVX512
    return CS_V(cs_v_exp_split)(z, o, m, r, nr, n1);   /* (ones counted: cs_exp_avx512.h) */
#endif
    return CS_EXP_SEL(nr, FN(exp_split_with), z, o, m, r, n1);
}

/* the same for r and kb from row_max_nr_at (the usual call) */
static inline double FN(exp_split_at)(const T *z, T *o, ptrdiff_t m, T r, ptrdiff_t kb,
                                      int nr, double *n1)
{
    ptrdiff_t k = FN(index_in_block)(z, kb, m, r);
    return CS_EXP_SEL(nr, FN(exp_split_k_with), z, o, m, r, k, n1);
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
 * The moves into and out of buf (block_load, block_store_scaled) and
 * log_softmax's row-wise store are element-by-element loops here, the
 * portable source; in the avx512 variant small_avx512.h moves the same
 * values with masked row loads, permutes in registers and masked row
 * stores (CS_SMALL_SIMD): those loops were most of the time at m = 10.
 */
/* col[b] = exp(col[b] - r[b]) over the m columns of buf, split-summed */
CS_ALWAYS_INLINE void FN(block_exp_cols)(T *buf, ptrdiff_t m, const T *r, double *tail,
                                         double *n1, T (*ex)(T))
{
    if (sizeof(T) == 4) {
        /* float32: the plain sum (the 1 of the max included), t = s - 1,
           exact to float's eps when t >= m 2^-26 (see exp_split); lanes
           of very confident rows below that are split again from the
           stored exps, for the whole block */
        int again = 0;
        for (ptrdiff_t j = 0; j < m; j++) {
            T *col = buf + j * CS_BLK;
#pragma omp simd
            for (ptrdiff_t b = 0; b < CS_BLK; b++) {
                T e = ex(col[b] - r[b]);
                col[b] = e;
                tail[b] += (double)e;
            }
        }
        const double lim = (double)m * 0x1p-26;
#pragma omp simd reduction(| : again)
        for (ptrdiff_t b = 0; b < CS_BLK; b++) {
            tail[b] -= 1.0;
            n1[b] = 1.0;
            again |= !(tail[b] >= lim);   /* (NaN too: harmless) */
        }
        if (!again)
            return;
#pragma omp simd
        for (ptrdiff_t b = 0; b < CS_BLK; b++)
            tail[b] = 0.0;
    }
    T cb[CS_BLK];
#pragma omp simd
    for (ptrdiff_t b = 0; b < CS_BLK; b++)
        cb[b] = 0;
    for (ptrdiff_t j = 0; j < m; j++) {
        T *col = buf + j * CS_BLK;
#pragma omp simd
        for (ptrdiff_t b = 0; b < CS_BLK; b++) {
            T e = sizeof(T) == 4 ? col[b] : ex(col[b] - r[b]);   /* float32: stored above */
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
CS_ALWAYS_INLINE int FN(block_load)(const T *z, ptrdiff_t ldz, ptrdiff_t nb, ptrdiff_t m,
                                    T *buf, T *r)
{
    /* j outer, b inner: the compiler turns the b loop into plain loads
       (a full block) rather than scatters, which are slow (measured: the
       b-outer order cost 1.9 ns/element at m = 10 in float, this 1.1) */
#ifdef CS_SMALL_SIMD
    /* the same values moved by in-register transposes (small_avx512.h) */
    CS_CAT2(cs_small_tload_, S)(z, ldz, nb, m, buf);
#else
    if (nb == CS_BLK) {
        for (ptrdiff_t j = 0; j < m; j++)
            for (ptrdiff_t b = 0; b < CS_BLK; b++)
                buf[j * CS_BLK + b] = z[b * ldz + j];
    } else {
        for (ptrdiff_t j = 0; j < m; j++)
            for (ptrdiff_t b = 0; b < CS_BLK; b++)
                buf[j * CS_BLK + b] = b < nb ? z[b * ldz + j] : 0;
    }
#endif
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

CS_ALWAYS_INLINE void FN(block_exp_loaded)(T *buf, ptrdiff_t m, const T *r, double *tail,
                                           double *n1, int nr)
{
#pragma omp simd
    for (ptrdiff_t b = 0; b < CS_BLK; b++)
        tail[b] = 0.0;
    CS_EXP_SEL(nr, FN(block_exp_cols), buf, m, r, tail, n1);
}

CS_ALWAYS_INLINE void FN(block_exp)(const T *z, ptrdiff_t ldz, ptrdiff_t nb, ptrdiff_t m,
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
#ifdef CS_SMALL_SIMD
    CS_CAT2(cs_small_tstore_, S)(buf, c, out, ldo, nb, m);   /* (small_avx512.h) */
#else
    for (ptrdiff_t b = 0; b < nb; b++) {
        T *o = out + b * ldo;
        for (ptrdiff_t j = 0; j < m; j++)
            o[j] = buf[j * CS_BLK + b] * c[b];
    }
#endif
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
#ifdef CS_SMALL_SIMD
        CS_CAT2(cs_small_rows_sub_, S)(z + i0 * ldz, ldz, r, ls, out + i0 * ldo, ldo, nb, m);
#else
        for (ptrdiff_t b = 0; b < nb; b++) {
            const T *zi = z + (i0 + b) * ldz;
            T *o = out + (i0 + b) * ldo;
            for (ptrdiff_t j = 0; j < m; j++)     /* elementwise: safe in place */
                o[j] = (zi[j] - r[b]) - ls[b];
        }
#endif
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
#ifdef CS_AVX512
        CS_V(cs_v_scale)(oi, m, inv);
        continue;
#endif
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
#ifdef CS_AVX512
        CS_V(cs_v_shift)(zi, oi, m, r, ls);
        continue;
#endif
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
   (or m == 0).  The logsumexp of a row whose max r is not finite. */
static inline T FN(lse_special)(const T *zi, ptrdiff_t m, T r)
{
    int has_nan = 0;
    for (ptrdiff_t j = 0; j < m; j++)
        has_nan |= isnan(zi[j]);
    return has_nan ? (T)NAN : r;   /* r is +inf or -inf here */
}

/* small m: a block of rows at a time (block_exp), r + log1p(t) lane-wise */
static void FN(logsumexp_small)(const T *z, ptrdiff_t ldz, T *out, ptrdiff_t n, ptrdiff_t m)
{
    T buf[CS_SMALL_M * CS_BLK], r[CS_BLK];
    double tail[CS_BLK], n1[CS_BLK], v[CS_BLK];
    for (ptrdiff_t i0 = 0; i0 < n; i0 += CS_BLK) {
        ptrdiff_t nb = n - i0 < CS_BLK ? n - i0 : CS_BLK;
        FN(block_exp)(z + i0 * ldz, ldz, nb, m, buf, r, tail, n1);
#pragma omp simd
        for (ptrdiff_t b = 0; b < CS_BLK; b++)
            v[b] = (double)r[b] + cs_log1p_d((n1[b] - 1.0) + tail[b]);
        for (ptrdiff_t b = 0; b < nb; b++)
            out[i0 + b] = CS_FINITE(r[b]) ? (T)v[b] : FN(lse_special)(z + (i0 + b) * ldz, m, r[b]);
    }
}

void FN(cs_logsumexp)(const T *z, ptrdiff_t ldz, T *out, ptrdiff_t n, ptrdiff_t m)
{
    if (m < CS_SMALL_M) {
        FN(logsumexp_small)(z, ldz, out, n, m);
        return;
    }
    for (ptrdiff_t i = 0; i < n; i++) {
        const T *zi = z + i * ldz;
        int nr;
        T r = FN(row_max_nr)(zi, m, &nr);
        if (!isfinite(r)) {
            out[i] = FN(lse_special)(zi, m, r);
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
 * (weight 0, no finite max) are fixed up row by row.  Without per-row
 * losses or weights, sum_i log s_i is taken as the log of one running
 * product where that is exact enough (below): each block's product
 * (1 <= s_i <= m < 32, so it cannot overflow) is multiplied in, and the
 * product's binary exponent is moved into an integer after every block,
 * so it stays in [1, 2).  One log per call replaces one per row (a third
 * of the time at m = 10).  Otherwise each row's log1p(t_i), one
 * vectorized cs_log1p_d over the block's lanes: every C_i, and so the
 * total (a sum of C_i >= 0), is exact in relative terms.
 */
static double FN(nll_small)(const T *z, ptrdiff_t ldz, const ptrdiff_t *y,
                            const double *w, double gmul, T *loss, T *grad, ptrdiff_t ldg,
                            ptrdiff_t n, ptrdiff_t m)
{
    T buf[CS_SMALL_M * CS_BLK], r[CS_BLK];
    double tail[CS_BLK], n1[CS_BLK], zy[CS_BLK], ci[CS_BLK], inv[CS_BLK], oth[CS_BLK];
    double c[CS_BLK];
    double total = 0.0;
    double pacc = 1.0;          /* running product of the s_i, in [1, 2) ... */
    int64_t eacc = 0;           /* ... times 2^eacc */
    for (ptrdiff_t i0 = 0; i0 < n; i0 += CS_BLK) {
        ptrdiff_t nb = n - i0 < CS_BLK ? n - i0 : CS_BLK;
        /* z_y is read before any gradient row (maybe z itself) is written */
        for (ptrdiff_t b = 0; b < nb; b++)
            zy[b] = (double)z[(i0 + b) * ldz + y[i0 + b]];
        for (ptrdiff_t b = nb; b < CS_BLK; b++)
            zy[b] = 0.0;
        FN(block_exp)(z + i0 * ldz, ldz, nb, m, buf, r, tail, n1);
        /* C_i = log1p(t_i) + (r_i - z_y), both >= 0 (padding lanes: 0).
           For the total alone (no per-row losses, no weights), when every
           row of the block has t_i >= CS_PROD_T, sum_i log1p(t_i) is taken
           as the log of a running product of the s_i = 1 + t_i (one log
           per call: see the comment above); each multiplication and each
           1 + t_i rounds once, 2^-53 of the log, which is then at most
           2^-53 / log1p(CS_PROD_T) of the terms' own size (2.3 eps64 for
           float64, 2^-43 for float32).  Blocks with more confident rows
           take each row's log1p (cs_log1p_d, vectorized over the lanes). */
        int prod_ok = !(loss || w);
        if (prod_ok) {
#pragma omp simd reduction(& : prod_ok)
            for (ptrdiff_t b = 0; b < CS_BLK; b++)
                prod_ok &= (b >= nb) | ((n1[b] - 1.0) + tail[b] >= CS_PROD_T);
        }
        if (prod_ok) {
            double prod = 1.0, rz = 0.0;
#pragma omp simd reduction(* : prod) reduction(+ : rz)
            for (ptrdiff_t b = 0; b < CS_BLK; b++) {
                prod *= b < nb ? n1[b] + tail[b] : 1.0;
                rz += b >= nb ? 0.0 : CS_FINITE(r[b]) ? (double)r[b] - zy[b] : NAN;
            }
            total += rz;
            uint64_t u = cs_bits_d(pacc * prod);    /* >= 1, finite */
            eacc += (int64_t)(u >> 52) - 1023;
            pacc = cs_from_bits_d((u & 0x000fffffffffffffull) | 0x3ff0000000000000ull);
        } else {
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
    return total + ((double)eacc * 0x1.62e42fefa39efp-1 + log(pacc));
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
#ifdef CS_AVX512
                CS_V(cs_v_scale)(gi, m, ct);
#else
#pragma omp simd
                for (ptrdiff_t j = 0; j < m; j++)
                    gi[j] *= ct;
#endif
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
#ifdef CS_AVX512
    CS_V(cs_v_exp_array)(x, out, n, 0);
    return;
#endif
#pragma omp simd
    for (ptrdiff_t i = 0; i < n; i++)
        out[i] = CS_EXP(x[i]);
}

/* the same, with the exp the kernels use on [CS_EXP_LO, 0] (tests only:
   outside that range its result is meaningless) */
void FN(cs_exp_nr_array)(const T *x, T *out, ptrdiff_t n)
{
#ifdef CS_AVX512
    CS_V(cs_v_exp_array)(x, out, n, 1);
    return;
#endif
#pragma omp simd
    for (ptrdiff_t i = 0; i < n; i++)
        out[i] = CS_EXP_NR(x[i]);
}

#undef CS_ARG_BLK
#undef CS_SPLIT_ACC
