"""dispatcher lease: a fencing epoch for the one active dispatcher

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 15:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('dispatcher_lease',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('epoch', sa.Integer(), nullable=False),
    sa.Column('holder', sa.String(length=255), nullable=False),
    sa.Column('renewed', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )


def downgrade() -> None:
    op.drop_table('dispatcher_lease')
