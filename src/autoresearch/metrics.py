"""Metrics: names as users write them, their direction, and scoring predictions on the trusted side.

The sandboxed fold returns predictions only; score() checks them against the contract (one row per input,
finite, probabilities that are probabilities, the classes it was trained on) and computes the metric here,
against labels the fold never saw.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

DEFAULT_METRIC = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}
PROBA_TOLERANCE = 1e-6  # how far a row of predict_proba may sum from 1, or a value stray outside [0, 1]


def direction(higher_is_better: bool) -> str:
    """The one wording of a metric's direction (cards, reports and the dry run all say it this way)."""
    return "higher is better" if higher_is_better else "lower is better"


class PredictionError(ValueError):
    """The pipeline's predictions break the train.py contract."""


@dataclasses.dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    response: str  # "proba" | "positive" | "predict" | "scorer"
    func: Callable | None = None
    scorer: str | None = None

    @property
    def direction(self) -> str:
        return direction(self.higher_is_better)

    @property
    def methods(self) -> tuple[str, ...]:
        """What the fold must call on its fitted pipeline, in order of preference."""
        if self.response in ("proba", "positive"):
            return ("predict_proba",)
        if self.response == "predict":
            return ("predict",)
        from sklearn.metrics import get_scorer

        wanted = getattr(get_scorer(self.scorer), "_response_method", "predict")
        return (wanted,) if isinstance(wanted, str) else tuple(wanted)

    def warm(self) -> None:
        """Import the scoring code now (it is the slow part of scoring the first fold)."""
        import sklearn.metrics  # noqa: F401

    def score(self, y_true, method: str, values, classes=None, fit_labels=None) -> float:
        """The metric of predictions `values` (what `method` returned) against `y_true`."""
        import numpy as np

        n = len(y_true)
        values = check(method, values, n, classes, fit_labels)
        if self.response == "scorer":
            value = _replay(self.scorer, y_true, method, values, classes, self.higher_is_better)
        elif self.response == "positive":
            if values.ndim != 2 or values.shape[1] != 2:
                raise PredictionError(f"predict_proba() returned shape {values.shape}; a binary task needs ({n}, 2)")
            value = float(self.func(y_true, values[:, 1]))
        else:
            value = float(self.func(y_true, values))
        if not np.isfinite(value):
            raise PredictionError(f"metric {self.name} came out as {value}: the predictions are degenerate")
        return value


def check(method: str, values, n: int, classes=None, fit_labels=None):
    """The contract's checks on what a fold returned; the values, as floats where they must be numbers."""
    import numpy as np

    if values.ndim == 0:
        raise PredictionError(f"{method}() returned a single value, not one row per input")
    if values.shape[0] != n:
        raise PredictionError(f"{method}() returned {values.shape[0]} rows for {n} inputs")
    if method == "predict":
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            raise PredictionError("predict() returned NaN or infinite values")
        return values
    if values.dtype.kind not in "fiub":
        raise PredictionError(f"{method}() returned {values.dtype} values; it must return numbers")
    values = values.astype(float)
    if not np.isfinite(values).all():
        raise PredictionError(f"{method}() returned NaN or infinite values")
    if method == "predict_proba":
        if values.ndim != 2:
            raise PredictionError(f"predict_proba() returned shape {values.shape}; it must be ({n}, n_classes)")
        if values.min(initial=0.0) < -PROBA_TOLERANCE or values.max(initial=0.0) > 1 + PROBA_TOLERANCE:
            raise PredictionError("predict_proba() returned values outside [0, 1]; it must return probabilities")
        sums = values.sum(axis=1)
        bad = np.flatnonzero(np.abs(sums - 1) > PROBA_TOLERANCE)
        if len(bad):
            raise PredictionError(
                f"predict_proba() returned rows that do not sum to 1 (row {bad[0]} sums to "
                f"{sums[bad[0]]:.6g}); it must return probabilities"
            )
    if classes is not None and fit_labels is not None and method != "predict":
        expected = np.unique(fit_labels)
        if len(classes) != len(expected) or np.any(np.asarray(classes).astype(str) != expected.astype(str)):
            raise PredictionError(
                f"classes_ is {list(classes)[:6]}, not the labels it was fitted on "
                f"({list(expected)[:6]}), so the columns of {method}() cannot be read"
            )
        if method == "predict_proba" and values.shape[1] != len(expected):
            raise PredictionError(f"predict_proba() returned {values.shape[1]} columns for {len(expected)} classes")
    return values


