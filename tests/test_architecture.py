"""The layout's rules, and the small objects the estimator delegates to.

* The learning-rate schedule and the plateau rule (``_schedule``) against
  scikit-learn's own ``SGDOptimizer`` / ``AdamOptimizer`` and
  ``MLPClassifier._update_no_improvement_count`` (an independent reference:
  the rules we promise to match).
* The one-way import flow of DESIGN.md: no module imports one above it.
* One activation table: every Python-level list of activation names is the
  compiled engine's.
* One network validator: `forward`/`backprop`, the compiled trainer and the
  ``.npz`` loader all refuse a broken network through
  ``_validation.check_network`` (breaking it breaks all three).
"""

import ast
import inspect
import io
import pathlib
import re
import types

import numpy as np
import pytest

import _requires
from sklearn.neural_network import MLPClassifier
from sklearn.neural_network._stochastic_optimizers import AdamOptimizer, SGDOptimizer

import cysoftmax
from cysoftmax import _engine, _network_api, _persistence, _validation, classifier
from cysoftmax._schedule import LearningRateSchedule, plateau_update

SRC = pathlib.Path(cysoftmax.__file__).resolve().parent
# The .pyx and .pxd sources are not installed: read them from the checkout
# next to the tests (CI tests an installed, non-editable package), and the
# generated .py files (_version.py) from the installed package.
TREE = pathlib.Path(__file__).resolve().parents[1] / "src" / "cysoftmax"
if not TREE.is_dir():
    # an installed package alone: its .py files only (no .pyx/.pxd checks),
    # or a failure where CYSOFTMAX_REQUIRE says the checkout is there
    if "checkout" in _requires.REQUIRED:
        _requires.missing("checkout", f"{TREE} is not next to the tests", module_level=True)
    TREE = SRC


# ------------------------------------------------------------ learning rate
def _sklearn_optimizer(solver, schedule, lr, power_t):
    params = [np.zeros(1)]
    if solver == "sgd":
        return SGDOptimizer(params, lr, schedule, momentum=0.0, power_t=power_t)
    return AdamOptimizer(params, lr)


@pytest.mark.parametrize("solver,schedule", [
    ("sgd", "constant"), ("sgd", "invscaling"), ("sgd", "adaptive"),
    ("adam", "constant"), ("adam", "invscaling"), ("adam", "adaptive")])
def test_schedule_matches_sklearn_optimizers(solver, schedule):
    """Rates and stop decisions over a run of epochs with plateaus, bit for bit."""
    lr, power_t = 0.05, 0.37
    ours = LearningRateSchedule(solver, schedule, lr, power_t)
    ref = _sklearn_optimizer(solver, schedule, lr, power_t)
    t = 0
    rng = np.random.default_rng(0)
    for epoch in range(40):
        assert ours.epoch_rate == ref.learning_rate, epoch
        t += int(rng.integers(1, 500))
        ours.iteration_ends(t)
        ref.iteration_ends(t)
        if epoch % 3 == 2:          # a plateau every third epoch
            stop, ref_stop = ours.trigger_stopping("m", False), ref.trigger_stopping("m", False)
            assert stop == ref_stop, epoch
            if stop:
                break
    else:
        assert solver == "sgd" and schedule == "adaptive"
    if solver == "sgd" and schedule == "adaptive":
        # it ran down to the floor (1e-6) and then stopped, as scikit-learn
        assert ours.rate <= 1e-6 and ours.trigger_stopping("m", False)


def test_schedule_carries_rate_and_reads_current_init():
    """A scheduled rate lives on across calls; an unscheduled one is the current
    learning_rate_init (set_params between partial_fit calls takes effect)."""
    s = LearningRateSchedule("sgd", "invscaling", 0.1, 0.5, rate=0.0123)
    assert s.epoch_rate == 0.0123
    s = LearningRateSchedule("sgd", "constant", 0.1, 0.5, rate=0.0123)
    assert s.epoch_rate == 0.1
    s = LearningRateSchedule("adam", "invscaling", 0.002, 0.5, rate=0.5)
    assert s.epoch_rate == 0.002


def test_trigger_stopping_verbose_messages(capsys):
    s = LearningRateSchedule("sgd", "adaptive", 0.01, 0.5)
    assert not s.trigger_stopping("plateau.", True)
    assert capsys.readouterr().out == "plateau. Setting learning rate to 0.002000\n"
    s = LearningRateSchedule("adam", "constant", 0.01, 0.5)
    assert s.trigger_stopping("plateau.", True)
    assert capsys.readouterr().out == "plateau. Stopping.\n"


