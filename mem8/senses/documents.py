"""Documents and images read into chunks of text, in a child process with limits.

`extract` runs `python -m mem8.senses._worker` with the file on stdin and takes the result back
as msgpack: the child caps its own address space (RLIMIT_AS) and processor time (RLIMIT_CPU),
and the parent kills its whole process group after `Limits.seconds` or when cancelled, so a
hostile file can cost a bounded amount of time and memory and never harms the server.
`extract_in_process` does the same reading in the calling process, without those two limits.

Every failure is an `ExtractionError` whose message can be shown to the user as it is;
`missing` is set when an install is missing rather than the file being bad. Choices:

- Text beyond `Limits.characters` is an error, not a silent truncation: half a book imprinted
  as if it were all of it would be worse than a clear refusal.
- Images are read with tesseract. Without it, extraction fails with `missing=True` rather than
  keeping only the visual description, so a server set up without OCR says so instead of
  quietly forgetting the words in every image.
- A zip member's declared compression ratio is only checked for members above `RATIO_FLOOR`
  (small XML parts compress very well and can do no harm); Python's zipfile never inflates a
  member beyond its declared size, so checking the declared sizes is enough.
"""

from __future__ import annotations

import colorsys
import contextlib
import io
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import msgpack

if TYPE_CHECKING:
    import trio
    from PIL import Image

KINDS: tuple[str, ...] = ("pdf", "docx", "xlsx", "json", "xml", "html", "text", "markdown", "image")
CHUNK_CHARS = 1200
SNIFF_BYTES = 64 << 10  # enough of a file for `sniff` to see a docx's or xlsx's part names
RATIO_FLOOR = 1 << 20
INSTALL_HINT = "install it with ./scripts/manage.sh setup"
TESSERACT_HINT = "Debian's tesseract-ocr and tesseract-ocr-eng (run ./scripts/manage.sh setup)"

LABELS = {
    "pdf": "PDF",
    "docx": "Word document",
    "xlsx": "Excel workbook",
    "json": "JSON",
    "xml": "XML",
    "html": "HTML",
    "text": "text",
    "markdown": "Markdown",
    "image": "image",
}
EXTENSIONS = {
    ".json": "json",
    ".xml": "xml",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".txt": "text",
    ".text": "text",
    ".csv": "text",
    ".tsv": "text",
    ".log": "text",
    ".md": "markdown",
    ".markdown": "markdown",
}
BINARY_EXTENSIONS = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".xlsx": "xlsx",
    **dict.fromkeys((".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff"), "image"),
}
IMAGE_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


@dataclass(frozen=True)
class Chunk:
    text: str  # at most CHUNK_CHARS characters, cut at paragraph, sentence or line boundaries
    where: str  # "page 3", "sheet Greetings", "header", "footer", "table 2", "visual", or ""
    modality: str  # "document", or "image" for an image's OCR text and visual description


@dataclass(frozen=True)
class Extraction:
    kind: str  # one of KINDS
    chunks: list[Chunk]
    pages: int  # a PDF's pages, a workbook's sheets, 1 otherwise


@dataclass(frozen=True)
class Limits:
    seconds: float = 60.0  # wall time of the child process
    memory: int = 1 << 30  # the child's address space (RLIMIT_AS), bytes
    characters: int = 5_000_000  # extracted text; more is an error
    pixels: int = 50_000_000  # an image's pixels, checked from its header before decoding
    unzipped: int = 200 << 20  # declared uncompressed size of a docx's or xlsx's members
    ratio: float = 100.0  # declared compression ratio of any large archive member
    depth: int = 1000  # nesting of JSON, XML and HTML


class ExtractionError(Exception):
    """A file that could not be read; str(error) is a clear message for the user, and
    `missing` is True when the cause is a missing install (package or tesseract)."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


class _Section(NamedTuple):
    text: str
    where: str
    modality: str


class _Sections:
    """The text read so far, one section per page, sheet, table, header...; refuses to hold
    more characters than the limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.characters = 0
        self.read: list[_Section] = []

    def add(self, text: str, where: str = "", modality: str = "document") -> None:
        text = tidy(text)
        self.characters += len(text)
        if self.characters > self.limit:
            raise ExtractionError(
                f"extraction stopped: the file has more than {self.limit:,} characters of text"
            )
        if text:
            self.read.append(_Section(text, where, modality))


