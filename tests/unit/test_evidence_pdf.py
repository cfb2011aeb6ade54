"""Evidence PDFs: real PDF bytes whose text a reader (pypdf) gets back, whatever the text."""

from __future__ import annotations

import io

import pypdf

from services.integrations.evidence_files import (
    EvidencePdfRenderer,
    printable,
    render_evidence_pdf,
)


def text_of(content: bytes) -> str:
    reader = pypdf.PdfReader(io.BytesIO(content))
    return "\n".join(page.extract_text() for page in reader.pages)


def test_the_pdf_holds_the_title_and_every_section() -> None:
    content = render_evidence_pdf(
        "Dispute du_123: cancellation policy",
        [
            ("Policy 4.2, Cancellation", "A cancellation takes effect at the end of the term."),
            ("Source", "policies/cancellation.docx, section 4.2"),
        ],
    )

    assert content.startswith(b"%PDF-")
    assert content.rstrip().endswith(b"%%EOF")
    text = text_of(content)
    for expected in (
        "Dispute du_123: cancellation policy",
        "Policy 4.2, Cancellation",
        "A cancellation takes effect at the end of the term.",
        "policies/cancellation.docx, section 4.2",
    ):
        assert expected in text


def test_western_text_and_typography_survive() -> None:
    line = "Café Zürich — “Kündigung” €49.99 … it’s ß"

    assert line in text_of(render_evidence_pdf("Correspondence", [("E-mail", line)]))


def test_text_outside_the_font_is_replaced_never_an_error() -> None:
    content = render_evidence_pdf("Names", [("Customer", "Łukasz Nőmeth 中文 😀\x07end")])

    assert "?ukasz Nometh ?? ?end" in text_of(content)
    assert printable("a\tb\r\nc") == "a    b\nc"


def test_long_sections_flow_onto_more_pages() -> None:
    log = "\n".join(f"2031-01-{day % 28 + 1:02d} login from 203.0.113.{day}" for day in range(400))

    content = render_evidence_pdf("Access activity log", [("Logins", log)])

    reader = pypdf.PdfReader(io.BytesIO(content))
    assert len(reader.pages) > 3
    assert "login from 203.0.113.399" in text_of(content)


def test_the_same_document_renders_to_the_same_bytes() -> None:
    sections = [("A", "one"), ("B", "two")]

    assert render_evidence_pdf("T", sections) == render_evidence_pdf("T", sections)
    assert EvidencePdfRenderer().render_pdf(title="T", sections=sections) == (
        render_evidence_pdf("T", sections)
    )
