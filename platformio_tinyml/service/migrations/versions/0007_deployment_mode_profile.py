"""A deployment's delivery mode (push or pull over object 9) and the explicit board id or profile
that plans the devices without the TinyML object.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("deployments", sa.Column("mode", sa.String(8), nullable=False, server_default="push"))
    op.add_column("deployments", sa.Column("profile", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("deployments") as t:
        t.drop_column("profile")
        t.drop_column("mode")
