// Takes the screenshots in docs/screenshots/ (README and docs/dashboard.md) from a real server
// with sample data. Not a test; run by hand after changing a screen:
//   PLINTH_BIN=../../../target/release/plinth node e2e/screenshots.mjs
import { mkdirSync, writeFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { api, openBrowser, signIn, startServer, superuserToken } from "./harness.mjs";

const out = join(dirname(fileURLToPath(import.meta.url)), "../../../../docs/screenshots");
mkdirSync(out, { recursive: true });

const server = await startServer();
const token = await superuserToken(server);
const post = (path, body) => api(server, path, { method: "POST", token, body });

// Sample data: authors and posts with most field types.
const users = [];
for (const [name, email] of [["Ada Lovelace", "ada@example.com"], ["Alan Turing", "alan@example.com"], ["Grace Hopper", "grace@example.com"]]) {
  users.push(await post("/api/collections/users/records", { name, email, password: "password-123", passwordConfirm: "password-123", verified: true }));
}
const usersCollection = await api(server, "/api/collections/users", { token });
await post("/api/collections", {
  name: "posts",
  type: "base",
  listRule: "published = true || author = @request.auth.id",
  viewRule: "published = true || author = @request.auth.id",
  createRule: "@request.auth.id != ''",
  updateRule: "author = @request.auth.id",
  deleteRule: "author = @request.auth.id",
  fields: [
    { name: "title", type: "text", required: true, max: 200, presentable: true },
    { name: "body", type: "editor" },
    { name: "published", type: "bool" },
    { name: "tags", type: "select", values: ["news", "howto", "release", "opinion"], maxSelect: 3 },
    { name: "author", type: "relation", collectionId: usersCollection.id, maxSelect: 1 },
    { name: "views", type: "number", onlyInt: true, min: 0 },
    { name: "meta", type: "json", maxSize: 10000 },
    { name: "created", type: "autodate", onCreate: true },
    { name: "updated", type: "autodate", onCreate: true, onUpdate: true },
  ],
  indexes: ["CREATE INDEX idx_posts_published ON posts (published)"],
});
const titles = ["Plinth 1.0 is out", "Moving from PocketBase in one command", "Realtime without the fuss", "Rules that read like English", "Backups you can restore", "Three nodes on PostgreSQL", "Why we embed the dashboard", "A filter language tour"];
for (const [i, title] of titles.entries()) {
  await post("/api/collections/posts/records", {
    title,
    body: `<p>${title}: notes and examples.</p>`,
    published: i % 3 !== 2,
    tags: [["release"], ["howto"], ["news", "howto"], ["howto"], ["opinion"], ["news"], ["opinion"], ["howto"]][i],
    author: users[i % users.length].id,
    views: (i + 1) * 137,
    meta: { readingMinutes: 3 + i },
  });
}
for (let i = 0; i < 20; i++) await fetch(`${server.url}/api/collections/posts/records?page=${i % 3 + 1}`);

const shots = [];
async function shot(name, width, height, action) {
  const { page, close } = await openBrowser({ width, height });
  try {
    await signIn(page, server);
    await action(page);
    await page.waitForTimeout(400);
    writeFileSync(join(out, `${name}.png`), await page.screenshot());
    shots.push(name);
  } catch (error) {
    console.error(`${name}: ${error.message}`);
    process.exitCode = 1;
  } finally {
    await close();
  }
}

try {
  await shot("records", 1280, 800, async (page) => {
    await page.goto(`${server.url}/_/#/collections/posts`);
    await page.getByText(titles[0]).first().waitFor();
  });
  await shot("record-editor", 1280, 800, async (page) => {
    await page.goto(`${server.url}/_/#/collections/posts`);
    await page.getByText(titles[1]).first().click();
    await page.locator("dialog[open]").waitFor();
  });
  await shot("collection-fields", 1280, 800, async (page) => {
    await page.goto(`${server.url}/_/#/collections/posts/edit`);
    await page.getByRole("tab").first().waitFor();
  });
  await shot("collection-rules", 1280, 800, async (page) => {
    await page.goto(`${server.url}/_/#/collections/posts/edit`);
    await page.getByRole("tab", { name: /rules/i }).click();
    const list = page.getByTestId("listRule").locator("textarea");
    await list.fill("published = true && autor = @request.auth.id");
    await page.getByTestId("rule-error").first().waitFor();
    await list.press("Escape");
  });
  await shot("logs", 1280, 800, async (page) => {
    await page.goto(`${server.url}/_/#/logs`);
    await page.locator("svg").first().waitFor();
  });
  await shot("settings-mail", 1280, 800, async (page) => {
    await page.goto(`${server.url}/_/#/settings/mail`);
    await page.getByRole("heading").first().waitFor();
  });
  await shot("backups", 1280, 800, async (page) => {
    await post("/api/backups", { name: "before_launch.zip" });
    await page.goto(`${server.url}/_/#/settings/backups`);
    await page.getByText("before_launch.zip").waitFor();
  });
  await shot("sql", 1280, 800, async (page) => {
    await page.goto(`${server.url}/_/#/sql`);
    const editor = page.locator("textarea").first();
    await editor.fill("SELECT title, views FROM posts ORDER BY views DESC LIMIT 5");
    await editor.press("Control+Enter");
    await page.locator("table").first().waitFor();
  });
  await shot("phone-records", 390, 844, async (page) => {
    await page.goto(`${server.url}/_/#/collections/posts`);
    await page.getByText(titles[0]).first().waitFor();
  });
} finally {
  await server.stop();
}
console.log(`wrote ${shots.length} screenshots to ${out}: ${shots.join(", ")}`);
