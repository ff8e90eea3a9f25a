"""`autoresearch VERB ...`: one entry point, one module per verb (imported only when the verb runs)."""

from __future__ import annotations

import argparse
import importlib
import sys

# verb: (module, one-line help). The module defines add_arguments_<verb>(parser) and run_<verb>(args) -> int.
VERBS = {
    "prepare": ("autoresearch.cli", "fix the holdout and the folds, cache the data under data/, print the data card"),
    "train": ("autoresearch.dryrun", "score train.py on the folds in the sandbox (what `uv run train.py` runs)"),
    "start": ("autoresearch.ratchet", "start or resume the run on branch autoresearch/<tag>: baseline, ledger, card"),
    "step": ("autoresearch.ratchet", "one iteration: commit train.py, evaluate, keep or revert, log one row"),
    "profile": (
        "autoresearch.profile",
        "an agent-safe look at the train part: kinds, missing, levels, ranges, signal, target balance",
    ),
    "status": ("autoresearch.status", "where the run stands (best, last rows, categories, plateau) in <= 25 lines"),
    "stop": ("autoresearch.ratchet", "mark the run stopped, so the Claude Code stop gate lets the agent end"),
    "sweep": (
        "autoresearch.sweep",
        "Bayesian optimisation (Optuna TPE) over train.py's SEARCH_SPACE, then hand to step",
    ),
    "report": ("autoresearch.report", "for the human: progress plot and report with holdout scores"),
    "export": ("autoresearch.export", "fit a commit's pipeline on the whole train part and save it (joblib)"),
    "predict": ("autoresearch.predict", "apply an exported model to new rows"),
    "hook": ("autoresearch.hooks", "Claude Code hook entry points (guard, stop, session-start); reads stdin JSON"),
}

EPILOG = """\
the loop (one command per iteration):
  uv run autoresearch start my-run     once: branch, baseline, ledger
  (edit train.py: one idea, one Edit of the lines it changes)
  uv run autoresearch step --category model --hypothesis 'what this tries and why'
                                       write both into train.py, commit, evaluate, keep or revert: one line
  uv run autoresearch status           after a context compaction: where am I?

configuration: [tool.autoresearch] in pyproject.toml; the contract: prepare.py.
"""


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autoresearch",
        description="An autonomous tabular-ML research loop: frozen harness, one mutable train.py.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for name, (_, text) in VERBS.items():
        p = sub.add_parser(name, help=text, description=text)
        if name == verb:  # only the chosen verb's module is imported: keeps `--help` and hooks fast
            getattr(_module(name), f"add_arguments_{name}")(p)
    return parser


def _module(verb: str):
    name = VERBS[verb][0]
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name != name:
            raise
        sys.exit(f"error: `autoresearch {verb}` is not available in this installation ({name} is missing)")


def entry() -> None:
    """The `autoresearch` console script: main(), then end at once. The interpreter's teardown of pandas,
    scikit-learn and git costs tenths of a second on every step, and every verb has closed what it opened."""
    from autoresearch.boot import end_process, exit_code

    try:
        code = main()
    except SystemExit as e:  # argparse, and sys.exit("error: ...") for a missing verb module
        code = exit_code(e)
    end_process(code)


def main(argv: list[str] | None = None) -> int:
    from autoresearch.errors import UserError

    argv = sys.argv[1:] if argv is None else argv
    verb = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(verb if verb in VERBS else None)
    args = parser.parse_args(argv)
    if args.verb is None:
        parser.print_help()
        return 2
    run = getattr(_module(args.verb), f"run_{args.verb}")
    try:
        return run(args) or 0
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


# ---------------------------------------------------------------------------
# prepare


def run_prepare(args) -> int:
    from autoresearch.config import load_config
    from autoresearch.manifest import data_card, prepare

    cfg = load_config()
    manifest, written = prepare(cfg, force=args.force)
    print(data_card(manifest, cfg))
    print(f"prepared: {'written to' if written else 'unchanged in'} {cfg.data_dir}/ (manifest {manifest['id']})")
    return 0


def add_arguments_prepare(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--force",
        action="store_true",
        help="re-prepare even though results.tsv has experiments scored on the old split "
        "(they become incomparable: start a new run tag afterwards)",
    )


if __name__ == "__main__":
    entry()
