"""A fake LLM service on 127.0.0.1: Anthropic Messages API and OpenAI Chat Completions, SSE included.

Tests queue ``Step``s (status, body, headers, delays); with none queued the server
answers successfully, echoing the last user message. It records every request
and the largest number of requests it had in flight at once.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

USAGE = {"input_tokens": 1200, "output_tokens": 300, "cache_read_input_tokens": 1000,
         "cache_creation_input_tokens": 200}


@dataclass
class Step:
    """How the server answers one request."""

    status: int = 200
    body: Any = None  # dict -> JSON, bytes/str -> raw; None -> a normal success answer
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # before the response starts
    event_delay_s: float = 0.0  # between streamed events
    text: str | None = None  # answer text for a success (default: echo the prompt)
    chunks: int = 3  # how many pieces a streamed answer comes in
    stream_usage: bool = True  # False: a stream never carries usage (llama-cpp-python 0.3's server)
    finish_reason: str = "stop"  # of an OpenAI answer ("length": cut off at max_tokens)


class FakeLLM:
    """State shared by the handler threads."""

    def __init__(self) -> None:
        self.steps: deque[Step] = deque()
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.stopping = threading.Event()
        self.url = ""

    def queue(self, *steps: Step) -> None:
        """Answer the next requests with ``steps``, in order."""
        with self.lock:
            self.steps.extend(steps)

    def next_step(self, request: dict[str, Any]) -> Step:
        """Record ``request`` and return how to answer it."""
        with self.lock:
            self.requests.append(request)
            return self.steps.popleft() if self.steps else Step()

    def enter(self) -> None:
        """Count one more request in flight."""
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self) -> None:
        """Count one request finished."""
        with self.lock:
            self.in_flight -= 1


def _prompt(body: dict[str, Any]) -> str:
    content = body["messages"][-1]["content"]
    return content if isinstance(content, str) else "".join(b.get("text", "") for b in content)


def anthropic_events(body: dict[str, Any], text: str, chunks: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield the SSE events of a streamed Messages API answer."""
    start_usage = {**USAGE, "output_tokens": 1}
    yield "message_start", {"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": body["model"], "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": start_usage}}
    yield "content_block_start", {"type": "content_block_start", "index": 0,
                                  "content_block": {"type": "text", "text": ""}}
    yield "ping", {"type": "ping"}
    for piece in _pieces(text, chunks):
        yield "content_block_delta", {"type": "content_block_delta", "index": 0,
                                      "delta": {"type": "text_delta", "text": piece}}
    yield "content_block_stop", {"type": "content_block_stop", "index": 0}
    yield "message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn",
                            "stop_sequence": None}, "usage": {"output_tokens": USAGE["output_tokens"]}}
    yield "message_stop", {"type": "message_stop"}


def anthropic_message(body: dict[str, Any], text: str) -> dict[str, Any]:
    """Return a non-streamed Messages API answer."""
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": body["model"],
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
            "stop_sequence": None, "usage": USAGE}


def openai_chunks(body: dict[str, Any], text: str, chunks: int, step: Step | None = None) -> Iterator[dict[str, Any]]:
    """Yield the chunks of a streamed chat completion, the usage chunk last (unless ``step`` leaves it out)."""
    step = step or Step()
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": body["model"]}
    for i, piece in enumerate(_pieces(text, chunks)):
        delta = {"content": piece, **({"role": "assistant"} if i == 0 else {})}
        yield {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
    yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": step.finish_reason}]}
    if (body.get("stream_options") or {}).get("include_usage") and step.stream_usage:
        yield {**base, "choices": [], "usage": openai_usage()}


def openai_usage() -> dict[str, Any]:
    """Return the usage object of a chat completion."""
    return {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500,
            "prompt_tokens_details": {"cached_tokens": 1000}}


def openai_completion(body: dict[str, Any], text: str, finish_reason: str = "stop") -> dict[str, Any]:
    """Return a non-streamed chat completion."""
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "finish_reason": finish_reason,
                         "message": {"role": "assistant", "content": text}}],
            "usage": openai_usage()}


def _pieces(text: str, n: int) -> list[str]:
    size = max(1, -(-len(text) // max(n, 1)))
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


class Handler(BaseHTTPRequestHandler):
    """Answers one request per the server's next ``Step``."""

    server: Any

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        """Do not log."""

    def do_POST(self) -> None:
        """Answer a Messages API or Chat Completions request."""
        fake: FakeLLM = self.server.fake
        raw = self.rfile.read(int(self.headers.get("content-length", 0)))
        body = json.loads(raw or b"{}")
        step = fake.next_step({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
        fake.enter()
        try:
            self._answer(fake, step, body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client hung up (timeout or cancel)
        finally:
            fake.leave()

    def _answer(self, fake: FakeLLM, step: Step, body: dict[str, Any]) -> None:
        if fake.stopping.wait(step.delay_s):
            return
        if step.status != 200 or step.body is not None:
            payload = step.body if isinstance(step.body, (bytes, str)) else json.dumps(step.body or {})
            self._send(step.status, payload.encode() if isinstance(payload, str) else payload, step.headers)
            return
        text = step.text if step.text is not None else f"answer to: {_prompt(body)}"
        chat = self.path.endswith("/chat/completions")
        if body.get("stream"):
            self._stream(fake, step, body, text, chat)
        else:
            reply = openai_completion(body, text, step.finish_reason) if chat else anthropic_message(body, text)
            self._send(200, json.dumps(reply).encode(), step.headers)

    def _send(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("content-type", headers.pop("content-type", "application/json"))
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _stream(self, fake: FakeLLM, step: Step, body: dict[str, Any], text: str, chat: bool) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()
        if chat:
            frames = [f"data: {json.dumps(c)}\n\n" for c in openai_chunks(body, text, step.chunks, step)]
            frames.append("data: [DONE]\n\n")
        else:
            frames = [f"event: {name}\ndata: {json.dumps(data)}\n\n"
                      for name, data in anthropic_events(body, text, step.chunks)]
        for frame in frames:
            if fake.stopping.wait(step.event_delay_s):
                return
            self.wfile.write(frame.encode())
            self.wfile.flush()
