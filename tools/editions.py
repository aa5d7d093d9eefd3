"""The Japanese edition (``make editions``): the notebooks', and the library's messages.
A maintainer's tool, not part of the library.

The English notebooks (``notebooks/*.ipynb``, ``solutions/*.ipynb``) are the one source.
Their code cells are shared by both editions; each markdown cell's Japanese text is the
translation of its English text in a gettext catalog per notebook
(``<dir>/locale/ja/<notebook>.po``, read and written with Babel, as ``pybabel update``
does). Building writes ``<dir>/ja/<notebook>.ipynb``: the source's cells with the markdown
translated and ``lang = "ja"`` in the parameters cell; the outputs of a code cell whose
source did not change are kept (``tools/refresh_outputs.py`` makes them)::

    .venv/bin/python tools/editions.py update   # new or changed English text into the catalogs
    .venv/bin/python tools/editions.py build    # the Japanese notebooks from the catalogs
    .venv/bin/python tools/editions.py check    # exit 1 if a catalog or a notebook is behind

A changed English text comes back from ``update`` as a fuzzy entry (the old translation
kept as a hint) and ``build`` refuses to use it until a translator has checked it.

The library's own messages (``_("...")`` in ``handson/``, see ``handson/i18n.py``) go the
same way: ``update`` extracts them with Babel into ``handson/locale/ja/LC_MESSAGES/
handson.po`` and ``build`` compiles ``handson.mo`` from it, which ``gettext`` reads.
"""

from __future__ import annotations

import argparse
import copy
import io
import os
import re
from pathlib import Path
from typing import Any

import nbformat
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

from handson import course

ROOT = Path(__file__).resolve().parents[1]
SOURCE_DIRS = (course.NOTEBOOK_DIR, course.SOLUTIONS_DIR)
LANG = "ja"
# Folders the notebooks open by a relative path (the instructor's roster): the edition's
# folder links to the source's, so a notebook runs the same from either.
SHARED = ("rosters",)
LIBRARY = ROOT / "handson"
LIBRARY_PO = LIBRARY / "locale" / LANG / "LC_MESSAGES" / "handson.po"
# The sandbox speaks as AWS does, in English: only the library's own words are translated.
# The library's own messages, and the sandbox's lifecycle messages (the sandbox's AWS
# emulation speaks as AWS does: English).
LIBRARY_METHODS = [
    ("sandbox/config.py", "python"),
    ("sandbox/lifecycle.py", "python"),
    ("sandbox/**.py", "ignore"),
    ("**.py", "python"),
]
# The parameters cell's language line, the English edition's: the other gets its own.
LANG_LINE = re.compile(r'^lang = "en"(.*)$', re.MULTILINE)


class EditionError(Exception):
    """A catalog that can't build its notebook (untranslated or unchecked text)."""


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


def sources() -> list[Path]:
    return [path for folder in SOURCE_DIRS for path in sorted(folder.glob("*.ipynb"))]


def catalog_path(source: Path) -> Path:
    return source.parent / "locale" / LANG / f"{source.stem}.po"


def edition_path(source: Path) -> Path:
    return course.edition_path(source, LANG)


def _texts(notebook: Any) -> list[str]:
    """The notebook's markdown texts, in order, each once."""
    seen: dict[str, None] = {}
    for cell in notebook.cells:
        if cell.cell_type == "markdown" and cell.source.strip():
            seen.setdefault(cell.source, None)
    return list(seen)


def _read(path: Path) -> Catalog:
    with path.open("rb") as handle:
        return read_po(handle, locale=LANG)