def _sklearn_count(values, tol, early):
    """MLPClassifier's own rule, run on a sequence of losses or scores."""
    est = MLPClassifier(tol=tol)
    est._no_improvement_count = 0
    est.best_loss_ = np.inf
    est.best_validation_score_ = -np.inf
    est.loss_curve_, est.validation_scores_ = [], []
    est.coefs_, est.intercepts_ = [np.zeros(1)], [np.zeros(1)]
    counts = []
    n_args = len(inspect.signature(est._update_no_improvement_count).parameters)
    for v in values:
        if early:
            est._score = types.MethodType(lambda self, X, y, sample_weight=None, v=v: v, est)
        else:
            est.loss_curve_.append(v)
        # scikit-learn < 1.7 has no sample_weight argument
        est._update_no_improvement_count(early, *[None] * (n_args - 1))
        counts.append((est._no_improvement_count,
                       est.best_validation_score_ if early else est.best_loss_))
    return counts


@pytest.mark.parametrize("early", [False, True])
def test_plateau_update_matches_mlpclassifier(early):
    rng = np.random.default_rng(1)
    # small steps around tol, ties, improvements and setbacks
    values = np.cumsum(rng.choice([-2e-4, -5e-5, 0.0, 5e-5, 2e-4], size=200))
    values = (1.0 + values).tolist()
    tol = 1e-4
    count, best, got = 0, (-np.inf if early else np.inf), []
    for v in values:
        count, improved = plateau_update(count, best, v, tol, maximize=early)
        if improved:
            best = v
        got.append((count, best))
    assert got == _sklearn_count(values, tol, early)


def test_plateau_rule_is_used_by_the_estimator(monkeypatch):
    """Breaking the rule breaks training's stopping: the estimator goes through it."""
    from cysoftmax.datasets import load_fashion_mnist_sample
    X, y = load_fashion_mnist_sample("train")
    X, y = X[:600], y[:600]
    kw = dict(hidden_layer_sizes=(8,), max_iter=50, random_state=0, tol=1e9,
              n_iter_no_change=2)
    # epoch 1 sets the best loss; epochs 2-4 count 1, 2, 3 > n_iter_no_change
    assert cysoftmax.Classifier(**kw).fit(X, y).n_iter_ == 4
    monkeypatch.setattr(classifier, "plateau_update", lambda count, best, v, tol, maximize:
                        (0, True))
    with pytest.warns(Warning, match="Maximum iterations"):
        assert cysoftmax.Classifier(**kw).fit(X, y).n_iter_ == 50


# ------------------------------------------------------------------ layering
# DESIGN.md's flow, lowest first: a module may import (or cimport) only
# modules of a lower rank (checks and C declarations -> row kernels and BLAS
# -> engine parts -> engine -> public functions / estimator parts ->
# estimator -> package).  The .pxd files of the engine parts count as
# modules.
RANKS = {
    "_version": 0, "_validation": 1, "_kernels": 1,
    "_softmax": 2, "_blas": 2,
    "_layers": 3, "_optim": 3, "_batches": 3, "_output": 3,
    "_engine": 4,
    "_api": 5, "_network_api": 5,
    "_mmap": 6, "_schedule": 6, "_trainer": 7, "_inputs": 7, "_lbfgs": 7,
    "_persistence": 8, "_callbacks": 8, "classifier": 9, "datasets": 9, "__init__": 10,
}
SOURCES = sorted({p.name: p for p in [*SRC.glob("*.py"), *TREE.glob("*.py"),
                                      *TREE.glob("*.pyx"), *TREE.glob("*.pxd")]}.values())
assert any(p.suffix == ".pxd" for p in SOURCES) or TREE is SRC, "no .pxd sources found"


