"""The ratchet's state machine: `start`, `step` and `stop`.

A step is one call: checks → commit the candidate (on no branch) → evaluate it in the sandbox → check again →
decide → keep (the branch ref moves) or revert (the work tree returns to the incumbent, the candidate stays
under refs/autoresearch/<tag>/discarded/<iter>) → one ledger row → one line. Everything after the candidate
exists is journalled (records.Pending), so a step killed at any moment is finished or undone by the next
command, and recorded. The checks live in autoresearch.integrity, the evaluation and its verdict in
autoresearch.judge, keeping or reverting and the recovery in autoresearch.finish, the text in autoresearch.cards.
"""

from __future__ import annotations

import argparse
import time

from autoresearch import (
    cards,
    engine,
    finish,
    gitops,
    integrity,
    judge,
    keep_rule,
    layout,
    ledger,
    manifest,
    runstate,
    search_space,
    text,
)
from autoresearch.config import Config, load_config
from autoresearch.contract import CATEGORIES, STEP_USAGE
from autoresearch.errors import NotCounted, UserError
from autoresearch.keep_rule import BASELINE, INVALID
from autoresearch.processes import new_token
from autoresearch.records import Incumbent, Pending, Record, Run
from autoresearch.static_check import declaration_problem, declarations, statements

# ---------------------------------------------------------------------------
# start


def run_start(args) -> int:
    cfg = load_config()
    tag = runstate.check_tag(args.tag or time.strftime("%b%d").lower())
    with runstate.Lock(cfg.root):
        repo = gitops.open_repo(cfg.root)
        integrity.refuse_plants(cfg, repo)
        branch = gitops.branch_name(tag)
        run = runstate.load_run(cfg.root, tag)
        if run is not None and gitops.current_branch(repo) == branch:
            for note in finish.recover(cfg, repo, run):  # a killed step left the tree dirty: finish it first
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
            for note in finish.recover(cfg, repo, run):
                print(note)
            run = runstate.load_run(cfg.root, tag)
        else:
            run = _baseline(cfg, repo, tag, m)
    notes = cfg.root / layout.NOTES
    if not notes.exists():
        notes.write_text("# Notes (your working memory; git-ignored, never committed)\n")
    print(cards.start_card(cfg, run, m, resumed))
    return 0


def add_arguments_start(p) -> None:
    p.add_argument(
        "tag",
        nargs="?",
        help="run name: the branch is autoresearch/<tag> (created, or resumed if it exists); default: today's "
        "date, e.g. nov23",
    )


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
    finish.score_holdout(cfg, tag, 0, commit, cfg.root / layout.TRAIN)
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
    ledger.append(cfg.root, finish.row(rec))
    runstate.save_run(cfg.root, run)
    runstate.set_active(cfg.root, tag)
    return run


# ---------------------------------------------------------------------------
# step


def add_arguments_step(p) -> None:
    p.epilog = (
        "Prints one line: iter | metric (delta, p) | verdict | seconds | category: hypothesis.\n"
        "Example: uv run autoresearch step --category model --hypothesis 'LightGBM: trees suit mixed columns'"
    )
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument(
        "--hypothesis",
        metavar="TEXT",
        type=_declared("HYPOTHESIS"),
        help="one line: what this change tries and why; written into train.py's HYPOTHESIS before the commit "
        "(the commit message and the ledger's text). Without it, train.py's own HYPOTHESIS, which must then "
        "differ from the incumbent's",
    )
    p.add_argument(
        "--category",
        metavar="WORD",
        type=_declared("CATEGORY"),
        help=f"one word ({CATEGORIES}), written into train.py's CATEGORY; SIMPLIFY and the plateau advice read it",
    )
    p.add_argument(
        "--note",
        metavar="TEXT",
        help="one line for notes.md, added with this iteration's number and verdict once the step has run "
        "(when you park a family or start the next phase: your memory after a compaction)",
    )


def _declared(name: str):
    def check(value: str) -> str:
        problem = declaration_problem(name, value)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value.strip()

    return check


def run_step(args) -> int:
    cfg = load_config()
    given = {
        k: v
        for k, v in (("HYPOTHESIS", getattr(args, "hypothesis", None)), ("CATEGORY", getattr(args, "category", None)))
        if v
    }
    try:
        with runstate.Lock(cfg.root):
            rc = _step(cfg, given)
    except NotCounted:
        raise
    except UserError as e:
        _count_harness_error(cfg, str(e))
        raise
    if getattr(args, "note", None):
        _add_note(cfg, args.note)
        print("note: added to notes.md")
    return rc


