"""A scripted stand-in for the Anthropic Messages API on 127.0.0.1, for driving the real Claude Code CLI offline.

Stdlib only. Start it with ``with FakeModel(script) as fm: ...`` (or ``fm.start()`` / ``fm.stop()``); point the CLI
at ``fm.base_url`` through ``ANTHROPIC_BASE_URL``.

The script is a list of turns, played one per *main-loop* request (a request that carries tools):

* ``tool_call("Bash", {"command": "echo hi"})`` -- one ``tool_use`` block, ``stop_reason: tool_use``;
* ``tool_calls(tool_call(...), tool_call(...))`` -- several parallel ``tool_use`` blocks in one turn;
* ``final_text("done")`` -- a text block, ``stop_reason: end_turn``;
* a callable ``f(body) -> turn`` -- called with the request body (a dict) so a test can react to what the CLI
  sent; an exception raised by it is recorded in ``fm.errors`` and answered with an end_turn text, so the CLI
  finishes instead of retrying.

When the script is exhausted, every further main-loop request is answered ``end_turn`` with ``"script exhausted"``.

Auxiliary requests (no ``tools``: title/summary/topic generation, quota probes, ...) are answered with a short
harmless text and consume no turn; ``/v1/messages/count_tokens`` gets a token estimate; any other path gets
``200 {}`` (GET/HEAD/POST) so nothing hangs. Every request is recorded in ``fm.requests`` (``Request`` objects,
``kind`` in ``main | aux | count_tokens | other``).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

AUX_TEXT = "ok"
EXHAUSTED_TEXT = "script exhausted"


# --------------------------------------------------------------------------------------------------------------
# turns
@dataclass
class ToolCall:
    name: str
    input: dict
    id: str | None = None


@dataclass
class Turn:
    """One assistant message: optional leading text, then zero or more tool calls."""

    text: str | None = None
    tools: list[ToolCall] = field(default_factory=list)

    @property
    def stop_reason(self) -> str:
        return "tool_use" if self.tools else "end_turn"


def tool_call(name: str, input: dict, *, text: str | None = None, id: str | None = None) -> Turn:
    return Turn(text=text, tools=[ToolCall(name, dict(input), id)])


def tool_calls(*turns_or_calls: Turn | ToolCall, text: str | None = None) -> Turn:
    calls: list[ToolCall] = []
    for t in turns_or_calls:
        calls.extend(t.tools if isinstance(t, Turn) else [t])
    return Turn(text=text, tools=calls)


def final_text(text: str) -> Turn:
    return Turn(text=text)


ScriptItem = Turn | Callable[[dict], Turn]


# --------------------------------------------------------------------------------------------------------------
# helpers for tests: reading what the CLI sent
def content_blocks(message: dict) -> list[dict]:
    c = message.get("content")
    if isinstance(c, str):
        return [{"type": "text", "text": c}]
    return list(c or [])


def block_text(block: dict) -> str:
    """Text of a text block or a tool_result block (whose content is a string or a list of blocks)."""
    if block.get("type") == "text":
        return block.get("text", "")
    if block.get("type") == "tool_result":
        c = block.get("content")
        if isinstance(c, str):
            return c
        return "\n".join(b.get("text", "") for b in (c or []) if isinstance(b, dict))
    return ""


def last_user_message(body: dict) -> dict:
    for m in reversed(body.get("messages", [])):
        if m.get("role") == "user":
            return m
    return {}


def tool_results(body: dict, *, last_only: bool = True) -> list[dict]:
    """tool_result blocks of the last user message (or of all messages)."""
    msgs = [last_user_message(body)] if last_only else body.get("messages", [])
    return [b for m in msgs for b in content_blocks(m) if b.get("type") == "tool_result"]


def message_text(message: dict) -> str:
    return "\n".join(block_text(b) for b in content_blocks(message))


def all_text(body: dict) -> str:
    """Every text and tool_result text in every message (not the system prompt)."""
    return "\n".join(message_text(m) for m in body.get("messages", []))


def system_text(body: dict) -> str:
    s = body.get("system")
    if isinstance(s, str):
        return s
    return "\n".join(b.get("text", "") for b in (s or []) if isinstance(b, dict))


def tool_names(body: dict) -> list[str]:
    return [t.get("name", "") for t in body.get("tools") or []]


def is_main_request(body: dict) -> bool:
    """The agent loop sends the tool list; auxiliary calls (titles, summaries, quota probes) send none."""
    return bool(body.get("tools"))


# --------------------------------------------------------------------------------------------------------------
# wire format
def _sse(event: str, data: dict) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def _blocks(turn: Turn, ids: Callable[[], str]) -> list[dict]:
    blocks: list[dict] = []
    if turn.text is not None:
        blocks.append({"type": "text", "text": turn.text})
    for tc in turn.tools:
        blocks.append({"type": "tool_use", "id": tc.id or ids(), "name": tc.name, "input": tc.input})
    return blocks


def _usage(input_tokens: int, output_tokens: int) -> dict:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def _estimate_tokens(body: dict) -> int:
    return max(1, len(json.dumps(body.get("messages", []))) // 4)


def render_json(turn: Turn, model: str, msg_id: str, blocks: list[dict], input_tokens: int) -> dict:
    return {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": turn.stop_reason,
        "stop_sequence": None,
        "usage": _usage(input_tokens, 5),
    }


def render_sse(turn: Turn, model: str, msg_id: str, blocks: list[dict], input_tokens: int) -> bytes:
    out = [
        _sse(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": msg_id,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": _usage(input_tokens, 1),
                },
            },
        )
    ]
    for i, b in enumerate(blocks):
        if b["type"] == "text":
            out.append(
                _sse(
                    "content_block_start",
                    {"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}},
                )
            )
            text = b["text"]
            # two deltas, to exercise the client's accumulation
            for chunk in (text[: len(text) // 2], text[len(text) // 2 :]):
                if chunk:
                    out.append(
                        _sse(
                            "content_block_delta",
                            {"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": chunk}},
                        )
                    )
        else:
            out.append(
                _sse(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": i,
                        "content_block": {"type": "tool_use", "id": b["id"], "name": b["name"], "input": {}},
                    },
                )
            )
            js = json.dumps(b["input"])
            for chunk in (js[: len(js) // 2], js[len(js) // 2 :]):
                if chunk:
                    out.append(
                        _sse(
                            "content_block_delta",
                            {
                                "type": "content_block_delta",
                                "index": i,
                                "delta": {"type": "input_json_delta", "partial_json": chunk},
                            },
                        )
                    )
        out.append(_sse("content_block_stop", {"type": "content_block_stop", "index": i}))
    out.append(
        _sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": turn.stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": 5},
            },
        )
    )
    out.append(_sse("message_stop", {"type": "message_stop"}))
    return b"".join(out)


# --------------------------------------------------------------------------------------------------------------
# server
@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON (dict) when possible, else the raw text
    kind: str  # main | aux | count_tokens | other
    turn_index: int | None = None  # index into the script for main requests (None once exhausted)
    response: Any = None  # the Turn (or dict) answered
    time: float = 0.0


class FakeModel:
    def __init__(
        self,
        script: list[ScriptItem] | None = None,
        *,
        is_main: Callable[[dict], bool] = is_main_request,
        aux_text: str = AUX_TEXT,
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        self.script: list[ScriptItem] = list(script or [])
        self.is_main = is_main
        self.aux_text = aux_text
        self.requests: list[Request] = []
        self.errors: list[str] = []
        self._next_turn = 0
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._host, self._port = host, port
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.exhausted_event = threading.Event()

    # ---- lifecycle
    def start(self) -> FakeModel:
        fm = self

        class Handler(_Handler):
            model = fm

        httpd = ThreadingHTTPServer((self._host, self._port), Handler)
        httpd.daemon_threads = True
        httpd.block_on_close = False
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="fake-model", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeModel:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}"

    # ---- views for tests
    @property
    def main_requests(self) -> list[Request]:
        return [r for r in self.requests if r.kind == "main"]

    @property
    def turns_played(self) -> int:
        return self._next_turn

    @property
    def script_done(self) -> bool:
        return self._next_turn >= len(self.script)

    def describe(self) -> str:
        """One line per request, for assertion messages."""
        lines = []
        for i, r in enumerate(self.requests):
            extra = ""
            if isinstance(r.body, dict):
                b = r.body
                extra = f" model={b.get('model')} stream={b.get('stream')} tools={len(b.get('tools') or [])}"
                lu = message_text(last_user_message(r.body)).replace("\n", " ")
                extra += f" last_user={lu[:160]!r}"
            lines.append(f"#{i} {r.method} {r.path} [{r.kind} turn={r.turn_index}]{extra}")
        if self.errors:
            lines.append(f"errors: {self.errors}")
        return "\n".join(lines)

    # ---- playing
    def next_msg_id(self) -> str:
        return f"msg_fake{next(self._ids):04d}"

    def next_tool_id(self) -> str:
        return f"toolu_fake{next(self._ids):04d}"

    def _play(self, req: Request) -> Turn:
        body = req.body if isinstance(req.body, dict) else {}
        with self._lock:
            if self._next_turn >= len(self.script):
                req.turn_index = None
                self.exhausted_event.set()
                return final_text(EXHAUSTED_TEXT)
            idx = self._next_turn
            self._next_turn += 1
            item = self.script[idx]
            req.turn_index = idx
            if self._next_turn >= len(self.script):
                self.exhausted_event.set()
        if callable(item) and not isinstance(item, Turn):
            try:
                item = item(body)
            except Exception as e:  # noqa: BLE001 - reported to the test through self.errors
                msg = f"script turn {idx} raised {type(e).__name__}: {e}\n{traceback.format_exc()}"
                self.errors.append(msg)
                return final_text(f"fake model error in turn {idx}: {type(e).__name__}: {e}")
            if not isinstance(item, Turn):
                self.errors.append(f"script turn {idx} returned {type(item).__name__}, not a Turn")
                return final_text(f"fake model error in turn {idx}")
        return item


class _Handler(BaseHTTPRequestHandler):
    model: FakeModel
    protocol_version = "HTTP/1.1"
    server_version = "FakeAnthropic/1.0"

    def log_message(self, format: str, *args) -> None:  # quiet
        pass

    def _read_body(self) -> Any:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode("utf-8", "replace")

    def _send(self, status: int, payload: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("request-id", "req_fake")
        self.send_header("anthropic-organization-id", "00000000-0000-0000-0000-000000000000")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        self.wfile.flush()

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def _record(self, body: Any, kind: str) -> Request:
        req = Request(self.command, self.path, dict(self.headers.items()), body, kind, time=time.time())
        with self.model._lock:
            self.model.requests.append(req)
        return req

    def do_GET(self) -> None:
        self._record(None, "other")
        self._json(200, {})

    def do_HEAD(self) -> None:
        self._record(None, "other")
        self._json(200, {})

    def do_POST(self) -> None:
        body = self._read_body()
        path = self.path.split("?", 1)[0].rstrip("/")
        if path.endswith("/v1/messages/count_tokens"):
            self._record(body, "count_tokens")
            self._json(200, {"input_tokens": _estimate_tokens(body if isinstance(body, dict) else {})})
            return
        if not path.endswith("/v1/messages"):
            self._record(body, "other")
            self._json(200, {})
            return
        if not isinstance(body, dict):
            self._record(body, "other")
            self._json(400, {"type": "error", "error": {"type": "invalid_request_error", "message": "bad json"}})
            return
        fm = self.model
        main = fm.is_main(body)
        req = self._record(body, "main" if main else "aux")
        turn = fm._play(req) if main else final_text(fm.aux_text)
        req.response = turn
        model = body.get("model", "claude-fake")
        blocks = _blocks(turn, fm.next_tool_id)
        msg_id = fm.next_msg_id()
        ntok = _estimate_tokens(body)
        if body.get("stream"):
            self._send(200, render_sse(turn, model, msg_id, blocks, ntok), "text/event-stream")
        else:
            self._json(200, render_json(turn, model, msg_id, blocks, ntok))

    def do_PUT(self) -> None:  # pragma: no cover - not expected
        self._read_body()
        self._record(None, "other")
        self._json(200, {})

    do_DELETE = do_PUT
    do_PATCH = do_PUT
