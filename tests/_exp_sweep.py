"""The exhaustive float32 exp sweep of tests/test_exp_exhaustive.py, run in a
subprocess per SIMD variant (``python tests/_exp_sweep.py``, with
``CYSOFTMAX_SIMD`` set): prints one JSON line with the worst error found.

Every float32 x from -0 down to -104 and from +0 up to 89 (where the
kernels' exp clamps: below, 0; above, +inf) is fed to the kernels' exp
(``_softmax.exp_array``, the C entry cs_exp_array_f of the active variant),
in chunks of 2**22 consecutive bit patterns.  The reference is float64
``np.exp`` of the same x (exact in float64): its error (< 1 float64 ulp,
checked against mpmath by the test) is below 2**-28 of a float32 ulp, so the
error measured here is the true one to within that.  The error is in units
of the spacing of the reference rounded to float32 (np.spacing: 2**-149 in
the subnormal range, so there it is the error in subnormal ulps, as the
underflow test of tests/test_exp.py measures it).  Where the rounded
reference overflows, ours must be +inf, and +inf nowhere else.

On [-87, 0] the normal-range exp (cs_exp_nr_array_f) must give the same
bits as the general one: counted in ``nr_mismatch``.
"""

import json
import sys

import numpy as np

CHUNK = 1 << 22
NR_LO = np.float32(-87.0)


def _bits(v):
    return int(np.array(v, dtype=np.float32).view(np.uint32))


def sweep():
    from cysoftmax import _softmax

    ranges = [(_bits(0.0), _bits(89.0) + 1), (_bits(-0.0), _bits(-104.0) + 1)]
    worst, worst_x, count, bad_inf, nr_mismatch = 0.0, 0.0, 0, 0, 0
    fmax = np.float64(np.finfo(np.float32).max)
    ours = np.empty(CHUNK, np.float32)
    nr = np.empty(CHUNK, np.float32)
    for lo, hi in ranges:
        for start in range(lo, hi, CHUNK):
            stop = min(start + CHUNK, hi)
            x = np.arange(start, stop, dtype=np.uint32).view(np.float32)
            k = x.shape[0]
            o = ours[:k]
            _softmax.exp_array(x, o)
            ref = np.exp(x.astype(np.float64))
            with np.errstate(over="ignore"):
                ref32 = ref.astype(np.float32)       # rounded (inf past FLT_MAX)
            over = np.isinf(ref32)
            oinf = np.isinf(o)
            bad_inf += int(np.count_nonzero(over != oinf))
            err = np.abs(o.astype(np.float64) - ref)
            err /= np.spacing(ref32).astype(np.float64)
            err[over] = 0.0                          # (checked above)
            i = int(np.argmax(err))
            if err[i] > worst:
                worst, worst_x = float(err[i]), float(x[i])
            count += k
            if x[0] <= 0 and x[-1] >= NR_LO:         # the negative sweep, on [-87, 0]
                sel = x >= NR_LO
                xs = np.ascontiguousarray(x[sel])
                _softmax.exp_array(xs, nr[:xs.shape[0]], normal_range=True)
                nr_mismatch += int(np.count_nonzero(
                    nr[:xs.shape[0]].view(np.uint32) != o[sel].view(np.uint32)))
    return {"variant": _softmax.simd_active(), "count": count, "max_ulp": worst,
            "worst_x": worst_x, "bad_inf": bad_inf, "nr_mismatch": nr_mismatch}


if __name__ == "__main__":
    print(json.dumps(sweep()))
    sys.stdout.flush()
