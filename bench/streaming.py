"""Streamed answers: how soon the reader sees text, and what it costs in Bot API calls.

The real `omni bot` (a subprocess) answers one question whose answer the fake LLM streams as a
scripted ``--tokens``-token text at ``--rate`` tokens per second, with the fake Bot API applying
Telegram's flood limits (429 beyond about one update a second in a private chat, twenty a
minute in a group). Three ways, taking turns ``--runs`` times:

- private: drafts (``sendMessageDraft``), then the finished message;
- group: one message edited in place, which becomes the answer's first message;
- off (``OMNI_STREAM_ANSWERS=false``), the floor: the answer arrives whole.

For each: time to the first visible text (from the update being available to the first draft
or message showing any of the answer), time to the full answer, Bot API calls made for the
answer (all methods but getUpdates), and 429s received.

    python bench/streaming.py [--tokens 2000] [--rate 100] [--runs 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bot_latency import Bot, _env  # noqa: E402
from bot.format import render, to_plain  # noqa: E402
from tests.fakes.llm_api import ScriptedReply  # noqa: E402
from tests.fakes.telegram_api import BOT_USERNAME  # noqa: E402

USER = 4242
GROUP = -1004242
_WORDS = "the quick brown fox jumps over a lazy dog while **omni** writes `code` and prose".split()


def scripted_answer(tokens: int) -> str:
    """A Markdown answer of about ``tokens`` tokens (4 characters each): paragraphs, a list and
    a code block, like a long model answer."""
    parts: list[str] = []
    size = 0
    i = 0
    while size < tokens * 4:
        if i % 7 == 3:
            block = "```python\n" + "".join(f"value_{i}_{j} = {j} * 2\n" for j in range(6)) + "```"
        elif i % 7 == 5:
            block = "\n".join(f"- item {i}.{j}: " + " ".join(_WORDS[: 6 + j]) for j in range(4))
        else:
            block = " ".join(_WORDS[(i + k) % len(_WORDS)] for k in range(60))
        parts.append(block)
        size += len(block) + 2
        i += 1
    return "\n\n".join(parts)


def _run(bot: Bot, chat: str, text: str, rate: float) -> dict[str, float]:
    tg, llm = bot.tg, bot.llm
    before_calls = len(tg.calls)
    before_sent = len(tg.sent)
    before_drafts = len(tg.drafts)
    before_floods = tg.floods
    llm.enqueue(ScriptedReply(text=text, tokens_per_s=rate))
    if chat == "group":
        message = tg.message(USER, f"@{BOT_USERNAME} write it", GROUP, chat_type="supergroup")
        update_id = tg.push_update({"message": message})
    else:
        update_id = tg.push_text(USER, "write it")
    pushed = tg.push_times[update_id]
    last_chunk = render(text)[-1]
    deadline = time.monotonic() + 600
    while not any(s.text == last_chunk for s in tg.sent[before_sent:]):
        if time.monotonic() > deadline:
            raise TimeoutError("no full answer")
        time.sleep(0.01)
    full = max(s.at for s in tg.sent[before_sent:] if s.text == last_chunk)
    shown = [d.at for d in tg.drafts[before_drafts:] if to_plain(d.text).strip()]
    shown += [s.at for s in tg.sent[before_sent:] if to_plain(s.text).strip()]
    calls = Counter(method for method, _ in tg.calls[before_calls:] if method != "getUpdates")
    return {
        "first_visible_s": min(shown) - pushed,
        "full_answer_s": full - pushed,
        "bot_api_calls": float(sum(calls.values())),
        "previews": float(calls["sendMessageDraft"] + calls["editMessageText"]),
        "floods": float(tg.floods - before_floods),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=100.0, help="tokens per second")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    text = scripted_answer(args.tokens)
    ways = {"private": ("private", "true"), "group": ("group", "true"), "off": ("private", "false")}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in ways}
    with tempfile.TemporaryDirectory() as tmp:
        bots: dict[str, Bot] = {}
        try:
            for name, (_, stream) in ways.items():
                data = Path(tmp) / name
                env = _env(data) | {"OMNI_STREAM_ANSWERS": stream}
                bot = bots[name] = Bot(name, [sys.executable, "-m", "omni", "bot"], env, Path(tmp))
                bot.tg.flood()
                bot.start()
                bot.tg.push_text(USER, "warm up")  # litellm's import, out of the figures
                bot.tg.wait_for_messages(1, timeout=120)
            for _ in range(args.runs):
                for name, (chat, _) in ways.items():
                    results[name].append(_run(bots[name], chat, text, args.rate))
        finally:
            for bot in bots.values():
                bot.close()
    summary: dict[str, Any] = {"tokens": args.tokens, "rate": args.rate, "chars": len(text)}
    for name, runs in results.items():
        summary[name] = {key: round(statistics.median(r[key] for r in runs), 3) for key in runs[0]}
        figures = summary[name]
        print(
            f"{name:8} first text {figures['first_visible_s']:6.2f} s  full answer "
            f"{figures['full_answer_s']:6.2f} s  Bot API calls {figures['bot_api_calls']:4.0f} "
            f"(previews {figures['previews']:3.0f})  429s {figures['floods']:.0f}"
        )
    if args.json:
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
