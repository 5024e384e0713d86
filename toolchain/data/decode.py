"""One image file decoded safely: everything decided from its header before any pixel is decoded.

* size: sides of at least :data:`MIN_SIDE` pixels and at most :data:`MAX_PIXELS` pixels, from the header;
* frames: one image per file: an animation (a GIF or PNG of several frames) or a TIFF of several pages
  is refused from its header, before a frame is decoded (a 46 KB GIF can decode to gigabytes); a
  multi-page TIFF where a stack is expected (ISBI-2012) is read by :func:`decode_stack`, its declared
  size checked first;
* memory: what a file decodes to is charged to the load's :class:`~toolchain.memory.DataBudget` (if
  any) before it is decoded;
* damage: a file that ends early is refused (PIL's ``image file is truncated``), and so is a PNG whose
  compressed data holds fewer rows than its header declares (PIL fills the missing rows with zeros);
* modes: palette images become RGB (RGBA if they declare transparency), CMYK JPEGs RGB; a camera's
  multi-picture JPEG (MPO) gives its first picture.

Returns the decoded array (HxW or HxWxC, the file's own dtype) and whether its last channel is a
declared alpha channel; pixel values are checked and scaled by :func:`toolchain.data.folder.read_image`.
"""
from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path

import numpy as np

from toolchain.errors import DataError, ToolchainError
from toolchain.memory import DataBudget

MIN_SIDE = 8
MAX_PIXELS = 64 * 1024 * 1024
WORKING_BYTES = 8                 # per sample: a float64 working copy while pixels are scaled
ALPHA_MODES = ("LA", "La", "PA", "RGBA", "RGBa")      # PIL modes whose last channel is declared alpha
TIFF_ALPHA = (1, 2)                                   # TIFF ExtraSamples: associated, unassociated alpha
_PNG = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_ADAM7 = ((8, 8, 0, 0), (8, 8, 4, 0), (4, 8, 0, 4), (4, 4, 2, 0), (2, 4, 0, 2), (2, 2, 1, 0), (1, 2, 0, 1))


def check_size(path: Path, w: int, h: int) -> None:
    if min(h, w) < MIN_SIDE or h * w > MAX_PIXELS:
        raise DataError(f"{path}: image size {w}x{h} is outside the supported range "
                        f"({MIN_SIDE} px per side to {MAX_PIXELS} pixels)")


def _charge(budget: DataBudget | None, path: Path, samples: int, itemsize: int) -> None:
    if budget is not None:
        budget.charge(samples * (itemsize + WORKING_BYTES), path)


