"""The one file the agent edits; program.md says how. `uv run train.py` scores it by hand.

The top holds what usually changes, from PARAMS to features(): a knob, a model, a feature. `autoresearch step
--hypothesis ... --category ...` writes HYPOTHESIS and CATEGORY. Below the line is the glue that turns
features into columns the model can take.
"""

import numpy as np  # noqa: F401 - for features() and model()
import pandas as pd  # noqa: F401

from prepare import N_JOBS, SEED, TASK

HYPOTHESIS = "baseline: impute, scale, one-hot, then a linear model"
CATEGORY = "baseline"
PARAMS = {"C": 1.0}  # the knob values model() and features() read; `autoresearch sweep` tunes them
SEARCH_SPACE = {"C": {"low": 1e-3, "high": 1e2, "log": True}}  # the ranges the sweep may search, per PARAMS key


def model(params):
    """The estimator the features feed. Import what it needs here, so a model swap is one edit; pass N_JOBS to
    n_jobs / num_threads and SEED to random_state. Any object with fit and predict (or predict_proba) will do;
    a class of your own goes at the top level of this file, as `autoresearch export` pickles the fitted model."""
    from sklearn.linear_model import LogisticRegression, Ridge

    if TASK == "regression":
        return Ridge(alpha=1.0 / params["C"])  # one knob for both tasks: C, the inverse of the penalty
    return LogisticRegression(C=params["C"], max_iter=2000)


def features(X):
    """Row-wise features: X is one fold's rows (a DataFrame of the raw columns). Add columns as numbers or as
    pandas 'category' dtype; nothing learnt from the rows here (learnt transforms go in the glue below)."""
    return X


# ---------------------------------------------------------------------------
# Glue: features(X) -> impute and scale the numbers, one-hot the categories -> model(params)


def build_pipeline(params):
    from sklearn.compose import ColumnTransformer, make_column_selector
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    categorical = make_pipeline(
        SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore", min_frequency=5)
    )
    columns = ColumnTransformer(
        [
            ("num", numeric, make_column_selector(dtype_include="number")),
            ("cat", categorical, make_column_selector(dtype_include="category")),
        ]
    )
    return Pipeline([("features", FunctionTransformer(features)), ("columns", columns), ("model", model(params))])


if __name__ == "__main__":
    from prepare import evaluate_cli  # the harness evaluates this file in its sandbox

    evaluate_cli(__file__)
