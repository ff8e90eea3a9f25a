"""The ratchet: `start`, `step` and `stop`.

A step is one call: check → commit the candidate (on no branch) → evaluate in the budgeted child →
check again → decide → keep (the branch ref moves) or revert (the work tree returns to the incumbent,
the candidate stays under refs/autoresearch/<tag>/discarded/<iter>) → one ledger row → one line.
Everything after the candidate exists is journalled in pending.json, so a step killed at any moment is
finished or undone by the next command, and recorded.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from pathlib import Path

from autoresearch import gitops, keep_rule, ledger, runstate
from autoresearch.config import Config, load_config
from autoresearch.errors import NotCounted, UserError
from autoresearch.harness import ensure_prepared, error_tail, evaluate, fold_scores
from autoresearch.keep_rule import BASELINE, CRASH, INVALID, KEEP, SIMPLIFY, TIMEOUT
from autoresearch.prepared import _write as reprepare
from autoresearch.prepared import frozen_files, load_manifest, problems
from autoresearch.runner import kill_token, new_token
from autoresearch.static_check import code_lines, declaration_problems, declarations, findings

CARD_HAS = ("metric", "folds", "budget")  # the start card's own lines: the data card need not repeat them
BUDGET_WARNING = 0.7  # share of the evaluation budget from which the step line warns
LABEL = {
    KEEP: "KEPT",
    SIMPLIFY: "SIMPLIFIED (kept)",
    keep_rule.NOOP: "NOOP (reverted)",
    keep_rule.DISCARD: "DISCARDED (reverted)",
    CRASH: "CRASH (reverted)",
    TIMEOUT: "TIMEOUT (reverted)",
    INVALID: "INVALID",
    BASELINE: "BASELINE",
}


# ---------------------------------------------------------------------------
# start


def add_arguments_start(p) -> None:
    p.add_argument(
        "tag",
        nargs="?",
        help="run name: the branch is autoresearch/<tag> (created, or resumed if it "
        "exists); default: today's date, e.g. nov23",
    )


def run_start(args) -> int:
    cfg = load_config()
    tag = runstate.check_tag(args.tag or time.strftime("%b%d").lower())
    with runstate.Lock(cfg.root):
        repo = gitops.open_repo(cfg.root)
        branch = gitops.branch_name(tag)
        run = runstate.load_run(cfg.root, tag)
        if run is not None and gitops.current_branch(repo) == branch:
            for note in recover(cfg, repo, run):  # a killed step left the tree dirty: finish it first
                print(note)
        dirty = [f for f in gitops.changed_files(repo) if f not in gitops.TOLERATED]
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
                ensure_prepared(cfg, omit=CARD_HAS)  # bad config or data is refused before the branch exists
            gitops.checkout_branch(repo, branch, None if exists else "HEAD")
        manifest = ensure_prepared(cfg, omit=CARD_HAS)
        run = runstate.load_run(cfg.root, tag)
        resumed = run is not None
        if resumed:
            if run["manifest_id"] != manifest["id"]:
                raise UserError(
                    f"run {tag!r} was scored on prepared data {run['manifest_id']}, now {manifest['id']} "
                    "(config, data or harness changed): start a new tag"
                )
            run["status"] = "active"
            run.pop("stopped", None)
            runstate.save_run(cfg.root, run)
            runstate.set_active(cfg.root, tag)
            for note in recover(cfg, repo, run):
                print(note)
            run = runstate.load_run(cfg.root, tag)
        else:
            run = _baseline(cfg, repo, tag, manifest)
    notes = cfg.root / "notes.md"
    if not notes.exists():
        notes.write_text("# Notes (your working memory; git-ignored, never committed)\n")
    print(card(cfg, run, manifest, resumed))
    return 0


def _baseline(cfg: Config, repo, tag: str, manifest: dict) -> dict:
    rdir = runstate.run_dir(cfg.root, tag)
    t0 = time.monotonic()
    for sub in ("logs", "iters"):
        (rdir / sub).mkdir(parents=True, exist_ok=True)
    result = evaluate(cfg, cfg.root / gitops.TRAIN, "cv", rdir / "logs" / "0.log")
    if result.status != "ok":
        tail = "\n".join(f"  | {line}" for line in error_tail(result))
        raise UserError(
            f"the baseline train.py does not evaluate ({result.status}: {result.reason}); "
            f"fix train.py, commit it, and start again\n{tail}"
        )
    commit = repo.head.commit.hexsha
    source = (cfg.root / gitops.TRAIN).read_text()
    done = result.last("done")
    incumbent = {
        "iter": 0,
        "commit": commit,
        "scores": done["scores"],
        "mean": done["mean"],
        "se": done["se"],
        "lines": code_lines(source),
    }
    run = {
        "tag": tag,
        "branch": gitops.branch_name(tag),
        "status": "active",
        "manifest_id": manifest["id"],
        "started_at": time.time(),
        "incumbent": incumbent,
        "baseline": incumbent,
        "iterations": 0,
        "consecutive_failures": 0,
        "harness_errors": 0,
    }
    _score_holdout(cfg, tag, 0, commit, cfg.root / gitops.TRAIN)
    decl = declarations(source)
    record = {
        "iter": 0,
        "tag": tag,
        "commit": commit,
        "status": BASELINE,
        "scores": done["scores"],
        "mean": done["mean"],
        "se": done["se"],
        "delta": None,
        "p_value": None,
        "wall_s": time.monotonic() - t0,
        "eval_s": result.wall_s,
        "category": decl["CATEGORY"] or "baseline",
        "hypothesis": decl["HYPOTHESIS"] or "baseline",
        "note": "",
    }
    runstate.write_json(rdir / "iters" / "0.json", record)
    ledger.append(cfg.root, _row(record))
    runstate.save_run(cfg.root, run)
    runstate.set_active(cfg.root, tag)
    return run


def card(cfg: Config, run: dict, manifest: dict, resumed: bool) -> str:
    inc, base = run["incumbent"], run["baseline"]
    n = manifest["n_folds"]
    rule = _rule_text(cfg, manifest) if cfg.keep_rule == "paired" else "strict (any better mean)"
    fold_rows = round(manifest["n_train"] * (1 - 1 / cfg.folds)) if not cfg.time_column else None
    return "\n".join(
        [
            f"run:       {run['tag']} on branch {run['branch']} "
            f"({'resumed at iter ' + str(run['iterations']) if resumed else 'new'})",
            f"metric:    {manifest['metric']} ({'higher' if manifest['higher_is_better'] else 'lower'} is better), "
            f"{n} scores per evaluation ({cfg.folds} folds x {cfg.repeats} repeats of the "
            f"{manifest['n_train']} train rows" + (f", ~{fold_rows} rows fit per fold)" if fold_rows else ")"),
            f"baseline:  {base['mean']:.4f} ± {base['se']:.4f} (± here: standard error of the CV mean; on a step line: "
            "of the paired Δ)",
            f"best:      {inc['mean']:.4f} ± {inc['se']:.4f} (iter {inc['iter']}, {inc['commit'][:8]})",
            f"keep rule: {rule}",
            f"features:  {feature_line(manifest)}",
            f"budget:    {cfg.budget_s:g} s and {cfg.memory_mb} MB per evaluation",
            "next:      edit train.py (HYPOTHESIS, CATEGORY, one idea), then run `uv run autoresearch step`",
        ]
    )


def _rule_text(cfg: Config, manifest: dict) -> str:
    n, looks = manifest["n_folds"], manifest.get("n_confirm_folds", 0)
    floor = f"; and Δ >= {cfg.min_delta:g}" if cfg.min_delta else ""
    if not looks:
        need = keep_rule.keep_threshold(cfg.alpha, n - 1)
        return (
            f"paired corrected t-test, alpha {cfg.alpha:g}: a keep needs Δ > {need:.2f} × the ± of its step line{floor}"
        )
    strong = keep_rule.keep_threshold(cfg.alpha * keep_rule.STRONG_SHARE, n - 1)
    look = keep_rule.keep_threshold(keep_rule.LOOK_P, n - 1)
    k = looks / n
    return (
        f"paired corrected t-test, alpha {cfg.alpha:g}: Δ > {strong:.2f} × the ± of its step line keeps at once; "
        f"{look:.2f} × ± < Δ ≤ {strong:.2f} × ± gets a second look on {looks} fresh folds (the step re-scores "
        f"both: {1 + k:.0f}-{1 + 2 * k:.0f} times as long, more on a busy machine) and is kept if all looks "
        f"together give p < {cfg.alpha:g}; Δ ≤ {look:.2f} × ± is a NOOP at once" + floor
    )


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
        run["harness_errors"] = run.get("harness_errors", 0) + 1
        run["last_harness_error"] = message
        runstate.save_run(cfg.root, run)


def _step(cfg: Config) -> int:
    t0 = time.monotonic()
    repo = gitops.open_repo(cfg.root)
    run = runstate.current_run(cfg.root)
    if run["status"] != "active":
        raise UserError(f"run {run['tag']!r} is stopped; `uv run autoresearch start {run['tag']}` resumes it")
    for note in recover(cfg, repo, run):
        print(note)
    run = runstate.load_run(cfg.root, run["tag"])
    _check_position(repo, run)
    inc = run["incumbent"]
    if gitops.blob_of_worktree(repo) == gitops.blob_at(repo, inc["commit"]):
        raise NotCounted(
            "train.py is identical to the incumbent: edit it (one idea, with HYPOTHESIS and CATEGORY) "
            "before `uv run autoresearch step`"
        )
    it = _next_iter(cfg, run)
    source = (cfg.root / gitops.TRAIN).read_text()
    decl = declarations(source)
    base = {
        "iter": it,
        "tag": run["tag"],
        "incumbent": inc["commit"],
        "category": decl["CATEGORY"] or "",
        "hypothesis": decl["HYPOTHESIS"] or "",
        "lines": code_lines(source),
    }
    bad = _pre_checks(cfg, repo, run, source)
    if bad:
        return _record_invalid(cfg, repo, run, base, bad, t0)

    message = f"{base['hypothesis']}\n\ncategory: {base['category']}\nautoresearch: {run['tag']} iter {it}"
    cand = gitops.make_candidate(repo, inc["commit"], message)
    pending = {**base, "stage": "evaluating", "candidate": cand, "started": time.time(), "token": new_token()}
    runstate.write_json(runstate.pending_path(cfg.root, run["tag"]), pending)
    gitops.move_ref(repo, f"refs/autoresearch/{run['tag']}/pending", cand)

    log = runstate.run_dir(cfg.root, run["tag"]) / "logs" / f"{it}.log"
    result, damage = _checked_evaluate(cfg, repo, run, pending, cfg.root / gitops.TRAIN, "cv", log)
    rec = _judge(cfg, repo, run, pending, result, damage, t0)
    pending.update(stage="decided", record=rec)
    runstate.write_json(runstate.pending_path(cfg.root, run["tag"]), pending)
    _finish(cfg, repo, pending)
    rec = pending["record"]
    print(one_line(rec, load_manifest(cfg)["metric"]))
    if rec["status"] in (CRASH, TIMEOUT, INVALID):
        for line in rec.get("tail", []):
            print(f"  | {line}")
        return 1
    return 0


def _next_iter(cfg: Config, run: dict) -> int:
    done = [int(r["iter"]) for r in ledger.read(cfg.root, run["tag"]) if r["iter"].isdigit()]
    return max([run["iterations"], *done]) + 1


def _check_position(repo, run: dict) -> None:
    branch, inc = run["branch"], run["incumbent"]["commit"]
    here = gitops.current_branch(repo)
    if here != branch:
        where = "a detached HEAD" if here is None else f"branch {here}"
        raise UserError(
            f"the work tree is on {where}, not on the run's branch {branch}: "
            f"`git checkout {branch}` (or `uv run autoresearch start {run['tag']}`), then step again"
        )
    at = gitops.tip(repo, branch)
    if at != inc:
        raise UserError(
            f"branch {branch} was moved by hand to {at[:8]}; the ratchet's incumbent is {inc[:8]}. "
            f"Put it back with `git reset --keep {inc[:12]}` (your commit stays in the reflog), then step "
            "again"
        )


def _pre_checks(cfg: Config, repo, run: dict, source: str) -> list[str]:
    bad = []
    others = [f for f in gitops.changed_files(repo) if f not in (gitops.TRAIN, *gitops.TOLERATED)]
    if others:
        restored = _restore_frozen(cfg, repo, run, others)
        bad.append(
            "only train.py may change, but these differ from the incumbent: "
            + ", ".join(others[:8])
            + (
                f" (frozen files restored from git: {', '.join(restored)})"
                if restored
                else "; undo them (git checkout -- FILE, or delete new files)"
            )
        )
    manifest = load_manifest(cfg)
    drift = problems(cfg, manifest) if manifest else ["data/manifest.json is missing"]
    if drift and manifest:
        _repair_harness(cfg, repo, run)
        bad.append("the harness differs from its manifest: " + "; ".join(drift[:4]) + " (restored)")
    elif drift:
        bad.append("data/manifest.json is missing: run `uv run prepare.py`")
    bad += [f"train.py {f}" for f in findings(source)]
    bad += declaration_problems(source)
    if manifest and manifest["id"] != run["manifest_id"]:
        bad.append(
            f"the prepared data changed since the run started ({run['manifest_id']} → {manifest['id']}): "
            "start a new run tag"
        )
    return bad


def _restore_frozen(cfg: Config, repo, run: dict, paths: list[str]) -> list[str]:
    frozen = set(load_manifest(cfg).get("frozen", {})) if load_manifest(cfg) else set()
    tracked = set(repo.git.ls_files().splitlines())
    fix = [p for p in paths if p in frozen and p in tracked]
    if fix:
        gitops.restore(repo, run["incumbent"]["commit"], *fix)
    return fix


def _record_invalid(cfg: Config, repo, run: dict, base: dict, bad: list[str], t0: float) -> int:
    rec = {
        **base,
        "commit": "",
        "status": INVALID,
        "reason": bad[0],
        "problems": bad,
        "wall_s": time.monotonic() - t0,
        "eval_s": 0.0,
        "tail": bad[1:15],
    }
    # journalled like every verdict: when the ledger append fails (a full disk) the next command records it
    pending = {**base, "stage": "decided", "candidate": None, "record": rec}
    runstate.write_json(runstate.pending_path(cfg.root, run["tag"]), pending)
    _finish(cfg, repo, pending)
    print(one_line(rec, load_manifest(cfg)["metric"] if load_manifest(cfg) else "score"))
    for line in rec["tail"]:
        print(f"  | {line}")
    return 1


# ---------------------------------------------------------------------------
# Around the evaluation: snapshot, damage check, verdict


def _checked_evaluate(cfg: Config, repo, run: dict, pending: dict, train_py: Path, mode: str, log: Path):
    """One budgeted evaluation child, then the checks that it left the harness and the candidate alone:
    (result, damage). Every evaluation of a step goes through here, the second look's too."""
    snapshot = _snapshot(cfg, run["tag"])
    result = evaluate(cfg, train_py, mode, log, token=pending["token"])
    return result, _post_checks(cfg, repo, run, pending["candidate"], snapshot, result)


