"""The SQL of `PostgresStore`: its tables, its write function, its version stamp and the
migrations between versions.

Everything lives in one PostgreSQL schema (a namespace, `context_runtime` unless told
otherwise), so several stores can share a database and a drop of the schema removes one
whole store. Every connection of the store puts that schema first on its `search_path`, so
the statements here name tables without it. The layout is SQLite's (docs/storage.md), in
PostgreSQL types, plus functions: `write_head` does one write (the lease's fence if it
carries one, compare-and-set, the write, retention and the change notification), and
`write_heads` a batch of them in order (refusing, as `Store.commit` says, every write after a
refused one of its context), so that a batch is one statement: one round trip, and in
autocommit one transaction. `acquire_lease` and `renew_leases` are the lease's steps that
read before they write, each one statement too. Time is the server's `clock_timestamp()`.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "APPLICATION",
    "MIGRATIONS",
    "SCHEMA_TABLES",
    "SCHEMA_VERSION",
    "STATEMENTS",
]

APPLICATION = "context-runtime"
"""What `store_info.application` holds in a schema of ours: anything else is foreign."""

SCHEMA_VERSION = 2
"""`store_info.schema_version` of the layout this library writes and reads."""

SCHEMA_TABLES: tuple[str, ...] = (
    "store_info",
    "contexts",
    "snapshots",
    "journal",
    "recovery_points",
    "leases",
)
"""The tables of the current layout, as `information_schema` lists them."""

_LEASES = (
    'CREATE TABLE leases (context text COLLATE "C" PRIMARY KEY, owner text, '
    "epoch bigint NOT NULL, expires_at timestamptz NOT NULL, wanted_by text)"
)

_WRITE_HEAD = """
CREATE FUNCTION write_head(
    p_name text, p_expected bigint, p_version bigint, p_blob bytea, p_journal boolean,
    p_retain integer, p_channel text, p_lease bigint,
    OUT o_current bigint, OUT o_lost bigint
) LANGUAGE plpgsql AS $body$
DECLARE
    v_held boolean;
BEGIN
    -- The row lock is the compare-and-set: a concurrent writer of the same context waits
    -- here and then reads the version the first one committed.
    SELECT version INTO o_current FROM contexts WHERE name = p_name FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;  -- o_current NULL: no such context
    END IF;
    IF p_lease IS NOT NULL THEN
        -- Fenced: only while the lease of epoch p_lease holds, by the server's clock. The
        -- share lock keeps an acquire (which updates the row) waiting until this commits, so
        -- no successor takes the lease between this check and the write.
        SELECT epoch, owner IS NOT NULL AND expires_at > clock_timestamp()
            INTO o_lost, v_held FROM leases WHERE context = p_name FOR SHARE;
        IF NOT FOUND THEN
            o_lost := 0;  -- never taken
            RETURN;
        ELSIF v_held AND o_lost = p_lease THEN
            o_lost := NULL;
        ELSE
            RETURN;  -- o_lost: the epoch the store holds
        END IF;
    END IF;
    IF o_current <> p_expected THEN
        RETURN;  -- the version that refused it
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
END
$body$
"""

_WRITE_HEADS = """
CREATE FUNCTION write_heads(
    p_names text[], p_expected bigint[], p_versions bigint[], p_blobs bytea[],
    p_journal boolean[], p_retain integer, p_channel text, p_leases bigint[],
    OUT o_found bigint[], OUT o_lost bigint[]
) LANGUAGE plpgsql AS $body$
DECLARE
    v_refused text[] := '{}';
    v_current bigint;
    v_lost bigint;
BEGIN
    o_found := '{}';
    o_lost := '{}';
    -- In order: a later write of the same context expects the version an earlier one set.
    FOR i IN 1 .. coalesce(array_length(p_names, 1), 0) LOOP
        IF p_names[i] = ANY (v_refused) THEN
            -- A write after a refused one of its context is refused too: the version it
            -- expects may be there, but as another writer's. Report the head, write nothing.
            SELECT version INTO v_current FROM contexts WHERE name = p_names[i];
            v_lost := NULL;
        ELSE
            SELECT * INTO v_current, v_lost FROM write_head(
                p_names[i], p_expected[i], p_versions[i], p_blobs[i], p_journal[i],
                p_retain, p_channel, p_leases[i]
            );
            IF v_lost IS NOT NULL OR v_current IS DISTINCT FROM p_expected[i] THEN
                v_refused := v_refused || p_names[i];
            END IF;
        END IF;
        o_found := o_found || v_current;
        o_lost := o_lost || v_lost;
    END LOOP;
