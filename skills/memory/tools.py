"""The memory skill: remember, recall and forget on the bot's own episodic memory.

Same store, same recall code as the bot (``memory.recall.two_phase_recall``), scoped to one
owner: a Telegram caller (``_meta``) gets the owner of their private chat with the bot,
``user:<id>``, so what they said there is what they recall here; a session caller (the
gateway's ``gw:<id>``) gets that session's own owner, as the agent does; a caller without ``_meta``
(an IDE) gets ``OMNI_MEMORY_USER``'s owner, or ``local:ide`` when it is unset. A group's memory
(``chat:<id>``) is not reachable from here: ``_meta`` carries the user, not the chat.
"""

# Annotations are evaluated once, here: the SDK reads a tool's hints several times at start-up
# and string annotations (``from __future__ import annotations``) would be re-parsed each time.

from typing import Annotated

from pydantic import BaseModel, Field

from skills._context import Caller, ToolContext, caller_of, skills_context, stores_of
from skills._stores import store_errors
from skills._tool import SkillError, tool

MAX_TEXT_CHARS = 8_000  # one remembered note; a longer one belongs in a file
RECALL_TOKEN_BUDGET = 4_000  # what one recall may return, about 16 KB of text
IDE_SESSION = "ide"  # -> owner ``local:ide``


class Memory(BaseModel):
    id: int = Field(description="Pass to forget to delete it")
    speaker: str = Field(description="Who said it: user, assistant or a person's name")
    text: str
    date: str = Field(description="When it was said (UTC, ISO 8601)")
    score: float = Field(description="Relevance blended with learned usefulness, 0-1")


class Recollection(BaseModel):
    owner: str = Field(description="Whose memory was searched")
    memories: list[Memory]


def owner_of(caller: Caller, memory_user: int | None) -> str:
    """The memory owner a caller reads and writes (see the module docstring)."""
    from memory.episodes import owner_for  # SQLAlchemy: paid by the first memory call, not at start

    if caller.user_id is None and caller.session is not None:
        return owner_for(None, None, False, caller.session)  # never OMNI_MEMORY_USER's memory
    user_id = caller.user_id if caller.user_id is not None else memory_user
    if user_id is not None:
        return owner_for(user_id, user_id, True, "")  # their private chat: chat id = user id
    return owner_for(None, None, False, IDE_SESSION)


def _owner(ctx: ToolContext) -> str:
    return owner_of(caller_of(ctx), skills_context(ctx).memory_user)


@tool(read_only=False, idempotent=False)
async def remember(
    ctx: ToolContext,
    text: Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS, description="What to remember")],
) -> str:
    """Store a note in the user's long-term memory (shared with their Telegram chats)."""
    if not text.strip():
        raise SkillError("nothing to remember: the text is blank")
    owner = _owner(ctx)
    store = await stores_of(ctx).memory()
    with store_errors():
        episode_id = await store.episodes.add(owner, text.strip(), speaker="user", meta={"via": "mcp"})
    return f"remembered as memory {episode_id}"


@tool(read_only=False, idempotent=False)  # recalling raises the memories' recall counts
async def recall(
    ctx: ToolContext,
    query: Annotated[str, Field(max_length=10_000, description="What to look for, in plain words")],
    limit: Annotated[int, Field(ge=1, le=20, description="At most this many memories")] = 5,
) -> Recollection:
    """Search the user's long-term memory (notes and past conversations), best matches first."""
    owner = _owner(ctx)
    store = await stores_of(ctx).memory()
    with store_errors():
        found = await store.recall(
            owner, query, k1=max(20, 4 * limit), k2=limit, token_budget=RECALL_TOKEN_BUDGET
        )
    return Recollection(
        owner=owner,
        memories=[
            Memory(
                id=r.episode.id,
                speaker=r.episode.speaker,
                text=r.episode.text,
                date=r.episode.created_at.isoformat(timespec="seconds"),
                score=round(r.score, 3),
            )
            for r in found
        ],
    )


@tool(read_only=False, destructive=True, idempotent=True)
async def forget(
    ctx: ToolContext,
    id: Annotated[int, Field(ge=1, description="The memory's id, from recall")],
) -> str:
    """Delete one memory for good."""
    owner = _owner(ctx)
    store = await stores_of(ctx).memory()
    with store_errors():
        deleted = await store.episodes.forget(owner, id)
    if not deleted:  # the same words for another user's id: nothing tells it exists
        raise SkillError(f"memory {id} not found")
    return f"forgot memory {id}"