def _snapshot(cfg: Config, tag: str) -> dict:
    """Bytes of the private files a hostile train.py could scribble on, to put them back."""
    rdir = runstate.run_dir(cfg.root, tag)
    files = [
        cfg.root / ledger.FILENAME,
        rdir / "run.json",
        rdir / "holdout.jsonl",
        runstate.state_dir(cfg.root) / "active.json",
        runstate.pending_path(cfg.root, tag),
    ]
    return {p: (p.read_bytes() if p.is_file() else None) for p in files}


def _post_checks(cfg: Config, repo, run: dict, cand: str, snapshot: dict, result) -> list[str]:
    damage = [e["reason"] for e in result.events if e.get("event") == "violation"][:10]  # each attempt, not the first
    for p, before in snapshot.items():
        now = p.read_bytes() if p.is_file() else None
        if now != before:
            damage.append(f"{p.relative_to(cfg.root)} was changed during the run (restored)")
            if before is None:
                p.unlink(missing_ok=True)
            else:
                p.write_bytes(before)
    if gitops.blob_of_worktree(repo) != gitops.blob_at(repo, cand):
        damage.append("train.py rewrote itself during the run")
    changed = [f for f in gitops.changed_files(repo) if f not in (gitops.TRAIN, *gitops.TOLERATED)]
    if changed:
        damage.append("files changed during the run: " + ", ".join(changed[:5]) + " (restored)")
        _undo_changes(cfg, repo, run, changed)
    manifest = load_manifest(cfg)
    drift = problems(cfg, manifest) if manifest else ["data/manifest.json was removed"]
    if drift:
        damage.append("harness changed during the run: " + "; ".join(drift[:3]) + " (restored)")
        _repair_harness(cfg, repo, run)
    return damage


