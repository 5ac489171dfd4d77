"""scikit-learn's callback API on the Classifier (``sklearn.callback``, scikit-learn >= 1.9).

Each call of fit is a task whose direct subtasks are its epochs
(``src/cysoftmax/_callbacks.py``).  Checked here: the hooks' order, task
tree and arguments; ProgressBar renders; a callback stops training after
the epoch it asks to (the same weights as a fit of that many epochs, no
ConvergenceWarning); ScoringMonitor's score of each epoch is the score of
a fit of that many epochs; clone, get_params and pickle with callbacks set;
a callback that raises leaves the estimator as it was and the callbacks
torn down; and, on scikit-learn without the API (1.6-1.8, simulated in a
subprocess), the estimator imports and trains without it.

These tests need scikit-learn >= 1.9 (``sklearn-callback``) and, for the
progress bar, ``rich``: asked through ``_requires``, so CI fails instead of
skipping them.
"""

import os
import pickle
import re
import subprocess
import sys
import textwrap
import threading
import warnings

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, SkipTestWarning
from sklearn.metrics import accuracy_score

import _requires
from cysoftmax import Classifier, _callbacks

try:
    import sklearn.callback as skcb
except ImportError:             # scikit-learn < 1.9
    skcb = None

needs_api = _requires.skip_unless(
    "sklearn-callback", skcb is not None,
    "sklearn.callback cannot be imported (scikit-learn < 1.9)")


def _has_rich():
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


needs_rich = _requires.skip_unless("rich", _has_rich(), "import rich failed")


def data(n=240, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 6))
    score = X[:, 0] + 0.5 * X[:, 1] - X[:, 2]
    y = np.array(["ant", "bee", "cat"])[np.digitize(score, [-0.7, 0.7])]
    return X, y


def model(**kw):
    return Classifier(**{"hidden_layer_sizes": (8,), "batch_size": 32, "random_state": 0,
                         "max_iter": 6, **kw})


def fit_quietly(est, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(*args, **kwargs)


class Recorder:
    """A FitCallback recording its hooks; `stop_after` epochs, then asks to stop."""

    def __init__(self, stop_after=None, fail_at_epoch=None):
        self.stop_after = stop_after
        self.fail_at_epoch = fail_at_epoch
        self.events = []
        self.fitted = []        # each epoch's fitted_estimator
        self.last = None        # the arguments of the last on_fit_task_end

    def __getstate__(self):
        # as scikit-learn's RecordingCallback: a pickled estimator does not
        # carry the record (the contexts, every epoch's fitted copy)
        return {**self.__dict__, "events": [], "fitted": [], "last": None}

    def setup(self, estimator, context):
        self.events.append(("setup", context.task_name, None))

    def on_fit_task_begin(self, estimator, context, *, X=None, y=None, metadata=None):
        self.events.append(("begin", context.task_name, context))

    def on_fit_task_end(self, estimator, context, *, X=None, y=None, metadata=None,
                        fitted_estimator=None):
        self.events.append(("end", context.task_name, context))
        self.last = {"X": X, "y": y, "metadata": metadata, "fitted": fitted_estimator}
        if context.task_name != "epoch":
            return False
        if self.fail_at_epoch is not None and context.task_id + 1 == self.fail_at_epoch:
            raise RuntimeError("callback failed on purpose")
        self.fitted.append(fitted_estimator)
        return self.stop_after is not None and context.task_id + 1 >= self.stop_after

    def teardown(self, estimator, context):
        self.events.append(("teardown", context.task_name, None))

    def names(self):
        return [(e, t) for e, t, _ in self.events]


# ---------------------------------------------------------------- the protocol
@needs_api
def test_the_estimator_supports_the_api():
    assert _callbacks.AVAILABLE
    assert issubclass(Classifier, skcb.CallbackSupportMixin)
    assert isinstance(Recorder(), skcb.FitCallback)


@needs_api
def test_hooks_order_and_task_tree():
    X, y = data()
    rec = Recorder()
    est = fit_quietly(model(max_iter=4).set_callbacks(rec), X, y)
    assert est.n_iter_ == 4
    assert rec.names() == ([("setup", "fit"), ("begin", "fit")]
                           + [("begin", "epoch"), ("end", "epoch")] * 4
                           + [("end", "fit"), ("teardown", "fit")])
    root = rec.events[1][2]
    assert root.parent is None and root.max_subtasks == 4
    epochs = [c for e, t, c in rec.events if e == "end" and t == "epoch"]
    assert [c.task_id for c in epochs] == [0, 1, 2, 3]
    assert all(c.parent is root and c.max_subtasks == 0 for c in epochs)
    # the API's own attributes are gone after the call (its teardown ran)
    assert not hasattr(est, "_callback_fit_ctx")
    assert not hasattr(est, "_skl_callbacks_to_teardown")


@needs_api
def test_hooks_receive_the_training_data_and_labels():
    X, y = data()
    w = np.linspace(0.5, 1.5, X.shape[0])
    rec = Recorder()
    fit_quietly(model(max_iter=2).set_callbacks(rec), X, y, sample_weight=w)
    assert_array_equal(rec.last["X"], X)
    assert_array_equal(rec.last["y"], y)          # the labels as given, not their codes
    assert_array_equal(rec.last["metadata"]["sample_weight"], w)


@needs_api
def test_each_epochs_fitted_estimator_predicts_with_that_epochs_weights():
    X, y = data()
    rec = Recorder()
    est = fit_quietly(model(max_iter=4).set_callbacks(rec), X, y)
    assert len(rec.fitted) == 4
    for k, fitted in enumerate(rec.fitted, start=1):
        ref = fit_quietly(model(max_iter=k), X, y)
        assert fitted is not est
        for a, b in zip(fitted.coefs_ + fitted.intercepts_, ref.coefs_ + ref.intercepts_):
            assert_array_equal(a, b)        # later epochs did not change it
        assert fitted.loss_curve_ == ref.loss_curve_
        assert_array_equal(fitted.predict_proba(X), ref.predict_proba(X))


# ---------------------------------------------------------------- stopping
@needs_api
@pytest.mark.parametrize("k, max_iter", [(1, 6), (3, 6), (6, 6)])
def test_a_callback_stops_training_after_its_epoch(k, max_iter):
    X, y = data()
    rec = Recorder(stop_after=k)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)   # asked to stop: no warning
        est = model(max_iter=max_iter).set_callbacks(rec).fit(X, y)
    assert est.n_iter_ == k
    assert len(est.loss_curve_) == k
    assert rec.names().count(("end", "epoch")) == k
    assert rec.names()[-2:] == [("end", "fit"), ("teardown", "fit")]
    ref = fit_quietly(model(max_iter=k), X, y)      # the same as a fit of k epochs
    for a, b in zip(est.coefs_ + est.intercepts_, ref.coefs_ + ref.intercepts_):
        assert_array_equal(a, b)


