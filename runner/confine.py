"""Where a campaign's files may be: inside the campaign's root.

A campaign file names other files (``recipients.source``, ``recipients.exclude``, ``report`` and
``dlt.templates``). Each must stay inside the campaign's root: the git work tree that holds the
file (the nearest folder above it with a ``.git`` entry, a folder or a worktree's file), else the
file's own folder. An absolute path, a ``..`` or a symlink that leads out of it is an error at
its line: otherwise ``source: ../.git/config`` (or a ``.env``) would have validate quote another
file into a public CI log. ``--report`` on the command line is the user's own choice and may be
anywhere; it is not checked here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runner.errors import Diagnostic, display_path, error, quote
from runner.yamlload import KeyPath, Marks, dotted


def campaign_root(campaign_file: Path) -> Path:
    """The git work tree holding ``campaign_file``, else its folder (resolved)."""
    folder = campaign_file.absolute().parent.resolve()
    for candidate in (folder, *folder.parents):
        if os.path.lexists(candidate / ".git"):
            return candidate
    return folder


def path_values(data: dict[str, Any]) -> Iterator[tuple[KeyPath, str]]:
    """Every file a campaign's data names, with where it is named."""
    recipients = data.get("recipients")
    if isinstance(recipients, dict):
        source = recipients.get("source")
        if isinstance(source, str):
            yield ("recipients", "source"), source
        exclude = recipients.get("exclude")
        if isinstance(exclude, str):
            yield ("recipients", "exclude"), exclude
        elif isinstance(exclude, list):
            for i, item in enumerate(exclude):
                if isinstance(item, str):
                    yield ("recipients", "exclude", i), item
    dlt = data.get("dlt")
    if isinstance(dlt, dict) and isinstance(dlt.get("templates"), str):
        yield ("dlt", "templates"), dlt["templates"]
    report = data.get("report")
    if isinstance(report, str):
        yield ("report",), report


def outside_root(data: dict[str, Any], campaign_file: Path, marks: Marks, shown: str
                 ) -> list[Diagnostic]:
    """An error for each path in ``data`` that leads out of the campaign's root."""
    root = campaign_root(campaign_file)
    folder = campaign_file.absolute().parent
    found = []
    for key_path, value in path_values(data):
        problem = _problem(value, folder, root)
        if problem is not None:
            line, col = marks.at(key_path) or (1, 1)
            found.append(error(f"{dotted(key_path)} {quote(value)} {problem}", shown, line, col,
                               dotted(key_path), code="path-outside-root"))
    return found


def _problem(value: str, folder: Path, root: Path) -> str | None:
    where = f"the campaign's root {display_path(root)}"
    if "\x00" in value:
        return "holds a NUL character"
    written = Path(value).expanduser()
    if written.is_absolute():
        return (f"is an absolute path: files a campaign names must be inside {where}, "
                "written relative to the campaign file")
    try:
        real = (folder / written).resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return "cannot be resolved (a symlink loop?)"
    if not real.is_relative_to(root):
        how = "leads" if ".." in written.parts else "is a symlink that leads"
        return (f"{how} outside {where}: files a campaign names must be inside it "
                "(--report on the command line may be anywhere)")
    return None
