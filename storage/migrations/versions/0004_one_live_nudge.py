"""At most one live (pending or claimed) nudge per deal, kind and key.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 18:06:51.855807
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("nudge", schema=None) as batch_op:
        batch_op.create_index(
            "uq_nudge_live",
            ["deal_id", "kind", "key"],
            unique=True,
            postgresql_where=sa.text("state IN ('pending', 'claimed')"),
            sqlite_where=sa.text("state IN ('pending', 'claimed')"),
        )


def downgrade() -> None:
    with op.batch_alter_table("nudge", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_nudge_live",
            postgresql_where=sa.text("state IN ('pending', 'claimed')"),
            sqlite_where=sa.text("state IN ('pending', 'claimed')"),
        )