def _write(catalog: Catalog, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        write_po(handle, catalog, width=100, omit_header=False, include_previous=True)


def updated_catalog(source: Path) -> Catalog:
    """The notebook's catalog brought up to its English texts: new texts untranslated,
    changed ones fuzzy with the old translation, gone ones dropped."""
    texts = _texts(nbformat.read(source, as_version=4))
    return _brought_up(catalog_path(source), source.name, {text: [] for text in texts})


def _brought_up(
    path: Path, name: str, messages: dict[str, list[tuple[str, int]]], *, code: bool = False
) -> Catalog:
    """The catalog at ``path`` (a new one for ``name`` if none) updated to ``messages``
    (text -> where it is), as ``pybabel update`` does; ``code`` marks ``{}`` formats."""
    catalog = _read(path) if path.exists() else _new_catalog(name)
    # The template's date becomes the catalog's: the catalog's own, so that an update
    # with no new text changes nothing.
    template = Catalog(locale=None, fuzzy=False, creation_date=catalog.creation_date)
    for message, places in messages.items():
        flags = ("python-brace-format",) if code and "{" in message else ()
        template.add(message, locations=places, flags=flags)
    catalog.update(template, update_header_comment=False)
    catalog.obsolete.clear()
    return catalog


def _checked(path: Path, catalog: Catalog) -> Catalog:
    """``catalog`` (the one at ``path``, brought up to date) if it translates everything."""
    if untranslated := missing(catalog):
        raise EditionError(
            f"{_shown(path)}: {len(untranslated)} text(s) untranslated or unchecked "
            f"(fuzzy), first {untranslated[0]!r}; translate them, then build again."
        )
    return catalog


def _new_catalog(name: str) -> Catalog:
    what = "messages" if name == "handson" else "markdown"
    return Catalog(
        locale=LANG,
        header_comment=f"# Japanese text of the {what} of {name} (tools/editions.py).",
        project="handson",
        version="1",
        copyright_holder="the handson authors",
        msgid_bugs_address="",
        last_translator="the handson authors",
        language_team="Japanese",
        fuzzy=False,
    )


def library_messages() -> dict[str, list[tuple[str, int]]]:
    """Each message the library marks with ``_()``, and where it is (file, line)."""
    found: dict[str, list[tuple[str, int]]] = {}
    for filename, line, message, _comments, _context in extract_from_dir(
        LIBRARY, LIBRARY_METHODS, keywords={"_": None, "N_": None}
    ):
        found.setdefault(str(message), []).append((f"handson/{filename}", line))
    return found


def updated_library_catalog() -> Catalog:
    """The library's catalog brought up to the messages in its code (as for a notebook)."""
    return _brought_up(LIBRARY_PO, "handson", library_messages(), code=True)


def compiled_library() -> bytes:
    """The ``.mo`` of the library's catalog (refused while a message is untranslated)."""
    buffer = io.BytesIO()
    write_mo(buffer, _checked(LIBRARY_PO, updated_library_catalog()))
    return buffer.getvalue()


def update() -> list[Path]:
    """Write each notebook's updated catalog, and the library's; those that changed."""
    changed = []
    catalogs = [(catalog_path(source), updated_catalog(source)) for source in sources()]
    for path, catalog in [*catalogs, (LIBRARY_PO, updated_library_catalog())]:
        before = path.read_bytes() if path.exists() else b""
        _write(catalog, path)
        if path.read_bytes() != before:
            changed.append(path)
    return changed


def missing(catalog: Catalog) -> list[str]:
    """The English texts the catalog has no checked translation of (first line each)."""
    return [
        str(message.id).splitlines()[0]
        for message in catalog
        if message.id and (not message.string or message.fuzzy)
    ]


def built(source: Path) -> Any:
    """The Japanese notebook of ``source``: markdown from its catalog, code cells as in
    the source (the parameters cell set to ``lang = "ja"``), outputs kept from the built
    notebook where a code cell's source is unchanged (else none)."""
    notebook = nbformat.read(source, as_version=4)
    path = catalog_path(source)
    if not path.exists():
        raise EditionError(f"{source.name}: no catalog {path}; run `tools/editions.py update`.")
    catalog = _checked(path, updated_catalog(source))
    previous = edition_path(source)
    kept = nbformat.read(previous, as_version=4).cells if previous.exists() else []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "markdown" and cell.source.strip():
            cell.source = str(catalog[cell.source].string)
        elif cell.cell_type == "code":
            if "parameters" in cell.metadata.get("tags", []):
                cell.source = LANG_LINE.sub(rf'lang = "{LANG}"\1', cell.source)
            old = kept[index] if index < len(kept) else None
            if old is not None and old.cell_type == "code" and old.source == cell.source:
                cell.outputs = copy.deepcopy(old.outputs)
                cell.execution_count = old.execution_count
            else:  # the English run's outputs are not this edition's: refresh_outputs makes them
                cell.outputs = []
                cell.execution_count = None
    if kept:
        notebook.metadata = copy.deepcopy(nbformat.read(previous, as_version=4).metadata)
    return notebook


def _links() -> list[tuple[Path, Path]]:
    """(link, target) for each shared folder of each edition folder."""
    return [
        (folder / LANG / name, Path("..") / name)
        for folder in SOURCE_DIRS
        for name in SHARED
        if (folder / name).is_dir()
    ]


def build() -> list[Path]:
    """Write every Japanese notebook, shared-folder link and the library's compiled
    catalog; those that changed."""
    changed = []
    compiled, mo = compiled_library(), LIBRARY_PO.with_suffix(".mo")
    if not mo.is_file() or mo.read_bytes() != compiled:
        mo.write_bytes(compiled)
        changed.append(mo)
    for link, target in _links():
        if not link.is_symlink() or Path(os.readlink(link)) != target:
            link.parent.mkdir(parents=True, exist_ok=True)
            link.unlink(missing_ok=True)
            link.symlink_to(target, target_is_directory=True)
            changed.append(link)
    for source in sources():
        path = edition_path(source)
        notebook = built(source)
        before = path.read_text() if path.exists() else ""
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, path)
        if path.read_text() != before:
            changed.append(path)
    return changed


