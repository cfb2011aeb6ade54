"""Write a second policy collection, in another company's hand, to tests/data/policies_b/.

Kestrel Cloud Ltd writes its billing-dispute policies differently from the sandbox
company (tools/write_policies.py): terse numbered clauses ("3.2.1 ..."), headings that
are bold Normal paragraphs in capitals rather than Heading styles, the title a bold
paragraph, tables with merged cells and two-row headers, and appendices. The subject is
the same (repeat debits, service credits, termination, reimbursements, unknown debits,
card scheme disputes) in other words. It exists to measure whether ingestion and
retrieval generalise (tests/data/policies_b_queries.json, bench/retrieval.py); the
generated .docx files are committed. Regenerate after editing this file:

    uv run python tests/data/make_policies_b.py [--out DIR]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from docx import Document
from docx.document import Document as DocxDocument
from docx.oxml import OxmlElement
from docx.shared import Pt
from docx.table import Table

OUT = Path(__file__).resolve().with_name("policies_b")
_CREATED = datetime(2024, 9, 2, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class H:
    """A bold heading paragraph."""

    text: str


@dataclass(frozen=True)
class T:
    """A table: header rows, body rows; a cell of None continues the merge to its
    left (horizontal) and a cell of "^" continues the merge above it (vertical)."""

    header: Sequence[Sequence[str | None]]
    rows: Sequence[Sequence[str | None]]


Block = str | H | T


def _bold_paragraph(document: DocxDocument, text: str, size: int | None = None) -> None:
    paragraph = document.add_paragraph()
    run = paragraph.add_run(text)
    run.bold = True
    if size:
        run.font.size = Pt(size)


def _mark_header_row(table: Table, index: int) -> None:
    tr_pr = table.rows[index]._tr.get_or_add_trPr()
    tr_pr.append(OxmlElement("w:tblHeader"))


def _table(document: DocxDocument, spec: T) -> None:
    grid = [*spec.header, *spec.rows]
    width = len(grid[0])
    table = document.add_table(rows=len(grid), cols=width)
    table.style = "Table Grid"
    for r, row in enumerate(grid):
        for c, value in enumerate(row):
            if value is None or value == "^":
                continue
            cell = table.cell(r, c)
            end_c = c
            while end_c + 1 < width and row[end_c + 1] is None:
                end_c += 1
            end_r = r
            while end_r + 1 < len(grid) and grid[end_r + 1][c] == "^":
                end_r += 1
            if (end_r, end_c) != (r, c):
                cell = cell.merge(table.cell(end_r, end_c))
            cell.text = value
            if r < len(spec.header):
                for paragraph in cell.paragraphs:
                    for run in paragraph.runs:
                        run.bold = True
    for r in range(len(spec.header)):
        _mark_header_row(table, r)


def write_document(path: Path, title: str, ref: str, blocks: Sequence[Block]) -> None:
    document = Document()
    document.core_properties.title = title
    document.core_properties.author = "Kestrel Cloud Ltd - Revenue Assurance"
    document.core_properties.created = _CREATED
    document.core_properties.modified = _CREATED
    document.core_properties.revision = 1
    _bold_paragraph(document, title.upper(), size=16)
    document.add_paragraph(ref)
    for block in blocks:
        if isinstance(block, H):
            _bold_paragraph(document, block.text)
        elif isinstance(block, T):
            _table(document, block)
        else:
            document.add_paragraph(block)
    document.save(str(path))


_CONTROL: list[Block] = [
    H("DOCUMENT CONTROL"),
    "Approved by the Revenue Assurance Committee. Reviewed annually.",
    T(header=[["Issue", "Date", "Change"]], rows=[["4", "02/09/2024", "Re-issued in new format"]]),
]

DOCUMENTS: dict[str, tuple[str, str, list[Block]]] = {
    "kc_billing_errors.docx": (
        "Billing Error Standard",
        "Ref. KC-FIN-11 | Issue 4 | Owner: Revenue Assurance",
        [
            H("1. PURPOSE"),
            "1.1 This standard governs how Kestrel Cloud corrects errors in amounts taken "
            "from a Customer.",
            "1.2 It applies to all Kestrel plans billed by card, direct debit or invoice.",
            H("2. DEFINITIONS"),
            "2.1 Repeat Debit: two or more collections for one Billing Period or one "
            "invoice where only one was due.",
            "2.2 Price Variance: a collection that differs from the Tariff in force for "
            "the Customer's plan.",
            H("3. REPEAT DEBITS"),
            "3.1 Identification.",
            "3.1.1 Agent compares the ledger for the Billing Period against the gateway "
            "settlement report.",
            "3.1.2 A Repeat Debit exists where collections share value and Billing Period, "
            "whether on the same or a different payment instrument.",
            "3.1.3 Gateway retries after a timeout that settle twice are Repeat Debits.",
            "3.2 Remedy.",
            "3.2.1 Every collection beyond the first is returned in full to the instrument "
            "it came from. No approval needed up to GBP 500.",
            "3.2.2 Return is not conditional on the Customer's account being in good standing.",
            "3.3 Authorisation holds that never settled are not Repeat Debits; Customer to "
            "be told the hold lapses within 7 days.",
            H("4. PRICE VARIANCES"),
            "4.1 Agent recalculates the amount due from the Tariff, seat count and "
            "add-ons on the order form.",
            "4.2 Where collected > due, the excess is returned. Where collected < due, no "
            "further collection for that period.",
            "4.3 Plan mismatch (Customer billed on a higher tier than the one ordered): "
            "return the tier difference for every affected period, max 12 periods back.",
            "4.4 Seat count errors: bill only seats active on the renewal date.",
            "4.5 Expired promotional pricing is not a Price Variance where the order form "
            "stated the end date.",
            H("5. TAX AND FOREIGN EXCHANGE"),
            "5.1 VAT/sales tax charged at the wrong rate or to an exempt Customer holding "
            "a valid certificate: correct and return the tax element.",
            "5.2 Differences from the card issuer's currency conversion or foreign "
            "transaction fees are outside Kestrel's control; no return.",
            *_CONTROL,
        ],
    ),
    "kc_service_credits.docx": (
        "Service Level Credit Schedule",
        "Ref. KC-OPS-07 | Issue 4 | Owner: Platform Operations",
        [
            H("1. SCOPE"),
            "1.1 Sets the credits payable when the Kestrel platform misses its monthly "
            "availability commitment.",
            H("2. MEASURING UNAVAILABILITY"),
            "2.1 Unavailability = minutes in which the production API or console fails "
            "health checks from 2 of 3 monitoring regions.",
            "2.2 Measured per calendar month, rounded down to the minute.",
            "2.3 Partial degradation (latency above 5 s for > 50% of requests) counts "
            "at half weight.",
            H("3. CREDIT SCHEDULE"),
            "3.1 Credits are a percentage of the monthly fee of the affected service.",
            T(
                header=[
                    ["Unavailable time in month", "Credit (% of monthly fee)", None, None],
                    ["^", "Essential plan", "Business plan", "Corporate plan"],
                ],
                rows=[
                    ["Under 1 hour", "0%", "0%", "5%"],
                    ["1 to 4 hours", "5%", "10%", "10%"],
                    ["4 to 12 hours", "10%", "25%", "25%"],
                    ["12 to 24 hours", "25%", "50%", "50%"],
                    ["Over 24 hours", "50%", "100%", "100%"],
                    ["Credits are capped at 100% of one month's fee.", None, None, None],
                ],
            ),
            "3.2 Credit applied to the next invoice; paid out only if the account is closed.",
            H("4. CLAIMING A CREDIT"),
            "4.1 Customer must raise a claim within 30 days of month end.",
            "4.2 Claim to state affected workspace, approximate start and end times.",
            "4.3 Agent verifies against the incident log; no log entry = no credit unless "
            "monitoring shows the failure.",
            H("5. EXCLUSIONS"),
            "5.1 No credit for: planned maintenance announced 72 h ahead; faults in the "
            "Customer's network, browser or integrations; suspension for non-payment; "
            "beta features; force majeure.",
            "5.2 Free-tier accounts receive no credits.",
            H("APPENDIX A - WORKED EXAMPLES"),
            "A.1 Business plan, GBP 300/month, 6 h 10 min unavailable: band 4 to 12 hours, "
            "25%, credit GBP 75.",
            "A.2 Essential plan, 50 min unavailable: under 1 hour, no credit.",
            "A.3 Corporate plan, 30 h unavailable across two incidents: over 24 hours, "
            "100%, credit one full month.",
            *_CONTROL,
        ],
    ),
    "kc_termination.docx": (
        "Termination and Final Billing",
        "Ref. KC-CUS-03 | Issue 4 | Owner: Customer Operations",
        [
            H("1. PURPOSE"),
            "1.1 Rules for ending a Kestrel subscription and for billing after notice.",
            H("2. GIVING NOTICE"),
            "2.1 Notice may be given in the console (Settings > Plan > End subscription), "
            "by email to accounts@kestrel.example, or by phone to an agent.",
            "2.2 Notice is effective on the date received; the confirmation reference is "
            "proof of notice.",
            "2.3 Monthly plans end at the close of the current Billing Period. No partial "
            "month returns except under section 4.",
            H("3. COLLECTIONS AFTER NOTICE"),
            "3.1 Any collection for a period starting after the effective date of notice is "
            "returned in full.",
            "3.2 Where the Customer cannot produce a confirmation reference, agent checks "
            "console audit log, email inbox and call records before declining.",
            "3.3 Customer kept using the service after notice: collection stands for the "
            "period of use only.",
            "3.4 Repeated failure to stop billing after notice: escalate to Team Lead.",
            H("4. WITHDRAWAL PERIOD AND PRO-RATA RETURNS"),
            "4.1 New consumer Customers may withdraw within 14 days of first purchase for a "
            "full return, no reason needed.",
            "4.2 Annual plans ended early after the withdrawal period: return of unused "
            "whole months, less any discount received for paying annually.",
            "4.3 Business Customers on fixed-term contracts: no pro-rata return; fees due "
            "to term end.",
            *_CONTROL,
        ],
    ),
    "kc_reimbursements.docx": (
        "Reimbursement Procedure",
        "Ref. KC-FIN-14 | Issue 4 | Owner: Finance Operations",
        [
            H("1. SCOPE"),
            "1.1 How money owed back to a Customer is paid and traced.",
            H("2. METHODS AND TIMING"),
            "2.1 Money is returned to the original payment method. Never in cash.",
            T(
                header=[
                    ["Original method", "Kestrel sends within", "Customer sees it within"],
                ],
                rows=[
                    ["Card (Visa, Mastercard)", "2 working days", "5 to 10 working days"],
                    ["^", "^", "Debit cards: up to 5 working days"],
                    ["American Express", "2 working days", "up to 14 days"],
                    ["Direct debit", "3 working days", "3 to 5 working days"],
                    ["Invoice / bank transfer", "5 working days", "depends on the bank"],
                ],
            ),
            "2.2 If the card has expired or been replaced the issuer normally routes the "
            "money to the new card.",
            H("3. MONEY NOT ARRIVED"),
            "3.1 Customer reports a reimbursement not received: agent confirms it was sent "
            "and gives the Acquirer Reference Number (ARN).",
            "3.2 Within the published window: ask the Customer to wait and to quote the ARN "
            "to their bank.",
            "3.3 Outside the window: open a trace with the payment processor; if the "
            "processor confirms failure, send again by bank transfer.",
            "3.4 Never send twice before the trace closes.",
            H("4. TIME LIMIT FOR QUERIES"),
            "4.1 Queries about a collection must be raised within 90 days of the collection date.",
            "4.2 Late queries: agent may still act on an obvious Kestrel error with Team "
            "Lead approval.",
            *_CONTROL,
        ],
    ),
    "kc_disputed_transactions.docx": (
        "Disputed and Unknown Transactions",
        "Ref. KC-RSK-05 | Issue 4 | Owner: Risk",
        [
            H("1. SCOPE"),
            "1.1 Debits the Customer does not know, says they did not make, or has disputed "
            "with their card issuer.",
            H("2. UNKNOWN DEBITS: FIRST CONTACT"),
            "2.1 Explain the statement descriptor KESTREL*CLOUD and the invoice it belongs to.",
            "2.2 Check for other users on the account, free-trial conversions and annual "
            "renewals before treating the debit as unauthorised.",
            "2.3 If recognised after explanation: close, no return.",
            H("3. SUSPECTED ACCOUNT COMPROMISE"),
            "3.1 Debit not recognised after explanation and not made by an account user: "
            "treat as unauthorised.",
            "3.2 Lock the account, force password reset, revoke API keys.",
            "3.3 Return the unauthorised debits in full; report to Risk within 24 hours.",
            "3.4 Do not ask the Customer for a police report as a condition of the return.",
            H("4. CARD SCHEME DISPUTES"),
            "4.1 When the issuer opens a dispute the amount is withdrawn from Kestrel "
            "automatically; never also return it directly (the Customer would be paid twice).",
            "4.2 Respond through the processor before the deadline in Appendix B with the "
            "evidence listed there.",
            "4.3 Accept the dispute without evidence where section 3 applies.",
            "4.4 Early fraud warnings: return the debit and cancel the subscription before a "
            "dispute is opened.",
            H("APPENDIX B - DISPUTE EVIDENCE AND DEADLINES"),
            T(
                header=[
                    ["Reason group", "Evidence to submit", "Deadline"],
                    ["^", "^", "(days from notice)"],
                ],
                rows=[
                    ["Fraud / not authorised", "Login and IP history, 3-D Secure result", "7"],
                    ["^", "Prior undisputed payments on the same card", "^"],
                    ["Duplicate processing", "Ledger showing single collection", "10"],
                    ["Cancelled subscription", "Terms, notice log, usage after notice", "10"],
                    ["Product not received", "Usage logs, delivery of service", "10"],
                ],
            ),
            *_CONTROL,
        ],
    ),
    "kc_authority_matrix.docx": (
        "Delegated Authority Matrix",
        "Ref. KC-GOV-01 | Issue 4 | Owner: Finance Director",
        [
            H("1. PURPOSE"),
            "1.1 Who may approve money returned to Customers, by amount.",
            H("2. APPROVAL LIMITS"),
            T(
                header=[
                    ["Amount per case (GBP)", "Approver", None],
                    ["^", "Self-serve and SME accounts", "Strategic accounts"],
                ],
                rows=[
                    ["Up to 100", "Agent", "Agent"],
                    ["100 to 1,000", "Team Lead", "Account Director"],
                    ["Over 1,000", "Finance Director", "Finance Director"],
                ],
            ),
            "2.1 Split cases to stay under a limit are a disciplinary matter.",
            "2.2 Goodwill gestures without a policy basis: Team Lead approval at any amount.",
            H("APPENDIX A - GLOSSARY"),
            "Billing Period: the month or year an invoice covers. Collection: any money "
            "taken from the Customer. Customer: the account holder. Tariff: the published "
            "price list.",
            *_CONTROL,
        ],
    ),
}


def write_all(out: Path = OUT) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, (title, ref, blocks) in DOCUMENTS.items():
        write_document(out / name, title, ref, blocks)
        paths.append(out / name)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    for path in write_all(args.out):
        print(path)


if __name__ == "__main__":
    main()
