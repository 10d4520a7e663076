"""Projects, tokens, builds and compilations.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("allow_pickle", sa.Boolean, nullable=False),
        sa.Column("signing_key_pem", sa.LargeBinary, nullable=False),
        sa.Column("public_key_pem", sa.LargeBinary, nullable=False))
    op.create_table(
        "tokens",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False, index=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("scopes", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False))
    op.create_table(
        "builds",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("key", sa.String(64), nullable=False, index=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("model_sha256", sa.String(64), nullable=False),
        sa.Column("model_file", sa.String(200), nullable=False),
        sa.Column("calibration_sha256", sa.String(64)),
        sa.Column("device", sa.JSON, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("backend_requested", sa.String(50), nullable=False),
        sa.Column("options", sa.JSON, nullable=False),
        sa.Column("backend", sa.String(50)),
        sa.Column("backend_version", sa.String(100)),
        sa.Column("chosen_because", sa.String(2000)),
        sa.Column("report", sa.JSON),
        sa.Column("log", sa.JSON, nullable=False),
        sa.Column("progress", sa.Float, nullable=False),
        sa.Column("error_message", sa.String(4000)),
        sa.Column("error_where", sa.String(1000)),
        sa.Column("error_hint", sa.String(2000)),
        sa.Column("artifact_sha256", sa.String(64)),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("started_at", sa.DateTime),
        sa.Column("finished_at", sa.DateTime),
        sa.Column("seconds", sa.Float))
    op.create_index("ux_builds_live_key", "builds", ["key"], unique=True,
                    sqlite_where=sa.text("state != 'failed'"), postgresql_where=sa.text("state != 'failed'"))
    op.create_table(
        "compilations",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False, index=True),
        sa.Column("build_id", sa.String(32), sa.ForeignKey("builds.id"), nullable=False, index=True),
        sa.Column("cached", sa.Boolean, nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False))


def downgrade() -> None:
    op.drop_table("compilations")
    op.drop_index("ux_builds_live_key", "builds")
    op.drop_table("builds")
    op.drop_table("tokens")
    op.drop_table("projects")
