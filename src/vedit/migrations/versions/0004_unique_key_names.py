"""unique key names: one active key per name

Revision ID: 0004
Revises: 0003

Older vedits let two active keys share a name. Before the partial unique index is made,
every active key whose name an older active key already has is renamed ``NAME#ID`` (its
id appended; the key itself, its hash and its tasks are unchanged), and each rename is
logged as a warning. Revoked keys keep their names: the index covers active keys only.
"""

import logging

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

NAME_MAX = 128
log = logging.getLogger("vedit.migrations")


def _renames(rows: list[tuple[int, str]]) -> list[tuple[int, str, str]]:
    """(id, old name, new name) for each active key but the oldest of each name."""
    used = {name for _, name in rows}
    kept: set[str] = set()
    renames = []
    for key_id, name in rows:
        if name not in kept:
            kept.add(name)
            continue
        n, suffix = 1, f"#{key_id}"
        new = name[: NAME_MAX - len(suffix)] + suffix
        while new in used:  # an active key is literally named "app#7" already
            n += 1
            suffix = f"#{key_id}.{n}"
            new = name[: NAME_MAX - len(suffix)] + suffix
        used.add(new)
        renames.append((key_id, name, new))
    return renames


def upgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(
        sa.text("SELECT id, name FROM api_keys WHERE revoked_at IS NULL ORDER BY id")
    ).all()
    for key_id, old, new in _renames([(int(r[0]), str(r[1])) for r in rows]):
        conn.execute(
            sa.text("UPDATE api_keys SET name = :name WHERE id = :id"), {"name": new, "id": key_id}
        )
        log.warning(
            "key %d was renamed from %r to %r: an older active key has that name, and a name "
            "now belongs to one active key",
            key_id, old, new,
        )  # fmt: skip
    op.create_index(
        "ux_api_keys_active_name",
        "api_keys",
        ["name"],
        unique=True,
        sqlite_where=sa.text("revoked_at IS NULL"),
        postgresql_where=sa.text("revoked_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ux_api_keys_active_name", table_name="api_keys")
