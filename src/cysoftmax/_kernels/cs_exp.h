/*
 * cs_exp.h -- branch-free, vectorizable exp for float and double.
 *
 * Why not libm's exp: it branches on special cases and is called, not
 * inlined, so a loop over a row cannot be vectorized.  Softmax spends most
 * of its time in exp, so the kernels inline this one instead.
 *
 * Method (Cody-Waite range reduction + polynomial):
 *   x = n ln2 + r,  n = round(x / ln2),  |r| <= ln2/2
 *   exp(x) = 2^n * exp(r)
 * - n is found with the "magic number" trick: adding 1.5 * 2^52 (2^23 for
 *   float) rounds x/ln2 to an integer that sits in the low mantissa bits;
 *   no float->int conversion instruction is needed (SSE2 has none for
 *   64-bit lanes).  This trick relies on IEEE rounding: never build this
 *   file with -ffast-math (-fassociative-math would fold the add away).
 * - ln2 is split into a high part with trailing zero bits (n * LN2_HI is
 *   exact) and a low correction, so r carries no cancellation error.
 * - exp(r) = 1 + (r + r^2 q(r)), q a minimax polynomial (cs_exp_core_*
 *   below); approximation error < 0.2 ulp on |r| <= ln2/2.
 * - 2^n is applied as two factors 2^(n1) * 2^(n2), n1 + n2 = n, each a
 *   normal number, so subnormal results underflow gradually (a single
 *   rounding in the last product) and large ones overflow to +inf.
 * - x is clamped to [lo, hi] where exp(lo) rounds to 0 and exp(hi) to +inf;
 *   the clamps are written `x < lo ? lo : x` so a NaN passes through (the
 *   comparison is false) and yields NaN, unlike fmax/fmin.
 * Measured error (tests/test_exp.py, against mpmath): <= 1.5 ulp on every
 * input whose result is a normal number.
 */
#ifndef CS_EXP_H
#define CS_EXP_H

#include <stdint.h>
#include <string.h>

/* for the few helpers that must be inlined for their loops to vectorize
   (loops that take the exp as a constant function-pointer argument) */
#if defined(__GNUC__) || defined(__clang__)
#define CS_ALWAYS_INLINE static inline __attribute__((always_inline))
#elif defined(_MSC_VER)
#define CS_ALWAYS_INLINE static __forceinline
#else
#define CS_ALWAYS_INLINE static inline
#endif

static inline uint64_t cs_bits_d(double x) { uint64_t u; memcpy(&u, &x, 8); return u; }
static inline double cs_from_bits_d(uint64_t u) { double x; memcpy(&x, &u, 8); return x; }
static inline uint32_t cs_bits_f(float x) { uint32_t u; memcpy(&u, &x, 4); return u; }
static inline float cs_from_bits_f(uint32_t u) { float x; memcpy(&x, &u, 4); return x; }

/*
 * The common core of both exps below: the range reduction and the
 * polynomial.  Returns exp(r) and, in *kd, x / ln2 + shift rounded, whose
 * low mantissa bits hold n.  exp(r) on |r| <= ln2/2 is 1 + (r + r^2 q(r)), q
 * the minimax polynomial (Remez, mpmath at 60 digits, tools/exp_minimax.py)
 * for (exp(r) - 1 - r)/r^2: degree 9 in double, 4 in float, approximation
 * error 0.16 / 0.18 ulp of the result.  (Taylor needed degree 11 / 5 for a
 * similar error: two and one multiply-adds more per element.)
 */
#define CS_SHIFT_D 0x1.8p52                      /* 1.5 * 2^52 */
#define CS_SHIFT_F 0x1.8p23f                     /* 1.5 * 2^23 */