@needs_api
def test_a_stop_with_early_stopping_keeps_the_best_epoch():
    X, y = data(400)
    rec = Recorder(stop_after=5)
    est = model(max_iter=50, early_stopping=True, n_iter_no_change=100).set_callbacks(rec)
    est.fit(X, y)
    assert est.n_iter_ == 5 and len(est.validation_scores_) == 5
    assert est.best_validation_score_ == max(est.validation_scores_)


@needs_api
def test_partial_fit_is_one_task_of_one_epoch_per_call():
    X, y = data()
    rec = Recorder(stop_after=1)       # a stop request: the call trains its epoch anyway
    est = model().set_callbacks(rec)
    est.partial_fit(X, y, classes=np.unique(y))
    est.partial_fit(X, y)
    assert est.n_iter_ == 2
    one_call = [("setup", "fit"), ("begin", "fit"), ("begin", "epoch"), ("end", "epoch"),
                ("end", "fit"), ("teardown", "fit")]
    assert rec.names() == one_call * 2
    roots = [c for e, t, c in rec.events if e == "begin" and t == "fit"]
    assert [r.max_subtasks for r in roots] == [1, 1]
    assert roots[0].root_uuid != roots[1].root_uuid


# ---------------------------------------------------------------- failures
@needs_api
def test_a_failing_callback_leaves_the_estimator_as_it_was():
    X, y = data()
    rec = Recorder(fail_at_epoch=2)
    est = model().set_callbacks(rec)
    with pytest.raises(RuntimeError, match="on purpose"):
        est.fit(X, y)
    assert not hasattr(est, "coefs_")                  # all or nothing: still unfitted
    assert est._skl_callbacks == [rec] and est._skl_callbacks[0] is rec   # not a copy
    assert rec.names()[-1] == ("teardown", "fit")      # torn down all the same
    assert not hasattr(est, "_callback_fit_ctx")
    # and a fitted estimator keeps its fit
    est = fit_quietly(model(max_iter=2), X, y).set_callbacks(rec)
    before = [c.copy() for c in est.coefs_]
    rec.events.clear()
    with pytest.raises(RuntimeError):
        est.fit(X, y)
    assert est.n_iter_ == 2
    for a, b in zip(est.coefs_, before):
        assert_array_equal(a, b)
    assert est._skl_callbacks[0] is rec and rec.names()[-1] == ("teardown", "fit")


