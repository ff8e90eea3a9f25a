"""For benchmarks only: a train.py scored in this process, fold by fold, with no sandbox (the comparison
points: plain Optuna, the keep-rule bench's thousands of cached fits). Never used by the harness."""

from __future__ import annotations

import numpy as np

from autoresearch.contract import import_train  # noqa: F401 - the benchmarks import it from here


def predict_score(est, X, y, metric, fit_labels=None) -> float:
    """What the engine's trusted side does with a fold's predictions, for an estimator fitted here."""
    method = next(m for m in metric.methods if callable(getattr(est, m, None)))
    values = np.asarray(getattr(est, method)(X))
    classes = getattr(est, "classes_", None)
    return metric.score(np.asarray(y), method, values, classes, fit_labels=fit_labels)


def score_folds(module, params: dict, X, y, folds, metric) -> list[float]:
    out = []
    for tr, te in folds:
        est = module.build_pipeline(dict(params))
        est.fit(X.iloc[tr], y.iloc[tr])
        out.append(predict_score(est, X.iloc[te], y.iloc[te], metric, fit_labels=np.asarray(y.iloc[tr])))
    return out
