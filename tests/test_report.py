"""The morning report, export and predict, on a real short run in a real temporary project.

The run: baseline → a kept LightGBM with a feature function defined in train.py → a seed-only change handed
over as a sweep (NOOP) → a crash that is still evaluating while a report is written. The report's numbers are
checked against results.tsv and holdout.jsonl; export/predict must reproduce the holdout score from rows
read here, from a folder outside the project.
"""

from __future__ import annotations

import hashlib
import json
import os
import pty
import subprocess
import sys
import time

import pytest
from conftest import make_project

from autoresearch import keep_rule, ledger

TAG = "night"
LGBM = """
import lightgbm as lgb
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from prepare import N_JOBS, SEED

HYPOTHESIS = "{hypothesis}"
CATEGORY = "{category}"
PARAMS = {{"n_estimators": 150, "learning_rate": 0.05, "num_leaves": 15, "seed": SEED + {seed}}}


def add_total_charge(X):
    X = X.copy()
    charges = ["total_day_charge", "total_eve_charge", "total_night_charge", "total_intl_charge"]
    X["total_charge"] = X[charges].sum(axis=1)
    return X


def build_pipeline(params):
    model = lgb.LGBMClassifier(n_estimators=params["n_estimators"], learning_rate=params["learning_rate"],
                               num_leaves=params["num_leaves"], random_state=params["seed"], n_jobs=N_JOBS, verbose=-1)
    return Pipeline([("features", FunctionTransformer(add_total_charge)), ("model", model)])
{extra}"""


def lgbm(hypothesis, category="model", seed=0, extra=""):
    return LGBM.format(hypothesis=hypothesis, category=category, seed=seed, extra=extra)


