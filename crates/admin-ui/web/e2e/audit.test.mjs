// Findings of the side-by-side audit against PocketBase's dashboard: where "Collections" lands,
// focus after a dialog, and what hidden collection controls hide.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { api, openBrowser, signIn, startServer, superuserToken } from "./harness.mjs";

let server, browser, token;

before(async () => {
  server = await startServer();
  token = await superuserToken(server);
  await api(server, "/api/collections", {
    method: "POST",
    token,
    body: { name: "books", type: "base", fields: [{ name: "title", type: "text" }] },
  });
  await api(server, "/api/collections/books/records", { method: "POST", token, body: { title: "Dune" } });
  browser = await openBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test("Collections opens a collection's records at once: the first one, then the last one opened", async () => {
  const { page, errors } = browser;
  await signIn(page, server);
  // Signed in, the first listed non-system collection is open (no "select a collection" stop).
  const first = await page.locator(".sidebar [data-collection]").first().getAttribute("data-collection");
  await page.waitForURL(new RegExp(`#/collections/${first}$`));
  await page.getByTestId("collection-title").filter({ hasText: first }).waitFor();

  const other = first === "books" ? "users" : "books";
  await page.locator(`[data-collection="${other}"]`).click();
  await page.getByTestId("collection-title").filter({ hasText: other }).waitFor();
  await page.getByRole("link", { name: /Logs/ }).click();
  await page.getByRole("heading", { name: "Logs" }).waitFor();
  // Back through the main navigation: the collection last opened, not the first.
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: /Collections/ }).click();
  await page.waitForURL(new RegExp(`#/collections/${other}$`));
  await page.getByTestId("collection-title").filter({ hasText: other }).waitFor();
  // A typed address naming a page is not redirected.
  await page.goto(server.url + "/_/#/settings/crons");
  await page.getByRole("heading", { name: "Crons" }).waitFor();
  assert.match(page.url(), /#\/settings\/crons$/);
  assert.deepEqual(errors, []);
});

test("Escape closes a dialog and gives the focus back to the button that opened it", async () => {
  const { page, errors } = browser;
  await page.goto(server.url + "/_/#/collections/books");
  await page.locator("tr.record-row").first().waitFor();
  const exportButton = page.getByRole("button", { name: /Export/ });
  await exportButton.focus();
  await page.keyboard.press("Enter");
  await page.getByTestId("export-dialog").waitFor();
  await page.keyboard.press("Escape");
  await page.getByTestId("export-dialog").waitFor({ state: "detached" });
  assert.equal(await exportButton.evaluate((el) => el === document.activeElement), true);

  // A record opened from the keyboard: Escape leaves the focus on its row.
  const row = page.locator("tr.record-row").first();
  await row.focus();
  await page.keyboard.press("Enter");
  await page.getByRole("dialog", { name: /books record/ }).waitFor();
  await page.keyboard.press("Escape");
  await page.getByRole("dialog", { name: /books record/ }).waitFor({ state: "detached" });
  assert.equal(await row.evaluate((el) => el === document.activeElement), true);
  assert.deepEqual(errors, []);
});

test("hidden collection controls also hide the collections import", async () => {
  const { page, errors } = browser;
  await api(server, "/api/settings", { method: "PATCH", token, body: { meta: { hideControls: true } } });
  try {
    await page.goto(server.url + "/_/#/settings/export");
    await page.reload();
    const nav = page.getByRole("navigation", { name: "Settings" });
    await nav.getByRole("link", { name: "Export collections" }).waitFor();
    assert.equal(await nav.getByRole("link", { name: "Import collections" }).count(), 0);
    await page.goto(server.url + "/_/#/settings/import");
    await page.getByRole("note").filter({ hasText: /Read-only/ }).waitFor();
    assert.equal(await page.getByRole("button", { name: /Review|Import/ }).count(), 0);
    assert.equal(await page.getByTestId("new-collection").count(), 0);
  } finally {
    await api(server, "/api/settings", { method: "PATCH", token, body: { meta: { hideControls: false } } });
  }
  await page.reload();
  await page.getByRole("navigation", { name: "Settings" }).getByRole("link", { name: "Import collections" }).waitFor();
  assert.deepEqual(errors, []);
});

test("Enter in a new collection's name creates it; in a field's name it saves the rename", async () => {
  const { page, errors } = browser;
  await page.goto(server.url + "/_/#/collections/+new?type=base");
  const name = page.locator("#collection-name");
  await name.fill("notes");
  await name.press("Enter");
  await page.waitForURL(/#\/collections\/notes$/);
  const made = await api(server, "/api/collections/notes", { token });
  assert.equal(made.type, "base");

  await page.goto(server.url + "/_/#/collections/books/edit");
  const title = page.locator("input.frow-name:not([disabled])").first();
  await title.waitFor();
  await title.fill("headline");
  await title.press("Enter");
  // The save may first show its review of the change: confirm it; then the server has it.
  let saved = false;
  for (let i = 0; i < 50 && !saved; i++) {
    const ok = page.getByTestId("confirm-ok");
    if (await ok.isVisible()) await ok.click();
    const books = await api(server, "/api/collections/books", { token });
    saved = books.fields.some((f) => f.name === "headline");
    if (!saved) await page.waitForTimeout(100);
  }
  assert.ok(saved, "the rename was saved");
  // Saved: nothing is left to save.
  await page.getByTestId("save-collection").and(page.locator("[disabled]")).waitFor();
  assert.deepEqual(errors, []);
});

test("the collections overview shows every collection's fields, relations and API rules", async () => {
  const { page, errors } = browser;
  const books = await api(server, "/api/collections/books", { token });
  await api(server, "/api/collections", {
    method: "POST",
    token,
    body: {
      name: "loans",
      type: "base",
      listRule: "",
      viewRule: "@request.auth.id != ''",
      fields: [{ name: "book", type: "relation", collectionId: books.id, maxSelect: 3 }],
    },
  });
  await page.goto(server.url + "/_/#/collections/books");
  await page.reload();
  const open = page.getByRole("button", { name: "Collections overview" });
  await open.click();
  const dialog = page.getByTestId("collections-overview");
  const loans = dialog.getByRole("region", { name: "loans" });
  await loans.getByText("→ books").waitFor();
  await loans.getByText("multiple").waitFor();
  // System collections only on request.
  assert.equal(await dialog.getByRole("region", { name: "_superusers" }).count(), 0);
  await dialog.getByRole("checkbox", { name: "System collections" }).check();
  await dialog.getByRole("region", { name: "_superusers" }).waitFor();

  await dialog.getByRole("tab", { name: "API rules" }).click();
  const row = (name) => dialog.getByRole("row").filter({ has: page.getByRole("rowheader", { name }) });
  assert.equal(await row("loans").getByRole("cell").innerText(), "Public");
  assert.equal(await row("books").getByRole("cell").innerText(), "Superusers only");
  await dialog.getByRole("button", { name: "View rule" }).click();
  assert.equal(await row("loans").getByRole("cell").innerText(), "@request.auth.id != ''");
  // A collection name leads to its rules in the editor.
  await row("loans").getByRole("link", { name: "loans" }).click();
  await page.waitForURL(/#\/collections\/loans\/edit\?tab=rules$/);
  await dialog.waitFor({ state: "detached" });
  assert.deepEqual(errors, []);
});

test("the color scheme button switches to light and dark, and the choice is kept", async () => {
  const { page, errors } = browser;
  await page.goto(server.url + "/_/#/collections/books");
  await page.reload();
  const lightness = async () => {
    const rgb = (await page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor)).match(/\d+/g).map(Number);
    return (rgb[0] + rgb[1] + rgb[2]) / 3;
  };
  const button = page.getByTestId("theme-button");
  // The browser here prefers light: auto is light.
  assert.match(await button.getAttribute("aria-label"), /Color scheme: auto/);
  assert.ok((await lightness()) > 200);
  await button.click(); // light
  await button.click(); // dark
  assert.match(await button.getAttribute("aria-label"), /Color scheme: dark/);
  assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), "dark");
  assert.ok((await lightness()) < 60);
  await page.reload();
  await page.getByTestId("theme-button").waitFor();
  assert.ok((await lightness()) < 60, "dark is kept after a reload");
  await page.getByTestId("theme-button").click(); // back to auto
  assert.equal(await page.evaluate(() => document.documentElement.dataset.theme ?? ""), "");
  assert.ok((await lightness()) > 200);
  assert.deepEqual(errors, []);
});