def png_rows_complete(path: Path) -> bool:
    """The PNG's image data inflates to exactly what its header declares (True for a file that is not a
    PNG). Bounded: at most the declared size + 1 bytes are inflated (the size was checked before)."""
    with open(path, "rb") as handle:
        data = handle.read()
    if not data.startswith(_PNG):
        return True
    pos, need, got = 8, None, 0
    inflate = zlib.decompressobj()
    try:
        while pos + 8 <= len(data):
            (length,) = struct.unpack(">I", data[pos:pos + 4])
            kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
            if kind == b"IHDR" and len(body) >= 13:
                w, h, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body[:13])
                bits = _PNG_CHANNELS.get(color, 1) * depth
                passes = _ADAM7 if interlace else ((1, 1, 0, 0),)
                need = 0
                for xs, ys, x0, y0 in passes:
                    pw, ph = (w - x0 + xs - 1) // xs, (h - y0 + ys - 1) // ys
                    need += ((pw * bits + 7) // 8 + 1) * ph if pw > 0 and ph > 0 else 0
            elif kind == b"IDAT" and need is not None:
                got += len(inflate.decompress(body, max(1, need + 1 - got)))
                if got > need:
                    break
            elif kind == b"IEND":
                break
            pos += 12 + length
    except zlib.error:
        return False
    return need is None or got == need


def _decode_tiff(path: Path, budget: DataBudget | None) -> tuple[np.ndarray, bool] | None:
    import tifffile
    try:
        with tifffile.TiffFile(path) as tif:
            pages = len(tif.pages)
            page = tif.pages[0]
            if not isinstance(page, tifffile.TiffPage):
                return None
            w, h = int(page.imagewidth), int(page.imagelength)
            extra = tuple(int(e) for e in (page.extrasamples or ()))
            samples, itemsize = int(page.samplesperpixel), int(np.dtype(page.dtype or np.uint8).itemsize)
            if pages > 1:
                raise DataError(f"{path}: a TIFF of {pages} pages (a stack); one image per file is supported")
            check_size(path, w, h)
            if not 1 <= samples <= 8:
                raise DataError(f"{path}: {samples} samples per pixel")
            _charge(budget, path, w * h * samples, itemsize)
            array = np.asarray(page.asarray())
    except ToolchainError:
        raise
    except Exception as exc:   # tifffile raises many types for broken files
        raise DataError(f"{path}: not a readable image ({type(exc).__name__})") from exc
    return array, bool(extra) and extra[-1] in TIFF_ALPHA


def decode(path: Path, budget: DataBudget | None = None) -> tuple[np.ndarray, bool]:
    """(pixels, last channel is alpha) of one image file; DataError naming the file (module docstring)."""
    from PIL import Image
    if not path.is_file():
        raise DataError(f"{path}: no such image file")
    if path.suffix.lower() in (".tif", ".tiff"):
        decoded = _decode_tiff(path, budget)
        if decoded is not None:
            return decoded
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")            # DecompressionBombWarning: our own limit is lower
            im = Image.open(path)                      # lazy: reads the header only
    except Image.DecompressionBombError as exc:
        raise DataError(f"{path}: image size is outside the supported range (more than {MAX_PIXELS} pixels)") from exc
    except Exception as exc:
        raise DataError(f"{path}: not a readable image ({type(exc).__name__})") from exc
    with im:
        check_size(path, *im.size)
        frames = int(getattr(im, "n_frames", 1))     # parses frame headers; decodes nothing
        if frames != 1 and im.format != "MPO":
            raise DataError(f"{path}: {frames} frames (an animation); one image per file is supported")
        bands = len(im.getbands())
        _charge(budget, path, im.size[0] * im.size[1] * max(bands, 3 if im.mode in ("P", "CMYK") else 1),
                2 if im.mode.startswith("I;16") else 4 if im.mode in ("I", "F") else 1)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                im.load()                              # OSError 'image file is truncated' if the file ends early
                picture: Image.Image = im
                if im.mode == "CMYK":
                    picture = im.convert("RGB")
                elif im.mode in ("P", "PA"):
                    picture = im.convert("RGBA" if im.mode == "PA" or "transparency" in im.info else "RGB")
                alpha = picture.mode in ALPHA_MODES
                array = np.asarray(picture)
        except Exception as exc:
            raise DataError(f"{path}: damaged or truncated image ({type(exc).__name__}: "
                            f"{' '.join(str(exc).split())[:60]})") from exc
    if not png_rows_complete(path):
        raise DataError(f"{path}: the PNG holds fewer pixel rows than its header declares (a damaged file)")
    return array, alpha


def decode_stack(path: Path, budget: DataBudget | None = None, max_slices: int = 1 << 16) -> np.ndarray:
    """A multi-page TIFF as an N x H x W (x C) array; its declared size checked (and charged) first."""
    import tifffile
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            shape, dtype = tuple(int(s) for s in series.shape), np.dtype(series.dtype)
            if not shape or len(shape) > 4:
                raise DataError(f"{path}: a stack of shape {shape}")
            h, w = (shape[-3], shape[-2]) if len(shape) == 4 or (len(shape) == 3 and shape[-1] in (3, 4)) \
                else (shape[-2], shape[-1]) if len(shape) >= 2 else (1, shape[0])
            check_size(path, w, h)
            count = int(np.prod(shape, dtype=object))
            if count // (h * w) > max_slices:
                raise DataError(f"{path}: a stack of {count // (h * w)} slices")
            _charge(budget, path, count, dtype.itemsize)
            array = np.asarray(series.asarray())
    except ToolchainError:
        raise
    except Exception as exc:
        raise DataError(f"{path}: not a readable TIFF stack ({type(exc).__name__})") from exc
    return array