END
$body$
"""

_ACQUIRE_LEASE = """
CREATE FUNCTION acquire_lease(
    p_name text, p_owner text, p_ttl double precision,
    OUT o_taken boolean, OUT o_owner text, OUT o_epoch bigint, OUT o_left double precision,
    OUT o_wanted text
) LANGUAGE plpgsql AS $body$
DECLARE
    v_lease leases%ROWTYPE;
    v_now timestamptz;
BEGIN
    -- A row to lock, for a lease never taken: made and taken in this transaction.
    INSERT INTO leases (context, owner, epoch, expires_at)
        VALUES (p_name, NULL, 0, clock_timestamp()) ON CONFLICT DO NOTHING;
    SELECT * INTO v_lease FROM leases WHERE context = p_name FOR UPDATE;
    v_now := clock_timestamp();  -- after any wait for the lock
    IF v_lease.owner IS NOT NULL AND v_lease.expires_at > v_now
            AND v_lease.owner <> p_owner THEN
        -- Refused; the first asker is noted in the same transaction, so that the holder
        -- hands over.
        IF v_lease.wanted_by IS NULL THEN
            UPDATE leases SET wanted_by = p_owner WHERE context = p_name;
        END IF;
        o_taken := false;
        o_owner := v_lease.owner;
        o_epoch := v_lease.epoch;
        o_left := extract(epoch FROM v_lease.expires_at - v_now);
        RETURN;
    END IF;
    IF v_lease.owner IS NOT NULL AND v_lease.expires_at > v_now THEN
        o_epoch := v_lease.epoch;  -- the holder again: extended, same epoch
        o_wanted := v_lease.wanted_by;
    ELSE
        o_epoch := v_lease.epoch + 1;  -- free or ended: the next epoch
    END IF;
    UPDATE leases SET owner = p_owner, epoch = o_epoch, wanted_by = o_wanted,
        expires_at = v_now + make_interval(secs => p_ttl)
        WHERE context = p_name;
    o_taken := true;
    o_owner := p_owner;
    o_left := p_ttl;
END
$body$
"""

_RENEW_LEASES = """
CREATE FUNCTION renew_leases(
    p_owner text, p_names text[], p_epochs bigint[], p_ttl double precision
) RETURNS TABLE (
    o_name text, o_owner text, o_epoch bigint, o_left double precision, o_wanted text
) LANGUAGE plpgsql AS $body$
DECLARE
    v_now timestamptz;
BEGIN
    -- Locked in name order, as write_heads takes its locks: two renewals, or a renewal and
    -- a batch of writes, never wait on each other in a cycle.
    PERFORM 1 FROM leases WHERE context = ANY (p_names) ORDER BY context FOR UPDATE;
    v_now := clock_timestamp();
    UPDATE leases AS l SET expires_at = v_now + make_interval(secs => p_ttl)
        FROM unnest(p_names, p_epochs) AS r (name, epoch)
        WHERE l.context = r.name AND l.epoch = r.epoch AND l.owner = p_owner
            AND l.expires_at > v_now;
    RETURN QUERY
        SELECT r.name, l.owner, l.epoch, extract(epoch FROM l.expires_at - v_now)::double precision,
            l.wanted_by
        FROM unnest(p_names) AS r (name) LEFT JOIN leases AS l ON l.context = r.name;
END
$body$
"""

STATEMENTS: tuple[str, ...] = (
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
    _LEASES,
    _WRITE_HEAD,
    _WRITE_HEADS,
    _ACQUIRE_LEASE,
    _RENEW_LEASES,
)
"""The DDL of a new schema at `SCHEMA_VERSION`, run in order in one transaction (the stamp
row is inserted after them)."""

MIGRATIONS: Mapping[int, tuple[str, ...]] = {
    # 1 -> 2: leases, and the write functions that check them (their arguments and results
    # changed, so they are replaced: a process of layout 1 still running fails its writes,
    # and one starting refuses the schema).
    1: (
        _LEASES,
        "DROP FUNCTION write_heads(text[], bigint[], bigint[], bytea[], boolean[], integer, text)",
        "DROP FUNCTION write_head(text, bigint, bigint, bytea, boolean, integer, text)",
        _WRITE_HEAD,
        _WRITE_HEADS,
        _ACQUIRE_LEASE,
        _RENEW_LEASES,
    ),
}
"""Per schema version N, the statements that take a schema from N to N + 1. Opening a schema
older than `SCHEMA_VERSION` runs them in one transaction and stamps the new version, as
`SqliteStore` does with `PRAGMA user_version`."""
