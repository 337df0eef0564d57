"""The study database schema and its migrations.

Each entry of ``MIGRATIONS`` moves the schema from version ``i`` to ``i + 1``. A study made by an older
connote is migrated forward when it is opened; a study made by a newer connote is refused with a clear
message rather than silently misread.
"""

from __future__ import annotations

import functools
import sqlite3

V1 = """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Every file found under the images root; identical files share a sha256 and are processed once.
CREATE TABLE images (
    id        INTEGER PRIMARY KEY,
    path      TEXT NOT NULL UNIQUE,          -- relative to the images root, '/'-separated
    sha256    TEXT,                          -- NULL when the file could not be read at all
    status    TEXT NOT NULL CHECK (status IN ('ok', 'skipped')),
    reason    TEXT,                          -- why it was skipped
    width     INTEGER,
    height    INTEGER,
    format    TEXT,
    bytes     INTEGER,
    added     TEXT NOT NULL
);
CREATE INDEX images_sha ON images(sha256);

-- A named set of descriptions: one describer, one prompt, one set of parameters.
CREATE TABLE description_sets (
    id        INTEGER PRIMARY KEY,
    name      TEXT NOT NULL UNIQUE,
    describer TEXT NOT NULL,                 -- spec string, e.g. 'offline', 'openai:gpt-4-turbo'
    model     TEXT,
    prompt    TEXT,
    params    TEXT NOT NULL DEFAULT '{}',    -- JSON
    created   TEXT NOT NULL
);

CREATE TABLE descriptions (
    set_id    INTEGER NOT NULL REFERENCES description_sets(id),
    sha256    TEXT NOT NULL,
    text      TEXT,
    status    TEXT NOT NULL CHECK (status IN ('ok', 'flagged', 'failed')),
    reason    TEXT,                          -- why flagged or failed
    call_id   INTEGER REFERENCES calls(id),
    attempts  INTEGER NOT NULL DEFAULT 1,
    created   TEXT NOT NULL,
    PRIMARY KEY (set_id, sha256)
);

-- One row per external model call (the llm CLI's habit): what went in, what came out, what it cost.
CREATE TABLE calls (
    id            INTEGER PRIMARY KEY,
    stage         TEXT NOT NULL,             -- 'describe', 'embed', ...
    backend       TEXT NOT NULL,             -- spec string
    model         TEXT,
    input_ref     TEXT,                      -- image sha256, text hash, batch id ...
    prompt        TEXT,
    params        TEXT,                      -- JSON
    output        TEXT,
    status        TEXT NOT NULL,             -- 'ok', 'error', 'flagged'
    error         TEXT,
    input_tokens  INTEGER,
    output_tokens INTEGER,
    cost_usd      REAL,
    latency_s     REAL,
    started       TEXT NOT NULL,
    finished      TEXT
);
CREATE INDEX calls_ref ON calls(stage, input_ref);

-- Which vectors exist for which embedder; the vectors themselves are in the vector store (v6).
CREATE TABLE embedders (
    name      TEXT PRIMARY KEY,              -- cache key, e.g. 'text:minilm'
    kind      TEXT NOT NULL CHECK (kind IN ('text', 'image')),
    spec      TEXT NOT NULL,
    dim       INTEGER,
    params    TEXT NOT NULL DEFAULT '{}',
    created   TEXT NOT NULL
);

-- A clustering run: the features it used, every parameter and seed, and package versions.
CREATE TABLE runs (
    id               INTEGER PRIMARY KEY,
    key              TEXT NOT NULL UNIQUE,   -- hash of everything that determines the result
    created          TEXT NOT NULL,
    features         TEXT NOT NULL,          -- 'text' or 'image'
    description_set  TEXT,                   -- name, for text features
    embedder         TEXT NOT NULL,
    reduce           TEXT NOT NULL,          -- spec string
    min_cluster_size INTEGER NOT NULL,
    min_samples      INTEGER,
    seed             INTEGER,
    n_items          INTEGER NOT NULL,
    n_clusters       INTEGER NOT NULL,
    n_outliers       INTEGER NOT NULL,
    params           TEXT NOT NULL,          -- JSON: the full record (reducer, clusterer, environment)
    label            TEXT                    -- e.g. the sweep that made it
);

CREATE TABLE assignments (
    run_id      INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    sha256      TEXT NOT NULL,
    cluster     INTEGER NOT NULL,            -- -1 = outlier
    probability REAL,
    PRIMARY KEY (run_id, sha256)
);

CREATE TABLE keywords (
    run_id   INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    cluster  INTEGER NOT NULL,
    rank     INTEGER NOT NULL,
    term     TEXT NOT NULL,
    score    REAL NOT NULL,
    params   TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (run_id, cluster, rank)
);
"""

