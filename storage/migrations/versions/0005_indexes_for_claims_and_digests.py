"""Indexes for abandoned nudge claims and for each member's latest change (digests).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 18:57:04.756792
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("answer_change", schema=None) as batch_op:
        batch_op.create_index(
            "ix_answer_change_changed_by_at", ["changed_by", "changed_at"], unique=False
        )

    with op.batch_alter_table("nudge", schema=None) as batch_op:
        batch_op.create_index(
            "ix_nudge_claimed_at",
            ["claimed_at"],
            unique=False,
            postgresql_where=sa.text("state = 'claimed'"),
            sqlite_where=sa.text("state = 'claimed'"),
        )

    with op.batch_alter_table("stage_change", schema=None) as batch_op:
        batch_op.create_index(
            "ix_stage_change_changed_by_at", ["changed_by", "changed_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("stage_change", schema=None) as batch_op:
        batch_op.drop_index("ix_stage_change_changed_by_at")

    with op.batch_alter_table("nudge", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_nudge_claimed_at",
            postgresql_where=sa.text("state = 'claimed'"),
            sqlite_where=sa.text("state = 'claimed'"),
        )

    with op.batch_alter_table("answer_change", schema=None) as batch_op:
        batch_op.drop_index("ix_answer_change_changed_by_at")