# --- What a file is ----------------------------------------------------------------------------


def sniff(filename: str, head: bytes) -> str:
    """The kind of a file from its first bytes (at least SNIFF_BYTES of them, or all) and name:
    content decides when it is unambiguous, the extension only tells text kinds apart."""
    if not head:
        raise ExtractionError("the file is empty")
    extension = Path(filename).suffix.lower()
    kind = _sniff_content(head, extension)
    if kind is not None:
        return kind
    if extension in BINARY_EXTENSIONS:
        label = LABELS[BINARY_EXTENSIONS[extension]]
        raise ExtractionError(f"the file is named {extension} but its content is not a {label}")
    if extension and extension not in EXTENSIONS:
        raise ExtractionError(
            f"unsupported file type {extension}: mem8 reads PDF, Word (.docx), Excel (.xlsx), "
            "JSON, XML, HTML, text, Markdown and images (PNG, JPEG, GIF, WebP, BMP, TIFF)"
        )
    if _looks_binary(head):
        named = f"named {extension}" if extension else "without an extension"
        raise ExtractionError(f"the file is {named} but its content is binary, not text")
    return EXTENSIONS.get(extension, "text")


def _sniff_content(head: bytes, extension: str) -> str | None:
    if b"%PDF-" in head[:1024]:
        return "pdf"
    if _image_format(head) is not None:
        return "image"
    if head.startswith(b"PK\x03\x04"):
        return _office_kind(head, extension)
    return None


def _image_format(head: bytes) -> str | None:
    for magic, name in IMAGE_MAGIC:
        if head.startswith(magic):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    # "BM" alone is too common a start of text: a BMP's info header has one of a few sizes
    if head[:2] == b"BM" and head[14:18] in {
        bytes([n, 0, 0, 0]) for n in (12, 40, 52, 56, 108, 124)
    }:
        return "BMP"
    return None


def _office_kind(head: bytes, extension: str) -> str:
    names, complete = _zip_names(head)
    if any(name.startswith("word/") for name in names):
        return "docx"
    if any(name.startswith("xl/") for name in names):
        return "xlsx"
    if not complete and extension in {".docx", ".xlsx"}:
        return extension[1:]  # the parts lie beyond the head: the archive check will tell
    raise ExtractionError("the file is a zip archive, but not a Word or Excel document")


def _zip_names(head: bytes) -> tuple[list[str], bool]:
    """Member names, and whether that is all of them: from the central directory when the head
    is the whole archive, else from the local headers that the head holds."""
    try:
        with zipfile.ZipFile(io.BytesIO(head)) as archive:
            return archive.namelist(), True
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        pass
    names = []
    for local in re.finditer(rb"PK\x03\x04", head):
        start = local.start()
        length = int.from_bytes(head[start + 26 : start + 28], "little")
        names.append(head[start + 30 : start + 30 + length].decode("cp437"))
    return names, False


# Bytes that plain text in any encoding is made of: all but the C0 controls (tab, line ends,
# form feed and escape excepted) and DEL.
CONTROLS = bytes([*range(0x09), 0x0B, *range(0x0E, 0x1B), *range(0x1C, 0x20), 0x7F])


