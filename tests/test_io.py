"""formocr.io. Every fixture is generated in tmp_path; the encrypted PDF too (RC4 by hand, no tool needed)."""

from __future__ import annotations

import hashlib
import shutil
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageFile

import formocr.io as fio
from formocr.errors import (
    ConfigError,
    CorruptInputError,
    DependencyError,
    EmptyInputError,
    EncryptedInputError,
    FormOcrError,
    InputTooLargeError,
    UnreadableInputError,
    UnsupportedInputError,
)
from formocr.io import count_pages, load_pages, sniff
from formocr.limits import LoadLimits

needs_poppler = pytest.mark.skipif(
    shutil.which("pdftoppm") is None or shutil.which("pdfinfo") is None, reason="poppler-utils not installed"
)


# ------------------------------------------------------------------------------------------------ helpers


def _gradient(w: int = 60, h: int = 40) -> np.ndarray:
    return (np.arange(w * h).reshape(h, w) % 251).astype(np.uint8)


def _noise_rgb(w: int, h: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _pillow_pdf(path: Path, sizes: list[tuple[int, int]], resolution: float = 100.0) -> Path:
    """A PDF with one raster page per size (pixels at ``resolution`` dpi); page 2 is colour."""
    pages = [
        Image.new("RGB", size, (200, 30, 30)) if i == 1 else Image.new("L", size, 255)
        for i, size in enumerate(sizes)
    ]
    pages[0].save(path, "PDF", save_all=True, append_images=pages[1:], resolution=resolution)
    return path


def _raw_pdf(
    page_dicts: list[bytes], trailer_extra: bytes = b"", extra_objs: list[bytes] | None = None
) -> bytes:
    """A minimal hand-written PDF: catalog, page tree, the given page dictionaries, then ``extra_objs``."""
    n_pages = len(page_dicts)
    kids = b" ".join(b"%d 0 R" % (3 + i) for i in range(n_pages))
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, n_pages),
    ]
    objs += page_dicts + (extra_objs or [])
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    size = len(objs) + 1
    out += b"trailer\n<< /Size %d /Root 1 0 R %s>>\nstartxref\n%d\n%%%%EOF\n" % (size, trailer_extra, xref)
    return bytes(out)


_PAD = bytes.fromhex("28bf4e5e4e758a4164004e56fffa01082e2e00b6d0683e802f0ca9fe6453697a")


def _rc4(key: bytes, data: bytes) -> bytes:
    s = list(range(256))
    j = 0
    for i in range(256):
        j = (j + s[i] + key[i % len(key)]) % 256
        s[i], s[j] = s[j], s[i]
    i = j = 0
    out = bytearray()
    for byte in data:
        i = (i + 1) % 256
        j = (j + s[i]) % 256
        s[i], s[j] = s[j], s[i]
        out.append(byte ^ s[(s[i] + s[j]) % 256])
    return bytes(out)


def _encrypted_pdf(user: bytes, owner: bytes = b"owner") -> bytes:
    """One 1-inch page with a black square, encrypted with the PDF standard security handler (40-bit RC4, R2).

    Built by hand so the test needs neither qpdf nor pypdf.
    """
    file_id = hashlib.md5(b"formocr-test").digest()
    perms = -4
    o_value = _rc4(hashlib.md5((owner + _PAD)[:32]).digest()[:5], (user + _PAD)[:32])
    key = hashlib.md5((user + _PAD)[:32] + o_value + struct.pack("<i", perms) + file_id).digest()[:5]
    u_value = _rc4(key, _PAD)
    content_obj = 4
    obj_key = hashlib.md5(key + struct.pack("<i", content_obj)[:3] + b"\x00\x00").digest()[:10]
    content = _rc4(obj_key, b"0 g 0 0 36 36 re f")
    page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 72 72] /Contents 4 0 R >>"
    stream = b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream"
    encrypt = b"<< /Filter /Standard /V 1 /R 2 /O <%s> /U <%s> /P %d >>" % (
        o_value.hex().encode(), u_value.hex().encode(), perms
    )
    trailer = b"/Encrypt 5 0 R /ID [<%s> <%s>] " % (file_id.hex().encode(), file_id.hex().encode())
    return _raw_pdf([page], trailer, [stream, encrypt])


