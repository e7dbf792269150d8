"""MkDocs hook for `make docs`: table cells as GitHub renders them.

GitHub needs a pipe inside a code span in a table escaped (`on\\|off`); Python-Markdown keeps
the backslash, but already leaves pipes inside code spans alone. So, in table rows, a code
span's escaped pipes are unescaped before the page is rendered.
"""

import re
from typing import Any

_CODE_SPAN = re.compile(r"`[^`\n]+`")


def _unescape(match: re.Match[str]) -> str:
    return match.group(0).replace("\\|", "|")


def on_page_markdown(markdown: str, **_: Any) -> str:
    lines = markdown.split("\n")
    for i, line in enumerate(lines):
        if line.lstrip().startswith("|") and "\\|" in line:
            lines[i] = _CODE_SPAN.sub(_unescape, line)
    return "\n".join(lines)
