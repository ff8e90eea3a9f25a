"""`autoresearch status`: where the run stands, for an agent that lost its context (autoresearch.cards).

Reads only the ledger, run.json and the manifest (never the holdout file), and imports nothing heavy: the
SessionStart hook prints this card into every resumed or compacted session. A step killed earlier is
finished and recorded here first, unless a command is running right now.
"""

from __future__ import annotations

from autoresearch import cards, runstate
from autoresearch.config import Config, load_config
from autoresearch.manifest import load_manifest
from autoresearch.records import Run


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
    print(cards.status_card(cfg, runstate.load_run(cfg.root, run.tag), load_manifest(cfg) or {}))
    return 0


def _recover_if_idle(cfg: Config, run: Run) -> None:
    if not runstate.pending_path(cfg.root, run.tag).exists():
        return
    from autoresearch import finish, gitops
    from autoresearch.errors import UserError

    try:
        with runstate.Lock(cfg.root):
            for note in finish.recover(cfg, gitops.open_repo(cfg.root), run):
                print(note)
    except UserError:
        print("a step is running right now (its result will appear in the ledger when it ends)")
