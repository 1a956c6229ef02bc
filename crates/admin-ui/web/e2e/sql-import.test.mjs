// The SQL console and the collections export/import pages, against a real server.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { api, openBrowser, signIn, startServer, superuserToken } from "./harness.mjs";

let server;
let token;
let browser;
let page;
/** The file the export test downloaded. */
let exportedFile;

// The harness's data dirs sit directly in the temp folder, so the server's default
// `pb_migrations`/`pb_hooks` (beside the data dir) would be the temp folder's, shared by every
// test run: schema changes made here would be written there as migrations and replayed by
// other servers. These point them at a folder of this run's own (the superuser command
// inherits them too).
const side = mkdtempSync(join(tmpdir(), "plinth-sql-side-"));
process.env.PLINTH_MIGRATIONS_DIR = join(side, "pb_migrations");
process.env.PLINTH_HOOKS_DIR = join(side, "pb_hooks");
process.env.PLINTH_AUTOMIGRATE = "false";

/** Waits until `locator`'s text matches `pattern`; returns the text. */
async function waitText(locator, pattern, ms = 8000) {
  const until = Date.now() + ms;
  let text = "";
  while (Date.now() < until) {
    text = (await locator.count()) ? await locator.first().innerText() : "";
    if (pattern.test(text)) return text;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`text never matched ${pattern}; last: ${JSON.stringify(text.slice(0, 500))}`);
}

before(async () => {
  server = await startServer();
  token = await superuserToken(server);
  await api(server, "/api/collections", {
    method: "POST",
    token,
    body: {
      name: "posts",
      type: "base",
      listRule: "",
      fields: [
        { name: "title", type: "text", max: 200 },
        { name: "body", type: "text" },
      ],
    },
  });
  for (const [title, body] of [
    ["first post", "short"],
    ["second post", "lorem ipsum ".repeat(40)],
  ]) {
    await api(server, "/api/collections/posts/records", { method: "POST", token, body: { title, body } });
  }
  browser = await openBrowser();
  page = browser.page;
  await signIn(page, server);
});

after(async () => {
  await browser?.close();
  await server?.stop();
  rmSync(side, { recursive: true, force: true });
});

test("SQL console: a SELECT shows its rows, a bad statement the server's error, a write asks first", async () => {
  await page.goto(server.url + "/_/#/sql");
  const editor = page.getByLabel("SQL query");
  await editor.fill("select title, body from posts order by title");
  await editor.press("Control+Enter");
  const table = page.getByTestId("sql-table");
  await waitText(table, /second post/);
  const rows = table.locator("tbody tr");
  assert.equal(await rows.count(), 2);
  assert.match(await rows.nth(0).innerText(), /first post\s+short/);
  assert.match(await page.getByTestId("sql-summary").innerText(), /2 rows/);

  // The long value is cut, and opens whole.
  await rows.nth(1).getByRole("button", { name: /show all/ }).click();
  const cell = page.getByTestId("sql-cell-dialog");
  assert.equal((await cell.locator("pre").innerText()).trim(), "lorem ipsum ".repeat(40).trim());
  await cell.getByRole("button", { name: "Close" }).last().click();

  // A bad statement: the server's message, as it wrote it.
  await editor.fill("selec 1");
  await page.getByTestId("sql-run").click();
  const error = await waitText(page.getByTestId("sql-error"), /syntax error/);
  assert.match(error, /Failed to execute query\. Raw error:\s+SQL logic error: near "selec": syntax error/);

  // A write needs a confirmation; cancelling runs nothing, confirming runs it.
  await editor.fill("update posts set title = 'edited' where title = 'first post'");
  await page.getByTestId("sql-write-badge").waitFor();
  await page.getByTestId("sql-run").click();
  await page.getByTestId("confirm").getByRole("button", { name: "Cancel" }).click();
  let list = await api(server, "/api/collections/posts/records?sort=title", { token });
  assert.deepEqual(list.items.map((r) => r.title), ["first post", "second post"]);
  await page.getByTestId("sql-run").click();
  await page.getByTestId("confirm-ok").click();
  await waitText(page.getByTestId("sql-summary"), /1 row affected/);
  list = await api(server, "/api/collections/posts/records?sort=title", { token });
  assert.deepEqual(list.items.map((r) => r.title), ["edited", "second post"]);

  // The sidebar inserts names at the cursor; the history gives a query back.
  await editor.fill("select count(*) from ");
  await editor.press("End");
  await page.locator("[data-table=posts]").click();
  assert.equal(await editor.inputValue(), "select count(*) from posts");
  await page.getByRole("tab", { name: "History" }).click();
  const history = page.getByTestId("sql-history");
  await history.getByText("selec 1").waitFor();
  await history.getByText("select title, body from posts order by title").click();
  assert.equal(await editor.inputValue(), "select title, body from posts order by title");
});

