"""Read policy documents (.docx) and cut them into retrievable chunks.

Headings, paragraphs, bulleted and numbered lists and tables are read in document order.
A heading is a paragraph in a Heading style or, as many companies write them, a short
Normal paragraph set entirely in bold ("3. REPEAT DEBITS", "APPENDIX B - ..."); its level
comes from the style or from its clause number (3 -> 1, 3.2 -> 2). A bold first paragraph
repeating the title is the title, not a section.
A chunk never crosses a section (a heading starts a new one) and never exceeds the
embedder's window, so nothing is silently truncated. Tables are chunked by rows, each
chunk repeating the header (and the paragraph just before the table, its caption), so a
row such as "6-12 hours | Premium | Full refund | 100% of the disputed charge" is always
read beside "Outage duration | Customer segment | Compensation | Amount". Merged cells
are read as Word shows them: a vertically merged cell's text in every row it spans, a
horizontally merged cell once. A header of several rows (rows marked "repeat as header
row", or a top row whose cells span down or across) becomes one header line whose labels
join the rows ("Credit (% of monthly fee) - Business plan"); a row that is one cell across
the table (a note) is read as that text.
Administrative sections (document control, revision history) are not indexed, nor is a
reference line under the title ("Ref. KC-FIN-11 | Issue 4 | Owner: ..."); sections are
tagged informative (purpose, scope, definitions) or normative for ranking.
Each chunk also carries the text the embedder reads, its own text without clause and list
numbers ("3.1.2", "1."), and the bands its table rows state ("6-12 hours", "Over 1,000"
under an "Amount per case (GBP)" header; `services.knowledge.quantities`), so a question
about one value finds the row that holds it. The chunk's hash covers both.
"""

from __future__ import annotations

import hashlib
import re
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from docx import Document
from docx.document import Document as DocxDocument
from docx.opc.exceptions import PackageNotFoundError
from docx.oxml.ns import qn
from docx.table import Table
from docx.text.paragraph import Paragraph
from lxml import etree

from models.policy_rules import POLICIES
from services.errors import PaymentsAgentError
from services.knowledge.quantities import Band, cell_band, encode_bands

DEFAULT_MAX_TOKENS = 240  # the embedder reads 256 tokens; keep a margin for [CLS]/[SEP]
OVERVIEW_SECTION = "Overview"
# Small table chunks retrieve better than whole tables: a question about one row
# matches a few rows far more closely than fifteen. Rows are spread evenly over chunks.
DEFAULT_TABLE_ROWS = 3
# Informative sections say what a policy is about rather than what to do; retrieval ranks
# them below the normative ones (procedures, matrices, exclusions).
INFORMATIVE_SECTIONS = frozenset(
    {
        "overview",
        "introduction",
        "purpose",
        "scope",
        "definitions",
        "background",
        "glossary",
        "terms",
    }
)
# A bold Normal paragraph is read as a heading only if it is this short.
_BOLD_HEADING_MAX_CHARS = 100
_BOLD_HEADING_MAX_WORDS = 14
_CLAUSE_NUMBER = re.compile(r"^(\d+(?:\.\d+)*)\.?\s")
# A clause or list number opening a line: "3.1.2 ", "1. ", "A.1 " (not a bare "30 ").
_LEADING_NUMBER = re.compile(r"^\s*(?:[A-Z]\.\d+(?:\.\d+)*\.?|\d+(?:\.\d+)+\.?|\d+\.)\s+")
# A reference line under the title, "Ref. KC-FIN-11 | Issue 4 | Owner: Revenue Assurance":
# document metadata, like a Subtitle, not policy text.
_CONTROL_FIELD = re.compile(
    r"^(?:ref|reference|doc(?:ument)?\s*(?:id|no|number|ref)|issue|version|ver|rev|revision"
    r"|owner|approved|effective|review|status|classification)\b",
    re.I,
)
_APPENDIX = re.compile(r"^(appendix|annex|schedule|attachment)\s+\w+\s*[-\u2013\u2014:.]?\s*", re.I)
# Administrative sections describe the document, not the rules; they are not indexed.
ADMINISTRATIVE_SECTIONS = frozenset(
    {
        "document control",
        "document history",
        "revision history",
        "version history",
        "related policies",
        "contents",
        "table of contents",
    }
)

