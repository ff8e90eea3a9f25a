"""Linux: a fold of its own inside the sandbox. Called in a fresh fork of the worker, before train.py is
imported, it gives the fold new user, mount, IPC, network, UTS and PID namespaces, an empty tmpfs of its own
on /scratch (its HOME and TMPDIR) and /dev/shm, a new session keyring, and then drops every capability.

So nothing a fold does can reach another fold or outlive it: its files vanish with its mount namespace, its
processes with its PID namespace (the fold is PID 1 there), its System V and POSIX IPC objects, abstract
sockets and keys with their namespaces. The sandbox around it (bubblewrap) decides what is visible at all;
this only keeps folds apart. No capability is needed: an unprivileged process may create a user namespace.
"""

from __future__ import annotations

import ctypes
import os
import platform
import signal

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
FLAGS = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWPID
MS_NOSUID, MS_NODEV, MS_REC, MS_PRIVATE = 0x2, 0x4, 0x4000, 0x40000
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT = 1, 24, 38, 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
KEYCTL_JOIN_SESSION_KEYRING = 1
CAP_VERSION_3 = 0x20080522
# keyctl(2) has no libc wrapper; its number differs per architecture
SYS_KEYCTL = {
    "x86_64": 250,
    "amd64": 250,
    "aarch64": 219,
    "arm64": 219,
    "riscv64": 219,
    "ppc64le": 271,
    "ppc64": 271,
    "s390x": 280,
    "i686": 288,
    "i386": 288,
    "armv7l": 311,
}
SCRATCH = ("/scratch", "/dev/shm")  # sandbox.SCRATCH and POSIX shared memory


class IsolationError(OSError):
    pass


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise IsolationError(err, f"{what}: {os.strerror(err)}")


def enter(scratch_mb: int) -> None:
    """Returns in the fold's own process (PID 1 of its namespaces); the caller's process only waits for it and
    exits with its status. Raises IsolationError, before any namespace exists, when the kernel refuses."""
    libc = _libc()
    keyctl = SYS_KEYCTL.get(platform.machine())
    if keyctl is None:
        raise IsolationError(0, f"keyctl's system call number is unknown on {platform.machine()}")
    uid, gid = os.getuid(), os.getgid()
    _check(libc.unshare(FLAGS), "unshare")
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        fd = os.open(f"/proc/self/{name}", os.O_WRONLY)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
    pid = os.fork()  # the new PID namespace starts with this child
    if pid:
        os.closerange(0, os.sysconf("SC_OPEN_MAX") if os.sysconf("SC_OPEN_MAX") < 1 << 16 else 1 << 16)
        _, status = os.waitpid(pid, 0)
        os._exit(os.waitstatus_to_exitcode(status) & 0xFF if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))
    _check(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
    _check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "making the mounts private")
    for where in SCRATCH:
        opts = f"size={scratch_mb}m,mode=1777".encode()
        _check(libc.mount(b"tmpfs", where.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, opts), f"a tmpfs on {where}")
    if libc.syscall(keyctl, KEYCTL_JOIN_SESSION_KEYRING, None, 0, 0, 0) < 0:
        err = ctypes.get_errno()
        raise IsolationError(err, f"a new session keyring: {os.strerror(err)}")
    drop_privileges(libc)


def drop_privileges(libc=None) -> None:
    libc = libc or _libc()
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    for cap in range(last + 1):
        _check(libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), "dropping the capability bounding set")
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    _check(libc.capset(ctypes.byref(_CapHeader(CAP_VERSION_3, 0)), (_CapData * 2)()), "capset")
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")


def start_probe(scratch_mb: int = 16) -> tuple[int, int]:
    """Whether folds can be isolated here, asked of a throwaway fork that tries: returns at once (its pid, the
    pipe its answer comes on), so the kernel answers while the caller imports; `answer` reads it."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            enter(scratch_mb)
            with open(SCRATCH[0] + "/probe", "w") as f:
                f.write("ok")
            os.write(w, b"ok")
        except BaseException as e:  # noqa: BLE001 - anything here is the answer
            os.write(w, str(e).encode()[:500] or type(e).__name__.encode())
        os._exit(0)
    os.close(w)
    return pid, r


def answer(started: tuple[int, int]) -> str | None:
    """None when folds can be isolated here, else why not."""
    pid, r = started
    with os.fdopen(r, "rb") as f:
        said = f.read().decode(errors="replace")
    os.waitpid(pid, 0)
    return None if said == "ok" else said or "the probe died"