def stale() -> list[str]:
    """What is behind its source: catalogs missing texts, Japanese notebooks not built."""
    problems = [
        f"{_shown(link)}: not a link to {target}"
        for link, target in _links()
        if not link.is_symlink() or Path(os.readlink(link)) != target
    ]
    mo = LIBRARY_PO.with_suffix(".mo")
    if not LIBRARY_PO.exists() or {str(m.id) for m in _read(LIBRARY_PO) if m.id} != set(
        library_messages()
    ):
        problems.append(f"{_shown(LIBRARY_PO)}: not updated from the library's messages")
    else:
        try:
            if not mo.is_file() or mo.read_bytes() != compiled_library():
                problems.append(f"{_shown(mo)}: not compiled from {LIBRARY_PO.name}")
        except EditionError as error:
            problems.append(str(error))
    for source in sources():
        path = catalog_path(source)
        if not path.exists() or {str(m.id) for m in _read(path) if m.id} != set(
            _texts(nbformat.read(source, as_version=4))
        ):
            problems.append(f"{path.relative_to(ROOT)}: not updated from {source.name}")
            continue
        try:
            wanted = built(source)
        except EditionError as error:
            problems.append(str(error))
            continue
        edition = edition_path(source)
        have = nbformat.read(edition, as_version=4) if edition.exists() else None
        if have is None or [(c.cell_type, c.source) for c in have.cells] != [
            (c.cell_type, c.source) for c in wanted.cells
        ]:
            problems.append(f"{edition.relative_to(ROOT)}: not built from {source.name}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["update", "build", "check"])
    args = parser.parse_args(argv)
    try:
        if args.command == "update":
            for path in update():
                print(f"updated {path.relative_to(ROOT)}")
        elif args.command == "build":
            for path in build():
                print(f"built {path.relative_to(ROOT)}")
        else:
            problems = stale()
            for problem in problems:
                print(problem)
            return 1 if problems else 0
    except EditionError as error:
        print(error)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
