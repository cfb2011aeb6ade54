"""Write the sandbox company's policy documents to `policies/*.docx`.

The prose lives in `tools/policy_text/` (one TOML file per policy, and `common.toml` for
what they share; its README says how to edit them). Every matrix (outage compensation,
approval levels, permitted resolutions) and every threshold is filled in from
`models/policy_rules.py` and the service's default settings, so the documents and the rules
the drafter and guardrails apply cannot drift apart. Regenerate after changing either:

    uv run python tools/write_policies.py [--out DIR] [--keep-existing]
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from docx import Document  # noqa: E402
from docx.document import Document as DocxDocument  # noqa: E402
from docx.shared import Pt  # noqa: E402
from docx.text.paragraph import Paragraph  # noqa: E402

from models.domain import DisputeType, ResolutionAction  # noqa: E402
from models.policy_rules import (  # noqa: E402
    ALLOWED_ACTIONS,
    APPROVAL_LEVELS,
    OUTAGE_MATRIX,
    POLICIES,
    SEGMENTS,
    PolicyDocument,
)
from services.settings import Settings  # noqa: E402

DEFAULT_DISPUTE_WINDOW_DAYS: int = Settings.model_fields["dispute_window_days"].default
TEXT_DIR = Path(__file__).resolve().with_name("policy_text")
COMMON_TEXT = "common.toml"
# The time of day of the documents' creation stamp (its date is the effective date), fixed so
# that regenerating them changes no byte of their XML.
_CREATED_AT = time(9, 0, tzinfo=UTC)


class PolicyTextError(ValueError):
    """A policy text file that cannot be rendered; the message names the file and block."""


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 1


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Numbered:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class FromRules:
    """A table or list filled in from models/policy_rules.py, named in the text file."""

    name: str


Block = Heading | Para | Bullets | Numbered | Table


@dataclass(frozen=True)
class TextBlock:
    """A block as written in a text file, before its placeholders are filled in."""

    block: Block | FromRules
    where: str


@dataclass(frozen=True)
class CommonText:
    """What every document shares, and the wording of the tables from the rules."""

    owner: str
    effective_date: date
    subject: str
    subtitle: str
    # Names by segment, DisputeType and ResolutionAction (string enums: their values).
    segments: Mapping[str, str]
    dispute_types: Mapping[str, str]
    actions: Mapping[str, str]
    outage_columns: tuple[str, ...]
    no_compensation: str
    no_amount: str
    compensation_amount: str
    approval_columns: tuple[str, ...]
    permitted_columns: tuple[str, ...]
    permitted: str
    not_permitted: str
    related_policy: str


def _fold(text: str) -> str:
    # Text files wrap prose freely: line breaks and runs of spaces are one space.
    return " ".join(text.split())


def _text(table: Mapping[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str):
        raise PolicyTextError(f"{where}: {key} must be text")
    return _fold(value)


def _text_list(value: object, what: str, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise PolicyTextError(f"{where}: {what} must be a list of text")
    return tuple(_fold(item) for item in value)


def _texts(table: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    return _text_list(table.get(key), key, where)


def _section(table: Mapping[str, Any], key: str, where: str) -> tuple[Mapping[str, Any], str]:
    """Section `key` of a file, and where it is for error messages."""
    value = table.get(key)
    if not isinstance(value, dict):
        raise PolicyTextError(f"{where}: [{key}] is missing")
    return value, f"{where} [{key}]"


def _names(
    table: Mapping[str, Any], key: str, expected: Sequence[str], where: str
) -> dict[str, str]:
    """The names section `key` gives, one for each of `expected`."""
    section, at = _section(table, key, where)
    if set(section) != set(expected):
        raise PolicyTextError(f"{at}: name exactly {', '.join(expected)}")
    return {name: _text(section, name, at) for name in expected}


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise PolicyTextError(f"{path.name}: {error}") from error


def load_common_text(path: Path) -> CommonText:
    """Read the text every document shares (common.toml)."""
    data = _read_toml(path)
    where = path.name
    effective_date = data.get("effective_date")
    if not isinstance(effective_date, date) or isinstance(effective_date, datetime):
        raise PolicyTextError(f"{where}: effective_date must be a date such as 2026-03-01")
    outage, outage_at = _section(data, "outage_matrix", where)
    approval, approval_at = _section(data, "approval_levels", where)
    permitted, permitted_at = _section(data, "permitted_resolutions", where)
    related, related_at = _section(data, "related_policies", where)
    return CommonText(
        owner=_text(data, "owner", where),
        effective_date=effective_date,
        subject=_text(data, "subject", where),
        subtitle=_text(data, "subtitle", where),
        segments=_names(data, "segments", SEGMENTS, where),
        dispute_types=_names(data, "dispute_types", list(DisputeType), where),
        actions=_names(data, "actions", list(ResolutionAction), where),
        outage_columns=_texts(outage, "columns", outage_at),
        no_compensation=_text(outage, "no_compensation", outage_at),
        no_amount=_text(outage, "no_amount", outage_at),
        compensation_amount=_text(outage, "amount", outage_at),
        approval_columns=_texts(approval, "columns", approval_at),
        permitted_columns=_texts(permitted, "columns", permitted_at),
        permitted=_text(permitted, "permitted", permitted_at),
        not_permitted=_text(permitted, "not_permitted", permitted_at),
        related_policy=_text(related, "item", related_at),
    )


def _parse_block(entry: Mapping[str, Any], where: str) -> Block | FromRules:
    keys = set(entry)
    if keys in ({"heading"}, {"heading", "level"}):
        level = entry.get("level", 1)
        if not isinstance(level, int) or isinstance(level, bool) or not 1 <= level <= 9:
            raise PolicyTextError(f"{where}: level must be a number from 1 to 9")
        return Heading(_text(entry, "heading", where), level)
    if keys == {"paragraph"}:
        return Para(_text(entry, "paragraph", where))
    if keys == {"bullets"}:
        return Bullets(_texts(entry, "bullets", where))
    if keys == {"numbered"}:
        return Numbered(_texts(entry, "numbered", where))
    if keys == {"columns", "rows"}:
        header = _texts(entry, "columns", where)
        rows = entry["rows"]
        if not isinstance(rows, list):
            raise PolicyTextError(f"{where}: rows must be a list of rows")
        table_rows = tuple(_text_list(row, "each row", where) for row in rows)
        if any(len(row) != len(header) for row in table_rows):
            raise PolicyTextError(f"{where}: every row needs {len(header)} cells, one per column")
        return Table(header, table_rows)
    if keys == {"from_rules"}:
        name = _text(entry, "from_rules", where)
        if name not in _RULE_BLOCKS:
            raise PolicyTextError(f"{where}: from_rules must be one of {', '.join(_RULE_BLOCKS)}")
        return FromRules(name)
    raise PolicyTextError(
        f"{where}: a block holds heading, paragraph, bullets, numbered, columns and rows, "
        f"or from_rules; this one holds {', '.join(sorted(keys)) or 'nothing'}"
    )


def load_policy_text(path: Path) -> tuple[TextBlock, ...]:
    """Read the blocks of one policy's text file, in order."""
    entries = _read_toml(path).get("block")
    if not isinstance(entries, list) or not entries:
        raise PolicyTextError(f"{path.name}: no [[block]] found")
    blocks = []
    for number, entry in enumerate(entries, start=1):
        where = f"{path.name} block {number}"
        blocks.append(TextBlock(_parse_block(entry, where), where))
    return tuple(blocks)


