"""The floor for bench/bot_latency.py: a bare python-telegram-bot + litellm echo of the LLM.

No persistence, no access control, no formatting: just ``concurrent_updates`` on, one LLM call
per text message, one sendMessage. Configured by arguments so the bench can point it at fakes:

    python bench/_floor_bot.py TOKEN API_ROOT MODEL API_BASE API_KEY
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm  # noqa: E402  (after the env var above: no network for the price list)
from telegram import Update  # noqa: E402
from telegram.ext import Application, ContextTypes, MessageHandler, filters  # noqa: E402


def main() -> None:
    token, root, model, api_base, api_key = sys.argv[1:6]

    async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None and update.message.text is not None
        response = await litellm.acompletion(
            model=model,
            api_base=api_base,
            api_key=api_key,
            messages=[{"role": "user", "content": update.message.text}],
        )
        await context.bot.send_message(update.message.chat.id, response.choices[0].message.content)

    app = (
        Application.builder()
        .token(token)
        .base_url(f"{root}/bot")
        .base_file_url(f"{root}/file/bot")
        .concurrent_updates(True)
        .build()
    )
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, on_text))
    app.run_polling(timeout=10, drop_pending_updates=False)


if __name__ == "__main__":
    main()
