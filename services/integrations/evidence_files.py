"""Evidence documents for card disputes, rendered as PDF with fpdf2.

Stripe's file evidence fields take only uploaded files (PDF, JPEG or PNG), so a policy
section or a case's correspondence is rendered to a PDF first and uploaded through
`DisputeGateway.upload_evidence_file`.

Fonts: the PDF uses the core Helvetica font with the Windows-1252 encoding (no font file
is bundled or read from the machine, so the output is the same everywhere). That covers
Western European text and typographic punctuation (curly quotes, dashes, the euro sign).
A character outside it loses its accent where Unicode can take one off ("ő" becomes
"o") and is otherwise written "?" ("ł", CJK, emoji): `render_evidence_pdf` never fails on
text, and nothing is dropped silently.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime

from fpdf import FPDF

CORE_FONT = "helvetica"
ENCODING = "windows-1252"
TITLE_SIZE = 15
HEADING_SIZE = 12
BODY_SIZE = 10
LINE_HEIGHT = 5.5
# A section longer than this is cut, with a note: a reviewer reads the draft, and Stripe
# takes at most 5 MB per evidence file.
SECTION_MAX_CHARS = 40_000


def printable(text: str) -> str:
    """`text` reduced to what the core font can show (see the module's note on fonts)."""
    out: list[str] = []
    for char in unicodedata.normalize("NFC", text.replace("\r\n", "\n")):
        if char in "\n\t":
            out.append("    " if char == "\t" else char)
            continue
        if unicodedata.category(char).startswith("C"):
            continue  # control and format characters have no glyph
        if _encodable(char):
            out.append(char)
            continue
        bare = "".join(
            c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c)
        )
        out.append(bare if bare and all(_encodable(c) for c in bare) else "?")
    return "".join(out)


def _encodable(char: str) -> bool:
    try:
        char.encode(ENCODING)
    except UnicodeEncodeError:
        return False
    return True


def render_evidence_pdf(
    title: str, sections: list[tuple[str, str]], *, created_at: datetime | None = None
) -> bytes:
    """Render a titled document of (heading, text) sections as PDF bytes."""
    pdf = FPDF(format="Letter")
    pdf.core_fonts_encoding = ENCODING
    pdf.set_title(printable(title))
    pdf.set_creator("PaymentsAgent")
    # A fixed creation date makes the same document render to the same bytes.
    pdf.set_creation_date(created_at or datetime(2000, 1, 1, tzinfo=UTC))
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.add_page()
    pdf.set_font(CORE_FONT, style="B", size=TITLE_SIZE)
    pdf.multi_cell(0, 8, printable(title), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    for heading, text in sections:
        body = (
            text
            if len(text) <= SECTION_MAX_CHARS
            else (text[:SECTION_MAX_CHARS] + "\n[... cut at 40,000 characters]")
        )
        pdf.set_font(CORE_FONT, style="B", size=HEADING_SIZE)
        pdf.multi_cell(0, 7, printable(heading), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(CORE_FONT, size=BODY_SIZE)
        pdf.multi_cell(0, LINE_HEIGHT, printable(body), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)
    return bytes(pdf.output())


class EvidencePdfRenderer:
    """EvidenceRenderer (services/integrations/protocols.py) over `render_evidence_pdf`."""

    def render_pdf(self, *, title: str, sections: list[tuple[str, str]]) -> bytes:
        """A PDF of `title` and its (heading, text) sections."""
        return render_evidence_pdf(title, sections)


__all__ = ["EvidencePdfRenderer", "printable", "render_evidence_pdf"]
