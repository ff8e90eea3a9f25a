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
import os
import sys
import time
from pathlib import Path

from autoresearch import keep_rule, ledger, runstate
from autoresearch.config import Config, load_config
from autoresearch.errors import UserError
from autoresearch.prepared import load_manifest

KEPT = (keep_rule.KEEP, keep_rule.SIMPLIFY)
FAILED = (keep_rule.CRASH, keep_rule.TIMEOUT, keep_rule.INVALID)
GAP_FACTOR = 2.0  # the validation-holdout gap warns beyond this many noise floors
REPORTS = "reports"


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


def run_report(args) -> int:
    cfg = load_config()
    tags = list(dict.fromkeys(args.tag or [_active_or_fail(cfg)]))
    views = [load_view(cfg, tag) for tag in tags]
    out = cfg.root / REPORTS / "+".join(tags)
    out.mkdir(parents=True, exist_ok=True)
    summaries = [summarize(v) for v in views]
    _atomic_write(out / "progress.png", lambda p: draw(views, summaries, p))
    _atomic_write(out / "report.md", lambda p: Path(p).write_text(markdown(views, summaries)))
    show = args.show_holdout or sys.stdout.isatty()
    print(console(views, summaries, out.relative_to(cfg.root), show))
    return 0


def _active_or_fail(cfg: Config) -> str:
    tag = runstate.active_tag(cfg.root)
    if tag is None:
        raise UserError(
            "no run has been started here: start one with `uv run autoresearch start <tag>`, "
            "or name an old run with --tag"
        )
    return tag


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    write(tmp)
    os.replace(tmp, path)


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
    holdout_skipped: bool = False

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
    if manifest.get("id") != run.get("manifest_id"):
        notes.append(
            f"the prepared data changed since this run (run {run.get('manifest_id')}, "
            f"now {manifest.get('id')}): metric, direction and fold ratio are read from the current "
            "data/manifest.json"
        )
    rows = sorted((r for r in ledger.read(cfg.root, tag) if r["iter"].isdigit()), key=lambda r: int(r["iter"]))
    pending = runstate.read_json(runstate.pending_path(cfg.root, tag))
    # checked right before the open: a step writes pending.json well before its read watch goes up
    skipped = step_evaluating(cfg)
    holdout = {} if skipped else read_holdout(runstate.run_dir(cfg.root, tag) / "holdout.jsonl")
    return View(tag, run, rows, holdout, manifest, pending, notes, skipped)


