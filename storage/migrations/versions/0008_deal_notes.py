"""Deal notes: what reps wrote about a deal, word for word, on its timeline.

A new table; nothing existing changes, so every earlier row stays as it was.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 18:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "deal_note",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("deal_id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("field_key", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["author_id"], ["member.id"], name=op.f("fk_deal_note_author_id_member")
        ),
        sa.ForeignKeyConstraint(
            ["deal_id"], ["deal.id"], name=op.f("fk_deal_note_deal_id_deal"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deal_note")),
    )
    with op.batch_alter_table("deal_note", schema=None) as batch_op:
        batch_op.create_index(
            "ix_deal_note_deal_id_created_at", ["deal_id", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("deal_note", schema=None) as batch_op:
        batch_op.drop_index("ix_deal_note_deal_id_created_at")
    op.drop_table("deal_note")