TokenCounter = Callable[[str], int]


class PolicyDocumentError(PaymentsAgentError):
    """A policy file cannot be read as a Word document."""

    status_code = 422

    def __init__(self, source_file: str, reason: str) -> None:
        super().__init__(f"{source_file}: {reason}")
        self.source_file = source_file
        self.reason = reason


@dataclass(frozen=True)
class HeadingBlock:
    level: int
    text: str


@dataclass(frozen=True)
class TextBlock:
    text: str  # list items carry their marker: "- item" or "3. item"


@dataclass(frozen=True)
class TableBlock:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


Block = HeadingBlock | TextBlock | TableBlock


@dataclass(frozen=True)
class ExtractedDocument:
    title: str | None
    policy_id: str | None
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class PolicyChunk:
    chunk_id: str
    policy_id: str
    title: str
    section: str
    source_file: str
    index: int
    kind: Literal["text", "table"]
    text: str
    # What the embedder reads: the text without its clause and list numbers.
    embedding_text: str
    # The bands the rows of a table chunk state ("6-12 hours", "Over $5,000").
    bands: tuple[Band, ...]
    content_hash: str

    def metadata(self, *, file_hash: str) -> dict[str, str | int]:
        """Metadata stored beside the chunk in the vector store."""
        return {
            "policy_id": self.policy_id,
            "title": self.title,
            "section": self.section,
            "source_file": self.source_file,
            "chunk_index": self.index,
            "kind": self.kind,
            "role": section_role(self.section),
            "bands": encode_bands(self.bands),
            "content_hash": self.content_hash,
            "file_hash": file_hash,
        }


@dataclass(frozen=True)
class PolicyFile:
    source_file: str
    policy_id: str
    title: str
    chunks: tuple[PolicyChunk, ...]
    content_hash: str = field(init=False)

    def __post_init__(self) -> None:
        digest = hashlib.sha256()
        for chunk in self.chunks:
            digest.update(chunk.chunk_id.encode())
            digest.update(chunk.content_hash.encode())
        object.__setattr__(self, "content_hash", digest.hexdigest()[:32])


@dataclass(frozen=True)
class SkippedFile:
    source_file: str
    reason: str


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _heading_level(paragraph: Paragraph) -> int | None:
    name = paragraph.style.name if paragraph.style is not None else ""
    if name == "Title":
        return 0
    match = re.fullmatch(r"Heading (\d)", name or "")
    return int(match.group(1)) if match else None


def _style_bold(style: object) -> bool | None:
    """Bold as a paragraph or character style sets it, following its base styles."""
    while style is not None:
        bold = getattr(getattr(style, "font", None), "bold", None)
        if bold is not None:
            return bool(bold)
        style = getattr(style, "base_style", None)
    return None


def _all_bold(paragraph: Paragraph) -> bool:
    runs = [run for run in paragraph.runs if run.text.strip()]
    if not runs:
        return False
    paragraph_bold = _style_bold(paragraph.style)
    for run in runs:
        bold = run.bold
        if bold is None:
            bold = _style_bold(run.style) if run.style is not None else None
        if bold is None:
            bold = paragraph_bold
        if not bold:
            return False
    return True


def _is_document_control(text: str) -> bool:
    """A line of document metadata fields: "Ref. X | Issue 4 | Owner: Y"."""
    fields = [field.strip() for field in text.split("|")]
    return len(fields) >= 2 and all(_CONTROL_FIELD.match(field) for field in fields)


def _bold_heading_level(paragraph: Paragraph, text: str) -> int | None:
    """The level of a bold Normal paragraph used as a heading, None if it is not one.

    Short, all bold, not a list item, not a sentence or a lead-in (no final . : ; ,).
    Its clause number gives the level ("3." 1, "3.2" 2); unnumbered ones are level 1.
    """
    if (
        len(text) > _BOLD_HEADING_MAX_CHARS
        or len(text.split()) > _BOLD_HEADING_MAX_WORDS
        or text[-1] in ".:;,"
        or _ListNumbering.num_pr(paragraph) is not None
        or not _all_bold(paragraph)
    ):
        return None
    match = _CLAUSE_NUMBER.match(text)
    return len(match.group(1).split(".")) if match else 1


