"""The system prompt: who omni is, when it is, who it is talking to."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo

from memory.types import EpisodeView

PERSONA = """\
You are omni, a personal assistant people talk to on Telegram and in the terminal.
Be helpful, direct and brief: answer the question first, add detail only when it helps.
Say plainly when you do not know something or cannot do it; never invent facts, links or tool \
results.
Write in Markdown (bold, italics, lists, `code`, fenced code blocks, links); it is converted for \
the chat app, so avoid tables and HTML.
Answer in the language the user writes in."""

TOOLS_NOTE = """\
You can use tools. Call one when it gives a better answer than guessing; read its result \
before answering, and tell the user briefly what you did."""


GROUP_NOTE = """\
This is a group chat: each message from its members starts with the sender's name in brackets. \
The latest message is from {name}; answer them, and keep in mind who said what."""


def speaker(name: str | None) -> str:
    """A Telegram profile name made safe to quote: one line, at most 64 characters, no brackets
    (names are chosen by users: they must not add instructions or fake another speaker)."""
    clean = " ".join((name or "").replace("[", "(").replace("]", ")").split())[:64]
    return clean or "someone"


def group_message(name: str | None, text: str) -> str:
    """A group member's message as it is stored and shown to the model: who, then what."""
    return f"[{speaker(name)}] {text}"


def system_prompt(
    now: datetime, *, user_name: str | None = None, tools: bool = False, group: bool = False
) -> str:
    """The system message for one turn. ``now`` must be timezone-aware. ``group``: the turn is
    a group member's, its messages named by ``group_message``."""
    stamp = now.strftime("%A, %d %B %Y, %H:%M")
    zone = now.tzname() or now.strftime("%z")
    parts = [PERSONA]
    if tools:
        parts.append(TOOLS_NOTE)
    parts.append(f"Current date and time: {stamp} ({zone}, UTC{now.strftime('%z')}).")
    if group:
        parts.append(GROUP_NOTE.format(name=speaker(user_name)))
    elif user_name:
        parts.append(f"You are talking with {speaker(user_name)}.")
    return "\n\n".join(parts)


MEMORY_HEADER = (
    "Things you remember from earlier conversations with this {who} (the date each was said; "
    "use them when they help, and say so if they seem out of date):"
)
SPEAKERS = {"user": "they said", "assistant": "you said", "fact": "a fact you noted"}


def memory_section(
    recalled: Sequence[EpisodeView], zone: tzinfo | None, *, group: bool = False
) -> str | None:
    """Recalled episodes for the system prompt, oldest first, with date, weekday and speaker;
    None when nothing was recalled."""
    if not recalled:
        return None
    lines = [MEMORY_HEADER.format(who="group" if group else "user")]
    for episode in sorted(recalled, key=lambda e: e.created_at):
        when = episode.created_at.astimezone(zone)
        speaker = SPEAKERS.get(episode.speaker) or " ".join(episode.speaker.split())[:64] + " said"
        text = " ".join(episode.text.split())
        lines.append(f"- {when:%Y-%m-%d} ({when:%A}), {speaker}: {text}")
    return "\n".join(lines)


SUMMARY_HEADER = "Summary of the earlier part of this conversation (older messages are not shown):"

SUMMARISE = """\
You compact a chat between a user and their assistant, omni. Write a summary of the \
transcript below that lets the assistant carry on the conversation without it: what the user \
asked for and told about themselves, decisions, facts and numbers found (tool results \
included), promises made, and what is still open. Keep names, dates, figures, file names and \
links exactly. If the transcript starts with an earlier summary, fold it in. Write plain \
prose or short bullet points in the user's language, at most {words} words, and nothing else."""


def summary_section(summary: str) -> str:
    """The stored summary as the system prompt carries it."""
    return f"{SUMMARY_HEADER}\n{summary}"


CONSOLIDATE = """\
You keep a notebook of durable facts about a person, from their chats with their assistant, \
omni. Below are the facts already noted (with ids, as `[F12] ...`) and new chat turns (with \
ids, as `[34] 2026-05-01 user: ...`). Note only facts that will still matter in weeks: who \
they are, people and pets in their life, where they live and work, preferences, plans with \
dates, health, ongoing projects. Nothing about the assistant, no small talk, nothing already \
noted unless it changed. Write each fact as one short sentence in the third person with \
absolute dates (turn the turn's date into one when the turn says "yesterday" or "next week"). \
When a new fact contradicts a noted one (a move, a new job, a changed plan), list the noted \
fact's id in "supersedes".
Answer with JSON only, in this shape: \
{"facts": [{"text": "...", "sources": [turn ids], "supersedes": [fact ids]}]} \
and {"facts": []} when there is nothing durable."""
