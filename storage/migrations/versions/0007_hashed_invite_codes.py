"""Invite codes are kept as SHA-256 hashes: the database holds no code anyone could use.

Each existing code is replaced by its hash, so an invite made before the upgrade still works
(its holder types the same code). The downgrade cannot bring the codes back: the invites left
unused then no longer work, and new ones must be made.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 14:20:00
"""

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INVITE = sa.table(
    "invite",
    sa.column("id", sa.Integer),
    sa.column("code", sa.String),
    sa.column("code_hash", sa.String),
)


def upgrade() -> None:
    op.add_column("invite", sa.Column("code_hash", sa.String(length=64), nullable=True))
    connection = op.get_bind()
    for row_id, code in connection.execute(sa.select(INVITE.c.id, INVITE.c.code)).all():
        hashed = hashlib.sha256(code.encode()).hexdigest()  # as storage/invites.py hashes
        connection.execute(INVITE.update().where(INVITE.c.id == row_id).values(code_hash=hashed))
    with op.batch_alter_table("invite") as batch:
        batch.alter_column("code_hash", existing_type=sa.String(length=64), nullable=False)
        batch.drop_constraint(op.f("uq_invite_code"), type_="unique")
        batch.drop_column("code")
        batch.create_unique_constraint(op.f("uq_invite_code_hash"), ["code_hash"])


def downgrade() -> None:
    with op.batch_alter_table("invite") as batch:
        batch.add_column(sa.Column("code", sa.String(length=32), nullable=True))
    connection = op.get_bind()
    # A hash is no code: each unused invite gets a stand-in nobody holds.
    for (row_id,) in connection.execute(sa.select(INVITE.c.id)).all():
        connection.execute(
            INVITE.update().where(INVITE.c.id == row_id).values(code=f"gone-{row_id}")
        )
    with op.batch_alter_table("invite") as batch:
        batch.alter_column("code", existing_type=sa.String(length=32), nullable=False)
        batch.drop_constraint(op.f("uq_invite_code_hash"), type_="unique")
        batch.drop_column("code_hash")
        batch.create_unique_constraint(op.f("uq_invite_code"), ["code"])