def text_file(policy: PolicyDocument, text_dir: Path = TEXT_DIR) -> Path:
    """The text file of `policy`: its document's name, ending in .toml."""
    return text_dir / Path(policy.file_name).with_suffix(".toml").name


def _money(amount: Decimal) -> str:
    return f"${amount:,.0f}" if amount == amount.to_integral_value() else f"${amount:,.2f}"


def _dual_control_threshold() -> Decimal:
    """The amount above which two approvals are needed (from APPROVAL_LEVELS)."""
    return min(level.min_amount for level in APPROVAL_LEVELS if level.approvers >= 2)


def _auto_approval_cap() -> Decimal:
    """The top of the auto-approval eligible band (from APPROVAL_LEVELS)."""
    eligible = [lvl.max_amount for lvl in APPROVAL_LEVELS if "auto-approval" in lvl.approver_role]
    return max(amount for amount in eligible if amount is not None)


def _setting_default(name: str) -> Any:
    # The review thresholds the service applies by default (services/settings.py).
    return Settings.model_fields[name].default


def _percent(share: Decimal) -> str:
    return f"{(share * 100).normalize():f}%"


def placeholders(
    policy: PolicyDocument, common: CommonText, *, dispute_window_days: int
) -> dict[str, str]:
    """The values a text file may name in braces, as the documents print them."""
    return {
        "policy_id": policy.policy_id,
        "title": policy.title,
        "owner": common.owner,
        "effective_date": f"{common.effective_date.day} {common.effective_date:%B %Y}",
        "dispute_window_days": str(dispute_window_days),
        "dual_control_threshold": _money(_dual_control_threshold()),
        "auto_approval_cap": _money(_auto_approval_cap()),
        "auto_approve_min_confidence": f"{_setting_default('auto_approve_min_confidence'):.0%}",
        "max_disputes_90d": str(_setting_default("max_disputes_90d")),
        "review_reminder_hours": f"{_setting_default('review_reminder_hours'):g}",
        "review_escalation_hours": f"{_setting_default('review_escalation_hours'):g}",
    }