test("phone width: icon-only links and buttons keep their names", async () => {
  const { page, errors } = browser;
  await page.setViewportSize({ width: 390, height: 844 });
  try {
    await page.goto(server.url + "/_/#/collections/books");
    await page.locator("tr.record-row").first().waitFor();
    const nav = page.getByRole("navigation", { name: "Main" });
    for (const name of ["Collections", "Logs", "SQL", "Settings"]) {
      const link = nav.getByRole("link", { name, exact: true });
      assert.ok(await link.isVisible(), `${name} link`);
      // The words are hidden on a phone; the name is not.
      assert.equal(await link.evaluate((el) => [...el.querySelectorAll("span")].every((s) => s.getAttribute("aria-hidden") === "true" || s.offsetParent !== null)), false);
    }
    for (const name of ["API preview", "Export records", "Edit collection", "Refresh"]) {
      assert.ok(await page.getByRole("main").getByRole(name === "Edit collection" ? "link" : "button", { name, exact: true }).isVisible(), name);
    }
    await page.getByRole("button", { name: "API preview", exact: true }).click();
    await page.getByRole("dialog").waitFor();
    await page.keyboard.press("Escape");
    await page.getByRole("dialog").waitFor({ state: "detached" });
  } finally {
    await page.setViewportSize({ width: 1280, height: 800 });
  }
  assert.deepEqual(errors, []);
});

test("a new record starts with the focus on its first field, and typing fills it", async () => {
  const { page, errors } = browser;
  await page.goto(server.url + "/_/#/collections/books");
  await page.locator("tr.record-row").first().waitFor();
  await page.getByRole("button", { name: /New record/ }).click();
  // The earlier Enter test renamed books' first field to `headline`.
  const title = page.locator("dialog[open] #record-field-headline");
  await title.waitFor();
  await page.waitForFunction(() => document.activeElement?.getAttribute("name") === "headline");
  await page.keyboard.type("Hyperion");
  assert.equal(await title.inputValue(), "Hyperion");
  await page.keyboard.press("Escape");
  assert.deepEqual(errors, []);
});
