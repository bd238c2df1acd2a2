"""The words of /usage, of /status's usage part and of /limit: Telegram HTML, built from numbers
and escaped names, short by construction (a few fixed lines, five users, names cut), so each
answer fits one message."""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime

from agent.limits import Allowance, until
from memory.types import UsageTotals, UserUsage

NAME_CHARS = 32


def money(cost: float) -> str:
    """Dollars as litellm's price map gives them: "$0" (free or unknown model), "<$0.0001", "$0.0123"."""
    if cost <= 0:
        return "$0"
    if cost < 0.0001:
        return "<$0.0001"
    return f"${cost:,.4f}" if cost < 1 else f"${cost:,.2f}"


def calls(count: int) -> str:
    return "1 call" if count == 1 else f"{count:,} calls"


def totals_line(label: str, totals: UsageTotals) -> str:
    if totals.calls == 0:
        return f"{label}: no model calls"
    return (
        f"{label}: {calls(totals.calls)}, {totals.tokens:,} tokens ({totals.prompt_tokens:,} in, "
        f"{totals.completion_tokens:,} out), {money(totals.cost)}"
    )


def allowance_line(allowance: Allowance, now: datetime) -> str:
    """Today's use of a limit, e.g. "Today: 1,234 of 50,000 tokens (2%), resets at 00:00 UTC (in 5 h)"."""
    share = "limit reached" if allowance.reached else f"{allowance.used * 100 // allowance.limit}%"
    return (
        f"Today: {allowance.used:,} of {allowance.limit:,} tokens ({share}); "
        f"resets at 00:00 UTC (in {until(allowance.resets_at, now)})"
    )


def usage_report(day: UsageTotals, month: UsageTotals, allowance: Allowance | None, now: datetime) -> str:
    """/usage: the caller's last 24 h and 30 days, and today's limit if one applies to them."""
    lines = ["<b>Your usage</b>", totals_line("Last 24 h", day), totals_line("Last 30 days", month)]
    if allowance is not None:
        lines.append(allowance_line(allowance, now))
    return "\n".join(lines)


def shorten(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def who(user_id: int, display_name: str | None, username: str | None) -> str:
    """A user as HTML: their name and @username when known, and their id."""
    parts = [html.escape(shorten(display_name, NAME_CHARS), quote=False)] if display_name else []
    if username:
        parts.append("@" + html.escape(shorten(username, NAME_CHARS), quote=False))
    return " ".join([*parts, f"<code>{user_id}</code>"])


def status_section(
    day: UsageTotals, month: UsageTotals, top: Sequence[UserUsage], *, default_limit: int
) -> list[str]:
    """/status's usage lines: everyone's totals, the daily limit, the top users over 30 days."""
    default = f"{default_limit:,} tokens per user (admins exempt)" if default_limit else "none by default"
    lines = [
        "",
        "<b>LLM usage</b>",
        totals_line("24 h", day),
        totals_line("30 d", month),
        f"daily limit: {default}; /limit sets one user's",
    ]
    if top:
        lines.append("<b>Top users, 30 d</b>")
        lines += [
            f"{rank}. {who(u.user_id, u.display_name, u.username)}: {u.totals.tokens:,} tokens, "
            f"{calls(u.totals.calls)}, {money(u.totals.cost)}"
            for rank, u in enumerate(top, start=1)
        ]
    return lines


def limit_state(own: int | None, allowance: Allowance | None, *, default: int, is_admin: bool) -> str:
    """A user's daily limit in words, for /limit: how much, where it comes from, today's use."""
    if allowance is not None:
        source = "their own" if allowance.own else "the default, OMNI_USAGE_DAILY_TOKENS"
        return f"{allowance.limit:,} tokens a day ({source}); {allowance.used:,} used today"
    if own == 0:
        return "no daily limit (set with /limit)"
    if is_admin and default:
        return "no daily limit (admins are exempt from the default)"
    return "no daily limit (OMNI_USAGE_DAILY_TOKENS is 0)"