class _ListNumbering:
    """Turns Word list paragraphs into "- item" / "n. item", counting per list."""

    def __init__(self, document: DocxDocument) -> None:
        self._formats: dict[tuple[str, str], str] = {}
        self._counters: dict[tuple[str, str], int] = {}
        try:
            numbering = document.part.numbering_part.element
        except (KeyError, NotImplementedError):
            return
        abstract_formats: dict[str, dict[str, str]] = {}
        for abstract in numbering.findall(qn("w:abstractNum")):
            levels = {}
            for lvl in abstract.findall(qn("w:lvl")):
                fmt = lvl.find(qn("w:numFmt"))
                levels[lvl.get(qn("w:ilvl"), "0")] = (
                    fmt.get(qn("w:val"), "decimal") if fmt is not None else "decimal"
                )
            abstract_formats[abstract.get(qn("w:abstractNumId"), "")] = levels
        for num in numbering.findall(qn("w:num")):
            ref = num.find(qn("w:abstractNumId"))
            if ref is None:
                continue
            for ilvl, fmt in abstract_formats.get(ref.get(qn("w:val"), ""), {}).items():
                self._formats[(num.get(qn("w:numId"), ""), ilvl)] = fmt

    @staticmethod
    def num_pr(paragraph: Paragraph) -> tuple[str, str] | None:
        for element in (paragraph._p, paragraph.style.element if paragraph.style else None):
            if element is None:
                continue
            num_pr = element.find(f"{qn('w:pPr')}/{qn('w:numPr')}")
            if num_pr is None:
                continue
            num_id = num_pr.find(qn("w:numId"))
            ilvl = num_pr.find(qn("w:ilvl"))
            if num_id is not None:
                return (
                    num_id.get(qn("w:val"), ""),
                    ilvl.get(qn("w:val"), "0") if ilvl is not None else "0",
                )
        return None

    def render(self, paragraph: Paragraph, text: str) -> str:
        style = paragraph.style.name if paragraph.style is not None else ""
        key = self.num_pr(paragraph)
        if key is None or key[0] == "0":  # numId 0: numbering switched off
            return f"- {text}" if style.startswith(("List Number", "List Bullet")) else text
        indent = "  " * int(key[1]) if key[1].isdigit() else ""
        fmt = self._formats.get(key, "bullet" if "Bullet" in style else "decimal")
        if fmt in ("bullet", "none"):
            return f"{indent}- {text}"
        count = self._counters.get(key, 0) + 1
        self._counters[key] = count
        return f"{indent}{count}. {text}"


def _header_row_count(rows: list[list[object]], flagged: int) -> int:
    """How many top rows of a table (cells as their <w:tc> elements) are its header."""
    if 0 < flagged < len(rows):
        return flagged  # rows marked "repeat as header row"
    count = 1
    while count < min(3, len(rows) - 1):
        above, row = rows[count - 1], rows[count]
        width = min(len(above), len(row))
        # A header cell spanning down into this row, or a header cell spanning across
        # columns that this row tells apart: this row is still header.
        spans_down = any(row[j] is above[j] for j in range(width))
        splits = any(
            above[j] is above[j + 1] and row[j] is not row[j + 1] for j in range(width - 1)
        )
        if not (spans_down or splits):
            break
        count += 1
    return count


def _join_labels(parts: list[str]) -> str:
    label = ""
    for part in parts:
        if not part or label.endswith(part):
            continue
        label = (
            f"{label} {part}"
            if label and part.startswith("(")
            else (f"{label} - {part}" if label else part)
        )
    return label


