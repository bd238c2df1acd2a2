"""The agent: conversation loop, LLM access, and its terminal and HTTP frontends."""

from agent import errors
from agent.factory import open_agent
from agent.llm import Completion, LiteLLMClient, LLMClient, RetryPolicy
from agent.loop import Agent, AgentConfig, ToolProvider
from agent.types import Progress, ProgressCallback, Reply, ToolCall, Turn, Usage

__all__ = [
    "Agent",
    "AgentConfig",
    "Completion",
    "LLMClient",
    "LiteLLMClient",
    "Progress",
    "ProgressCallback",
    "Reply",
    "RetryPolicy",
    "ToolCall",
    "ToolProvider",
    "Turn",
    "Usage",
    "errors",
    "open_agent",
]
