"""Learning-rate schedules and the no-improvement (plateau / early-stopping) rule.

Owns MLPClassifier's rules, with scikit-learn's ``_stochastic_optimizers``
shape, so that the epoch driver in `classifier.py` only asks:

* `LearningRateSchedule`: the rate of the next epoch (`epoch_rate`), its
  update when an epoch ends (`iteration_ends(t)`, sgd's ``"invscaling"``:
  ``learning_rate_init / (t + 1) ** power_t``), and what a plateau means
  (`trigger_stopping(msg, verbose)`: sgd's ``"adaptive"`` divides the rate
  by 5 while it is above 1e-6 and goes on; every other rule stops).
* `plateau_update`: the no-improvement counter of one epoch, on the training
  loss (lower is better) or on the validation score (higher is better).

Pure Python over plain numbers: no NumPy arrays, no compiled code, no import
of the rest of cysoftmax.  The state that must outlive one call (the
scheduled rate, the counter, the best value) stays on the estimator, which
passes it in and stores what comes back; so pickles, ``partial_fit`` chains
and the all-or-nothing snapshot need nothing new.
"""

__all__ = ["LearningRateSchedule", "plateau_update", "MIN_ADAPTIVE_RATE"]

# sgd's "adaptive" stops dividing the rate once it is at or below this
MIN_ADAPTIVE_RATE = 1e-6


class LearningRateSchedule:
    """The learning rate of each epoch, as MLPClassifier computes it.

    Parameters
    ----------
    solver : {"sgd", "adam"}
    learning_rate : {"constant", "invscaling", "adaptive"}
        Used by sgd only; adam always runs at `learning_rate_init`.
    learning_rate_init : float
    power_t : float
    rate : float or None
        The scheduled rate carried over from earlier epochs (None: a new
        schedule, starting at `learning_rate_init`).
    """

    def __init__(self, solver, learning_rate, learning_rate_init, power_t, rate=None):
        self.solver = solver
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.rate = float(learning_rate_init) if rate is None else rate

    @property
    def scheduled(self):
        """True when the rate changes from epoch to epoch (sgd, not "constant")."""
        return self.solver == "sgd" and self.learning_rate != "constant"

    @property
    def epoch_rate(self):
        """The rate of the next epoch.

        Unscheduled rules read `learning_rate_init` itself, so that a
        ``set_params(learning_rate_init=...)`` between ``partial_fit`` calls
        takes effect.
        """
        return self.rate if self.scheduled else float(self.learning_rate_init)

    def iteration_ends(self, time_step):
        """Update the rate after an epoch; `time_step` counts the samples seen so far."""
        if self.solver == "sgd" and self.learning_rate == "invscaling":
            self.rate = self.learning_rate_init / (time_step + 1) ** self.power_t

    def trigger_stopping(self, msg, verbose):
        """The loss or score plateaued: True to stop, False to go on at a lower rate."""
        if (self.solver == "sgd" and self.learning_rate == "adaptive"
                and self.rate > MIN_ADAPTIVE_RATE):
            self.rate /= 5.0
            if verbose:
                print(msg + f" Setting learning rate to {self.rate:f}")
            return False
        if verbose:
            print(msg + " Stopping.")
        return True


def plateau_update(count, best, value, tol, maximize):
    """One epoch of the no-improvement rule: ``(new count, value is a new best)``.

    The counter grows when `value` does not beat `best` by more than `tol`
    (``value < best + tol`` for a score, ``value > best - tol`` for a loss)
    and is reset otherwise; the best value itself moves on any improvement,
    however small.  This is MLPClassifier's ``_update_no_improvement_count``.
    """
    if maximize:
        count = count + 1 if value < best + tol else 0
        return count, value > best
    count = count + 1 if value > best - tol else 0
    return count, value < best
