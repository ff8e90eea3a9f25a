"""The OS sandbox around every process that runs train.py code: what it sees, what it may write, how it starts.

Linux: bubblewrap (bwrap), the tool Claude Code's own sandbox uses there. macOS: Seatbelt (sandbox-exec), built
in. Both get the same View: an allow-list of read-only paths (the system's libraries, the Python install, the
virtualenv, the harness package, the train.py being evaluated, the feature files of this evaluation), none
of the project's data, state, ledger or git, no network, and nothing writable but a scratch tmpfs. Inside,
each fold is kept apart from the others by autoresearch.isolation (Linux) or by a fresh scratch folder and
a process group killed after it (macOS, weaker; see README "Trust model").
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from autoresearch import layout
from autoresearch.errors import UserError

SANDBOX_UID = SANDBOX_GID = 1000  # not 0: a fold may then map its own id into a namespace of its own
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_FILES = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/localtime",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/hosts",
    "/etc/os-release",
)
SYS_INFO = ("/sys/devices/system/cpu", "/sys/fs/cgroup")  # CPU counts for OpenMP, loky and os.cpu_count
INPUTS = "/autoresearch-inputs"  # where the evaluation's feature files appear inside the sandbox
SCRATCH = "/scratch"  # a fold's own writable tmpfs inside the sandbox (its HOME and TMPDIR)
INSTALL_HINT = (
    "install bubblewrap (Debian/Ubuntu: `sudo apt-get install bubblewrap`; Fedora: `sudo dnf install "
    "bubblewrap`; Arch: `sudo pacman -S bubblewrap`)"
)
UNPROTECTED = "sandbox = false: train.py runs unsandboxed, so these scores are not protected"


class SandboxError(UserError):
    """No usable sandbox here; the message names what to install or the setting that overrides it."""


@dataclasses.dataclass(frozen=True)
class View:
    """What a sandboxed process may read (`read`: host path -> path inside) and what it must not see even
    inside those (`masks`: packaged tables, the configured raw table)."""

    read: tuple[tuple[str, str], ...]
    masks: tuple[str, ...] = ()
    scratch_mb: int = 1024


def kind(enabled: bool) -> str:
    """'bwrap', 'seatbelt' or 'none' (sandbox = false)."""
    if not enabled:
        return "none"
    if sys.platform.startswith("linux"):
        return "bwrap"
    if sys.platform == "darwin":
        return "seatbelt"
    raise SandboxError(
        f"no sandbox is known for {sys.platform}; set sandbox = false in pyproject.toml "
        "[tool.autoresearch] to run unprotected (every score is then marked as not protected)"
    )


_checked: dict[str, str | None] = {}


def check(which: str) -> None:
    """Refuse, naming the fix, when the sandbox cannot start here (checked once per process)."""
    if which == "none" or _checked.get(which, "") is None:
        return
    why = _checked.get(which) or _probe(which)
    _checked[which] = why
    if why:
        raise SandboxError(why)


def _probe(which: str) -> str | None:
    if which == "seatbelt":
        return (
            None
            if Path("/usr/bin/sandbox-exec").is_file()
            else (
                "/usr/bin/sandbox-exec is missing, so train.py cannot be sandboxed; set sandbox = false in "
                "pyproject.toml [tool.autoresearch] to run unprotected"
            )
        )
    exe = shutil.which("bwrap")
    if exe is None:
        return (
            f"bubblewrap (bwrap) is not installed, so train.py cannot be sandboxed: {INSTALL_HINT}; or set "
            "sandbox = false in pyproject.toml [tool.autoresearch] to run unprotected"
        )
    argv = bwrap_argv(View(read=()), ["/bin/true" if Path("/bin/true").exists() else "/usr/bin/true"])
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"bwrap does not start ({e}); check the bubblewrap installation, or set sandbox = false"
    if r.returncode != 0:
        detail = (r.stderr.strip().splitlines() or ["no message"])[-1]
        return (
            f"bwrap cannot create its sandbox here ({detail}); user namespaces may be disabled "
            "(sysctl user.max_user_namespaces, or kernel.unprivileged_userns_clone); enable them, or set "
            "sandbox = false in pyproject.toml [tool.autoresearch] to run unprotected"
        )
    return None


# ---------------------------------------------------------------------------
# What the sandbox shows


def view(train_py: Path, inputs: dict[str, Path], raw_data: Path | None, scratch_mb: int) -> View:
    """The allow-list for evaluating `train_py`: of the project folder, only the package and train.py.
    `inputs` are the evaluation's feature files, shown under INPUTS by name in bwrap (at their own paths in
    Seatbelt, which cannot move a path)."""
    read: dict[str, str] = {}

    def show(host: Path, inside: str | None = None) -> None:
        real = os.path.realpath(host)
        if os.path.exists(real):
            read[real] = inside or real

    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}:
        show(Path(prefix))
    purelib = Path(sysconfig.get_paths()["purelib"])
    for entry in _linked_out(purelib):  # uv's symlink link-mode: packages live in its cache
        show(entry)
    import autoresearch

    package = Path(autoresearch.__file__).resolve().parent
    show(package)
    show(train_py)
    for name, path in inputs.items():
        show(path, f"{INPUTS}/{name}")
    masks = [str(purelib.resolve() / rel) for rel in layout.PACKAGED_DATA if (purelib / rel).exists()]
    if raw_data is not None and raw_data.exists():
        raw = os.path.realpath(raw_data)
        if any(raw == src or raw.startswith(src.rstrip("/") + "/") for src in read):
            masks.append(raw)
    return View(read=tuple(sorted(read.items())), masks=tuple(masks), scratch_mb=scratch_mb)


def _linked_out(purelib: Path) -> list[Path]:
    try:
        entries = list(purelib.iterdir())
    except OSError:
        return []
    return [e.resolve() for e in entries if e.is_symlink()]


def input_path(name: str) -> str:
    return f"{INPUTS}/{name}"


# ---------------------------------------------------------------------------
# Linux: bubblewrap


def bwrap_argv(v: View, command: list[str]) -> list[str]:
    a = [
        "bwrap",
        "--unshare-all",
        "--unshare-user",
        "--uid",
        str(SANDBOX_UID),
        "--gid",
        str(SANDBOX_GID),
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--hostname",
        "sandbox",
    ]
    for d in SYSTEM_DIRS:
        if os.path.islink(d):
            a += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            a += ["--ro-bind", d, d]
    for f in ETC_FILES:
        a += ["--ro-bind-try", f, f]
    for d in SYS_INFO:
        a += ["--ro-bind-try", d, d]
    for src, dst in v.read:
        a += ["--ro-bind", src, dst]
    for m in v.masks:  # an empty read-only folder (or /dev/null for a file) over what must stay unseen
        a += ["--ro-bind", "/dev/null", m] if os.path.isfile(m) else ["--tmpfs", m, "--remount-ro", m]
    a += ["--proc", "/proc", "--dev", "/dev", "--size", str(64 << 20), "--tmpfs", "/dev/shm", "--remount-ro", "/dev"]
    # /scratch is an empty read-only folder here; each fold mounts a fresh tmpfs of its own on it (and on
    # /dev/shm, which only the worker writes at this level). /tmp leads there, unless a shown path lives under it.
    a += ["--tmpfs", SCRATCH, "--remount-ro", SCRATCH]
    if not any(dst == "/tmp" or dst.startswith("/tmp/") for _, dst in v.read):
        a += ["--symlink", SCRATCH, "/tmp"]
    a += ["--remount-ro", "/", "--chdir", SCRATCH, "--", *command]
    return a


# ---------------------------------------------------------------------------
# macOS: Seatbelt


def seatbelt_profile(v: View, scratch: str) -> str:
    """An SBPL profile: deny by default; read the View, write only `scratch`, no network. Later rules win, so
    the masks come last."""

    def q(path: str) -> str:
        return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'

    system = ("/usr", "/bin", "/sbin", "/System", "/Library", "/private/etc", "/private/var/db", "/dev")
    lines = [
        "(version 1)",
        "(deny default)",
        "(allow process-fork)",
        "(allow process-exec)",
        "(allow signal (target same-sandbox))",
        "(allow process-info* (target same-sandbox))",
        "(allow sysctl-read)",
        "(allow mach-lookup)",
        "(allow ipc-posix-shm)",
        "(allow ipc-posix-sem)",
        "(allow file-read-metadata)",
        "(allow file-map-executable)",
    ]
    lines += [f"(allow file-read* (subpath {q(d)}))" for d in system]
    for src, _ in v.read:
        lines.append(f"(allow file-read* ({'subpath' if os.path.isdir(src) else 'literal'} {q(src)}))")
    lines += [
        f"(allow file-read* file-write* (subpath {q(scratch)}))",
        '(allow file-write* (literal "/dev/null"))',
        "(deny network*)",
    ]
    lines += [f"(deny file-read* ({'subpath' if os.path.isdir(m) else 'literal'} {q(m)}))" for m in v.masks]
    return "\n".join(lines) + "\n"


def seatbelt_argv(v: View, scratch: str, command: list[str]) -> list[str]:
    return ["/usr/bin/sandbox-exec", "-p", seatbelt_profile(v, scratch), *command]
