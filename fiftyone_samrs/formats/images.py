"""Image files: sizes from headers, a cheap decodability check, decoding, and
image lookup by file stem.

Sizes are read from the file header by small readers for PNG, JPEG, BMP and
TIFF (BigTIFF too), without decoding pixels and without PIL's 179-megapixel
"decompression bomb" refusal: DOTA v2.0 has 20000x20000 images. Other
formats fall back to PIL. The only size limit is :data:`MAX_IMAGE_PIXELS`
(``SAMRS_MAX_IMAGE_PIXELS`` in the environment, or the ``max_pixels``
argument), which by default allows 2**30 pixels, OpenCV's own decoding limit.

No FiftyOne import here.
"""

from __future__ import annotations

import os
import struct
import zlib
from typing import BinaryIO, Dict, Optional, Tuple

import numpy as np

from fiftyone_samrs.core.limits import (  # noqa: F401
    MAX_IMAGE_PIXELS,
    MAX_PIXELS_ENV,
    max_image_pixels,
)
from fiftyone_samrs.core.paths import atomic_write_bytes
from fiftyone_samrs.core.records import FormatError, ImportReport

#: file extensions recognised as images (compared case-insensitively)
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")



class _Truncated(Exception):
    pass


def _read(f: BinaryIO, n: int) -> bytes:
    b = f.read(n)
    if len(b) != n:
        raise _Truncated()
    return b


def _png_size(f: BinaryIO) -> Tuple[int, int]:
    f.seek(8)
    length, ctype = struct.unpack(">I4s", _read(f, 8))
    if ctype != b"IHDR" or length < 8:
        raise ValueError("PNG does not start with an IHDR chunk")
    return struct.unpack(">II", _read(f, 8))


#: JPEG start-of-frame markers (baseline, progressive, lossless ...): not
#: DHT (C4), JPG (C8) or DAC (CC)
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(f: BinaryIO) -> Tuple[int, int]:
    f.seek(2)
    while True:
        b = _read(f, 1)
        if b != b"\xff":
            raise ValueError("JPEG marker expected, got byte 0x%02x" % b[0])
        marker = _read(f, 1)[0]
        while marker == 0xFF:  # fill bytes
            marker = _read(f, 1)[0]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            continue  # standalone markers
        if marker in (0xD9, 0xDA):
            raise ValueError("JPEG has no frame header before its image data")
        (length,) = struct.unpack(">H", _read(f, 2))
        if length < 2:
            raise ValueError("JPEG segment of length %d" % length)
        if marker in _SOF:
            _precision, height, width = struct.unpack(">BHH", _read(f, 5))
            if height == 0:
                raise ValueError("JPEG height given later by a DNL marker")
            return width, height
        f.seek(length - 2, os.SEEK_CUR)


def _bmp_size(f: BinaryIO) -> Tuple[int, int]:
    f.seek(14)
    (dib,) = struct.unpack("<I", _read(f, 4))
    if dib == 12:  # OS/2 BITMAPCOREHEADER
        width, height = struct.unpack("<HH", _read(f, 4))
    elif dib >= 16:
        width, height = struct.unpack("<ii", _read(f, 8))
    else:
        raise ValueError("BMP header of size %d" % dib)
    return width, abs(height)  # a negative height means top-down rows


_TIFF_TYPES = {3: ("H", 2), 4: ("I", 4), 16: ("Q", 8)}  # SHORT, LONG, LONG8


