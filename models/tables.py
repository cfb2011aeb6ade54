"""PostgreSQL tables (SQLAlchemy Core). The schema itself is created by Alembic migrations."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

metadata = MetaData()

workflow_states = Table(
    "workflow_states",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", UUID(as_uuid=False), nullable=False, unique=True),
    Column("case_id", String(64), nullable=False),
    Column("customer_id", String(64)),
    Column("status", String(20), nullable=False, server_default="running"),
    Column("current_step", String(64)),
    Column("crm_data", JSONB),
    Column("billing_data", JSONB),
    Column("payment_data", JSONB),
    Column("resolution_proposal", JSONB),
    Column("human_review_data", JSONB),
    Column("final_resolution", JSONB),
    Column("llm_cost", Numeric(10, 6), nullable=False, server_default="0"),
    Column("total_cost", Numeric(10, 6), nullable=False, server_default="0"),
    Column("cost_breakdown", JSONB),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("completed_at", DateTime(timezone=True)),
    # The run lifecycle (migration 0003): the event that started the run, the attempts
    # made after retryable failures, when the next one is due, and the last error.
    Column("event_id", String(200)),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True)),
    Column("last_error", JSONB),
    # What started the run (migration 0005): dispute | chargeback | early_fraud_warning.
    Column("kind", String(24), nullable=False, server_default="dispute"),
    # A chargeback's latest status from Stripe, and when closed whether it was won.
    Column("dispute_outcome", JSONB),
    Index("idx_workflow_states_run_id", "run_id"),
    Index("idx_workflow_states_case_id", "case_id"),
    Index("idx_workflow_states_status", "status"),
    Index("idx_workflow_states_current_step", "current_step"),
    Index("idx_workflow_states_created_at", "created_at"),
    Index(
        "idx_workflow_states_next_attempt_at",
        "next_attempt_at",
        postgresql_where=text("status IN ('running', 'pending')"),
    ),
    Index(
        "uq_workflow_states_active_case",
        "case_id",
        unique=True,
        postgresql_where=text("status IN ('running', 'pending', 'needs_attention')"),
    ),
)

# One row per reviewer decision. `round` counts the approvals a run needs (dual control has
# two); the unique constraint makes concurrent decisions for the same round a 409, not a race.
review_decisions = Table(
    "review_decisions",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("run_id", UUID(as_uuid=False), ForeignKey("workflow_states.run_id"), nullable=False),
    Column("round", Integer, nullable=False),
    Column("decision", String(16), nullable=False),
    Column("reviewer", String(200), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("comments", Text, nullable=False, server_default=""),
    Column("modified_resolution", JSONB),
    Column("proposal_before", JSONB),
    Column("decided_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("applied_at", DateTime(timezone=True)),
    # Migration 0004: who decided, as an identity, and the resolution version decided on.
    Column("reviewer_id", Integer),
    Column("version", Integer),
    UniqueConstraint("run_id", "round", name="uq_review_decisions_run_round"),
    Index(
        "idx_review_decisions_unapplied",
        "decided_at",
        postgresql_where=text("applied_at IS NULL"),
    ),
)

# Append-only: a trigger in the migration refuses UPDATE and DELETE.
audit_events = Table(
    "audit_events",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("run_id", UUID(as_uuid=False), index=True),
    Column("case_id", String(64), index=True),
    Column("step", String(64), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("event", String(64), nullable=False),
    Column("detail", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Every queue message seen: accepted (started a run), duplicate or rejected (malformed).
processed_messages = Table(
    "processed_messages",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("event_id", String(200), unique=True),
    Column("message_id", String(200), nullable=False),
    Column("case_id", String(64)),
    Column("run_id", UUID(as_uuid=False)),
    Column("outcome", String(16), nullable=False),
    Column("error", Text),
    Column("body", Text),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # How often an unparseable message was received before the redrive policy took it.
    Column("receives", Integer, nullable=False, server_default="1"),
    Index(
        "uq_processed_messages_rejected_message",
        "message_id",
        unique=True,
        postgresql_where=text("event_id IS NULL"),
    ),
)

# Verified Stripe webhook events, once each (migration 0005): outcome enqueued | ignored.
stripe_events = Table(
    "stripe_events",
    metadata,
    Column("event_id", String(255), primary_key=True),
    Column("type", String(100), nullable=False),
    Column("object_id", String(255)),
    Column("outcome", String(16), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Durable side of the sandbox backends: refunds, credits and case updates keyed by their
# idempotency key, so the sandbox behaves like the real systems across process restarts.
sandbox_ledger = Table(
    "sandbox_ledger",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("idempotency_key", String(200), nullable=False, unique=True),
    Column("kind", String(32), nullable=False),
    Column("subject_id", String(64), nullable=False, index=True),
    Column("payload", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Drafts reused across processes for identical drafting inputs (issue: drafting cache).
draft_cache = Table(
    "draft_cache",
    metadata,
    Column("cache_key", String(128), primary_key=True),
    Column("case_id", String(64), nullable=False),
    Column("dispute_type", String(64), nullable=False, index=True),
    Column("proposal", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

# Who may decide (migration 0004). Keys, dashboard sessions and e-mailed links all resolve
# to a reviewer's id; an inactive reviewer decides nothing, through any channel.
reviewers = Table(
    "reviewers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("email", String(320)),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("deactivated_at", DateTime(timezone=True)),
    Index("uq_reviewers_name", text("lower(name)"), unique=True),
    Index("uq_reviewers_email", "email", unique=True),
)

# The payout ledger (migration 0004): one row per intended movement of money, written before
# the provider is called. State: intended -> sent -> pending | succeeded | failed | unknown.
payouts = Table(
    "payouts",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("run_id", UUID(as_uuid=False), nullable=False),
    Column("case_id", String(64), nullable=False),
    Column("charge_id", String(64), nullable=False),
    Column("account_key", String(64)),
    Column("action", String(16), nullable=False),  # refund | credit
    Column("amount", Numeric(12, 2), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("idempotency_key", String(200), nullable=False, unique=True),
    Column("version", Integer, nullable=False),
    Column("approved_by", JSONB, nullable=False),
    Column("state", String(16), nullable=False),
    Column("provider", String(32), nullable=False),
    Column("provider_ref", String(100)),
    Column("provider_status", String(32)),
    Column("failure_reason", Text),
    # A failed payout an operator has seen and retried: the next attempt may pay.
    Column("acknowledged_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("amount > 0", name="ck_payouts_amount_positive"),
    CheckConstraint(
        "state IN ('intended', 'sent', 'pending', 'succeeded', 'failed', 'unknown')",
        name="ck_payouts_state",
    ),
    Index("idx_payouts_charge_id", "charge_id"),
    Index("idx_payouts_run_id", "run_id"),
    Index("idx_payouts_case_id", "case_id"),
)

# Reviewer API keys, stored as SHA-256 hashes only.
reviewer_api_keys = Table(
    "reviewer_api_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("reviewer", String(200), nullable=False),
    # The reviewer's e-mail (migration 0002): review links go to e-mail addresses, and a
    # link decision is recorded under the reviewer name registered for that address.
    Column("email", String(320), index=True),
    Column("reviewer_id", Integer, ForeignKey("reviewers.id")),  # migration 0004
    Column("key_prefix", String(16), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("revoked_at", DateTime(timezone=True)),
)

# Single-use review-link tokens: a token's nonce is inserted when used.
used_review_tokens = Table(
    "used_review_tokens",
    metadata,
    Column("nonce", String(64), primary_key=True),
    Column("run_id", UUID(as_uuid=False), nullable=False),
    Column("reviewer", String(200), nullable=False),
    Column("used_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# E-mails about a run (review request, reminder, escalation), sent or failed.
notifications = Table(
    "notifications",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("run_id", UUID(as_uuid=False), nullable=False, index=True),
    Column("kind", String(32), nullable=False),
    Column("recipient", String(320), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Every version of every ingested policy section, by the hash of its text (migration 0006).
# The Chroma collection holds the current version only; a proposal cites hashes found here.
policy_versions = Table(
    "policy_versions",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("policy_id", String(64), nullable=False),
    Column("section", Text, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("source_file", String(255), nullable=False),
    Column("text", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("ingested_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("policy_id", "section", "content_hash", name="uq_policy_versions_hash"),
    Index("idx_policy_versions_content_hash", "content_hash"),
)
