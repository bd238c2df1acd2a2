"""What can go wrong in the agent, as errors the edges turn into words.

    OmniError                      omni.errors: ``user_message`` is safe to show
    └── AgentError                 anything the agent cannot do
        ├── DailyLimitReached      the user spent their tokens for the UTC day (agent/limits.py);
        │                          raised before any LLM call, its message says when it resets
        ├── LLMUnavailable         the model could not be reached: timeouts, connection
        │                          errors, rate limits, 5xx, after the retries ran out
        └── LLMRejected            the provider refused the request: bad credentials,
            │                      unknown model, malformed request
            └── ContextTooLong     the conversation no longer fits the model's context

``str(err)`` is for logs: the provider's exception class and HTTP status, never its text
(which may quote the request, and with it an API key). The provider's exception stays
reachable as ``__cause__`` for debugging; the log filter masks configured secrets.
"""

from __future__ import annotations

from omni.errors import OmniError


class AgentError(OmniError):
    pass


class DailyLimitReached(AgentError):
    """Raised with the words to show (the limit and when it resets), built by agent/limits.py."""

    user_message = "You've used your tokens for today; the limit resets at 00:00 UTC."


class LLMUnavailable(AgentError):
    user_message = "I can't reach my language model right now. Please try again in a minute."


class LLMRejected(AgentError):
    user_message = (
        "My language model refused the request. If this keeps happening, an admin should check "
        "the model settings (OMNI_LLM_MODEL, OMNI_LLM_API_KEY)."
    )


class ContextTooLong(LLMRejected):
    user_message = "This conversation got too long for my model. Send /new to start a fresh one."