def step_evaluating(cfg: Config) -> bool:
    """Is any run's step evaluating right now? Its evaluation watches every holdout.jsonl and turns the step
    INVALID if anybody opens one (harness.ReadWatch), so the report must not read them until it ends."""
    for path in (runstate.state_dir(cfg.root) / "runs").glob("*/pending.json"):
        pending = runstate.read_json(path)
        if pending is None or pending.get("stage") != "decided":
            return True  # unreadable means being written: assume the worst
    return False


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
    floor = keep_rule.noise_floor(v.run["baseline"]["scores"], v.manifest["fold_ratio"])
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
    start = v.run.get("started_at") or time.time()
    end = (v.run.get("stopped") or {}).get("at") if v.run.get("status") == "stopped" else None
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
    ids = {v.manifest.get("id") for v in views} | {v.run.get("manifest_id") for v in views}
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
    metric = f"{m['metric']} ({'higher' if m['higher_is_better'] else 'lower'} is better)"
    state = v.run.get("status", "?") + (f" ({v.run['stopped'].get('reason')})" if v.run.get("stopped") else "")
    started = time.strftime("%Y-%m-%d %H:%M", time.localtime(v.run.get("started_at", 0)))
    out = [
        f"{h[:-1]} Run {v.tag}" if level > 2 else "",
        "",
        f"Branch `{v.run.get('branch')}`, {state}, started {started}; {len(s.steps)} iterations in "
        f"{s.hours:.2f} h. Metric: {metric}, {m['n_folds']} fold scores over {m['n_train']} train rows; "
        f"holdout {m['n_holdout']} rows.",
    ]
    if v.pending:
        out.append(
            f"\n**Live:** iteration {v.pending.get('iter')} is being evaluated right now "
            f"({_cell(v.pending.get('hypothesis', ''))}); this report stops before it."
        )
    out += [f"\nNote: {n}" for n in v.notes]
    if v.holdout_skipped:
        out.append(
            "\n**Holdout not read:** a step was evaluating when this report was written, and opening the "
            "holdout scores during an evaluation makes that step INVALID (the harness watches them). "
            "Run `uv run autoresearch report` again when the step has ended (a step killed mid-evaluation "
            "is recorded by `uv run autoresearch status`)."
        )
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
        f"**Noise floor: {fmt(s.floor)}**: `keep_rule.noise_floor` of the baseline's "
        f"{len(v.run['baseline']['scores'])} fold scores with fold ratio {v.manifest['fold_ratio']:.3g} "
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
        state = v.run.get("status", "?") + (", a step is running" if v.pending else "")
        lines.append(
            f"run {v.tag} ({state}): {len(s.steps)} iterations in {s.hours:.2f} h "
            f"({_rate(s):.1f}/h), {len(s.kept)} kept, {len(s.failed)} failed"
        )
        lines.append(
            f"  {m['metric']} ({'higher' if m['higher_is_better'] else 'lower'} is better), validation: "
            f"baseline {fmt(s.base_val)} ± {fmt(s.base_se)} → best {fmt(s.best_val)} ± {fmt(s.best_se)} "
            f"(iter {s.best_row['iter']}, {fmt(v.sign * (s.best_val - s.base_val), sign=True)}), "
            f"noise floor {fmt(s.floor)}"
        )
        if show_holdout and v.holdout_skipped:
            lines.append(
                "  holdout: not read, a step is evaluating (reading it would void that step); report again later"
            )
        elif show_holdout:
            lines.append(
                f"  holdout: baseline {fmt(s.base_hold)} → best {fmt(s.best_hold)} "
                f"({fmt(v.sign * (s.best_hold - s.base_hold), sign=True)}); validation–holdout gap "
                f"{fmt(s.gap, sign=True)} (warns above {fmt(GAP_FACTOR * s.floor)})"
                + ("  WARNING: the folds may be overfitted" if s.gap_warning else "")
            )
    if not show_holdout:
        lines.append(f"holdout scores are in {out / 'report.md'}, for the human")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# progress.png (matplotlib is imported only here: the rest of the report stays cheap)

COLORS = {
    keep_rule.BASELINE: "#222222",
    keep_rule.KEEP: "#2ca02c",
    keep_rule.SIMPLIFY: "#17becf",
    keep_rule.NOOP: "#a0a0a0",
    keep_rule.DISCARD: "#ff7f0e",
    keep_rule.CRASH: "#d62728",
    keep_rule.TIMEOUT: "#9467bd",
    keep_rule.INVALID: "#8c564b",
}
WIDTH_IN, DPI = 14.0, 110
LEFT_IN, RIGHT_IN = 0.95, 3.2  # the status legend lives in the right margin, clear of the data
AX_H_IN, TITLE_IN, XLABEL_IN, BOX_ROW_IN = 5.0, 0.55, 0.6, 0.24
# vertical layout of a panel in axes fractions, in the improvement direction (up is better, whatever the metric)
CORE_LO, CORE_HI = 0.26, 0.78  # baseline, kept, holdout and anything better than them
CLIP_AT, FAIL_AT = 0.15, 0.06  # much worse points sit on a line at CLIP_AT; failures (no score) on a strip
LABEL_ROWS = (0.92, 0.855)  # kept-change numbers, staggered over two rows when crowded
BOX_COLUMNS_AFTER = 10  # more kept changes than this: the numbered list goes into two columns


