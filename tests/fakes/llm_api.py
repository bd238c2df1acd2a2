"""A fake OpenAI-compatible chat completions API with scripted replies.

    llm = FakeLLM()
    llm.enqueue(ScriptedReply(text="hello"), ScriptedReply(status=500))
    async with serve(llm.app) as base:
        settings = make_settings(llm_model="openai/fake-model", llm_api_base=base + "/v1",
                                 llm_api_key="sk-test")

Each request pops the next scripted reply; with an empty queue it answers
``echo: <content of the last user message>``. Every JSON body received is kept in
``requests`` (and each request's headers in ``headers``); ``await wait_for_requests(n)``
returns once n requests arrived. Subprocess tests, which cannot reach
the object, drive it over HTTP: ``POST /_control/enqueue`` (a JSON list of ScriptedReply
fields), ``GET /_control/requests``, ``POST /_control/reset``, ``POST /_control/config``
(``{"default_delay": float}``).

``/v1/embeddings`` answers deterministic vectors: each word (lowercased, ``\\w+``) hashed
into ``EMBEDDING_DIM`` buckets with a sign, summed and scaled to unit length, so texts sharing
words are similar. ``fail_embeddings(n)`` (or ``POST /_control/config`` with
``{"embedding_failures": n}``) makes the next n embedding calls fail with a 503; embedding
calls are kept in ``embedding_requests``, apart from the chat completions in ``requests``.

Like a real provider it can refuse: with ``api_key`` set, a chat completion without
``Authorization: Bearer <api_key>`` answers 401; with ``models`` set, one naming another
model answers 404 "The model ... does not exist" (both also via ``POST /_control/config``).

Streaming: a request with ``"stream": true`` is answered as OpenAI streams, in server-sent
events: the text cut into token-sized pieces (about 4 characters, spaces kept), one
``chat.completion.chunk`` each, the first delta carrying ``"role": "assistant"``; each tool
call as a first delta with its index, id, type, name and empty arguments, then pieces of the
arguments; a last chunk with the ``finish_reason``; with ``stream_options: {"include_usage":
true}`` a usage chunk (``choices: []``); then ``data: [DONE]``. Pieces are paced at
``ScriptedReply.tokens_per_s`` (or the fake-wide ``tokens_per_s``, also ``POST /_control/config``
``{"tokens_per_s": x}``; 0: as fast as possible) on an absolute schedule, so the overall rate
holds; a non-streamed answer waits as long as its last piece would have. With
``ScriptedReply.fail_after_tokens`` the connection is dropped after that many pieces, without
the end of the body (a provider dying mid-answer; litellm raises ``MidStreamFallbackError``). A
stream stops when the client goes away; ``open_streams`` counts the streams being written.
Beware a scripted text repeating one word ("word " * 500): its pieces repeat too, and litellm
ends a stream of 100 identical pieces in a row as a model stuck in a loop.

An outage: ``outage(seconds)`` (or ``POST /_control/config`` with ``{"outage_s": s}``) makes
every chat completion answer 503 (or ``status``) for that long, scripted replies left queued;
the failed requests are kept in ``requests`` like the others.

The object is shared between the test and a server that may run in another thread
(``serve_in_thread``), so its state sits behind a lock.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import re
import struct
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator
from dataclasses import dataclass, fields
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Send

MODEL_ID = "fake-model"
EMBEDDING_DIM = 64
_WORD = re.compile(r"\w+")
_PIECE = re.compile(r"\s*\S{1,4}|\s+")

_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Bad request (scripted)."),
    401: ("invalid_request_error", "Incorrect API key provided (scripted)."),
    403: ("permission_denied", "Permission denied (scripted)."),
    404: ("invalid_request_error", "The model does not exist (scripted)."),
    429: ("rate_limit_exceeded", "Rate limit reached (scripted)."),
    500: ("server_error", "The server had an error while processing your request (scripted)."),
    502: ("server_error", "Bad gateway (scripted)."),
    503: ("server_error", "The engine is currently overloaded (scripted)."),
}


@dataclass
class ScriptedReply:
    text: str | None = None
    tool_calls: list[dict[str, Any]] | None = None  # [{"name": "files__read", "arguments": {...}}]
    delay: float = 0.0  # seconds before answering
    status: int = 200  # e.g. 500 or 429 to inject a failure (body is an OpenAI-style error)
    # With a failure status, ``text`` (if given) is the error's message, e.g. a provider's
    # "maximum context length is ..." which litellm maps to ContextWindowExceededError.
    tokens_per_s: float = 0.0  # pace of the answer's pieces; 0: the fake's tokens_per_s
    fail_after_tokens: int | None = None  # drop the connection after this many pieces
    usage: bool = True  # False: a provider that reports no token counts (streamed or not)


def _text_of(content: Any) -> str:
    """The text of a message's content, a string or a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _pieces(text: str) -> list[str]:
    """``text`` cut as a tokenizer roughly would: about 4 characters, each piece keeping the
    spaces before it; joined they are ``text`` again."""
    return _PIECE.findall(text)


