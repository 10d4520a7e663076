"""A deployment's delivery mode (push or pull over object 9), the explicit board id or profile
that plans the devices without the TinyML object, and a model deployed per device class (the
classes, and each device's module).

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
    op.add_column("deployments", sa.Column("classes", sa.JSON))
    op.add_column("deployment_devices", sa.Column("module_sha256", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("deployment_devices") as t:
        t.drop_column("module_sha256")
    with op.batch_alter_table("deployments") as t:
        t.drop_column("classes")
        t.drop_column("profile")
        t.drop_column("mode")
