# Declarations of the C row kernels (_kernels/rows.h), for cimport by the Cython
# modules: the one place their C signatures are written down in Cython.
cdef extern from "rows.h" nogil:
    void cs_softmax_f(const float *z, Py_ssize_t ldz, float *out, Py_ssize_t ldo, Py_ssize_t n, Py_ssize_t m)
    void cs_softmax_d(const double *z, Py_ssize_t ldz, double *out, Py_ssize_t ldo, Py_ssize_t n, Py_ssize_t m)
    void cs_log_softmax_f(const float *z, Py_ssize_t ldz, float *out, Py_ssize_t ldo, Py_ssize_t n, Py_ssize_t m)
    void cs_log_softmax_d(const double *z, Py_ssize_t ldz, double *out, Py_ssize_t ldo, Py_ssize_t n, Py_ssize_t m)
    void cs_logsumexp_f(const float *z, Py_ssize_t ldz, float *out, Py_ssize_t n, Py_ssize_t m)
    void cs_logsumexp_d(const double *z, Py_ssize_t ldz, double *out, Py_ssize_t n, Py_ssize_t m)
    double cs_nll_f(const float *z, Py_ssize_t ldz, const Py_ssize_t *y, const double *w, double gmul,
                    float *loss, float *grad, Py_ssize_t ldg, Py_ssize_t n, Py_ssize_t m)
    double cs_nll_d(const double *z, Py_ssize_t ldz, const Py_ssize_t *y, const double *w, double gmul,
                    double *loss, double *grad, Py_ssize_t ldg, Py_ssize_t n, Py_ssize_t m)
    # grads.template.h: scaled logsumexp (mask NULL or nonzero where an entry
    # takes part; ldb / ldmask 0 for one row shared by all) and the backward
    # functions
    void cs_logsumexp_b_f(const float *z, Py_ssize_t ldz, const float *b, Py_ssize_t ldb,
                          const unsigned char *mask, Py_ssize_t ldmask, float *out, float *sign,
                          Py_ssize_t n, Py_ssize_t m)
    void cs_logsumexp_b_d(const double *z, Py_ssize_t ldz, const double *b, Py_ssize_t ldb,
                          const unsigned char *mask, Py_ssize_t ldmask, double *out, double *sign,
                          Py_ssize_t n, Py_ssize_t m)
    void cs_softmax_backward_f(const float *g, Py_ssize_t ldg, const float *p, Py_ssize_t ldp,
                               float *out, Py_ssize_t ldo, Py_ssize_t n, Py_ssize_t m)
    void cs_softmax_backward_d(const double *g, Py_ssize_t ldg, const double *p, Py_ssize_t ldp,
                               double *out, Py_ssize_t ldo, Py_ssize_t n, Py_ssize_t m)
    void cs_log_softmax_backward_f(const float *g, Py_ssize_t ldg, const float *lp, Py_ssize_t ldl,
                                   float *out, Py_ssize_t ldo, Py_ssize_t n, Py_ssize_t m)
    void cs_log_softmax_backward_d(const double *g, Py_ssize_t ldg, const double *lp,
                                   Py_ssize_t ldl, double *out, Py_ssize_t ldo, Py_ssize_t n,
                                   Py_ssize_t m)
    void cs_exp_array_f(const float *x, float *out, Py_ssize_t n)
    void cs_exp_array_d(const double *x, double *out, Py_ssize_t n)
    void cs_exp_nr_array_f(const float *x, float *out, Py_ssize_t n)
    void cs_exp_nr_array_d(const double *x, double *out, Py_ssize_t n)
    void cs_log1_array(const double *x, double *out, Py_ssize_t n)
    void cs_log1p_array(const double *x, double *out, Py_ssize_t n)
    int cs_labels_ok(const Py_ssize_t *y, Py_ssize_t n, Py_ssize_t m)
    int cs_simd_select(const char *name)
    const char *cs_simd_active()
    int cs_simd_compiled(const char *name)
    int cs_simd_supported(const char *name)
    int cs_openmp_enabled()
    int cs_max_threads()
    int cs_last_team_size()
    # the cross-entropy with options (nll_opts.template.h)
    double cs_nll_opts_f(const float *z, Py_ssize_t ldz, const Py_ssize_t *y, const float *q,
                         Py_ssize_t ldq, const float *cw, const double *w, Py_ssize_t ignore,
                         double smoothing, double gmul, float *loss, float *grad, Py_ssize_t ldg,
                         Py_ssize_t n, Py_ssize_t m)
    double cs_nll_opts_d(const double *z, Py_ssize_t ldz, const Py_ssize_t *y, const double *q,
                         Py_ssize_t ldq, const double *cw, const double *w, Py_ssize_t ignore,
                         double smoothing, double gmul, double *loss, double *grad,
                         Py_ssize_t ldg, Py_ssize_t n, Py_ssize_t m)
    double cs_nll_denom_f(const Py_ssize_t *y, const float *cw, const double *w, Py_ssize_t ignore,
                          Py_ssize_t n)
    double cs_nll_denom_d(const Py_ssize_t *y, const double *cw, const double *w, Py_ssize_t ignore,
                          Py_ssize_t n)

    # where= (masked.template.h): mask row i at mask + i * ldmask (0: one row for all)
    void cs_softmax_masked_f(const float *z, Py_ssize_t ldz, const unsigned char *mask, Py_ssize_t ldmask,
                             float *out, Py_ssize_t ldo, Py_ssize_t n, Py_ssize_t m)
    void cs_softmax_masked_d(const double *z, Py_ssize_t ldz, const unsigned char *mask, Py_ssize_t ldmask,
                             double *out, Py_ssize_t ldo, Py_ssize_t n, Py_ssize_t m)
    void cs_log_softmax_masked_f(const float *z, Py_ssize_t ldz, const unsigned char *mask, Py_ssize_t ldmask,
                                 float *out, Py_ssize_t ldo, Py_ssize_t n, Py_ssize_t m)
    void cs_log_softmax_masked_d(const double *z, Py_ssize_t ldz, const unsigned char *mask, Py_ssize_t ldmask,
                                 double *out, Py_ssize_t ldo, Py_ssize_t n, Py_ssize_t m)
    void cs_logsumexp_masked_f(const float *z, Py_ssize_t ldz, const unsigned char *mask, Py_ssize_t ldmask,
                               float *out, Py_ssize_t n, Py_ssize_t m)
    void cs_logsumexp_masked_d(const double *z, Py_ssize_t ldz, const unsigned char *mask, Py_ssize_t ldmask,
                               double *out, Py_ssize_t n, Py_ssize_t m)

    # sigmoid outputs (bce.template.h): binary cross-entropy from logits (w NULL:
    # unit weights; loss, grad may be NULL; grad may be z), sigmoid, log-sigmoid
    double cs_bce_f(const float *z, Py_ssize_t ldz, const float *t, Py_ssize_t ldt,
                    const double *w, double gmul, float *loss, float *grad, Py_ssize_t ldg,
                    Py_ssize_t n, Py_ssize_t m)
    double cs_bce_d(const double *z, Py_ssize_t ldz, const double *t, Py_ssize_t ldt,
                    const double *w, double gmul, double *loss, double *grad, Py_ssize_t ldg,
                    Py_ssize_t n, Py_ssize_t m)
    void cs_sigmoid_f(const float *z, Py_ssize_t ldz, float *out, Py_ssize_t ldo, Py_ssize_t n, Py_ssize_t m)
    void cs_sigmoid_d(const double *z, Py_ssize_t ldz, double *out, Py_ssize_t ldo, Py_ssize_t n, Py_ssize_t m)
    void cs_log_sigmoid_f(const float *z, Py_ssize_t ldz, float *out, Py_ssize_t ldo, Py_ssize_t n, Py_ssize_t m)
    void cs_log_sigmoid_d(const double *z, Py_ssize_t ldz, double *out, Py_ssize_t ldo, Py_ssize_t n, Py_ssize_t m)
