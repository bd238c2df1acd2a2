"""`omni chat` as a user runs it: a subprocess fed through a pipe, the fake LLM in a thread."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from agent.errors import LLMRejected
from tests.fakes.llm_api import FakeLLM, ScriptedReply
from tests.fakes.server import serve_in_thread

API_KEY = "sk-chat-test-key-0123456789"


@pytest.fixture
def llm() -> FakeLLM:
    return FakeLLM()


@pytest.fixture
def llm_env(llm: FakeLLM) -> Iterator[dict[str, str]]:
    with serve_in_thread(llm.app) as base:
        yield {
            **os.environ,
            "OMNI_LLM_MODEL": "openai/fake-model",
            "OMNI_LLM_API_BASE": base + "/v1",
            "OMNI_LLM_API_KEY": API_KEY,
        }


def chat(
    omni_cmd: list[str], env: dict[str, str], stdin: str, *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*omni_cmd, "chat", *args], input=stdin, env=env, capture_output=True, text=True, timeout=90
    )


def user_texts(request: dict[str, Any]) -> list[str]:
    return [m["content"] for m in request["messages"] if m["role"] == "user"]


def test_chat_through_a_pipe_answers_each_line_and_keeps_sessions(
    omni_cmd: list[str], llm_env: dict[str, str], llm: FakeLLM
) -> None:
    llm.enqueue(ScriptedReply(status=401))
    result = chat(omni_cmd, llm_env, "refused\nhello\n\n   \n/new\nmy cat is Miso\n")

    assert result.returncode == 0, result.stderr
    # The failed line gets the friendly error in its place; blank lines and /new get no reply.
    assert result.stdout.splitlines() == [LLMRejected.user_message, "echo: hello", "echo: my cat is Miso"]
    assert user_texts(llm.requests[-1]) == ["my cat is Miso"]  # /new started a fresh conversation
    assert API_KEY not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr

    # Each subprocess is a restart: another session starts empty, the first one continues.
    other = chat(omni_cmd, llm_env, "who am I?\n", "--session", "other")
    again = chat(omni_cmd, llm_env, "what is my cat called?\n")

    assert other.stdout == "echo: who am I?\n" and again.returncode == 0, again.stderr
    assert user_texts(llm.requests[-2]) == ["who am I?"]
    assert user_texts(llm.requests[-1]) == ["my cat is Miso", "what is my cat called?"]
    assert llm.requests[-1]["messages"][2] == {"role": "assistant", "content": "echo: my cat is Miso"}


def test_chat_without_a_model_names_the_missing_setting(omni_cmd: list[str]) -> None:
    result = subprocess.run(
        [*omni_cmd, "chat"], input="hi\n", env=dict(os.environ), capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "OMNI_LLM_MODEL" in lines[0]
