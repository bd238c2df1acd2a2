"""Telegram's rules for message text, as the real Bot API applies them: which HTML tags and
entities ``parse_mode=HTML`` accepts, and how long a text is (UTF-16 code units).

Written from Telegram's documentation and observed answers, independently of ``bot/format.py``:
the fake must judge the bot's output, not mirror it.
"""

from __future__ import annotations

import re
from html import unescape

MAX_TEXT = 4096

_ALLOWED_TAGS = {
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "span",
    "tg-spoiler",
    "a",
    "code",
    "pre",
    "blockquote",
    "tg-emoji",
}
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[^<>]*)?)\s*>")
_ENTITY = re.compile(r"&(?:lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);")
_ATTR = re.compile(r"""([a-zA-Z-]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?""")


class EntityError(ValueError):
    """The text is not valid Telegram HTML; the message mimics the real server's."""


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _check_attrs(name: str, raw: str) -> None:
    attrs = {m.group(1).lower(): m.group(2) or m.group(3) or m.group(4) or "" for m in _ATTR.finditer(raw)}
    if name == "a" and "href" not in attrs:
        raise EntityError('can\'t parse entities: tag "a" must have attribute "href"')
    if name == "span" and attrs.get("class") != "tg-spoiler":
        raise EntityError('can\'t parse entities: tag "span" must have class "tg-spoiler"')
    if name == "tg-emoji" and "emoji-id" not in attrs:
        raise EntityError('can\'t parse entities: tag "tg-emoji" must have attribute "emoji-id"')
    if name == "code" and attrs and not attrs.get("class", "").startswith("language-"):
        raise EntityError('can\'t parse entities: unsupported attribute of tag "code"')


def parse_html(text: str) -> str:
    """The plain text Telegram would show for ``text`` in HTML mode, or :class:`EntityError`."""
    out: list[str] = []
    stack: list[str] = []
    pos = 0
    while pos < len(text):
        char = text[pos]
        if char == "<":
            match = _TAG.match(text, pos)
            if match is None:
                raise EntityError(f"can't parse entities: unexpected '<' at byte offset {pos}")
            closing, name, attrs = match.group(1), match.group(2).lower(), match.group(3)
            if name not in _ALLOWED_TAGS:
                raise EntityError(
                    f'can\'t parse entities: unsupported start tag "{name}" at byte offset {pos}'
                )
            if closing:
                if not stack or stack[-1] != name:
                    raise EntityError(f"can't parse entities: unexpected end tag at byte offset {pos}")
                stack.pop()
            else:
                if name == "code" and attrs.strip() and (not stack or stack[-1] != "pre"):
                    raise EntityError("can't parse entities: code with a language must be inside pre")
                _check_attrs(name, attrs)
                stack.append(name)
            pos = match.end()
        elif char == "&":
            match = _ENTITY.match(text, pos)
            if match is None:
                raise EntityError(f"can't parse entities: unsupported entity at byte offset {pos}")
            out.append(unescape(match.group(0)))
            pos = match.end()
        else:
            out.append(char)
            pos += 1
    if stack:
        raise EntityError(
            f"can't parse entities: can't find end tag corresponding to start tag \"{stack[-1]}\""
        )
    return "".join(out)
