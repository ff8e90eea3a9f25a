"""Finishing a decided step, and the recovery of one that was killed.

finish() is idempotent: it moves the branch (kept) or sets the candidate aside (not kept), writes the record
and the ledger row, and clears the journal; recover() calls it again after a kill, and when even that fails it
salvages the row as a crash, so no sequence of events leaves every later command failing.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from autoresearch import cards, engine, gitops, keep_rule, layout, ledger, runstate, text
from autoresearch.config import Config
from autoresearch.keep_rule import BASELINE, CRASH
from autoresearch.processes import kill_token
from autoresearch.records import Incumbent, Pending, Record, Run


def finish(cfg: Config, repo, pending: Pending) -> None:
    tag, rec = pending.tag, pending.record
    run = runstate.load_run(cfg.root, tag)
    branch, cand, inc = run.branch, pending.candidate, pending.incumbent
    if rec.status in keep_rule.KEPT:
        if gitops.tip(repo, branch) == inc:
            score_holdout(cfg, tag, rec.iter, cand, cfg.root / layout.TRAIN)
            gitops.move_ref(repo, f"refs/heads/{branch}", cand, inc, f"autoresearch: keep iter {rec.iter}")
        if gitops.current_branch(repo) == branch:
            gitops.sync_index(repo)
        if run.incumbent.commit != cand:
            run.incumbent = Incumbent(
                rec.iter,
                cand,
                rec.scores,
                rec.mean,
                rec.se,
                rec.statements,
                sum(rec.fold_s),
                math.nan if rec.cpu_s is None else rec.cpu_s,
                rec.confirm_scores,
            )
    elif cand:  # an invalid step refused before the commit has nothing to set aside or revert
        gitops.move_ref(repo, f"refs/autoresearch/{tag}/discarded/{rec.iter}", cand)
        if gitops.blob_of_worktree(repo) == gitops.blob_at(repo, cand):
            gitops.restore(repo, inc, layout.TRAIN)
    store_record(cfg, rec)
    bump_counters(run, rec.status, rec.iter)
    runstate.save_run(cfg.root, run)
    gitops.delete_ref(repo, f"refs/autoresearch/{tag}/pending")
    runstate.pending_path(cfg.root, tag).unlink(missing_ok=True)


def store_record(cfg: Config, rec: Record) -> None:
    runstate.save_record(cfg.root, rec)
    if not any(r["iter"] == str(rec.iter) for r in ledger.read(cfg.root, rec.tag)):
        ledger.append(cfg.root, row(rec))


def bump_counters(run: Run, status: str, it: int) -> None:
    run.iterations = max(run.iterations, it)
    run.last_status = status
    run.consecutive_failures = run.consecutive_failures + 1 if status in keep_rule.FAILED else 0
    run.harness_errors = 0


def row(rec: Record) -> dict:
    reason = "" if rec.status in (keep_rule.KEEP, BASELINE) else rec.reason or ""
    looked = (
        f"second look: Δ {rec.confirm_delta:+.4g} on {len(rec.confirm_scores or [])} fresh folds, p of both "
        f"looks {rec.p_value:.3g} (first {rec.p_first:.3g})"
        if rec.looks == 2
        else ""
    )
    note = "; ".join(x for x in (rec.note, looked, reason.removeprefix("second look: ")) if x)
    return {
        "iter": rec.iter,
        "tag": rec.tag,
        "commit": (rec.commit or "")[:12],
        "status": rec.status,
        "metric": rec.mean,
        "delta": rec.delta,
        "p_value": rec.p_value,
        "se": rec.se,
        "wall_s": rec.wall_s,
        "eval_s": rec.eval_s,
        "category": rec.category,
        "hypothesis": rec.hypothesis,
        "note": note,
    }


def score_holdout(cfg: Config, tag: str, it: int, commit: str, train_py: Path) -> None:
    """Scored for the baseline and each kept commit; written where only the report reads it."""
    path = runstate.run_dir(cfg.root, tag) / "holdout.jsonl"
    if path.is_file() and any(_iter_of(x) == it for x in path.read_text().splitlines()):
        return
    log = runstate.run_dir(cfg.root, tag) / "logs" / f"{it}.holdout.log"
    out = engine.fit_holdout(cfg, train_py, log_path=log)
    entry = {
        "iter": it,
        "commit": commit,
        "holdout": out.holdout,
        "status": out.status,
        "reason": out.reason,
        "time": time.time(),
    }
    with open(path, "a") as f:
        f.write(json.dumps(entry) + "\n")


def _iter_of(line: str):
    try:
        return json.loads(line).get("iter")
    except (ValueError, AttributeError):
        return None


# ---------------------------------------------------------------------------
# Recovery after a kill: it must never leave every later command failing


def recover(cfg: Config, repo, run: Run) -> list[str]:
    notes = []
    torn = ledger.repair(cfg.root)
    if torn:
        notes.append(f"recovered: {torn}")
    path = runstate.pending_path(cfg.root, run.tag)
    if not path.exists():
        if gitops.current_branch(repo) == run.branch:
            gitops.sync_index(repo)
        return notes
    pending = runstate.load_pending(cfg.root, run.tag)
    if pending is None:
        aside = _set_aside(path)
        notes.append(f"recovered: the step journal was unreadable; moved it to {aside.relative_to(cfg.root)}")
        return notes
    if pending.token:
        kill_token(pending.token)  # whatever the killed step's evaluation left running
    if pending.stage != "decided" or pending.record is None:
        # killed before a verdict: the candidate was never kept; record the interruption, keep the code
        where = " (its second look)" if pending.stage == "confirming" else ""
        pending.record = pending.base_record(
            status=CRASH,
            reason=f"interrupted: the step was killed during evaluation{where}",
            wall_s=time.time() - (pending.started or time.time()),
        )
        pending.stage = "decided"
        runstate.save_pending(cfg.root, pending)
    try:
        finish(cfg, repo, pending)
    except ledger.LedgerError:
        raise  # a full disk: nothing can be written; the journal stays for the next command
    except Exception as e:  # noqa: BLE001 - whatever it was, the next command must work
        return notes + [_salvage(cfg, repo, run, pending, e)]
    rec = pending.record
    notes.append(
        f"recovered: iter {rec.iter} was interrupted and is now recorded as "
        f"{cards.LABEL.get(rec.status, rec.status)} ({rec.reason or 'decided before the interruption'})"
    )
    return notes


def _salvage(cfg: Config, repo, run: Run, pending: Pending, error: Exception) -> str:
    """Finishing the journalled step failed: record what is known as a crash, set the journal aside, put train.py
    back to the incumbent, so nothing is lost and the next command starts clean."""
    aside = _set_aside(runstate.pending_path(cfg.root, run.tag))
    why = text.shown(f"{type(error).__name__}: {error}", 300)
    rec = pending.base_record(
        status=CRASH, reason=f"recovery failed ({why}); the journal is in {aside.relative_to(cfg.root)}"
    )
    for action in (
        lambda: (
            gitops.move_ref(repo, f"refs/autoresearch/{run.tag}/discarded/{rec.iter}", pending.candidate)
            if pending.candidate
            else None
        ),
        lambda: (
            gitops.restore(repo, pending.incumbent, layout.TRAIN)
            if pending.candidate and gitops.blob_of_worktree(repo) == gitops.blob_at(repo, pending.candidate)
            else None
        ),
        lambda: gitops.delete_ref(repo, f"refs/autoresearch/{run.tag}/pending"),
        lambda: store_record(cfg, rec),
    ):
        try:
            action()
        except Exception:  # noqa: BLE001, S112 - each part is best effort; the row is what matters most
            continue
    fresh = runstate.load_run(cfg.root, run.tag) or run
    bump_counters(fresh, CRASH, rec.iter)
    runstate.save_run(cfg.root, fresh)
    return f"recovered: iter {rec.iter} could not be finished ({why}); recorded as a crash, journal set aside"


def _set_aside(path: Path) -> Path:
    aside = path.with_name(f"{path.stem}.broken-{time.strftime('%Y%m%d-%H%M%S')}{path.suffix}")
    path.replace(aside)
    return aside