test("export: the downloaded pb_schema.json holds the chosen collections", async () => {
  await page.goto(server.url + "/_/#/settings/export");
  const pick = page.getByTestId("export-list");
  await pick.getByLabel("posts").waitFor();
  assert.equal(await page.getByLabel("posts").isChecked(), true);
  assert.equal(await page.getByLabel("_superusers").isChecked(), false, "system collections start unchecked");
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("button", { name: "Download pb_schema.json" }).click(),
  ]);
  assert.equal(download.suggestedFilename(), "pb_schema.json");
  exportedFile = join(side, "pb_schema.json");
  await download.saveAs(exportedFile);
  const exported = JSON.parse(await readFile(exportedFile, "utf8"));
  assert.deepEqual(exported.map((c) => c.name).sort(), ["posts", "users"]);
  const posts = exported.find((c) => c.name === "posts");
  assert.deepEqual(
    posts.fields.map((f) => f.name),
    ["id", "title", "body"],
  );
  assert.equal(posts.created, undefined, "timestamps are left out, as PocketBase's export does");
});

test("import: the review shows the new collection and the removed field as data loss; applying changes the schema", async () => {
  const posts = await api(server, "/api/collections/posts", { token });
  const users = await api(server, "/api/collections/users", { token });
  const edited = [
    users,
    { ...posts, fields: posts.fields.filter((f) => f.name !== "body") },
    { name: "tags", type: "base", listRule: "", fields: [{ name: "label", type: "text", required: true }] },
  ];
  await page.goto(server.url + "/_/#/settings/import");

  // The export, loaded from its file, changes nothing.
  await page.getByTestId("import-file").setInputFiles(exportedFile);
  await waitText(page.getByTestId("import-review"), /2 unchanged[\s\S]*Nothing to change/);
  assert.equal(await page.getByTestId("import-apply").isDisabled(), true);

  await page.getByLabel("Collections JSON").fill(JSON.stringify(edited, null, 2));
  // By default a field left out is kept (PocketBase's merge), and the review says so.
  await waitText(page.getByTestId("import-kept"), /body/);
  assert.match(await page.getByTestId("import-diff-posts").innerText(), /Unchanged/);
  // With deleteMissing (PocketBase's switch for both), the left-out field goes.
  await page.getByLabel("Delete missing collections and fields").check();

  const tags = page.getByTestId("import-diff-tags");
  await waitText(tags, /New/);
  assert.match(await tags.innerText(), /label/);
  const postsDiff = page.getByTestId("import-diff-posts");
  await waitText(postsDiff, /Changed/);
  const body = postsDiff.locator("[data-field=body]");
  assert.match(await body.innerText(), /removed[\s\S]*data loss/);
  // The record count arrives after the review is drawn.
  await waitText(postsDiff, /data loss · 2 records/);
  await page.getByTestId("import-data-loss").waitFor();
  // Nothing is applied by the review itself.
  assert.equal((await api(server, "/api/collections/posts", { token })).fields.length, 3);

  await page.getByTestId("import-apply").click();
  await page.getByTestId("confirm-ok").click();
  await waitText(page.getByTestId("import-done"), /imported \(1 new, 1 changed\)/);

  const after = await api(server, "/api/collections/posts", { token });
  assert.deepEqual(
    after.fields.map((f) => f.name),
    ["id", "title"],
  );
  const created = await api(server, "/api/collections/tags", { token });
  assert.deepEqual(
    created.fields.map((f) => f.name).sort(),
    ["id", "label"],
  );
  assert.equal(created.listRule, "");
  const records = await api(server, "/api/collections/posts/records", { token });
  assert.equal(records.totalItems, 2, "the records stay; only the field's values are gone");

  // A server error is shown in its words, and nothing changes.
  await page.getByLabel("Delete missing collections and fields").uncheck();
  await page.getByLabel("Collections JSON").fill(JSON.stringify([{ name: "tags", listRule: "nosuchfield = 1" }]));
  await waitText(page.getByTestId("import-diff-tags"), /Changed/);
  await page.getByTestId("import-apply").click();
  const error = await waitText(page.getByTestId("import-error"), /nosuchfield/);
  assert.match(error, /Failed to import collections\.[\s\S]*Invalid rule/);
  assert.equal((await api(server, "/api/collections/tags", { token })).listRule, "");

  // Console errors: only the two 400 answers the test provoked (bad SQL, bad rule).
  const unexpected = browser.errors.filter((e) => !/status of 400 \(Bad Request\)/.test(e));
  assert.deepEqual(unexpected, []);
  assert.equal(browser.errors.length, 2, browser.errors.join("\n"));
});