def _undo_changes(cfg: Config, repo, run: dict, changed: list[str]) -> None:
    tracked = set(repo.git.ls_files().splitlines())
    inc = run["incumbent"]["commit"]
    for rel in changed:
        if rel in tracked:
            gitops.restore(repo, inc, rel)
        elif rel.startswith(("autoresearch/", ".claude/")) or rel in ("prepare.py",):
            (cfg.root / rel).unlink(missing_ok=True)


def _repair_harness(cfg: Config, repo, run: dict) -> None:
    manifest = load_manifest(cfg) or {}
    # planted files go first: re-preparing hashes the frozen files into the new manifest, which would
    # otherwise bless them (and report them as removed on every later step)
    added = set(frozen_files(cfg.root)) - set(manifest.get("frozen", {}))
    for rel in added:
        (cfg.root / rel).unlink(missing_ok=True)
    if any(p.startswith("data/") for p in problems(cfg, manifest)):
        new = reprepare(cfg)  # deterministic: the same split and folds, byte for byte
        if new["files"] != manifest.get("files"):
            raise UserError(
                "the prepared data could not be restored to its manifest; run `uv run prepare.py --force` "
                "and start a new run tag"
            )


def _judge(cfg: Config, repo, run: dict, pending: dict, result, damage: list[str], t0: float) -> dict:
    inc = run["incumbent"]
    rec = {k: pending[k] for k in ("iter", "tag", "incumbent", "category", "hypothesis", "lines")}
    rec.update(
        commit=pending["candidate"],
        eval_s=result.wall_s,
        scores=fold_scores(result),
        reason=result.reason,
        tail=[],
        note=_sweep_note(cfg, run["tag"]),
    )
    done = result.last("done")
    if done:
        rec.update(mean=done["mean"], se=done["se"], fit_s=done.get("fit_s"))
    if damage:
        rec.update(status=INVALID, reason=damage[0], tail=damage[1:])
    elif result.status != "ok":
        rec.update(status=CRASH if result.status == "crash" else TIMEOUT, tail=error_tail(result))
        if result.status == "timeout":
            rec["reason"] = _timeout_reason(result, cfg, load_manifest(cfg)["n_folds"])
    else:
        manifest = load_manifest(cfg)
        common = dict(
            higher_is_better=manifest["higher_is_better"],
            ratio=manifest["fold_ratio"],
            alpha=cfg.alpha,
            min_delta=cfg.min_delta,
            fewer_lines=pending["lines"] < inc["lines"],
        )
        v = keep_rule.decide(
            done["scores"],
            inc["scores"],
            rule=cfg.keep_rule,
            second_look=manifest.get("n_confirm_folds", 0) > 0,
            **common,
        )
        rec.update(
            status=v.status, delta=v.delta, p_value=v.p_value, p_worse=v.p_worse, reason=v.reason, se_delta=v.se_delta
        )
        if v.look_again:
            rec.update(_second_look(cfg, repo, run, pending, v, common))
    rec["wall_s"] = time.monotonic() - t0
    rec["budget_share"] = result.wall_s / cfg.budget_s
    return rec


