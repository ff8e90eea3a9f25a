"""The train.py contract: what it declares, what it may import from prepare, and how the harness imports and
builds it (always inside the sandbox, in a fold's own process).

    HYPOTHESIS = "one line: what this change tries"     the commit message and the ledger's text (step
    CATEGORY = "model"                                  one word: the ledger groups by it      writes both)
    PARAMS = {...}                                      the knob values build_pipeline reads
    SEARCH_SPACE = {...}                                optional: ranges the surveyor may search
    def build_pipeline(params): return <an unfitted scikit-learn estimator or Pipeline>
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

PREPARE_NAMES = ("TASK", "METRIC", "SEED", "N_JOBS")  # all train.py may import from prepare
DECLARED = ("HYPOTHESIS", "CATEGORY")
CATEGORIES = "features, model, params, preprocessing, ensemble, regularization, simplify"
# how the agent steps: the step writes the two declarations into train.py, so an idea is one Edit of the code
STEP_USAGE = "`uv run autoresearch step --category WORD --hypothesis 'what this change tries and why'`"
NEXT = f"edit train.py (one idea), then run {STEP_USAGE}"


class ContractError(Exception):
    """train.py does not provide what the harness needs; the message says what."""


def prepare_stand_in(values: dict) -> types.ModuleType:
    """`prepare` as train.py sees it inside the sandbox (or in a deployed model): only the contract's names, with
    the values the harness gives. The real prepare.py reads the project's config and data, which are not there."""
    module = types.ModuleType("prepare", "the harness's constants for train.py")
    for name in PREPARE_NAMES:
        setattr(module, name, values.get(name))

    def evaluate_cli(*_args):
        raise ContractError("evaluate_cli is the harness's entry point; `uv run train.py` runs it for you")

    module.evaluate_cli = evaluate_cli
    return module


def import_train(path: Path, prepare_values: dict) -> types.ModuleType:
    """Import train.py as module `train` (pickles of what it defines refer to that name)."""
    sys.dont_write_bytecode = True
    sys.modules["prepare"] = prepare_stand_in(prepare_values)
    spec = importlib.util.spec_from_file_location("train", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["train"] = module
    spec.loader.exec_module(module)
    return module


def pipeline_problems(module) -> list[str]:
    out = []
    if not isinstance(getattr(module, "PARAMS", None), dict):
        out.append("PARAMS must be a dict of the current knob values")
    if not callable(getattr(module, "build_pipeline", None)):
        out.append("build_pipeline(params) is missing; define it to return a fresh unfitted estimator or Pipeline")
    return out


def build(module, params: dict):
    try:
        est = module.build_pipeline(dict(params))
    except MemoryError:
        raise
    except Exception as e:
        raise ContractError(f"build_pipeline(params) raised {type(e).__name__}: {one_line(e)}") from e
    if not (callable(getattr(est, "fit", None)) and hasattr(est, "predict")):
        raise ContractError(
            f"build_pipeline(params) returned {type(est).__name__}, not an estimator "
            "(it needs fit() and predict(); return a scikit-learn estimator or Pipeline)"
        )
    return est


def one_line(e: BaseException, width: int = 300) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else "")[:width]
