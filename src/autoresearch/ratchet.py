"""The ratchet's state machine: `start`, `step`, `stop`, and the recovery of a step that was killed.

A step is one call: checks → commit the candidate (on no branch) → evaluate it in the sandbox → check again →
decide → keep (the branch ref moves) or revert (the work tree returns to the incumbent, the candidate stays
under refs/autoresearch/<tag>/discarded/<iter>) → one ledger row → one line. Everything after the candidate
exists is journalled (records.Pending), so a step killed at any moment is finished or undone by the next
command, and recorded. The checks live in autoresearch.integrity, the text in autoresearch.cards.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
import time
from pathlib import Path

from autoresearch import (
    cards,
    engine,
    gitops,
    integrity,
    keep_rule,
    layout,
    ledger,
    manifest,
    runstate,
    search_space,
    text,
)
from autoresearch.config import Config, load_config
from autoresearch.errors import NotCounted, UserError
from autoresearch.keep_rule import BASELINE, CRASH, INVALID, TIMEOUT
from autoresearch.processes import kill_token, new_token
from autoresearch.records import Incumbent, Pending, Record, Run
from autoresearch.static_check import declarations, statements

# ---------------------------------------------------------------------------
# start


def add_arguments_start(p) -> None:
    p.add_argument(
        "tag",
        nargs="?",
        help="run name: the branch is autoresearch/<tag> (created, or resumed if it exists); default: today's "
        "date, e.g. nov23",
    )


def run_start(args) -> int:
    cfg = load_config()
    tag = runstate.check_tag(args.tag or time.strftime("%b%d").lower())
    with runstate.Lock(cfg.root):
        repo = gitops.open_repo(cfg.root)
        integrity.refuse_plants(cfg, repo)
        branch = gitops.branch_name(tag)
        run = runstate.load_run(cfg.root, tag)
        if run is not None and gitops.current_branch(repo) == branch:
            for note in recover(cfg, repo, run):  # a killed step left the tree dirty: finish it first
                print(note)
        dirty = [f for f in gitops.changed_files(repo) if f not in layout.TOLERATED]
        if dirty:
            raise UserError(
                "the work tree has uncommitted changes: "
                + ", ".join(dirty[:10])
                + ("..." if len(dirty) > 10 else "")
                + "; commit or discard them, then start again"
            )
        if gitops.current_branch(repo) != branch:
            exists = gitops.tip(repo, branch)
            if not exists:
                manifest.ensure(cfg, omit=cards.DATA_CARD_HAS)  # bad config or data is refused before the branch
            gitops.checkout_branch(repo, branch, None if exists else "HEAD")
        m = manifest.ensure(cfg, omit=cards.DATA_CARD_HAS)
        run = runstate.load_run(cfg.root, tag)
        resumed = run is not None
        if resumed:
            if run.manifest_id != m["id"]:
                raise UserError(
                    f"run {tag!r} was scored on prepared data {run.manifest_id}, now {m['id']} "
                    "(config, data or harness changed): start a new tag"
                )
            run.status, run.stopped = "active", None
            runstate.save_run(cfg.root, run)
            runstate.set_active(cfg.root, tag)
            for note in recover(cfg, repo, run):
                print(note)
            run = runstate.load_run(cfg.root, tag)
        else:
            run = _baseline(cfg, repo, tag, m)
    notes = cfg.root / layout.NOTES
    if not notes.exists():
        notes.write_text("# Notes (your working memory; git-ignored, never committed)\n")
    print(cards.start_card(cfg, run, m, resumed))
    return 0


def _baseline(cfg: Config, repo, tag: str, m: dict) -> Run:
    rdir = runstate.run_dir(cfg.root, tag)
    t0 = time.monotonic()
    for sub in ("logs", "iters"):
        (rdir / sub).mkdir(parents=True, exist_ok=True)
    out = engine.cross_validate(cfg, cfg.root / layout.TRAIN, "cv", log_path=rdir / "logs" / "0.log")
    if out.status != "ok":
        tail = "\n".join(f"  | {line}" for line in text.error_tail(out.tail))
        raise UserError(
            f"the baseline train.py does not evaluate ({out.status}: {out.reason}); "
            f"fix train.py, commit it, and start again\n{tail}"
        )
    commit = repo.head.commit.hexsha
    source = (cfg.root / layout.TRAIN).read_text(encoding="utf-8", errors="replace")
    inc = Incumbent(0, commit, out.scores, out.mean, out.se, statements(source), sum(out.fold_s), sum(out.cpu_s))
    run = Run(
        tag=tag,
        branch=gitops.branch_name(tag),
        status="active",
        manifest_id=m["id"],
        started_at=time.time(),
        incumbent=inc,
        baseline=inc,
        sandbox=out.isolation,
    )
    _score_holdout(cfg, tag, 0, commit, cfg.root / layout.TRAIN)
    decl = declarations(source)
    rec = Record(
        iter=0,
        tag=tag,
        commit=commit,
        status=BASELINE,
        statements=inc.statements,
        scores=out.scores,
        mean=out.mean,
        se=out.se,
        wall_s=time.monotonic() - t0,
        eval_s=out.wall_s,
        fit_s=sum(out.fit_s),
        fold_s=out.fold_s,
        cpu_s=sum(out.cpu_s),
        category=text.clean(decl["CATEGORY"]) or "baseline",
        hypothesis=text.clean(decl["HYPOTHESIS"]) or "baseline",
    )
    runstate.save_record(cfg.root, rec)
    ledger.append(cfg.root, _row(rec))
    runstate.save_run(cfg.root, run)
    runstate.set_active(cfg.root, tag)
    return run


# ---------------------------------------------------------------------------
# step


def add_arguments_step(p) -> None:
    p.epilog = "Prints one line: iter | metric (delta, p) | verdict | seconds | category: hypothesis."


def run_step(args) -> int:
    cfg = load_config()
    try:
        with runstate.Lock(cfg.root):
            return _step(cfg)
    except NotCounted:
        raise
    except UserError as e:
        _count_harness_error(cfg, str(e))
        raise


def _count_harness_error(cfg: Config, message: str) -> None:
    """Consecutive refusals of `step` (not train.py crashes): the stop gate lets the agent go after a few."""
    tag = runstate.active_tag(cfg.root)
    run = runstate.load_run(cfg.root, tag) if tag else None
    if run is not None:
        run.harness_errors += 1
        run.last_harness_error = text.shown(message, 500)
        runstate.save_run(cfg.root, run)


def _step(cfg: Config) -> int:
    t0 = time.monotonic()
    run = runstate.current_run(cfg.root)
    token = new_token()
    log = runstate.run_dir(cfg.root, run.tag) / "logs" / f"{_next_iter(cfg, run)}.log"
    # the sandbox starts now and imports its libraries while this side checks and commits; nothing of
    # train.py runs in it before the evaluation, so a refusal below still comes before anything ran
    session = None
    if run.status == "active" and manifest.load_manifest(cfg):
        session = engine.Session(
            cfg, cfg.root / layout.TRAIN, deadline=t0 + cfg.budget_s + 60, log_path=log, token=token
        ).start()
    try:
        return _checked_step(cfg, t0, token, session)
    finally:
        if session is not None:
            session.close()
            if not session.used and log.is_file() and log.stat().st_size == 0:
                log.unlink()  # refused before it evaluated: no log for an evaluation that never was


def _checked_step(cfg: Config, t0: float, token: str, session) -> int:
    repo = gitops.open_repo(cfg.root)
    integrity.refuse_plants(cfg, repo)
    run = runstate.current_run(cfg.root)
    if run.status != "active":
        raise UserError(f"run {run.tag!r} is stopped; `uv run autoresearch start {run.tag}` resumes it")
    for note in recover(cfg, repo, run):
        print(note)
    run = runstate.load_run(cfg.root, run.tag)
    _check_position(repo, run)
    inc = run.incumbent
    if gitops.blob_of_worktree(repo) == gitops.blob_at(repo, inc.commit):
        others = [f for f in gitops.changed_files(repo) if f != layout.TRAIN and f not in layout.TOLERATED]
        if others:  # the real problem first: something else changed (put back what is frozen)
            restored = integrity.restore_frozen(cfg, repo, run, others)
            raise UserError(
                "only train.py may change, but these differ from the incumbent: "
                + ", ".join(others[:8])
                + (
                    f" (frozen files restored from git: {', '.join(restored)})"
                    if restored
                    else "; undo them (git checkout -- FILE, or delete new files)"
                )
                + "; and train.py itself is identical to the incumbent: edit it (one idea), then step"
            )
        raise NotCounted(
            "train.py is identical to the incumbent: edit it (one idea, with HYPOTHESIS and CATEGORY) "
            "before `uv run autoresearch step`"
        )
    it = _next_iter(cfg, run)
    source = (cfg.root / layout.TRAIN).read_text(encoding="utf-8", errors="replace")
    decl = declarations(source)
    pending = Pending(
        iter=it,
        tag=run.tag,
        incumbent=inc.commit,
        category=text.clean(decl["CATEGORY"]),
        hypothesis=text.clean(decl["HYPOTHESIS"]),
        statements=statements(source),
        stage="checking",
    )
    bad = integrity.pre_checks(cfg, repo, run, source)
    if bad:
        return _record_invalid(cfg, repo, run, pending, bad, t0)

    message = (
        f"{text.shown(pending.hypothesis, 500)}\n\ncategory: {pending.category}\nautoresearch: {run.tag} iter {it}"
    )
    pending.candidate = gitops.make_candidate(repo, inc.commit, message)
    pending.stage, pending.started, pending.token = "evaluating", time.time(), token
    runstate.save_pending(cfg.root, pending)
    gitops.move_ref(repo, f"refs/autoresearch/{run.tag}/pending", pending.candidate)

    log = runstate.run_dir(cfg.root, run.tag) / "logs" / f"{it}.log"
    out, damage = _checked_evaluate(cfg, repo, run, pending, cfg.root / layout.TRAIN, "cv", log, session)
    pending.record = _judge(cfg, repo, run, pending, out, damage, t0)
    pending.stage = "decided"
    runstate.save_pending(cfg.root, pending)
    _finish(cfg, repo, pending)
    rec = pending.record
    back_to = runstate.load_run(cfg.root, run.tag).incumbent.iter
    print(cards.step_line(rec, manifest.load_manifest(cfg)["metric"], cfg, back_to))
    if rec.status in keep_rule.FAILED:
        for line in rec.tail:
            print(f"  | {line}")
        return 1
    return 0


def _next_iter(cfg: Config, run: Run) -> int:
    done = [int(r["iter"]) for r in ledger.read(cfg.root, run.tag) if r["iter"].isdigit()]
    return max([run.iterations, *done]) + 1


def _check_position(repo, run: Run) -> None:
    branch, inc = run.branch, run.incumbent.commit
    here = gitops.current_branch(repo)
    if here != branch:
        where = "a detached HEAD" if here is None else f"branch {here}"
        raise UserError(
            f"the work tree is on {where}, not on the run's branch {branch}: "
            f"`git checkout {branch}` (or `uv run autoresearch start {run.tag}`), then step again"
        )
    at = gitops.tip(repo, branch)
    if at != inc:
        raise UserError(
            f"branch {branch} was moved by hand to {at[:8]}; the ratchet's incumbent is {inc[:8]}. "
            f"Put it back with `git reset --keep {inc[:12]}` (your commit stays in the reflog), then step again"
        )


def _record_invalid(cfg: Config, repo, run: Run, pending: Pending, bad: list[str], t0: float) -> int:
    bad = [text.shown(b, 600) for b in bad]
    pending.record = pending.base_record(
        status=INVALID, reason=bad[0], problems=bad, tail=bad[1:15], wall_s=time.monotonic() - t0
    )
    # journalled like every verdict: when the ledger append fails (a full disk) the next command records it
    pending.stage = "decided"
    runstate.save_pending(cfg.root, pending)
    _finish(cfg, repo, pending)
    m = manifest.load_manifest(cfg)
    print(cards.step_line(pending.record, m["metric"] if m else "score", cfg))
    for line in pending.record.tail:
        print(f"  | {line}")
    return 1


# ---------------------------------------------------------------------------
# Around the evaluation


def _checked_evaluate(
    cfg: Config, repo, run: Run, pending: Pending, train_py: Path, folds: str, log: Path, session=None
):
    """One sandboxed evaluation, then the checks that nothing else moved: (outcome, damage). Every evaluation
    of a step goes through here, the second look's too."""
    before = integrity.snapshot(cfg, repo, run.tag)
    out = engine.cross_validate(cfg, train_py, folds, log_path=log, token=pending.token, session=session)
    return out, integrity.post_checks(cfg, repo, run, pending.candidate, before, out.violations)