def _tiff_size(f: BinaryIO) -> Tuple[int, int]:
    f.seek(0)
    head = _read(f, 4)
    end = "<" if head[:2] == b"II" else ">"
    (magic,) = struct.unpack(end + "H", head[2:])
    if magic == 42:
        (ifd,) = struct.unpack(end + "I", _read(f, 4))
        count_fmt, entry_fmt, value_size = "H", "HHI", 4
    elif magic == 43:  # BigTIFF
        _bytesize, _zero, ifd = struct.unpack(end + "HHQ", _read(f, 12))
        count_fmt, entry_fmt, value_size = "Q", "HHQ", 8
    else:
        raise ValueError("not a TIFF file (magic %d)" % magic)
    f.seek(ifd)
    (n,) = struct.unpack(end + count_fmt, _read(f, struct.calcsize(end + count_fmt)))
    if n > 4096:
        raise ValueError("TIFF directory with %d entries" % n)
    found: Dict[int, int] = {}
    entry_size = struct.calcsize(end + entry_fmt) + value_size
    for _ in range(n):
        entry = _read(f, entry_size)
        tag, typ, _count = struct.unpack(end + entry_fmt, entry[: entry_size - value_size])
        if tag in (256, 257) and typ in _TIFF_TYPES:
            fmt, size = _TIFF_TYPES[typ]
            (found[tag],) = struct.unpack(end + fmt, entry[entry_size - value_size:][:size])
        if 256 in found and 257 in found:
            return found[256], found[257]
    raise ValueError("TIFF directory has no ImageWidth/ImageLength")


def _sniff(head: bytes):
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG", _png_size
    if head.startswith(b"\xff\xd8"):
        return "JPEG", _jpeg_size
    if head.startswith(b"BM"):
        return "BMP", _bmp_size
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF", _tiff_size
    return None, None


def _pil_size(path: str) -> Tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return img.size
    except Image.DecompressionBombError:
        raise FormatError(path, "image over PIL's size limit, in a format without a header "
                          "reader here (convert it to PNG or TIFF)") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, struct.error) as e:
        raise FormatError(path, "unreadable image (%s)" % e) from None