def _estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4) if text else 0


def _asks_for_tool(body: dict[str, Any], word: str) -> bool:
    """Whether the request offers tools and its last message is a user message with ``word``."""
    last = (body.get("messages") or [None])[-1]
    said = isinstance(last, dict) and last.get("role") == "user" and word in _text_of(last.get("content"))
    return said and bool(body.get("tools"))


def _echo(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return f"echo: {_text_of(message.get('content'))}"
    return "echo: "


class FakeLLM:
    def __init__(self, default_delay: float = 0.0, tokens_per_s: float = 0.0) -> None:
        self.default_delay = default_delay
        self.tokens_per_s = tokens_per_s  # pace of answers whose reply sets none; 0: no pacing
        self.open_streams = 0  # streamed answers being written now
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._queue: deque[ScriptedReply] = deque()
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._call_ids = 0
        self.embedding_requests: list[dict[str, Any]] = []
        self.embedding_failures = 0
        self.api_key: str | None = None  # when set, the only key accepted
        self._down_until = 0.0  # time.monotonic() until which completions fail (outage)
        self._down_status = 503
        self.models: frozenset[str] | None = None  # when set, the only models served
        # (word, call): with an empty queue, a request that offers tools and whose last message
        # is a user message containing the word is answered with that tool call (bench/soak.py:
        # tool rounds that stay with their turn however requests interleave; a summary request,
        # offering no tools, still gets the echo). The call's result gets the echo too.
        self.tool_rule: tuple[str, dict[str, Any]] | None = None
        self.transcript = "transcribed words"  # what /v1/audio/transcriptions answers
        self.transcription_status = 200  # e.g. 400: the endpoint refuses every transcription
        self.transcriptions: list[tuple[str, str, bytes]] = []  # (model, file name, audio)
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._completions, methods=["POST"]),
                Route("/chat/completions", self._completions, methods=["POST"]),
                Route("/v1/embeddings", self._embeddings, methods=["POST"]),
                Route("/v1/audio/transcriptions", self._transcriptions, methods=["POST"]),
                Route("/embeddings", self._embeddings, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/models", self._models, methods=["GET"]),
                Route("/_control/enqueue", self._control_enqueue, methods=["POST"]),
                Route("/_control/requests", self._control_requests, methods=["GET"]),
                Route("/_control/reset", self._control_reset, methods=["POST"]),
                Route("/_control/config", self._control_config, methods=["POST"]),
            ]
        )

    def enqueue(self, *replies: ScriptedReply) -> None:
        with self._lock:
            self._queue.extend(replies)

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self.requests.clear()
            self.headers.clear()
            self.embedding_requests.clear()
            self.embedding_failures = 0
            self.api_key, self.models = None, None
            self._down_until = 0.0

    def outage(self, seconds: float, status: int = 503) -> None:
        """Every chat completion answers ``status`` for the next ``seconds``."""
        with self._lock:
            self._down_until, self._down_status = time.monotonic() + seconds, status

    def fail_embeddings(self, count: int) -> None:
        """The next ``count`` embedding calls answer 503."""
        with self._lock:
            self.embedding_failures = count

    @property
    def embedded_texts(self) -> list[str]:
        """Every text the embeddings endpoint answered for, in order."""
        with self._lock:
            return [t for body in self.embedding_requests if body.get("_ok") for t in _inputs(body)]

    @property
    def pending(self) -> int:
        """Scripted replies not consumed yet."""
        with self._lock:
            return len(self._queue)

    async def wait_for_requests(self, count: int = 1, within: float = 10.0) -> None:
        """Return once ``count`` requests arrived in total (e.g. to cancel a call in flight)."""

        def wait() -> bool:
            with self._arrived:
                return self._arrived.wait_for(lambda: len(self.requests) >= count, within)

        if not await asyncio.to_thread(wait):
            raise TimeoutError(f"the fake LLM got {len(self.requests)} of {count} requests in {within}s")

    def _next(self, body: dict[str, Any], headers: dict[str, str]) -> ScriptedReply:
        with self._lock:
            self.requests.append(body)
            self.headers.append(headers)
            self._arrived.notify_all()
            if time.monotonic() < self._down_until:
                return ScriptedReply(status=self._down_status)
            if self._queue:
                return self._queue.popleft()
            if self.tool_rule is not None and _asks_for_tool(body, self.tool_rule[0]):
                return ScriptedReply(tool_calls=[self.tool_rule[1]], delay=self.default_delay)
            return ScriptedReply(text=_echo(body), delay=self.default_delay)

    def _tool_calls(self, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for call in calls:
            with self._lock:
                self._call_ids += 1
                call_id = call.get("id") or f"call_{self._call_ids:06d}"
            arguments = call.get("arguments", {})
            out.append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {
                        "name": call["name"],
                        "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
                    },
                }
            )
        return out

    async def _completions(self, request: Request) -> Response:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return _error(400, "The request body is not valid JSON.")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _error(400, "'messages' is a required property.")
        refusal = self._refusal(body, request.headers.get("authorization", ""))
        if refusal is not None:
            return refusal
        reply = self._next(body, dict(request.headers))
        if reply.delay and await _client_left(request, reply.delay):
            return Response(status_code=499)  # nobody is listening any more
        if reply.status != 200:
            return _error(reply.status, reply.text)
        message: dict[str, Any] = {"role": "assistant", "content": reply.text}
        if reply.tool_calls:
            message["tool_calls"] = self._tool_calls(reply.tool_calls)
        prompt_tokens = sum(_estimate_tokens(_text_of(m.get("content"))) + 4 for m in body["messages"])
        completion_tokens = _estimate_tokens(reply.text or "") + 10 * len(reply.tool_calls or [])
        payload = {
            "id": f"chatcmpl-fake{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", MODEL_ID),
            "system_fingerprint": "fp_fake",
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": "tool_calls" if reply.tool_calls else "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        stream = _Stream(payload, reply.fail_after_tokens, self._rate(reply))
        if not reply.usage:
            del payload["usage"]
        if body.get("stream"):
            include_usage = reply.usage and bool((body.get("stream_options") or {}).get("include_usage"))
            return _EventStream(stream, self._count_stream(stream.events(include_usage)))
        if stream.rate and await _client_left(request, (len(stream.deltas) - 1) / stream.rate):
            return Response(status_code=499)
        if reply.fail_after_tokens is not None:
            stream.cut = True  # headers and half a body, then the connection goes
            return _EventStream(stream, _aiter(json.dumps(payload)[:20]), "application/json")
        return JSONResponse(payload)

    def _rate(self, reply: ScriptedReply) -> float:
        with self._lock:
            return reply.tokens_per_s or self.tokens_per_s

    async def _count_stream(self, events: AsyncGenerator[str, None]) -> AsyncGenerator[str, None]:
        """``events``, counted in ``open_streams`` while they are written (or cancelled)."""
        with self._lock:
            self.open_streams += 1
        try:
            async for event in events:
                yield event
        finally:
            with self._lock:
                self.open_streams -= 1

    def _refusal(self, body: dict[str, Any], authorization: str) -> Response | None:
        """A provider's 401 for a wrong key or 404 for an unknown model, when configured."""
        with self._lock:
            api_key, models = self.api_key, self.models
        if api_key is not None and authorization != f"Bearer {api_key}":
            return _error(401)
        model = str(body.get("model", ""))
        if models is not None and model not in models:
            return _error(404, f"The model `{model}` does not exist or you do not have access to it.")
        return None

    async def _transcriptions(self, request: Request) -> Response:
        """OpenAI's speech to text: a multipart form with ``file`` and ``model``; ``{"text"}``."""
        async with request.form() as form:  # closes the upload's temporary file
            upload, model = form.get("file"), form.get("model")
            if isinstance(upload, str) or upload is None or not isinstance(model, str):
                return _error(400, "'file' and 'model' are required.")
            audio = await upload.read()
        if not audio:
            return _error(400, "The audio file is empty.")
        with self._lock:
            self.transcriptions.append((model, upload.filename or "", audio))
            text, status = self.transcript, self.transcription_status
        if status != 200:
            return _error(status, "The audio could not be transcribed.")
        return JSONResponse({"text": text})

    async def _embeddings(self, request: Request) -> Response:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return _error(400, "The request body is not valid JSON.")
        if not isinstance(body, dict) or "input" not in body:
            return _error(400, "'input' is a required property.")
        with self._lock:
            self.embedding_requests.append(body)
            failing = self.embedding_failures > 0
            self.embedding_failures -= failing
            body["_ok"] = not failing
        if failing:
            return _error(503)
        texts = _inputs(body)
        data = []
        for i, text in enumerate(texts):
            vector = fake_embedding(text)
            value: Any = vector
            if body.get("encoding_format") == "base64":
                value = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": value})
        tokens = sum(_estimate_tokens(t) for t in texts)
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": body.get("model", MODEL_ID),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def _models(self, request: Request) -> Response:
        model = {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "omni-tests"}
        return JSONResponse({"object": "list", "data": [model]})

    async def _control_enqueue(self, request: Request) -> Response:
        items = await request.json()
        names = {f.name for f in fields(ScriptedReply)}
        replies = [ScriptedReply(**{k: v for k, v in item.items() if k in names}) for item in items]
        self.enqueue(*replies)
        return JSONResponse({"queued": self.pending})

    async def _control_requests(self, request: Request) -> Response:
        with self._lock:
            return JSONResponse(list(self.requests))

    async def _control_reset(self, request: Request) -> Response:
        self.reset()
        return JSONResponse({"ok": True})

    async def _control_config(self, request: Request) -> Response:
        config = await request.json()
        if "default_delay" in config:
            self.default_delay = float(config["default_delay"])
        if "embedding_failures" in config:
            self.fail_embeddings(int(config["embedding_failures"]))
        if "tokens_per_s" in config:
            with self._lock:
                self.tokens_per_s = float(config["tokens_per_s"])
        if "outage_s" in config:
            self.outage(float(config["outage_s"]), int(config.get("outage_status", 503)))
        with self._lock:
            if "api_key" in config:
                self.api_key = config["api_key"]
            if "models" in config:
                self.models = None if config["models"] is None else frozenset(config["models"])
        return JSONResponse({"default_delay": self.default_delay})


