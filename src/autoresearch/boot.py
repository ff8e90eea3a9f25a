"""The interpreter start-up hook, installed as site-packages/autoresearch_boot.pth.

`uv run train.py` would run train.py's own top-level code in an unsandboxed process before anything of the
harness could look at it; `uv run prepare.py` would run with the project folder first on sys.path, where a
planted module could shadow a library. So when the interpreter starts on either file of an autoresearch
project, this hook (run while `site` processes .pth files, before the script and before the script's folder
joins sys.path) hands over to the command line instead and ends the process: `train.py` becomes
`autoresearch train`, `prepare.py` becomes `autoresearch prepare`. Every other start is left alone, at the
cost of one look at sys.argv.
"""

import os
import sys

ROUTES = {"train.py": "train", "prepare.py": "prepare"}


def _route() -> str | None:
    script = sys.argv[0] if sys.argv else ""
    verb = ROUTES.get(os.path.basename(script))
    if verb is None or getattr(sys, "_autoresearch_booted", False):
        return None
    folder = os.path.dirname(os.path.abspath(script))
    try:
        with open(os.path.join(folder, "pyproject.toml"), encoding="utf-8", errors="replace") as f:
            ours = "[tool.autoresearch]" in f.read()
    except OSError:
        return None
    return verb if ours and os.path.isfile(os.path.join(folder, "prepare.py")) else None


def _hand_over(verb: str) -> None:
    sys._autoresearch_booted = True
    from autoresearch.cli import main

    code = 1
    try:
        code = main([verb, os.path.abspath(sys.argv[0]), *sys.argv[1:]] if verb == "train" else [verb, *sys.argv[1:]])
    except SystemExit as e:
        code = exit_code(e)
    except BaseException:  # noqa: BLE001 - the traceback is printed, and the script must still not run
        import traceback

        traceback.print_exc()
    finally:
        end_process(code)


def exit_code(e: SystemExit) -> int:
    """What the interpreter would make of sys.exit(x): a string is printed to stderr and exits 1."""
    if isinstance(e.code, str):
        print(e.code, file=sys.stderr)
    return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)


_closers: list = []


def on_end(close) -> None:
    """Run `close()` before end_process ends the process: what must not outlive it (git's helper processes)."""
    _closers.append(close)


def end_process(code: int) -> None:
    """Flush what was printed and end at once: no atexit handler, no finaliser of the code that ran here, only
    the closers registered with on_end."""
    while _closers:
        try:
            _closers.pop()()
        except Exception:  # noqa: BLE001 - ending anyway
            pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


_verb = _route()
if _verb is not None:
    _hand_over(_verb)
