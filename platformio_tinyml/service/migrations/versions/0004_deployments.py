"""Deployments: staged rollouts of one signed module to a selection of LwM2M devices.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False, index=True),
        sa.Column("module_sha256", sa.String(64), nullable=False),
        sa.Column("module_size", sa.Integer, nullable=False),
        sa.Column("module_name", sa.String(100), nullable=False),
        sa.Column("module_version", sa.BigInteger, nullable=False),
        sa.Column("selector", sa.JSON, nullable=False),
        sa.Column("stages", sa.JSON, nullable=False),
        sa.Column("criteria", sa.JSON, nullable=False),
        sa.Column("max_failure_ratio", sa.Float, nullable=False),
        sa.Column("block_size", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("stage", sa.Integer, nullable=False),
        sa.Column("message", sa.String(2000), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime))
    op.create_table(
        "deployment_devices",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("deployment_id", sa.String(32), sa.ForeignKey("deployments.id"), nullable=False, index=True),
        sa.Column("endpoint", sa.String(200), nullable=False),
        sa.Column("stage", sa.Integer),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("activated", sa.Boolean, nullable=False),
        sa.Column("reason", sa.String(2000), nullable=False),
        sa.Column("update_result", sa.Integer),
        sa.Column("result_meaning", sa.String(200), nullable=False),
        sa.Column("blocks_done", sa.Integer, nullable=False),
        sa.Column("bytes_done", sa.Integer, nullable=False),
        sa.Column("inference_base", sa.Integer),
        sa.Column("inference_count", sa.Integer),
        sa.Column("started_at", sa.DateTime),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime))
    op.create_index("ux_deployment_devices", "deployment_devices", ["deployment_id", "endpoint"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_deployment_devices", "deployment_devices")
    op.drop_table("deployment_devices")
    op.drop_table("deployments")