def _assert_one_line_naming(err: pytest.ExceptionInfo[FormOcrError], path: Path | str) -> None:
    text = str(err.value)
    assert "\n" not in text
    assert str(path) in text


# ------------------------------------------------------------------------------------------------ sniffing


def test_sniff_uses_magic_bytes_not_extension(tmp_path: Path) -> None:
    img = Image.fromarray(_gradient())
    for fmt, kind in [("PNG", "png"), ("JPEG", "jpeg"), ("BMP", "bmp"), ("TIFF", "tiff")]:
        path = tmp_path / f"scan_{kind}.dat"  # the extension says nothing
        img.save(path, fmt)
        assert sniff(path) == kind
    pdf = tmp_path / "scan.png"
    pdf.write_bytes(_raw_pdf([b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 72 72] >>"]))
    assert sniff(pdf) == "pdf"


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        (b"hello, this is not a scan\n", "text"),
        (b"PK\x03\x04" + b"\x00" * 40, "ZIP"),
        (b"GIF89a" + b"\x00" * 40, "GIF"),
        (b"<!DOCTYPE html><html><body>Login</body></html>", "HTML"),
        (b"quoting b'%PDF-1.4' inside a text file", "text"),
    ],
)
def test_unsupported_types_are_named(tmp_path: Path, content: bytes, kind: str) -> None:
    path = tmp_path / "renamed.pdf"
    path.write_bytes(content)
    with pytest.raises(UnsupportedInputError) as err:
        sniff(path)
    _assert_one_line_naming(err, path)
    assert kind in str(err.value)
    assert "PDF, PNG, JPEG, BMP or TIFF" in str(err.value)
    assert err.value.exit_code == 3


# ------------------------------------------------------------------------------------------------ images


def test_grey_png_round_trips_and_is_2d(tmp_path: Path) -> None:
    a = _gradient()
    path = tmp_path / "grey.png"
    Image.fromarray(a).save(path, dpi=(200, 200))
    pages = list(load_pages(path))
    assert len(pages) == 1
    page = pages[0]
    assert page.image.dtype == np.uint8 and page.image.shape == (40, 60)
    np.testing.assert_array_equal(page.image, a)
    assert page.dpi == pytest.approx(200, abs=0.1)
    assert page.index == 0 and page.source == str(path)


def test_colour_png_is_bgr_and_grey_rgb_collapses(tmp_path: Path) -> None:
    rgb = np.zeros((10, 12, 3), np.uint8)
    rgb[..., 0] = 255  # pure red
    Image.fromarray(rgb).save(tmp_path / "red.png")
    (page,) = load_pages(tmp_path / "red.png")
    assert page.image.shape == (10, 12, 3)
    assert tuple(page.image[0, 0]) == (0, 0, 255)  # BGR order, as OpenCV expects

    grey_rgb = np.repeat(_gradient()[..., None], 3, axis=2)
    Image.fromarray(grey_rgb).save(tmp_path / "greyrgb.png")
    (page,) = load_pages(tmp_path / "greyrgb.png")
    assert page.image.ndim == 2


def test_jpeg_bmp_dpi_and_default(tmp_path: Path) -> None:
    img = Image.fromarray(_noise_rgb(32, 24))
    img.save(tmp_path / "a.jpg", dpi=(150, 150), quality=95)
    img.save(tmp_path / "b.jpg")  # no resolution recorded
    img.save(tmp_path / "c.bmp")
    (a,) = load_pages(tmp_path / "a.jpg")
    (b,) = load_pages(tmp_path / "b.jpg", dpi=240)
    (c,) = load_pages(tmp_path / "c.bmp")
    assert a.dpi == 150 and a.image.shape == (24, 32, 3)
    assert b.dpi == 240  # falls back to the dpi argument
    np.testing.assert_array_equal(c.image, np.asarray(img)[..., ::-1])


def test_insane_recorded_dpi_falls_back(tmp_path: Path) -> None:
    Image.fromarray(_gradient()).save(tmp_path / "odd.tif", dpi=(1, 1))
    (page,) = load_pages(tmp_path / "odd.tif")
    assert page.dpi == 300


