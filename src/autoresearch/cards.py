"""The text the agent reads: the start card, the step line, the status card. Import-light on purpose (no git,
no numpy): the SessionStart hook prints the status card into every resumed or compacted session.
"""

from __future__ import annotations

import math
import os
import re
import textwrap
import time

from autoresearch import keep_rule, ledger, profile, sandbox, text
from autoresearch.config import Config
from autoresearch.contract import NEXT
from autoresearch.keep_rule import BASELINE, CRASH, FASTER, INVALID, KEEP, KNOB, SIMPLIFY, TIMEOUT
from autoresearch.metrics import direction
from autoresearch.records import Record, Run

WIDTH = 110  # a card line at most, before it wraps
BUDGET_WARNING = 0.7  # share of the evaluation budget from which the step line warns
LAST_ROWS = 10
STATUS_LINES = 30
LABEL = {
    KEEP: "KEPT",
    SIMPLIFY: "SIMPLIFIED (kept)",
    FASTER: "FASTER (kept)",
    KNOB: "KNOB ADDED (kept)",
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
    rule = rule_lines(cfg, manifest, inc.se) if cfg.keep_rule == "paired" else ["keep rule: strict (any better mean)"]
    fold_rows = round(manifest["n_train"] * (1 - 1 / cfg.folds)) if not cfg.time_column else None
    lines = [
        f"run:       {run.tag} on branch {run.branch} ({f'resumed at iter {run.iterations}' if resumed else 'new'})",
        f"metric:    {manifest['metric']} ({direction(manifest['higher_is_better'])}), {n} scores per evaluation "
        f"({cfg.folds} folds x {cfg.repeats} repeats of the {manifest['n_train']} train rows"
        + (f", ~{fold_rows} rows fit per fold)" if fold_rows else ")"),
        f"baseline:  {base.mean:.4f} ± {base.se:.4f} (± here: standard error of the CV mean; on a step line: "
        "of the paired Δ)",
        f"best:      {inc.mean:.4f} ± {inc.se:.4f} (iter {inc.iter}, {inc.commit[:8]})",
        *rule,
        *labelled("features:  ", feature_items(manifest)),
        *indented("data:      ", profile.compact(cfg, manifest)),
        f"budget:    {cfg.budget_s:g} s and {cfg.memory_mb} MB per evaluation; {machine(cfg)}",
        *_unprotected(cfg),
        f"next:      {NEXT}",
    ]
    return "\n".join(lines)


def machine(cfg: Config) -> str:
    """N_JOBS as train.py gets it, beside the cores this process may use."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return f"N_JOBS = {cfg.n_jobs} (threads a model may use), {cores} cores on this machine"


def rule_lines(cfg: Config, manifest: dict, incumbent_se: float) -> list[str]:
    """The verdicts' thresholds, in t = Δ / ± (the ± of a step line), one verdict a line."""
    n, looks = manifest["n_folds"], manifest.get("n_confirm_folds", 0)
    floor = f" and Δ >= {cfg.min_delta:g}" if cfg.min_delta else ""
    worse = keep_rule.keep_threshold(cfg.alpha, n - 1)
    if not looks:
        keep = f"t > {worse:.2f}{floor}"
    else:
        strong = keep_rule.keep_threshold(cfg.alpha * keep_rule.STRONG_SHARE, n - 1)
        look = keep_rule.keep_threshold(keep_rule.LOOK_P, n - 1)
        k = looks / n
        keep = (
            f"t > {strong:.2f}{floor} at once; {look:.2f} < t <= {strong:.2f} gets a second look on {looks} fresh "
            f"folds (the step re-scores both: {1 + k:.0f}-{1 + 2 * k:.0f} times as long), KEPT if all looks together "
            f"give p < {cfg.alpha:g}"
        )
    margin = keep_rule.margin_of(incumbent_se)
    rows = [
        ("", f"paired corrected t-test on the {n} fold scores, alpha {cfg.alpha:g}; t = Δ / ± of the step line"),
        ("KEPT", keep),
        ("DISCARDED", f"t < -{worse:.2f}"),
        (
            "not worse",
            f"Δ > -{margin:.4f} ({keep_rule.MARGIN_SHARE:g} × the best's ±) at p < {cfg.alpha:g}, and not DISCARDED "
            "(checked before a second look, so it needs none): "
            "kept as SIMPLIFIED with fewer executable statements (comments, docstrings, HYPOTHESIS, CATEGORY and "
            f"SEARCH_SPACE do not count), as FASTER with >= {keep_rule.FASTER_SHARE:.0%} and >= "
            f"{keep_rule.FASTER_MIN_BUDGET * cfg.budget_s:.0f} s less time on the folds, as KNOB ADDED with new "
            "PARAMS keys, each in SEARCH_SPACE, and the best's very fold scores (the keys at the values the model "
            "used); the margin moves with the best",
        ),
        ("NOOP", f"the rest; a near-miss when Δ > 0 and its last p < {keep_rule.NEAR_MISS_P:g}"),
    ]
    out = prose("keep rule: ", rows[0][1])
    for name, words in rows[1:]:
        out += prose(f"{'':11}{name:<10} ", words)
    return out


def prose(label: str, words: str, width: int = WIDTH) -> list[str]:
    """A paragraph wrapped under its label."""
    pad = " " * len(label)
    return textwrap.wrap(words, width, initial_indent=label, subsequent_indent=pad, break_on_hyphens=False)


def indented(label: str, block: str, width: int = WIDTH) -> list[str]:
    """A block's lines (the profile's), the first after the label, the rest under it; a long one wraps."""
    pad = " " * len(label)
    out: list[str] = []
    for i, line in enumerate(block.splitlines()):
        current, empty = label if i == 0 else pad, True
        # break only after a list's separators: a space inside a quoted level must stay where it is
        for piece in re.split(r"(?<=[;,]) ", line):
            if len(current) + len(piece) > width and not empty:
                out.append(current.rstrip())
                current = pad + "  "
            current, empty = current + piece + " ", False
        out.append(current.rstrip())
    return out


def feature_items(manifest: dict) -> list[str]:
    """Column names and kinds: train.py cannot read the data, so this is how the agent learns the schema."""

    def kind(t: str) -> str:
        return (
            "cat"
            if t == "category"
            else "int"
            if t.lower().startswith(("int", "uint"))
            else "num"
            if t.lower().startswith("float")
            else t
        )

    return [f"{c} ({kind(t)})" for c, t in manifest["columns"].items()]


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


def step_line(
    rec: Record, metric: str, cfg: Config | None = None, back_to: int | None = None, steps: list[dict] | None = None
) -> str:
    """`iter 7 | roc_auc 0.9182 (Δ +0.0041 ± 0.0018, p=0.01) | KEPT | eval 12.3s of 120s, fit ~1.1s/fold, step
    14.0s | model: LightGBM with 31 leaves`. back_to: the iteration a reverted train.py is again; steps: the
    run's ledger rows, for the plateau advice (so the agent needs no status card to see one)."""
    n = on_plateau(cfg, steps) if cfg is not None and steps else 0
    # the note once, where the plateau begins: program.md's notes rule allows it then, not at every step after
    note = ", and --note what you learnt" if n and cfg is not None and n == cfg.plateau_after else ""
    hints = [f"plateau: {n} without a gain (change category or sweep{note})" if n else ""]
    hints.append(_park_hint(rec, steps) if steps else "")
    return _step_line(rec, metric, cfg, back_to, "; ".join(h for h in hints if h))


def _park_hint(rec: Record, steps: list[dict]) -> str:
    """Program rule 5 on the line: this near-miss is its category's second since the last gain (dogfood round 8:
    an agent went on with a family after two)."""
    if not near_miss(rec):
        return ""
    since = steps[len(steps) - since_gain(steps) :]
    n = sum(
        r["category"].lower() == (rec.category or "").lower()
        and keep_rule.near_miss(r["status"], ledger.number(r, "delta"), ledger.number(r, "p_value"))
        for r in since
    )
    return f"near-miss {n} in {rec.category} since the last gain: park that kind of change" if n >= 2 else ""


def _step_line(rec: Record, metric: str, cfg: Config | None, back_to: int | None, hint: str) -> str:
    hyp, cat = rec.hypothesis or "?", rec.category or "?"
    what = text.shown(hyp if hyp.lower().startswith(cat.lower() + ":") else f"{cat}: {hyp}")
    secs = _seconds(rec, cfg)
    unprotected = [] if cfg is None or cfg.sandbox else ["not protected (sandbox = false)"]
    if rec.status in (CRASH, TIMEOUT, INVALID):
        parts = [f"iter {rec.iter}", _label(rec, back_to), rec.reason or "", secs, hint, what]
        if rec.status == INVALID and not rec.commit:
            parts[1] += ", nothing committed"
        return " | ".join(p for p in parts + unprotected if p)
    score = f"{metric} {rec.mean:.4f}"
    if rec.delta is not None:
        score += f" (Δ {rec.delta:+.4f}{_pm(rec.se_delta)}{_p_text(rec)})"
    parts = [
        f"iter {rec.iter}",
        score,
        *_second_look_text(rec),
        _label(rec, back_to),
        secs,
        *([hint] if hint else []),
        what,
    ]
    if rec.budget_share >= BUDGET_WARNING:
        whose = "" if rec.status in keep_rule.KEPT else " (this reverted candidate)"
        parts.append(f"warning: used {rec.budget_share:.0%} of the evaluation budget{whose}")
    return " | ".join(parts + unprotected)


def _label(rec: Record, back_to: int | None) -> str:
    """`NOOP (reverted to iter 5, near-miss)`: the verdict, and what train.py is now."""
    label = LABEL[rec.status]
    if rec.status == INVALID and rec.commit:
        label += " (reverted)"
    if back_to is not None and label.endswith("(reverted)"):
        label = label.replace("(reverted)", f"(reverted to iter {back_to})")
    return label.replace(")", ", near-miss)") if near_miss(rec) else label


def _seconds(rec: Record, cfg: Config | None) -> str:
    """One evaluation against the budget, the fit per fold, and the whole step (second look included)."""
    if not rec.eval_s:
        return f"{rec.wall_s:.1f}s"
    budget = f" of {cfg.budget_s:g}s" if cfg is not None else ""
    fit = f", fit ~{rec.fit_s / len(rec.fold_s):.1f}s/fold" if rec.fit_s and rec.fold_s else ""
    return f"eval {rec.eval_s:.1f}s{budget}{fit}, step {rec.wall_s:.1f}s"


def first_p(rec: Record):
    """The first look's p: after a second look, p_value is the combined one (it has a segment of its own)."""
    return rec.p_first if rec.p_first is not None else rec.p_value


def near_miss(rec: Record) -> bool:
    """Program rule 4's near-miss: a NOOP with Δ > 0 whose last p (all looks together) was under NEAR_MISS_P."""
    return keep_rule.near_miss(rec.status, rec.delta, rec.p_value)


def _second_look_text(rec: Record) -> list[str]:
    """The evidence segment after the score: a second look, why none was taken, or what a not-worse verdict
    rested on (SIMPLIFIED, FASTER, KNOB ADDED) or lacked."""
    if (rec.status in (SIMPLIFY, FASTER, KNOB) and rec.reason) or (rec.reason or "").startswith(
        ("not worse, not ", keep_rule.NOT_SHOWN)
    ):
        return [text.shown(rec.reason)]  # a reason cut short loses what the verdict needed (dogfood round 8)
    if rec.looks != 2 and (rec.reason or "").startswith("borderline; "):  # asked for, but it did not finish
        why = rec.reason.removeprefix("borderline; ")
        why = why.replace("no second look: ", "no 2nd look: ").replace("the second look ", "2nd look ")
        return [text.shown(why, 200)]
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
    if rec.status in (SIMPLIFY, FASTER, KNOB) and rec.p_not_worse is not None:
        # kept for being not worse: the evidence is the non-inferiority test's p, not "better"'s
        return f", p(worse by the margin)={rec.p_not_worse:.2g}"
    if (rec.status == keep_rule.DISCARD or (rec.delta or 0) < 0) and rec.p_worse is not None:
        return f", p(worse)={rec.p_worse:.2g}"
    p = first_p(rec)
    return "" if p is None or math.isnan(p) else f", p={p:.2g}"


def timeout_reason(rec: Record, cfg: Config, n_folds: int, fit_s: list[float]) -> str:
    """How far it got, so the agent knows how much cheaper the next try must be."""
    if not fit_s:
        return f"over the {cfg.budget_s:g} s budget before the first of {n_folds} folds finished"
    per = sum(fit_s) / len(fit_s)
    early = "stopped early, projected " if rec.eval_s and rec.eval_s < cfg.budget_s else ""
    busy = ""
    wall = sum(rec.fold_s or [])
    if rec.cpu_s is not None and wall > 0 and cfg.n_jobs > 1 and rec.cpu_s / wall < 0.6 * cfg.n_jobs:
        busy = (
            f"; the folds used {rec.cpu_s / wall:.1f} of their {cfg.n_jobs} threads' cores (the machine is busy): "
            "make the model itself cheaper and keep n_jobs=N_JOBS"
        )
    return (
        f"{early}over the {cfg.budget_s:g} s budget after {len(fit_s)}/{n_folds} folds (~{per:.0f} s fit per fold; "
        f"all folds need ~{per * n_folds:.0f} s){busy}"
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
        lines += indented("data:     ", profile.compact(cfg, manifest, compute=False))
    lines += _categories(steps)
    lines += _advice(cfg, run, steps)
    return "\n".join(lines)


def _categories(steps: list[dict]) -> list[str]:
    parts = [f"{c} {n} tried/{k} kept/Σ{d:+.4f}" for c, n, k, d in ledger.by_category(steps, keep_rule.KEPT)]
    return labelled("categories: ", parts, max_lines=3) if parts else []


def since_gain(steps: list[dict]) -> int:
    """Ledger rows (newest last) since the last one that raised the score: a SIMPLIFIED, FASTER or KNOB ADDED
    keep leaves the score where it was, so it does not end a plateau (dogfood round 8: a knob reset it)."""
    n = 0
    for r in reversed(steps):
        if r["status"] in (keep_rule.KEEP, keep_rule.BASELINE):
            break
        n += 1
    return n


def on_plateau(cfg: Config, steps: list[dict]) -> int:
    """Iterations since the last gain once they reach cfg.plateau_after, else 0: the one plateau threshold of
    the step line and the cards."""
    n = since_gain(steps)
    return n if n >= cfg.plateau_after else 0


def plateau(cfg: Config, steps: list[dict]) -> str | None:
    n = on_plateau(cfg, steps)
    if not n:
        return None
    return (
        f"plateau: no gain in the last {n} iterations: change category (see program.md phases), or run "
        "`uv run autoresearch sweep` on a SEARCH_SPACE of the current model's knobs"
    )


def _advice(cfg: Config, run: Run, steps: list[dict]) -> list[str]:
    out = [p for p in [plateau(cfg, steps)] if p]
    if run.consecutive_failures >= 3:
        out.append(
            f"warning: the last {run.consecutive_failures} iterations failed (crash/timeout/invalid): "
            "read the tail in their line, simplify, or check the budget"
        )
    if run.status == "active":
        out.append(f"next: {NEXT}")
    else:
        out.append(f"the run is stopped; `uv run autoresearch start {run.tag}` resumes it")
    return out


def shorten(value: str, n: int) -> str:
    return text.shown(value, n)
