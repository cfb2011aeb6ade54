"""Policy documents: rendered from the rules, read back with their tables intact."""

from __future__ import annotations

import importlib.util
import math
import shutil
import sys
import tomllib
from pathlib import Path

import pytest
from docx import Document
from docx.table import Table as DocxTable

from models.policy_rules import APPROVAL_LEVELS, OUTAGE_MATRIX, POLICIES, SEGMENTS, PolicyDocument
from services.knowledge.policy_docs import (
    DEFAULT_MAX_TOKENS,
    PolicyDocumentError,
    PolicyFile,
    extract_document,
    read_policy_file,
    scan_policy_dir,
)
from services.knowledge.quantities import Band
from tools.write_policies import (
    COMMON_TEXT,
    TEXT_DIR,
    PolicyTextError,
    policy_blocks,
    text_file,
    write_policies,
)

ROOT = Path(__file__).resolve().parents[2]
BROKEN = ROOT / "tests" / "data" / "broken_policies"
OUTAGE_HEADER = "Outage duration | Customer segment | Compensation | Amount"


@pytest.fixture(scope="module")
def policies_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("policies")
    write_policies(directory)
    return directory


@pytest.fixture(scope="module")
def files(policies_dir: Path) -> dict[str, PolicyFile]:
    read, skipped = scan_policy_dir(policies_dir)
    assert skipped == []
    return {f.policy_id: f for f in read}


def test_one_document_per_policy_with_id_and_title(files: dict[str, PolicyFile]) -> None:
    assert len(files) >= 6
    for policy in POLICIES:
        document = files[policy.policy_id]
        assert document.source_file == policy.file_name
        assert document.title == policy.title
        assert all(chunk.policy_id == policy.policy_id for chunk in document.chunks)


def test_committed_documents_are_the_rendered_ones(files: dict[str, PolicyFile]) -> None:
    committed, skipped = scan_policy_dir(ROOT / "policies")
    assert skipped == []
    assert {f.source_file: f.content_hash for f in committed} == {
        f.source_file: f.content_hash for f in files.values()
    }, "policies/*.docx are stale: run uv run python tools/write_policies.py"


def _document_text(path: Path) -> list[tuple[str | None, ...]]:
    """Properties, then every paragraph (style, text) and table row (cells), in order."""
    document = Document(str(path))
    core = document.core_properties
    items: list[tuple[str | None, ...]] = [
        ("properties", core.title, core.identifier, core.subject, core.author, core.keywords)
    ]
    for item in document.iter_inner_content():
        if isinstance(item, DocxTable):
            items.append(("table", item.style.name if item.style else None))
            items.extend(("row", *(cell.text for cell in row.cells)) for row in item.rows)
        else:
            items.append((item.style.name if item.style else None, item.text))
    return items


@pytest.mark.parametrize("policy", POLICIES, ids=lambda policy: policy.file_name)
def test_committed_documents_carry_the_rendered_text_word_for_word(
    policy: PolicyDocument, policies_dir: Path
) -> None:
    # The knowledge base ingests these words; retrieval recall depends on them, headings
    # styled as headings included.
    committed = _document_text(ROOT / "policies" / policy.file_name)
    rendered = _document_text(policies_dir / policy.file_name)
    assert committed == rendered, (
        f"policies/{policy.file_name} is stale: run uv run python tools/write_policies.py"
    )
    assert sum(1 for item in rendered if item[0] == "Heading 1") >= 8


def test_every_policy_has_one_text_file_and_no_text_file_is_orphaned() -> None:
    expected = {text_file(policy).name for policy in POLICIES} | {COMMON_TEXT}
    assert {path.name for path in TEXT_DIR.glob("*.toml")} == expected


def test_an_unknown_placeholder_stops_the_generator_naming_its_file(tmp_path: Path) -> None:
    text_dir = tmp_path / "policy_text"
    shutil.copytree(TEXT_DIR, text_dir)
    refund = next(p for p in POLICIES if p.policy_id == "POL-REF-001")
    with text_file(refund, text_dir).open("a") as file:
        file.write('\n[[block]]\nparagraph = "Refunds above {refund_ceiling} need a manager."\n')
    blocks = len(tomllib.loads(text_file(refund, TEXT_DIR).read_text())["block"])

    with pytest.raises(PolicyTextError) as raised:
        policy_blocks(refund, text_dir=text_dir)

    message = str(raised.value)
    assert f"refund_policy.toml block {blocks + 1}" in message
    assert "{refund_ceiling}" in message
    assert "{dispute_window_days}" in message  # the names it could have used


