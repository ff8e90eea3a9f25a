"""A candidate's evaluation and its verdict: one sandboxed run on the folds with the integrity checks around it,
the keep rule's first look, and the second look on fresh folds when the first was borderline."""

from __future__ import annotations

import hashlib
import math
import tempfile
import time
from pathlib import Path

from autoresearch import cards, engine, gitops, integrity, keep_rule, layout, manifest, runstate, search_space, text
from autoresearch.config import Config
from autoresearch.keep_rule import CRASH, INVALID, TIMEOUT
from autoresearch.records import Incumbent, Pending, Record, Run
from autoresearch.static_check import statements


def checked_evaluate(
    cfg: Config, repo, run: Run, pending: Pending, train_py: Path, folds: str, log: Path, session=None
):
    """One sandboxed evaluation, then the checks that nothing else moved: (outcome, damage). Every evaluation
    of a step goes through here, the second look's too."""
    before = integrity.snapshot(cfg, repo, run.tag)
    budget = cfg.budget_s
    if folds == "confirm":  # the budget is per evaluation of the ratchet's folds: the second look has more
        m = manifest.load_manifest(cfg) or {}
        budget *= max(1.0, m.get("n_confirm_folds", 0) / max(m.get("n_folds", 1), 1))
    out = engine.cross_validate(
        cfg, train_py, folds, log_path=log, token=pending.token, session=session, budget_s=budget
    )
    return out, integrity.post_checks(cfg, repo, run, pending.candidate, before, out.violations)


def judge(cfg: Config, repo, run: Run, pending: Pending, out: engine.Outcome, damage: list[str], t0: float) -> Record:
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
        lighter, what = _lighter(cfg, repo, inc, pending, out)
        terms = keep_rule.Terms(
            higher_is_better=m["higher_is_better"],
            ratio=m["fold_ratio"],
            alpha=cfg.alpha,
            min_delta=cfg.min_delta,
            margin=keep_rule.margin_of(inc.se),
            lighter=lighter,
        )
        v = keep_rule.decide(
            out.scores, inc.scores, terms, rule=cfg.keep_rule, second_look=m.get("n_confirm_folds", 0) > 0
        )
        rec.status, rec.delta, rec.p_value, rec.p_worse, rec.reason, rec.se_delta = (
            v.status,
            v.delta,
            v.p_value,
            v.p_worse,
            v.reason,
            v.se_delta,
        )
        rec.p_not_worse, rec.margin = v.p_not_worse, terms.margin
        if v.look_again:
            _second_look(cfg, repo, run, pending, rec, v, terms)
        elif rec.status in what:
            rec.reason = what[rec.status]
        elif rec.status == keep_rule.NOOP and v.p_not_worse < cfg.alpha:  # not worse, and not kept: why not
            simplify = rec.category.lower() == "simplify"
            rec.reason = what.get("moved") or what.get("cpu") or (what["not lighter"] if simplify else rec.reason)
        elif rec.status == keep_rule.NOOP and rec.category.lower() == "simplify":  # not shown not worse: say so
            rec.reason = (
                f"{keep_rule.NOT_SHOWN}: p(worse by the margin {terms.margin:.4f})={v.p_not_worse:.2g}, "
                f"not worse needs < {cfg.alpha:g}"
            )
    rec.wall_s = time.monotonic() - t0
    rec.budget_share = out.wall_s / cfg.budget_s
    return rec