def _second_look(cfg: Config, repo, run: dict, pending: dict, first: keep_rule.Verdict, common: dict) -> dict:
    """Borderline: score the incumbent (once per incumbent) and the candidate on the confirm folds, and let
    the keep rule combine both looks. Whatever stops the second look leaves the first look's NOOP."""
    pending["stage"] = "confirming"
    runstate.write_json(runstate.pending_path(cfg.root, run["tag"]), pending)
    inc_scores, why, inc_eval_s = _incumbent_confirm_scores(cfg, repo, run, pending)
    if inc_scores is None:
        return {"reason": f"borderline; no second look: {why}"}
    log = runstate.run_dir(cfg.root, run["tag"]) / "logs" / f"{pending['iter']}.confirm.log"
    result, damage = _checked_evaluate(cfg, repo, run, pending, cfg.root / gitops.TRAIN, "confirm", log)
    if damage:
        return {"status": INVALID, "reason": damage[0], "tail": damage[1:]}
    done = result.last("done")
    if result.status != "ok" or not done:
        return {"reason": f"borderline; the second look {result.status}: {result.reason or 'no scores'}"}
    v = keep_rule.confirm(first, done["scores"], inc_scores, first_n=len(run["incumbent"]["scores"]), **common)
    d2 = keep_rule.improvements(done["scores"], inc_scores, common["higher_is_better"])
    return {
        "status": v.status,
        "p_value": v.p_value,
        "p_worse": v.p_worse,
        "reason": v.reason,
        "looks": v.looks,
        "p_first": first.p_value,
        "confirm_scores": done["scores"],
        "confirm_delta": sum(d2) / len(d2),
        "pooled_delta": v.delta,
        "confirm_se": keep_rule.corrected_se(d2, common["ratio"]),
        "confirm_eval_s": result.wall_s + inc_eval_s,
    }  # both children: the step's time beyond the first look