def _imports(path):
    """cysoftmax modules a .py, .pyx or .pxd file (c)imports (relative or absolute)."""
    text = path.read_text()
    names = set()
    if path.suffix == ".py":
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom):
                if node.level == 1 and node.module is None:
                    names.update(a.name for a in node.names)
                elif node.level == 1:
                    names.add(node.module.split(".")[0])
                elif node.module and node.module.startswith("cysoftmax."):
                    names.add(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                names.update(a.name.split(".")[1] for a in node.names
                             if a.name.startswith("cysoftmax."))
    else:
        for m in re.finditer(r"^\s*from\s+\.(\w*)\s+c?import\s+(\w+)", text, re.M):
            names.add(m.group(1) or m.group(2))
    return names


def test_every_module_has_a_rank():
    modules = {p.stem for p in SOURCES}
    assert modules <= set(RANKS), f"give these a place in the layers: {modules - set(RANKS)}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_no_module_imports_one_above_it(path):
    me = RANKS[path.stem]
    up = {m for m in _imports(path) if m in RANKS and RANKS[m] >= me and m != path.stem}
    assert not up, f"{path.name} (rank {me}) imports {sorted(up)}: not below it"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_every_module_says_what_it_owns(path):
    text = path.read_text()
    if path.suffix == ".py":
        doc = ast.get_docstring(ast.parse(text))
    elif path.suffix == ".pyx":
        doc = text.split('"""')[1] if text.lstrip().startswith(('"""', "#")) and '"""' in text \
            else None
    else:       # a .pxd: its leading comment block
        lines = text.splitlines()
        doc = " ".join(ln.lstrip("# ") for ln in lines[:next(
            (i for i, ln in enumerate(lines) if not ln.startswith("#")), len(lines))])
    assert doc and len(doc.split()) >= 12, f"{path.name} needs a docstring of what it owns"


@pytest.mark.parametrize("path", [p for p in SOURCES if p.suffix == ".pxd"],
                         ids=lambda p: p.name)
def test_pxd_helpers_compile_with_the_engine_directives(path):
    """Compiler directives of a .pyx do not reach the inline functions of the
    .pxd files it cimports: a .pxd with code sets them itself.  Without
    ``cdivision=True`` a division carries a ZeroDivisionError path, and the
    loop around it (the Adam update, the logistic activation) no longer
    vectorizes: Adam epochs were 1.3x slower when it was missing."""
    text = path.read_text()
    if "cdef inline" not in text:
        return
    first = text.splitlines()[0].replace(" ", "")
    assert first.startswith("#cython:"), f"{path.name} must open with a '# cython:' directive line"
    assert "cdivision=True" in first and "boundscheck=False" in first, first


def test_one_activation_table():
    """The estimator's constraint and forward/backprop's check use the engine's table."""
    names = set(_engine.ACTIVATIONS)
    assert set(_network_api._ACTIVATIONS) == names
    constraint = classifier.Classifier._parameter_constraints["activation"][0]
    assert set(constraint.options) == names


# ------------------------------------------------------- one network check
def _tiny_net():
    rng = np.random.default_rng(0)
    coefs = [rng.standard_normal((3, 4)), rng.standard_normal((4, 2))]
    return rng.standard_normal((5, 3)), coefs, [np.zeros(4), np.zeros(2)]


def test_one_network_validator(monkeypatch):
    """The public functions, the trainer and the loader all go through
    ``check_network``: a sentinel planted in it reaches all three."""
    X, coefs, intercepts = _tiny_net()
    buf = io.BytesIO()
    cysoftmax.Classifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(
        X, [0, 1, 0, 1, 1]).save(buf)

    class Sentinel(ValueError):
        pass

    def planted(*args, **kwargs):
        raise Sentinel("planted")

    for mod in (_validation, _engine, _network_api, _persistence):
        if hasattr(mod, "check_network"):
            monkeypatch.setattr(mod, "check_network", planted)
    calls = {
        "forward": lambda: cysoftmax.forward(X, coefs, intercepts),
        "backprop": lambda: cysoftmax.backprop(X, [0, 1, 0, 1, 1], coefs, intercepts),
        "Trainer": lambda: _engine.Trainer(coefs, intercepts, 4),
    }
    for name, call in calls.items():
        with pytest.raises(Sentinel):
            call()
    buf.seek(0)
    with pytest.raises(ValueError, match="planted"):
        cysoftmax.load(buf)


@pytest.mark.parametrize("convert", [True, False])
def test_check_network_refuses_what_breaks_the_engine(convert):
    """Each defect raises the documented exception and names the array."""
    X, coefs, intercepts = _tiny_net()
    ok = _validation.check_network(coefs, intercepts, convert=convert, min_classes=2)
    assert [a is b for a, b in zip(ok[0] + ok[1], coefs + intercepts)] == [True] * 4
    W0, W1 = coefs
    b0, b1 = intercepts
    cases = [
        ([W0], [b0, b1], ValueError, "coefs has 1 layers but intercepts has 2"),
        ([W0, W1[:3]], [b0, b1], ValueError,
         r"coefs\[1\] has 3 rows but coefs\[0\] columns is 4"),
        ([W0, W1], [b0[:3], b1], ValueError,
         r"intercepts\[0\] has 3 entries but coefs\[0\] has 4 columns"),
        ([W0, W1[:, :1].copy()], [b0, b1[:1]], ValueError, "needs at least 2 classes"),
        ([W0[:0]], [b0], ValueError, r"coefs\[0\] has no rows"),
        ([W0, W1.astype(np.float32)], [b0, b1], TypeError,
         r"float32 for coefs\[1\]" if convert else r"coefs\[1\] has dtype float32"),
    ]
    if not convert:
        cases.append(([W0, W1[:, ::-1]], [b0, b1], ValueError,
                      r"coefs\[1\] must be C-contiguous"))
    for c, b, exc, match in cases:
        with pytest.raises(exc, match=match):
            _validation.check_network(c, b, convert=convert, min_classes=2,
                                      dtype=None if convert else np.float64)
    if convert:     # a strided view is copied, C-contiguous
        got = _validation.check_network([W0, W1[:, ::-1]], [b0, b1])[0][1]
        assert got.flags.c_contiguous and np.array_equal(got, W1[:, ::-1])
    bad = [coefs[0].copy(), coefs[1]]
    bad[0][1, 2] = np.nan
    with pytest.raises(ValueError, match=r"coefs\[0\] holds non-finite"):
        _validation.check_network(bad, intercepts, finite=True, convert=convert)
    if not convert:
        ro = [coefs[0].copy(), coefs[1]]
        ro[0].flags.writeable = False
        with pytest.raises(ValueError, match=r"coefs\[0\] is read-only"):
            _validation.check_network(ro, intercepts, convert=False, writeable=True)
        with pytest.raises(TypeError, match=r"intercepts\[1\] must be a numpy array"):
            _validation.check_network(coefs, [intercepts[0], [0.0, 0.0]], convert=False)


def test_one_choice_validator():
    """activation, solver, output and reduction are checked by one rule:
    a non-string is a TypeError, an unknown string a ValueError."""
    X, coefs, intercepts = _tiny_net()
    out = np.empty((5, 2))
    for call in (lambda v: cysoftmax.forward(X, coefs, intercepts, activation=v),
                 lambda v: _engine.Trainer(coefs, intercepts, 4, v),
                 lambda v: _engine.Trainer(coefs, intercepts, 4, "relu", v),
                 lambda v: _engine.forward_into(X, coefs, intercepts, "relu", out, v),
                 lambda v: cysoftmax.nll_loss(X, [0] * 5, reduction=v)):
        with pytest.raises(ValueError, match="must be one of"):
            call("nonesuch")
        with pytest.raises(TypeError, match="must be one of"):
            call(3)


def test_one_weight_rescaling():
    """Huge and subnormal weights give the same loss as weights near one,
    through nll_loss and backprop alike (the power-of-two rescaling)."""
    X, coefs, intercepts = _tiny_net()
    y = [0, 1, 0, 1, 1]
    w = np.array([1.0, 2.0, 0.5, 3.0, 1.5])
    z = X[:, :2]
    ref = cysoftmax.nll_loss(z, y, sample_weight=w)
    # backprop: weights and alpha scaled alike leave the loss unchanged (alpha a power of
    # two, so alpha * s is exact even where it is subnormal)
    ref_b = cysoftmax.backprop(X, y, coefs, intercepts, sample_weight=w, alpha=0.125)
    for s in (2.0 ** 1000, 2.0 ** -1060):
        assert cysoftmax.nll_loss(z, y, sample_weight=w * s) == ref
        got = cysoftmax.backprop(X, y, coefs, intercepts, sample_weight=w * s, alpha=0.125 * s)
        assert got[0] == ref_b[0]
        assert all(np.array_equal(g, r) for g, r in zip(got[1], ref_b[1]))
    assert _validation.rescale_weights(w * 2.0 ** 1000, 0.1)[1] == 0.1 * 2.0 ** -1002


# -------------------------------------------------------------- persistence
def test_loader_bounds_n_layers_with_a_true_message():
    """n_layers beyond the bound is refused before anything is read, and the
    message says the range (it used to say 'must be >= 1')."""
    from cysoftmax.datasets import load_fashion_mnist_sample
    X, y = load_fashion_mnist_sample("train")
    clf = cysoftmax.Classifier(hidden_layer_sizes=(4,), max_iter=1, random_state=0)
    with pytest.warns(Warning):
        clf.fit(X[:300], y[:300])
    buf = io.BytesIO()
    clf.save(buf)
    buf.seek(0)
    members = dict(np.load(buf, allow_pickle=False))
    for bad in (0, _persistence.MAX_LAYERS + 1, 10 ** 12):
        members["n_layers"] = np.array(bad)
        out = io.BytesIO()
        np.savez(out, **members)
        out.seek(0)
        with pytest.raises(ValueError, match=rf"n_layers must be in \[1, "
                                             rf"{_persistence.MAX_LAYERS}\]; got {bad}"):
            cysoftmax.load(out)
