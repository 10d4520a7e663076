"""Single pushes to a device (a module over object 9, a firmware image over object 5) kept for its
module history beside the deployments that included it.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "device_pushes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("endpoint", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("module_name", sa.String(100)),
        sa.Column("module_version", sa.BigInteger),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("update_result", sa.Integer),
        sa.Column("message", sa.String(2000), nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime, nullable=False))
    op.create_index("ix_device_pushes_device", "device_pushes", ["project_id", "endpoint", "finished_at"])


def downgrade() -> None:
    op.drop_index("ix_device_pushes_device", "device_pushes")
    op.drop_table("device_pushes")
