"""Metrics: names as users write them, their direction, and scoring with contract checks on predictions."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

DEFAULT_METRIC = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}


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
        return "higher is better" if self.higher_is_better else "lower is better"

    def improvement(self, new: float, old: float) -> float:
        """Positive when `new` is better than `old`, whatever the direction."""
        return (new - old) if self.higher_is_better else (old - new)

    def score(self, estimator, X, y) -> float:
        if self.response == "scorer":
            from sklearn.metrics import get_scorer

            value = get_scorer(self.scorer)(estimator, X, y)
            value = float(value if self.higher_is_better else -value)
        else:
            value = float(self.func(y, _response(estimator, X, y, self.response)))
        if not np.isfinite(value):
            raise PredictionError(f"metric {self.name} came out as {value}: the predictions are degenerate")
        return value


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


def _response(estimator, X, y, kind: str):
    n = len(X)
    if kind == "predict":
        pred = _as_array(estimator.predict(X), "predict", n)
        if pred.dtype.kind in "fc" and not np.isfinite(pred.astype(complex)).all():
            raise PredictionError("predict() returned NaN or infinite values")
        return pred
    if not hasattr(estimator, "predict_proba"):
        raise PredictionError(
            "the metric needs probabilities but the pipeline has no predict_proba(); "
            "end the pipeline in a classifier that has it"
        )
    proba = _as_array(estimator.predict_proba(X), "predict_proba", n)
    if proba.dtype.kind not in "fiu":
        raise PredictionError(f"predict_proba() returned {proba.dtype} values; it must return numbers")
    proba = proba.astype(float)
    if not np.isfinite(proba).all():
        raise PredictionError("predict_proba() returned NaN or infinite values")
    if kind == "positive":
        if proba.ndim != 2 or proba.shape[1] != 2:
            raise PredictionError(f"predict_proba() returned shape {proba.shape}; a binary task needs ({n}, 2)")
        return proba[:, 1]
    return proba


def _as_array(pred, method: str, n: int) -> np.ndarray:
    try:
        arr = np.asarray(pred)
    except Exception:
        raise PredictionError(f"{method}() returned a {type(pred).__name__}, not an array") from None
    if arr.ndim == 0:  # None, a number, a string: not "a scalar rows for n inputs"
        raise PredictionError(f"{method}() returned {type(pred).__name__}, not one row per input")
    if arr.shape[0] != n:
        raise PredictionError(f"{method}() returned {arr.shape[0]} rows for {n} inputs")
    if arr.dtype == object:
        try:
            arr = arr.astype(float) if method == "predict_proba" else arr
        except (TypeError, ValueError):
            raise PredictionError(f"{method}() returned non-numeric values") from None
    return arr
