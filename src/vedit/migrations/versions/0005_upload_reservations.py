"""upload reservations and file names

Revision ID: 0005
Revises: 0004

``upload_reservations``: the bytes of uploads in progress, reserved against the key's quota
before their bodies are read (so concurrent uploads cannot pass it together).
``uploads.filename``: the client's own file name, kept as metadata (any script).
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "upload_reservations",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["key_id"], ["api_keys.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_upload_reservations_key_id", "upload_reservations", ["key_id"])
    op.create_index("ix_upload_reservations_expires_at", "upload_reservations", ["expires_at"])
    with op.batch_alter_table("uploads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("filename", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("uploads", schema=None) as batch_op:
        batch_op.drop_column("filename")
    op.drop_index("ix_upload_reservations_expires_at", table_name="upload_reservations")
    op.drop_index("ix_upload_reservations_key_id", table_name="upload_reservations")
    op.drop_table("upload_reservations")