@pytest.fixture(scope="module")
def proj(tmp_path_factory):
    p = make_project(tmp_path_factory.mktemp("report") / "proj", config={"folds": 3, "repeats": 1, "budget_s": 240})
    assert p.cli("start", TAG).returncode == 0
    p.write("train.py", lgbm("LightGBM with a total charge feature"))
    assert "| KEPT |" in p.cli("step", check=True).stdout
    # a seed-only change, handed over the way `autoresearch sweep` does (sweep.json names train.py's hash)
    seeded = lgbm("seed moved by the surveyor", category="params", seed=1)
    p.write("train.py", seeded)
    sweep = {"train_sha256": hashlib.sha256(seeded.encode()).hexdigest(), "trials": 5, "pruned": 2, "best_value": 0.9}
    p.write(f".autoresearch/runs/{TAG}/sweep.json", json.dumps(sweep))
    assert "| NOOP (reverted" in p.cli("step", check=True).stdout
    # a crash that takes its time: the report is written while this step holds the run lock
    slow_crash = "import time\ntime.sleep(8)\nraise RuntimeError('on purpose')\n"
    p.write("train.py", lgbm("broken on purpose", extra=slow_crash))
    step = subprocess.Popen(
        [sys.executable, "-m", "autoresearch.cli", "step"],
        cwd=p.path,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    pending = p.path / f".autoresearch/runs/{TAG}/pending.json"
    deadline = time.monotonic() + 120
    while not pending.exists() and time.monotonic() < deadline and step.poll() is None:
        time.sleep(0.05)
    assert pending.exists(), "the crash step never reached its evaluation"
    p.live = p.cli("report")
    p.live_md = p.read(f"reports/{TAG}/report.md")
    out, err = step.communicate(timeout=300)
    assert "| CRASH (reverted to iter 1) |" in out, out + err
    return p


@pytest.fixture(scope="module")
def report(proj):
    r = proj.cli("report")
    assert r.returncode == 0, r.stderr
    return r


def holdout(proj) -> dict[int, float]:
    lines = proj.read(f".autoresearch/runs/{TAG}/holdout.jsonl").splitlines()
    return {e["iter"]: e["holdout"] for e in map(json.loads, lines)}


def test_report_numbers_match_the_ledger_and_holdout(proj, report):
    rows = ledger.read(proj.path, TAG)
    assert [r["status"] for r in rows] == ["baseline", "keep", "noop", "crash"]
    base, kept, noop, crash = rows
    hold = holdout(proj)
    assert sorted(hold) == [0, 1]
    md = proj.read(f"reports/{TAG}/report.md")
    f = lambda row, key: float(row[key])  # noqa: E731
    assert (
        f"| baseline | 0 | `{base['commit'][:8]}` | {f(base, 'metric'):.4f} ± {f(base, 'se'):.4f} | {hold[0]:.4f} |"
    ) in md
    assert (
        f"| best | 1 | `{kept['commit'][:8]}` | {f(kept, 'metric'):.4f} ± {f(kept, 'se'):.4f} | {hold[1]:.4f} |"
    ) in md
    assert (
        f"| 1 | 1 | `{kept['commit'][:8]}` | {f(kept, 'metric'):.4f} | {f(kept, 'delta'):+.4f} | "
        f"{f(kept, 'p_value'):.2g} | {hold[1]:.4f} | model | LightGBM with a total charge feature |"
    ) in md
    # attribution: model = the keep and the crash, params = the swept noop
    assert f"| model | 2 | 1 | 50% | {f(kept, 'delta'):+.4f} |" in md
    assert "| params | 1 | 0 | 0% | +0.0000 |" in md
    failure = next(line for line in md.splitlines() if line.startswith("| 3 | crash |"))
    assert "broken on purpose" in failure and "RuntimeError: on purpose" in failure
    assert "| 2 | noop (sweep) |" in md and noop["note"].startswith("sweep:")
    run = json.loads(proj.read(f".autoresearch/runs/{TAG}/run.json"))
    manifest = json.loads(proj.read("data/manifest.json"))
    floor = keep_rule.corrected_se(run["baseline"]["scores"], manifest["fold_ratio"])
    assert f"**Noise floor: {floor:.4f}**" in md
    gap = (f(kept, "metric") - f(base, "metric")) - (hold[1] - hold[0])
    assert f"{gap:+.4f}" in md and f"{2 * floor:.4f}" in md
    assert "iterations per hour" in md and crash["hypothesis"] == "broken on purpose"


def test_progress_png_is_a_real_image(proj, report):
    from PIL import Image

    path = proj.path / f"reports/{TAG}/progress.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        width, height = img.size
    assert width >= 800 and height >= 400


def test_no_holdout_on_stdout_without_a_tty(proj, report):
    hold = holdout(proj)
    for text in (report.stdout + report.stderr, proj.live.stdout + proj.live.stderr):
        for h in hold.values():
            assert f"{h:.4f}" not in text and f"{h:.3f}" not in text, text
    assert f"holdout scores are in reports/{TAG}/report.md, for the human" in report.stdout
    best = float(ledger.read(proj.path, TAG)[1]["metric"])
    assert f"best {best:.4f}" in report.stdout


def test_holdout_on_a_terminal_or_when_asked(proj):
    hold = holdout(proj)
    asked = proj.cli("report", "--show-holdout")
    assert asked.returncode == 0 and f"holdout: baseline {hold[0]:.4f} → best {hold[1]:.4f}" in asked.stdout
    master, slave = pty.openpty()
    proc = subprocess.run(
        [sys.executable, "-m", "autoresearch.cli", "report"],
        cwd=proj.path,
        stdout=slave,
        stderr=subprocess.PIPE,
        timeout=120,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the terminal's other end is closed and drained
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.returncode == 0, proc.stderr
    assert f"holdout: baseline {hold[0]:.4f}" in b"".join(chunks).decode()


def test_report_on_a_live_run(proj):
    # written while the crash step held the lock and was evaluating: read-only, it did not wait or fail, and it
    # read the holdout scores (the sandbox keeps the evaluation away from them, so reading them voids nothing)
    assert proj.live.returncode == 0, proj.live.stderr
    assert "a step is running" in proj.live.stdout
    assert "**Live:** iteration 3 is being evaluated right now" in proj.live_md
    assert "Holdout not read" not in proj.live_md
    assert "| 3 | crash |" not in proj.live_md
    assert "| 1 | keep |" in proj.live_md


def test_report_skips_a_torn_last_ledger_line(proj, report):
    path = proj.path / "results.tsv"
    before = path.read_bytes()
    try:
        with open(path, "ab") as f:
            f.write(b"4\tnight\t2026-01-01T00:00:00\tabc")  # a row cut off mid-write
        r = proj.cli("report")
        assert r.returncode == 0, r.stderr
        assert "| 4 |" not in proj.read(f"reports/{TAG}/report.md")
    finally:
        path.write_bytes(before)


@pytest.fixture(scope="module")
def exported(proj):
    r = proj.cli("export")
    assert r.returncode == 0, r.stdout + r.stderr
    kept = ledger.read(proj.path, TAG)[1]
    folder = proj.path / "models" / f"{TAG}-{kept['commit'][:8]}"
    return folder, r


def test_export_writes_model_metadata_and_source(proj, exported):
    folder, r = exported
    meta = json.loads((folder / "metadata.json").read_text())
    kept = ledger.read(proj.path, TAG)[1]
    assert meta["commit"].startswith(kept["commit"]) and meta["iter"] == 1 and meta["tag"] == TAG
    assert meta["metric"] == "roc_auc" and meta["higher_is_better"] is True and meta["target"] == "churn"
    assert meta["classes"] == ["no", "yes"]
    manifest = json.loads(proj.read("data/manifest.json"))
    assert [(c["name"], c["dtype"]) for c in meta["features"]] == list(manifest["columns"].items())
    assert set(meta["versions"]) >= {"python", "scikit-learn", "lightgbm", "pandas", "numpy"}
    assert (folder / "train.py").read_text().strip() == proj.git("show", f"{meta['commit']}:train.py").strip()
    # the same fit as the ratchet's holdout score of the kept commit
    assert meta["holdout"]["score"] == pytest.approx(holdout(proj)[1], abs=1e-9)
    assert f"{meta['holdout']['score']:.4f}" not in r.stdout and "for the human" in r.stdout
    assert proj.git("status", "--porcelain") == ""  # the export does not make the next step INVALID


def predict(proj, tmp_path, model, rows):
    env = {**os.environ, "PYTHONPATH": str(proj.path)}
    env.pop("VIRTUAL_ENV", None)
    return subprocess.run(
        [sys.executable, "-m", "autoresearch.cli", "predict", str(model), str(rows), "-o", str(tmp_path / "out.csv")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_predict_reproduces_the_holdout_score_outside_the_project(proj, exported, tmp_path):
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    folder, _ = exported
    meta = json.loads((folder / "metadata.json").read_text())
    rows = pd.read_parquet(proj.path / "data/holdout.parquet")
    rows.to_csv(tmp_path / "new.csv", index=False)
    r = predict(proj, tmp_path, folder / "model.joblib", tmp_path / "new.csv")
    assert r.returncode == 0, r.stderr
    assert "churn (the target)" in r.stderr  # the extra column is ignored with a note
    out = pd.read_csv(tmp_path / "out.csv")
    assert len(out) == len(rows) and set(out["prediction"]) <= {"no", "yes"}
    assert roc_auc_score(out["churn"] == "yes", out["proba_yes"]) == pytest.approx(meta["holdout"]["score"], abs=1e-9)


def test_predict_refuses_missing_and_retyped_columns(proj, exported, tmp_path):
    import pandas as pd

    folder, _ = exported
    rows = pd.read_parquet(proj.path / "data/holdout.parquet").head(20)
    rows.drop(columns=["total_eve_calls"]).to_csv(tmp_path / "missing.csv", index=False)
    r = predict(proj, tmp_path, folder, tmp_path / "missing.csv")
    assert r.returncode == 2 and "missing column 'total_eve_calls'" in r.stderr, r.stderr
    words = rows.astype({"total_day_calls": object})
    words.loc[3, "total_day_calls"] = "ninety"
    words.to_csv(tmp_path / "words.csv", index=False)
    r = predict(proj, tmp_path, folder, tmp_path / "words.csv")
    assert r.returncode == 2, r.stderr
    assert "column 'total_day_calls' must hold numbers (int64" in r.stderr and "'ninety'" in r.stderr
    assert not (tmp_path / "out.csv").exists()


def test_kept_labels_never_overlap_and_stay_inside():
    from autoresearch.report_plot import spread

    wanted = [100, 101, 102, 103, 400, 405, 990, 995, 999]
    placed = spread(wanted, 25, 10, 1000)
    order = sorted(range(len(wanted)), key=lambda i: wanted[i])
    xs = [placed[i] for i in order]
    assert all(b - a >= 25 - 1e-9 for a, b in zip(xs, xs[1:], strict=False))
    assert 10 <= xs[0] and xs[-1] <= 1000
    assert placed[4] == pytest.approx(402.5 - 12.5) and placed[5] == pytest.approx(402.5 + 12.5)  # centred pair
