"""STAC items of successful jobs' products (served under /stac, pushed to the portal's catalogue)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-09 10:00:00

(0008 is another branch's; the lead renumbers when merging.)
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'stac_items',
        sa.Column('id', sa.String(length=200), nullable=False),
        sa.Column('job_id', sa.String(length=36), nullable=False),
        sa.Column('collection', sa.String(length=64), nullable=False),
        sa.Column('start', sa.DateTime(timezone=True), nullable=False),
        sa.Column('end', sa.DateTime(timezone=True), nullable=False),
        sa.Column('west', sa.Float(), nullable=True),
        sa.Column('south', sa.Float(), nullable=True),
        sa.Column('east', sa.Float(), nullable=True),
        sa.Column('north', sa.Float(), nullable=True),
        sa.Column('document', sa.JSON(), nullable=False),
        sa.Column('created', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_stac_items_job', 'stac_items', ['job_id'], unique=False)
    op.create_index('ix_stac_items_collection_created', 'stac_items', ['collection', 'created'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_stac_items_collection_created', table_name='stac_items')
    op.drop_index('ix_stac_items_job', table_name='stac_items')
    op.drop_table('stac_items')