def _inputs(body: dict[str, Any]) -> list[str]:
    raw = body.get("input")
    return [raw] if isinstance(raw, str) else [str(t) for t in raw or []]


def fake_embedding(text: str, dim: int = EMBEDDING_DIM) -> list[float]:
    """A deterministic unit vector: the text's words hashed into ``dim`` signed buckets."""
    vector = [0.0] * dim
    for word in _WORD.findall(text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        bucket = int.from_bytes(digest[:4], "little") % dim
        vector[bucket] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(x * x for x in vector))
    if norm == 0.0:
        vector[0], norm = 1.0, 1.0  # no words: still a valid vector
    return [x / norm for x in vector]


async def _client_left(request: Request, delay: float) -> bool:
    """Wait ``delay`` seconds; True as soon as the client hangs up (a cancelled call), so a
    slow scripted reply never holds up the server's shutdown."""
    deadline = time.monotonic() + delay
    while (remaining := deadline - time.monotonic()) > 0:
        if await request.is_disconnected():
            return True
        await asyncio.sleep(min(remaining, 0.05))
    return False


def _error(status: int, message: str | None = None) -> JSONResponse:
    kind, default = _ERRORS.get(status, ("server_error", f"Scripted failure (HTTP {status})."))
    body = {"error": {"message": message or default, "type": kind, "param": None, "code": kind}}
    headers = {"retry-after": "0", "x-ratelimit-remaining-requests": "0"} if status == 429 else None
    return JSONResponse(body, status_code=status, headers=headers)