def _incumbent_confirm_scores(cfg: Config, repo, run: dict, pending: dict) -> tuple[list[float] | None, str, float]:
    """The incumbent's confirm-fold scores: from run.json, else scored now from its commit (and stored);
    with why it failed and the child's wall time."""
    inc = run["incumbent"]
    if inc.get("confirm_scores"):
        return inc["confirm_scores"], "", 0.0
    log = runstate.run_dir(cfg.root, run["tag"]) / "logs" / f"incumbent-{inc['iter']}.confirm.log"
    with tempfile.TemporaryDirectory(prefix="autoresearch-incumbent-") as tmp:
        path = Path(tmp) / gitops.TRAIN
        path.write_text(gitops.show(repo, inc["commit"]))
        result, damage = _checked_evaluate(cfg, repo, run, pending, path, "confirm", log)
    if damage:
        return None, "the harness changed while the incumbent was re-scored", result.wall_s
    done = result.last("done")
    if result.status != "ok" or not done:
        return None, f"the incumbent's re-scoring {result.status}: {result.reason or 'no scores'}", result.wall_s
    fresh = runstate.load_run(cfg.root, run["tag"])
    fresh["incumbent"]["confirm_scores"] = inc["confirm_scores"] = done["scores"]
    runstate.save_run(cfg.root, fresh)
    return done["scores"], "", result.wall_s