def _looks_binary(head: bytes) -> bool:
    """NUL bytes, or more than a few percent of control characters (text in a legacy encoding
    is not binary: reading it says it is not UTF-8)."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return False  # UTF-16, whose ASCII has a NUL in every other byte
    sample = head[:SNIFF_BYTES]
    controls = len(sample) - len(sample.translate(None, delete=CONTROLS))
    return b"\x00" in sample or controls > 0.02 * len(sample)


# --- Reading in this process -------------------------------------------------------------------


def extract_in_process(data: bytes, filename: str, limits: Limits = Limits()) -> Extraction:
    """Read a file in the calling process (the child does this; tests and benchmarks too)."""
    kind = sniff(filename, data)
    sections = _Sections(limits.characters)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # openpyxl and friends warn about harmless oddities
            pages = READERS[kind](data, limits, sections)
    except ExtractionError:
        raise
    except MemoryError:
        raise ExtractionError(_out_of_memory(limits)) from None
    except RecursionError:
        raise ExtractionError(f"could not read the {LABELS[kind]}: it nests too deeply") from None
    except Exception as error:  # parsers of hostile files raise anything: keep the reason only
        raise ExtractionError(f"could not read the {LABELS[kind]}: {_reason(error)}") from error
    chunks = [
        Chunk(text, section.where, section.modality)
        for section in sections.read
        for text in split_text(section.text)
    ]
    return Extraction(kind, chunks, pages)


def _reason(error: BaseException) -> str:
    reason = " ".join(str(error).split()) or type(error).__name__
    return reason if len(reason) <= 300 else reason[:297] + "..."


def _out_of_memory(limits: Limits) -> str:
    return f"extraction stopped: the document needs more than {_size(limits.memory)} of memory"


def _size(count: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if count >= 1 << shift:
            return f"{count / (1 << shift):.3g} {unit}"
    return f"{count} bytes"


def _missing(package: str, what: str) -> ExtractionError:
    return ExtractionError(
        f"reading {what} needs the Python package {package}: {INSTALL_HINT}", missing=True
    )


def _read_pdf(data: bytes, limits: Limits, sections: _Sections) -> int:
    try:
        import pypdf
        from pypdf.errors import LimitReachedError
    except ImportError as error:
        raise _missing("pypdf", "PDFs") from error
    cap = _stream_cap(limits)
    # every decoder's output, so one compressed stream cannot inflate to gigabytes
    caps = {
        "zlib_maximum_output_length": cap,
        "lzw_maximum_output_length": cap,
        "run_length_maximum_output_length": cap,
        "brotli_maximum_output_length": cap,
        "jbig2_maximum_output_length": cap,
        "array_based_stream_maximum_output_length": cap,
        "image_maximum_buffer_size": cap,
        "stream_decoding_work_maximum_length": 4 * cap,
    }
    try:
        with pypdf.apply_configuration(pypdf.get_configuration().with_overwrites(**caps)):
            reader = pypdf.PdfReader(io.BytesIO(data))
            if reader.is_encrypted and not reader.decrypt(""):
                raise ExtractionError("the PDF is protected by a password: upload it unprotected")
            for number, page in enumerate(reader.pages, 1):
                sections.add(page.extract_text(), f"page {number}")
            return len(reader.pages)
    except LimitReachedError as error:
        raise ExtractionError(
            f"extraction stopped: the PDF has a part that unpacks to more than {_size(cap)}"
        ) from error


def _stream_cap(limits: Limits) -> int:
    """Bytes one PDF stream may decode to: a sixteenth of the memory, at least 16 MiB."""
    return max(16 << 20, limits.memory // 16)


def _check_archive(data: bytes, label: str, limits: Limits) -> None:
    """Refuse a zip bomb from its declared sizes, before anything is decompressed."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
        raise ExtractionError(f"could not read the {label}: {_reason(error)}") from None
    total = sum(member.file_size for member in members)
    if total > limits.unzipped:
        raise ExtractionError(
            f"the {label} unpacks to {_size(total)}, more than the {_size(limits.unzipped)} "
            "allowed (a zip bomb?)"
        )
    for member in members:
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size > RATIO_FLOOR and ratio > limits.ratio:
            raise ExtractionError(
                f"the {label}'s part {member.filename} is compressed {ratio:,.0f} to 1, more "
                f"than the {limits.ratio:g} to 1 allowed (a zip bomb?)"
            )


def _read_docx(data: bytes, limits: Limits, sections: _Sections) -> int:
    _check_archive(data, "Word document", limits)
    try:
        import docx
        from docx.table import Table
    except ImportError as error:
        raise _missing("python-docx", "Word documents") from error
    document = docx.Document(io.BytesIO(data))
    paragraphs: list[str] = []
    tables = 0
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            sections.add("\n\n".join(paragraphs))
            paragraphs = []
            tables += 1
            sections.add(_table_text(block), f"table {tables}")
        else:
            paragraphs.append(block.text)
    sections.add("\n\n".join(paragraphs))
    seen: set[tuple[str, str]] = set()
    for section in document.sections:
        for where, parts in (
            ("header", (section.header, section.first_page_header, section.even_page_header)),
            ("footer", (section.footer, section.first_page_footer, section.even_page_footer)),
        ):
            for part in parts:
                if part.is_linked_to_previous:
                    continue  # no text of its own (and reading it would add an empty one)
                text = "\n\n".join(_block_text(block) for block in part.iter_inner_content())
                if (where, text) not in seen:
                    seen.add((where, text))
                    sections.add(text, where)
    return 1