#: Version 2: the validation study of rated image pairs (RQ1): samples of pairs, and coders' ratings.
V2 = """
CREATE TABLE pair_samples (
    id       INTEGER PRIMARY KEY,
    name     TEXT NOT NULL UNIQUE,
    created  TEXT NOT NULL,
    seed     INTEGER,
    params   TEXT NOT NULL DEFAULT '{}'      -- JSON: how the pairs were drawn
);

CREATE TABLE pairs (
    sample_id INTEGER NOT NULL REFERENCES pair_samples(id),
    pos       INTEGER NOT NULL,              -- the pair's number as coders see it, from 1
    sha_a     TEXT NOT NULL,
    sha_b     TEXT NOT NULL,
    PRIMARY KEY (sample_id, pos)
);

CREATE TABLE ratings (
    sample_id INTEGER NOT NULL,
    pos       INTEGER NOT NULL,
    coder     TEXT NOT NULL,                 -- '(consensus)' for the agreed rating after discussion
    dimension TEXT NOT NULL CHECK (dimension IN ('denotative', 'connotative')),
    value     INTEGER NOT NULL CHECK (value IN (0, 1, 2)),
    source    TEXT,                          -- the file it was imported from
    updated   TEXT NOT NULL,
    PRIMARY KEY (sample_id, pos, coder, dimension),
    FOREIGN KEY (sample_id, pos) REFERENCES pairs(sample_id, pos)
);
"""

#: Version 3: the interpretability study (RQ2): sets of images from one cluster, and which cluster
#: description each evaluator matched them to.
V3 = """
CREATE TABLE set_samples (
    id       INTEGER PRIMARY KEY,
    name     TEXT NOT NULL UNIQUE,
    run_id   INTEGER NOT NULL REFERENCES runs(id),
    created  TEXT NOT NULL,
    seed     INTEGER,
    params   TEXT NOT NULL DEFAULT '{}'      -- JSON: how drawn, and the descriptions shown (code -> cluster)
);

CREATE TABLE image_sets (
    sample_id INTEGER NOT NULL REFERENCES set_samples(id),
    pos       INTEGER NOT NULL,              -- the set's number as evaluators see it, from 1
    cluster   INTEGER NOT NULL,              -- the cluster it was drawn from (never shown)
    shas      TEXT NOT NULL,                 -- JSON list of the images' sha256
    PRIMARY KEY (sample_id, pos)
);

CREATE TABLE set_answers (
    sample_id INTEGER NOT NULL,
    pos       INTEGER NOT NULL,
    evaluator TEXT NOT NULL,
    code      TEXT NOT NULL,                 -- the description chosen, as shown (A, B, ...)
    source    TEXT,
    updated   TEXT NOT NULL,
    PRIMARY KEY (sample_id, pos, evaluator),
    FOREIGN KEY (sample_id, pos) REFERENCES image_sets(sample_id, pos)
);
"""

#: Version 4: what analysts do after the algorithm, each kept apart from the result it started from:
#: derived runs (clusters merged, outliers assigned) with their parent, cluster labels (by an LLM or from
#: the keywords), and the user's own columns per image.
V4 = """
CREATE TABLE derived_runs (
    run_id    INTEGER PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    parent_id INTEGER NOT NULL REFERENCES runs(id),
    kind      TEXT NOT NULL,                 -- 'merge' or 'assign-outliers'
    params    TEXT NOT NULL,                 -- JSON: the merges {from: into}; method, threshold
    created   TEXT NOT NULL
);

-- Outliers of the parent that an assign-outliers run gave a cluster, and how close they were.
CREATE TABLE assigned_outliers (
    run_id    INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    sha256    TEXT NOT NULL,
    cluster   INTEGER NOT NULL,
    score     REAL NOT NULL,                 -- similarity, membership or vote share (by method)
    PRIMARY KEY (run_id, sha256)
);

CREATE TABLE labels (
    run_id    INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    cluster   INTEGER NOT NULL,
    labeller  TEXT NOT NULL,                 -- 'keywords', or the model spec (+ prompt hash)
    label     TEXT NOT NULL,
    summary   TEXT,
    model     TEXT,
    prompt    TEXT,
    call_id   INTEGER REFERENCES calls(id),
    status    TEXT NOT NULL DEFAULT 'ok',    -- 'ok' or 'flagged' (the answer did not fit the form)
    created   TEXT NOT NULL,
    PRIMARY KEY (run_id, cluster, labeller)
);

CREATE TABLE metadata_columns (
    name      TEXT PRIMARY KEY,
    type      TEXT NOT NULL,                 -- 'number', 'date' or 'text' (inferred)
    source    TEXT,                          -- the file it last came from
    updated   TEXT NOT NULL
);

CREATE TABLE metadata (
    path      TEXT NOT NULL,                 -- the image, relative to the images root
    name      TEXT NOT NULL REFERENCES metadata_columns(name),
    value     TEXT,
    PRIMARY KEY (path, name)
);
"""