def _replay(scorer_name: str, y_true, method: str, values, classes, higher: bool) -> float:
    """A scikit-learn scorer, fed the fold's predictions through an estimator that only replays them."""
    import numpy as np
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.metrics import get_scorer

    class Replay(ClassifierMixin if classes is not None else RegressorMixin, BaseEstimator):
        pass

    est = Replay()
    if classes is not None:
        est.classes_ = np.asarray(classes)

    def replay(X):
        return values

    replay.__name__ = method  # scikit-learn reads the response's kind from the method's name
    setattr(est, method, replay)
    value = float(get_scorer(scorer_name)(est, np.zeros((len(values), 1)), y_true))
    return value if higher else -value


BIN, MULTI, REG = ("binary",), ("multiclass",), ("regression",)
# name: (higher_is_better, response, sklearn.metrics function or a local one, tasks). Plain data, so
# validating a config does not import scikit-learn.
TABLE = {
    "roc_auc": (True, "positive", "roc_auc_score", BIN),
    "average_precision": (True, "positive", "average_precision_score", BIN),
    "log_loss": (False, "proba", "log_loss", BIN + MULTI),
    "brier": (False, "positive", "brier_score_loss", BIN),
    "accuracy": (True, "predict", "accuracy_score", BIN + MULTI),
    "balanced_accuracy": (True, "predict", "balanced_accuracy_score", BIN + MULTI),
    "f1": (True, "predict", "f1_score", BIN),
    "f1_macro": (True, "predict", "_f1_macro", BIN + MULTI),
    "roc_auc_ovr": (True, "proba", "_roc_auc_ovr", MULTI),
    "rmse": (False, "predict", "_rmse", REG),
    "mae": (False, "predict", "mean_absolute_error", REG),
    "r2": (True, "predict", "r2_score", REG),
    "mape": (False, "predict", "mean_absolute_percentage_error", REG),
}


def _rmse(y, p):
    import numpy as np
    from sklearn.metrics import mean_squared_error

    return float(np.sqrt(mean_squared_error(y, p)))


def _f1_macro(y, p):
    from sklearn.metrics import f1_score

    return f1_score(y, p, average="macro")


def _roc_auc_ovr(y, p):
    from sklearn.metrics import roc_auc_score

    return roc_auc_score(y, p, multi_class="ovr")


def _function(name: str) -> Callable:
    if name.startswith("_"):
        return globals()[name]

    def call(y, p):
        from sklearn import metrics

        return getattr(metrics, name)(y, p)

    return call


def resolve_metric(name: str | None, task: str, check_task: bool = True) -> Metric:
    name = name or DEFAULT_METRIC[task]
    if name in TABLE:
        higher, response, func, tasks = TABLE[name]
        if check_task and task not in tasks:
            raise ValueError(
                f"metric {name!r} does not apply to a {task} task; use one of "
                + ", ".join(k for k, v in TABLE.items() if task in v[3])
            )
        return Metric(name, higher, response, _function(func))
    from sklearn.metrics import get_scorer_names

    if name in get_scorer_names():
        negated = name.startswith("neg_")
        return Metric(name.removeprefix("neg_") if negated else name, not negated, "scorer", scorer=name)
    raise ValueError(
        f"unknown metric {name!r}; use one of {', '.join(TABLE)} or any scikit-learn scorer name "
        "(sklearn.metrics.get_scorer_names())"
    )
