"""A build's input shapes and bound input values (``--input-shape`` / ``--input-value``), part of
its key and passed to its compile.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("builds", sa.Column("input_shapes", sa.JSON))
    op.add_column("builds", sa.Column("input_values", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("builds") as t:
        t.drop_column("input_values")
        t.drop_column("input_shapes")
