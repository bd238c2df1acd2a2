"""The language model behind a small protocol; the only module that imports litellm.

litellm costs seconds to import, so it is loaded lazily, off the event loop (``warm_up`` starts
it in a thread at start-up so the bot can poll meanwhile). Transient failures (timeouts,
connection errors, 429, 5xx) are retried here with exponential backoff and jitter, bounded in
attempts and time, then become :class:`LLMUnavailable`; the provider refusing a request
becomes :class:`LLMRejected`. The OpenAI SDK's own retries are switched off so this is the one
retry policy.

A completion can be streamed (``on_text``): the answer's text reaches the caller piece by piece
as the model writes it, and the whole completion (text, tool calls, usage) is rebuilt from the
chunks by litellm, the same as without streaming. A stream is retried like a call only until its
first piece of text was passed on; after that, a retry would show the reader a second beginning.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Protocol

from pydantic import SecretStr
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from agent.errors import ContextTooLong, LLMRejected, LLMUnavailable
from agent.types import ToolCall, Usage
from memory.conversations import estimate_tokens
from memory.types import UsageRecord
from omni.logging import fields

log = logging.getLogger(__name__)

Message = dict[str, Any]
TextCallback = Callable[[str], Awaitable[None]]  # the next piece of an answer being written

# HTTP statuses worth another try: timeout, conflict, too early, rate limit; 5xx below.
_TRANSIENT_STATUS = frozenset({408, 409, 425, 429})


@dataclass(frozen=True, slots=True)
class Completion:
    """One model answer: its text, the tools it wants called, and what it cost."""

    text: str
    tool_calls: list[ToolCall]
    usage: Usage
    message: Message  # the assistant message in OpenAI format, as sent back next round
    model: str

    def usage_record(self, *, user_id: int | None, session_id: int | None = None) -> UsageRecord:
        """This call's cost as the usage log stores it (/usage, /status)."""
        return UsageRecord(
            model=self.model,
            prompt_tokens=self.usage.prompt_tokens,
            completion_tokens=self.usage.completion_tokens,
            cost=self.usage.cost,
            latency_ms=self.usage.latency_ms,
            user_id=user_id,
            session_id=session_id,
        )


class LLMClient(Protocol):
    """What the agent needs from a model; LiteLLMClient is the real one."""

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        tools: Sequence[Message] | None = None,
        on_text: TextCallback | None = None,
    ) -> Completion:
        """The model's answer; with ``on_text``, streamed: each piece of text as it is written."""
        ...

    def warm_up(self) -> None: ...

    async def supports_vision(self, model: str) -> bool: ...

    async def transcribe(self, audio: bytes, *, filename: str, model: str) -> str: ...