@pytest.mark.parametrize(
    ("fmt", "options"), [("JPEG", {}), ("PNG", {}), ("TIFF", {"compression": "tiff_lzw"})]
)
def test_exif_orientation_is_applied_once(tmp_path: Path, fmt: str, options: dict[str, Any]) -> None:
    stored = np.zeros((20, 40), np.uint8)
    stored[:, :8] = 255  # a white band on the left of the stored pixels
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display": the band ends up on top
    path = tmp_path / f"phone.{fmt.lower()}"
    Image.fromarray(stored).save(path, fmt, exif=exif, **options)
    (page,) = load_pages(path)
    assert page.image.shape == (40, 20)
    assert (page.image[:8] > 128).mean() > 0.95 and (page.image[10:] < 128).mean() > 0.95


def test_transparency_is_composited_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((8, 8, 4), np.uint8)  # black, fully transparent...
    rgba[:4, :, 3] = 255  # ...except the top half, opaque black
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    (page,) = load_pages(tmp_path / "rgba.png")
    assert page.image.ndim == 2  # black/white only: grey
    assert (page.image[:4] == 0).all() and (page.image[4:] == 255).all()

    la = np.zeros((8, 8, 2), np.uint8)
    la[..., 1] = 128  # half-transparent black → mid grey
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    (page,) = load_pages(tmp_path / "la.png")
    assert page.image.shape == (8, 8) and abs(int(page.image[0, 0]) - 127) <= 1


def test_16_bit_palette_bilevel_and_cmyk(tmp_path: Path) -> None:
    a16 = np.array([[0, 257 * 128, 65535]], np.uint16)
    Image.fromarray(a16).save(tmp_path / "deep.png")
    (page,) = load_pages(tmp_path / "deep.png")
    assert page.image.dtype == np.uint8
    np.testing.assert_array_equal(page.image, [[0, 128, 255]])

    pal = Image.new("P", (4, 2))
    pal.putpalette([255, 255, 255, 0, 0, 255] + [0] * 762)
    pal.putpixel((0, 0), 1)
    pal.save(tmp_path / "pal.png")
    (page,) = load_pages(tmp_path / "pal.png")
    assert tuple(page.image[0, 0]) == (255, 0, 0) and tuple(page.image[1, 1]) == (255, 255, 255)

    Image.fromarray(_gradient() > 100).save(tmp_path / "bilevel.png")
    (page,) = load_pages(tmp_path / "bilevel.png")
    assert set(np.unique(page.image)) <= {0, 255}

    Image.new("CMYK", (16, 16), (255, 0, 0, 0)).save(tmp_path / "cyan.jpg", quality=95)
    (page,) = load_pages(tmp_path / "cyan.jpg")
    b, g, r = (int(v) for v in page.image[8, 8])
    assert r < 40 and g > 215 and b > 215  # cyan


def test_multipage_tiff_yields_one_page_per_frame(tmp_path: Path) -> None:
    frames = [Image.fromarray(_gradient(60 + 10 * i, 40)) for i in range(3)]
    path = tmp_path / "fax.tif"
    frames[0].save(path, save_all=True, append_images=frames[1:], dpi=(200, 200))
    assert count_pages(path) == 3
    pages = list(load_pages(path))
    assert [p.index for p in pages] == [0, 1, 2]
    assert [p.width for p in pages] == [60, 70, 80]
    assert all(p.dpi == 200 for p in pages)

    with pytest.raises(InputTooLargeError) as err:
        load_pages(path, limits=LoadLimits(max_pages=2))
    _assert_one_line_naming(err, path)