static inline double cs_exp_core_d(double x, double *kd_out)
{
    const double log2e = 0x1.71547652b82fep0;
    const double ln2_hi = 0x1.62e42fee00000p-1;  /* 32 trailing zero bits */
    const double ln2_lo = 0x1.a39ef35793c76p-33;
    double kd = x * log2e + CS_SHIFT_D;
    double nd = kd - CS_SHIFT_D;                 /* n = round(x / ln2), exact */
    double r = (x - nd * ln2_hi) - nd * ln2_lo;
    double q = 0x1.af632bd579fc1p-26;
    q = q * r + 0x1.28918606e1a89p-22;
    q = q * r + 0x1.71ddf6b35affep-19;
    q = q * r + 0x1.a019b90c8b607p-16;
    q = q * r + 0x1.a01a01b00c685p-13;
    q = q * r + 0x1.6c16c1788c092p-10;
    q = q * r + 0x1.111111110f803p-7;
    q = q * r + 0x1.5555555553d62p-5;
    q = q * r + 0x1.5555555555558p-3;
    q = q * r + 0x1.0000000000001p-1;
    *kd_out = kd;
    return 1.0 + (r + (r * r) * q);
}

static inline float cs_exp_core_f(float x, float *kd_out)
{
    const float log2e = 0x1.715476p0f;
    const float ln2_hi = 0x1.63p-1f;             /* 0.693359375, 9 bits */
    const float ln2_lo = -0x1.bd0106p-13f;       /* ln2 - ln2_hi */
    float kd = x * log2e + CS_SHIFT_F;
    float nd = kd - CS_SHIFT_F;
    float r = (x - nd * ln2_hi) - nd * ln2_lo;
    float q = 0x1.6d754cp-10f;
    q = q * r + 0x1.120b72p-7f;
    q = q * r + 0x1.5554b8p-5f;
    q = q * r + 0x1.5554dcp-3f;
    q = q * r + 0.5f;
    *kd_out = kd;
    return 1.0f + (r + (r * r) * q);
}

static inline double cs_exp_d(double x)
{
    const double shift = CS_SHIFT_D;
    x = x > 710.0 ? 710.0 : x;                   /* exp(710) > DBL_MAX -> inf */
    x = x < -746.0 ? -746.0 : x;                 /* exp(-746) rounds to 0 */
    double kd, p = cs_exp_core_d(x, &kd);
    double nd = kd - shift;
    /* split n = n1 + n2 without a (non-SSE2) arithmetic shift: n1 = round(n/2) */
    double n1d = (nd * 0.5 + shift) - shift;
    double n2d = nd - n1d;
    uint64_t b1 = (cs_bits_d(n1d + shift) - cs_bits_d(shift) + 1023u) << 52;
    uint64_t b2 = (cs_bits_d(n2d + shift) - cs_bits_d(shift) + 1023u) << 52;
    return (p * cs_from_bits_d(b1)) * cs_from_bits_d(b2);
}

static inline float cs_exp_f(float x)
{
    const float shift = CS_SHIFT_F;
    x = x > 89.0f ? 89.0f : x;                   /* exp(89) > FLT_MAX -> inf */
    x = x < -104.0f ? -104.0f : x;               /* exp(-104) rounds to 0 */
    float kd, p = cs_exp_core_f(x, &kd);
    float nd = kd - shift;
    float n1d = (nd * 0.5f + shift) - shift;
    float n2d = nd - n1d;
    uint32_t b1 = (cs_bits_f(n1d + shift) - cs_bits_f(shift) + 127u) << 23;
    uint32_t b2 = (cs_bits_f(n2d + shift) - cs_bits_f(shift) + 127u) << 23;
    return (p * cs_from_bits_f(b1)) * cs_from_bits_f(b2);
}

/*
 * The same exp on the range softmax needs almost always: x in [lo, 0] with
 * lo = CS_EXP_NR_LO_F/D (or NaN), where every result is a normal number.
 * Then the clamps and the two-factor scaling are dead weight: 2^n is one
 * normal factor built straight from the rounded kd.  About 13 vector
 * operations instead of 33 (float); the core is the same as above, so the
 * result is bit-identical to cs_exp_f/d on that range (tests/test_exp.py).
 * The row kernels use it when (row min - row max) >= lo, else cs_exp_f/d.
 */
#define CS_EXP_NR_LO_F (-87.0f)     /* n >= -126: 2^n and the result are normal */
#define CS_EXP_NR_LO_D (-708.0)     /* n >= -1022 */