TRANSCRIPTION_REJECTED = (
    "I could not transcribe that recording. If this keeps happening, an admin should check "
    "OMNI_TRANSCRIPTION_MODEL."
)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded backoff: at most ``attempts`` calls, no new attempt after ``deadline`` seconds."""

    attempts: int = 3
    initial_wait: float = 1.0
    max_wait: float = 10.0
    jitter: float = 1.0
    deadline: float = 30.0


_litellm: ModuleType | None = None
_import_lock = threading.Lock()


def _import_litellm() -> ModuleType:
    global _litellm
    with _import_lock:
        if _litellm is None:
            # Prices come from the bundled table: no network at import.
            os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            import litellm

            # Otherwise litellm prints help banners to stdout, where `omni chat` replies go.
            litellm.suppress_debug_info = True
            litellm.telemetry = False
            # litellm ends a stream whose model sent the same chunk 100 times in a row (a model
            # stuck in a loop), where the same answer unstreamed comes back whole: a long rule
            # of "----" or a repeated character is an answer, and a streamed answer must be the
            # same as an unstreamed one. Runaway answers are bounded by the model's max tokens.
            litellm.REPEATED_STREAMING_CHUNK_LIMIT = sys.maxsize  # type: ignore[attr-defined]
            # Neither litellm's logging of each streamed chunk (we log each call ourselves) nor
            # its tokenizer: it counts a streamed prompt's tokens with tiktoken on every call (and
            # loads 36 MB of encodings to do it) only to price a response whose usage the provider
            # reports anyway; when a provider does not, ours is the estimate (``_completion``).
            litellm.disable_streaming_logging = True
            litellm.disable_token_counter = True
            _litellm = litellm
        return _litellm


async def load_litellm() -> ModuleType:
    """litellm, imported in a worker thread the first time so the loop never stalls on it."""
    if _litellm is not None:
        return _litellm
    return await asyncio.to_thread(_import_litellm)


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def is_transient(exc: BaseException) -> bool:
    """Whether another attempt may succeed: timeouts, connection errors, 429 and 5xx."""
    import openai

    if isinstance(exc, openai.APIConnectionError):  # includes timeouts
        return True
    if _missing_credentials(exc):
        return False
    status = _status(exc)
    return status is not None and (status in _TRANSIENT_STATUS or status >= 500)


def _missing_credentials(exc: BaseException) -> bool:
    # The OpenAI SDK refuses before sending when no key is set, and litellm reports that as an
    # HTTP 500; it is a setup problem, not an outage. (The message names no key: there is none.)
    text = str(exc).lower()
    return "missing credentials" in text or "api_key client option must be set" in text


def _describe(exc: BaseException) -> str:
    """Class and status only: provider messages can quote the request, key included."""
    status = _status(exc)
    return f"{type(exc).__name__}" + (f" (HTTP {status})" if status else "")


def _domain_error(exc: BaseException, model: str) -> LLMUnavailable | LLMRejected:
    if is_transient(exc):
        return LLMUnavailable(f"model {model} unavailable: {_describe(exc)}")
    if _missing_credentials(exc):
        return LLMRejected(
            f"model {model}: no API key configured",
            user_message="My language model needs an API key: an admin should set OMNI_LLM_API_KEY.",
        )
    litellm = _import_litellm()
    if isinstance(exc, litellm.ContextWindowExceededError):
        return ContextTooLong(f"model {model}: context window exceeded")
    return LLMRejected(f"model {model} rejected the request: {_describe(exc)}")


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0.0
    log.warning(
        "LLM call failed (%s), attempt %d; retrying in %.2fs",
        _describe(exc) if exc else "?",
        state.attempt_number,
        wait,
    )


def _parse_arguments(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        parsed = json.loads(raw or "{}")
    except (TypeError, ValueError):
        log.warning("model sent tool arguments that are not JSON; passing none")
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _tool_calls(message: Any) -> tuple[list[ToolCall], list[Message]]:
    calls: list[ToolCall] = []
    raw: list[Message] = []
    for i, call in enumerate(getattr(message, "tool_calls", None) or []):
        call_id = getattr(call, "id", None) or f"call_{i}"
        name = str(call.function.name or "")
        arguments = call.function.arguments
        calls.append(ToolCall(id=call_id, name=name, arguments=_parse_arguments(arguments)))
        text_args = arguments if isinstance(arguments, str) else json.dumps(arguments or {})
        raw.append({"id": call_id, "type": "function", "function": {"name": name, "arguments": text_args}})
    return calls, raw


def _cost(litellm: ModuleType, response: Any) -> float:
    # litellm prices every response as it returns it; computing it again costs milliseconds.
    hidden = getattr(response, "_hidden_params", None) or {}
    if "response_cost" in hidden:
        return float(hidden["response_cost"] or 0.0)
    try:
        return float(litellm.completion_cost(completion_response=response) or 0.0)
    except Exception:  # unknown models (local, proxies) have no price: cost is unknown, not fatal
        return 0.0


@dataclass(slots=True)
class LiteLLMClient:
    """Any litellm model; ``api_base``/``api_key`` point it at an OpenAI-compatible server."""

    api_base: str | None = None
    api_key: SecretStr | None = None
    timeout: float = 120.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def warm_up(self) -> None:
        if _litellm is None:
            threading.Thread(target=_import_litellm, name="litellm-import", daemon=True).start()

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        tools: Sequence[Message] | None = None,
        on_text: TextCallback | None = None,
    ) -> Completion:
        litellm = await load_litellm()
        kwargs = self._arguments(model, messages=list(messages))
        if tools:
            kwargs["tools"] = list(tools)
        started = time.perf_counter()
        try:
            if on_text is None:
                response = await self._call_with_retries(litellm.acompletion, kwargs)
            else:
                response = await self._stream(litellm, kwargs, on_text)
        except BaseException as exc:  # logged and re-raised: the line for a call that failed
            outcome = "cancelled" if isinstance(exc, asyncio.CancelledError) else "error"
            took = _ms_since(started)
            error = type(exc).__name__
            log.info("LLM call", extra=fields(model=model, duration_ms=took, outcome=outcome, error=error))
            raise
        completion = _completion(litellm, response, messages, model, (time.perf_counter() - started) * 1000)
        usage = completion.usage
        log.info(
            "LLM call",
            extra=fields(
                model=model,
                duration_ms=round(usage.latency_ms, 1),
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                tool_calls=len(completion.tool_calls),
                outcome="ok",
            ),
        )
        return completion

    def _arguments(self, model: str, **call: Any) -> dict[str, Any]:
        """litellm's arguments for a call to ``model``: our endpoint, key and timeout."""
        kwargs: dict[str, Any] = {
            "model": model,
            **call,
            "timeout": self.timeout,
            "max_retries": 0,  # retries are ours (tenacity, below)
        }
        if self.api_base:
            kwargs["api_base"] = self.api_base
        if self.api_key is not None:
            kwargs["api_key"] = self.api_key.get_secret_value()
        return kwargs

    async def embed(self, texts: Sequence[str], *, model: str) -> list[list[float]]:
        """One vector per text, in order (litellm ``aembedding``): the same endpoint, key,
        timeout and retries as completions; failures become the same domain errors."""
        litellm = await load_litellm()
        kwargs = self._arguments(model, input=list(texts))
        started = time.perf_counter()
        response = await self._call_with_retries(litellm.aembedding, kwargs)
        # DEBUG: recall and ingest embed on every message; the completions' lines are the INFO ones.
        log.debug(
            "embedding call", extra=fields(model=model, texts=len(texts), duration_ms=_ms_since(started))
        )
        items = sorted(response.data, key=lambda item: int(_field(item, "index")))
        if len(items) != len(texts):
            raise LLMRejected(f"embedding model {model} returned {len(items)} vectors for {len(texts)} texts")
        return [[float(x) for x in _field(item, "embedding")] for item in items]

    async def supports_vision(self, model: str) -> bool:
        """Whether ``model`` takes image parts, by litellm's model table (unknown models: no)."""
        litellm = await load_litellm()
        return bool(litellm.supports_vision(model=model))

    async def transcribe(self, audio: bytes, *, filename: str, model: str) -> str:
        """The words spoken in ``audio`` (litellm ``atranscription``): the same endpoint, key,
        timeout, retries and domain errors as completions. ``filename`` tells the format."""
        litellm = await load_litellm()
        kwargs = self._arguments(model, file=(filename, audio))
        started = time.perf_counter()
        try:
            response = await self._call_with_retries(litellm.atranscription, kwargs)
        except LLMRejected as exc:  # not the chat model's settings that are wrong: say which
            raise LLMRejected(str(exc), user_message=TRANSCRIPTION_REJECTED) from exc
        took = _ms_since(started)
        log.info("transcription call", extra=fields(model=model, bytes=len(audio), duration_ms=took))
        return str(_field(response, "text") or "")

    async def _stream(self, litellm: ModuleType, kwargs: dict[str, Any], on_text: TextCallback) -> Any:
        """A streamed completion, rebuilt from its chunks once the model is done."""
        passed_on = False  # once text reached the reader, a failure is not retried

        async def attempt(**call: Any) -> Any:
            nonlocal passed_on
            stream = await litellm.acompletion(**call, stream=True, stream_options={"include_usage": True})
            chunks = []
            try:
                async for chunk in stream:
                    chunks.append(chunk)
                    piece = chunk.choices[0].delta.content if chunk.choices else None
                    if piece:
                        passed_on = True
                        await on_text(piece)
            finally:  # a cancelled turn (/stop) hangs up on the provider at once
                await stream.aclose()
            return litellm.stream_chunk_builder(chunks, messages=call["messages"])

        return await self._call_with_retries(attempt, kwargs, retry_if=lambda: not passed_on)

    async def _call_with_retries(
        self, call: Any, kwargs: dict[str, Any], retry_if: Callable[[], bool] = lambda: True
    ) -> Any:
        import openai

        policy = self.retry
        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda exc: is_transient(exc) and retry_if()),
            stop=stop_after_attempt(policy.attempts) | stop_after_delay(policy.deadline),
            wait=wait_exponential_jitter(
                multiplier=policy.initial_wait, max=policy.max_wait, jitter=policy.jitter
            ),
            before_sleep=_log_retry,
            reraise=True,
        )
        try:
            return await retrying(call, **kwargs)
        except openai.OpenAIError as exc:  # litellm's exceptions all derive from it
            raise _domain_error(exc, kwargs["model"]) from exc


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _field(item: Any, name: str) -> Any:
    # litellm gives embedding items as dicts or as objects, depending on the provider.
    return item[name] if isinstance(item, dict) else getattr(item, name)


def _completion(
    litellm: ModuleType, response: Any, messages: Sequence[Message], model: str, latency_ms: float
) -> Completion:
    message = response.choices[0].message
    text = message.content or ""
    calls, raw_calls = _tool_calls(message)
    raw: Message = {"role": "assistant", "content": message.content}
    if raw_calls:
        raw["tool_calls"] = raw_calls
    usage = getattr(response, "usage", None)
    prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
    completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
    if not prompt_tokens:  # a provider that reports no usage: limits still count something
        prompt_tokens = estimate_tokens(json.dumps(list(messages), default=str))
        completion_tokens = completion_tokens or estimate_tokens(text + json.dumps(raw_calls))
    return Completion(
        text=text,
        tool_calls=calls,
        usage=Usage(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost=_cost(litellm, response),
            latency_ms=latency_ms,
        ),
        message=raw,
        model=model,
    )