def _judge(cfg: Config, repo, run: Run, pending: Pending, out: engine.Outcome, damage: list[str], t0: float) -> Record:
    inc = run.incumbent
    rec = pending.base_record(
        status=CRASH,
        eval_s=out.wall_s,
        scores=out.scores,
        fold_s=out.fold_s,
        fit_s=sum(out.fit_s),
        cpu_s=sum(out.cpu_s),
        reason=text.shown(out.reason, 600) if out.reason else None,
        note=_sweep_note(cfg, run.tag),
    )
    if out.status == "ok":
        rec.mean, rec.se = out.mean, out.se
    m = manifest.load_manifest(cfg)
    if damage:
        rec.status, rec.reason, rec.tail = INVALID, text.shown(damage[0], 600), [text.shown(d, 600) for d in damage[1:]]
    elif out.status != "ok":
        rec.status = TIMEOUT if out.status == "timeout" else CRASH
        rec.tail = text.error_tail(out.tail)
        if out.status == "timeout":
            rec.reason = cards.timeout_reason(rec, cfg, m["n_folds"], out.fit_s)
    else:
        common = dict(
            higher_is_better=m["higher_is_better"],
            ratio=m["fold_ratio"],
            alpha=cfg.alpha,
            min_delta=cfg.min_delta,
            lighter=_lighter(cfg, repo, inc, pending, out),
            margin=keep_rule.margin_of(inc.se),
        )
        v = keep_rule.decide(
            out.scores, inc.scores, rule=cfg.keep_rule, second_look=m.get("n_confirm_folds", 0) > 0, **common
        )
        rec.status, rec.delta, rec.p_value, rec.p_worse, rec.reason, rec.se_delta = (
            v.status,
            v.delta,
            v.p_value,
            v.p_worse,
            v.reason,
            v.se_delta,
        )
        rec.p_not_worse, rec.margin = v.p_not_worse, common["margin"]
        if v.look_again:
            _second_look(cfg, repo, run, pending, rec, v, common)
    rec.wall_s = time.monotonic() - t0
    rec.budget_share = out.wall_s / cfg.budget_s
    return rec


