"""Metric direction: a better model must score as an improvement, whichever way the metric points."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, RegressorMixin

from autoresearch.metrics import DEFAULT_METRIC, resolve_metric


class Fixed(RegressorMixin, BaseEstimator):
    """A 'fitted' model with given outputs, so the scores are known exactly (a scikit-learn estimator,
    so sklearn's own scorers accept it too)."""

    def __init__(self, out=()):
        self.out = np.asarray(out)

    def predict(self, X):
        return self.out

    def predict_proba(self, X):
        return np.column_stack([1 - self.out, self.out])


Y_BIN = pd.Series([0, 0, 1, 1, 0, 1, 0, 1])
GOOD_P = [0.1, 0.2, 0.8, 0.9, 0.3, 0.7, 0.2, 0.6]
BAD_P = [0.4, 0.6, 0.5, 0.7, 0.5, 0.4, 0.6, 0.5]
Y_REG = pd.Series([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
GOOD_R = Y_REG + [0.1, -0.1, 0.2, -0.2, 0.1, 0.0, -0.1, 0.1]
BAD_R = Y_REG + [1.5, -2.0, 1.0, -1.0, 2.0, -1.5, 1.0, -2.0]
X = pd.DataFrame({"x": range(8)})


@pytest.mark.parametrize(
    "name, task, higher, y, good, bad",
    [
        ("roc_auc", "binary", True, Y_BIN, GOOD_P, BAD_P),
        ("log_loss", "binary", False, Y_BIN, GOOD_P, BAD_P),
        ("rmse", "regression", False, Y_REG, GOOD_R, BAD_R),
        ("r2", "regression", True, Y_REG, GOOD_R, BAD_R),
        ("neg_mean_absolute_error", "regression", False, Y_REG, GOOD_R, BAD_R),
    ],
)
def test_direction_and_improvement(name, task, higher, y, good, bad):
    metric = resolve_metric(name, task)
    assert metric.higher_is_better is higher
    assert metric.direction == ("higher is better" if higher else "lower is better")
    s_good, s_bad = score(metric, good, y), score(metric, bad, y)
    assert (s_good > s_bad) is higher


def score(metric, out, y) -> float:
    """What the trusted side does with a fold's reply: the metric of the predictions the fold returned."""
    method = metric.methods[0]
    est = Fixed(out)
    values = getattr(est, method)(X)
    classes = np.array([0, 1]) if method != "predict" else None
    return metric.score(np.asarray(y), method, np.asarray(values), classes, fit_labels=np.asarray(y))


def test_scores_are_the_plain_values():
    from sklearn.metrics import log_loss, mean_absolute_error, mean_squared_error, r2_score, roc_auc_score

    assert score(resolve_metric("roc_auc", "binary"), GOOD_P, Y_BIN) == roc_auc_score(Y_BIN, GOOD_P)
    assert score(resolve_metric("log_loss", "binary"), GOOD_P, Y_BIN) == pytest.approx(log_loss(Y_BIN, GOOD_P))
    rmse = score(resolve_metric("rmse", "regression"), GOOD_R, Y_REG)
    assert rmse == pytest.approx(np.sqrt(mean_squared_error(Y_REG, GOOD_R))) and rmse > 0
    assert score(resolve_metric("r2", "regression"), GOOD_R, Y_REG) == pytest.approx(r2_score(Y_REG, GOOD_R))
    # a scikit-learn 'neg_' scorer is reported as the positive error, lower is better
    mae = resolve_metric("neg_mean_absolute_error", "regression")
    assert mae.name == "mean_absolute_error"
    assert score(mae, GOOD_R, Y_REG) == pytest.approx(mean_absolute_error(Y_REG, GOOD_R))


def test_defaults_per_task():
    assert {t: resolve_metric(None, t).name for t in DEFAULT_METRIC} == DEFAULT_METRIC
