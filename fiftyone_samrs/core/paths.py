"""Names that become folders, paths that must stay inside a folder, and
files written whole or not at all (:func:`atomic_write_bytes`).

A dataset name (or field name) becomes a folder wherever the package picks a
default location (``<fo.config.default_dataset_dir>/<name>/tiles``, the
semantic PNGs, mask files). A name such as ``../../x`` would then write
outside FiftyOne's dataset folder, so such names are refused there, with a
message saying how to choose the folder explicitly.

No FiftyOne import here.
"""

from __future__ import annotations

import errno
import os
import threading

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


def is_inside(base: str, path: str, follow: bool = True) -> bool:
    """Whether ``path`` is ``base`` or lies below it (after resolving links
    and ``..``; with ``follow=False`` a link at ``path`` is judged by where
    it lies, not where it leads: :func:`own_location`)."""
    base = os.path.realpath(os.fspath(base))
    path = os.path.realpath(os.fspath(path)) if follow else own_location(path)
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


#: errors that mean "no room": named as such in messages
_NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def atomic_write_bytes(path: str, data: bytes, fsync: bool = False) -> None:
    """Writes ``data`` to ``path`` whole or not at all.

    The bytes go to a temporary name in the same folder, every ``write`` is
    checked for its length (a full disk fails here, not silently), the file
    is flushed to disk when ``fsync``, its size is checked, and only then is
    it renamed over ``path``; so ``path`` holds the old file or the whole new
    one, never a part (also when the process is killed).

    Raises:
        OSError: naming ``path`` (and the disk being full where it is); the
            temporary file is removed and ``path`` is left as it was
    """
    path = os.fspath(path)
    tmp = _temporary_name(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            _write_all(fd, memoryview(data))
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        size = os.path.getsize(tmp)
        if size != len(data):
            raise OSError(errno.EIO, "wrote %d of %d bytes" % (size, len(data)))
        os.replace(tmp, path)
    except OSError as e:
        _discard(tmp)
        raise write_error(e, path) from e


def atomic_copy(src: str, dst: str) -> None:
    """Copies a file through a temporary name and a rename, as
    :func:`atomic_write_bytes` writes: ``dst`` is never a cut copy (a full
    disk, a kill); a failure names ``dst``."""
    import shutil

    tmp = _temporary_name(dst)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except OSError as e:
        _discard(tmp)
        raise write_error(e, dst, "could not copy %s" % src) from e


def _temporary_name(path: str) -> str:
    return "%s.partial-%d-%d" % (path, os.getpid(), threading.get_ident())


def _discard(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def write_error(error: OSError, path: str, doing: str = "could not write the file") -> OSError:
    """``error`` as one line naming ``path`` (and the disk being full where it is)."""
    return OSError(error.errno, "%s: %s (%s)%s" % (
        path, doing, error.strerror or error,
        "; is the disk full?" if error.errno in _NO_ROOM else ""))


def _write_all(fd: int, data: memoryview) -> None:
    done = 0
    while done < len(data):
        n = os.write(fd, data[done:])
        if n <= 0:
            raise OSError(errno.ENOSPC, "short write")
        done += n


def atomic_write_text(path: str, text: str, fsync: bool = False) -> None:
    """:func:`atomic_write_bytes` of ``text`` in UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync)


def write_image(path: str, image, params=()) -> None:
    """Encodes ``image`` in memory (OpenCV, the format of ``path``'s
    extension) and writes it with :func:`atomic_write_bytes`; the parent
    folder is created. (``cv2.imwrite`` reports success when the disk fills
    as the file closes.)

    Raises:
        OSError: naming ``path``, when the image cannot be encoded or written
    """
    import cv2
    import numpy as np

    path = os.fspath(path)
    try:
        ok, encoded = cv2.imencode(os.path.splitext(path)[1] or ".png",
                                   np.ascontiguousarray(image), list(params))
    except cv2.error as e:
        raise OSError(errno.EINVAL, "%s: cannot encode the image: %s"
                      % (path, str(e).strip().splitlines()[-1])) from e
    if not ok:
        raise OSError(errno.EINVAL, "%s: OpenCV could not encode the image" % path)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    atomic_write_bytes(path, encoded.tobytes())


#: a PNG's first bytes, and its last 12 (the IEND chunk)
_PNG_HEAD = b"\x89PNG\r\n\x1a\n"
_PNG_TAIL = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def png_complete(path: str) -> bool:
    """Whether ``path`` is a whole PNG file: its signature first and its
    IEND chunk last (an empty or cut file is not). Reads 20 bytes."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            f.seek(0, os.SEEK_END)
            if f.tell() < 8 + 25 + 12:  # signature, IHDR, IEND
                return False
            f.seek(-12, os.SEEK_END)
            return head == _PNG_HEAD and f.read(12) == _PNG_TAIL
    except OSError:
        return False


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



def own_location(path: str) -> str:
    """``path`` with its folders resolved but not its last component: where
    a link itself lies (not where it leads), for deciding whether a file
    (or a link) is inside a folder."""
    path = os.path.abspath(os.fspath(path))
    return os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
