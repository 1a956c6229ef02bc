// RuleInput (src/ui/rule-input.tsx), the filter-language input, in the pages that use it:
// the collection editor's rules tab and the records browser's filter bar, against a real
// server (POST /api/collections/meta/check-rule answers the live check).
//
// Selectors this file relies on (the pages belong to other helpers; keep them in step):
// - collection editor at `#/collections/posts/edit`: a tab whose name matches /rules/i; each
//   API rule in an element with data-testid="<ruleKey>" (listRule, viewRule, …) holding one
//   RuleInput; a button whose name matches /^save/i saves the collection.
// - records browser at `#/collections/posts`: the filter bar's RuleInput is labelled
//   "Filter records"; records are rows of a table.
// - RuleInput itself: the textarea has role "combobox" and the caller's aria-label; the live
//   error is role="alert" data-testid="rule-error"; the marked span data-testid="rule-mark";
//   suggestions are role="listbox" (name "Suggestions") of role="option"; the syntax help
//   toggle is the button "Filter syntax help".
// While a page is still its skeleton stub (its heading is the component's name), the tests
// for it are skipped with a message naming the missing page.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { api, openBrowser, signIn, startServer, superuserToken } from "./harness.mjs";

let server;
let token;
let usersId;
// The harness's data dirs sit side by side in the temp dir, so the default pb_migrations and
// pb_hooks "beside the data dir" would be shared with every other test run: use private ones,
// and write no migrations.
const aside = mkdtempSync(join(tmpdir(), "plinth-ui-rules-"));

before(async () => {
  server = await startServer({
    env: {
      PLINTH_AUTOMIGRATE: "false",
      PLINTH_MIGRATIONS_DIR: join(aside, "pb_migrations"),
      PLINTH_HOOKS_DIR: join(aside, "pb_hooks"),
    },
  });
  token = await superuserToken(server);
  const users = await api(server, "/api/collections/users", { token });
  usersId = users.id;
  await api(server, "/api/collections", {
    method: "POST",
    token,
    body: {
      name: "posts",
      type: "base",
      listRule: "",
      viewRule: "",
      fields: [
        { name: "title", type: "text" },
        { name: "author", type: "relation", collectionId: usersId, maxSelect: 1 },
        { name: "tags", type: "select", maxSelect: 3, values: ["news", "tech", "misc"] },
        { name: "created", type: "autodate", onCreate: true },
      ],
    },
  });
  for (const [title, tags] of [
    ["First post", ["news"]],
    ["Second post", ["tech"]],
    ["Third post", ["news", "misc"]],
  ]) {
    await api(server, "/api/collections/posts/records", { method: "POST", token, body: { title, tags } });
  }
});

after(async () => {
  await server?.stop();
  rmSync(aside, { recursive: true, force: true });
});

/** Skips `t` when the page is still the skeleton's stub. */
async function skipIfStub(t, page, stubTitle, missing) {
  await page.locator("main h1").first().waitFor();
  const heading = await page.locator("main h1").first().textContent();
  if (heading?.trim() === stubTitle) {
    t.skip(`needs ${missing}`);
    return true;
  }
  return false;
}

/** The options' identifiers (each option is the identifier followed by its detail). */
async function optionTexts(page) {
  return page.locator('[role="listbox"]:visible [role="option"] .rule-input-option-text').allTextContents();
}