def feature_line(manifest: dict, limit: int = 700) -> str:
    """Column names and kinds: train.py cannot read the data, so this is how the agent learns the schema."""
    kind = {"category": "cat"}
    cols = [
        f"{c} ({kind.get(t, 'num' if t.startswith(('int', 'float', 'Int', 'Float')) else t)})"
        for c, t in manifest["columns"].items()
    ]
    text = ", ".join(cols)
    return text if len(text) <= limit else text[: limit - 5] + ", ..."


def _timeout_reason(result, cfg: Config, n_folds: int) -> str:
    """How far it got, so the agent knows how much cheaper the next try must be."""
    folds = [e for e in result.events if e.get("event") == "fold"]
    if not folds:
        return f"over the {cfg.budget_s:g} s budget before the first of {n_folds} folds finished"
    per = sum(e.get("fit_s", 0) for e in folds) / len(folds)
    return (
        f"over the {cfg.budget_s:g} s budget after {len(folds)}/{n_folds} folds (~{per:.0f} s fit per fold; "
        f"all folds need ~{per * n_folds:.0f} s)"
    )


# ---------------------------------------------------------------------------
# Finishing a decided step (idempotent: recovery calls it again after a kill)


def _finish(cfg: Config, repo, pending: dict) -> None:
    tag, rec = pending["tag"], pending["record"]
    run = runstate.load_run(cfg.root, tag)
    branch, cand, inc = run["branch"], pending["candidate"], pending["incumbent"]
    if rec["status"] in (KEEP, SIMPLIFY):
        if gitops.tip(repo, branch) == inc:
            _score_holdout(cfg, tag, rec["iter"], cand, cfg.root / gitops.TRAIN)
            gitops.move_ref(repo, f"refs/heads/{branch}", cand, inc, f"autoresearch: keep iter {rec['iter']}")
        if gitops.current_branch(repo) == branch:
            gitops.sync_index(repo)
        if run["incumbent"]["commit"] != cand:
            run["incumbent"] = {
                "iter": rec["iter"],
                "commit": cand,
                "scores": rec["scores"],
                "mean": rec["mean"],
                "se": rec["se"],
                "lines": rec["lines"],
                "confirm_scores": rec.get("confirm_scores"),
            }
    elif cand:  # an invalid step refused before the commit has nothing to set aside or revert
        gitops.move_ref(repo, f"refs/autoresearch/{tag}/discarded/{rec['iter']}", cand)
        if gitops.blob_of_worktree(repo) == gitops.blob_at(repo, cand):
            gitops.restore(repo, inc, gitops.TRAIN)
    _store_record(cfg, tag, rec)
    _bump_counters(run, rec["status"], rec["iter"])
    runstate.save_run(cfg.root, run)
    gitops.delete_ref(repo, f"refs/autoresearch/{tag}/pending")
    runstate.pending_path(cfg.root, tag).unlink(missing_ok=True)


