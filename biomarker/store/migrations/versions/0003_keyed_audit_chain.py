"""The keyed audit chain: each new link names the audit key whose HMAC its hash is.

Earlier links keep `key_id` NULL and stay plain SHA-256 (biomarker/store/chain.py): they are not rewritten,
because rewriting history is what the chain exists to expose.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("key_id", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("key_id")
