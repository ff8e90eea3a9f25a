"""The scripted model's wire protocol, checked with plain HTTP (no Claude Code CLI needed)."""

from __future__ import annotations

import json
import urllib.request

from .fake_model import EXHAUSTED_TEXT, FakeModel, final_text, tool_call, tool_results

TOOLS = [{"name": "Bash", "description": "run", "input_schema": {"type": "object"}}]


def _post(fm: FakeModel, path: str, body: dict) -> tuple[int, str, bytes]:
    req = urllib.request.Request(
        fm.base_url + path, data=json.dumps(body).encode(), method="POST", headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, r.headers.get("Content-Type", ""), r.read()


def _sse_events(raw: bytes) -> list[tuple[str, dict]]:
    out = []
    for chunk in raw.decode().strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in chunk.splitlines())
        out.append((lines["event"], json.loads(lines["data"])))
    return out


def _main(messages: list | None = None, stream: bool = True) -> dict:
    return {
        "model": "m",
        "max_tokens": 100,
        "stream": stream,
        "tools": TOOLS,
        "messages": messages or [{"role": "user", "content": "hi"}],
    }


def test_stream_tool_call_then_json_text_then_exhausted():
    seen = []

    def react(body):
        seen.append([b["content"] for b in tool_results(body)])
        return final_text("after tool")

    with FakeModel([tool_call("Bash", {"command": "ls"}, text="let me look"), react]) as fm:
        status, ctype, raw = _post(fm, "/v1/messages?beta=true", _main())
        assert status == 200 and ctype.startswith("text/event-stream")
        events = _sse_events(raw)
        names = [e for e, _ in events]
        assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
        assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
        starts = [d["content_block"] for e, d in events if e == "content_block_start"]
        assert [b["type"] for b in starts] == ["text", "tool_use"]
        tool_id = starts[1]["id"]
        partial = "".join(
            d["delta"]["partial_json"]
            for e, d in events
            if e == "content_block_delta" and d["delta"]["type"] == "input_json_delta"
        )
        assert json.loads(partial) == {"command": "ls"}
        text = "".join(
            d["delta"]["text"] for e, d in events if e == "content_block_delta" and d["delta"]["type"] == "text_delta"
        )
        assert text == "let me look"

        # non-streaming, and the callable turn sees the tool_result the "client" sent
        msgs = [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": tool_id, "name": "Bash", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_id, "content": "a.txt"}]},
        ]
        status, ctype, raw = _post(fm, "/v1/messages", _main(msgs, stream=False))
        msg = json.loads(raw)
        assert ctype.startswith("application/json")
        assert msg["stop_reason"] == "end_turn" and msg["content"] == [{"type": "text", "text": "after tool"}]
        assert seen == [["a.txt"]]

        # script exhausted
        _, _, raw = _post(fm, "/v1/messages", _main(stream=False))
        assert json.loads(raw)["content"][0]["text"] == EXHAUSTED_TEXT
        assert [r.turn_index for r in fm.main_requests] == [0, 1, None]
        assert fm.errors == []


def test_aux_requests_and_other_endpoints_do_not_consume_turns():
    with FakeModel([final_text("the one turn")]) as fm:
        _, _, raw = _post(
            fm,
            "/v1/messages",
            {"model": "haiku", "max_tokens": 5, "stream": False, "messages": [{"role": "user", "content": "title?"}]},
        )
        assert json.loads(raw)["content"][0]["text"] == "ok"
        _, _, raw = _post(fm, "/v1/messages/count_tokens?beta=true", _main())
        assert json.loads(raw)["input_tokens"] > 0
        with urllib.request.urlopen(urllib.request.Request(fm.base_url + "/api/hello", method="HEAD"), timeout=10) as r:
            assert r.status == 200
        with urllib.request.urlopen(fm.base_url + "/v1/models", timeout=10) as r:
            assert r.status == 200
        _, _, raw = _post(fm, "/v1/messages", _main(stream=False))
        assert json.loads(raw)["content"][0]["text"] == "the one turn"
        assert [r.kind for r in fm.requests] == ["aux", "count_tokens", "other", "other", "main"]


def test_a_failing_turn_is_reported_and_ends_the_turn():
    def boom(body):
        raise AssertionError("expected a tool_result")

    with FakeModel([boom]) as fm:
        _, _, raw = _post(fm, "/v1/messages", _main(stream=False))
        msg = json.loads(raw)
        assert msg["stop_reason"] == "end_turn" and "fake model error" in msg["content"][0]["text"]
        assert len(fm.errors) == 1 and "expected a tool_result" in fm.errors[0]
