"""The frames the trusted parent and the sandboxed worker exchange over a Unix socket.

A frame is one kind byte, an 8-byte length and the payload. What the parent sends may be pickled (the
worker trusts its parent); what comes back is only ever JSON (bounded) or a numpy array read with
allow_pickle=False, so nothing the evaluated code writes can run code in the parent.
"""

from __future__ import annotations

import io
import json
import socket
import struct

JSON, PICKLE, ARRAY, BLOB = b"J", b"P", b"A", b"B"
HEADER = struct.Struct(">cQ")
MAX_JSON = 1 << 20
ARRAY_KINDS = "biuf"  # booleans, integers, floats; text labels travel as fixed-width unicode ("U")


class ProtocolError(Exception):
    """The other side sent something that is not a frame of the expected kind and size."""


def send(sock: socket.socket, kind: bytes, payload: bytes, fd: int | None = None) -> None:
    head = HEADER.pack(kind, len(payload))
    if fd is None:
        sock.sendall(head)
    else:  # the descriptor rides on the header, so the receiver gets it with the first bytes it reads
        socket.send_fds(sock, [head], [fd])
    sock.sendall(payload)


def recv(sock: socket.socket, limit: int, want_fd: bool = False) -> tuple[bytes, bytes, int | None]:
    """(kind, payload, fd). EOFError when the other side closed cleanly between frames."""
    fd = None
    if want_fd:
        head, fds, _, _ = socket.recv_fds(sock, HEADER.size, 1)
        fd = fds[0] if fds else None
        head += _exactly(sock, HEADER.size - len(head)) if head else b""
    else:
        head = _exactly(sock, HEADER.size, eof_ok=True)
    if not head:
        raise EOFError
    if len(head) != HEADER.size:
        raise ProtocolError("a truncated frame header")
    kind, size = HEADER.unpack(head)
    if size > limit:
        raise ProtocolError(f"a frame of {size} bytes, over the {limit}-byte limit")
    return kind, _exactly(sock, size), fd


def _exactly(sock: socket.socket, n: int, eof_ok: bool = False) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(min(n - got, 1 << 20))
        if not chunk:
            if eof_ok and got == 0:
                return b""
            raise ProtocolError(f"the connection closed after {got} of {n} bytes")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def send_json(sock: socket.socket, obj: dict, fd: int | None = None) -> None:
    send(sock, JSON, json.dumps(obj).encode(), fd)


def recv_json(sock: socket.socket, want_fd: bool = False) -> dict | tuple[dict, int | None]:
    kind, payload, fd = recv(sock, MAX_JSON, want_fd)
    if kind != JSON:
        raise ProtocolError(f"expected a JSON frame, got kind {kind!r}")
    obj = parse_json(payload)
    return (obj, fd) if want_fd else obj


def parse_json(payload: bytes) -> dict:
    if len(payload) > MAX_JSON:
        raise ProtocolError("a JSON frame over the size limit")
    try:
        obj = json.loads(payload)
    except ValueError:
        raise ProtocolError("a JSON frame that does not parse") from None
    if not isinstance(obj, dict):
        raise ProtocolError("a JSON frame that is not an object")
    return obj


def array_bytes(arr) -> bytes:
    import numpy as np

    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def array_from(payload: bytes):
    """A numpy array from untrusted bytes: no pickles, no object arrays, only plain numbers and text."""
    import numpy as np

    try:
        arr = np.lib.format.read_array(io.BytesIO(payload), allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise ProtocolError(f"an array that does not parse ({e})") from None
    if arr.dtype.kind not in ARRAY_KINDS + "U":
        raise ProtocolError(f"an array of dtype {arr.dtype}, not numbers or text")
    return arr