def _table_block(table: Table) -> TableBlock | None:
    tcs: list[list[object]] = []
    texts: list[list[str]] = []
    flagged = 0
    for row in table.rows:
        grid_cells = list(row.cells)  # one per grid column; merged cells repeat
        if not grid_cells:
            continue
        texts_row = [_clean(" ".join(p.text for p in cell.paragraphs)) for cell in grid_cells]
        if not any(texts_row):
            continue
        tr_pr = row._tr.trPr
        if flagged == len(tcs) and tr_pr is not None and tr_pr.find(qn("w:tblHeader")) is not None:
            flagged += 1
        tcs.append([cell._tc for cell in grid_cells])
        texts.append(texts_row)
    if not tcs:
        return None
    header_count = _header_row_count(tcs, flagged)
    width = max(len(row) for row in tcs)
    # A grid column wholly merged into the one before it (in every row) is not a column.
    columns = [
        j
        for j in range(width)
        if j == 0 or any(j >= len(row) or row[j] is not row[j - 1] for row in tcs)
    ]
    header = tuple(
        _join_labels([texts[r][j] for r in range(header_count) if j < len(texts[r])])
        for j in columns
    )
    rows: list[tuple[str, ...]] = []
    for tc_row, text_row in zip(tcs[header_count:], texts[header_count:], strict=True):
        cells: list[str] = []
        for j in range(len(tc_row)):
            if j > 0 and tc_row[j] is tc_row[j - 1]:
                continue  # a horizontally merged cell is returned once per grid column
            cells.append(text_row[j])
        rows.append(tuple(cells))
    return TableBlock(header=header, rows=tuple(rows))


def _open(path: Path) -> DocxDocument:
    try:
        return Document(str(path))
    except (PackageNotFoundError, zipfile.BadZipFile) as exc:
        raise PolicyDocumentError(
            path.name, "not a Word .docx package (not a zip archive, or truncated)"
        ) from exc
    except KeyError as exc:
        raise PolicyDocumentError(
            path.name, f"incomplete .docx package (missing part {exc})"
        ) from exc
    except etree.XMLSyntaxError as exc:
        raise PolicyDocumentError(path.name, f"malformed XML inside the .docx ({exc})") from exc
    except (ValueError, OSError) as exc:
        raise PolicyDocumentError(path.name, f"cannot be read as .docx ({exc})") from exc


def extract_document(path: Path) -> ExtractedDocument:
    """Read headings, paragraphs, lists and tables of a .docx in document order."""
    document = _open(path)
    numbering = _ListNumbering(document)
    blocks: list[Block] = []
    title: str | None = _clean(document.core_properties.title or "") or None
    policy_id = _clean(document.core_properties.identifier or "") or None
    seen_heading = False
    try:
        for item in document.iter_inner_content():
            if isinstance(item, Table):
                table = _table_block(item)
                if table is not None:
                    blocks.append(table)
                continue
            text = _clean(item.text)
            if not text:
                continue
            if item.style is not None and item.style.name == "Subtitle":
                continue  # document metadata (id, date, owner), already in the properties
            if not seen_heading and _is_document_control(text):
                continue  # the same metadata as a plain reference line under the title
            level = _heading_level(item)
            if level is None and item.style is not None:
                level = _bold_heading_level(item, text)
                if (
                    level is not None
                    and not blocks
                    and (title is None or text.casefold() == title.casefold())
                ):
                    level = 0  # a bold first paragraph that is the title
            if level == 0:
                title = title or text
            elif level is not None:
                blocks.append(HeadingBlock(level, text))
                seen_heading = True
            else:
                blocks.append(TextBlock(numbering.render(item, text)))
    except (KeyError, ValueError, etree.XMLSyntaxError) as exc:
        raise PolicyDocumentError(path.name, f"malformed document body ({exc})") from exc
    return ExtractedDocument(title=title, policy_id=policy_id, blocks=tuple(blocks))


def _word_count_tokens(text: str) -> int:
    # Without the tokenizer: WordPiece averages about 1.3 tokens per English word, and
    # punctuation, digits and "|" separators count on their own.
    return 2 + int(len(re.findall(r"\w+|[^\w\s]", text)) * 1.15)


def _split_long(text: str, budget: int, count: TokenCounter) -> list[str]:
    """Split text that alone exceeds the budget at sentence, then word boundaries."""
    pieces: list[str] = []
    current = ""
    for sentence in re.split(r"(?<=[.;:!?])\s+", text):
        candidate = f"{current} {sentence}".strip()
        if count(candidate) <= budget:
            current = candidate
            continue
        if current:
            pieces.append(current)
        if count(sentence) <= budget:
            current = sentence
            continue
        current = ""
        for word in sentence.split():
            candidate = f"{current} {word}".strip()
            if count(candidate) <= budget or not current:
                current = candidate
            else:
                pieces.append(current)
                current = word
    if current:
        pieces.append(current)
    return pieces