def _block_text(block: Any) -> str:
    from docx.table import Table

    return _table_text(block) if isinstance(block, Table) else str(block.text)


def _table_text(table: Any) -> str:
    """Rows as "cell | cell", a merged cell once."""
    rows = []
    for row in table.rows:
        cells: list[str] = []
        previous = None
        for cell in row.cells:
            if cell._tc is not previous:
                cells.append(" ".join(cell.text.split()))
            previous = cell._tc
        rows.append(" | ".join(cells))
    return "\n".join(rows)


def _read_xlsx(data: bytes, limits: Limits, sections: _Sections) -> int:
    _check_archive(data, "Excel workbook", limits)
    try:
        import openpyxl
    except ImportError as error:
        raise _missing("openpyxl", "Excel workbooks") from error
    workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        for sheet in workbook.worksheets:
            rows = (_row_text(row) for row in sheet.iter_rows(values_only=True))
            sections.add("\n".join(row for row in rows if row), f"sheet {sheet.title}")
        return len(workbook.worksheets)
    finally:
        workbook.close()


def _row_text(values: tuple[Any, ...]) -> str:
    cells = ["" if value is None else str(value) for value in values]
    while cells and not cells[-1]:
        cells.pop()
    return ", ".join(cells)


def _read_json(data: bytes, limits: Limits, sections: _Sections) -> int:
    text = _decode(data)
    depth = _json_depth(text)
    if depth > limits.depth:
        raise ExtractionError(f"the JSON nests {depth:,} levels deep, more than {limits.depth:,}")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ExtractionError(f"could not read the JSON: {error}") from None
    sections.add("\n".join(_flatten(value)))
    return 1


def _json_depth(text: str) -> int:
    """The deepest nesting of arrays and objects, counted without parsing (strings left out)."""
    brackets = re.sub(r"[^\[\]{}]+", "", re.sub(r'"[^"\\]*(?:\\.[^"\\]*)*"', "", text))
    depth = deepest = 0
    for bracket in brackets:
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _flatten(value: Any) -> list[str]:
    """Lines of "path: value", e.g. "people[0].name: Ann", walked without recursion."""
    lines = []
    pending: list[tuple[str, Any]] = [("", value)]
    while pending:
        path, item = pending.pop()
        if isinstance(item, dict):
            keys = [f"{path}.{key}" if path else str(key) for key in item]
            pending.extend(reversed(list(zip(keys, item.values(), strict=True))))
        elif isinstance(item, list):
            pending.extend(reversed([(f"{path}[{i}]", entry) for i, entry in enumerate(item)]))
        else:
            shown = json.dumps(item, ensure_ascii=False) if not isinstance(item, str) else item
            lines.append(f"{path}: {shown}" if path else shown)
    return lines


class _XmlText:
    """An XML parser target that keeps the text, one line per element end, and refuses to go
    deeper than the limit (no tree is built, so depth costs nothing until then)."""

    def __init__(self, depth: int) -> None:
        self.limit = depth
        self.depth = 0
        self.parts: list[str] = []

    def start(self, tag: str, attributes: dict[str, str]) -> None:
        self.depth += 1
        if self.depth > self.limit:
            raise ExtractionError(f"the XML nests deeper than {self.limit:,} levels")

    def end(self, tag: str) -> None:
        self.depth -= 1
        self.parts.append("\n")

    def data(self, text: str) -> None:
        self.parts.append(text)

    def close(self) -> str:
        lines = (" ".join(line.split()) for line in "".join(self.parts).splitlines())
        return "\n".join(line for line in lines if line)


