"""Markdown from the LLM -> Telegram HTML, in chunks Telegram accepts.

Library choice: ``chatgpt-md-converter`` (``telegram_format``) turns the Markdown LLMs write
(bold, italics, inline and fenced code with a language, links, lists, quotes, spoilers) into
Telegram's HTML subset and escapes everything else, so ``<script>`` and ``5 < 6 & 7`` show
literally. ``telegramify-markdown`` targets MarkdownV2 (or entities), whose escaping rules are
harder to verify and whose failures are harder to fall back from; HTML can be checked here with
a 30-line parser and, if still rejected, degraded to plain text by stripping tags. The converter
occasionally produces crossed tags (``**a _b** c_``) or odd hrefs, so its output is checked and
replaced by escaped text when it is not Telegram-valid.

Splitting is ours: Telegram limits a message to 4096 UTF-16 code units *after* entity parsing.
Chunks are cut at paragraph or line boundaries (inside a long line at a space), and tags open at
a cut (e.g. a ``<pre><code class="language-x">`` block) are closed at the end of one chunk and
reopened at the start of the next, so every chunk is balanced on its own.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

# Below Telegram's 4096 so a different count on their side (e.g. normalised whitespace) still fits.
CHUNK_LIMIT = 4000

_ALLOWED = {
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
_TOKEN = re.compile(r"<[^<>]*>|&(?:[a-zA-Z]+|#\d+|#x[0-9a-fA-F]+);|[^<&]+|[<&]")
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)([^<>]*)>")
_HREF = re.compile(r'^\s+href="[^"<>]*"\s*$')
_CODE_CLASS = re.compile(r'^\s+class="language-[\w+#.-]+"\s*$')
_ENTITY_OK = re.compile(r"&(?:lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);")
# C0 controls other than tab and newline (and DEL) make Telegram reject or mangle a message.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def to_html(markdown: str) -> str:
    """Telegram HTML for ``markdown``; escaped plain text when conversion gives invalid HTML."""
    from chatgpt_md_converter import telegram_format

    text = _CONTROL.sub("", markdown)
    converted = str(telegram_format(text))
    return converted if is_valid_html(converted) else html.escape(text, quote=False)


def to_plain(html_text: str) -> str:
    """What a chunk shows without formatting: tags removed, entities decoded."""
    return html.unescape(re.sub(r"<[^<>]*>", "", html_text))


def _tag_ok(name: str, attrs: str) -> bool:
    if name not in _ALLOWED:
        return False
    if not attrs.strip():
        return name not in ("a", "span", "tg-emoji")
    if name == "a":
        return bool(_HREF.match(attrs))
    if name == "code":
        return bool(_CODE_CLASS.match(attrs))
    if name == "span":
        return attrs.strip() == 'class="tg-spoiler"'
    if name == "blockquote":
        return attrs.strip() == "expandable"
    return name == "tg-emoji" and attrs.strip().startswith("emoji-id=")


def is_valid_html(text: str) -> bool:
    """Whether Telegram's HTML parser would accept ``text`` (known tags, balanced, entities)."""
    stack: list[str] = []
    for token in _TOKEN.findall(text):
        if token.startswith("<"):
            match = _TAG.fullmatch(token)
            if match is None:
                return False
            closing, name, attrs = match.group(1), match.group(2).lower(), match.group(3)
            if closing:
                if attrs.strip() or not stack or stack.pop() != name:
                    return False
            elif _tag_ok(name, attrs):
                stack.append(name)
            else:
                return False
        elif token.startswith("&") and not _ENTITY_OK.fullmatch(token):
            return False
    return not stack


@dataclass(slots=True)
class _Unit:
    """A piece of HTML (a line, or part of an over-long line) and the tags open after it."""

    html: str
    visible: int
    sep: str  # what joins it to the next unit: "\n" or ""
    open_after: tuple[str, ...]  # raw opening tags still open after this unit


def _units(text: str, limit: int) -> list[_Unit]:
    units: list[_Unit] = []
    stack: list[str] = []
    lines = text.split("\n")
    for index, line in enumerate(lines):
        sep = "\n" if index < len(lines) - 1 else ""
        current: list[str] = []
        visible = 0
        for token in _TOKEN.findall(line):
            match = _TAG.fullmatch(token) if token.startswith("<") else None
            if match is not None:
                if match.group(1):
                    if stack:
                        stack.pop()
                else:
                    stack.append(token)
                current.append(token)
                continue
            for part in _split_text(token, limit):
                width = utf16_len(html.unescape(part))
                if visible + width > limit and current:
                    units.append(_Unit("".join(current), visible, "", tuple(stack)))
                    current, visible = [], 0
                current.append(part)
                visible += width
        units.append(_Unit("".join(current), visible, sep, tuple(stack)))
    return units


def _split_text(token: str, limit: int) -> list[str]:
    """Text in word-sized parts (so long lines break at spaces); tags and entities whole."""
    if token.startswith(("<", "&")) or len(token) <= 200:
        parts = [token]
    else:
        parts = re.findall(r"\S*\s*", token)
    out: list[str] = []
    for part in parts:
        # A single word longer than a chunk: cut it hard.
        while len(part) > limit // 2:
            out.append(part[: limit // 2])
            part = part[limit // 2 :]
        if part:
            out.append(part)
    return out


def _closers(open_tags: tuple[str, ...]) -> str:
    names = [_TAG.fullmatch(tag).group(2) for tag in open_tags]  # type: ignore[union-attr]
    return "".join(f"</{name}>" for name in reversed(names))


def _cut_index(units: list[_Unit], start: int, end: int) -> int:
    """Where to end a full chunk ``units[start:end]``: after a paragraph break in its second
    half outside code, else at ``end``."""
    total = sum(u.visible + len(u.sep) for u in units[start:end])
    seen = 0
    best = end
    for i in range(start, end):
        seen += units[i].visible + len(units[i].sep)
        blank = units[i].visible == 0 and units[i].sep == "\n"
        in_code = any(t.startswith("<pre") for t in units[i].open_after)
        if blank and not in_code and seen >= total // 2 and i + 1 < end:
            best = i + 1
    return best


def split_html(text: str, limit: int = CHUNK_LIMIT) -> list[str]:
    """Split Telegram HTML into balanced chunks of at most ``limit`` visible UTF-16 units."""
    if utf16_len(to_plain(text)) <= limit:
        return [text] if to_plain(text).strip() else []
    units = _units(text, limit)
    chunks: list[str] = []
    start = 0
    prefix: tuple[str, ...] = ()
    while start < len(units):
        end, size = start, 0
        while end < len(units) and (end == start or size + units[end].visible + len(units[end].sep) <= limit):
            size += units[end].visible + len(units[end].sep)
            end += 1
        if end < len(units):
            end = _cut_index(units, start, end)
        body = "".join(u.html + u.sep for u in units[start:end]).rstrip("\n")
        open_after = units[end - 1].open_after
        chunk = "".join(prefix) + body + _closers(open_after)
        if to_plain(chunk).strip():
            chunks.append(chunk)
        prefix, start = open_after, end
    return chunks


def render(markdown: str) -> list[str]:
    """The LLM's Markdown as Telegram HTML chunks, in order."""
    return split_html(to_html(markdown))