test("collection editor: live errors with a marked span, completion, save", async (t) => {
  const { page, errors, close } = await openBrowser();
  try {
    await signIn(page, server);
    await page.goto(`${server.url}/_/#/collections/posts/edit`);
    if (await skipIfStub(t, page, "CollectionEditor", "the collection editor (ui-collections) with its rules tab")) return;
    await page.getByRole("tab", { name: /rules/i }).click();
    const input = page.getByTestId("listRule").getByRole("combobox");
    await input.waitFor();

    // Typing makes at most a few checks (one per pause), and the error is the server's.
    let checks = 0;
    page.on("request", (req) => {
      if (req.url().includes("/api/collections/meta/check-rule")) checks++;
    });
    await input.click();
    await input.press("Control+A");
    await input.press("Delete");
    await input.pressSequentially('title = "x" && nosuch = 1', { delay: 25 });
    const error = page.getByTestId("listRule").getByTestId("rule-error");
    await error.waitFor();
    assert.match(await error.textContent(), /unknown field "nosuch"/);
    assert.equal(await error.getAttribute("role"), "alert");
    assert.equal(await page.getByTestId("listRule").getByTestId("rule-mark").textContent(), "nosuch");
    assert.ok(checks >= 1 && checks <= 4, `debounced checks, got ${checks}`);
    assert.equal(await input.evaluate((el) => el === document.activeElement), true, "focus stays in the input");

    // Fixing the text clears the error.
    await input.press("Control+A");
    await input.press("Delete");
    await input.pressSequentially('title = "x"');
    await error.waitFor({ state: "detached" });

    // An error at the end of the text is quiet while typing there ("not finished yet"), and
    // an alert once the input is left, with the end marked.
    await input.pressSequentially(" && title =");
    await error.waitFor();
    assert.match(await error.textContent(), /right operand/i);
    assert.equal(await error.getAttribute("role"), "status");
    await input.press("Tab");
    assert.equal(await error.getAttribute("role"), "alert");
    assert.equal(await page.getByTestId("listRule").getByTestId("rule-mark").count(), 1);
    await input.click();

    // Completion: a relation's target fields, @request.auth, modifiers; keyboard and mouse.
    await input.press("Control+A");
    await input.press("Delete");
    await input.pressSequentially("author.na");
    const list = page.getByRole("listbox", { name: "Suggestions" });
    await list.waitFor();
    assert.deepEqual(await optionTexts(page), ["author.name"]);
    await input.press("Enter");
    assert.equal(await input.inputValue(), "author.name");
    await list.waitFor({ state: "hidden" });

    await input.pressSequentially(" = @request.");
    await list.waitFor();
    const requestKeys = await optionTexts(page);
    for (const key of ["auth.", "body.", "query.", "headers.", "method", "context"]) {
      assert.ok(requestKeys.includes(`@request.${key}`), `@request.${key} offered: ${requestKeys}`);
    }
    await input.pressSequentially("au");
    await input.press("Tab"); // accepts @request.auth. and offers its fields straight away
    const authKeys = await optionTexts(page);
    for (const key of ["id", "email", "verified", "name", "collectionName"]) {
      assert.ok(authKeys.includes(`@request.auth.${key}`), `@request.auth.${key} offered: ${authKeys}`);
    }
    await input.pressSequentially("na");
    await input.press("Enter");
    assert.equal(await input.inputValue(), "author.name = @request.auth.name");

    await input.pressSequentially(" && tags:");
    await list.waitFor();
    assert.deepEqual((await optionTexts(page)).slice(0, 2), ["tags:each", "tags:length"]);
    await list.getByRole("option", { name: /tags:each/ }).click();
    assert.equal(await input.evaluate((el) => el === document.activeElement), true, "a click keeps the focus");
    await input.pressSequentially(' ?= "news"');

    // Esc closes the list only.
    await input.pressSequentially(" && @");
    await list.waitFor();
    await input.press("Escape");
    await list.waitFor({ state: "hidden" });
    const rule = 'author.name = @request.auth.name && tags:each ?= "news"';
    const checked = page.waitForResponse(
      (res) => res.url().includes("check-rule") && res.request().postDataJSON()?.rule === rule,
    );
    for (let i = 0; i < " && @".length; i++) await input.press("Backspace");
    assert.equal(await input.inputValue(), rule);
    // The check of the final text passes (an OK answer shows nothing).
    assert.deepEqual(await (await checked).json(), { ok: true });
    await page.waitForTimeout(50);
    assert.equal(await page.getByTestId("listRule").getByTestId("rule-error").count(), 0);

    // In rule mode Enter (list closed) is a new line, Shift+Enter too.
    await input.press("End");
    await input.press("Enter");
    assert.equal(await input.inputValue(), `${rule}\n`);
    await input.press("Backspace");

    await page.getByRole("button", { name: /^save/i }).first().click();
    await waitFor(async () => (await api(server, "/api/collections/posts", { token })).listRule === rule);
    assert.deepEqual(errors, []);
  } finally {
    await close();
  }
});

test("records filter bar: Enter applies the checked filter; phone width", async (t) => {
  const { page, errors, close } = await openBrowser({ width: 390, height: 844 });
  try {
    await signIn(page, server);
    await page.goto(`${server.url}/_/#/collections/posts`);
    if (await skipIfStub(t, page, "RecordsPage", "the records browser (ui-records) with its filter bar")) return;
    const input = page.getByRole("combobox", { name: "Filter records" });
    await input.waitFor();
    await input.click();
    await input.pressSequentially("tit");
    const list = page.getByRole("listbox", { name: "Suggestions" });
    await list.waitFor();
    // The list fits the phone's width.
    const box = await list.boundingBox();
    assert.ok(box.x >= 0 && box.x + box.width <= 390, `list inside the viewport: ${JSON.stringify(box)}`);
    await input.press("Enter");
    await input.pressSequentially(' = "Second post"');
    await input.press("Enter");
    await waitFor(async () => (await page.getByRole("row").filter({ hasText: "post" }).count()) === 1);
    assert.equal(await page.getByRole("row").filter({ hasText: "Second post" }).count(), 1);
    // Words without an operator are a quick search: not checked as an expression.
    await input.press("Control+A");
    await input.pressSequentially("Second");
    await page.waitForTimeout(600);
    assert.equal(await page.getByTestId("rule-error").count(), 0);
    // A wrong filter is marked before it is applied.
    await input.press("Control+A");
    await input.pressSequentially("titl = 1");
    await page.getByTestId("rule-error").waitFor();
    assert.match(await page.getByTestId("rule-error").textContent(), /unknown field "titl"/);
    assert.equal(await page.getByTestId("rule-mark").textContent(), "titl");
    assert.deepEqual(errors, []);
  } finally {
    await close();
  }
});

async function waitFor(predicate, ms = 10_000) {
  const until = Date.now() + ms;
  for (;;) {
    if (await predicate()) return;
    if (Date.now() > until) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 100));
  }
}