def _read_xml(data: bytes, limits: Limits, sections: _Sections) -> int:
    try:
        from defusedxml import DefusedXmlException
        from defusedxml.ElementTree import DefusedXMLParser
    except ImportError as error:
        raise _missing("defusedxml", "XML") from error
    target = _XmlText(limits.depth)
    parser = DefusedXMLParser(target=target, forbid_dtd=False)  # entities stay forbidden
    try:
        parser.feed(data)
        sections.add(parser.close())
    except DefusedXmlException as error:
        raise ExtractionError(
            f"the XML was refused: it declares entities or external references ({error!r}), "
            "which could expand without bound or read other files"
        ) from None
    return 1


def _read_html(data: bytes, limits: Limits, sections: _Sections) -> int:
    try:
        import trafilatura
    except ImportError as error:
        raise _missing("trafilatura", "HTML") from error
    text = _decode(data)
    depth = _html_depth(text)
    if depth > limits.depth:
        raise ExtractionError(f"the HTML nests {depth:,} levels deep, more than {limits.depth:,}")
    main = trafilatura.extract(text, include_comments=False, include_tables=True)
    sections.add(main or trafilatura.html2txt(text))
    return 1


HTML_TAG = re.compile(r"<(/?)([a-zA-Z][\w:-]*)[^>]*?(/?)>")
# void elements, and ones whose end tag is implied by the next (a page of unclosed <p>s is flat)
FLAT_TAGS = frozenset(
    {
        *("area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"),
        *("track", "wbr", "p", "li", "dt", "dd", "tr", "td", "th", "option"),
    }
)


def _html_depth(text: str) -> int:
    """Nesting of the tags, roughly: elements that do not nest in practice are left out."""
    depth = deepest = 0
    for tag in HTML_TAG.finditer(text):
        if tag[2].lower() in FLAT_TAGS or tag[3]:
            continue
        depth = max(depth - 1, 0) if tag[1] else depth + 1
        deepest = max(deepest, depth)
    return deepest


def _read_text(data: bytes, limits: Limits, sections: _Sections) -> int:
    sections.add(_decode(data))
    return 1


def _decode(data: bytes) -> str:
    """UTF-8 (with or without a BOM), or UTF-16 with a BOM."""
    try:
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            return data.decode("utf-16")
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ExtractionError(
            f"the file is not UTF-8 text: byte 0x{data[error.start]:02x} at position "
            f"{error.start:,} cannot be decoded"
        ) from None


def _read_image(data: bytes, limits: Limits, sections: _Sections) -> int:
    try:
        from PIL import Image
    except ImportError as error:
        raise _missing("pillow", "images") from error
    format_name = _image_format(data) or ""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=[format_name])
            width, height = image.size  # from the header: nothing is decoded yet
            if width * height > limits.pixels:
                raise ExtractionError(
                    f"the image is {width:,} x {height:,} pixels, more than the "
                    f"{limits.pixels:,} allowed"
                )
            image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ExtractionError(
                f"the image has more than the {limits.pixels:,} pixels allowed"
            ) from None
    sections.add(describe(image, format_name), "visual", "image")
    sections.add(_ocr(image, limits), "", "image")
    return 1


def describe(image: Image.Image, format_name: str) -> str:
    """The image's own features in plain words: format, size, its three main colours and how
    bright it is (deterministic: the same pixels give the same words)."""
    from PIL import ImageStat

    width, height = image.size
    small = _on_white(image)
    small.thumbnail((128, 128))
    shares = _colour_shares(small)
    top = sorted(shares.items(), key=lambda share: (-share[1], share[0]))[:3]
    colours = ", ".join(f"{name} ({share:.0%})" for name, share in top)
    brightness = ImageStat.Stat(small.convert("L")).mean[0] / 255
    tone = "dark" if brightness < 0.3 else "bright" if brightness > 0.7 else "medium"
    return (
        f"A {format_name} image, {width} x {height} pixels. Main colours: {colours}. "
        f"Overall {tone} (mean brightness {brightness:.0%})."
    )