def _fill(text: str, values: Mapping[str, str], where: str) -> str:
    try:
        return text.format_map(values)
    except KeyError as error:
        raise PolicyTextError(
            f"{where}: unknown placeholder {{{error.args[0]}}}; known: "
            + ", ".join(f"{{{name}}}" for name in values)
        ) from error
    except (IndexError, ValueError, AttributeError) as error:
        raise PolicyTextError(f"{where}: braces must hold a placeholder name: {text!r}") from error


def outage_matrix_table(common: CommonText) -> Table:
    """The outage compensation matrix, one row per duration band and segment."""
    rows = []
    for band in OUTAGE_MATRIX:
        for segment in SEGMENTS:
            share = band.share[segment]
            if share == 0:
                compensation, amount = common.no_compensation, common.no_amount
            else:
                action = (
                    ResolutionAction.ACCOUNT_CREDIT if share < 1 else ResolutionAction.FULL_REFUND
                )
                compensation = common.actions[action]
                amount = _fill(
                    common.compensation_amount,
                    {"share": _percent(share)},
                    f"{COMMON_TEXT} [outage_matrix]",
                )
            rows.append((band.label, common.segments[segment], compensation, amount))
    return Table(common.outage_columns, tuple(rows))


def approval_levels_table(common: CommonText) -> Table:
    """Approval authority by resolution amount."""
    return Table(
        common.approval_columns,
        tuple(
            (level.label, str(level.approvers), level.approver_role) for level in APPROVAL_LEVELS
        ),
    )


def permitted_resolutions_table(common: CommonText, dispute_types: Sequence[DisputeType]) -> Table:
    """Resolutions allowed for each dispute type, one row per type and action."""
    rows = []
    for dispute_type in dispute_types:
        allowed = ALLOWED_ACTIONS[dispute_type]
        for action in ResolutionAction:
            status = common.permitted if action in allowed else common.not_permitted
            rows.append((common.dispute_types[dispute_type], common.actions[action], status))
    return Table(common.permitted_columns, tuple(rows))


def _related_policies(
    policy: PolicyDocument, common: CommonText, values: Mapping[str, str]
) -> Bullets:
    where = f"{COMMON_TEXT} [related_policies]"
    return Bullets(
        tuple(
            _fill(
                common.related_policy, {**values, "policy_id": o.policy_id, "title": o.title}, where
            )
            for o in POLICIES
            if o != policy
        )
    )


_RULE_BLOCKS: dict[str, Callable[[PolicyDocument, CommonText, Mapping[str, str]], Block]] = {
    "outage_matrix": lambda policy, common, values: outage_matrix_table(common),
    "approval_levels": lambda policy, common, values: approval_levels_table(common),
    "permitted_resolutions": lambda policy, common, values: permitted_resolutions_table(
        common, policy.governs
    ),
    "related_policies": _related_policies,
}


def _filled(
    text_block: TextBlock, policy: PolicyDocument, common: CommonText, values: Mapping[str, str]
) -> Block:
    block, where = text_block.block, text_block.where
    if isinstance(block, FromRules):
        return _RULE_BLOCKS[block.name](policy, common, values)
    if isinstance(block, Heading):
        return Heading(_fill(block.text, values, where), block.level)
    if isinstance(block, Para):
        return Para(_fill(block.text, values, where))
    if isinstance(block, Bullets | Numbered):
        return type(block)(tuple(_fill(item, values, where) for item in block.items))
    return Table(
        tuple(_fill(cell, values, where) for cell in block.header),
        tuple(tuple(_fill(cell, values, where) for cell in row) for row in block.rows),
    )


