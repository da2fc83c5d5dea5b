// Tests for the metadata database: WAL mode, numbered migrations, refusal of a newer schema.
import { assertEquals, assertThrows } from "../tests/assert.ts";
import { migrate, openDatabase } from "./db.ts";

Deno.test("database migrations", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "davit-db-" });
  const path = `${dir}/davit.db`;
  try {
    await t.step("applies steps once, in order, and opens in WAL mode", () => {
      const db = openDatabase(path, { a: [{ version: 1, description: "t", sql: "CREATE TABLE t (x)" }] });
      assertEquals((db.prepare("PRAGMA journal_mode").get() as { journal_mode: string }).journal_mode, "wal");
      assertEquals(migrate(db, { a: [{ version: 1, description: "t", sql: "CREATE TABLE t (x)" }] }), []);
      const more = migrate(db, {
        a: [
          { version: 1, description: "t", sql: "CREATE TABLE t (x)" },
          { version: 2, description: "u", sql: "CREATE TABLE u (y)" },
        ],
        b: [{ version: 1, description: "v", sql: "CREATE TABLE v (z)" }],
      });
      assertEquals(more, ["a#2", "b#1"]);
      db.close();
    });
    await t.step("refuses a schema newer than it knows", () => {
      assertThrows(() => openDatabase(path, { a: [{ version: 1, description: "t", sql: "" }] }), Error, "newer");
    });
    await t.step("a failing step rolls back and names itself", () => {
      assertThrows(
        () => openDatabase(`${dir}/other.db`, { c: [{ version: 1, description: "bad", sql: "CREATE TABLE (" }] }),
        Error,
        "migration c #1 (bad) failed",
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