def test_a_block_of_unknown_shape_is_refused_naming_its_file(tmp_path: Path) -> None:
    text_dir = tmp_path / "policy_text"
    shutil.copytree(TEXT_DIR, text_dir)
    refund = next(p for p in POLICIES if p.policy_id == "POL-REF-001")
    with text_file(refund, text_dir).open("a") as file:
        file.write('\n[[block]]\nparagraph = "One."\nbullets = ["Two."]\n')

    with pytest.raises(PolicyTextError, match=r"refund_policy\.toml block \d+: a block holds"):
        policy_blocks(refund, text_dir=text_dir)


def test_every_outage_matrix_cell_survives_with_its_header(files: dict[str, PolicyFile]) -> None:
    chunks = [c for c in files["POL-OUT-002"].chunks if c.kind == "table"]
    rows_seen = set()
    for chunk in chunks:
        lines = chunk.text.splitlines()
        if OUTAGE_HEADER not in lines:
            continue
        assert chunk.section == "5. Compensation by outage duration and customer segment"
        for line in lines[lines.index(OUTAGE_HEADER) + 1 :]:
            rows_seen.add(line)
    for band in OUTAGE_MATRIX:
        for segment in SEGMENTS:
            share = band.share[segment]
            compensation = (
                "No compensation"
                if share == 0
                else "Full refund"
                if share == 1
                else "Account credit"
            )
            prefix = f"{band.label} | {segment.capitalize()} | {compensation}"
            assert any(row.startswith(prefix) for row in rows_seen), prefix
    assert any(row.startswith("6-12 hours | Premium | Full refund") for row in rows_seen)


def test_approval_levels_table_comes_from_the_rules(files: dict[str, PolicyFile]) -> None:
    text = "\n".join(c.text for c in files["POL-APR-006"].chunks)
    assert "Resolution amount | Approvals required | Approver role" in text
    for level in APPROVAL_LEVELS:
        assert f"{level.label} | {level.approvers} | {level.approver_role}" in text


def test_table_chunks_repeat_the_header_row(files: dict[str, PolicyFile]) -> None:
    for document in files.values():
        for chunk in (c for c in document.chunks if c.kind == "table"):
            body = chunk.text.splitlines()[1:]
            assert any(" | " in line for line in body[:2]), chunk.text  # caption, then header


def test_chunks_stay_within_the_embedding_window(files: dict[str, PolicyFile]) -> None:
    from services.knowledge.policy_docs import _word_count_tokens

    for document in files.values():
        for chunk in document.chunks:
            assert _word_count_tokens(chunk.text) <= DEFAULT_MAX_TOKENS


def test_chunks_carry_section_headings_and_skip_document_control(
    files: dict[str, PolicyFile],
) -> None:
    sections = {c.section for c in files["POL-REF-001"].chunks}
    assert "7. Refunds not received" in sections
    assert "Document control" not in sections
    first = files["POL-REF-001"].chunks[0]
    assert first.text.startswith("Refund Policy - ")
    metadata = first.metadata(file_hash=files["POL-REF-001"].content_hash)
    assert {"source_file", "policy_id", "title", "section", "content_hash"} <= metadata.keys()


def test_numbered_lists_restart_at_one_in_each_section(files: dict[str, PolicyFile]) -> None:
    refund = {c.section: c.text for c in files["POL-REF-001"].chunks}
    assert "\n1. Find the refund in the payment system" in refund["7. Refunds not received"]
    assert "\n1. The charge succeeded" in refund["4. Refund eligibility"]
    assert "\n- Refund: money returned" in refund["3. Definitions"]


def test_content_hash_is_stable_across_regeneration(policies_dir: Path, tmp_path: Path) -> None:
    write_policies(tmp_path)
    for policy in POLICIES:
        again = read_policy_file(tmp_path / policy.file_name)
        before = read_policy_file(policies_dir / policy.file_name)
        assert again.content_hash == before.content_hash


def test_changed_text_changes_the_hash(policies_dir: Path, tmp_path: Path) -> None:
    write_policies(tmp_path, dispute_window_days=90)
    changed = read_policy_file(tmp_path / "refund_policy.docx")
    original = read_policy_file(policies_dir / "refund_policy.docx")
    assert changed.content_hash != original.content_hash
    assert "90 days" in "\n".join(c.text for c in changed.chunks)


