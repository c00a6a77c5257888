"""The DDL of PostgresStore's layout 1, as that layout wrote it (storage/_postgres_schema.py
before leases): the migration test builds a layout-1 schema with it and opens it with the
current library."""

from __future__ import annotations

__all__ = ["LAYOUT_1"]

_WRITE_HEAD = """
CREATE FUNCTION write_head(
    p_name text, p_expected bigint, p_version bigint, p_blob bytea, p_journal boolean,
    p_retain integer, p_channel text
) RETURNS bigint LANGUAGE plpgsql AS $body$
DECLARE
    v_current bigint;
BEGIN
    -- The row lock is the compare-and-set: a concurrent writer of the same context waits
    -- here and then reads the version the first one committed.
    SELECT version INTO v_current FROM contexts WHERE name = p_name FOR UPDATE;
    IF NOT FOUND OR v_current <> p_expected THEN
        RETURN v_current;  -- NULL: no such context; else the version that refused it
    END IF;
    UPDATE contexts SET version = p_version WHERE name = p_name;
    IF p_journal THEN
        INSERT INTO journal (context, version, blob) VALUES (p_name, p_version, p_blob);
    ELSE
        INSERT INTO snapshots (context, version, blob) VALUES (p_name, p_version, p_blob);
        -- Retention counts snapshots, not version numbers: a writer may skip versions.
        DELETE FROM snapshots WHERE context = p_name AND version < (
            SELECT min(version) FROM (
                SELECT version FROM snapshots WHERE context = p_name
                ORDER BY version DESC LIMIT p_retain
            ) AS kept
        );
        -- Journal entries no retained snapshot needs any more.
        DELETE FROM journal WHERE context = p_name AND version <= (
            SELECT min(version) FROM snapshots WHERE context = p_name
        );
    END IF;
    -- Delivered at commit, and once per transaction however many writes it holds (equal
    -- notifications of one transaction are folded into one).
    PERFORM pg_notify(p_channel, '');
    RETURN v_current;
END
$body$
"""

_WRITE_HEADS = """
CREATE FUNCTION write_heads(
    p_names text[], p_expected bigint[], p_versions bigint[], p_blobs bytea[],
    p_journal boolean[], p_retain integer, p_channel text
) RETURNS bigint[] LANGUAGE plpgsql AS $body$
DECLARE
    v_found bigint[] := '{}';
    v_refused text[] := '{}';
    v_current bigint;
BEGIN
    -- In order: a later write of the same context expects the version an earlier one set.
    FOR i IN 1 .. coalesce(array_length(p_names, 1), 0) LOOP
        IF p_names[i] = ANY (v_refused) THEN
            -- A write after a refused one of its context is refused too: the version it
            -- expects may be there, but as another writer's. Report the head, write nothing.
            SELECT version INTO v_current FROM contexts WHERE name = p_names[i];
        ELSE
            v_current := write_head(
                p_names[i], p_expected[i], p_versions[i], p_blobs[i], p_journal[i],
                p_retain, p_channel
            );
            IF v_current IS DISTINCT FROM p_expected[i] THEN
                v_refused := v_refused || p_names[i];
            END IF;
        END IF;
        v_found := v_found || v_current;
    END LOOP;
    RETURN v_found;
END
$body$
"""

LAYOUT_1: tuple[str, ...] = (
    "CREATE TABLE store_info (application text NOT NULL, schema_version integer NOT NULL)",
    'CREATE TABLE contexts (name text COLLATE "C" PRIMARY KEY, version bigint NOT NULL)',
    'CREATE TABLE snapshots (context text COLLATE "C" NOT NULL, version bigint NOT NULL, '
    "blob bytea NOT NULL, PRIMARY KEY (context, version))",
    'CREATE TABLE journal (context text COLLATE "C" NOT NULL, version bigint NOT NULL, '
    "blob bytea NOT NULL, PRIMARY KEY (context, version))",
    "CREATE TABLE recovery_points (point_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
    'context text COLLATE "C" NOT NULL, version bigint NOT NULL, label text, '
    "created_at timestamptz NOT NULL, blob bytea NOT NULL)",
    "CREATE INDEX recovery_points_by_context ON recovery_points (context, point_id)",
    # Blobs are zstd frames already: PostgreSQL's own compression would only cost CPU.
    "ALTER TABLE snapshots ALTER COLUMN blob SET STORAGE EXTERNAL",
    "ALTER TABLE journal ALTER COLUMN blob SET STORAGE EXTERNAL",
    "ALTER TABLE recovery_points ALTER COLUMN blob SET STORAGE EXTERNAL",
    _WRITE_HEAD,
    _WRITE_HEADS,
)
