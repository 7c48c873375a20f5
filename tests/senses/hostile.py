"""Files built on the fly: small legitimate documents, and hostile ones (bombs, entity tricks,
absurd nesting) that are cheap to make because they are made of repetition."""

from __future__ import annotations

import functools
import io
import struct
import zlib

MiB = 1 << 20
GiB = 1 << 30


# --- Deflate streams of zeros, built from one repeated block ----------------------------------


@functools.cache
def _zero_block() -> bytes:
    """1 MiB of zeros as raw deflate, ending in a full flush: the same bytes every time, so a
    gigabyte is this block 1024 times (seconds of compression saved)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = compressor.compress(bytes(MiB)) + compressor.flush(zlib.Z_FULL_FLUSH)
    second = compressor.compress(bytes(MiB)) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert first == second
    return first


FINAL_BLOCK = b"\x03\x00"  # an empty, final, fixed-Huffman block


def raw_zeros(mebibytes: int) -> bytes:
    """Raw deflate of that many MiB of zeros."""
    return _zero_block() * mebibytes + FINAL_BLOCK


def zlib_zeros(mebibytes: int) -> bytes:
    """The same in a zlib wrapper (as a PDF's FlateDecode has it), checksum included."""
    size = mebibytes * MiB
    adler = ((size % 65521) << 16) | 1  # for zeros: a stays 1, b adds 1 per byte
    return b"\x78\xda" + raw_zeros(mebibytes) + struct.pack(">I", adler)


# --- Zip archives: Word and Excel documents, and bombs dressed as them --------------------------


def zip_archive(members: list[tuple[str, bytes, int, int]]) -> bytes:
    """A zip of (name, raw deflate data, declared size, crc32) members, written by hand so the
    declared sizes can be anything."""
    body = io.BytesIO()
    directory = io.BytesIO()
    for name, data, size, crc in members:
        encoded = name.encode()
        offset = body.tell()
        fields = struct.pack("<HHHHHIII", 20, 0, 8, 0, 0x21, crc, len(data), size)
        body.write(b"PK\x03\x04" + fields + struct.pack("<HH", len(encoded), 0) + encoded + data)
        directory.write(b"PK\x01\x02" + struct.pack("<H", 20) + fields)
        directory.write(struct.pack("<HHHHHI", len(encoded), 0, 0, 0, 0, 0))
        directory.write(struct.pack("<I", offset) + encoded)
    start = body.tell()
    listing = directory.getvalue()
    count = len(members)
    end = b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, count, count, len(listing), start, 0)
    return body.getvalue() + listing + end


def deflated(name: str, text: bytes) -> tuple[str, bytes, int, int]:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    return name, compressor.compress(text) + compressor.flush(), len(text), zlib.crc32(text)


CONTENT_TYPES = b"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
<Default Extension="xml" ContentType="application/xml"/></Types>"""


def office_bomb(kind: str, mebibytes: int, declared: int | None = None) -> bytes:
    """A docx or xlsx whose main part is that many MiB of zeros; `declared` overrides the
    size its headers admit to. The crc32 is left 0: nothing should read far enough to check."""
    part = "word/document.xml" if kind == "docx" else "xl/workbook.xml"
    size = mebibytes * MiB if declared is None else declared
    return zip_archive(
        [deflated("[Content_Types].xml", CONTENT_TYPES), (part, raw_zeros(mebibytes), size, 0)]
    )


# --- PDFs ---------------------------------------------------------------------------------------


def pdf(contents: list[bytes], filters: bytes = b"") -> bytes:
    """A PDF with one page per content stream (Helvetica as /F1), cross-reference included."""
    pages = len(contents)
    kids = b" ".join(b"%d 0 R" % (4 + 2 * page) for page in range(pages))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, pages),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    for page, content in enumerate(contents):
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
            b"/Resources << /Font << /F1 3 0 R >> >> >>" % (5 + 2 * page)
        )
        objects.append(
            b"<< /Length %d %s>>\nstream\n%s\nendstream" % (len(content), filters, content)
        )
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    start = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    out.writelines(b"%010d 00000 n \n" % offset for offset in offsets)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\n" % (len(objects) + 1))
    out.write(b"startxref\n%d\n%%%%EOF\n" % start)
    return out.getvalue()


def text_pdf(pages: list[list[str]]) -> bytes:
    """A PDF of lines of plain ASCII text, one list of lines per page."""
    contents = []
    for lines in pages:
        shown = b" T* ".join(b"(%s) Tj" % _pdf_string(line) for line in lines)
        contents.append(b"BT /F1 11 Tf 14 TL 72 740 Td " + shown + b" ET")
    return pdf(contents)


def _pdf_string(text: str) -> bytes:
    return (
        text.encode("latin-1").replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
    )


def pdf_bomb(mebibytes: int = 1024) -> bytes:
    """A one-page PDF whose content stream inflates to that many MiB of zeros."""
    return pdf([zlib_zeros(mebibytes)], b"/Filter /FlateDecode ")


# --- Images -------------------------------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height RGB pixels, with a token of image data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(bytes(width * 3 + 1))  # one row: the rest is missing
    signature = b"\x89PNG\r\n\x1a\n"
    return (
        signature
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", pixels)
        + _png_chunk(b"IEND", b"")
    )


# --- Markup -------------------------------------------------------------------------------------


def billion_laughs(levels: int = 10) -> bytes:
    entities = ['<!ENTITY lol0 "lol">']
    entities += [f'<!ENTITY lol{level} "{f"&lol{level - 1};" * 10}">' for level in range(1, levels)]
    declarations = "\n".join(entities)
    text = f"<!DOCTYPE lolz [\n{declarations}\n]>\n<lolz>&lol{levels - 1};</lolz>"
    return f'<?xml version="1.0"?>\n{text}'.encode()


def external_entity(path: str = "/etc/passwd") -> bytes:
    return (
        f'<?xml version="1.0"?>\n<!DOCTYPE data [<!ENTITY secret SYSTEM "file://{path}">]>\n'
        "<data>&secret;</data>"
    ).encode()


def nested_json(depth: int) -> bytes:
    return b"[" * depth + b"1" + b"]" * depth


def nested_xml(depth: int) -> bytes:
    return b"<a>" * depth + b"deep" + b"</a>" * depth


def nested_html(depth: int) -> bytes:
    return b"<html><body>" + b"<div>" * depth + b"deep" + b"</div>" * depth + b"</body></html>"
