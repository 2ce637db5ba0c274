"""What the app accepts as input: one rule for the text of a todo, and JSON and form bodies
that are checked before they are parsed. Every route that writes goes through here.

The text rule (also in README.md and docs/reliability.md): leading and trailing whitespace
is removed, every run of tabs and line breaks inside it becomes one space (a todo is one
line: TAB, LF, VT, FF, CR, NEL, U+2028, U+2029), the rest is kept exactly as typed (no
Unicode normalisation), and a text is refused (400) when it holds a character that the
database cannot store or that would mislead the people who read a shared list:

- control characters (Unicode category Cc: NUL, which PostgreSQL cannot store, ESC, which
  starts terminal escape sequences, and every other C0/C1 control);
- lone surrogates (U+D800-U+DFFF, `"\\ud800"` in JSON): not characters, not storable;
- non-characters (U+FDD0-U+FDEF and the last two code points of every plane);
- invisible format characters (category Cf): bidi embeddings, overrides and isolates
  (U+202A-U+202E, U+2066-U+2069, which can make a text read backwards), zero-width space,
  word joiner, BOM, soft hyphen, tag characters, ... Only the zero-width joiner and
  non-joiner (U+200D, U+200C) are kept: emoji sequences and several scripts need them.

A form body that is not valid UTF-8 (raw bytes or percent-escapes) is refused with 400
as a whole; a JSON body is refused beyond JSON_MAX_BYTES (413) or JSON_MAX_DEPTH levels of
nesting (400) before the parser sees it.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

import flask

from app.errors import ApiError
from app.models import TEXT_MAX

JSON_MAX_BYTES = 64 * 1024
JSON_MAX_DEPTH = 32
# Joiners shape emoji sequences (👩‍💻) and Indic/Persian words; they hide nothing.
KEPT_FORMAT_CHARACTERS = frozenset("\u200c\u200d")
REPLACEMENT = "\ufffd"
# Tabs and line breaks (what str.splitlines splits on, less the old record separators):
# pasted multi-line text becomes one line.
BREAK_CHARACTERS = "\t\n\v\f\r\x85\u2028\u2029"
_BREAKS = re.compile(f"[{BREAK_CHARACTERS}]+")
# Tokens that matter for nesting: an escape (two characters), a quote, a bracket. Matching
# an escape as one token keeps the scan linear whatever the body holds.
_JSON_TOKENS = re.compile(r'\\.|["\[\]{}]', re.DOTALL)


def refused_character(ch: str) -> str | None:
    """Why ch may not be in a todo's text, or None when it may."""
    category = unicodedata.category(ch)
    code = ord(ch)
    if category == "Cc":
        return "a control character"
    if category == "Cs":
        return "a lone surrogate (not a character)"
    if 0xFDD0 <= code <= 0xFDEF or (code & 0xFFFE) == 0xFFFE:
        return "a non-character"
    if category == "Cf" and ch not in KEPT_FORMAT_CHARACTERS:
        return "an invisible formatting character (bidi control, zero-width or similar)"
    return None


def clean_text(raw: Any) -> str:
    """A todo's text by the rule above: trimmed, 1..TEXT_MAX characters, else a 400."""
    if not isinstance(raw, str):
        raise ApiError(400, "text must be a string")
    # Judged as sent (before trimming), so that the OpenAPI document can state the rule
    # exactly: a pattern and a length over the string the client sends.
    for index, ch in enumerate(raw):
        why = ch not in BREAK_CHARACTERS and refused_character(ch)
        if why:
            raise ApiError(400, f"task text must not contain {why}: U+{ord(ch):04X} at "
                                f"position {index + 1}")
    if len(raw) > TEXT_MAX:
        raise ApiError(400, f"task text must be at most {TEXT_MAX} characters (got {len(raw)})")
    text = _BREAKS.sub(" ", raw.strip())
    if not text:
        raise ApiError(400, "task text must not be empty")
    return text


@functools.cache
def text_pattern() -> str:
    """The text rule as a regular expression (for the OpenAPI document): no refused
    character, and at least one that is not whitespace.

    Lone surrogates are left out of it: they cannot be in a UTF-8 string, and validators
    that work on UTF-8 (schemathesis's, in Rust) refuse a pattern that names them. The
    document's description says they are refused."""
    codes = (*range(0xD800), *range(0xE000, 0x110000))
    refused = _char_class(c for c in codes if chr(c) not in BREAK_CHARACTERS and refused_character(chr(c)))
    # Spelled out rather than \s, whose meaning differs between regex engines; these are what
    # str.strip() removes.
    blank = _char_class(c for c in codes if chr(c).isspace())
    return f"^[^{refused}]*[^{refused}{blank}][^{refused}]*$"


def _char_class(codes: Iterable[int]) -> str:
    """The inside of a regex character class holding these code points (ascending)."""
    ranges: list[tuple[int, int]] = []
    for code in codes:
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1] = (ranges[-1][0], code)
        else:
            ranges.append((code, code))
    # BMP code points as \uXXXX escapes (ECMA-262, Python and Rust read them alike); astral
    # ones as themselves.
    return "".join(
        (f"\\u{a:04x}" if a < 0x10000 else chr(a))
        + ("" if a == b else "-" + (f"\\u{b:04x}" if b < 0x10000 else chr(b)))
        for a, b in ranges)


def shown(raw: str) -> str:
    """raw as a form may show it back to its author: refused characters become U+FFFD.

    A lone surrogate cannot even be encoded into the page, and the others are what the
    message is about; the replacement character marks where they were.
    """
    return "".join(REPLACEMENT if refused_character(ch) else ch for ch in raw)


def check_json_limits(data: bytes) -> None:
    """Refuse a JSON body that is too large or nested too deeply, before it is parsed."""
    if len(data) > JSON_MAX_BYTES:
        raise ApiError(413, f"JSON body too large (limit {JSON_MAX_BYTES} bytes)")
    try:
        text = data.decode(json.detect_encoding(data), "surrogatepass")
    except (UnicodeDecodeError, LookupError):
        return  # not text at all: the parser says "malformed" without recursing
    depth = 0
    in_string = False
    for match in _JSON_TOKENS.finditer(text):
        piece = match.group()
        if piece == '"':
            in_string = not in_string
        elif in_string or len(piece) == 2:
            continue
        elif piece in "[{":
            depth += 1
            if depth > JSON_MAX_DEPTH:
                raise ApiError(400, f"JSON body nested too deeply (limit {JSON_MAX_DEPTH} levels)")
        else:
            depth -= 1


class Request(flask.Request):
    """Flask's request, with JSON and form bodies checked before they are parsed."""

    def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        """The parsed JSON body; limits are enforced even when silent."""
        if force or self.is_json:
            check_json_limits(self.get_data(cache=True))
        try:
            return super().get_json(force=force, silent=silent, cache=cache)
        except RecursionError:
            # The depth limit makes this unreachable; kept so that no parser limit is a 500.
            raise ApiError(400, "JSON body nested too deeply") from None

    def _load_form_data(self) -> None:
        """Refuse a URL-encoded form that is not UTF-8; Werkzeug would drop the whole form
        (raw bytes) or keep the escapes as typed (percent-escapes) without a word."""
        if self.mimetype == "application/x-www-form-urlencoded":
            data = self.get_data(cache=True)
            try:
                parse_qsl(data.decode("utf-8"), keep_blank_values=True, errors="strict")
            except UnicodeError:
                raise ApiError(400, "form body is not valid UTF-8") from None
        super()._load_form_data()
