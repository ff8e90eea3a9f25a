"""The text the agent reads: the start card, the step line, the status card. Import-light on purpose (no git,
no numpy): the SessionStart hook prints the status card into every resumed or compacted session.
"""

from __future__ import annotations

import math
import time

from autoresearch import keep_rule, ledger, sandbox, text
from autoresearch.config import Config
from autoresearch.keep_rule import BASELINE, CRASH, INVALID, KEEP, SIMPLIFY, TIMEOUT
from autoresearch.metrics import direction
from autoresearch.records import Record, Run

WIDTH = 110  # a card line at most, before it wraps
BUDGET_WARNING = 0.7  # share of the evaluation budget from which the step line warns
LAST_ROWS = 10
STATUS_LINES = 30
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
DATA_CARD_HAS = ("metric", "folds", "budget")  # the start card's own lines: the data card need not repeat them


# ---------------------------------------------------------------------------
# The start card


def start_card(cfg: Config, run: Run, manifest: dict, resumed: bool) -> str:
    inc, base = run.incumbent, run.baseline
    n = manifest["n_folds"]
    rule = rule_text(cfg, manifest) if cfg.keep_rule == "paired" else "strict (any better mean)"
    fold_rows = round(manifest["n_train"] * (1 - 1 / cfg.folds)) if not cfg.time_column else None
    lines = [
        f"run:       {run.tag} on branch {run.branch} ({f'resumed at iter {run.iterations}' if resumed else 'new'})",
        f"metric:    {manifest['metric']} ({direction(manifest['higher_is_better'])}), {n} scores per evaluation "
        f"({cfg.folds} folds x {cfg.repeats} repeats of the {manifest['n_train']} train rows"
        + (f", ~{fold_rows} rows fit per fold)" if fold_rows else ")"),
        f"baseline:  {base.mean:.4f} ± {base.se:.4f} (± here: standard error of the CV mean; on a step line: "
        "of the paired Δ)",
        f"best:      {inc.mean:.4f} ± {inc.se:.4f} (iter {inc.iter}, {inc.commit[:8]})",
        f"keep rule: {rule}",
        *labelled("features:  ", feature_items(manifest)),
        f"budget:    {cfg.budget_s:g} s and {cfg.memory_mb} MB per evaluation",
        *_unprotected(cfg),
        "next:      edit train.py (HYPOTHESIS, CATEGORY, one idea), then run `uv run autoresearch step`",
    ]
    return "\n".join(lines)


def rule_text(cfg: Config, manifest: dict) -> str:
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


def feature_items(manifest: dict) -> list[str]:
    """Column names and kinds: train.py cannot read the data, so this is how the agent learns the schema."""
    kind = {"category": "cat"}
    return [
        f"{c} ({kind.get(t, 'num' if t.startswith(('int', 'float', 'Int', 'Float')) else t)})"
        for c, t in manifest["columns"].items()
    ]


def labelled(label: str, items: list[str], width: int = WIDTH, max_lines: int | None = None) -> list[str]:
    """`label` then the items, comma-separated and wrapped under it: every item whole, none cut. With
    max_lines, the last line says how many items did not fit."""
    pad = " " * len(label)
    lines, current = [], label
    for i, item in enumerate(items):
        piece = item + ("," if i < len(items) - 1 else "")
        if current.strip() and len(current) + 1 + len(piece) > width and current not in (label, pad):
            lines.append(current.rstrip())
            current = pad
        current += ("" if current in (label, pad) else " ") + piece
    lines.append(current.rstrip())
    if max_lines is not None and len(lines) > max_lines:
        shown = " ".join(lines[:max_lines]).count(",")
        lines = lines[:max_lines]
        lines[-1] += f" ... and {len(items) - shown} more"
    return lines


def _unprotected(cfg: Config) -> list[str]:
    return [] if cfg.sandbox else [f"warning:   {sandbox.UNPROTECTED}"]


# ---------------------------------------------------------------------------
# The step line


def step_line(rec: Record, metric: str, cfg: Config | None = None) -> str:
    """`iter 7 | roc_auc 0.9182 (Δ +0.0041 ± 0.0018, p=0.01) | KEPT | 3.1s | model: LightGBM with 31 leaves`"""
    hyp, cat = rec.hypothesis or "?", rec.category or "?"
    what = text.shown(hyp if hyp.lower().startswith(cat.lower() + ":") else f"{cat}: {hyp}")
    secs = f"{rec.wall_s:.1f}s"
    unprotected = [] if cfg is None or cfg.sandbox else ["not protected (sandbox = false)"]
    if rec.status in (CRASH, TIMEOUT, INVALID):
        parts = [f"iter {rec.iter}", LABEL[rec.status], rec.reason or "", secs, what]
        if rec.status != INVALID:
            parts.append(f"code kept at refs/autoresearch/{rec.tag}/discarded/{rec.iter}")
        elif not rec.commit:
            parts[1] += ", nothing committed"
        return " | ".join(p for p in parts + unprotected if p)
    score = f"{metric} {rec.mean:.4f}"
    if rec.delta is not None:
        score += f" (Δ {rec.delta:+.4f}{_pm(rec.se_delta)}{_p_text(rec)})"
    label = LABEL[rec.status]
    if rec.status == keep_rule.NOOP and near_miss(rec):
        label = "NOOP (reverted, near-miss)"
    parts = [f"iter {rec.iter}", score, *_second_look_text(rec), label, secs, what]
    if rec.budget_share >= BUDGET_WARNING:
        whose = "" if rec.status in keep_rule.KEPT else " (this reverted candidate)"
        parts.append(f"warning: used {rec.budget_share:.0%} of the evaluation budget{whose}")
    return " | ".join(parts + unprotected)


