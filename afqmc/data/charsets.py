"""Text that is not what it should be: a line in another encoding than UTF-8, and strings that no
UTF-8 text can hold (JSON can spell them). Used by the file readers, the server and the library API,
so that such input is refused with a message saying what it is, not by the tokenizer's TypeError.
"""

from __future__ import annotations

from typing import Any


def other_encoding(raw: bytes, number: int) -> str | None:
    """The encoding a line that is not UTF-8 is evidently in: UTF-16 (Excel's "Unicode Text" export starts
    with its byte-order mark) or GB18030/GBK (Chinese text saved by Windows tools), else None."""
    if number == 1 and raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "UTF-16 encoded (Excel's \"Unicode Text\")"
    as_utf8 = [c for c in raw.decode("utf-8", errors="replace") if ord(c) > 127]
    if 2 * as_utf8.count("\ufffd") < len(as_utf8):  # mostly valid UTF-8: a damaged line, not another encoding
        return None
    try:
        text = raw.decode("gb18030")
    except UnicodeDecodeError:
        return None
    return "GB18030 (GBK) encoded" if any("\u4e00" <= c <= "\u9fff" for c in text) else None


def lone_surrogate_field(obj: dict[str, Any]) -> tuple[str, str] | None:
    """(field, :func:`lone_surrogate`'s problem) for the first lone surrogate among a JSON object's keys
    and string values."""
    for key, value in obj.items():
        for text in (key, value) if isinstance(value, str) else (key,):
            if problem := lone_surrogate(text):
                return key.encode("utf-8", "backslashreplace").decode(), problem
    return None


def lone_surrogate(text: str) -> str | None:
    """What is wrong when ``text`` holds a lone UTF-16 surrogate ("contains \\ud800, half of ..."), else None.
    JSON's escapes can spell one, but no UTF-8 text can hold it: the tokenizer and every writer would fail."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return f"contains \\u{ord(text[e.start]):04x}, half of a UTF-16 surrogate pair, which is not a character"
    return None