@needs_api
@needs_rich
def test_a_diverging_fit_with_a_progress_bar_tears_it_down(capsys):
    from sklearn.callback import _progressbar

    X, y = data()
    est = model(hidden_layer_sizes=(16,), solver="sgd", learning_rate_init=1e6)
    est.set_callbacks(skcb.ProgressBar())
    with pytest.raises(ValueError, match="diverged"):
        est.fit(X * 255, y)
    # the teardown ran: the progress bar's monitor thread was joined (a
    # non-daemon thread: left waiting, the process would hang at exit)
    assert not _progressbar._run_monitors
    assert not any(isinstance(t, _progressbar.RichProgressMonitor)
                   for t in threading.enumerate())
    assert not hasattr(est, "coefs_") and not hasattr(est, "_callback_fit_ctx")


# ---------------------------------------------------------------- ProgressBar
@needs_api
@needs_rich
def test_progress_bar(capsys):
    X, y = data()
    est = fit_quietly(model(max_iter=5).set_callbacks(skcb.ProgressBar()), X, y)
    assert est.n_iter_ == 5 and est.predict(X).shape == y.shape
    out = capsys.readouterr().out
    assert re.search(r"Classifier - fit", out), out
    assert re.search(r"100%", out), out


@needs_api
@needs_rich
def test_progress_bar_partial_fit_and_stop(capsys):
    X, y = data()
    est = model(max_iter=50).set_callbacks(skcb.ProgressBar(), Recorder(stop_after=2))
    est.fit(X, y)
    assert est.n_iter_ == 2
    est.partial_fit(X, y)
    assert est.n_iter_ == 3
    assert capsys.readouterr().out.count("Classifier - fit") >= 2


# ---------------------------------------------------------------- ScoringMonitor
@needs_api
def test_scoring_monitor_scores_every_epoch():
    X, y = data()
    sm = skcb.ScoringMonitor(scoring="accuracy")
    est = fit_quietly(model(max_iter=5).set_callbacks(sm), X, y)
    rows = sm.get_logs().data
    epochs = [r for r in rows if r["task_name"] == "epoch"]
    assert [r["task_id_path"] for r in epochs] == [(0, k) for k in range(5)]
    for k, row in enumerate(epochs, start=1):
        ref = fit_quietly(model(max_iter=k), X, y)
        assert row["accuracy"] == pytest.approx(accuracy_score(y, ref.predict(X)))
    (fit_row,) = [r for r in rows if r["task_name"] == "fit"]
    assert fit_row["accuracy"] == pytest.approx(est.score(X, y))


@needs_api
def test_scoring_monitor_uses_the_sample_weights_and_stops():
    X, y = data()
    w = np.where(y == "ant", 3.0, 0.5)
    sm = skcb.ScoringMonitor(scoring="accuracy")
    est = model(max_iter=50).set_callbacks(sm, Recorder(stop_after=3)).fit(X, y,
                                                                           sample_weight=w)
    epochs = [r for r in sm.get_logs().data if r["task_name"] == "epoch"]
    assert len(epochs) == est.n_iter_ == 3
    assert epochs[-1]["accuracy"] == pytest.approx(
        accuracy_score(y, est.predict(X), sample_weight=w))


# ---------------------------------------------------------------- inside meta-estimators
class AutoRecorder(Recorder):
    """An auto-propagated Recorder: set on a meta-estimator, it reaches the Classifier."""

    max_propagation_depth = None


@needs_api
def test_a_pipeline_propagates_its_callbacks_to_the_epochs():
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = data()
    rec = AutoRecorder()
    pipe = Pipeline([("sc", StandardScaler()), ("clf", model(max_iter=3))])
    fit_quietly(pipe.set_callbacks(rec), X, y)
    epochs = [c for e, t, c in rec.events if e == "end" and t == "epoch"]
    assert len(epochs) == 3
    # the Classifier's fit task took the place of the pipeline's step task
    fit_task = epochs[0].parent
    assert all(c.parent is fit_task for c in epochs)
    assert fit_task.estimator_name == "Classifier" and fit_task.source_estimator_name == "Pipeline"
    assert fit_task.parent.parent is None                  # the pipeline's root
    assert rec.names().count(("setup", "fit")) == 1 and rec.names()[-1] == ("teardown", "fit")
    assert not hasattr(pipe.named_steps["clf"], "_skl_callbacks")   # propagated, then removed


