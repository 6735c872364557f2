"""when the deadline sweep next needs to look at a ticket

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL for tickets that exist already: the first sweep of a starting daemon looks at every
    # open ticket anyway and sets it.
    with op.batch_alter_table("tickets") as batch_op:
        batch_op.add_column(sa.Column("next_check_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_tickets_next_check_at", ["next_check_at"])


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch_op:
        batch_op.drop_index("ix_tickets_next_check_at")
        batch_op.drop_column("next_check_at")
