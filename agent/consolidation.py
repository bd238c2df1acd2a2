"""Consolidation: every N exchanges, the model distils durable facts from an owner's new turns.

The facts are episodes of their own (memory/facts.py): recalled like any turn, linked to the
turns they came from, and a new fact that contradicts a noted one supersedes it. It runs in
the background after an answer, at most once per owner at a time, so nobody waits for it; a
failed call or an answer that is not the JSON asked for changes nothing, and the same turns
are tried again next time.

Off by default (``OMNI_MEMORY_CONSOLIDATE_EVERY=0``): whether facts help recall depends on the
model writing them, and this project cannot measure that without a real model (see the issue's
closing note); the turns themselves are always recalled.

The exchange count is kept in memory: after a restart consolidation waits for N new exchanges,
then catches up on every turn since the stored mark.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence

from agent.background import BackgroundJobs
from agent.llm import LLMClient, Message
from agent.prompts import CONSOLIDATE
from memory.facts import NewFact
from memory.store import Store
from memory.types import EpisodeView

log = logging.getLogger(__name__)

BATCH = 60  # turns shown to the model at once
MAX_BATCHES = 5  # per run: a long backlog (consolidation just turned on) is caught up gradually
KNOWN_FACTS = 50  # noted facts shown, so it can supersede them rather than repeat them
MAX_FACTS = 20  # taken from one answer
MAX_FACT_CHARS = 300
TURN_CHARS = 600  # of each turn in the transcript: facts live in the first sentences
_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$")


def transcript(facts: Sequence[EpisodeView], turns: Sequence[EpisodeView]) -> str:
    noted = [f"[F{f.id}] {f.text}" for f in reversed(facts)] or ["(none yet)"]
    lines = [f"[{t.id}] {t.created_at.date().isoformat()} {t.speaker}: {t.text[:TURN_CHARS]}" for t in turns]
    return "Facts already noted:\n" + "\n".join(noted) + "\n\nNew turns:\n" + "\n".join(lines)


def parse_facts(answer: str, turn_ids: set[int], fact_ids: set[int]) -> list[NewFact]:
    """The facts in the model's JSON answer; ids it made up are dropped. Raises ValueError when
    the answer is not the JSON asked for (the turns stay unconsolidated)."""
    data = json.loads(_FENCE.sub("", answer.strip()))
    items = data.get("facts") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ValueError("no 'facts' list in the answer")
    facts: list[NewFact] = []
    for item in items[:MAX_FACTS]:
        if not isinstance(item, dict) or not isinstance(item.get("text"), str) or not item["text"].strip():
            continue
        sources = tuple(i for i in _ints(item.get("sources")) if i in turn_ids)
        if not sources:
            continue  # a fact no turn supports is the model's, not the person's
        supersedes = tuple(i for i in _ints(item.get("supersedes"), prefix="F") if i in fact_ids)
        facts.append(NewFact(item["text"].strip()[:MAX_FACT_CHARS], sources, supersedes))
    return facts


def _ints(raw: object, prefix: str = "") -> list[int]:
    if not isinstance(raw, list):
        return []
    out: list[int] = []
    for value in raw:
        if isinstance(value, str) and value.removeprefix(prefix).isdigit():
            value = int(value.removeprefix(prefix))
        if isinstance(value, int) and not isinstance(value, bool):
            out.append(value)
    return out


async def consolidate(store: Store, llm: LLMClient, owner: str, *, model: str, user_id: int | None) -> int:
    """Distil facts from ``owner``'s turns after the mark, a batch at a time; facts stored."""
    stored = 0
    for _ in range(MAX_BATCHES):
        turns = await store.facts.turns_after(owner, await store.facts.mark(owner), BATCH)
        if not turns:
            break
        known = await store.facts.current(owner, KNOWN_FACTS)
        request: list[Message] = [
            {"role": "system", "content": CONSOLIDATE},
            {"role": "user", "content": transcript(known, turns)},
        ]
        completion = await llm.complete(request, model=model)
        await store.usage.record(completion.usage_record(user_id=user_id))
        facts = parse_facts(completion.text, {t.id for t in turns}, {f.id for f in known})
        stored += len(await store.facts.save(owner, facts, through=turns[-1].id))
        if len(turns) < BATCH:
            break
    return stored


class Consolidator(BackgroundJobs):
    """Counts exchanges per owner and consolidates every ``every`` of them, in the background.
    A failed run stores nothing and leaves the mark where it was."""

    def __init__(self, store: Store, llm: LLMClient, every: int) -> None:
        super().__init__("consolidation")
        self._store = store
        self._llm = llm
        self._every = every
        self._counts: dict[str, int] = {}

    def exchanged(self, owner: str, *, model: str, user_id: int | None) -> None:
        """One more exchange of ``owner``'s was stored."""
        if self._every <= 0:
            return
        count = self._counts.get(owner, 0) + 1
        if count < self._every or self.busy(owner):
            self._counts[owner] = count
            return
        self._counts[owner] = 0
        self.start(owner, self._run(owner, model, user_id))

    async def _run(self, owner: str, model: str, user_id: int | None) -> None:
        try:
            stored = await consolidate(self._store, self._llm, owner, model=model, user_id=user_id)
        except ValueError as exc:  # the model did not answer the JSON asked for
            log.warning("consolidation of %s got no facts; its turns stay as they are: %r", owner, exc)
            return
        log.info("consolidation of %s stored %d facts", owner, stored)