@needs_api
@needs_rich
def test_grid_search_with_a_progress_bar(capsys):
    from sklearn.model_selection import GridSearchCV

    X, y = data()
    search = GridSearchCV(model(max_iter=3), {"alpha": [1e-4, 1e-2]}, cv=2)
    fit_quietly(search.set_callbacks(skcb.ProgressBar(max_propagation_depth=None)), X, y)
    assert search.best_estimator_.n_iter_ == 3
    out = capsys.readouterr().out
    assert "GridSearchCV - fit" in out and "Classifier - fit" in out, out


# ---------------------------------------------------------------- estimator API
@needs_api
def test_clone_get_params_and_pickle_with_callbacks():
    X, y = data()
    sm = skcb.ScoringMonitor(scoring="accuracy")
    est = model(max_iter=3).set_callbacks(sm)
    assert "callbacks" not in est.get_params() and "_skl_callbacks" not in est.get_params()
    assert clone(est)._skl_callbacks[0] is sm        # shared, as scikit-learn does
    restored = pickle.loads(pickle.dumps(est))
    assert len(restored._skl_callbacks) == 1
    fit_quietly(est, X, y)
    assert clone(est)._skl_callbacks[0] is sm and not hasattr(clone(est), "coefs_")
    restored = pickle.loads(pickle.dumps(est))
    assert len(restored._skl_callbacks) == 1
    assert_array_equal(restored.predict(X), est.predict(X))
    fit_quietly(restored, X, y)                          # and trains again
    assert restored.n_iter_ == 3
    assert est.set_callbacks() is est and not hasattr(est, "_skl_callbacks")


@needs_api
def test_sklearn_estimator_checks_with_a_callback_set():
    """scikit-learn's estimator checks (as in test_classifier.py) with a
    ScoringMonitor set: it is cloned along, pickled along, and scores
    every epoch of every fit the checks make."""
    from sklearn.utils.estimator_checks import check_estimator

    sm = skcb.ScoringMonitor(scoring="accuracy")
    est = Classifier(hidden_layer_sizes=(16,), learning_rate_init=0.01, max_iter=100,
                     random_state=0).set_callbacks(sm)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", SkipTestWarning)     # array API: not ours
        results = check_estimator(est, on_fail=None)
    failed = [(r["check_name"], r["exception"]) for r in results if r["status"] == "failed"]
    assert not failed
    assert len(sm.get_logs(select="all")) > 10


@needs_api
def test_set_callbacks_refuses_what_is_not_a_callback():
    with pytest.raises(TypeError, match="FitCallback"):
        model().set_callbacks(object())


@needs_api
def test_no_callbacks_is_the_same_fit():
    X, y = data()
    a = fit_quietly(model(), X, y)
    b = fit_quietly(model().set_callbacks(Recorder()), X, y)
    for u, v in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        assert_array_equal(u, v)


# ---------------------------------------------------------------- without the API
FALLBACK = textwrap.dedent("""
    import importlib, pickle, sys, warnings
    import numpy as np
    from sklearn.base import clone
    import cysoftmax.classifier
    # scikit-learn >= 1.9 imports sklearn.callback itself (its _fit_context,
    # its estimators): with everything imported, hide sklearn.callback from
    # every later import, as on scikit-learn 1.6-1.8, and import the
    # estimator's module again (a new Classifier class, on the stand-in)
    sys.modules["sklearn.callback"] = None
    _callbacks = importlib.reload(cysoftmax._callbacks)
    Classifier = importlib.reload(cysoftmax.classifier).Classifier
    assert not _callbacks.AVAILABLE
    assert not hasattr(Classifier(), "set_callbacks")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 4)); y = (X[:, 0] > 0).astype(int)
    warnings.simplefilter("ignore")
    est = Classifier(hidden_layer_sizes=(5,), max_iter=3, random_state=0).fit(X, y)
    assert est.n_iter_ == 3
    est.partial_fit(X, y)
    assert est.n_iter_ == 4
    assert (pickle.loads(pickle.dumps(est)).predict(X) == est.predict(X)).all()
    assert not hasattr(clone(est), "coefs_")
    bad = Classifier(max_iter=5)
    try:
        bad.fit(X, y, sample_weight=np.zeros(len(y)))     # refused inside the call
    except ValueError:
        assert set(vars(bad)) == set(bad.get_params())      # left unfitted
    else:
        raise AssertionError("expected a ValueError")
    print("fallback ok")
""")


def test_without_sklearn_callback_the_estimator_works():
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    res = subprocess.run([sys.executable, "-c", FALLBACK], capture_output=True, text=True,
                         env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "fallback ok" in res.stdout


def test_the_stand_in_adapter_does_nothing():
    """FitTasks on an estimator without the API: no hooks, never a stop."""
    tasks = _callbacks.FitTasks(object(), None, None, None, 3)
    tasks.epoch_begin()
    assert tasks.epoch_end() is False
    tasks.end()
