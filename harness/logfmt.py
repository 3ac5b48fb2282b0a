"""Reading a text log line as a logfmt reader does, to check that no text can add or
fake a field (README "Logs")."""

from __future__ import annotations

import json


def logfmt_fields(line: str) -> dict[str, str]:
    """The key=value fields of a text line as a logfmt reader takes them: a quoted value
    is one token whatever it holds; bare words and a quoted message are not fields."""
    fields: dict[str, str] = {}
    index = 0
    while index < len(line):
        if line[index] == " ":
            index += 1
        elif line[index] == '"':
            index = _quoted_end(line, index)
        else:
            end = index
            while end < len(line) and line[end] not in ' ="':
                end += 1
            if line[end : end + 2] == '="':
                value_end = _quoted_end(line, end + 1)
                fields[line[index:end]] = json.loads(line[end + 1 : value_end])
                end = value_end
            elif line[end : end + 1] == "=":
                value_end = line.find(" ", end)
                value_end = len(line) if value_end < 0 else value_end
                fields[line[index:end]] = line[end + 1 : value_end]
                end = value_end
            index = max(end, index + 1)
    return fields


def _quoted_end(line: str, start: int) -> int:
    """Where the quoted string starting at ``start`` ends (after its closing quote)."""
    index = start + 1
    while line[index] != '"':
        index += 2 if line[index] == "\\" else 1
    return index + 1
