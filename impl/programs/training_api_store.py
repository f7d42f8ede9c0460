"""The training API's state in one SQLite file: API keys and their budgets, experiments, final submissions.

Everything the server knows is here, written before it answers, so that a restart loses nothing. The budget is
never stored as a running total: it is recomputed from the experiments in the same transaction that reserves,

    used = sum(max_runtime_seconds of queued and running experiments) + sum(charged_seconds of finished ones)

and a submission reserves inside ``BEGIN IMMEDIATE`` (SQLite's write lock, held from the read of the budget to the
insert), so that concurrent submissions racing for the last seconds are serialized and the budget is never overspent.
A finished experiment is charged its runtime clipped to [1 s, max_runtime_seconds], a timeout max_runtime_seconds.
"""

from __future__ import annotations

import datetime
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (api_key TEXT PRIMARY KEY, total_budget_seconds REAL NOT NULL);
CREATE TABLE IF NOT EXISTS experiments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    api_key TEXT NOT NULL REFERENCES api_keys(api_key),
    training_config TEXT NOT NULL,            -- canonical JSON (impl/programs/training_api_config.py)
    duplicate_key TEXT NOT NULL,
    max_runtime_seconds REAL NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'failed')),
    queued_at TEXT NOT NULL, started_at TEXT, completed_at TEXT,
    val_losses TEXT NOT NULL DEFAULT '[]',     -- JSON list, one per finished chunk
    used_runtime_seconds REAL,                -- the trainer's own clock, once finished
    charged_seconds REAL,                     -- what the budget is charged, once finished
    failure TEXT,                             -- why a failed experiment failed ('timeout', or the error)
    attempts INTEGER NOT NULL DEFAULT 0       -- launches: more than 1 after a restart resumed it
);
CREATE INDEX IF NOT EXISTS experiments_by_key ON experiments (api_key, duplicate_key);
CREATE TABLE IF NOT EXISTS final_submissions (
    api_key TEXT PRIMARY KEY REFERENCES api_keys(api_key), training_config TEXT NOT NULL,
    predicted_final_loss REAL NOT NULL, submitted_at TEXT NOT NULL);
"""
ACTIVE = ("queued", "running")


class Duplicate(Exception):
    """The key already has this configuration queued, running or completed."""


class OverBudget(Exception):
    """The reservation exceeds the key's remaining budget."""


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


def clip_charge(runtime_seconds: float, max_runtime_seconds: float) -> float:
    return min(max(runtime_seconds, 1.0), max_runtime_seconds)