def _on_white(image: Image.Image) -> Image.Image:
    """The image in RGB, any transparency laid over white."""
    from PIL import Image

    if image.mode in {"RGBA", "LA", "PA"} or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, "white")
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def _colour_shares(image: Image.Image) -> dict[str, float]:
    """The share of the pixels each colour name covers, after quantising to 8 colours."""
    quantised = image.quantize(colors=8)
    palette = quantised.getpalette() or []
    shares: dict[str, float] = {}
    total = image.width * image.height
    for count, index in quantised.getcolors() or []:
        slot = 3 * cast(int, index)  # a palette image's colours are indexes
        red, green, blue = palette[slot : slot + 3]
        name = colour_name(red, green, blue)
        shares[name] = shares.get(name, 0.0) + count / total
    return shares


HUES = (
    *((15, "red"), (45, "orange"), (70, "yellow"), (165, "green"), (195, "cyan")),
    *((255, "blue"), (290, "purple"), (335, "pink"), (361, "red")),
)


def colour_name(red: int, green: int, blue: int) -> str:
    """A plain name for a colour: black, white, greys, or a hue, with "dark" when it is dim."""
    hue, saturation, value = colorsys.rgb_to_hsv(red / 255, green / 255, blue / 255)
    if value < 0.15:
        return "black"
    if saturation < 0.15:
        greys = ((0.9, "white"), (0.65, "light grey"), (0.35, "grey"), (0.0, "dark grey"))
        return next(name for floor, name in greys if value >= floor)
    degrees = hue * 360
    name = next(name for bound, name in HUES if degrees < bound)
    if name in {"orange", "red"} and value < 0.6 and 10 <= degrees < 45:
        return "brown"
    return f"dark {name}" if value < 0.45 else name