def _lighter(
    cfg: Config, repo, inc: Incumbent, pending: Pending, out: engine.Outcome
) -> tuple[keep_rule.Lighter, dict[str, str]]:
    """What the candidate has besides its score, against the incumbent (whose counts an older run.json lacks),
    and for each verdict it could earn, the words that say why ("moved": new knobs whose scores moved; "not
    lighter": what SIMPLIFIED and FASTER would have needed).
    KNOB ADDED needs the incumbent's very fold scores: a knob added at the value the model used changes
    nothing, so anything else is a change of the model that has to win on its own."""
    before = gitops.show(repo, inc.commit)
    now = gitops.show(repo, pending.candidate)
    had = inc.statements or statements(before)
    keys = search_space.new_knobs(now, before)
    # "the same" up to the last bits: a forest with n_jobs > 1 sums its trees in thread order (dogfood round
    # 5: an RMSE of 70,000 moved by ~1e-11 between two runs of one model)
    same = len(out.scores) == len(inc.scores) and all(
        math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) for a, b in zip(out.scores, inc.scores, strict=True)
    )
    folds, what = sum(out.fold_s), {}
    what[keep_rule.SIMPLIFY] = f"{had} -> {pending.statements} executable statements"
    what[keep_rule.FASTER] = f"{folds:.0f}s on the folds (the incumbent's {inc.cost_s:.0f}s)"
    what[keep_rule.KNOB] = f"new knobs {', '.join(keys)}, same fold scores: sweep them next"
    # a simplification that was not worse and still not kept: what SIMPLIFIED and FASTER would have needed
    what["not lighter"] = f"not worse, not lighter: {pending.statements} statements (SIMPLIFIED needs < {had})"
    limit = keep_rule.faster_wall_limit(inc.cost_s, cfg.budget_s)  # nan for an older run.json's incumbent
    if limit == limit:
        what["not lighter"] += f", {folds:.0f}s on the folds (FASTER needs <= {limit:.0f}s)"
    cpu = sum(out.cpu_s)
    faster = keep_rule.faster(folds, cpu, inc.cost_s, inc.cpu_s, cfg.budget_s)
    if not faster and folds <= limit and inc.cpu_s == inc.cpu_s:
        what["cpu"] = (
            f"not worse, not FASTER: {folds:.0f}s on the folds (the incumbent's {inc.cost_s:.0f}s), but "
            f"{cpu:.0f} CPU-s (the incumbent's {inc.cpu_s:.0f}): FASTER needs {keep_rule.FASTER_SHARE:.0%} less "
            "CPU time too (the same work on more threads is not cheaper)"
        )
    if keys and not same:
        what["moved"] = (
            f"not worse, not KNOB ADDED: new knobs {', '.join(keys)}, but the fold scores moved (KNOB ADDED "
            "needs them at the values the model used, then a sweep)"
        )
    return keep_rule.Lighter(
        simpler=pending.statements < had,
        faster=faster,
        knob=bool(keys) and same,
    ), what


def _second_look(
    cfg: Config, repo, run: Run, pending: Pending, rec: Record, first: keep_rule.Verdict, terms: keep_rule.Terms
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
    out, damage = checked_evaluate(cfg, repo, run, pending, cfg.root / layout.TRAIN, "confirm", log)
    if damage:
        rec.status, rec.reason, rec.tail = INVALID, text.shown(damage[0], 600), damage[1:]
        return
    if out.status != "ok":
        rec.reason = f"borderline; the second look {out.status}: {text.shown(out.reason or 'no scores', 300)}"
        return
    v = keep_rule.confirm(first, out.scores, inc_scores, terms, first_n=len(run.incumbent.scores))
    d2 = keep_rule.improvements(out.scores, inc_scores, terms.higher_is_better)
    rec.status, rec.p_value, rec.p_worse, rec.reason, rec.looks = v.status, v.p_value, v.p_worse, v.reason, v.looks
    rec.p_not_worse = v.p_not_worse
    rec.p_first, rec.confirm_scores = first.p_value, out.scores
    rec.confirm_delta, rec.pooled_delta = sum(d2) / len(d2), v.delta
    rec.confirm_se = keep_rule.corrected_se(d2, terms.ratio)
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
        out, damage = checked_evaluate(cfg, repo, run, pending, path, "confirm", log)
    if damage:
        return None, "the harness changed while the incumbent was re-scored", out.wall_s
    if out.status != "ok":
        return None, f"the incumbent's re-scoring {out.status}: {out.reason or 'no scores'}", out.wall_s
    fresh = runstate.load_run(cfg.root, run.tag)
    fresh.incumbent.confirm_scores = inc.confirm_scores = out.scores
    runstate.save_run(cfg.root, fresh)
    return out.scores, "", out.wall_s


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
