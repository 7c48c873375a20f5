"""Documents and images come out with their known text: the shared fixtures (real files from
pypdf's, python-docx's and xlsx2csv's own tests) and files generated here for every kind."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import pytest
import trio
from PIL import Image, ImageDraw, ImageFont

from mem8.senses.documents import (
    CHUNK_CHARS,
    Chunk,
    Extraction,
    ExtractionError,
    Limits,
    colour_name,
    extract,
    extract_in_process,
    sniff,
    split_text,
)
from tests.senses import hostile

# In CI the repository is cloned with shared/ beside it: /work/main and /work/shared here.
FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def words(text: str) -> str:
    return " ".join(text.split())


def everything(extraction: Extraction) -> str:
    return "\n".join(chunk.text for chunk in extraction.chunks)


# --- The shared fixtures ------------------------------------------------------------------------


def test_crazyones_pdf_reads_as_its_text() -> None:
    extraction = extract_in_process(fixture("pdf/crazyones.pdf"), "crazyones.pdf")
    expected = (FIXTURES / "pdf" / "crazyones.txt").read_text()
    assert extraction.kind == "pdf"
    assert extraction.pages == 1
    assert words(everything(extraction)) == words(expected)
    assert {chunk.where for chunk in extraction.chunks} == {"page 1"}


def test_toy_pdf_has_every_text_operator() -> None:
    text = everything(extract_in_process(fixture("pdf/toy.pdf"), "toy.pdf"))
    for line in ("AWAY again1", "AWAY again2", "Something[cited]", "Single quote operator"):
        assert line in text
    assert "Double quote operator" in text
    assert "Last Txt" in text


def test_docx_paragraphs_and_heading() -> None:
    extraction = extract_in_process(fixture("docx/test.docx"), "test.docx")
    assert extraction.kind == "docx"
    assert extraction.chunks == [
        Chunk("python-docx was here!\n\npython-docx was here too!", "", "document")
    ]


def test_docx_hyperlink_text_is_kept() -> None:
    text = everything(extract_in_process(fixture("docx/par-hyperlinks.docx"), "links.docx"))
    assert text.split("\n\n") == [
        "No hyperlinks",
        "One awesome hyperlink.",
        "Three hyperlinks: the first one here, the second one, and the third.",
    ]


def test_xlsx_rows_match_the_expected_csv() -> None:
    extraction = extract_in_process(fixture("xlsx/utf8.xlsx"), "utf8.xlsx")
    expected = list(csv.reader(io.StringIO((FIXTURES / "xlsx/utf8.expected.csv").read_text())))
    assert extraction.kind == "xlsx"
    assert extraction.pages == 1
    assert [chunk.where for chunk in extraction.chunks] == ["sheet Sheet1"]
    rows = [line.split(", ") for line in extraction.chunks[0].text.splitlines()]
    assert rows == expected


def test_the_child_process_reads_what_this_process_reads() -> None:
    data = fixture("pdf/crazyones.pdf")
    assert trio.run(extract, data, "crazyones.pdf") == extract_in_process(data, "crazyones.pdf")


# --- Generated documents ------------------------------------------------------------------------


def test_generated_pdf_pages_are_located() -> None:
    data = hostile.text_pdf([["First page (one)."], ["Second page, two."], ["Third."]])
    extraction = extract_in_process(data, "three.pdf")
    assert extraction.pages == 3
    assert [(c.where, c.text) for c in extraction.chunks] == [
        ("page 1", "First page (one)."),
        ("page 2", "Second page, two."),
        ("page 3", "Third."),
    ]


def test_pdf_with_a_password_is_refused_and_one_without_is_read() -> None:
    import pypdf

    def encrypted(password: str) -> bytes:
        writer = pypdf.PdfWriter(clone_from=io.BytesIO(hostile.text_pdf([["Secret plans"]])))
        writer.encrypt(password, "owner", algorithm="RC4-128")
        out = io.BytesIO()
        writer.write(out)
        return out.getvalue()

    with pytest.raises(ExtractionError, match="protected by a password"):
        extract_in_process(encrypted("secret"), "locked.pdf")
    assert everything(extract_in_process(encrypted(""), "open.pdf")) == "Secret plans"


def test_docx_body_order_tables_headers_and_footers() -> None:
    import docx

    document = docx.Document()
    document.add_heading("Quarterly report", level=1)
    document.add_paragraph("Revenue grew.")
    table = document.add_table(rows=2, cols=2)
    for row, cells in enumerate([("Region", "Sales"), ("North", "12")]):
        for column, text in enumerate(cells):
            table.cell(row, column).text = text
    document.add_paragraph("Costs fell.")
    document.sections[0].header.paragraphs[0].text = "ACME confidential"
    document.sections[0].footer.paragraphs[0].text = "Page footer text"
    out = io.BytesIO()
    document.save(out)
    extraction = extract_in_process(out.getvalue(), "report.docx")
    assert [(c.where, c.text) for c in extraction.chunks] == [
        ("", "Quarterly report\n\nRevenue grew."),
        ("table 1", "Region | Sales\nNorth | 12"),
        ("", "Costs fell."),
        ("header", "ACME confidential"),
        ("footer", "Page footer text"),
    ]


def test_xlsx_every_sheet_by_name() -> None:
    import openpyxl

    workbook = openpyxl.Workbook()
    workbook.active.title = "Greetings"
    workbook.active.append(["Hello", "world", None, 3])
    workbook.active.append([None, "second row"])
    workbook.create_sheet("Numbers").append([1.5, 2, "three"])
    workbook.create_sheet("Empty")
    out = io.BytesIO()
    workbook.save(out)
    extraction = extract_in_process(out.getvalue(), "book.xlsx")
    assert extraction.pages == 3
    assert [(c.where, c.text) for c in extraction.chunks] == [
        ("sheet Greetings", "Hello, world, , 3\n, second row"),
        ("sheet Numbers", "1.5, 2, three"),
    ]


def test_json_is_flattened_to_paths() -> None:
    value = {"name": "Ann", "pets": [{"kind": "cat", "age": 3}], "tall": True, "note": None}
    text = everything(extract_in_process(json.dumps(value).encode(), "ann.json"))
    assert text.splitlines() == [
        "name: Ann",
        "pets[0].kind: cat",
        "pets[0].age: 3",
        "tall: true",
        "note: null",
    ]


def test_xml_text_content() -> None:
    data = b"<people><person><name>Ann</name><city>Lisbon</city></person></people>"
    assert everything(extract_in_process(data, "people.xml")).splitlines() == ["Ann", "Lisbon"]


def test_html_main_text_without_the_menu() -> None:
    story = " ".join(["The lighthouse keeper wrote every evening about the storms."] * 8)
    page = (
        "<html><head><title>Log</title></head><body>"
        "<nav><ul><li><a href='/'>Home</a></li><li><a href='/shop'>Shop now</a></li></ul></nav>"
        f"<article><h1>Keeper's log</h1><p>{story}</p><p>{story}</p></article>"
        "<footer>Copyright cookies policy</footer></body></html>"
    )
    text = everything(extract_in_process(page.encode(), "log.html"))
    assert "lighthouse keeper" in text
    assert "Shop now" not in text


def test_html_too_short_for_a_main_text_falls_back_to_all_text() -> None:
    text = everything(extract_in_process(b"<html><body><p>Hi there</p></body></html>", "hi.htm"))
    assert text == "Hi there"


def test_text_and_markdown() -> None:
    markdown = b"# Title\n\nSome *words* here.\n\n- one\n- two\n"
    extraction = extract_in_process(markdown, "notes.md")
    assert extraction.kind == "markdown"
    assert everything(extraction) == markdown.decode().strip()
    assert (
        extract_in_process("caf\u00e9\r\n".encode("utf-16"), "bom.txt").chunks[0].text
        == "caf\u00e9"
    )
    assert everything(extract_in_process(b"no extension at all", "README")) == "no extension at all"


def test_text_that_is_not_utf8_is_refused_clearly() -> None:
    with pytest.raises(ExtractionError, match="not UTF-8 text: byte 0xe9 at position 3"):
        extract_in_process(b"caf\xe9 au lait " * 20 + b"\xff", "latin1.txt")


def test_more_characters_than_the_limit_is_an_error() -> None:
    with pytest.raises(ExtractionError, match="more than 100 characters"):
        extract_in_process(b"word " * 100, "long.txt", Limits(characters=100))


# --- Images -------------------------------------------------------------------------------------


def drawn(text: str, format_name: str = "PNG", background: str = "white") -> bytes:
    image = Image.new("RGB", (900, 220), background)
    ImageDraw.Draw(image).text((30, 70), text, fill="black", font=ImageFont.load_default(size=56))
    out = io.BytesIO()
    image.save(out, format_name)
    return out.getvalue()


def test_image_text_is_read_and_the_image_described() -> None:
    extraction = extract_in_process(drawn("Meeting at noon"), "note.png")
    assert extraction.kind == "image"
    visual, *read = extraction.chunks
    assert visual.where == "visual"
    assert visual.modality == "image"
    assert visual.text.startswith("A PNG image, 900 x 220 pixels. Main colours: white (")
    assert "Overall bright" in visual.text
    assert all(chunk.modality == "image" for chunk in read)
    assert "meeting at noon" in " ".join(chunk.text for chunk in read).lower()


def test_the_description_names_colours_deterministically() -> None:
    data = drawn("RED", "JPEG", background="red")
    first = extract_in_process(data, "red.jpg").chunks[0].text
    assert first == extract_in_process(data, "red.jpg").chunks[0].text
    assert first.startswith("A JPEG image, 900 x 220 pixels. Main colours: red (")
    names = [colour_name(*rgb) for rgb in [(0, 0, 0), (255, 255, 255), (0, 0, 255), (0, 128, 0)]]
    assert names == ["black", "white", "blue", "green"]
    assert colour_name(128, 128, 128) == "grey"
    assert colour_name(120, 70, 20) == "brown"


def test_a_transparent_image_is_described_over_white() -> None:
    out = io.BytesIO()
    Image.new("RGBA", (64, 64), (0, 0, 0, 0)).save(out, "PNG")
    extraction = extract_in_process(out.getvalue(), "clear.png")
    assert [chunk.where for chunk in extraction.chunks] == ["visual"]  # and no text to read
    assert "white (100%)" in extraction.chunks[0].text


def test_without_tesseract_images_fail_as_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ExtractionError, match="tesseract-ocr") as caught:
        extract_in_process(drawn("Hello"), "hello.png")
    assert caught.value.missing


def test_a_missing_package_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pypdf", None)  # what an uninstalled package looks like
    with pytest.raises(ExtractionError, match=r"needs the Python package pypdf: .*manage.sh setup"):
        extract_in_process(fixture("pdf/toy.pdf"), "toy.pdf")


# --- What a file is -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "head", "kind"),
    [
        ("report.pdf", b"%PDF-1.7\n...", "pdf"),
        ("report.txt", b"%PDF-1.4\n...", "pdf"),  # content wins
        ("photo.jpg", b"\x89PNG\r\n\x1a\n....", "image"),
        ("photo", b"\xff\xd8\xff\xe0....", "image"),
        ("anim.gif", b"GIF89a....", "image"),
        ("pic.webp", b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image"),
        ("scan.tiff", b"II*\x00....", "image"),
        ("data.json", b'{"a": 1}', "json"),
        ("feed.xml", b"<feed/>", "xml"),
        ("page.htm", b"<html></html>", "html"),
        ("notes.markdown", b"# hi", "markdown"),
        ("LICENSE", "caf\u00e9".encode(), "text"),
        ("table.csv", b"a,b\n1,2\n", "text"),
        ("bom.txt", "hi".encode("utf-16"), "text"),
    ],
)
def test_sniff(filename: str, head: bytes, kind: str) -> None:
    assert sniff(filename, head) == kind


def test_sniff_tells_office_documents_by_their_parts() -> None:
    docx_file = fixture("docx/test.docx")
    xlsx_file = fixture("xlsx/utf8.xlsx")
    assert sniff("whatever.zip", docx_file) == "docx"
    assert sniff("whatever.zip", xlsx_file) == "xlsx"
    assert sniff("report.docx", docx_file[:4096]) == "docx"  # local headers in the head
    other = hostile.zip_archive([hostile.deflated("notes/a.txt", b"hello")])
    with pytest.raises(ExtractionError, match="zip archive, but not a Word or Excel"):
        sniff("a.docx", other)


@pytest.mark.parametrize(
    ("filename", "head", "message"),
    [
        ("empty.txt", b"", "the file is empty"),
        ("tool.exe", b"MZ\x90\x00", "unsupported file type .exe"),
        ("fake.txt", b"\x00\x01\x02\xff\xfe binary", "named .txt but its content is binary"),
        ("blob", b"\x8b\x00\xff\x13" * 10, "without an extension but its content is binary"),
        ("fake.pdf", b"just text", "named .pdf but its content is not a PDF"),
        ("fake.png", b"GIF8 nope", "named .png but its content is not a image"),
    ],
)
def test_sniff_refuses(filename: str, head: bytes, message: str) -> None:
    with pytest.raises(ExtractionError, match=message):
        sniff(filename, head)


# --- Chunks -------------------------------------------------------------------------------------


def test_chunks_keep_paragraphs_whole_when_they_fit() -> None:
    paragraphs = [f"Paragraph {n}. " + "Some words here. " * 20 for n in range(12)]
    chunks = split_text("\n\n".join(paragraphs))
    assert all(len(chunk) <= CHUNK_CHARS for chunk in chunks)
    assert [p.strip() for chunk in chunks for p in chunk.split("\n\n")] == [
        p.strip() for p in paragraphs
    ]


def test_long_paragraphs_are_cut_between_sentences_then_words() -> None:
    sentences = [f"Sentence number {n} says something quite ordinary." for n in range(100)]
    chunks = split_text(" ".join(sentences))
    assert all(len(chunk) <= CHUNK_CHARS for chunk in chunks)
    assert all(chunk.endswith(".") for chunk in chunks)
    assert " ".join(chunks) == " ".join(sentences)
    assert [len(chunk) for chunk in split_text("x" * 3000)] == [1200, 1200, 600]