def test_arrays(tmp_path: Path) -> None:
    (page,) = load_pages(_gradient(), dpi=200)
    assert page.source == "<array>" and page.dpi == 200 and page.image.shape == (40, 60)
    (page,) = load_pages(np.ones((4, 5)) * 0.5)
    assert page.image.dtype == np.uint8 and int(page.image[0, 0]) in (127, 128)
    (page,) = load_pages(np.eye(3, dtype=bool))
    assert int(page.image[0, 0]) == 255 and int(page.image[0, 1]) == 0
    bgra = np.zeros((2, 2, 4), np.uint8)  # transparent → white
    (page,) = load_pages(bgra)
    assert page.image.shape == (2, 2, 3) and (page.image == 255).all()
    with pytest.raises(UnsupportedInputError):
        load_pages(np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(UnsupportedInputError):
        load_pages(np.full((2, 2), 3.0))
    with pytest.raises(EmptyInputError):
        load_pages(np.zeros((0, 5), np.uint8))
    with pytest.raises(InputTooLargeError):
        load_pages(np.zeros((20, 20), np.uint8), limits=LoadLimits(max_pixels=100))
    with pytest.raises(ConfigError):
        load_pages(_gradient(), dpi=0)


# ------------------------------------------------------------------------------------------------ PDF


@needs_poppler
def test_pdf_round_trips_page_count_and_pixel_size(tmp_path: Path) -> None:
    path = _pillow_pdf(tmp_path / "two.pdf", [(850, 1100), (1100, 850)], resolution=100)
    assert count_pages(path) == 2
    pages = list(load_pages(path, dpi=100))
    assert [p.index for p in pages] == [0, 1]
    assert pages[0].image.shape == (1100, 850)  # a page without colour comes back grey
    assert pages[1].image.shape == (850, 1100, 3)  # a colour page in colour (BGR), for drop-out
    b, g, r = (int(v) for v in pages[1].image[400, 500])
    assert r > 190 and b < 40 and g < 40  # JPEG inside the PDF
    assert all(p.dpi == 100 for p in pages)
    (half,) = list(load_pages(path, dpi=50))[:1]
    assert half.image.shape == (550, 425)


@needs_poppler
def test_pdf_pages_are_rendered_lazily(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import formocr.pdf

    path = _pillow_pdf(tmp_path / "three.pdf", [(100, 100)] * 3, resolution=72)
    calls: list[tuple[int, int]] = []
    real = formocr.pdf.subprocess.run

    def spy(cmd: list[str], *args: Any, **kwargs: Any) -> Any:
        if "pdftoppm" in cmd[0]:
            calls.append((int(cmd[cmd.index("-f") + 1]), int(cmd[cmd.index("-l") + 1])))
        return real(cmd, *args, **kwargs)

    monkeypatch.setattr(formocr.pdf.subprocess, "run", spy)
    pages = load_pages(path, dpi=72)
    assert calls == []
    next(pages)
    assert calls == [(1, 1)]
    assert len(list(pages)) == 2 and calls == [(1, 1), (2, 2), (3, 3)]


@needs_poppler
def test_pdf_page_over_pixel_limit_is_refused_before_rendering(tmp_path: Path) -> None:
    path = _pillow_pdf(tmp_path / "big.pdf", [(100, 100), (2000, 1000)], resolution=100)
    with pytest.raises(InputTooLargeError) as err:
        load_pages(path, dpi=100, limits=LoadLimits(max_pixels=1_000_000))
    _assert_one_line_naming(err, path)
    assert "page 2 would be 2000×1000 px at 100 dpi" in str(err.value)
    assert "lower --dpi" in str(err.value)
    assert err.value.exit_code == 4


@needs_poppler
def test_pdf_with_too_many_pages(tmp_path: Path) -> None:
    path = _pillow_pdf(tmp_path / "long.pdf", [(50, 50)] * 3)
    with pytest.raises(InputTooLargeError) as err:
        load_pages(path, limits=LoadLimits(max_pages=2))
    _assert_one_line_naming(err, path)
    assert "3 pages" in str(err.value)


@needs_poppler
def test_pdf_without_pages(tmp_path: Path) -> None:
    path = tmp_path / "nopages.pdf"
    path.write_bytes(_raw_pdf([]))
    with pytest.raises(EmptyInputError) as err:
        load_pages(path)
    _assert_one_line_naming(err, path)


@needs_poppler
def test_encrypted_pdf(tmp_path: Path) -> None:
    path = tmp_path / "locked.pdf"
    path.write_bytes(_encrypted_pdf(user=b"secret"))
    with pytest.raises(EncryptedInputError) as err:
        load_pages(path)
    _assert_one_line_naming(err, path)
    assert "password" in str(err.value)
    assert err.value.exit_code == 4
    with pytest.raises(EncryptedInputError):
        count_pages(path)


@needs_poppler
def test_encrypted_pdf_with_empty_user_password_is_readable(tmp_path: Path) -> None:
    path = tmp_path / "owner_only.pdf"
    path.write_bytes(_encrypted_pdf(user=b""))
    (page,) = load_pages(path, dpi=72)
    assert page.image.shape == (72, 72)
    assert page.image[60, 10] < 50 and page.image[10, 60] > 200  # the black square, bottom-left


@needs_poppler
def test_truncated_pdf(tmp_path: Path) -> None:
    good = _pillow_pdf(tmp_path / "good.pdf", [(300, 300)])
    path = tmp_path / "cut.pdf"
    path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CorruptInputError) as err:
        load_pages(path)
    _assert_one_line_naming(err, path)
    assert "not a valid PDF" in str(err.value)


def test_missing_poppler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _pillow_pdf(tmp_path / "scan.pdf", [(50, 50)])
    empty = tmp_path / "empty_bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    for call in (lambda: load_pages(path), lambda: count_pages(path)):
        with pytest.raises(DependencyError) as err:
            call()
        _assert_one_line_naming(err, path)
        assert "poppler-utils" in str(err.value)
        assert err.value.exit_code == 6


# ------------------------------------------------------------------------------------------------ bad files


def test_missing_file_directory_and_empty_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.png"
    with pytest.raises(UnreadableInputError, match="no such file") as err:
        load_pages(missing)
    _assert_one_line_naming(err, missing)

    with pytest.raises(UnreadableInputError, match="is a directory") as err:
        load_pages(tmp_path)
    _assert_one_line_naming(err, tmp_path)

    empty = tmp_path / "empty.pdf"
    empty.touch()
    with pytest.raises(EmptyInputError) as empty_err:
        load_pages(empty)
    _assert_one_line_naming(empty_err, empty)
    assert empty_err.value.exit_code == 3


def test_permission_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "secret.png"
    Image.fromarray(_gradient()).save(path)

    def deny(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    # Tests often run as root, where chmod 000 does not stop reading: fake the refusal instead.
    monkeypatch.setattr(fio, "open", deny, raising=False)
    with pytest.raises(UnreadableInputError, match="permission denied") as err:
        load_pages(path)
    _assert_one_line_naming(err, path)


def test_truncated_images(tmp_path: Path) -> None:
    for fmt, name in [("PNG", "cut.png"), ("JPEG", "cut.jpg")]:
        whole = tmp_path / f"whole_{name}"
        Image.fromarray(_noise_rgb(200, 200)).save(whole, fmt)
        path = tmp_path / name
        path.write_bytes(whole.read_bytes()[: whole.stat().st_size * 6 // 10])
        with pytest.raises(CorruptInputError) as err:
            list(load_pages(path))
        _assert_one_line_naming(err, path)
        assert err.value.exit_code == 4


def test_truncated_image_fails_even_if_someone_allowed_truncation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = tmp_path / "whole.png"
    Image.fromarray(_noise_rgb(100, 100)).save(whole)
    path = tmp_path / "cut.png"
    path.write_bytes(whole.read_bytes()[:3000])
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(CorruptInputError):
        list(load_pages(path))
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored for the caller
    assert before == Image.MAX_IMAGE_PIXELS


def _png_claiming(width: int, height: int) -> bytes:
    """A valid 1×1 PNG whose header is patched to claim another size (a decompression bomb's header)."""
    import io as _io

    buf = _io.BytesIO()
    Image.new("L", (1, 1)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    ihdr = 8 + 8  # signature, then length + "IHDR"
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[12 : ihdr + 13]))
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)


def test_images_over_the_pixel_limit_are_refused_before_decoding(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_claiming(60000, 60000))  # 3.6 GP claimed in a 70-byte file
    with pytest.raises(InputTooLargeError) as err:
        load_pages(bomb)
    _assert_one_line_naming(err, bomb)

    path = tmp_path / "big.png"
    Image.fromarray(_gradient(40, 40)).save(path)
    for limit in (1000, 100):  # under twice the limit Pillow only warns; over it, it raises: both refused
        with pytest.raises(InputTooLargeError) as err:
            load_pages(path, limits=LoadLimits(max_pixels=limit))
        _assert_one_line_naming(err, path)
        assert "40×40" in str(err.value) or "limit" in str(err.value)
    assert len(list(load_pages(path, limits=LoadLimits(max_pixels=1600)))) == 1


def test_file_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "heavy.png"
    Image.fromarray(_noise_rgb(64, 64)).save(path)
    with pytest.raises(InputTooLargeError) as err:
        load_pages(path, limits=LoadLimits(max_file_bytes=1000))
    _assert_one_line_naming(err, path)


def test_corrupt_image_body(tmp_path: Path) -> None:
    path = tmp_path / "garbage.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)
    with pytest.raises(CorruptInputError) as err:
        list(load_pages(path))
    _assert_one_line_naming(err, path)
