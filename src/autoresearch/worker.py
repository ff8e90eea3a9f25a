"""The sandboxed side of an evaluation: `python -m autoresearch.worker FD`, started by autoresearch.engine.

A fork server: it imports the heavy libraries train.py uses (never train.py itself) and the feature frames
it is given, then forks one process per fold. That process gets a fold of its own (autoresearch.isolation),
reads its task straight from the parent over a socket of its own (the rows to fit with their labels, the rows
to predict without theirs), imports train.py afresh, fits, predicts, sends the predictions back, and dies.
The server never holds a label; nothing a fold learns reaches the next one; the parent scores.
"""

from __future__ import annotations

import io
import os
import pickle
import resource
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback
from pathlib import Path

from autoresearch import contract, wire
from autoresearch.boot import end_process
from autoresearch.contract import ContractError

LINUX = sys.platform.startswith("linux")
MAX_INIT = 1 << 30  # the init frame carries no rows: only paths and settings
MAX_TASK = 1 << 34  # a task carries the fold's row positions and training labels


class Violation(PermissionError):
    """train.py reached for a path only the harness may touch (a PermissionError, as the OS would raise)."""


# ---------------------------------------------------------------------------
# The server


def main(argv: list[str]) -> int:
    ctl = socket.socket(fileno=int(argv[0]))
    kind, payload, _ = wire.recv(ctl, MAX_INIT)
    init = pickle.loads(payload)  # from our own parent: the one direction pickles travel
    t0 = time.perf_counter()
    _harden(init)
    probing = None
    if init["isolate"]:  # forked before the imports: a small process, and the kernel answers while they run
        from autoresearch import isolation

        probing = isolation.start_probe(init["scratch_mb"])
    for name in init["preload"]:  # what train.py imports, so each fold pays for train.py's own body only
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - a module that fails here fails again, with a message, in the fold
            pass
    import pandas as pd

    if any(name.split(".")[0] == "sklearn" for name in init["preload"]):
        _warm_sklearn()
    frames = {part: pd.read_parquet(path) for part, path in init["features"].items()}
    why = isolation.answer(probing) if probing else None
    isolated = init["isolate"] and why is None
    wire.send_json(
        ctl, {"event": "ready", "import_s": round(time.perf_counter() - t0, 3), "isolated": isolated, "why": why}
    )
    _serve(init, frames, ctl, isolated)
    return 0


def _warm_sklearn() -> None:
    """Every fold is a fresh fork of this server, so what scikit-learn imports lazily on its first fit would be
    imported again by every fold (its DataFrame support pulls in narwhals: half a small fold's fit time). One
    fit of a generic pipeline on a made-up frame does it here, once; library code only, no train.py, no rows."""
    try:
        import numpy as np
        import pandas as pd
        from sklearn.compose import ColumnTransformer, make_column_selector
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        state = np.random.get_state()
        X = pd.DataFrame({"n": np.arange(8.0), "c": pd.Categorical(list("abcd") * 2)})
        columns = ColumnTransformer(
            [
                ("n", StandardScaler(), make_column_selector(dtype_include="number")),
                ("c", OneHotEncoder(handle_unknown="ignore"), make_column_selector(dtype_include="category")),
            ]
        )
        make_pipeline(columns, LogisticRegression()).fit(X, [0, 1] * 4).predict_proba(X)
        np.random.set_state(state)
    except Exception:  # noqa: BLE001 - a warm-up only: the folds import whatever it did not
        pass