def image_size(path, max_pixels: Optional[int] = None) -> Tuple[int, int]:
    """Reads ``(width, height)`` from an image header, without decoding pixels.

    PNG, JPEG, BMP and TIFF headers are read directly (the format is told
    by the file's first bytes, not its extension), others through PIL.
    There is no PIL size limit; the limit is ``max_pixels`` (see
    :func:`max_image_pixels`). A valid header does not prove the pixels
    decode: see :func:`check_decodable`.

    Args:
        path: the image file
        max_pixels: largest ``width * height`` accepted; None for
            ``$SAMRS_MAX_IMAGE_PIXELS`` or :data:`MAX_IMAGE_PIXELS`

    Returns:
        ``(width, height)`` in pixels

    Raises:
        FormatError: if the file is missing, not a readable image, has an
            empty size, or is larger than the limit (the message says how to
            raise it)
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FormatError(path, "image file not found")
    try:
        with open(path, "rb") as f:
            head = f.read(16)
            kind, reader = _sniff(head)
            if reader is not None:
                width, height = reader(f)
    except _Truncated:
        raise FormatError(path, "unreadable image (truncated %s header)" % kind) from None
    except (ValueError, struct.error) as e:
        raise FormatError(path, "unreadable image (%s: %s)" % (kind, e)) from None
    except OSError as e:
        raise FormatError(path, "cannot read image (%s)" % e) from None
    if reader is None:
        width, height = _pil_size(path)
    if width <= 0 or height <= 0:
        raise FormatError(path, "image has an empty size %dx%d" % (width, height))
    limit = max_image_pixels(max_pixels)
    if width * height > limit:
        raise FormatError(
            path,
            "image is %dx%d = %d pixels, over the limit of %d (set %s or pass max_pixels "
            "to raise it)" % (width, height, width * height, limit, MAX_PIXELS_ENV),
        )
    return int(width), int(height)


_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4),
          (1, 0, 2, 2), (0, 1, 1, 2))


def _png_raw_size(width: int, height: int, depth: int, color: int, interlace: int) -> int:
    """Bytes of the filtered scanlines a PNG's zlib stream must inflate to."""
    if color not in _PNG_CHANNELS or depth not in (1, 2, 4, 8, 16):
        raise ValueError("bad IHDR (bit depth %d, colour type %d)" % (depth, color))
    bpp = _PNG_CHANNELS[color] * depth

    def rows(w: int, h: int) -> int:
        return 0 if w <= 0 or h <= 0 else h * (1 + (w * bpp + 7) // 8)

    if interlace == 0:
        return rows(width, height)
    return sum(rows(-(-(width - x0) // dx), -(-(height - y0) // dy))
               for x0, y0, dx, dy in _ADAM7)


def _check_png(f: BinaryIO) -> None:
    f.seek(8)
    inflate = zlib.decompressobj()
    out = 0
    expected = None
    seen_iend = False
    while not seen_iend:
        length, ctype = struct.unpack(">I4s", _read(f, 8))
        if length > 0x7FFFFFFF:
            raise ValueError("chunk length %d" % length)
        crc = zlib.crc32(ctype)
        remaining = length
        while remaining:
            block = _read(f, min(remaining, 1 << 20))
            remaining -= len(block)
            crc = zlib.crc32(block, crc)
            if ctype == b"IHDR":
                w, h, depth, color, _comp, _filt, interlace = struct.unpack(">IIBBBBB", block[:13])
                expected = _png_raw_size(w, h, depth, color, interlace)
            elif ctype == b"IDAT":
                if expected is None:
                    raise ValueError("IDAT before IHDR")
                data = block
                while data:
                    out += len(inflate.decompress(data, 1 << 22))
                    if out > expected:
                        raise ValueError("image data longer than the header's size")
                    data = inflate.unconsumed_tail
        (stored,) = struct.unpack(">I", _read(f, 4))
        if stored != crc & 0xFFFFFFFF:
            raise ValueError("CRC error in %s chunk" % ctype.decode("latin-1"))
        seen_iend = ctype == b"IEND"
    out += len(inflate.flush())
    if not inflate.eof:
        raise ValueError("image data stream is cut short")
    if out != expected:
        raise ValueError("image data holds %d bytes, the header needs %d" % (out, expected))


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


#: Huffman-coded JPEG frames (arithmetic coding can spend under a bit per block)
_HUFFMAN_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7}


def _check_jpeg_length(f: BinaryIO) -> None:
    """Refuses a JPEG too short for the blocks its frame header declares.

    Each 8x8 block of the first component costs at least one bit of
    Huffman-coded data (its DC code), so the bytes after the first scan
    header must number at least ``blocks / 8``. libjpeg itself only warns
    when data runs out early and pads the image with grey, so a header that
    lies about the size (or a file cut just before its end marker) decodes
    "fine" without this check.
    """
    f.seek(0, os.SEEK_END)
    size = f.tell()
    f.seek(2)
    frame = None
    while True:
        b = _read(f, 1)
        if b != b"\xff":
            raise ValueError("JPEG marker expected, got byte 0x%02x" % b[0])
        marker = _read(f, 1)[0]
        while marker == 0xFF:
            marker = _read(f, 1)[0]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            continue
        if marker == 0xD9:
            raise ValueError("JPEG ends before its image data")
        (length,) = struct.unpack(">H", _read(f, 2))
        if marker == 0xDA:
            break
        body = _read(f, length - 2)
        if marker in _SOF:
            _p, height, width, n = struct.unpack(">BHHB", body[:6])
            comps = [body[6 + 3 * i: 9 + 3 * i] for i in range(n)]
            if len(comps) != n or n == 0 or any(len(c) != 3 for c in comps):
                raise ValueError("JPEG frame header is cut short")
            hs = [c[1] >> 4 for c in comps]
            vs = [c[1] & 15 for c in comps]
            if min(hs + vs) <= 0:
                raise ValueError("JPEG sampling factor 0")
            frame = (marker, width, height, hs[0], vs[0], max(hs), max(vs))
    if frame is None:
        raise ValueError("JPEG has no frame header")
    marker, width, height, h0, v0, hmax, vmax = frame
    if marker not in _HUFFMAN_SOF:
        return
    blocks_x = _ceil_div(_ceil_div(width * h0, hmax), 8)
    blocks_y = _ceil_div(_ceil_div(height * v0, vmax), 8)
    needed = blocks_x * blocks_y // 8
    have = size - f.tell()
    if have < needed:
        raise ValueError("%d bytes of image data, but %dx%d pixels need at least %d"
                         % (have, width, height, needed))


def _check_with_pil(path: str, kind: Optional[str]) -> None:
    """Decodes through the PIL plugin itself (no decompression-bomb refusal);
    JPEG at 1/8 scale (libjpeg's DCT scaling)."""
    from PIL import BmpImagePlugin, Image, JpegImagePlugin, TiffImagePlugin

    plugin = {"JPEG": JpegImagePlugin.JpegImageFile, "BMP": BmpImagePlugin.BmpImageFile,
              "TIFF": TiffImagePlugin.TiffImageFile}.get(kind or "")
    img = plugin(path) if plugin is not None else Image.open(path)
    try:
        if kind == "JPEG":
            img.draft(img.mode, (max(1, img.size[0] // 8), max(1, img.size[1] // 8)))
        img.load()
    finally:
        img.close()


def check_decodable(path, max_pixels: Optional[int] = None) -> None:
    """Checks that an image's pixels decode, not only its header (cheaply).

    Meant for the import step (the header alone, :func:`image_size`, lets a
    file whose body is damaged through, and it then stops every ``segment``
    run at that sample). What is checked:

    - PNG: every chunk's CRC, and the zlib stream inflated to the end (in
      blocks, nothing kept) to exactly the size the header implies. No pixel
      array is made, so a 20000x20000 PNG costs one inflate pass.
    - JPEG: long enough for the 8x8 blocks its header declares (at least
      one bit each; libjpeg only warns about missing data and pads with
      grey), then decoded by libjpeg at 1/8 scale (truncated or broken
      entropy data fails).
    - BMP, TIFF and other formats: decoded in full by PIL.

    Args:
        path: the image file
        max_pixels: the size limit of :func:`image_size`

    Raises:
        FormatError: ``"undecodable image (...)"`` naming the file, or any
            error of :func:`image_size`
    """
    path = os.fspath(path)
    image_size(path, max_pixels=max_pixels)
    with open(path, "rb") as f:
        kind, _ = _sniff(f.read(16))
    try:
        if kind == "PNG":
            with open(path, "rb") as f:
                _check_png(f)
        else:
            if kind == "JPEG":
                with open(path, "rb") as f:
                    _check_jpeg_length(f)
            _check_with_pil(path, kind)
    except _Truncated:
        raise FormatError(path, "undecodable image (%s file cut short)" % kind) from None
    except MemoryError:
        raise FormatError(path, "undecodable image (out of memory decoding it)") from None
    except Exception as e:  # PIL decoders raise OSError, ValueError, SyntaxError, zlib.error...
        raise FormatError(path, "undecodable image (%s: %s)" % (kind or "image", e)) from None


def is_image(name: str) -> bool:
    """Whether a file name has one of :data:`IMAGE_EXTS` (any case)."""
    return os.path.splitext(name)[1].lower() in IMAGE_EXTS


def index_images(
    folder, report: Optional[ImportReport] = None, recursive: bool = False
) -> Dict[str, str]:
    """Maps file stem to absolute image path for the images in a folder.

    When two images share a stem (``a.png`` and ``a.jpg``), the first in
    :data:`IMAGE_EXTS` order wins and the other is a counted skip
    (``"duplicate image stem"``).

    Args:
        folder: the folder; a missing folder gives an empty index
        report: where duplicate stems are reported
        recursive: also look into subfolders

    Returns:
        ``{stem: absolute path}``
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        return {}
    found: Dict[str, str] = {}
    if recursive:
        names = []
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames.sort()
            names.extend(os.path.join(dirpath, f) for f in filenames)
    else:
        names = [os.path.join(folder, f) for f in os.listdir(folder)]
    rank = {ext: i for i, ext in enumerate(IMAGE_EXTS)}
    names = [n for n in names if is_image(n) and os.path.isfile(n)]
    names.sort(key=lambda n: (os.path.splitext(os.path.basename(n))[0],
                              rank[os.path.splitext(n)[1].lower()], n))
    for path in names:
        stem = os.path.splitext(os.path.basename(path))[0]
        path = os.path.abspath(path)
        if stem in found:
            if report is not None:
                report.skip(
                    "duplicate image stem",
                    "%s (using %s)" % (path, found[stem]),
                )
            continue
        found[stem] = path
    return found


def index_files(folder, ext: str) -> Dict[str, str]:
    """Maps file stem to absolute path for the files of one extension.

    Args:
        folder: the folder; a missing folder gives an empty index
        ext: the extension, e.g. ``".txt"`` (compared case-insensitively)
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        return {}
    out = {}
    for name in sorted(os.listdir(folder)):
        stem, e = os.path.splitext(name)
        if e.lower() == ext.lower() and os.path.isfile(os.path.join(folder, name)):
            out.setdefault(stem, os.path.abspath(os.path.join(folder, name)))
    return out


def read_image(path: str) -> np.ndarray:
    """Decodes an image to RGB uint8 ``(H, W, 3)`` (EXIF orientation ignored,
    so pixels match the annotations' frame).

    Raises:
        FormatError: naming the file when it is missing or unreadable
    """
    import cv2

    if not os.path.isfile(path):
        raise FormatError(path, "image file not found")
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise FormatError(path, "unreadable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


# ---------------------------------------------------------------------------
# browser previews
# ---------------------------------------------------------------------------

#: image extensions browsers (and so the FiftyOne App) cannot display; the
#: others of :data:`IMAGE_EXTS` (PNG, JPEG, BMP) they can
NON_BROWSER_EXTS = (".tif", ".tiff")


def browser_viewable(path: str) -> bool:
    """Whether a browser can display the image file (by its extension)."""
    return os.path.splitext(str(path))[1].lower() not in NON_BROWSER_EXTS


def preview_name(path: str, ext: str = ".jpg") -> str:
    """The preview file name of an image: its stem and a hash of its absolute
    path (FAIR1M's train and validation folders both hold ``1.tif``)."""
    import hashlib

    path = os.path.abspath(str(path))
    stem = os.path.splitext(os.path.basename(path))[0]
    return "%s-%s%s" % (stem, hashlib.sha1(path.encode("utf-8", "surrogateescape"))
                        .hexdigest()[:10], ext)


def to_display_uint8(image: np.ndarray) -> np.ndarray:
    """An image as 8 bits for display: 8-bit images unchanged; other depths
    (16-bit, float) stretched from their 0.5th to 99.5th percentile."""
    if image.dtype == np.uint8:
        return image
    data = image.astype(np.float64)
    finite = data[np.isfinite(data)]
    if not finite.size:
        return np.zeros(image.shape, dtype=np.uint8)
    lo, hi = np.percentile(finite, [0.5, 99.5])
    if hi <= lo:
        hi = lo + 1.0
    out = np.clip((np.nan_to_num(data, nan=lo) - lo) * (255.0 / (hi - lo)), 0, 255)
    return out.astype(np.uint8)


def write_preview(src: str, dst: str, quality: int = 90) -> str:
    """Writes a browser-viewable JPEG of the image ``src`` at ``dst``, same size.

    Multi-band images keep their first three bands (an alpha band is
    dropped), grey stays grey; other bit depths are stretched to 8 bits
    (:func:`to_display_uint8`). The file is written to a temporary name and
    renamed, and an existing ``dst`` newer than ``src`` is kept (a re-import
    reuses it).

    Returns:
        ``dst``

    Raises:
        FormatError: naming ``src`` when it cannot be decoded
    """
    import cv2

    if os.path.isfile(dst) and os.path.getmtime(dst) >= os.path.getmtime(src):
        return dst
    data = np.fromfile(src, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise FormatError(src, "unreadable image: no browser preview could be made")
    if image.ndim == 3 and image.shape[2] > 3:
        image = image[:, :, :3]
    elif image.ndim == 3 and image.shape[2] == 2:
        image = image[:, :, 0]
    image = to_display_uint8(image)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise FormatError(src, "the browser preview could not be encoded")
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    atomic_write_bytes(dst, encoded.tobytes())
    return dst
