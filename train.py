"""
The one file the agent edits. Each `uv run autoresearch step` commits it with HYPOTHESIS as the
message, scores it on the fixed folds, and keeps it only if the gain is real.

Contract (see prepare.py): HYPOTHESIS, CATEGORY, PARAMS, optional SEARCH_SPACE, build_pipeline(params).
Run it by hand with `uv run train.py`.
"""

from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from prepare import TASK

HYPOTHESIS = "baseline: impute, scale, one-hot, then a linear model"
CATEGORY = "baseline"

# the current knob values; build_pipeline reads them, the surveyor (autoresearch sweep) rewrites them
PARAMS = {
    "C": 1.0,
    "alpha": 1.0,
}

# optional: ranges the surveyor may search (float/int with optional log scale, or a list of choices)
SEARCH_SPACE = {
    "C": {"low": 1e-3, "high": 1e2, "log": True},
}


def build_pipeline(params: dict) -> Pipeline:
    numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    categorical = make_pipeline(
        SimpleImputer(strategy="most_frequent"),
        OneHotEncoder(handle_unknown="ignore", min_frequency=5),
    )
    features = ColumnTransformer(
        [
            ("num", numeric, make_column_selector(dtype_include="number")),
            ("cat", categorical, make_column_selector(dtype_include="category")),
        ]
    )
    if TASK == "regression":
        model = Ridge(alpha=params["alpha"])
    else:
        model = LogisticRegression(C=params["C"], max_iter=2000)
    return Pipeline([("features", features), ("model", model)])


if __name__ == "__main__":
    from prepare import evaluate_cli  # the harness evaluates this file in a budgeted child process

    evaluate_cli(__file__)