def test_operator_document_nested_headings_and_merged_cells(tmp_path: Path) -> None:
    document = Document()
    document.add_heading("Goodwill credits", level=1)
    document.add_paragraph("Agents may grant goodwill credits within these limits.")
    document.add_heading("Limits", level=2)
    table = document.add_table(rows=3, cols=3)
    table.rows[0].cells[0].text = "Segment"
    table.rows[0].cells[1].text = "Limit"
    table.rows[0].cells[2].text = "Approver"
    merged = table.rows[1].cells[0].merge(table.rows[1].cells[1])
    merged.text = "All segments"
    table.rows[1].cells[2].text = "Agent"
    for cell, text in zip(table.rows[2].cells, ("Enterprise", "$200", "Manager"), strict=True):
        cell.text = text
    path = tmp_path / "goodwill.docx"
    document.save(str(path))

    policy = read_policy_file(path)
    assert policy.policy_id == "GOODWILL"  # no identifier property, not a known file
    table_chunk = next(c for c in policy.chunks if c.kind == "table")
    assert table_chunk.section == "Goodwill credits > Limits"
    assert "Segment | Limit | Approver" in table_chunk.text
    assert "All segments | Agent" in table_chunk.text  # the merged cell appears once
    assert "Enterprise | $200 | Manager" in table_chunk.text


def test_broken_and_foreign_files_are_reported_by_name(policies_dir: Path, tmp_path: Path) -> None:
    for path in policies_dir.iterdir():
        shutil.copy(path, tmp_path / path.name)
    for path in BROKEN.iterdir():
        shutil.copy(path, tmp_path / path.name)

    read, skipped = scan_policy_dir(tmp_path)

    assert sorted(f.source_file for f in read) == sorted(p.file_name for p in POLICIES)
    reasons = {s.source_file: s.reason for s in skipped}
    assert set(reasons) == {p.name for p in BROKEN.iterdir()}
    assert reasons["meeting_notes.txt"] == "not a .docx file"
    assert "not a Word .docx package" in reasons["plain_text.docx"]
    assert "not a Word .docx package" in reasons["truncated.docx"]
    assert "incomplete .docx package" in reasons["zip_without_document.docx"]
    assert "malformed XML" in reasons["malformed_xml.docx"]


def test_a_document_without_policy_text_is_refused(tmp_path: Path) -> None:
    document = Document()
    document.add_paragraph("Draft policy", style="Title")
    document.add_heading("Document control", level=1)
    document.add_paragraph("Version 0.1, owner to be decided.")
    document.save(str(tmp_path / "draft.docx"))
    read, skipped = scan_policy_dir(tmp_path)
    assert read == []
    assert [s.source_file for s in skipped] == ["draft.docx"]
    assert "no policy text" in skipped[0].reason


def test_reading_a_broken_file_raises_a_domain_error() -> None:
    with pytest.raises(PolicyDocumentError) as raised:
        extract_document(BROKEN / "truncated.docx")
    assert raised.value.source_file == "truncated.docx"


POLICIES_B = ROOT / "tests" / "data" / "policies_b"


@pytest.fixture(scope="module")
def files_b() -> dict[str, PolicyFile]:
    files, skipped = scan_policy_dir(POLICIES_B)
    assert skipped == []
    return {f.source_file: f for f in files}


def test_bold_paragraphs_are_headings_and_the_bold_title_is_the_title(
    files_b: dict[str, PolicyFile],
) -> None:
    billing = files_b["kc_billing_errors.docx"]
    assert billing.title == "Billing Error Standard"
    sections = list(dict.fromkeys(c.section for c in billing.chunks))
    assert sections == [
        "1. PURPOSE",
        "2. DEFINITIONS",
        "3. REPEAT DEBITS",
        "4. PRICE VARIANCES",
        "5. TAX AND FOREIGN EXCHANGE",
    ]  # DOCUMENT CONTROL, a bold heading too, is administrative and not indexed
    assert not any("BILLING ERROR STANDARD" in c.text for c in billing.chunks)
    # The reference line under the title is document metadata, not an "Overview" section.
    assert not any("Ref. KC-FIN-11" in c.text for c in billing.chunks)
    # Terse clauses are text of their section, not headings.
    repeat = next(c for c in billing.chunks if c.section == "3. REPEAT DEBITS")
    assert "3.2.1 Every collection beyond the first is returned in full" in repeat.text