def _add_note(cfg: Config, note: str) -> None:
    run = runstate.current_run(cfg.root)
    line = f"- iter {run.iterations} ({cards.LABEL.get(run.last_status, run.last_status)}): {text.shown(note, 400)}\n"
    with open(cfg.root / layout.NOTES, "a", encoding="utf-8") as f:
        f.write(line)


def _count_harness_error(cfg: Config, message: str) -> None:
    """Consecutive refusals of `step` (not train.py crashes): the stop gate lets the agent go after a few."""
    tag = runstate.active_tag(cfg.root)
    run = runstate.load_run(cfg.root, tag) if tag else None
    if run is not None:
        run.harness_errors += 1
        run.last_harness_error = text.shown(message, 500)
        runstate.save_run(cfg.root, run)


def _step(cfg: Config, given: dict[str, str]) -> int:
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
        return _checked_step(cfg, t0, token, session, given)
    finally:
        if session is not None:
            session.close()
            if not session.used and log.is_file() and log.stat().st_size == 0:
                log.unlink()  # refused before it evaluated: no log for an evaluation that never was


def _checked_step(cfg: Config, t0: float, token: str, session, given: dict[str, str]) -> int:
    repo = gitops.open_repo(cfg.root)
    integrity.refuse_plants(cfg, repo)
    run = runstate.current_run(cfg.root)
    if run.status != "active":
        raise UserError(f"run {run.tag!r} is stopped; `uv run autoresearch start {run.tag}` resumes it")
    for note in finish.recover(cfg, repo, run):
        print(note)
    run = runstate.load_run(cfg.root, run.tag)
    _check_position(repo, run)
    inc = run.incumbent
    if gitops.blob_of_worktree(repo) == gitops.blob_at(repo, inc.commit):
        others = integrity.other_changes(cfg, repo, run)
        if others:  # the real problem first: something else changed (what is frozen is put back)
            raise UserError(
                others + "; and train.py itself is identical to the incumbent: edit it (one idea), then step"
            )
        raise NotCounted(f"train.py is identical to the incumbent: edit it (one idea), then {STEP_USAGE}")
    it = _next_iter(cfg, run)
    source = (cfg.root / layout.TRAIN).read_text(encoding="utf-8", errors="replace")
    if given:
        source = _declare(cfg, source, given)
    decl = {**declarations(source), **{k: text.clean(v) for k, v in given.items()}}
    if "HYPOTHESIS" not in given and decl["HYPOTHESIS"]:
        old = declarations(gitops.show(repo, inc.commit))["HYPOTHESIS"]
        if decl["HYPOTHESIS"] == old:
            raise NotCounted(
                f"train.py's HYPOTHESIS is still the incumbent's ({text.shown(old, 120)!r}): say what this change "
                f"tries: {STEP_USAGE}"
            )
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
    out, damage = judge.checked_evaluate(cfg, repo, run, pending, cfg.root / layout.TRAIN, "cv", log, session)
    pending.record = judge.judge(cfg, repo, run, pending, out, damage, t0)
    pending.stage = "decided"
    runstate.save_pending(cfg.root, pending)
    finish.finish(cfg, repo, pending)
    rec = pending.record
    back_to = runstate.load_run(cfg.root, run.tag).incumbent.iter
    steps = ledger.read(cfg.root, run.tag)
    print(cards.step_line(rec, manifest.load_manifest(cfg)["metric"], cfg, back_to, steps))
    if rec.status in keep_rule.FAILED:
        for line in rec.tail:
            print(f"  | {line}")
        return 1
    return 0


def _declare(cfg: Config, source: str, given: dict[str, str]) -> str:
    """Write step's --hypothesis/--category into train.py, so the commit holds what the ledger says."""
    try:
        new = search_space.rewrite(source, {}, given)
    except search_space.SearchSpaceError:
        return source  # unparsable: it crashes anyway, and the row still takes the flags' text
    (cfg.root / layout.TRAIN).write_text(new, encoding="utf-8")
    return new


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
    finish.finish(cfg, repo, pending)
    m = manifest.load_manifest(cfg)
    print(cards.step_line(pending.record, m["metric"] if m else "score", cfg))
    for line in pending.record.tail:
        print(f"  | {line}")
    return 1


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
