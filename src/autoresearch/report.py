"""`autoresearch report`: the morning report for the human: reports/<tag>/progress.png and report.md.

Read-only on the run: it never takes the run lock and never recovers a killed step, so it can run
beside a live step (a half-written last ledger or holdout line is skipped). It is the only command that
shows holdout scores, and it writes them to its files; on stdout it prints them only to a terminal or
with --show-holdout, because Claude Code runs commands without a TTY and the agent must never see them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

from autoresearch import keep_rule, layout, ledger, runstate
from autoresearch.config import Config, load_config
from autoresearch.errors import UserError
from autoresearch.files import atomic_write, read_json
from autoresearch.manifest import load_manifest
from autoresearch.metrics import direction

KEPT, FAILED = keep_rule.KEPT, keep_rule.FAILED
GAP_FACTOR = 2.0  # the validation-holdout gap warns beyond this many noise floors


def run_report(args) -> int:
    cfg = load_config()
    tags = list(dict.fromkeys(args.tag or [_active_or_fail(cfg)]))
    views = [load_view(cfg, tag) for tag in tags]
    out = cfg.root / layout.REPORTS / "+".join(tags)
    out.mkdir(parents=True, exist_ok=True)
    summaries = [summarize(v) for v in views]
    from autoresearch.report_plot import draw  # matplotlib, only here: the rest of the report stays cheap

    atomic_write(out / "progress.png", lambda p: draw(views, summaries, p))
    atomic_write(out / "report.md", markdown(views, summaries))
    show = args.show_holdout or sys.stdout.isatty()
    print(console(views, summaries, out.relative_to(cfg.root), show))
    return 0


def add_arguments_report(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tag",
        action="append",
        metavar="TAG",
        help="the run to report (default: the active run); repeat to compare runs in one report "
        "(written to reports/<a>+<b>/)",
    )
    p.add_argument(
        "--show-holdout",
        action="store_true",
        help="print holdout scores on stdout even when it is not a terminal (they are always in "
        "report.md; without a terminal they are left out so the agent never sees them)",
    )


def _active_or_fail(cfg: Config) -> str:
    tag = runstate.active_tag(cfg.root)
    if tag is None:
        raise UserError(
            "no run has been started here: start one with `uv run autoresearch start <tag>`, "
            "or name an old run with --tag"
        )
    return tag


# ---------------------------------------------------------------------------
# Reading a run (never writing: the run may be live)


@dataclasses.dataclass
class View:
    tag: str
    run: dict
    rows: list[dict]
    holdout: dict[int, dict]
    manifest: dict
    pending: dict | None
    notes: list[str]

    @property
    def sign(self) -> float:
        return 1.0 if self.manifest["higher_is_better"] else -1.0


def load_view(cfg: Config, tag: str) -> View:
    run = runstate.load_run(cfg.root, tag)
    if run is None:
        known = sorted(p.name for p in (runstate.state_dir(cfg.root) / "runs").glob("*") if p.is_dir())
        hint = f"runs here: {', '.join(known)}" if known else "start one with `uv run autoresearch start <tag>`"
        raise UserError(f"no run named {tag!r} in .autoresearch/runs/; {hint}")
    manifest = load_manifest(cfg)
    if manifest is None:
        raise UserError(
            "data/manifest.json is missing, so the metric and its direction are unknown: "
            "run `uv run prepare.py` (it rebuilds the same split from the same config)"
        )
    notes = []
    if manifest.get("id") != run.manifest_id:
        notes.append(
            f"the prepared data changed since this run (run {run.manifest_id}, "
            f"now {manifest.get('id')}): metric, direction and fold ratio are read from the current "
            "data/manifest.json"
        )
    rows = sorted((r for r in ledger.read(cfg.root, tag) if r["iter"].isdigit()), key=lambda r: int(r["iter"]))
    pending = read_json(runstate.pending_path(cfg.root, tag))
    holdout = read_holdout(runstate.run_dir(cfg.root, tag) / "holdout.jsonl")
    return View(tag, run, rows, holdout, manifest, pending, notes)


def read_holdout(path: Path) -> dict[int, dict]:
    out: dict[int, dict] = {}
    try:
        text = path.read_text()
    except FileNotFoundError:
        return out
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line being written right now
        if isinstance(entry, dict) and isinstance(entry.get("iter"), int):
            out[entry["iter"]] = entry
    return out


# ---------------------------------------------------------------------------
# The numbers


@dataclasses.dataclass
class Summary:
    base_row: dict
    best_row: dict
    base_val: float
    base_se: float
    best_val: float
    best_se: float
    base_hold: float
    best_hold: float
    floor: float
    gap: float  # (best_val - base_val) - (best_hold - base_hold), in the improvement direction
    kept: list[dict]
    failed: list[dict]
    steps: list[dict]
    categories: list[tuple[str, int, int, float]]  # category, tried, kept, summed delta of kept
    hours: float
    busy_s: float
    eval_s: float
    failed_s: float

    @property
    def gap_warning(self) -> bool:
        return self.gap > GAP_FACTOR * self.floor


def summarize(v: View) -> Summary:
    if not v.rows:
        raise UserError(f"run {v.tag!r} has no rows in results.tsv yet (the baseline is still being scored?)")
    base_row = next((r for r in v.rows if r["status"] == keep_rule.BASELINE), v.rows[0])
    kept = [r for r in v.rows if r["status"] in KEPT]
    best_row = kept[-1] if kept else base_row
    steps = [r for r in v.rows if r["status"] != keep_rule.BASELINE]
    base_val, best_val = ledger.number(base_row, "metric"), ledger.number(best_row, "metric")
    base_hold, best_hold = hold_value(v, base_row), hold_value(v, best_row)
    floor = keep_rule.corrected_se(v.run.baseline.scores, v.manifest["fold_ratio"])
    gap = v.sign * (best_val - base_val) - v.sign * (best_hold - base_hold)
    wall = [ledger.number(r, "wall_s") for r in v.rows]
    return Summary(
        base_row,
        best_row,
        base_val,
        ledger.number(base_row, "se"),
        best_val,
        ledger.number(best_row, "se"),
        base_hold,
        best_hold,
        floor,
        gap,
        kept,
        [r for r in steps if r["status"] in FAILED],
        steps,
        categories(steps),
        _elapsed_hours(v),
        _nansum(wall),
        _nansum(ledger.number(r, "eval_s") for r in v.rows),
        _nansum(ledger.number(r, "wall_s") for r in steps if r["status"] in FAILED),
    )


def hold_value(v: View, row: dict) -> float:
    entry = v.holdout.get(int(row["iter"])) or {}
    value = entry.get("holdout")
    return float(value) if isinstance(value, (int, float)) else math.nan


def categories(steps: list[dict]) -> list[tuple[str, int, int, float]]:
    return ledger.by_category(steps, KEPT)


def _elapsed_hours(v: View) -> float:
    """From the start to the stop, or to the last row of a run that is still going."""
    start = v.run.started_at or time.time()
    end = (v.run.stopped or {}).get("at") if v.run.status == "stopped" else None
    if end is None:
        end = max((_row_time(r) for r in v.rows), default=start)
    return max(end - start, 0.0) / 3600


def _row_time(row: dict) -> float:
    try:
        return time.mktime(time.strptime(row["time"], "%Y-%m-%dT%H:%M:%S"))
    except (ValueError, KeyError):
        return math.nan


def _nansum(values) -> float:
    return sum(x for x in values if not math.isnan(x))


def is_sweep(row: dict) -> bool:
    return (row.get("note") or "").startswith("sweep:")


def reason(row: dict) -> str:
    note = row.get("note") or ""
    if is_sweep(row):  # the ledger joins "sweep: ...; reason"
        note = note.partition("; ")[2]
    return note


# ---------------------------------------------------------------------------
# report.md


def fmt(x: float, digits: int = 4, sign: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def fmt_p(row: dict) -> str:
    p = ledger.number(row, "p_value")
    return "—" if math.isnan(p) else f"{p:.2g}"


def _cell(text: str) -> str:
    return (text or "").replace("|", "\\|").replace("\n", " ")


def markdown(views: list[View], sums: list[Summary]) -> str:
    title = " vs ".join(v.tag for v in views)
    lines = [
        f"# autoresearch report: {title}",
        "",
        f"Written {time.strftime('%Y-%m-%d %H:%M')}. For the human: this file holds the holdout scores, "
        "which the agent never sees.",
        "",
        "![progress](progress.png)",
        "",
    ]
    if len(views) > 1:
        lines += _comparison(views, sums)
    for v, s in zip(views, sums, strict=True):
        lines += _section(v, s, level=2 if len(views) == 1 else 3)
    return "\n".join(lines) + "\n"


def _comparison(views: list[View], sums: list[Summary]) -> list[str]:
    ids = {v.manifest.get("id") for v in views} | {v.run.manifest_id for v in views}
    out = [
        "## Comparison",
        "",
        "| run | iterations | kept | failed | it/h | baseline val | best val | baseline holdout | best holdout | gap |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for v, s in zip(views, sums, strict=True):
        out.append(
            f"| {v.tag} | {len(s.steps)} | {len(s.kept)} | {len(s.failed)} | {_rate(s):.1f} | "
            f"{fmt(s.base_val)} | {fmt(s.best_val)} | {fmt(s.base_hold)} | {fmt(s.best_hold)} | "
            f"{fmt(s.gap, sign=True)}{' ⚠' if s.gap_warning else ''} |"
        )
    if len(ids) > 1:
        out += [
            "",
            "Note: these runs were scored on different prepared data (manifest ids "
            + ", ".join(sorted(str(i) for i in ids))
            + "); compare them with care.",
        ]
    return out + [""]


def _rate(s: Summary) -> float:
    return len(s.steps) / s.hours if s.hours > 0 else math.nan


def _section(v: View, s: Summary, level: int) -> list[str]:
    h = "#" * level
    m = v.manifest
    metric = f"{m['metric']} ({direction(m['higher_is_better'])})"
    state = v.run.status + (f" ({v.run.stopped.get('reason')})" if v.run.stopped else "")
    started = time.strftime("%Y-%m-%d %H:%M", time.localtime(v.run.started_at))
    out = [
        f"{h[:-1]} Run {v.tag}" if level > 2 else "",
        "",
        f"Branch `{v.run.branch}`, {state}, started {started}; {len(s.steps)} iterations in "
        f"{s.hours:.2f} h. Metric: {metric}, {m['n_folds']} fold scores over {m['n_train']} train rows; "
        f"holdout {m['n_holdout']} rows.",
    ]
    if v.pending:
        out.append(
            f"\n**Live:** iteration {v.pending.get('iter')} is being evaluated right now "
            f"({_cell(v.pending.get('hypothesis', ''))}); this report stops before it."
        )
    out += [f"\nNote: {n}" for n in v.notes]
    out += ["", f"{h} Result", "", "| | iter | commit | validation (mean ± se) | holdout |", "|---|---:|---|---|---:|"]
    for name, row, val, se, hold in (
        ("baseline", s.base_row, s.base_val, s.base_se, s.base_hold),
        ("best", s.best_row, s.best_val, s.best_se, s.best_hold),
    ):
        out.append(f"| {name} | {row['iter']} | `{row['commit'][:8]}` | {fmt(val)} ± {fmt(se)} | {fmt(hold)} |")
    out.append(
        f"| gain | | | {fmt(v.sign * (s.best_val - s.base_val), sign=True)} | "
        f"{fmt(v.sign * (s.best_hold - s.base_hold), sign=True)} |"
    )
    out += ["", *_noise_and_gap(v, s)]
    out += ["", f"{h} Kept changes", ""] + _kept_table(v, s)
    out += ["", f"{h} Attribution by category", ""] + _category_table(s)
    out += ["", f"{h} Crashes, timeouts and invalid steps", ""] + _failure_table(s)
    out += ["", f"{h} Time", ""] + _time_lines(s)
    out += ["", f"{h} All experiments", ""] + _all_table(v)
    return out + [""]


def _noise_and_gap(v: View, s: Summary) -> list[str]:
    limit = GAP_FACTOR * s.floor
    out = [
        f"**Noise floor: {fmt(s.floor)}**: `keep_rule.corrected_se` of the baseline's "
        f"{len(v.run.baseline.scores)} fold scores with fold ratio {v.manifest['fold_ratio']:.3g} "
        "(n_test/n_train): the corrected standard error of a CV mean. Gains below it are "
        "indistinguishable from fold noise.",
        "",
        "**Validation–holdout gap** = (best_val − baseline_val) − (best_holdout − baseline_holdout), each "
        "difference taken in the improvement direction, so a positive gap means validation gained more "
        f"than the holdout. It warns when the gap exceeds {GAP_FACTOR:g} × noise floor = {fmt(limit)}.",
    ]
    if math.isnan(s.gap):
        out.append("\nGap: unknown (a holdout score is missing: see holdout.jsonl).")
    elif s.gap_warning:
        out.append(
            f"\n> **⚠ Warning: the gap is {fmt(s.gap, sign=True)} > {fmt(limit)}.** The kept changes "
            "improved the folds more than they improved unseen rows: the run may be fitting the folds. "
            "Look at the holdout column of the kept changes below to see where the gap opened."
        )
    else:
        out.append(
            f"\nGap: {fmt(s.gap, sign=True)} ≤ {fmt(limit)}: the validation gains hold on the holdout within the noise."
        )
    return out


def _kept_table(v: View, s: Summary) -> list[str]:
    if not s.kept:
        return ["Nothing was kept: the baseline is still the incumbent."]
    out = [
        "| # | iter | commit | validation | Δ | p | holdout | category | hypothesis |",
        "|---:|---:|---|---:|---:|---:|---:|---|---|",
    ]
    for i, r in enumerate(s.kept, 1):
        what = ("(sweep) " if is_sweep(r) else "") + ("(simplify) " if r["status"] == keep_rule.SIMPLIFY else "")
        out.append(
            f"| {i} | {r['iter']} | `{r['commit'][:8]}` | {fmt(ledger.number(r, 'metric'))} | "
            f"{fmt(ledger.number(r, 'delta'), sign=True)} | {fmt_p(r)} | {fmt(hold_value(v, r))} | "
            f"{_cell(r['category'])} | {what}{_cell(r['hypothesis'])} |"
        )
    return out


def _category_table(s: Summary) -> list[str]:
    if not s.steps:
        return ["No experiments yet."]
    out = ["| category | tried | kept | keep rate | Σ Δ of kept |", "|---|---:|---:|---:|---:|"]
    for c, n, k, d in s.categories:
        out.append(f"| {_cell(c)} | {n} | {k} | {k / n:.0%} | {fmt(d, sign=True)} |")
    return out


def _failure_table(s: Summary) -> list[str]:
    if not s.failed:
        return ["None."]
    out = ["| iter | status | category | hypothesis | reason |", "|---:|---|---|---|---|"]
    for r in s.failed:
        out.append(
            f"| {r['iter']} | {r['status']} | {_cell(r['category'])} | {_cell(r['hypothesis'])} | {_cell(reason(r))} |"
        )
    return out


def _time_lines(s: Summary) -> list[str]:
    n = len(s.steps)
    return [
        f"- {n} iterations in {s.hours:.2f} h of wall clock: **{_rate(s):.1f} iterations per hour**",
        f"- time inside steps (sum of wall_s): {s.busy_s / 60:.1f} min, of which evaluation (eval_s) "
        f"{s.eval_s / 60:.1f} min",
        f"- time lost to crashes, timeouts and invalid steps: {s.failed_s / 60:.1f} min over {len(s.failed)} steps",
        f"- mean step: {s.busy_s / max(len(s.steps) + 1, 1):.1f} s (baseline included)",
    ]


def _all_table(v: View) -> list[str]:
    out = [
        "| iter | status | validation | Δ | p | wall s | category | hypothesis | note |",
        "|---:|---|---:|---:|---:|---:|---|---|---|",
    ]
    for r in v.rows:
        status = r["status"] + (" (sweep)" if is_sweep(r) else "")
        out.append(
            f"| {r['iter']} | {status} | {fmt(ledger.number(r, 'metric'))} | "
            f"{fmt(ledger.number(r, 'delta'), sign=True)} | {fmt_p(r)} | {fmt(ledger.number(r, 'wall_s'), 1)} | "
            f"{_cell(r['category'])} | {_cell(r['hypothesis'])} | {_cell(r['note'])} |"
        )
    return out


# ---------------------------------------------------------------------------
# stdout


def console(views: list[View], sums: list[Summary], out: Path, show_holdout: bool) -> str:
    lines = [f"report: {out / 'report.md'} and {out / 'progress.png'}"]
    for v, s in zip(views, sums, strict=True):
        m = v.manifest
        state = v.run.status + (", a step is running" if v.pending else "")
        lines.append(
            f"run {v.tag} ({state}): {len(s.steps)} iterations in {s.hours:.2f} h "
            f"({_rate(s):.1f}/h), {len(s.kept)} kept, {len(s.failed)} failed"
        )
        lines.append(
            f"  {m['metric']} ({direction(m['higher_is_better'])}), validation: "
            f"baseline {fmt(s.base_val)} ± {fmt(s.base_se)} → best {fmt(s.best_val)} ± {fmt(s.best_se)} "
            f"(iter {s.best_row['iter']}, {fmt(v.sign * (s.best_val - s.base_val), sign=True)}), "
            f"noise floor {fmt(s.floor)}"
        )
        if show_holdout:
            lines.append(
                f"  holdout: baseline {fmt(s.base_hold)} → best {fmt(s.best_hold)} "
                f"({fmt(v.sign * (s.best_hold - s.base_hold), sign=True)}); validation–holdout gap "
                f"{fmt(s.gap, sign=True)} (warns above {fmt(GAP_FACTOR * s.floor)})"
                + ("  WARNING: the folds may be overfitted" if s.gap_warning else "")
            )
    if not show_holdout:
        lines.append(f"holdout scores are in {out / 'report.md'}, for the human")
    return "\n".join(lines)