def test_appendices_are_sections_and_glossaries_informative(
    files_b: dict[str, PolicyFile],
) -> None:
    glossary = next(
        c for c in files_b["kc_authority_matrix.docx"].chunks if "GLOSSARY" in c.section
    )
    assert glossary.section == "APPENDIX A - GLOSSARY"
    assert glossary.metadata(file_hash="")["role"] == "informative"
    examples = [c for c in files_b["kc_service_credits.docx"].chunks if "APPENDIX" in c.section]
    assert examples[0].metadata(file_hash="")["role"] == "normative"


def test_two_row_headers_are_joined_and_merged_cells_read_as_word_shows_them(
    files_b: dict[str, PolicyFile],
) -> None:
    schedule = [
        c.text
        for c in files_b["kc_service_credits.docx"].chunks
        if c.section == "3. CREDIT SCHEDULE" and c.kind == "table"
    ]
    header = (
        "Unavailable time in month | Credit (% of monthly fee) - Essential plan | "
        "Credit (% of monthly fee) - Business plan | Credit (% of monthly fee) - Corporate plan"
    )
    assert all(header in text.splitlines() for text in schedule)
    body = "\n".join(schedule)
    assert "4 to 12 hours | 10% | 25% | 25%" in body.splitlines()
    # A note merged across the whole table is read once, not once per column.
    assert "Credits are capped at 100% of one month's fee." in body.splitlines()
    # A vertically merged cell is repeated in each row it spans; "(days ...)" joins its label.
    evidence = "\n".join(
        c.text for c in files_b["kc_disputed_transactions.docx"].chunks if c.kind == "table"
    )
    assert "Reason group | Evidence to submit | Deadline (days from notice)" in evidence
    assert "Fraud / not authorised | Prior undisputed payments on the same card | 7" in evidence
    limits = next(c.text for c in files_b["kc_authority_matrix.docx"].chunks if c.kind == "table")
    assert (
        "Amount per case (GBP) | Approver - Self-serve and SME accounts | "
        "Approver - Strategic accounts" in limits
    )


def test_committed_second_collection_is_the_generated_one(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "make_policies_b", POLICIES_B.parent / "make_policies_b.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    module.write_all(tmp_path)
    regenerated = {f.source_file: f.content_hash for f in scan_policy_dir(tmp_path)[0]}
    committed = {f.source_file: f.content_hash for f in scan_policy_dir(POLICIES_B)[0]}
    assert regenerated == committed


def test_chunks_are_embedded_without_clause_numbers_but_keep_them_for_citation(
    files: dict[str, PolicyFile], files_b: dict[str, PolicyFile]
) -> None:
    repeat = next(
        c for c in files_b["kc_billing_errors.docx"].chunks if c.section == "3. REPEAT DEBITS"
    )
    assert "3.2.1 Every collection beyond the first" in repeat.text
    assert "\nEvery collection beyond the first" in repeat.embedding_text
    assert "3.2.1" not in repeat.embedding_text
    assert repeat.embedding_text.startswith("Billing Error Standard - 3. REPEAT DEBITS\n")
    # Table cells are not clause numbers: "12 to 24 hours" keeps its 12.
    schedule = "\n".join(
        c.embedding_text for c in files_b["kc_service_credits.docx"].chunks if c.kind == "table"
    )
    assert "\n12 to 24 hours | 25% | 50% | 50%" in schedule
    # Numbered list items of the sandbox policies lose their numbers too.
    duplicates = next(c for c in files["POL-BIL-004"].chunks if c.section == "4. Duplicate charges")
    assert "\n1. List the customer's successful charges" in duplicates.text
    assert "\nList the customer's successful charges" in duplicates.embedding_text


def test_table_chunks_carry_the_bands_their_rows_state(
    files: dict[str, PolicyFile], files_b: dict[str, PolicyFile]
) -> None:
    outage = [c for c in files["POL-OUT-002"].chunks if "6-12 hours | Premium" in c.text]
    assert len(outage) == 1
    assert outage[0].bands == (Band("duration", 360, 720),)
    assert outage[0].metadata(file_hash="")["bands"] == "duration:360:720"
    # The header names the unit of a bare number: "Amount per case (GBP)" over "Up to 100".
    limits = next(c for c in files_b["kc_authority_matrix.docx"].chunks if c.kind == "table")
    assert limits.bands == (
        Band("money", 0, 100),
        Band("money", 100, 1000),
        Band("money", 1000, math.inf),
    )
    assert all(c.bands == () for f in files.values() for c in f.chunks if c.kind == "text")