def _store_record(cfg: Config, tag: str, rec: dict) -> None:
    runstate.write_json(runstate.run_dir(cfg.root, tag) / "iters" / f"{rec['iter']}.json", rec)
    if not any(r["iter"] == str(rec["iter"]) for r in ledger.read(cfg.root, tag)):
        ledger.append(cfg.root, _row(rec))


def _bump_counters(run: dict, status: str, it: int) -> None:
    run["iterations"] = max(run["iterations"], it)
    run["last_status"] = status
    failed = status in (CRASH, TIMEOUT, INVALID)
    run["consecutive_failures"] = run.get("consecutive_failures", 0) + 1 if failed else 0
    run["harness_errors"] = 0


def _sweep_note(cfg: Config, tag: str) -> str:
    """When train.py is exactly what `autoresearch sweep` wrote, the row says it came from a sweep."""
    import hashlib

    info = runstate.read_json(runstate.run_dir(cfg.root, tag) / "sweep.json") or {}
    text = (cfg.root / gitops.TRAIN).read_bytes()
    if info.get("train_sha256") != hashlib.sha256(text).hexdigest():
        return ""
    return (
        f"sweep: {info.get('trials', '?')} trials ({info.get('pruned', '?')} pruned), "
        f"search best {info.get('best_value', float('nan')):.4g}"
    )


def _row(rec: dict) -> dict:
    reason = "" if rec["status"] in (KEEP, BASELINE) else rec.get("reason") or ""
    looked = (
        (
            f"second look: Δ {rec['confirm_delta']:+.4g} on {len(rec['confirm_scores'])} fresh folds, p of both "
            f"looks {rec['p_value']:.3g} (first {rec['p_first']:.3g})"
        )
        if rec.get("looks") == 2
        else ""
    )
    note = "; ".join(x for x in (rec.get("note"), looked, reason.removeprefix("second look: ")) if x)
    return {
        "iter": rec["iter"],
        "tag": rec["tag"],
        "commit": (rec.get("commit") or "")[:12],
        "status": rec["status"],
        "metric": rec.get("mean"),
        "delta": rec.get("delta"),
        "p_value": rec.get("p_value"),
        "se": rec.get("se"),
        "wall_s": rec.get("wall_s"),
        "eval_s": rec.get("eval_s"),
        "category": rec.get("category"),
        "hypothesis": rec.get("hypothesis"),
        "note": note,
    }


def _score_holdout(cfg: Config, tag: str, it: int, commit: str, train_py: Path) -> None:
    """Scored for the baseline and each kept commit; written where only the report reads it."""
    path = runstate.run_dir(cfg.root, tag) / "holdout.jsonl"
    if path.is_file() and any(json.loads(x).get("iter") == it for x in path.read_text().splitlines() if x.strip()):
        return
    result = evaluate(cfg, train_py, "holdout", runstate.run_dir(cfg.root, tag) / "logs" / f"{it}.holdout.log")
    done = result.last("done") or {}
    entry = {
        "iter": it,
        "commit": commit,
        "holdout": done.get("holdout"),
        "status": result.status,
        "reason": result.reason,
        "time": time.time(),
    }
    with open(path, "a") as f:
        f.write(json.dumps(entry) + "\n")


def one_line(rec: dict, metric: str) -> str:
    """`iter 7 | roc_auc 0.9182 (Δ +0.0041, p=0.01) | KEPT | 3.1s | model: LightGBM with 31 leaves`"""
    hyp, cat = rec["hypothesis"] or "?", rec["category"] or "?"
    what = hyp if hyp.lower().startswith(cat.lower() + ":") else f"{cat}: {hyp}"
    secs = f"{rec.get('wall_s', 0):.1f}s"
    if rec["status"] in (CRASH, TIMEOUT, INVALID):
        parts = [f"iter {rec['iter']}", LABEL[rec["status"]], rec.get("reason") or "", secs, what]
        if rec["status"] != INVALID:
            parts.append(f"code kept at refs/autoresearch/{rec['tag']}/discarded/{rec['iter']}")
        else:
            parts[1] += ", nothing committed" if not rec.get("commit") else ""
        return " | ".join(p for p in parts if p)
    score = f"{metric} {rec['mean']:.4f}"
    if rec.get("delta") is not None:
        score += f" (Δ {rec['delta']:+.4f}{_pm(rec.get('se_delta'))}{_p_text(rec)})"
    label = LABEL[rec["status"]]
    if rec["status"] == keep_rule.NOOP and _near_miss(rec):
        label = "NOOP (reverted, near-miss)"
    parts = [f"iter {rec['iter']}", score, *_second_look_text(rec), label, secs, what]
    if rec.get("budget_share", 0) >= BUDGET_WARNING:
        whose = "" if rec["status"] in (KEEP, SIMPLIFY) else " (this reverted candidate)"
        parts.append(f"warning: used {rec['budget_share']:.0%} of the evaluation budget{whose}")
    return " | ".join(parts)


