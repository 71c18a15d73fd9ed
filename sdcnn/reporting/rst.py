"""User text in reStructuredText: the report's captions show it verbatim, never as markup.

The captions (report/*.rst) are Jinja templates that Snakemake renders and then gives
to docutils.  A prompt such as ``A ``weird`` city *at |sunset|`` would otherwise open
inline literals, emphasis and substitution references, and docutils would print
errors and put "System Message" boxes into the report.  Every user-supplied string
(prompt texts and ids, the negative prompt, the model source, labels) goes through
one of two Jinja filters:

- ``rst``: plain text, each ASCII punctuation character backslash-escaped (docutils
  removes the backslash and keeps the character; escaped characters start no markup);
- ``rst_literal``: the same text in a monospace ``:literal:`…``` role, which, unlike
  a ````…```` inline literal, honours backslash escapes, so backticks may appear in it.

Line breaks, tabs and other control characters become spaces: a caption's value must
stay on its line (a blank line would end the paragraph, an indented one quote it).

``JINJA_FILTERS`` holds the filters (and ``json_file``) for any Jinja environment;
``sdcnn.workflow.report.register_jinja_filters`` hands them to Snakemake's report.
"""

from __future__ import annotations

import string
import unicodedata

_PUNCTUATION = frozenset(string.punctuation)  # the ASCII punctuation, backslash included


def _one_line(text: str) -> str:
    """``text`` with every whitespace or control character replaced by a space."""
    return "".join(
        " " if char.isspace() or unicodedata.category(char) == "Cc" else char for char in text
    )


def rst_text(value: object) -> str:
    """``value`` as reStructuredText that docutils shows as exactly this text, on one line."""
    return "".join(f"\\{char}" if char in _PUNCTUATION else char for char in _one_line(str(value)))


def rst_literal(value: object) -> str:
    """``value`` as monospace reStructuredText (a ``:literal:`` role) showing exactly this
    text; leading and trailing whitespace, which inline markup cannot hold, is dropped.
    Empty text gives an empty string."""
    text = _one_line(str(value)).strip()
    return f":literal:`{rst_text(text)}`" if text else ""


def json_file(path: object) -> object:
    """The JSON document at ``path`` (relative to the working directory), None if there is
    none: how the report's landing page reads results, e.g. the held-out accuracy."""
    import json
    from pathlib import Path

    try:
        return json.loads(Path(str(path)).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


JINJA_FILTERS = {"rst": rst_text, "rst_literal": rst_literal, "json_file": json_file}