def first_p(rec: Record):
    """The first look's p: after a second look, p_value is the combined one (it has a segment of its own)."""
    return rec.p_first if rec.p_first is not None else rec.p_value


def near_miss(rec: Record) -> bool:
    """Program rule 4's near-miss: a NOOP that earned a second look, or one with Δ > 0 and p < LOOK_P."""
    p = first_p(rec)
    return rec.looks == 2 or ((rec.delta or 0) > 0 and p is not None and p < keep_rule.LOOK_P)


def _second_look_text(rec: Record) -> list[str]:
    if rec.looks == 2:
        n = len(rec.confirm_scores or [])
        return [
            f"2nd look ({n} fresh folds): Δ {rec.confirm_delta:+.4f}{_pm(rec.confirm_se)}, "
            f"all looks p={rec.p_value:.2g}"
        ]
    return []


def _pm(se) -> str:
    return "" if se is None or math.isnan(se) else f" ± {se:.4f}"


def _p_text(rec: Record) -> str:
    """The p-value of the verdict's own direction: 'worse' for a discard, 'better' otherwise."""
    if (rec.status == keep_rule.DISCARD or (rec.delta or 0) < 0) and rec.p_worse is not None:
        return f", p(worse)={rec.p_worse:.2g}"
    p = first_p(rec)
    return "" if p is None or math.isnan(p) else f", p={p:.2g}"


def timeout_reason(rec: Record, cfg: Config, n_folds: int, fit_s: list[float]) -> str:
    """How far it got, so the agent knows how much cheaper the next try must be."""
    if not fit_s:
        return f"over the {cfg.budget_s:g} s budget before the first of {n_folds} folds finished"
    per = sum(fit_s) / len(fit_s)
    return (
        f"over the {cfg.budget_s:g} s budget after {len(fit_s)}/{n_folds} folds (~{per:.0f} s fit per fold; "
        f"all folds need ~{per * n_folds:.0f} s)"
    )


# ---------------------------------------------------------------------------
# The status card


def status_card(cfg: Config, run: Run, manifest: dict) -> str:
    rows = ledger.read(cfg.root, run.tag)
    steps = [r for r in rows if r["status"] != BASELINE]
    inc, base = run.incumbent, run.baseline
    hours = max((time.time() - run.started_at) / 3600, 1e-9)
    metric = manifest.get("metric", "score")
    state = run.status + (f" ({run.stopped['reason']})" if run.stopped else "")
    lines = [
        f"run {run.tag} ({state}) on {run.branch}: {len(steps)} iterations in {hours:.1f} h "
        f"({len(steps) / hours:.1f}/h)",
        f"{metric} ({direction(manifest.get('higher_is_better', True))}): baseline {base.mean:.4f}, best "
        f"{inc.mean:.4f} ± {inc.se:.4f} (iter {inc.iter}, {inc.commit[:8]})",
        *_unprotected(cfg),
        "last rows:",
    ]
    for r in rows[-LAST_ROWS:]:
        delta = f"{ledger.number(r, 'delta'):+.4f}" if r["delta"] else "       "
        score = f"{ledger.number(r, 'metric'):.4f}" if r["metric"] else "  -   "
        lines.append(
            f"  {r['iter']:>4} {r['status']:<8} {score} {delta}  {r['category'][:14]:<14} "
            f"{shorten(r['hypothesis'] or r['note'], 60)}"
        )
    if manifest.get("columns"):
        lines += labelled("features: ", feature_items(manifest))
    lines += _categories(steps)
    lines += _advice(cfg, run, steps)
    return "\n".join(lines)


def _categories(steps: list[dict]) -> list[str]:
    parts = [f"{c} {n} tried/{k} kept/Σ{d:+.4f}" for c, n, k, d in ledger.by_category(steps, keep_rule.KEPT)]
    return labelled("categories: ", parts, max_lines=3) if parts else []


def _advice(cfg: Config, run: Run, steps: list[dict]) -> list[str]:
    out = []
    since_keep = 0
    for r in reversed(steps):
        if r["status"] in keep_rule.KEPT:
            break
        since_keep += 1
    if since_keep >= cfg.plateau_after:
        out.append(
            f"plateau: no keep in the last {since_keep} iterations: change category (see program.md "
            "phases), or run `uv run autoresearch sweep` on a SEARCH_SPACE of the current model's knobs"
        )
    if run.consecutive_failures >= 3:
        out.append(
            f"warning: the last {run.consecutive_failures} iterations failed (crash/timeout/invalid): "
            "read the tail in their line, simplify, or check the budget"
        )
    if run.status == "active":
        out.append("next: edit train.py (one idea, HYPOTHESIS and CATEGORY), then `uv run autoresearch step`")
    else:
        out.append(f"the run is stopped; `uv run autoresearch start {run.tag}` resumes it")
    return out


def shorten(value: str, n: int) -> str:
    return text.shown(value, n)