class Store:
    def __init__(self, path: Path):
        self.path = path
        db = self.connect()
        try:
            db.execute("PRAGMA journal_mode=WAL")  # readers (status polls) never wait for the writer
            db.executescript(SCHEMA)
        finally:
            db.close()

    def connect(self) -> sqlite3.Connection:
        # One connection per call: the endpoints run in a thread pool, the runner in its own thread.
        # isolation_level=None: transactions are the explicit BEGIN IMMEDIATE below. timeout: wait for the lock.
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        return db

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        db = self.connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    def set_key(self, api_key: str, total_budget_seconds: float) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO api_keys VALUES (?, ?) ON CONFLICT (api_key) DO UPDATE SET "
                       "total_budget_seconds = excluded.total_budget_seconds", (api_key, total_budget_seconds))

    def key_count(self) -> int:
        with self.transaction() as db:
            return db.execute("SELECT count(*) FROM api_keys").fetchone()[0]

    def has_key(self, api_key: str) -> bool:
        with self.transaction() as db:
            return db.execute("SELECT 1 FROM api_keys WHERE api_key = ?", (api_key,)).fetchone() is not None

    @staticmethod
    def _budget(db: sqlite3.Connection, api_key: str) -> dict:
        total = db.execute("SELECT total_budget_seconds FROM api_keys WHERE api_key = ?", (api_key,)).fetchone()[0]
        used = db.execute("SELECT coalesce(sum(CASE WHEN status IN ('queued', 'running') THEN max_runtime_seconds "
                          "ELSE charged_seconds END), 0) FROM experiments WHERE api_key = ?", (api_key,)).fetchone()[0]
        return {"used_seconds": used, "remaining_seconds": total - used, "total_budget_seconds": total}

    def budget(self, api_key: str) -> dict:
        with self.transaction() as db:
            return self._budget(db, api_key)

    def submit(self, api_key: str, training_config: str, duplicate_key: str,
               max_runtime_seconds: float) -> tuple[int, dict]:
        """Queue an experiment and reserve its max_runtime_seconds: (id, budget after). A failed experiment may be
        submitted again (with more time, say); a queued, running or completed one is a Duplicate."""
        with self.transaction() as db:
            same = db.execute("SELECT id FROM experiments WHERE api_key = ? AND duplicate_key = ? AND status != "
                              "'failed'", (api_key, duplicate_key)).fetchone()
            if same is not None:
                raise Duplicate(f"this configuration is experiment {same['id']} (every field but "
                                f"max_runtime_seconds is the same); nothing was reserved")
            budget = self._budget(db, api_key)
            if max_runtime_seconds > budget["remaining_seconds"]:
                raise OverBudget(f"max_runtime_seconds={max_runtime_seconds:g} exceeds the remaining budget of "
                                 f"{budget['remaining_seconds']:g} s (used {budget['used_seconds']:g} of "
                                 f"{budget['total_budget_seconds']:g})")
            cursor = db.execute("INSERT INTO experiments (api_key, training_config, duplicate_key, "
                                "max_runtime_seconds, status, queued_at) VALUES (?, ?, ?, ?, 'queued', ?)",
                                (api_key, training_config, duplicate_key, max_runtime_seconds, now()))
            return cursor.lastrowid, self._budget(db, api_key)

    def experiments(self, api_key: str, experiment_id: int | None = None) -> list[dict]:
        query, args = "SELECT * FROM experiments WHERE api_key = ?", [api_key]
        if experiment_id is not None:
            query, args = query + " AND id = ?", [*args, experiment_id]
        with self.transaction() as db:
            return [describe(row) for row in db.execute(query + " ORDER BY id", args)]

    def claim(self, exclude: set[int]) -> sqlite3.Row | None:
        """The next experiment to launch: first one left running by a server that stopped (not among ``exclude``,
        those this runner has in hand), else the oldest queued one, marked running."""
        with self.transaction() as db:
            rows = db.execute("SELECT * FROM experiments WHERE status = 'running' ORDER BY id").fetchall()
            row = next((r for r in rows if r["id"] not in exclude), None)
            if row is None:
                row = db.execute("SELECT * FROM experiments WHERE status = 'queued' ORDER BY id LIMIT 1").fetchone()
            if row is None:
                return None
            db.execute("UPDATE experiments SET status = 'running', started_at = coalesce(started_at, ?), "
                       "attempts = attempts + 1 WHERE id = ?", (now(), row["id"]))
            return db.execute("SELECT * FROM experiments WHERE id = ?", (row["id"],)).fetchone()

    def record_losses(self, experiment_id: int, val_losses: list[float]) -> None:
        with self.transaction() as db:
            db.execute("UPDATE experiments SET val_losses = ? WHERE id = ?", (json.dumps(val_losses), experiment_id))

    def finish(self, experiment_id: int, status: str, val_losses: list[float], runtime_seconds: float,
               failure: str | None = None) -> None:
        """Completed: charged the runtime clipped to [1 s, max]; failed: the same, a timeout the whole max."""
        with self.transaction() as db:
            max_runtime = db.execute("SELECT max_runtime_seconds FROM experiments WHERE id = ?",
                                     (experiment_id,)).fetchone()[0]
            charged = max_runtime if failure == "timeout" else clip_charge(runtime_seconds, max_runtime)
            db.execute("UPDATE experiments SET status = ?, val_losses = ?, used_runtime_seconds = ?, charged_seconds "
                       "= ?, failure = ?, completed_at = ? WHERE id = ?",
                       (status, json.dumps(val_losses), runtime_seconds, charged, failure, now(), experiment_id))

    def set_final_submission(self, api_key: str, training_config: str, predicted_final_loss: float) -> dict:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO final_submissions VALUES (?, ?, ?, ?)",
                       (api_key, training_config, predicted_final_loss, now()))
        return self.final_submission(api_key)

    def final_submission(self, api_key: str) -> dict | None:
        with self.transaction() as db:
            row = db.execute("SELECT * FROM final_submissions WHERE api_key = ?", (api_key,)).fetchone()
        return None if row is None else {"training_config": json.loads(row["training_config"]),
                                         "predicted_final_loss": row["predicted_final_loss"],
                                         "submitted_at": row["submitted_at"]}


def describe(row: sqlite3.Row) -> dict:
    """An experiment as the handout's GET /experiment/{id} shows it."""
    status: dict = {"status_type": row["status"], "queued_at": row["queued_at"]}
    losses = json.loads(row["val_losses"])
    if row["status"] == "running":
        status |= {"started_at": row["started_at"], "val_losses": losses}
    elif row["status"] == "completed":
        status |= {"used_runtime_seconds": row["used_runtime_seconds"], "val_losses": losses,
                   "completed_at": row["completed_at"]}
    elif row["status"] == "failed":
        status |= {"failure": row["failure"], "used_runtime_seconds": row["used_runtime_seconds"],
                   "partial_val_losses": losses, "completed_at": row["completed_at"]}
    return {"experiment_id": row["id"], "training_config": json.loads(row["training_config"]), "status": status,
            "charged_seconds": row["charged_seconds"], "attempts": row["attempts"]}