def _policy_blocks(
    policy: PolicyDocument, common: CommonText, values: Mapping[str, str], text_dir: Path
) -> list[Block]:
    return [
        _filled(text_block, policy, common, values)
        for text_block in load_policy_text(text_file(policy, text_dir))
    ]


def policy_blocks(
    policy: PolicyDocument,
    *,
    dispute_window_days: int = DEFAULT_DISPUTE_WINDOW_DAYS,
    text_dir: Path = TEXT_DIR,
) -> list[Block]:
    """The content of one policy document, in order, with the rules' values filled in."""
    common = load_common_text(text_dir / COMMON_TEXT)
    values = placeholders(policy, common, dispute_window_days=dispute_window_days)
    return _policy_blocks(policy, common, values, text_dir)


def _restart_numbering(document: DocxDocument, paragraph: Paragraph) -> int:
    # Each numbered list gets its own w:num with a start override, so it counts from 1
    # instead of continuing the previous list of the document.
    numbering = document.part.numbering_part.numbering_definitions._numbering
    style_num_id = document.styles["List Number"]._element.pPr.numPr.numId.val
    abstract_id = numbering.num_having_numId(style_num_id).abstractNumId.val
    num = numbering.add_num(abstract_id)
    num.add_lvlOverride(ilvl=0).add_startOverride(1)
    return int(num.numId)


def _set_num_id(paragraph: Paragraph, num_id: int) -> None:
    num_pr = paragraph._p.get_or_add_pPr().get_or_add_numPr()
    num_pr.get_or_add_ilvl().val = 0
    num_pr.get_or_add_numId().val = num_id


def render_policy(
    policy: PolicyDocument,
    *,
    dispute_window_days: int = DEFAULT_DISPUTE_WINDOW_DAYS,
    text_dir: Path = TEXT_DIR,
) -> DocxDocument:
    """Build the .docx document of one policy."""
    common = load_common_text(text_dir / COMMON_TEXT)
    values = placeholders(policy, common, dispute_window_days=dispute_window_days)
    document = Document()
    document.styles["Normal"].font.name = "Calibri"
    document.styles["Normal"].font.size = Pt(11)
    core = document.core_properties
    core.title = policy.title
    core.identifier = policy.policy_id
    core.subject = common.subject
    core.author = common.owner
    core.last_modified_by = common.owner
    core.created = core.modified = datetime.combine(common.effective_date, _CREATED_AT)
    core.revision = 1
    core.keywords = ", ".join(common.dispute_types[t] for t in policy.governs)

    document.add_paragraph(policy.title, style="Title")
    document.add_paragraph(_fill(common.subtitle, values, COMMON_TEXT), style="Subtitle")
    for block in _policy_blocks(policy, common, values, text_dir):
        if isinstance(block, Heading):
            document.add_heading(block.text, level=block.level)
        elif isinstance(block, Para):
            document.add_paragraph(block.text)
        elif isinstance(block, Bullets):
            for item in block.items:
                document.add_paragraph(item, style="List Bullet")
        elif isinstance(block, Numbered):
            num_id: int | None = None
            for item in block.items:
                paragraph = document.add_paragraph(item, style="List Number")
                if num_id is None:
                    num_id = _restart_numbering(document, paragraph)
                _set_num_id(paragraph, num_id)
        else:
            table = document.add_table(rows=1, cols=len(block.header))
            table.style = "Table Grid"
            for cell, text in zip(table.rows[0].cells, block.header, strict=True):
                cell.text = text
                for run in cell.paragraphs[0].runs:
                    run.bold = True
            for row in block.rows:
                for cell, text in zip(table.add_row().cells, row, strict=True):
                    cell.text = text
            document.add_paragraph()
    return document


def write_policies(
    directory: Path,
    *,
    overwrite: bool = True,
    dispute_window_days: int = DEFAULT_DISPUTE_WINDOW_DAYS,
) -> list[Path]:
    """Write every policy of POLICIES into `directory`; return the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for policy in POLICIES:
        path = directory / policy.file_name
        if path.exists() and not overwrite:
            continue
        render_policy(policy, dispute_window_days=dispute_window_days).save(str(path))
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parents[1] / "policies"
    )
    parser.add_argument(
        "--keep-existing", action="store_true", help="do not overwrite files that exist"
    )
    args = parser.parse_args(argv)
    written = write_policies(args.out, overwrite=not args.keep_existing)
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