def _ocr(image: Image.Image, limits: Limits) -> str:
    """The words tesseract reads in the image (English, one thread)."""
    from PIL import Image

    tesseract = shutil.which("tesseract")
    if tesseract is None:
        raise ExtractionError(f"reading text in images needs {TESSERACT_HINT}", missing=True)
    grey = _on_white(image).convert("L")
    if max(grey.size) < 1000:  # tesseract misses small print; twice the size helps it
        grey = grey.resize((grey.width * 2, grey.height * 2), Image.Resampling.LANCZOS)
    png = io.BytesIO()
    grey.save(png, "PNG")
    try:
        done = subprocess.run(
            [tesseract, "stdin", "stdout", "-l", "eng"],
            input=png.getvalue(),
            capture_output=True,
            timeout=limits.seconds,
            env={**os.environ, "OMP_THREAD_LIMIT": "1"},
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ExtractionError(f"extraction stopped after {limits.seconds:g} s") from None
    if done.returncode != 0:
        problem = done.stderr.decode(errors="replace").strip().splitlines() or ["no message"]
        if "Failed loading language" in problem[0]:
            raise ExtractionError(f"reading text in images needs {TESSERACT_HINT}", missing=True)
        raise ExtractionError(f"could not read the text in the image: tesseract: {problem[-1]}")
    return done.stdout.decode("utf-8", errors="replace")


READERS: dict[str, Callable[[bytes, Limits, _Sections], int]] = {
    "pdf": _read_pdf,
    "docx": _read_docx,
    "xlsx": _read_xlsx,
    "json": _read_json,
    "xml": _read_xml,
    "html": _read_html,
    "text": _read_text,
    "markdown": _read_text,
    "image": _read_image,
}


# --- Chunks ------------------------------------------------------------------------------------


def tidy(text: str) -> str:
    """Line ends unified, control characters and trailing spaces dropped, no more than one
    blank line in a row."""
    text = re.sub(r"\r\n?", "\n", text)
    text = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", "", text)
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


# Finer and finer places to cut a text that is too long: paragraphs, sentences, lines, words.
BOUNDARIES = (
    re.compile(r"\n\s*\n"),
    re.compile("(?<=[.!?\u2026\u3002\uff01\uff1f])\\s+"),  # with the ellipsis, CJK stops
    re.compile(r"\n"),
    re.compile(r"\s+"),
)


def split_text(text: str) -> list[str]:
    """The text cut into chunks of at most CHUNK_CHARS characters, each filled with as many
    whole paragraphs (else sentences, lines, words) as fit."""
    chunks: list[str] = []
    current = ""
    for piece in _pieces(text, 0):
        if len(current) + len(piece.rstrip()) > CHUNK_CHARS:
            chunks.append(current.strip())
            current = ""
        current += piece
    chunks.append(current.strip())
    return [chunk for chunk in chunks if chunk]


def _pieces(text: str, level: int) -> list[str]:
    """The text cut at this level's boundaries (each piece keeping the boundary after it),
    pieces that are still too long cut at the next level, a word too long cut anywhere."""
    if len(text) <= CHUNK_CHARS:
        return [text]
    if level == len(BOUNDARIES):
        return [text[start : start + CHUNK_CHARS] for start in range(0, len(text), CHUNK_CHARS)]
    cuts = [0, *(match.end() for match in BOUNDARIES[level].finditer(text)), len(text)]
    return [
        piece
        for start, end in itertools.pairwise(cuts)
        for piece in _pieces(text[start:end], level + 1)
    ]


# --- Reading in a child process ----------------------------------------------------------------


async def extract(data: bytes, filename: str, limits: Limits = Limits()) -> Extraction:
    """Read a file in a child process with limits on its memory and time; killed if cancelled."""
    import trio  # here, not above: the child imports this module and has no use for trio

    request = order(filename, limits) + data
    package_root = str(Path(__file__).resolve().parents[2])  # the child runs this same code
    python_path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": python_path, "OMP_THREAD_LIMIT": "1"}
    with trio.move_on_after(limits.seconds) as deadline:
        done = await _run_process(
            [sys.executable, "-m", "mem8.senses._worker"],
            stdin=request,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env=env,
            start_new_session=True,  # its own process group, so tesseract dies with it
            deliver_cancel=_kill_group,
        )
    if deadline.cancelled_caught:
        raise ExtractionError(f"extraction stopped after {limits.seconds:g} s")
    return _answer(done.returncode, done.stdout, done.stderr, limits)


async def _run_process(command: list[str], **options: Any) -> subprocess.CompletedProcess[bytes]:
    import trio

    try:
        return await trio.run_process(command, **options)
    except OSError as error:
        raise ExtractionError(f"could not start the reader process: {_reason(error)}") from None


async def _kill_group(process: trio.Process) -> None:
    with contextlib.suppress(ProcessLookupError):  # it may have ended on its own meanwhile
        os.killpg(process.pid, signal.SIGKILL)


def _answer(returncode: int, stdout: bytes, stderr: bytes, limits: Limits) -> Extraction:
    """The child's reply as an Extraction, or the reason it gave none as an ExtractionError."""
    if returncode == 0:
        try:
            answer = msgpack.unpackb(stdout)
        except ValueError:
            answer = None
        if isinstance(answer, dict) and "error" in answer:
            raise ExtractionError(answer["error"], missing=answer["missing"])
        if isinstance(answer, dict):
            chunks = [Chunk(*chunk) for chunk in answer["chunks"]]
            return Extraction(answer["kind"], chunks, answer["pages"])
    if returncode == -signal.SIGXCPU:
        raise ExtractionError(f"extraction stopped after {limits.seconds:g} s")
    if any(sign in stderr for sign in (b"MemoryError", b"bad_alloc", b"out of memory")):
        raise ExtractionError(_out_of_memory(limits))
    if returncode < 0:
        ending = f"was killed by {signal.strsignal(-returncode) or f'signal {-returncode}'}"
    else:
        ending = f"ended with exit code {returncode}" if returncode else "gave no answer"
    raise ExtractionError(f"extraction failed: the reader process {ending}")


def order(filename: str, limits: Limits) -> bytes:
    """What the child is asked to do, framed by its length; the file follows it as it is, so
    the parent holds one copy of the file beside the caller's, not two."""
    packed: bytes = msgpack.packb({"filename": filename, "limits": asdict(limits)})
    return len(packed).to_bytes(4, "big") + packed


def reply(extraction: Extraction) -> bytes:
    """An Extraction as the child sends it back."""
    chunks = [[chunk.text, chunk.where, chunk.modality] for chunk in extraction.chunks]
    packed: bytes = msgpack.packb(
        {"kind": extraction.kind, "pages": extraction.pages, "chunks": chunks}
    )
    return packed


def error_reply(error: ExtractionError) -> bytes:
    packed: bytes = msgpack.packb({"error": str(error), "missing": error.missing})
    return packed
