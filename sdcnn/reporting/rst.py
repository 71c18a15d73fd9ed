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

Snakemake (9.27, ``snakemake/report/__init__.py``) renders captions with a
``jinja2.Environment`` it creates inside ``auto_report``, with no way to add filters,
and that Environment copies ``jinja2.defaults.DEFAULT_FILTERS`` when it is created
(``jinja2/environment.py``).  :func:`register_jinja_filters`, called by the Snakefile
while Snakemake parses it, adds the two filters there, before the report is built.
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


def register_jinja_filters() -> None:
    """Make ``rst`` and ``rst_literal`` filters of every Jinja environment created from
    now on in this process, the report's among them (see the module docstring)."""
    from jinja2.defaults import DEFAULT_FILTERS

    DEFAULT_FILTERS.update(JINJA_FILTERS)


class ReportParam(list):  # type: ignore[type-arg]
    """A list param that Snakemake's report shows as one short line.

    Snakemake (9.27, ``snakemake/report/__init__.py``, ``FileRecord``) writes every param
    of the job behind a report item into that item, with ``str()``: a figures job's prompt
    list (a shard's thousands of prompts) would be copied into each of its charts and
    contact sheets (the report's size at scale: benchmarks/RESULTS.md §10).  ``str()`` of
    this list says only how long it is; its ``repr()``, which Snakemake's re-run check
    compares (``persistence._serialize_param_builtin``), is the full list's, so a change of
    any element still re-runs the job; and it pickles as a plain list, so a job's script
    reads a list without importing this module.
    """

    def __str__(self) -> str:
        return f"[{len(self)} items]"

    def __format__(self, spec: str) -> str:  # f"{param}", as Snakemake writes it
        return format(str(self), spec)

    def __reduce__(self) -> tuple[type, tuple[list]]:  # type: ignore[type-arg]
        return (list, (list(self),))


def report_param(function):  # noqa: ANN001, ANN201 (a params: function of wildcards)
    """``function`` (a params: function returning a list) made to return a ReportParam."""

    def wrapped(wildcards):  # noqa: ANN001, ANN202
        return ReportParam(function(wildcards))

    return wrapped