def _lighter(cfg: Config, repo, inc: Incumbent, pending: Pending, out: engine.Outcome) -> keep_rule.Lighter:
    """What the candidate has besides its score, against the incumbent (whose counts an older run.json lacks)."""
    before = gitops.show(repo, inc.commit)
    now = gitops.show(repo, pending.candidate)
    return keep_rule.Lighter(
        simpler=pending.statements < (inc.statements or statements(before)),
        faster=keep_rule.faster(sum(out.fold_s), sum(out.cpu_s), inc.cost_s, inc.cpu_s, cfg.budget_s),
        knob=bool(search_space.new_knobs(now, before)),
    )


def _second_look(
    cfg: Config, repo, run: Run, pending: Pending, rec: Record, first: keep_rule.Verdict, common: dict
) -> None:
    """Borderline: score the incumbent (once per incumbent) and the candidate on the confirm folds, and let
    the keep rule combine both looks. Whatever stops the second look leaves the first look's NOOP."""
    pending.stage = "confirming"
    runstate.save_pending(cfg.root, pending)
    inc_scores, why, inc_eval_s = _incumbent_confirm_scores(cfg, repo, run, pending)
    if inc_scores is None:
        rec.reason = f"borderline; no second look: {why}"
        return
    log = runstate.run_dir(cfg.root, run.tag) / "logs" / f"{pending.iter}.confirm.log"
    out, damage = _checked_evaluate(cfg, repo, run, pending, cfg.root / layout.TRAIN, "confirm", log)
    if damage:
        rec.status, rec.reason, rec.tail = INVALID, text.shown(damage[0], 600), damage[1:]
        return
    if out.status != "ok":
        rec.reason = f"borderline; the second look {out.status}: {text.shown(out.reason or 'no scores', 300)}"
        return
    v = keep_rule.confirm(first, out.scores, inc_scores, first_n=len(run.incumbent.scores), **common)
    d2 = keep_rule.improvements(out.scores, inc_scores, common["higher_is_better"])
    rec.status, rec.p_value, rec.p_worse, rec.reason, rec.looks = v.status, v.p_value, v.p_worse, v.reason, v.looks
    rec.p_not_worse = v.p_not_worse
    rec.p_first, rec.confirm_scores = first.p_value, out.scores
    rec.confirm_delta, rec.pooled_delta = sum(d2) / len(d2), v.delta
    rec.confirm_se = keep_rule.corrected_se(d2, common["ratio"])
    rec.confirm_eval_s = out.wall_s + inc_eval_s  # both evaluations: the step's time beyond the first look