def _pack_rows(
    header: str, rows: list[str], budget: int, count: TokenCounter, max_rows: int
) -> list[list[str]]:
    """Group table rows under the header: within the budget, at most `max_rows` rows per
    group, in groups of even size."""

    def greedy(limit: int) -> list[list[str]]:
        groups: list[list[str]] = [[]]
        for row in rows:
            group = groups[-1]
            if group and (len(group) >= limit or count("\n".join([header, *group, row])) > budget):
                groups.append([])
            groups[-1].append(row)
        return groups

    if not rows:
        return [[]]
    needed = max(len(greedy(len(rows))), -(-len(rows) // max_rows))
    return greedy(-(-len(rows) // needed))


def _bands(header: Sequence[str], rows: Sequence[Sequence[str]]) -> tuple[Band, ...]:
    """The distinct bands the cells of these table rows state, each read under its
    column's header (which may name the unit: "Amount per case (GBP)")."""
    found = (
        cell_band(cell, header[j] if j < len(header) else "")
        for row in rows
        for j, cell in enumerate(row)
    )
    return tuple(dict.fromkeys(band for band in found if band is not None))


def _bare_heading(heading: str) -> str:
    """A heading without its number or appendix label, lower-cased."""
    return _APPENDIX.sub("", re.sub(r"^[\d.\s]+", "", heading)).strip().lower()


def _is_administrative(heading: str) -> bool:
    return _bare_heading(heading) in ADMINISTRATIVE_SECTIONS


def section_role(section: str) -> Literal["informative", "normative"]:
    """Whether a section states what the policy is about or what to do."""
    words = re.split(r"\s*(?:,|&|/|\band\b)\s*", _bare_heading(section.split(" > ")[0]))
    informative = all(word in INFORMATIVE_SECTIONS for word in words if word)
    return "informative" if informative else "normative"


def _sections(blocks: Sequence[Block]) -> Iterator[tuple[str, list[Block]]]:
    path: list[tuple[int, str]] = []
    section = OVERVIEW_SECTION
    current: list[Block] = []
    skipping = False
    for block in blocks:
        if isinstance(block, HeadingBlock):
            if current and not skipping:
                yield section, current
            path = [(lvl, text) for lvl, text in path if lvl < block.level]
            path.append((block.level, block.text))
            section = " > ".join(text for _, text in path)
            skipping = any(_is_administrative(text) for _, text in path)
            current = []
        else:
            current.append(block)
    if current and not skipping:
        yield section, current


def chunk_document(
    extracted: ExtractedDocument,
    *,
    source_file: str,
    policy_id: str,
    title: str,
    count_tokens: TokenCounter | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    max_table_rows: int = DEFAULT_TABLE_ROWS,
) -> PolicyFile:
    """Cut a document into section chunks of at most `max_tokens` tokens each."""
    count = count_tokens or _word_count_tokens
    stem = Path(source_file).stem
    chunks: list[PolicyChunk] = []

    def emit(
        section: str,
        kind: Literal["text", "table"],
        prose: list[str],
        table: Sequence[str] = (),
        bands: tuple[Band, ...] = (),
    ) -> None:
        heading = f"{title} - {section}"
        text = "\n".join([heading, *prose, *table])
        # Clause numbers ("3.1.2", "1.") mean nothing to the embedder, yet in a document
        # of terse numbered clauses they are a good share of a chunk's tokens; the stored
        # text keeps them for citation. Table cells are left alone ("12 to 24 hours").
        embedding_text = "\n".join(
            [heading, *(_LEADING_NUMBER.sub("", line) for line in prose), *table]
        )
        index = len(chunks)
        # The hash covers what is embedded, so a change in how chunks are embedded
        # re-embeds them at the next ingestion.
        digest = hashlib.sha256(
            "\x1f".join(
                [
                    policy_id,
                    title,
                    section,
                    source_file,
                    kind,
                    text,
                    embedding_text,
                    encode_bands(bands),
                ]
            ).encode()
        ).hexdigest()[:32]
        chunks.append(
            PolicyChunk(
                chunk_id=f"{stem}#{index:03d}",
                policy_id=policy_id,
                title=title,
                section=section,
                source_file=source_file,
                index=index,
                kind=kind,
                text=text,
                embedding_text=embedding_text,
                bands=bands,
                content_hash=digest,
            )
        )

    for section, blocks in _sections(extracted.blocks):
        prefix_tokens = count(f"{title} - {section}")
        budget = max_tokens - prefix_tokens
        lines: list[str] = []

        def flush_text(section: str, lines: list[str]) -> None:
            if lines:
                emit(section, "text", list(lines))
                lines.clear()

        for block in blocks:
            if isinstance(block, TextBlock):
                for piece in _split_long(block.text, budget, count):
                    if lines and count("\n".join([*lines, piece])) > budget:
                        flush_text(section, lines)
                    lines.append(piece)
            elif isinstance(block, TableBlock):
                # The paragraph just before a table usually says what the table is for;
                # it travels with every chunk of the table as its caption.
                caption: list[str] = []
                if (
                    lines
                    and not re.match(r"^(-|\d+\.) ", lines[-1])
                    and count(lines[-1]) <= budget // 3
                ):
                    caption = [lines.pop()]
                flush_text(section, lines)
                header = " | ".join(block.header)
                table_budget = budget - (count(caption[0]) if caption else 0)
                rows = [" | ".join(row) for row in block.rows]
                start = 0
                for group in _pack_rows(header, rows, table_budget, count, max_table_rows):
                    cells = block.rows[start : start + len(group)]
                    start += len(group)
                    emit(section, "table", caption, [header, *group], _bands(block.header, cells))
        flush_text(section, lines)
    return PolicyFile(
        source_file=source_file, policy_id=policy_id, title=title, chunks=tuple(chunks)
    )


def _known_policy(file_name: str) -> tuple[str, str] | None:
    for policy in POLICIES:
        if policy.file_name == file_name:
            return policy.policy_id, policy.title
    return None


def read_policy_file(
    path: Path,
    *,
    count_tokens: TokenCounter | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
) -> PolicyFile:
    """Extract and chunk one policy .docx; raise PolicyDocumentError if unreadable.

    The policy id and title come from the document's properties, then from
    `policy_rules.POLICIES` by file name, then from the file name itself.
    """
    extracted = extract_document(path)
    known = _known_policy(path.name)
    policy_id = extracted.policy_id or (known[0] if known else path.stem.upper())
    title = extracted.title or (known[1] if known else path.stem.replace("_", " ").title())
    policy_file = chunk_document(
        extracted,
        source_file=path.name,
        policy_id=policy_id,
        title=title,
        count_tokens=count_tokens,
        max_tokens=max_tokens,
    )
    if not policy_file.chunks:
        raise PolicyDocumentError(path.name, "no policy text (empty or only document control)")
    return policy_file


def scan_policy_dir(
    directory: Path,
    *,
    count_tokens: TokenCounter | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
) -> tuple[list[PolicyFile], list[SkippedFile]]:
    """Read every .docx in `directory`; unreadable or non-.docx files are skipped by name."""
    files: list[PolicyFile] = []
    skipped: list[SkippedFile] = []
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or path.is_dir():
            continue
        if path.name.startswith("~$"):
            skipped.append(SkippedFile(path.name, "Word lock file, not a policy"))
        elif path.suffix.lower() != ".docx":
            skipped.append(SkippedFile(path.name, "not a .docx file"))
        else:
            try:
                files.append(
                    read_policy_file(path, count_tokens=count_tokens, max_tokens=max_tokens)
                )
            except PolicyDocumentError as exc:
                skipped.append(SkippedFile(path.name, exc.reason))
    return files, skipped


__all__ = [
    "DEFAULT_MAX_TOKENS",
    "ExtractedDocument",
    "PolicyChunk",
    "PolicyDocumentError",
    "PolicyFile",
    "SkippedFile",
    "chunk_document",
    "extract_document",
    "read_policy_file",
    "scan_policy_dir",
]
