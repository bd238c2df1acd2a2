"""The gateway's HTTP rules, in process: auth, validation, size limit, errors as JSON."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from omni.errors import SettingsError
from omni.settings import load_settings
from tests.fakes.llm_api import ScriptedReply
from tests.gateway.conftest import TOKEN, InProcess, history, message

pytestmark = pytest.mark.anyio

InProcessFactory = Callable[..., Any]


@pytest.fixture
async def gw(in_process: InProcessFactory, sqlite_url: str) -> AsyncIterator[InProcess]:
    async with in_process(sqlite_url, max_body_bytes=1024) as running:
        yield running


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"] == code and body["message"], body
    assert "Traceback" not in response.text
    return dict(body)


async def test_a_message_is_answered_in_its_session(gw: InProcess) -> None:
    response = await gw.client.post("/message", json=message("s1", "hello there"))
    assert response.status_code == 200
    assert response.json() == {"session_id": "s1", "output": "echo: hello there"}
    assert [(m.role, m.content) for m in await history(gw.url, "s1")] == [
        ("user", "hello there"),
        ("assistant", "echo: hello there"),
    ]


async def test_health_answers_ok(gw: InProcess) -> None:
    response = await gw.client.get("/health")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"message": "hi"}, "invalid"),  # session_id missing
        ({"session_id": "s1"}, "invalid"),  # message missing
        ({}, "invalid"),
        ({"session_id": 123, "message": "hi"}, "invalid"),  # strict: no number for a string
        ({"session_id": "s1", "message": ["hi"]}, "invalid"),
        ({"session_id": "s1", "message": None}, "invalid"),
        ({"session_id": "s1", "message": ""}, "invalid"),
        ({"session_id": "s1", "message": " \n\t "}, "invalid"),
        ({"session_id": "", "message": "hi"}, "invalid"),
        ({"session_id": "../etc", "message": "hi"}, "invalid"),
        ({"session_id": ".hidden", "message": "hi"}, "invalid"),
        ({"session_id": "a/b", "message": "hi"}, "invalid"),
        ({"session_id": "gw:a", "message": "hi"}, "invalid"),
        ({"session_id": "é", "message": "hi"}, "invalid"),
        ({"session_id": "x" * 129, "message": "hi"}, "invalid"),
        (["s1", "hi"], "invalid"),  # not an object
        ("hello", "invalid"),
        (None, "invalid"),
    ],
)
async def test_a_bad_body_is_refused_with_the_reason(gw: InProcess, body: Any, code: str) -> None:
    response = await gw.client.post(
        "/message", content=json.dumps(body), headers={"content-type": "application/json"}
    )
    assert_error(response, 422, code)
    assert gw.llm.requests == []  # nothing reached the model


async def test_a_longest_session_id_is_accepted(gw: InProcess) -> None:
    session_id = "A-b_c.9" + "x" * 121
    response = await gw.client.post("/message", json=message(session_id, "hi"))
    assert response.status_code == 200 and response.json()["session_id"] == session_id


async def test_the_problem_names_the_field_but_never_echoes_the_value(gw: InProcess) -> None:
    secret_looking = "../../" + "s3cr3t" * 5
    response = await gw.client.post("/message", json=message(secret_looking, "hi"))
    body = assert_error(response, 422, "invalid")
    assert body["message"].startswith("session_id: ") and "s3cr3t" not in response.text


@pytest.mark.parametrize(
    "raw",
    [b"{", b'{"session_id": "s1", "message": "hi"', b"\xff\xfe\x00", b"", b"nul", b"[" * 1000],
    ids=["unclosed", "truncated", "not-utf8", "empty", "not-json", "deep-nesting"],
)
async def test_malformed_json_is_a_400(gw: InProcess, raw: bytes) -> None:
    response = await gw.client.post("/message", content=raw, headers={"content-type": "application/json"})
    assert_error(response, 400, "bad_json")


async def test_nesting_deeper_than_python_recurses_is_a_400(
    in_process: InProcessFactory, sqlite_url: str
) -> None:
    async with in_process(sqlite_url, max_body_bytes=200_000) as gw:
        raw = b"[" * 100_000
        response = await gw.client.post("/message", content=raw, headers={"content-type": "application/json"})
    assert_error(response, 400, "bad_json")


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
async def test_a_body_that_is_not_declared_json_is_a_415(gw: InProcess, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    raw = json.dumps(message("s1", "hi")).encode()
    response = await gw.client.post("/message", content=raw, headers=headers)
    assert_error(response, 415, "unsupported_media_type")


async def test_json_with_a_charset_parameter_is_fine(gw: InProcess) -> None:
    raw = json.dumps(message("s1", "hi")).encode()
    response = await gw.client.post(
        "/message", content=raw, headers={"content-type": "Application/JSON; charset=utf-8"}
    )
    assert response.status_code == 200


async def test_a_declared_oversized_body_is_refused_unread(gw: InProcess) -> None:
    raw = json.dumps(message("s1", "x" * 2000)).encode()
    response = await gw.client.post("/message", content=raw, headers={"content-type": "application/json"})
    assert_error(response, 413, "too_large")
    assert gw.llm.requests == []


async def test_a_streamed_body_is_cut_off_at_the_limit_not_read_to_the_end(gw: InProcess) -> None:
    sent = 0

    async def endless() -> AsyncIterator[bytes]:  # chunked, no Content-Length, never ends
        nonlocal sent
        yield b'{"session_id": "s1", "message": "'
        while True:
            sent += 1
            yield b"x" * 256

    response = await gw.client.post(
        "/message", content=endless(), headers={"content-type": "application/json"}
    )
    assert_error(response, 413, "too_large")
    assert sent <= 1024 // 256 + 1  # stopped as soon as the limit was passed


async def test_a_body_of_exactly_the_limit_is_accepted(gw: InProcess) -> None:
    frame = json.dumps(message("s1", "")).encode()
    raw = json.dumps(message("s1", "y" * (1024 - len(frame)))).encode()
    assert len(raw) == 1024
    response = await gw.client.post("/message", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 200


async def test_unknown_paths_and_methods_are_json_errors(gw: InProcess) -> None:
    assert_error(await gw.client.get("/message"), 405, "method_not_allowed")
    assert_error(await gw.client.get("/admin"), 404, "not_found")


# --- who may call ---


@pytest.fixture
async def guarded(in_process: InProcessFactory, sqlite_url: str) -> AsyncIterator[InProcess]:
    async with in_process(sqlite_url, token=TOKEN) as running:
        yield running


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        f"Basic {TOKEN}",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        b"Bearer \xfc\xff",
    ],
)
async def test_a_missing_or_wrong_token_is_a_401(
    guarded: InProcess, authorization: str | bytes | None
) -> None:
    headers = {"authorization": authorization} if authorization is not None else {}
    response = await guarded.client.post("/message", json=message("s1", "hi"), headers=headers)
    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"
    assert guarded.llm.requests == []


async def test_the_token_is_checked_before_the_body_is_read(guarded: InProcess) -> None:
    response = await guarded.client.post(
        "/message", content=b"x" * 5000, headers={"content-type": "text/plain"}
    )
    assert_error(response, 401, "unauthorized")
    assert_error(await guarded.client.get("/nowhere"), 401, "unauthorized")


async def test_the_right_token_is_let_through_and_health_needs_none(guarded: InProcess) -> None:
    ok = await guarded.client.post(
        "/message", json=message("s1", "hi"), headers={"authorization": f"bearer  {TOKEN} "}
    )
    assert ok.status_code == 200 and ok.json()["output"] == "echo: hi"
    assert (await guarded.client.get("/health")).status_code == 200


@pytest.mark.parametrize("host", ["127.0.0.1:8080", "localhost", "LOCALHOST:1", "[::1]:8080", "127.1.2.3"])
async def test_without_a_token_loopback_host_names_are_served(gw: InProcess, host: str) -> None:
    response = await gw.client.post("/message", json=message("s1", "hi"), headers={"host": host})
    assert response.status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "192.168.1.5:8080", "", "[::2]:80"])
async def test_without_a_token_other_host_names_are_refused(gw: InProcess, host: str) -> None:
    # A page whose DNS name was rebound to 127.0.0.1 sends its own name as Host.
    response = await gw.client.post("/message", json=message("s1", "hi"), headers={"host": host})
    assert_error(response, 421, "bad_host")


async def test_a_cross_site_preflight_gets_no_cors_approval(gw: InProcess) -> None:
    response = await gw.client.options(
        "/message",
        headers={"origin": "https://evil.example", "access-control-request-method": "POST"},
    )
    assert response.status_code == 405 and "access-control-allow-origin" not in response.headers


def test_a_guessable_token_is_a_bad_setting() -> None:
    with pytest.raises(SettingsError, match="^OMNI_GATEWAY_TOKEN: must be at least 16 characters"):
        load_settings(gateway_token="short")


# --- when the agent fails ---


@pytest.mark.parametrize(
    ("status", "code", "http_status", "words"),
    [
        (503, "llm_unavailable", 503, "can't reach my language model"),
        (401, "llm_rejected", 502, "refused the request"),
    ],
)
async def test_an_agent_failure_is_a_json_error_in_its_own_words(
    gw: InProcess, status: int, code: str, http_status: int, words: str
) -> None:
    gw.llm.enqueue(*[ScriptedReply(status=status)] * 3)
    response = await gw.client.post("/message", json=message("s1", "hi"))
    body = assert_error(response, http_status, code)
    assert words in body["message"]
    assert "scripted" not in response.text  # the provider's own text stays in the log


async def test_a_conversation_too_long_says_to_use_a_new_session(gw: InProcess) -> None:
    gw.llm.enqueue(ScriptedReply(status=400, text="This model's maximum context length is 8192 tokens."))
    response = await gw.client.post("/message", json=message("s1", "hi"))
    body = assert_error(response, 502, "context_too_long")
    assert "session_id" in body["message"] and "/new" not in body["message"]