def _incumbent_confirm_scores(cfg: Config, repo, run: Run, pending: Pending) -> tuple[list[float] | None, str, float]:
    """The incumbent's confirm-fold scores: from run.json, else scored now from its commit (and stored); with
    why it failed and the evaluation's wall time."""
    inc = run.incumbent
    if inc.confirm_scores:
        return inc.confirm_scores, "", 0.0
    log = runstate.run_dir(cfg.root, run.tag) / "logs" / f"incumbent-{inc.iter}.confirm.log"
    with tempfile.TemporaryDirectory(prefix="autoresearch-incumbent-") as tmp:
        path = Path(tmp) / layout.TRAIN
        path.write_text(gitops.show(repo, inc.commit))
        out, damage = _checked_evaluate(cfg, repo, run, pending, path, "confirm", log)
    if damage:
        return None, "the harness changed while the incumbent was re-scored", out.wall_s
    if out.status != "ok":
        return None, f"the incumbent's re-scoring {out.status}: {out.reason or 'no scores'}", out.wall_s
    fresh = runstate.load_run(cfg.root, run.tag)
    fresh.incumbent.confirm_scores = inc.confirm_scores = out.scores
    runstate.save_run(cfg.root, fresh)
    return out.scores, "", out.wall_s


# ---------------------------------------------------------------------------
# Finishing a decided step (idempotent: recovery calls it again after a kill)