static inline double cs_exp_nr_d(double x)
{
    double kd, p = cs_exp_core_d(x, &kd);
    /* the low bits of kd hold n + 2^51 (two's complement in the mantissa) */
    uint64_t b = (cs_bits_d(kd) - cs_bits_d(CS_SHIFT_D) + 1023u) << 52;
    return p * cs_from_bits_d(b);
}

static inline float cs_exp_nr_f(float x)
{
    float kd, p = cs_exp_core_f(x, &kd);
    uint32_t b = (cs_bits_f(kd) - cs_bits_f(CS_SHIFT_F) + 127u) << 23;
    return p * cs_from_bits_f(b);
}

/*
 * log(s) for s >= 1 (or NaN), vectorizable: the small-m kernels take one
 * log per row (s = sum_j exp(z_j - max) >= 1), and a libm call per row was
 * a quarter of log_softmax's time at m = 10.
 *   s = 2^k f, f in [sqrt(2)/2, sqrt(2)) (bit manipulation, as musl's log);
 *   log f = 2 atanh(u) = 2u + u z P(z), u = (f - 1)/(f + 1), z = u^2 <= 0.0295,
 *   P the Taylor series of (2 atanh(u) - 2u)/u^3 to degree 8 in z
 *   (truncation < 0.2 ulp), evaluated as musl's log does.
 * Error <= 1.5 ulp (tests/test_exp.py, against mpmath).  A NaN s gives NaN
 * (the `+ (s - s)`); s < 1, 0, inf are outside the contract.
 */
static inline double cs_log1_d(double s)
{
    const double ln2_hi = 0x1.62e42fee00000p-1;
    const double ln2_lo = 0x1.a39ef35793c76p-33;
    uint64_t ix = cs_bits_d(s) + (0x3ff0000000000000ull - 0x3fe6a09e667f3bcdull);
    /* k = (ix >> 52) - 1023 as a double, without an int64 -> double conversion
       (none in AVX2): the exponent bits dropped into a 2^52 mantissa */
    double kd = cs_from_bits_d(0x4330000000000000ull | (ix >> 52)) - (0x1p52 + 1023.0);
    double f = cs_from_bits_d((ix & 0x000fffffffffffffull) + 0x3fe6a09e667f3bcdull);
    double r = f - 1.0;                        /* exact (Sterbenz) */
    double u = r / (f + 1.0);
    double z = u * u;
    double P = 2.0 / 19.0;
    P = P * z + 2.0 / 17.0;
    P = P * z + 2.0 / 15.0;
    P = P * z + 2.0 / 13.0;
    P = P * z + 2.0 / 11.0;
    P = P * z + 2.0 / 9.0;
    P = P * z + 2.0 / 7.0;
    P = P * z + 2.0 / 5.0;
    P = P * z + 2.0 / 3.0;
    /* 2 atanh(u) = r - r^2/2 + u (r^2/2 + z P): the form of musl's log,
       whose leading r is exact, so the result is accurate near s = 1 */
    double hfsq = 0.5 * r * r;
    return (u * (hfsq + z * P) + kd * ln2_lo - hfsq + r + kd * ln2_hi) + (s - s);
}

/*
 * log1p(t) for t >= 0 (or NaN), vectorizable: the kernels' log of a row
 * sum written s = 1 + t, t the sum of every exp but one arg-max entry's.
 * u = 1 + t rounds; log1p(t) = log(u) + log(1 + d/u) with d = t - (u - 1)
 * the rounding's exact error (u - 1 is exact for 1 <= u < 2^53), and
 * log(1 + d/u) = d/u to within (d/u)^2 / 2 <= 2^-107.  So a tail below eps
 * is kept (t < 2^-53: u = 1, the result is t itself) and the relative error
 * stays that of cs_log1_d, <= 1.5 ulp (tests/test_exp.py).
 */
static inline double cs_log1p_d(double t)
{
    double u = 1.0 + t;
    return cs_log1_d(u) + (t - (u - 1.0)) / u;
}

#endif
