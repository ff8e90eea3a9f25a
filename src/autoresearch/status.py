"""`autoresearch status`: where the run stands, in at most 25 lines, for an agent that lost its context.

Reads only the ledger, run.json and the manifest (never the holdout file), and imports nothing heavy:
the SessionStart hook prints this card into every resumed or compacted session.
"""

from __future__ import annotations

import math
import time

from autoresearch import keep_rule, ledger, runstate
from autoresearch.config import Config, load_config
from autoresearch.prepared import load_manifest

LAST_ROWS = 10
KEPT = (keep_rule.KEEP, keep_rule.SIMPLIFY)


def add_arguments_status(p) -> None:
    p.add_argument("--tag", help="a run other than the active one")


def run_status(args) -> int:
    cfg = load_config()
    tag = args.tag or runstate.active_tag(cfg.root)
    run = runstate.load_run(cfg.root, tag) if tag else None
    if run is None:
        print("no run yet: `uv run autoresearch start <tag>` starts one (baseline, branch, ledger)")
        return 0
    _recover_if_idle(cfg, run)
    print(card(cfg, runstate.load_run(cfg.root, run["tag"])))
    return 0


def _recover_if_idle(cfg: Config, run: dict) -> None:
    """A step killed earlier is finished and recorded here, unless a command is running right now."""
    if not runstate.pending_path(cfg.root, run["tag"]).exists():
        return
    from autoresearch import gitops, ratchet
    from autoresearch.errors import UserError

    try:
        with runstate.Lock(cfg.root):
            for note in ratchet.recover(cfg, gitops.open_repo(cfg.root), run):
                print(note)
    except UserError:
        print("a step is running right now (its result will appear in the ledger when it ends)")


def card(cfg: Config, run: dict) -> str:
    manifest = load_manifest(cfg) or {}
    rows = ledger.read(cfg.root, run["tag"])
    steps = [r for r in rows if r["status"] != keep_rule.BASELINE]
    inc, base = run["incumbent"], run["baseline"]
    hours = max((time.time() - run["started_at"]) / 3600, 1e-9)
    metric = manifest.get("metric", "score")
    direction = "higher" if manifest.get("higher_is_better", True) else "lower"
    state = run["status"] + (f" ({run['stopped']['reason']})" if run.get("stopped") else "")
    lines = [
        f"run {run['tag']} ({state}) on {run['branch']}: {len(steps)} iterations in {hours:.1f} h "
        f"({len(steps) / hours:.1f}/h)",
        f"{metric} ({direction} is better): baseline {base['mean']:.4f}, best {inc['mean']:.4f} "
        f"± {inc.get('se', math.nan):.4f} (iter {inc['iter']}, {inc['commit'][:8]})",
        "last rows:",
    ]
    for r in rows[-LAST_ROWS:]:
        delta = f"{ledger.number(r, 'delta'):+.4f}" if r["delta"] else "       "
        score = f"{ledger.number(r, 'metric'):.4f}" if r["metric"] else "  -   "
        lines.append(
            f"  {r['iter']:>4} {r['status']:<8} {score} {delta}  {r['category'][:14]:<14} "
            f"{_short(r['hypothesis'] or r['note'], 60)}"
        )
    if manifest.get("columns"):
        from autoresearch.ratchet import feature_line

        lines.append(f"features: {feature_line(manifest, 400)}")
    lines += _categories(steps)
    lines += _advice(cfg, run, steps)
    return "\n".join(lines[:25])


def _categories(steps: list[dict]) -> list[str]:
    parts = [f"{c} {n} tried/{k} kept/Σ{d:+.4f}" for c, n, k, d in ledger.by_category(steps, KEPT)]
    return ["categories: " + ", ".join(parts[:6])] if parts else []


def _advice(cfg: Config, run: dict, steps: list[dict]) -> list[str]:
    out = []
    since_keep = 0
    for r in reversed(steps):
        if r["status"] in KEPT:
            break
        since_keep += 1
    if since_keep >= cfg.plateau_after:
        out.append(
            f"plateau: no keep in the last {since_keep} iterations: change category (see program.md "
            "phases), or run `uv run autoresearch sweep` on a SEARCH_SPACE of the current model's knobs"
        )
    if run.get("consecutive_failures", 0) >= 3:
        out.append(
            f"warning: the last {run['consecutive_failures']} iterations failed (crash/timeout/invalid): "
            "read the tail in their line, simplify, or check the budget"
        )
    if run["status"] == "active":
        out.append("next: edit train.py (one idea, HYPOTHESIS and CATEGORY), then `uv run autoresearch step`")
    else:
        out.append(f"the run is stopped; `uv run autoresearch start {run['tag']}` resumes it")
    return out


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