def _finish(cfg: Config, repo, pending: Pending) -> None:
    tag, rec = pending.tag, pending.record
    run = runstate.load_run(cfg.root, tag)
    branch, cand, inc = run.branch, pending.candidate, pending.incumbent
    if rec.status in keep_rule.KEPT:
        if gitops.tip(repo, branch) == inc:
            _score_holdout(cfg, tag, rec.iter, cand, cfg.root / layout.TRAIN)
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
    _store_record(cfg, rec)
    _bump_counters(run, rec.status, rec.iter)
    runstate.save_run(cfg.root, run)
    gitops.delete_ref(repo, f"refs/autoresearch/{tag}/pending")
    runstate.pending_path(cfg.root, tag).unlink(missing_ok=True)


def _store_record(cfg: Config, rec: Record) -> None:
    runstate.save_record(cfg.root, rec)
    if not any(r["iter"] == str(rec.iter) for r in ledger.read(cfg.root, rec.tag)):
        ledger.append(cfg.root, _row(rec))


def _bump_counters(run: Run, status: str, it: int) -> None:
    run.iterations = max(run.iterations, it)
    run.last_status = status
    run.consecutive_failures = run.consecutive_failures + 1 if status in keep_rule.FAILED else 0
    run.harness_errors = 0


def _sweep_note(cfg: Config, tag: str) -> str:
    """When train.py is exactly what `autoresearch sweep` wrote, the row says it came from a sweep."""
    from autoresearch.files import read_json

    info = read_json(runstate.run_dir(cfg.root, tag) / "sweep.json") or {}
    data = (cfg.root / layout.TRAIN).read_bytes()
    if info.get("train_sha256") != hashlib.sha256(data).hexdigest():
        return ""
    return (
        f"sweep: {info.get('trials', '?')} trials ({info.get('pruned', '?')} pruned), "
        f"search best {info.get('best_value', float('nan')):.4g}"
    )


def _row(rec: Record) -> dict:
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


def _score_holdout(cfg: Config, tag: str, it: int, commit: str, train_py: Path) -> None:
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
        _finish(cfg, repo, pending)
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
        lambda: _store_record(cfg, rec),
    ):
        try:
            action()
        except Exception:  # noqa: BLE001, S112 - each part is best effort; the row is what matters most
            continue
    fresh = runstate.load_run(cfg.root, run.tag) or run
    _bump_counters(fresh, CRASH, rec.iter)
    runstate.save_run(cfg.root, fresh)
    return f"recovered: iter {rec.iter} could not be finished ({why}); recorded as a crash, journal set aside"


def _set_aside(path: Path) -> Path:
    aside = path.with_name(f"{path.stem}.broken-{time.strftime('%Y%m%d-%H%M%S')}{path.suffix}")
    path.replace(aside)
    return aside


# ---------------------------------------------------------------------------
# stop


def add_arguments_stop(p) -> None:
    p.add_argument("--reason", default="stopped by the human", help="why (shown in the status card and report)")


def run_stop(args) -> int:
    cfg = load_config()
    run = runstate.current_run(cfg.root)
    run.status, run.stopped = "stopped", {"at": time.time(), "reason": text.shown(args.reason, 200)}
    runstate.save_run(cfg.root, run)
    print(
        f"run {run.tag} stopped ({run.stopped['reason']}); best {run.incumbent.mean:.4f} at iter "
        f"{run.incumbent.iter}. `uv run autoresearch start {run.tag}` resumes it; "
        "`uv run autoresearch report` writes the morning report."
    )
    return 0
