"""Names that become folders, and paths that must stay inside a folder.

A dataset name (or field name) becomes a folder wherever the package picks a
default location (``<fo.config.default_dataset_dir>/<name>/tiles``, the
semantic PNGs, mask files). A name such as ``../../x`` would then write
outside FiftyOne's dataset folder, so such names are refused there, with a
message saying how to choose the folder explicitly.

No FiftyOne import here.
"""

from __future__ import annotations

import os

#: characters a folder-name component may not hold
_SEPARATORS = ("/", "\\", "\0")


def safe_folder_name(name, what: str = "dataset name") -> str:
    """``name`` when it can be one folder-name component, else an error.

    Refused: empty names, ``.`` and ``..``, and names holding a path
    separator (``/`` or ``\\``) or a NUL byte.

    Raises:
        ValueError: naming the value and what to do instead
    """
    text = "" if name is None else str(name)
    if not text.strip() or text in (".", "..") or any(c in text for c in _SEPARATORS):
        raise ValueError(
            "%s %r cannot be used as a folder name (it is empty, '.' or '..', or holds a path "
            "separator), so it would write outside the dataset folder; rename it, or give the "
            "folder explicitly (tile_dir=, seg_dir=, mask_dir=)" % (what, text))
    return text


def is_inside(base: str, path: str) -> bool:
    """Whether ``path`` is ``base`` or lies below it (after resolving links
    and ``..``)."""
    base = os.path.realpath(os.fspath(base))
    path = os.path.realpath(os.fspath(path))
    return path == base or path.startswith(base.rstrip(os.sep) + os.sep)


def folder_under(base: str, *names: str, what: str = "dataset name") -> str:
    """``base/<name>/<name>...``, each name checked with :func:`safe_folder_name`.

    Raises:
        ValueError: for an unsafe name, or a result outside ``base``
    """
    parts = [safe_folder_name(n, what if i == 0 else "name") for i, n in enumerate(names)]
    path = os.path.join(os.path.abspath(os.fspath(base)), *parts)
    if not is_inside(base, path):  # e.g. base/<name> is a link leading elsewhere
        raise ValueError("%s resolves outside %s; give the folder explicitly" % (path, base))
    return path


def atomic_write_text(path: str, text: str) -> None:
    """Writes ``text`` to ``path`` through a temporary name and a rename, so
    ``path`` never holds a partial file."""
    tmp = "%s.tmp-%d" % (path, os.getpid())
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def walk_files(root: str, suffix: str = ""):
    """The files below ``root`` whose names end with ``suffix``, sorted.

    Directory links are not followed (``os.walk``'s default), so a link
    leading back up the tree (``loop -> .``, ``up -> ..``) neither loops nor
    lists a file twice; a link to a file is listed where it is.
    """
    out = []
    for dirpath, dirnames, filenames in os.walk(os.fspath(root)):
        dirnames.sort()
        out.extend(os.path.join(dirpath, f) for f in filenames if f.endswith(suffix))
    return sorted(out)

