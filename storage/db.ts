/**
 * The metadata database: one SQLite file under the root, opened in WAL mode, with numbered migrations that each
 * folder declares for its own tables and that run at start inside one transaction per step.
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { FailedPrecondition } from "../lib/errors.ts";

/** One schema step. `version` numbers are per `component` and must increase by one from 1. */
export interface Migration {
  version: number;
  description: string;
  sql: string;
}

/** Migrations grouped by the folder that owns the tables. */
export type MigrationSet = Record<string, readonly Migration[]>;

/** The daemon's own bookkeeping tables. */
export const DAEMON_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: "daemon key/value facts (boot id, last start)",
    sql: "CREATE TABLE daemon_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
  },
];

/** Opens (creating if needed) the database at `path` and brings every component's schema up to date. */
export function openDatabase(path: string, migrations: MigrationSet): DatabaseSync {
  const db = new DatabaseSync(path);
  try {
    // WAL lets readers (ListContainers) proceed during writes; NORMAL sync is durable across process crashes,
    // which is the failure davit must survive, at far lower commit latency than FULL.
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA synchronous = NORMAL");
    db.exec("PRAGMA foreign_keys = ON");
    db.exec("PRAGMA busy_timeout = 5000");
    migrate(db, migrations);
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

/** Applies pending migrations; refuses a database written by a newer davit. */
export function migrate(db: DatabaseSync, migrations: MigrationSet): string[] {
  db.exec(
    "CREATE TABLE IF NOT EXISTS schema_migrations (component TEXT NOT NULL, version INTEGER NOT NULL, " +
      "description TEXT NOT NULL, applied_at TEXT NOT NULL, PRIMARY KEY (component, version))",
  );
  const applied: string[] = [];
  const current = db.prepare("SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations WHERE component = ?");
  const record = db.prepare(
    "INSERT INTO schema_migrations (component, version, description, applied_at) VALUES (?, ?, ?, ?)",
  );
  for (const [component, steps] of Object.entries(migrations)) {
    const have = Number((current.get(component) as { v: number }).v);
    const latest = steps.length;
    steps.forEach((m, i) => {
      if (m.version !== i + 1) throw new Error(`migration list for ${component} is not numbered 1..n at ${m.version}`);
    });
    if (have > latest) {
      throw new FailedPrecondition(
        `database schema for "${component}" is at version ${have}, newer than this davit knows (${latest}); ` +
          "refusing to run an older davit on it",
      );
    }
    for (const m of steps.slice(have)) {
      db.exec("BEGIN IMMEDIATE");
      try {
        db.exec(m.sql);
        record.run(component, m.version, m.description, new Date().toISOString());
        db.exec("COMMIT");
      } catch (err) {
        db.exec("ROLLBACK");
        throw new Error(`migration ${component} #${m.version} (${m.description}) failed: ${err}`, { cause: err });
      }
      applied.push(`${component}#${m.version}`);
    }
  }
  return applied;
}
