"""The enrolment gallery: names and face embeddings in one SQLite file (WAL mode, mode 0600, schema
versioned), tied to the embedder that made them. Device-side: standard library and numpy.

Enrolment is one transaction: a process killed half-way leaves the file readable with every
earlier identity intact and no trace of the half-enrolled one.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecnn.core.errors import EdgecnnError, InputError
from edgecnn.core.paths import default_gallery_path

SCHEMA_VERSION = 1
RECOVERY = "restore it from a backup or a 'gallery export' file (edgecnn gallery import FILE --gallery NEW.db), or enrol again into a new --gallery"
MAX_NAME = 64  # characters: a label on a video frame, not a paragraph
SAME_EMBEDDING = 1e-5  # an export rounds to 6 decimals: within this, an imported vector is one already held


def check_name(name) -> str:
    """A person's name as the gallery stores it: stripped, printable (no control or formatting
    characters: a name is data, never a terminal command), at most :data:`MAX_NAME` characters."""
    text = str(name).strip()
    if not text:
        raise InputError("a name is needed to enrol")
    if len(text) > MAX_NAME:
        raise InputError(f"the name {shown(text[:20])}… is {len(text)} characters long; at most {MAX_NAME}")
    if not text.isprintable():
        raise InputError(f"the name {shown(text)} holds control or formatting characters; use plain text")
    return text


def shown(name) -> str:
    """A stored name as it may be printed: non-printable characters escaped (a gallery written by an older
    edgecnn, or by hand, may hold them)."""
    text = str(name)
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def why(exc: sqlite3.Error, folder: Path) -> str:
    """SQLite's reason, said as the user's problem. A full disk that stops the shared-memory index from
    growing reaches us as a bare "disk I/O error"."""
    name = getattr(exc, "sqlite_errorname", "")
    with contextlib.suppress(OSError):
        st = os.statvfs(folder)
        if name.startswith("SQLITE_IOERR") and st.f_bavail * st.f_frsize < 1 << 16:
            name = "SQLITE_FULL"
    if name == "SQLITE_FULL" or "disk is full" in str(exc):
        return "the disk is full (free some space and run it again)"
    if name.startswith("SQLITE_READONLY") or name == "SQLITE_CANTOPEN" or "readonly" in str(exc):
        return f"the file or its folder is read-only ({exc})"
    return str(exc)


def _rollback(db) -> None:
    if db.in_transaction:
        with contextlib.suppress(sqlite3.Error):  # SQLite may have rolled back on its own (SQLITE_FULL)
            db.execute("ROLLBACK")


@dataclass
class Match:
    name: str | None
    distance: float
    nearest: str | None
    threshold: float

    def as_dict(self):
        return {"name": self.name, "distance": round(self.distance, 4), "nearest": self.nearest, "threshold": self.threshold}


class Gallery:
    """The gallery file. ``readonly`` opens it for reading only: no journal-mode change, no chmod,
    nothing written (a read-only file or folder works). A SQLite file that is not a gallery is refused
    untouched."""

    def __init__(self, path=None, create: bool = True, readonly: bool = False):
        self.path = Path(path) if path else default_gallery_path()
        self.readonly = readonly
        created = False
        if not self.path.exists():
            if not create or readonly:
                raise InputError(f"gallery not found: {self.path} (enrol someone first: edgecnn enroll NAME IMAGE)")
            if not self.path.parent.exists():
                if path is not None:
                    raise InputError(f"gallery folder does not exist: {self.path.parent}")
                self.path.parent.mkdir(parents=True, exist_ok=True)
            created = self._create()
        elif self.path.is_dir():
            raise InputError(f"gallery {self.path} is a folder, not a SQLite file")
        try:
            self._open(readonly)
        except BaseException:
            if created:
                self._remove_unborn()
            raise
        if created:
            os.chmod(self.path, 0o600)

    def _create(self) -> bool:
        """Create the empty file; False when another process created it first."""
        try:
            os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            return False
        except OSError as exc:
            raise InputError(f"cannot create the gallery {self.path}: {exc.strerror}") from None
        return True

    def _remove_unborn(self):
        """A gallery this run created but could not set up (a full disk): no empty file and logs left
        behind. Only while nothing was ever committed to it."""
        with contextlib.suppress(AttributeError, sqlite3.Error):
            self.db.close()
        logs = [self.path.with_name(self.path.name + s) for s in ("-wal", "-shm")]
        with contextlib.suppress(OSError):
            if self.path.stat().st_size == 0 and all(not p.exists() or p.stat().st_size == 0 or p.name.endswith("-shm") for p in logs):
                for p in [self.path, *logs]:
                    p.unlink(missing_ok=True)

    def _open(self, readonly: bool):
        try:
            if readonly:
                self.db = self._connect_readonly()
                self._check_schema(allow_new=False)
                self._check_intact()
                return
            self.db = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
            self._retry_locked(lambda: self._check_schema(allow_new=True))  # before anything is written: a foreign file stays untouched
            self._retry_locked(lambda: self.db.execute("PRAGMA journal_mode=WAL"))
            self.db.execute("PRAGMA foreign_keys=ON")
            self._retry_locked(self._migrate)
            self._check_intact()
        except sqlite3.OperationalError as exc:
            raise InputError(f"cannot open the gallery {self.path}: {why(exc, self.path.parent)}") from None
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{self.path} is not an edgecnn gallery, or is damaged ({exc}); {RECOVERY}") from None

    def _check_intact(self):
        """SQLite's quick check on open: a damaged file is one line naming the way out, before any command
        reads half of it (or writes into it)."""
        row = self.db.execute("PRAGMA quick_check(1)").fetchone()
        if not row or row[0] != "ok":
            detail = " ".join(str(row[0]).replace("*** in database main ***", "").split())[:120] if row else "no answer"
            raise InputError(f"gallery {self.path} is damaged ({detail}); {RECOVERY}")

    @staticmethod
    def _retry_locked(step, seconds: float = 30.0):
        """SQLite answers "database is locked" at once, without its busy handler, when several
        processes switch a new file to WAL or create its schema together: wait and try again."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                return step()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def _connect_readonly(self):
        from urllib.parse import quote

        uri = f"file:{quote(str(self.path.resolve()))}?mode=ro"
        try:
            db = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)
            db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
            return db
        except sqlite3.OperationalError:  # a WAL file in a read-only folder: read it as an immutable snapshot
            return sqlite3.connect(uri + "&immutable=1", uri=True, isolation_level=None)

    def _check_schema(self, allow_new: bool):
        self.db.execute("BEGIN")  # one snapshot: another process may be creating the schema right now
        try:
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except BaseException:
            _rollback(self.db)  # the failure itself is the message, not a COMMIT refused after it
            raise
        self.db.execute("COMMIT")
        if version > SCHEMA_VERSION:
            raise InputError(f"gallery {self.path} has schema {version}, newer than this edgecnn ({SCHEMA_VERSION}): upgrade edgecnn")
        if version == 0 and tables:
            raise InputError(f"{self.path} is a SQLite file but not an edgecnn gallery; it was left untouched")
        if version == 0 and not allow_new:
            raise InputError(f"{self.path} is an empty file, not an edgecnn gallery (enrol someone first: edgecnn enroll NAME IMAGE)")

    def _migrate(self):
        """Create the schema once, race-free: several processes enrolling into a new gallery at once
        serialise on the write lock and re-check the version inside it."""
        with self._writing("the gallery's schema"):
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                if tables:
                    raise InputError(f"{self.path} is a SQLite file but not an edgecnn gallery; it was left untouched")
                self.db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                self.db.execute("CREATE TABLE identities (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, created REAL NOT NULL)")
                self.db.execute(
                    "CREATE TABLE embeddings (id INTEGER PRIMARY KEY, identity_id INTEGER NOT NULL REFERENCES identities(id) "
                    "ON DELETE CASCADE, vector BLOB NOT NULL, dim INTEGER NOT NULL, source TEXT, image BLOB, created REAL NOT NULL)"
                )
                self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextlib.contextmanager
    def _writing(self, what: str):
        """One write transaction. A full or read-only disk is one line, and nothing of it is stored."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
            yield
            self.db.execute("COMMIT")
        except BaseException as exc:
            _rollback(self.db)
            if isinstance(exc, sqlite3.OperationalError) and "locked" not in str(exc) and "busy" not in str(exc):
                raise EdgecnnError(
                    f"cannot write to the gallery {self.path}: {why(exc, self.path.parent)}; {what} was not stored, the gallery is as it was"
                ) from None
            raise

    def close(self):
        self.db.close()
        logs = [self.path.with_name(self.path.name + s) for s in ("-wal", "-shm")]
        if self.readonly and any(p.exists() for p in logs) and os.access(self.path.parent, os.W_OK) and os.access(self.path, os.W_OK):
            # a read-only connection cannot remove the logs SQLite made for it; a writable one closed last does
            with contextlib.suppress(sqlite3.Error):
                db = sqlite3.connect(str(self.path), timeout=1)
                db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
                db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):  # closed on every way out: SQLite removes its -wal and -shm with the last connection
        self.close()

    # ---------------------------------------------------------------- embedder identity
    def meta(self, key, default=None):
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def check_embedder(self, identity: str, dim: int):
        """Refuse embeddings from another model than the one the gallery was made with."""
        have = self.meta("embedder")
        if have and have != identity:
            raise InputError(f"gallery {self.path} holds embeddings of {have}, not of {identity}; use the same embedder, or enrol again into a new --gallery")
        have_dim = self.meta("dim")
        if have_dim and int(have_dim) != dim:
            raise InputError(f"gallery {self.path} holds {have_dim}-d embeddings, the embedder gives {dim}-d")

    # ---------------------------------------------------------------- writes
    def enroll(self, name: str, vectors, embedder: str, sources=None, images=None, replace: bool = False) -> int:
        """Add ``vectors`` for ``name`` in one transaction; returns how many were stored."""
        name = check_name(name)
        vectors = [np.asarray(v, np.float32).reshape(-1) for v in vectors]
        if not vectors:
            raise InputError(f"no face to enrol for {name}")
        dim = int(vectors[0].size)
        self.check_embedder(embedder, dim)
        now = time.time()
        with self._writing(f"the enrolment of {shown(name)}"):
            self.db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('embedder', ?)", (embedder,))
            self.db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('dim', ?)", (str(dim),))
            row = self.db.execute("SELECT id FROM identities WHERE name=?", (name,)).fetchone()
            if row and replace:
                self.db.execute("DELETE FROM identities WHERE id=?", (row[0],))
                row = None
            ident = row[0] if row else self.db.execute("INSERT INTO identities(name, created) VALUES (?, ?)", (name, now)).lastrowid
            for i, v in enumerate(vectors):
                img = images[i] if images is not None else None
                src = sources[i] if sources is not None else None
                self.db.execute(
                    "INSERT INTO embeddings(identity_id, vector, dim, source, image, created) VALUES (?, ?, ?, ?, ?, ?)",
                    (ident, v.astype("<f4").tobytes(), dim, src, img, now),
                )
        return len(vectors)

    def remove(self, name: str) -> int:
        with self._writing(f"the removal of {shown(name)}"):
            cur = self.db.execute("DELETE FROM identities WHERE name=?", (name,))
        if cur.rowcount == 0:
            raise InputError(f"no one named {name!r} in {self.path}; enrolled: {', '.join(self.names()) or 'nobody'}")
        return cur.rowcount

    def set_threshold(self, value: float):
        with self._writing("the threshold"):
            self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('threshold', ?)", (repr(float(value)),))

    # ---------------------------------------------------------------- reads
    def names(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT name FROM identities ORDER BY name")]

    def list(self) -> list[dict]:
        rows = self.db.execute(
            "SELECT i.name, COUNT(e.id), MIN(i.created), SUM(e.image IS NOT NULL) FROM identities i "
            "LEFT JOIN embeddings e ON e.identity_id=i.id GROUP BY i.id ORDER BY i.name"
        )
        return [
            {"name": n, "embeddings": c, "enrolled": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)), "images_kept": int(k or 0)} for n, c, t, k in rows
        ]

    def vectors(self) -> tuple[list[str], np.ndarray]:
        rows = self.db.execute("SELECT i.name, e.vector FROM embeddings e JOIN identities i ON i.id=e.identity_id ORDER BY e.id").fetchall()
        if not rows:
            return [], np.zeros((0, int(self.meta("dim", 0) or 0)), np.float32)
        return [r[0] for r in rows], np.stack([np.frombuffer(r[1], "<f4") for r in rows])

    def identify(self, vector, threshold: float) -> Match:
        names, mat = self.vectors()
        if not names:
            raise InputError(f"gallery {self.path} is empty: enrol someone first (edgecnn enroll NAME IMAGE)")
        v = np.asarray(vector, np.float32).reshape(-1)
        if v.size != mat.shape[1]:
            raise InputError(f"the embedding has {v.size} values but the gallery holds {mat.shape[1]}-d embeddings")
        d = np.linalg.norm(mat - v[None], axis=1)
        i = int(d.argmin())
        dist = float(d[i])
        return Match(names[i] if dist <= threshold else None, dist, names[i], threshold)

    def export(self) -> dict:
        names, mat = self.vectors()
        return {
            "schema": SCHEMA_VERSION,
            "embedder": self.meta("embedder"),
            "threshold": self.meta("threshold"),
            "identities": [{"name": n, "embedding": [round(float(x), 6) for x in v]} for n, v in zip(names, mat)],
        }

    def import_export(self, data: dict) -> int:
        """Restore what :meth:`export` wrote (into this gallery, one transaction per identity); the
        embedder must match and the export's schema be one this edgecnn knows. Idempotent: an embedding
        the gallery already holds for that name (within the export's rounding) is not added again.
        Returns the embeddings added."""
        if not isinstance(data, dict) or not isinstance(data.get("identities"), list) or not data.get("embedder"):
            raise InputError("not a gallery export (edgecnn gallery export FILE writes one)")
        if data.get("schema") != SCHEMA_VERSION:
            raise InputError(
                f"the export has schema {shown(data.get('schema'))}, which this edgecnn (schema {SCHEMA_VERSION}) does not know; "
                "export it again with this version"
            )
        by_name: dict = {}
        for item in data["identities"]:
            try:
                vec = np.asarray(item["embedding"], np.float32)
                if not isinstance(item["name"], str):  # a number or a list is not a name a person was enrolled under
                    raise TypeError
                name = check_name(item["name"])
            except (KeyError, TypeError, ValueError) as exc:
                if isinstance(exc, InputError):
                    raise
                raise InputError("a gallery export entry lacks a name or an embedding") from None
            if vec.ndim != 1 or not vec.size or not np.all(np.isfinite(vec)):
                raise InputError(f"the embedding of {name} in the export is not a finite vector")
            by_name.setdefault(name, []).append(vec)
        dims = {v.size for vs in by_name.values() for v in vs}
        if len(dims) > 1:
            raise InputError(f"the export mixes embeddings of {sorted(dims)} dimensions")
        for vs in by_name.values():
            self.check_embedder(data["embedder"], int(vs[0].size))
        held_names, held = self.vectors()
        n = 0
        for name, vs in by_name.items():
            have = [v for k, v in zip(held_names, held) if k == name]
            new = []
            for v in vs:
                if all(np.abs(v - h).max() > SAME_EMBEDDING for h in have + new):
                    new.append(v)
            if new:
                n += self.enroll(name, new, data["embedder"], sources=["gallery import"] * len(new))
        if data.get("threshold") is not None and self.meta("threshold") is None:
            self.set_threshold(float(data["threshold"]))
        return n
