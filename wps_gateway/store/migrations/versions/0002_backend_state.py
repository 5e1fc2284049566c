"""backend state (framework id and other engine state kept across restarts)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 04:40:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('backend_state',
    sa.Column('backend', sa.String(length=32), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('updated', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('backend', 'key')
    )


def downgrade() -> None:
    op.drop_table('backend_state')
