"""Coefficients of the exp polynomial in src/cysoftmax/_kernels/cs_exp.h.

exp(r) on |r| <= ln2/2 is computed as 1 + (r + r^2 q(r)).  This finds q, the
minimax (Remez exchange, mpmath at 60 digits) polynomial for
g(r) = (exp(r) - 1 - r) / r^2 on a slightly widened interval, prints its
coefficients as C hex literals (rounded to double, or to float) and the
resulting approximation error bound, in units of the result's ulp near 1:

    python tools/exp_minimax.py            # degree 9 (double), 4 (float)

The error of the kernels' exp as a whole (rounding included) is measured
against mpmath by tests/test_exp.py (<= 1.5 ulp is asserted).
"""
import argparse

import numpy as np
from mpmath import cos, exp, log, lu_solve, matrix, mp, mpf, pi

mp.dps = 60


def g(r):
    if abs(r) < mpf("1e-30"):
        return mpf(1) / 2
    return (exp(r) - 1 - r) / (r * r)


def remez(deg, a, iters=12, grid_points=4000):
    """Minimax polynomial of degree `deg` for g on [-a, a]: (coefficients, max error)."""
    n = deg + 2
    xs = sorted(a * cos(pi * (i + mpf(0.5)) / n) for i in range(n))
    grid = [-a + 2 * a * k / grid_points for k in range(grid_points + 1)]
    err = None
    for _ in range(iters):
        A, b = matrix(n, n), matrix(n, 1)
        for i, x in enumerate(xs):
            for j in range(deg + 1):
                A[i, j] = x ** j
            A[i, deg + 1] = (-1) ** i
            b[i] = g(x)
        sol = lu_solve(A, b)
        c = [sol[j] for j in range(deg + 1)]
        vals = [sum(c[j] * x ** j for j in range(deg + 1)) - g(x) for x in grid]
        ext = []
        for k, v in enumerate(vals):
            left = vals[k - 1] if k > 0 else None
            right = vals[k + 1] if k + 1 < len(vals) else None
            if (left is None or abs(v) >= abs(left)) and (right is None or abs(v) >= abs(right)):
                ext.append((grid[k], v))
        alt = []
        for x, v in ext:                       # alternating signs, largest of each run
            if alt and (v > 0) == (alt[-1][1] > 0):
                if abs(v) > abs(alt[-1][1]):
                    alt[-1] = (x, v)
            else:
                alt.append((x, v))
        while len(alt) > n:
            alt.pop(0 if abs(alt[0][1]) < abs(alt[-1][1]) else -1)
        if len(alt) < n:
            break
        xs = [x for x, _ in alt]
        err = max(abs(v) for _, v in alt)
    return c, err


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--double-degree", type=int, default=9)
    ap.add_argument("--float-degree", type=int, default=4)
    args = ap.parse_args()
    a = log(2) / 2 * mpf("1.0001")
    for name, deg, eps, cast in [("double", args.double_degree, mpf(2) ** -53, float),
                                 ("float", args.float_degree, mpf(2) ** -24,
                                  lambda v: float(np.float32(float(v))))]:
        c, err = remez(deg, a)
        # error of 1 + r + r^2 q relative to exp(r) >= exp(-a)
        rel = err * a * a / exp(-a)
        print(f"{name}: degree {deg}, approximation error {mp.nstr(rel / eps, 3)} ulp")
        for v in reversed(c):
            print("   ", cast(v).hex())


if __name__ == "__main__":
    main()