def _first_p(rec: dict):
    """The first look's p: after a second look, p_value is the combined one (it has a segment of its own)."""
    return rec.get("p_first", rec.get("p_value"))


def _near_miss(rec: dict) -> bool:
    """Program rule 4's near-miss: a NOOP that earned a second look, or one with Δ > 0 and p < LOOK_P."""
    p = _first_p(rec)
    return rec.get("looks") == 2 or ((rec.get("delta") or 0) > 0 and p is not None and p < keep_rule.LOOK_P)


def _second_look_text(rec: dict) -> list[str]:
    if rec.get("looks") == 2:
        n, se = len(rec.get("confirm_scores") or []), rec.get("confirm_se")
        return [f"2nd look ({n} fresh folds): Δ {rec['confirm_delta']:+.4f}{_pm(se)}, all looks p={rec['p_value']:.2g}"]
    return []


def _pm(se) -> str:
    return "" if se is None or math.isnan(se) else f" ± {se:.4f}"


def _p_text(rec: dict) -> str:
    """The p-value of the verdict's own direction: 'worse' for a discard, 'better' otherwise."""
    if (rec["status"] == keep_rule.DISCARD or (rec.get("delta") or 0) < 0) and rec.get("p_worse") is not None:
        return f", p(worse)={rec['p_worse']:.2g}"
    p = _first_p(rec)
    return "" if p is None or math.isnan(p) else f", p={p:.2g}"


# ---------------------------------------------------------------------------
# Recovery after a kill


def recover(cfg: Config, repo, run: dict) -> list[str]:
    notes = []
    torn = ledger.repair(cfg.root)
    if torn:
        notes.append(f"recovered: {torn}")
    path = runstate.pending_path(cfg.root, run["tag"])
    pending = runstate.read_json(path)
    if pending is None:
        if gitops.current_branch(repo) == run["branch"]:
            gitops.sync_index(repo)
        return notes
    if pending.get("token"):
        kill_token(pending["token"])  # whatever the killed step's evaluation left running
    if pending.get("stage") != "decided":
        # killed before a verdict: the candidate was never kept; record the interruption, keep the code
        where = " (its second look)" if pending.get("stage") == "confirming" else ""
        pending["stage"] = "decided"
        pending["record"] = {k: pending[k] for k in ("iter", "tag", "incumbent", "category", "hypothesis", "lines")}
        pending["record"].update(
            commit=pending["candidate"],
            status=CRASH,
            eval_s=0.0,
            scores=[],
            tail=[],
            wall_s=time.time() - pending.get("started", time.time()),
            reason=f"interrupted: the step was killed during evaluation{where}",
        )
        runstate.write_json(path, pending)
    _finish(cfg, repo, pending)
    rec = pending["record"]
    notes.append(
        f"recovered: iter {rec['iter']} was interrupted and is now recorded as "
        f"{LABEL[rec['status']]} ({rec.get('reason') or 'decided before the interruption'})"
    )
    return notes


# ---------------------------------------------------------------------------
# stop


def add_arguments_stop(p) -> None:
    p.add_argument("--reason", default="stopped by the human", help="why (shown in the status card and report)")


def run_stop(args) -> int:
    cfg = load_config()
    run = runstate.current_run(cfg.root)
    run.update(status="stopped", stopped={"at": time.time(), "reason": args.reason})
    runstate.save_run(cfg.root, run)
    print(
        f"run {run['tag']} stopped ({args.reason}); best {run['incumbent']['mean']:.4f} at iter "
        f"{run['incumbent']['iter']}. `uv run autoresearch start {run['tag']}` resumes it; "
        "`uv run autoresearch report` writes the morning report."
    )
    return 0
