"""The child process: import train.py, check its contract, fit and score it on the fixed folds.

Run by runner.run_child as `python -m autoresearch.evaluate MODE TRAIN_PY`; reports JSON events
through runner.emit. MODE is `cv` (the train part's folds) or `holdout` (fit on the whole train part,
score the holdout once; only the ratchet and the report ask for it, never the agent's commands).
"""

from __future__ import annotations

import importlib.util
import math
import os
import sys
import time
import traceback
from pathlib import Path

from autoresearch.runner import emit

CONTRACT = "train.py contract"


class ContractError(Exception):
    """train.py does not provide what the harness needs; the message says what."""


class Violation(Exception):
    """train.py reached for a file it must not touch."""


# ---------------------------------------------------------------------------
# train.py


def import_train(path: Path):
    sys.dont_write_bytecode = True
    spec = importlib.util.spec_from_file_location("train", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["train"] = module
    spec.loader.exec_module(module)
    return module


def contract_problems(module) -> list[str]:
    """Problems with the declarations step records (HYPOTHESIS, CATEGORY) and the ones CV needs."""
    out = []
    hyp = getattr(module, "HYPOTHESIS", None)
    if not isinstance(hyp, str) or not hyp.strip() or "\n" in hyp.strip():
        out.append("HYPOTHESIS must be a one-line string saying what this change tries")
    cat = getattr(module, "CATEGORY", None)
    if not isinstance(cat, str) or not cat.strip() or len(cat.split()) != 1:
        out.append("CATEGORY must be one word (features, model, params, preprocessing, ensemble, regularization, ...)")
    out += pipeline_problems(module)
    return out


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
        raise ContractError(f"build_pipeline(params) raised {type(e).__name__}: {_one_line(e)}") from e
    if not (hasattr(est, "fit") and callable(est.fit) and hasattr(est, "predict")):
        raise ContractError(
            f"build_pipeline(params) returned {type(est).__name__}, not an estimator "
            "(it needs fit() and predict(); return a scikit-learn estimator or Pipeline)"
        )
    return est


# ---------------------------------------------------------------------------
# Scoring


def score_folds(module, params, X, y, folds, metric, on_fold=None) -> list[float]:
    """Fit a fresh pipeline per fold; on_fold(i, score, fit_s) may raise to stop (pruning)."""
    scores = []
    for i, (tr, te) in enumerate(folds):
        est = build(module, params)
        t0 = time.perf_counter()
        try:
            est.fit(X.iloc[tr], y.iloc[tr])
        except (MemoryError, Violation):
            raise
        except Exception as e:
            raise RuntimeError(f"fold {i}: fit raised {type(e).__name__}: {_one_line(e)}") from e
        fit_s = time.perf_counter() - t0
        score = _score(metric, est, X.iloc[te], y.iloc[te], f"fold {i}")
        scores.append(score)
        if on_fold is not None:
            on_fold(i, score, fit_s)
    return scores


def _score(metric, est, X, y, where: str) -> float:
    from autoresearch.metrics import PredictionError

    try:
        return metric.score(est, X, y)
    except PredictionError as e:
        raise ContractError(f"{where}: {e}") from e
    except (MemoryError, Violation):
        raise
    except Exception as e:
        raise RuntimeError(f"{where}: scoring raised {type(e).__name__}: {_one_line(e)}") from e


def mean_se(scores: list[float]) -> tuple[float, float]:
    n = len(scores)
    mean = sum(scores) / n
    var = sum((s - mean) ** 2 for s in scores) / (n - 1) if n > 1 else 0.0
    return mean, math.sqrt(var / n)


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else "")[:300]


# ---------------------------------------------------------------------------
# Guarding the harness from inside the child (defence in depth; hashes are checked after the run too)