#: Version 5: claims on describe work, so that two processes on one study share it and never pay twice
#: (see connote.study.claims).
V5 = """
CREATE TABLE claims (
    set_id   INTEGER NOT NULL,
    sha256   TEXT NOT NULL,
    owner    TEXT NOT NULL,                  -- host:pid:random, one per describe run
    pid      INTEGER NOT NULL,
    host     TEXT NOT NULL,
    expires  REAL NOT NULL,                  -- unix time; refreshed while the process works
    PRIMARY KEY (set_id, sha256)
);
"""

#: Version 6: the vector store (connote.study.vectors): the vectors of one embedder are rows of a few
#: memory-mapped files; this index maps a content key to its file, row and CRC-32. The .npy files of
#: older studies are moved in when the study is opened.
V6 = """
CREATE TABLE vector_files (
    id       INTEGER PRIMARY KEY,
    embedder TEXT NOT NULL,
    name     TEXT NOT NULL UNIQUE,           -- relative to STUDY/vectors/, e.g. 'text_minilm-1a2b3c4d/seg-0000.f32'
    dim      INTEGER NOT NULL,
    rows     INTEGER NOT NULL DEFAULT 0,     -- rows indexed so far (appends go after them)
    created  TEXT NOT NULL
);

CREATE TABLE vectors (
    embedder TEXT NOT NULL,
    key      TEXT NOT NULL,                  -- sha256 of the text or of the image file
    file_id  INTEGER NOT NULL REFERENCES vector_files(id),
    row      INTEGER NOT NULL,
    crc32    INTEGER NOT NULL,               -- of the row's float32 bytes, checked when read
    PRIMARY KEY (embedder, key)
) WITHOUT ROWID;
"""

#: Version 7: claims on any paid work, not only describing: a claim names its scope ('describe:SET_ID',
#: 'embed:EMBEDDER', 'label:RUN:LABELLER', 'rate:SAMPLE:CODER', ...) and the key of the item within it, so
#: every paid call (describe, embed through an API, label, LLM coding) shares work between processes the
#: same way (see connote.study.claims). The describe claims of version 5 are kept under 'describe:SET_ID'.
V7 = """
CREATE TABLE work_claims (
    scope    TEXT NOT NULL,                  -- what kind of work, and in what: 'describe:3', 'embed:NAME', ...
    key      TEXT NOT NULL,                  -- the item within the scope (image sha256, text key, pair, ...)
    owner    TEXT NOT NULL,                  -- host:pid:random, one per process and scope
    pid      INTEGER NOT NULL,
    host     TEXT NOT NULL,
    expires  REAL NOT NULL,                  -- unix time; refreshed while the process works
    PRIMARY KEY (scope, key)
);
INSERT INTO work_claims(scope, key, owner, pid, host, expires)
    SELECT 'describe:' || set_id, sha256, owner, pid, host, expires FROM claims;
DROP TABLE claims;
ALTER TABLE work_claims RENAME TO claims;
"""

MIGRATIONS: list[str] = [V1, V2, V3, V4, V5, V6, V7]
SCHEMA_VERSION = len(MIGRATIONS)


class DamagedSchema(Exception):
    """The database opens but is not a study's: a table missing, a schema version that is no number."""


def current_version(con: sqlite3.Connection) -> int:
    has_meta = con.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
    if not has_meta:
        return 0
    row = con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    if row is None:
        return 0
    text = str(row[0]).strip()
    if not (text.isascii() and text.isdigit()):
        raise DamagedSchema(f"meta.schema_version is {row[0]!r}, not a whole number")
    return int(text)


@functools.lru_cache(maxsize=1)
def expected_tables() -> frozenset[str]:
    """The tables a study of the current schema has (all migrations applied to an empty database)."""
    con = sqlite3.connect(":memory:")
    try:
        migrate(con)
        return frozenset(r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'"))
    finally:
        con.close()


def check_tables(con: sqlite3.Connection) -> None:
    """Raise :class:`DamagedSchema` naming the tables a study must have and this one lacks."""
    have = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    missing = sorted(expected_tables() - have)
    if missing:
        raise DamagedSchema(f"table(s) {', '.join(missing)} missing")


def migrate(con: sqlite3.Connection) -> int:
    """Bring the database to ``SCHEMA_VERSION``; returns the version it started from."""
    start = current_version(con)
    if start > SCHEMA_VERSION:
        raise RuntimeError(
            f"this study was written by a newer connote (schema {start}, this one knows {SCHEMA_VERSION}); "
            "upgrade connote to open it"
        )
    for version in range(start, SCHEMA_VERSION):
        # One transaction per step: a crash mid-migration leaves the previous version intact.
        con.executescript(
            "BEGIN;\n" + MIGRATIONS[version] + "\nINSERT OR REPLACE INTO meta(key, value) "
            f"VALUES ('schema_version', '{version + 1}');\nCOMMIT;"
        )
    return start
