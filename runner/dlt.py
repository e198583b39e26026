"""DLT templates (India): reading the portal's template export.

``load_templates(path)`` reads the CSV a DLT portal exports and returns a ``TemplateFile``: the
templates by id, and a ``Diagnostic`` for every problem, each naming the file, the line and the
column. Portals spell their columns differently, so names are matched without regard to case,
spaces, ``_`` and ``-``:

=========  =====================================================================
id         ``template_id``, ``Template ID``, ``TEMPLATE_ID``, ``DLT Template ID``, ``ct_id``
content    ``content``, ``Template Content``, ``template_content``, ``message``, ``template``
type       ``type``, ``Template Type``, ``category``
headers    ``headers``, ``Header``, ``Headers``, ``Sender ID``, ``header_name`` (split by , ; |)
status     ``status``, ``Status``, ``template_status``, ``approval_status``
=========  =====================================================================

Only Approved or Active templates may be used; a file without a status column is taken as all
approved. The file is read once per path and modification time.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from runner.csvfile import SURROGATE, blank, csv_problem, open_csv
from runner.errors import Diagnostic, display_path, error, warning

__all__ = ["Category", "DltTemplate", "TemplateFile", "load_templates"]

Category = str  # "promotional", "transactional", "service implicit", "service explicit", ""

_COLUMNS: dict[str, tuple[str, ...]] = {
    "id": ("templateid", "dlttemplateid", "ctid", "id", "contenttemplateid"),
    "content": ("content", "templatecontent", "message", "template", "templatetext", "text"),
    "type": ("type", "templatetype", "category", "contenttype", "templatecategory"),
    "headers": ("headers", "header", "senderid", "senderids", "headername", "sender",
                "headernames"),
    "status": ("status", "templatestatus", "approvalstatus", "state"),
}
_CATEGORIES = {"promotional": "Promotional", "transactional": "Transactional",
               "serviceimplicit": "Service Implicit", "serviceexplicit": "Service Explicit"}
_USABLE = {"approved", "active"}
_SPLIT = re.compile(r"[,;|]")
_SCIENTIFIC = re.compile(r"[0-9](?:\.[0-9]+)?[eE]\+?[0-9]+")


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name).lower()


@dataclass(frozen=True, slots=True)
class DltTemplate:
    id: str
    content: str
    category: str  # "Promotional", "Transactional", "Service Implicit", "Service Explicit", ""
    headers: tuple[str, ...]  # empty when the file does not list them
    status: str  # as written; "" when the file has no status column
    line: int  # where the template's row starts in the file

    @property
    def usable(self) -> bool:
        return not self.status or self.status.strip().lower() in _USABLE


@dataclass(frozen=True, slots=True)
class TemplateFile:
    path: Path
    shown: str
    templates: dict[str, DltTemplate]
    diagnostics: tuple[Diagnostic, ...]  # about the file as a whole, or rows without an id
    has_headers: bool = False  # the file has a headers column
    has_type: bool = False
    # Problems of one template's row, by id: told only when a campaign uses that template.
    row_problems: dict[str, tuple[Diagnostic, ...]] = field(default_factory=dict)


def load_templates(path: Path) -> TemplateFile:
    """The templates in the export at ``path`` (see the module doc); never raises for bad input."""
    try:
        stat = path.stat()
        key: tuple[int, int] = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        key = (0, 0)
    return _load(path.resolve() if path.exists() else path, display_path(path), key)


@lru_cache(maxsize=16)
def _load(path: Path, shown: str, _stamp: tuple[int, int]) -> TemplateFile:
    opened = open_csv(path, shown, what="DLT templates file")
    if isinstance(opened, Diagnostic):
        return TemplateFile(path, shown, {}, (opened,))
    with opened.file:
        found: list[Diagnostic] = list(opened.warnings)
        where = _find_columns(opened.columns)
        missing = [what for what in ("id", "content") if what not in where]
        if missing:
            names = " and ".join(f"a template {w} column" for w in missing)
            found.append(error(
                f"{shown}: the header has no {names} (found: {', '.join(opened.columns)}); "
                "expected e.g. 'Template ID' and 'Template Content'", shown, opened.header_end))
            return TemplateFile(path, shown, {}, tuple(found))
        templates: dict[str, DltTemplate] = {}
        per_row: dict[str, list[Diagnostic]] = {}
        reader, ncols, prev_end = opened.reader, len(opened.columns), opened.header_end
        try:
            for rec in reader:
                start, prev_end = prev_end + 1, reader.line_num
                if not rec or blank(rec):
                    continue
                mine: list[Diagnostic] = []
                template = _template(rec, ncols, start, where, opened.columns, shown, found, mine)
                if template is None:
                    continue
                if mine:
                    per_row.setdefault(template.id, []).extend(mine)
                earlier = templates.get(template.id)
                if earlier is not None:
                    found.append(warning(
                        f"template {template.id} appears again (first on line {earlier.line});"
                        " the first is used", shown, start, where["id"] + 1,
                        opened.columns[where["id"]]))
                    continue
                templates[template.id] = template
        except csv.Error as exc:
            found.append(error(f"{shown}: {csv_problem(exc, prev_end + 1, reader.line_num)}",
                               shown, prev_end + 1))
    return TemplateFile(path, shown, templates, tuple(found), "headers" in where, "type" in where,
                        {k: tuple(v) for k, v in per_row.items()})


def _find_columns(columns: tuple[str, ...]) -> dict[str, int]:
    where: dict[str, int] = {}
    normed = [_norm(c) for c in columns]
    for what, names in _COLUMNS.items():
        for name in names:  # in order of preference: "template id" before a bare "id"
            if name in normed:
                where[what] = normed.index(name)
                break
    return where


def _template(rec: list[str], ncols: int, line: int, where: dict[str, int],
              columns: tuple[str, ...], shown: str, found: list[Diagnostic],
              mine: list[Diagnostic]) -> DltTemplate | None:
    if len(rec) != ncols:
        found.append(warning(f"row has {len(rec)} fields, the header has {ncols}: this row is "
                             "not read", shown, line))
        return None
    if SURROGATE.search("".join(rec)):
        found.append(warning("not UTF-8 text: this row is not read; save the file as CSV UTF-8",
                             shown, line))
        return None

    def cell(what: str) -> str:
        at = where.get(what)
        return rec[at].strip() if at is not None else ""

    def problem(what: str, message: str, *, severity: str = "error", of_file: bool = False
                ) -> None:
        at = where[what]
        make = error if severity == "error" else warning
        (found if of_file else mine).append(make(message, shown, line, at + 1, columns[at]))

    template_id = cell("id")
    if not template_id:
        problem("id", f"column '{columns[where['id']]}' is empty: this row is not read",
                severity="warning", of_file=True)
        return None
    if _SCIENTIFIC.fullmatch(template_id):
        problem("id", f"template id '{template_id}' was rounded by a spreadsheet: export the "
                      "file again with the id column as text", severity="warning", of_file=True)
        return None
    if not template_id.isdigit():
        problem("id", f"template id '{template_id}' is not all digits", severity="warning")
    content = rec[where["content"]]
    if not content.strip():
        problem("content", f"template {template_id}: column '{columns[where['content']]}' is "
                           "empty", severity="warning")
    category = cell("type")
    named = _CATEGORIES.get(_norm(category).replace("-", ""), "") if category else ""
    if category and not named:
        problem("type", f"template {template_id}: type '{category}' is not one of "
                        f"{', '.join(_CATEGORIES.values())}", severity="warning")
    headers = tuple(h.strip() for h in _SPLIT.split(cell("headers")) if h.strip())
    return DltTemplate(template_id, content, named, headers, cell("status"), line)
