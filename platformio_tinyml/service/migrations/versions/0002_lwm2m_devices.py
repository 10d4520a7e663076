"""LwM2M devices: endpoint rules per project, devices, registrations, reported values.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "endpoint_rules",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False, index=True),
        sa.Column("pattern", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False))
    op.create_table(
        "devices",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("endpoint", sa.String(200), nullable=False, unique=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False, index=True),
        sa.Column("online", sa.Boolean, nullable=False),
        sa.Column("registration_id", sa.String(32)),
        sa.Column("last_seen", sa.DateTime),
        sa.Column("capabilities", sa.JSON),
        sa.Column("capabilities_error", sa.String(1000)),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False))
    op.create_table(
        "registrations",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("device_id", sa.Integer, sa.ForeignKey("devices.id"), nullable=False, index=True),
        sa.Column("address", sa.String(200), nullable=False),
        sa.Column("lwm2m_version", sa.String(10), nullable=False),
        sa.Column("binding", sa.String(10), nullable=False),
        sa.Column("lifetime_s", sa.Integer, nullable=False),
        sa.Column("objects", sa.JSON, nullable=False),
        sa.Column("registered_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("ended_at", sa.DateTime),
        sa.Column("end_reason", sa.String(50)))
    op.create_table(
        "device_values",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("device_id", sa.Integer, sa.ForeignKey("devices.id"), nullable=False, index=True),
        sa.Column("path", sa.String(100), nullable=False),
        sa.Column("value", sa.JSON, nullable=False),
        sa.Column("source", sa.String(10), nullable=False),
        sa.Column("time", sa.Float),
        sa.Column("received_at", sa.DateTime, nullable=False))


def downgrade() -> None:
    op.drop_table("device_values")
    op.drop_table("registrations")
    op.drop_table("devices")
    op.drop_table("endpoint_rules")