def install_guard(root: Path, allow: list[Path] | tuple = ()) -> None:
    """`allow`: paths (files or folders) the harness itself must keep writing from inside the child,
    e.g. the sweep's Optuna storage under .autoresearch/."""
    root = root.resolve()
    allowed = [Path(p).resolve() for p in allow]
    private = [root / "data", root / ".autoresearch", root / "results.tsv"]
    frozen = [root / "prepare.py", root / "pyproject.toml", root / "uv.lock", root / "autoresearch", root / ".claude"]
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

    def inside(path, places) -> bool:
        try:
            p = Path(os.fsdecode(path))
            p = (p if p.is_absolute() else Path.cwd() / p).resolve()
        except (TypeError, ValueError, OSError):
            return False
        return any(p == q or q in p.parents for q in places)

    def deny(what: str, path) -> None:
        msg = f"train.py may not {what} {os.fsdecode(path)}: only the harness touches it"
        emit({"event": "violation", "reason": msg})
        raise Violation(msg)

    def hook(event, args):
        if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            path, mode, flags = (list(args) + [None, None])[:3]
            if allowed and inside(path, allowed):
                return
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool((flags or 0) & write_flags)
            if inside(path, private):
                deny("write to" if writing else "read", path)
            if writing and inside(path, frozen):
                deny("write to", path)
        elif event in ("os.remove", "os.rename", "os.truncate", "shutil.rmtree", "os.rmdir", "os.chmod"):
            for path in args[:2]:
                if (
                    isinstance(path, (str, bytes, os.PathLike))
                    and inside(path, private + frozen)
                    and not (allowed and inside(path, allowed))
                ):
                    deny("change", path)

    sys.addaudithook(hook)


# ---------------------------------------------------------------------------
# Entry point


def main(argv: list[str]) -> int:
    mode, train_path = argv[0], Path(argv[1]).resolve()
    import pandas as pd

    from autoresearch.config import load_config
    from autoresearch.metrics import resolve_metric
    from autoresearch.prepared import CONFIRM, FOLDS, HOLDOUT, TRAIN, load_manifest
    from autoresearch.splits import load_folds

    cfg = load_config()
    manifest = load_manifest(cfg)
    metric = resolve_metric(manifest["metric"], manifest["task"], check_task=False)
    target = manifest["target"]
    train = pd.read_parquet(cfg.data_dir / TRAIN)
    X, y = train.drop(columns=[target]), train[target]
    folds = load_folds(cfg.data_dir / (CONFIRM if mode == "confirm" else FOLDS))
    hold = pd.read_parquet(cfg.data_dir / HOLDOUT) if mode == "holdout" else None
    # prepare.py reads the config and manifest when imported: let it, before the guard goes up
    sys.path.insert(0, str(cfg.root))
    importlib.import_module("prepare")
    install_guard(cfg.root)
    t_start = time.perf_counter()
    try:
        module = import_train(train_path)
        problems = pipeline_problems(module)
        if problems:
            raise ContractError(problems[0])
        params = module.PARAMS
        if mode in ("cv", "confirm"):
            fit_total = [0.0]

            def on_fold(i, score, fit_s):
                fit_total[0] += fit_s
                emit({"event": "fold", "i": i, "score": score, "fit_s": round(fit_s, 4)})

            scores = score_folds(module, params, X, y, folds, metric, on_fold)
            mean, se = mean_se(scores)
            emit(
                {
                    "event": "done",
                    "scores": scores,
                    "mean": mean,
                    "se": se,
                    "fit_s": round(fit_total[0], 4),
                    "eval_s": round(time.perf_counter() - t_start, 4),
                }
            )
        elif mode == "holdout":
            est = build(module, params)
            est.fit(X, y)
            score = _score(metric, est, hold.drop(columns=[target]), hold[target], "holdout")
            emit({"event": "done", "holdout": score})
        else:
            raise SystemExit(f"unknown mode {mode!r}")
    except ContractError as e:
        _fail(f"{CONTRACT}: {e}", "contract")
    except Violation as e:
        _fail(str(e), "invalid")
    except MemoryError:
        _fail("memory: MemoryError (the pipeline asked for more memory than the cap allows)", "memory")
    except SyntaxError as e:
        _fail(f"SyntaxError in train.py line {e.lineno}: {e.msg}", "exception")
    except BaseException as e:  # noqa: BLE001 - anything train.py raises is a crash, reported in one line
        if isinstance(e, KeyboardInterrupt):
            raise
        reason = _one_line(e)
        _fail(reason if reason.startswith("fold ") else f"{type(e).__name__}: {reason}", "exception")
    return 0


def _fail(reason: str, kind: str) -> None:
    traceback.print_exc()
    emit({"event": "error", "reason": reason, "kind": kind})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