class _Stream:
    """A completion as OpenAI streams it: the deltas of its chunks, paced at ``rate`` pieces a
    second, cut after ``fail_after`` of them when set."""

    def __init__(self, payload: dict[str, Any], fail_after: int | None, rate: float) -> None:
        self.payload, self.fail_after, self.rate = payload, fail_after, rate
        self.cut = False  # set once the stream stopped where the connection is to drop
        message = payload["choices"][0]["message"]
        deltas: list[dict[str, Any]] = [{"content": p} for p in _pieces(message["content"] or "")]
        for index, call in enumerate(message.get("tool_calls") or []):
            function = {"name": call["function"]["name"], "arguments": ""}
            deltas.append(
                {"tool_calls": [{"index": index, "id": call["id"], "type": "function", "function": function}]}
            )
            deltas.extend(
                {"tool_calls": [{"index": index, "function": {"arguments": p}}]}
                for p in _pieces(call["function"]["arguments"])
            )
        if not deltas:
            deltas.append({"content": ""})
        deltas[0] = {"role": "assistant", **deltas[0]}
        self.deltas = deltas

    def _chunk(self, **parts: Any) -> str:
        keys = ("id", "created", "model", "system_fingerprint")
        chunk = {**{k: self.payload[k] for k in keys}, "object": "chat.completion.chunk", **parts}
        return f"data: {json.dumps(chunk)}\n\n"

    async def events(self, include_usage: bool) -> AsyncGenerator[str, None]:
        start = time.monotonic()
        for i, delta in enumerate(self.deltas):
            if i == self.fail_after:
                self.cut = True
                return
            # Always through the event loop, even behind schedule or unpaced: there uvicorn
            # learns that the client left, and Starlette cancels the stream.
            wait = start + i / self.rate - time.monotonic() if self.rate else 0.0
            await asyncio.sleep(max(0.0, wait))
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
            yield self._chunk(choices=[choice])
        if self.fail_after is not None:  # more than the answer had: cut before its end
            self.cut = True
            return
        finish = self.payload["choices"][0]["finish_reason"]
        yield self._chunk(choices=[{"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish}])
        if include_usage:
            yield self._chunk(choices=[], usage=self.payload["usage"])
        yield "data: [DONE]\n\n"


class _EventStream(StreamingResponse):
    """A streamed answer that ends without the end of its body when its ``_Stream`` was cut:
    returning unfinished makes uvicorn close the connection (it logs one line about it), and
    the client sees the connection die mid-answer. Starlette stops the stream when the client
    goes away (cancelling this), and the events are closed then too, so their ``finally``
    runs at once."""

    def __init__(
        self, stream: _Stream, events: AsyncGenerator[str, None], media_type: str = "text/event-stream"
    ) -> None:
        super().__init__(events, media_type=media_type)
        self._stream, self._events = stream, events

    async def stream_response(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        try:
            async for event in self._events:
                await send({"type": "http.response.body", "body": event.encode(), "more_body": True})
        finally:
            await self._events.aclose()
        if not self._stream.cut:
            await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _aiter(*items: str) -> AsyncGenerator[str, None]:
    for item in items:
        yield item


__all__ = ["EMBEDDING_DIM", "MODEL_ID", "FakeLLM", "ScriptedReply", "fake_embedding"]