def _serve(init: dict, frames: dict, ctl: socket.socket, isolated: bool) -> None:
    """Fork a fold process for every socket the parent sends, at once: the next fold's process gets ready (and
    waits for its task) while the current one fits. Each exit is reported with the fold's op number."""
    import selectors

    wake_r, wake_w = os.pipe()
    for fd in (wake_r, wake_w):
        os.set_blocking(fd, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    sel = selectors.DefaultSelector()
    sel.register(ctl, selectors.EVENT_READ)
    sel.register(wake_r, selectors.EVENT_READ)
    children: dict[int, tuple] = {}  # pid -> (op, scratch)
    while True:
        for key, _ in sel.select(timeout=1.0):
            if key.fileobj is ctl:
                try:
                    msg, fd = wire.recv_json(ctl, want_fd=True)
                except (EOFError, ConnectionError, wire.ProtocolError):
                    return  # the parent is done: the sandbox ends with this process
                if msg.get("op") == "end":
                    _end_fold(children, msg.get("fold"), isolated, ctl)
                    continue
                if fd is None:
                    continue
                scratch = None if isolated else tempfile.mkdtemp(prefix="fold-", dir=init["scratch_root"])
                pid = os.fork()
                if pid == 0:
                    signal.set_wakeup_fd(-1)
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    _fold(init, frames, fd, ctl.fileno(), isolated, scratch, keep=(wake_r, wake_w))
                os.close(fd)
                children[pid] = (msg.get("fold"), scratch)
            else:
                while True:
                    try:
                        if not os.read(wake_r, 512):
                            break
                    except BlockingIOError:
                        break
        _reap(children, isolated, ctl)


def _end_fold(children: dict, op, isolated: bool, ctl: socket.socket) -> None:
    """The parent has the fold's reply: kill the fold now, every process of it, rather than wait for it to end
    and for the kernel's teardown (the exit, with its CPU time, is reported when it is over). So a fold that
    will not end after its reply costs nothing, and once the parent hears this no code of it runs beside the
    next fold's."""
    from autoresearch.processes import descendants

    for pid, (fold, _) in children.items():
        if fold == op:
            # isolated, the process forked here only waits for the fold's PID 1: it is left to reap it, so its
            # exit reports the fold's whole CPU time; otherwise the fold is that process and its group
            _kill(descendants(pid)[1 if isolated else 0 :])
            if not isolated:
                _kill([pid], os.killpg)
    wire.send_json(ctl, {"event": "ended", "fold": op})


def _kill(pids, how=os.kill) -> None:
    """SIGKILL each (a process, or with os.killpg a group); one already gone is fine."""
    for p in pids:
        try:
            how(p, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _reap(children: dict, isolated: bool, ctl: socket.socket) -> None:
    while children:
        try:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if pid not in children:
            continue  # an orphan of a fold (without namespaces): killed in _cleanup
        op, scratch = children.pop(pid)
        if not isolated:
            _cleanup(pid, scratch, children)
        cpu_s = usage.ru_utime + usage.ru_stime  # the fold, its threads and the processes it waited for
        wire.send_json(ctl, {"event": "exit", "fold": op, "code": os.waitstatus_to_exitcode(status), "cpu_s": cpu_s})


def _harden(init: dict) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if LINUX:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG: die with the parent
        libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: no fold may trace this process or read its memory
        if not init["isolate"]:
            libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: a fold's escaped daemons come back here
        # a backstop against one runaway allocation; the parent's watchdog is the real memory cap
        cap = (init["memory_mb"] * 4 + 2048) << 20
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def _cleanup(pid: int, scratch: str | None, live: dict) -> None:
    """Without namespaces nothing takes a fold's leftovers with it: kill its process group and the orphans it
    left (they come back to this process, a subreaper), but not the other folds' processes; remove its scratch."""
    _kill([pid], os.killpg)
    if LINUX:
        from autoresearch.processes import children_of, descendants

        for child in children_of(os.getpid()):
            if child in live:
                continue
            _kill(reversed(descendants(child)))
            try:
                os.waitpid(child, 0)
            except ChildProcessError:
                pass
    shutil.rmtree(scratch, ignore_errors=True)


# ---------------------------------------------------------------------------
# A fold


def _fold(
    init: dict, frames: dict, fd: int, ctl_fd: int, isolated: bool, scratch: str | None, keep: tuple = ()
) -> None:
    """In the forked child: never returns."""
    sock = None
    try:
        for other in (ctl_fd, *keep):
            os.close(other)
        _close_fds_except(fd)
        if LINUX:
            import ctypes

            ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # die with the server
        if isolated:
            from autoresearch import isolation

            isolation.enter(init["scratch_mb"])
            home = isolation.SCRATCH[0]
        else:
            os.setsid()  # a group of its own: the server kills the whole of it afterwards
            home = scratch
        os.chdir(home)
        for var in ("HOME", "TMPDIR", "TMP", "TEMP", "JOBLIB_TEMP_FOLDER"):
            os.environ[var] = home
        tempfile.tempdir = None
        sock = socket.socket(fileno=fd)
        try:
            _, payload, _ = wire.recv(sock, MAX_TASK)
        except (EOFError, ConnectionError, wire.ProtocolError):
            os._exit(0)  # a spare fold the parent no longer needs: nothing to say
        _run(init, frames, pickle.loads(payload), sock)
    except BaseException as e:  # noqa: BLE001 - whatever happens, the parent hears one line
        _print_error(e)
        if sock is not None:
            try:
                wire.send_json(sock, {"event": "error", **_classify(e)})
            except OSError:
                pass
    finally:
        end_process(0)


def _print_error(e: BaseException) -> None:
    """The traceback the agent reads (the step line shows its last lines): the error train.py caused, from
    train.py down into the libraries, without this module's frames or the wrapper that names the fold (the
    one-line reason already says that)."""
    root = e.__cause__ if isinstance(e, RuntimeError) and e.__cause__ is not None else e
    try:
        tb = traceback.TracebackException.from_exception(root)
        ours = os.path.dirname(os.path.abspath(__file__))
        tb.stack = traceback.StackSummary.from_list([f for f in tb.stack if os.path.dirname(f.filename) != ours])
        sys.stderr.write("".join(tb.format(chain=False)))
    except Exception:  # noqa: BLE001 - an exception that will not format still gets its standard print
        traceback.print_exception(e)


def _close_fds_except(keep: int) -> None:
    top = min(os.sysconf("SC_OPEN_MAX"), 1 << 16)
    os.closerange(3, keep)
    os.closerange(keep + 1, top)


def _run(init: dict, frames: dict, task: dict, sock: socket.socket) -> None:
    import numpy as np
    import pandas as pd

    _install_guard(init["guard"], sock)
    module = contract.import_train(Path(init["train_py"]), task["prepare"])
    problems = contract.pipeline_problems(module)
    if problems:
        raise ContractError(problems[0])
    est = contract.build(module, {**module.PARAMS, **(task.get("params") or {})})
    X = frames["train"]
    X_fit = X.iloc[task["fit"]]
    y_fit = pd.Series(task["y"], index=X_fit.index, name=init["target"])
    X_pred = X.iloc[task["predict"]] if task["part"] == "train" else frames[task["part"]]
    t0 = time.perf_counter()
    try:
        est.fit(X_fit, y_fit)
    except (MemoryError, Violation):
        raise
    except Exception as e:
        raise RuntimeError(f"fold {task['fold']}: fit raised {type(e).__name__}: {contract.one_line(e)}") from e
    fit_s = time.perf_counter() - t0
    method = next((m for m in task["methods"] if callable(getattr(est, m, None))), None)
    if method is None:
        raise ContractError(_missing(task["methods"]))
    t1 = time.perf_counter()
    try:
        pred = getattr(est, method)(X_pred)
    except (MemoryError, Violation):
        raise
    except Exception as e:
        raise RuntimeError(f"fold {task['fold']}: {method}() raised {type(e).__name__}: {contract.one_line(e)}") from e
    predict_s = time.perf_counter() - t1
    values = _plain(pred, f"fold {task['fold']}: {method}()", np)
    classes = getattr(est, "classes_", None)
    wire.send_json(
        sock,
        {
            "event": "result",
            "method": method,
            "fit_s": round(fit_s, 4),
            "predict_s": round(predict_s, 4),
            "classes": classes is not None,
        },
    )
    wire.send(sock, wire.ARRAY, wire.array_bytes(values))
    if classes is not None:
        wire.send(sock, wire.ARRAY, wire.array_bytes(_plain(classes, f"fold {task['fold']}: classes_", np)))
    if task.get("export"):
        import joblib

        buf = io.BytesIO()
        joblib.dump(est, buf)
        wire.send(sock, wire.BLOB, buf.getvalue())


def _missing(methods: list[str]) -> str:
    if methods == ["predict_proba"]:
        return (
            "the metric needs probabilities but the pipeline has no predict_proba(); end the pipeline in a "
            "classifier that has it"
        )
    return f"the metric needs one of {', '.join(m + '()' for m in methods)}, and the pipeline has none of them"


def _plain(values, what: str, np):
    """Numbers or fixed-width text: the only arrays the parent reads back."""
    try:
        arr = np.asarray(values)
    except Exception:
        raise ContractError(f"{what} returned a {type(values).__name__}, not an array") from None
    if arr.ndim == 0:  # None, a number, a string: not one row per input
        raise ContractError(f"{what} returned {type(values).__name__}, not one row per input")
    if arr.dtype == object:
        try:
            arr = (
                arr.astype(float)
                if all(isinstance(v, (int, float, np.number)) for v in arr.ravel())
                else (arr.astype(str))
            )
        except (TypeError, ValueError):
            raise ContractError(f"{what} returned values that are neither numbers nor text") from None
    if arr.dtype.kind not in "biufU":
        raise ContractError(f"{what} returned {arr.dtype} values; it must return numbers (or class labels)")
    return arr


def _classify(e: BaseException) -> dict:
    if isinstance(e, ContractError):
        return {"kind": "contract", "reason": str(e)}
    if isinstance(e, Violation):
        return {"kind": "invalid", "reason": str(e)}
    if isinstance(e, MemoryError):
        return {
            "kind": "memory",
            "reason": "memory: MemoryError (the pipeline asked for more memory than the cap allows)",
        }
    if isinstance(e, SyntaxError) and e.filename and e.filename.endswith("train.py"):
        return {"kind": "exception", "reason": f"SyntaxError in train.py line {e.lineno}: {e.msg}"}
    reason = contract.one_line(e)
    # fit and predict failures already say where ("fold 3: fit raised ..."); anything else names its type
    return {"kind": "exception", "reason": reason if reason.startswith("fold ") else f"{type(e).__name__}: {reason}"}


# ---------------------------------------------------------------------------
# Defence in depth inside the sandbox: name every reach for the harness's paths (the sandbox hides them anyway)


def _install_guard(guard: dict, sock: socket.socket) -> None:
    private = [Path(p) for p in guard["private"]]
    frozen = [Path(p) for p in guard["frozen"]]
    root = Path(guard["root"])
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    reported: set[str] = set()

    def resolve(path) -> Path | None:
        try:
            p = Path(os.fsdecode(path))
        except (TypeError, ValueError):
            return None
        return Path(os.path.normpath(p if p.is_absolute() else Path.cwd() / p))

    def inside(p: Path, places) -> bool:
        return any(p == q or q in p.parents for q in places)

    def deny(what: str, p: Path) -> None:
        try:
            shown = p.relative_to(root).as_posix()
        except ValueError:
            shown = str(p)
        msg = f"train.py may not {what} {shown}: only the harness touches it"
        if msg not in reported and len(reported) < 20:
            reported.add(msg)
            wire.send_json(sock, {"event": "violation", "reason": msg})
        raise Violation(msg)

    def hook(event, args):
        if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            p = resolve(args[0])
            if p is None:
                return
            mode, flags = (list(args) + [None, None])[1:3]
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool((flags or 0) & write_flags)
            if inside(p, private):
                deny("write to" if writing else "read", p)
            if writing and inside(p, frozen):
                deny("write to", p)
        elif event in ("os.remove", "os.rename", "os.truncate", "shutil.rmtree", "os.rmdir", "os.chmod"):
            for a in args[:2]:
                if isinstance(a, (str, bytes, os.PathLike)) and (p := resolve(a)) and inside(p, private + frozen):
                    deny("change", p)

    sys.addaudithook(hook)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