def draw(views: list[View], sums: list[Summary], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    boxes = [_box_rows(len(s.kept)) for s in sums]
    heights = [TITLE_IN + AX_H_IN + XLABEL_IN + (0.3 + BOX_ROW_IN * rows if rows else 0) for rows in boxes]
    total = sum(heights) + 0.15
    fig = plt.figure(figsize=(WIDTH_IN, total), dpi=DPI)
    top = total
    for v, s, rows, h in zip(views, sums, boxes, heights, strict=True):
        ax_rect = _rect(LEFT_IN, top - TITLE_IN - AX_H_IN, WIDTH_IN - LEFT_IN - RIGHT_IN, AX_H_IN, total)
        box_h = h - TITLE_IN - AX_H_IN - XLABEL_IN
        box_rect = _rect(LEFT_IN, top - h, WIDTH_IN - LEFT_IN - 0.3, box_h, total) if rows else None
        _panel(fig, ax_rect, box_rect, v, s)
        top -= h
    fig.savefig(path, dpi=DPI, format="png")
    plt.close(fig)


def _rect(left, bottom, width, height, total_h):
    return (left / WIDTH_IN, bottom / total_h, width / WIDTH_IN, height / total_h)


def _box_rows(n_kept: int) -> int:
    return n_kept if n_kept <= BOX_COLUMNS_AFTER else math.ceil(n_kept / 2)


def _panel(fig, ax_rect, box_rect, v: View, s: Summary) -> None:
    from matplotlib import transforms
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    ax = fig.add_axes(ax_rect)
    m = v.manifest
    last = max([int(r["iter"]) for r in v.rows] + [int(v.pending.get("iter", 0)) if v.pending else 0])
    ax.set_xlim(-0.8, max(last, 1) + 0.8)
    to_val, clip_g = _y_scale(ax, v, s)
    blend = transforms.blended_transform_factory(ax.transData, ax.transAxes)
    handles = []

    # reference: the baseline and its noise band
    ax.axhspan(s.base_val - s.floor, s.base_val + s.floor, color="#888888", alpha=0.10, lw=0)
    ax.axhline(s.base_val, color="#666666", ls=":", lw=1.2)
    handles.append(Line2D([], [], color="#666666", ls=":", lw=1.2, label="baseline (validation) ± noise floor"))

    # the incumbent over time, on the folds and on the holdout
    kx = [0] + [int(r["iter"]) for r in s.kept]
    ky = [s.base_val] + [ledger.number(r, "metric") for r in s.kept]
    hy = [s.base_hold] + [hold_value(v, r) for r in s.kept]
    ax.step(kx + [last], ky + ky[-1:], where="post", color="#1a7f1a", lw=2.2, zorder=3)
    handles.append(Line2D([], [], color="#1a7f1a", lw=2.2, label="incumbent (running best), validation"))
    ax.step(kx + [last], hy + hy[-1:], where="post", color="#3b5bdb", lw=1.6, ls="--", zorder=3)
    ax.scatter(kx, hy, marker="s", s=34, facecolor="white", edgecolor="#3b5bdb", lw=1.4, zorder=4)
    handles.append(
        Line2D(
            [], [], color="#3b5bdb", lw=1.6, ls="--", marker="s", mfc="white", label="holdout score of each kept commit"
        )
    )

    ax.fill_between([0, 1], 0, FAIL_AT * 2, color="#d62728", alpha=0.06, lw=0, transform=ax.transAxes)
    ax.text(
        0.005,
        FAIL_AT * 2 - 0.01,
        "failed: no score",
        transform=ax.transAxes,
        fontsize=7.5,
        color="#a33",
        va="top",
        ha="left",
    )
    handles += _points(ax, v, blend, to_val, clip_g)
    _kept_labels(fig, ax, v, s, blend)

    ax.set_xlabel("iteration")
    ax.set_ylabel(f"{m['metric']} ({'higher' if m['higher_is_better'] else 'lower'} is better)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, color="#e6e6e6", lw=0.8, zorder=0)
    ax.set_axisbelow(True)
    live = ", a step is running" if v.pending else ""
    ax.set_title(
        f"{v.tag}: {m['metric']} on validation, baseline {fmt(s.base_val)} → best {fmt(s.best_val)} "
        f"(iter {s.best_row['iter']}) · {len(s.steps)} iterations, {len(s.kept)} kept, "
        f"{len(s.failed)} failed{live}",
        loc="left",
        fontsize=11.5,
        pad=10,
    )
    ax.legend(
        handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8.5, frameon=True, borderaxespad=0.0
    )
    if box_rect is not None:
        _kept_box(fig, box_rect, v, s)


def _y_scale(ax, v: View, s: Summary):
    """Set the y range so the interesting band fills the middle; returns value<-goodness and the clip goodness."""
    g = lambda x: v.sign * x  # noqa: E731  goodness: larger is better for every metric
    anchor = (
        [s.base_val, s.base_hold] + [ledger.number(r, "metric") for r in s.kept] + [hold_value(v, r) for r in s.kept]
    )
    anchor = [g(x) for x in anchor if not math.isnan(x)]
    lo = min(anchor)
    scored = [g(ledger.number(r, "metric")) for r in v.rows if r["status"] not in FAILED]
    core = anchor + [x for x in scored if not math.isnan(x) and x >= lo]
    c_lo, c_hi = min(core), max(core)
    span = max(c_hi - c_lo, 4 * s.floor if not math.isnan(s.floor) else 0, 1e-3 * max(abs(c_hi), 1e-9))
    per = span / (CORE_HI - CORE_LO)
    g0, g1 = c_lo - CORE_LO * per, c_lo + (1 - CORE_LO) * per
    if v.sign > 0:
        ax.set_ylim(g0, g1)
    else:
        ax.set_ylim(-g0, -g1)  # inverted axis: up is better for a lower-is-better metric too
    return (lambda gg: v.sign * gg), g0 + CLIP_AT * per


def _points(ax, v: View, blend, to_val, clip_g) -> list:
    from matplotlib.lines import Line2D

    groups: dict[tuple[str, bool, str], tuple[list, list]] = {}
    for r in v.rows:
        if r["status"] == keep_rule.BASELINE:
            kind, y = "o", ledger.number(r, "metric")
        elif r["status"] in FAILED or math.isnan(ledger.number(r, "metric")):
            kind, y = "X", FAIL_AT
        elif v.sign * ledger.number(r, "metric") < clip_g:
            kind, y = "v", to_val(clip_g)
        else:
            kind, y = "o", ledger.number(r, "metric")
        xs, ys = groups.setdefault((r["status"], is_sweep(r), kind), ([], []))
        xs.append(int(r["iter"]))
        ys.append(y)
    for (status, sweep, kind), (xs, ys) in groups.items():
        marker = "D" if sweep and kind == "o" else kind
        ax.scatter(
            xs,
            ys,
            transform=blend if kind == "X" else ax.transData,
            marker=marker,
            s=70 if kind == "X" else 48,
            color=COLORS.get(status, "#000000"),
            edgecolor="black" if sweep else "white",
            lw=0.9,
            zorder=5,
            clip_on=False,
        )
    handles = [
        Line2D(
            [],
            [],
            ls="",
            marker="X" if st in FAILED else "o",
            ms=7,
            color=COLORS[st],
            mec="white",
            label=st if st not in FAILED else f"{st} (no score, bottom strip)",
        )
        for st in COLORS
        if any(k[0] == st for k in groups)
    ]
    if any(k[1] for k in groups):
        handles.append(Line2D([], [], ls="", marker="D", ms=6, color="#bbbbbb", mec="black", label="from a sweep"))
    if any(k[2] == "v" for k in groups):
        handles.append(
            Line2D([], [], ls="", marker="v", ms=7, color="#777777", mec="white", label="far worse (off the scale)")
        )
    return handles


def _kept_labels(fig, ax, v: View, s: Summary, blend) -> None:
    """Numbered badges in a row above the data, pushed apart so none overlap, with leader lines down."""
    if not s.kept:
        return
    xs = [int(r["iter"]) for r in s.kept]
    px = ax.transData.transform([(x, 0) for x in xs])[:, 0]
    left, right = ax.transAxes.transform([(0, 0), (1, 0)])[:, 0]
    width_px = (8 + 7 * len(str(len(xs)))) * DPI / 72  # a badge: digits at 8.5 pt plus padding, in pixels
    gap = width_px + 4
    rows = 1 if len(xs) * gap <= (right - left) * 0.9 else 2
    for row in range(rows):
        idx = list(range(row, len(xs), rows))
        placed = spread([px[i] for i in idx], gap, left + gap / 2, right - gap / 2)
        for i, p in zip(idx, placed, strict=True):
            r = s.kept[i]
            x_label = ax.transData.inverted().transform((p, 0))[0]
            y = ledger.number(r, "metric")
            ax.annotate(
                str(i + 1),
                xy=(xs[i], y),
                xycoords="data",
                xytext=(x_label, LABEL_ROWS[row]),
                textcoords=blend,
                ha="center",
                va="center",
                fontsize=8.5,
                fontweight="bold",
                color="white",
                bbox=dict(boxstyle="round,pad=0.28", fc=COLORS[r["status"]], ec="none"),
                arrowprops=dict(arrowstyle="-", color="#8a8a8a", lw=0.7, shrinkA=0, shrinkB=4),
                zorder=6,
            )


def spread(xs: list[float], gap: float, lo: float, hi: float) -> list[float]:
    """1-D label placement: positions as close to xs as possible, at least `gap` apart, within [lo, hi].
    Overlapping labels merge into a block centred on their wanted positions (deterministic, order kept)."""
    blocks: list[list[float]] = []  # [start, count, sum of wanted positions]
    for x in sorted(xs):
        blocks.append([x, 1, x])
        while len(blocks) > 1 and blocks[-2][0] + blocks[-2][1] * gap > blocks[-1][0]:
            a, b = blocks[-2], blocks.pop()
            count, total = a[1] + b[1], a[2] + b[2]
            a[:] = [total / count - (count - 1) * gap / 2, count, total]
    out = [b[0] + k * gap for b in blocks for k in range(b[1])]
    for i in range(len(out)):  # push right off the left edge, then left off the right edge
        out[i] = max(out[i], lo if i == 0 else out[i - 1] + gap)
    for i in reversed(range(len(out))):
        out[i] = min(out[i], hi if i == len(out) - 1 else out[i + 1] - gap)
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    result = [0.0] * len(xs)
    for pos, i in zip(out, order, strict=True):
        result[i] = pos
    return result


def _kept_box(fig, rect, v: View, s: Summary) -> None:
    """The numbered list of kept changes under the plot: one line each, so the texts cannot collide."""
    box = fig.add_axes(rect)
    box.set_axis_off()
    rows = _box_rows(len(s.kept))
    cols = 1 if len(s.kept) <= BOX_COLUMNS_AFTER else 2
    chars = 130 if cols == 1 else 68
    box.text(
        0,
        1,
        "kept changes (validation Δ over the previous incumbent):",
        fontsize=9,
        fontweight="bold",
        va="top",
        transform=box.transAxes,
    )
    line_h = BOX_ROW_IN / (rect[3] * fig.get_figheight())
    inch = 1 / (rect[2] * fig.get_figwidth())  # one inch in box-axes fractions: offsets independent of columns
    for i, r in enumerate(s.kept):
        col, row = divmod(i, rows)
        x0, y = col / cols, 1 - (row + 1.35) * line_h
        what = ("[sweep] " if is_sweep(r) else "") + f"{r['category']}: {r['hypothesis']}"
        text = dict(fontsize=8.5, va="center", transform=box.transAxes)
        box.text(
            x0 + 0.12 * inch,
            y,
            str(i + 1),
            fontweight="bold",
            color="white",
            ha="center",
            bbox=dict(boxstyle="round,pad=0.28", fc=COLORS[r["status"]], ec="none"),
            **text,
        )
        box.text(x0 + 0.32 * inch, y, f"iter {r['iter']}", **text)
        box.text(x0 + 1.45 * inch, y, fmt(ledger.number(r, "delta"), sign=True), ha="right", family="monospace", **text)
        box.text(x0 + 1.65 * inch, y, shorten(what, chars), **text)


def shorten(text: str, n: int) -> str:
    text = " ".join((text or "").split())
    if len(text) <= n:
        return text
    cut = text[: n - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut[n // 2 :] else cut) + "…"
