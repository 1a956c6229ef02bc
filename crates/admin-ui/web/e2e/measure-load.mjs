// Measures the dashboard's first load in headless Chromium, Plinth's beside PocketBase's when
// the `pocketbase` binary is on PATH (same machine, same run). Not a test: speed is reported
// in docs/benchmarks.md, never asserted. Usage: node e2e/measure-load.mjs [runs]
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ADMIN, openBrowser, startServer } from "./harness.mjs";

const runs = Number(process.argv[2] ?? 5);

/** Times one cold load: navigation to the load event, to the sign-in form, and sign-in to the
 * collection list. */
async function measure(url, signedInUrl) {
  const { page, close } = await openBrowser();
  try {
    const started = Date.now();
    await page.goto(url + "/_/");
    await page.locator('input[type="email"]').waitFor();
    const formVisible = Date.now() - started;
    const loadEvent = await page.evaluate(() => performance.getEntriesByType("navigation")[0].loadEventEnd);
    const signing = Date.now();
    await page.locator('input[type="email"]').fill(ADMIN.email);
    await page.locator('input[type="password"]').fill(ADMIN.password);
    await page.locator('input[type="password"]').press("Enter");
    await page.waitForURL(signedInUrl);
    await page.getByText("users", { exact: true }).first().waitFor();
    return { loadEvent, formVisible, signedIn: Date.now() - signing };
  } finally {
    await close();
  }
}

async function startPocketBase() {
  const dir = mkdtempSync(join(tmpdir(), "pb-ui-"));
  spawnSync("pocketbase", ["superuser", "upsert", ADMIN.email, ADMIN.password, `--dir=${join(dir, "pb_data")}`]);
  const port = 18000 + Math.floor(Math.random() * 900);
  const child = spawn("pocketbase", ["serve", `--http=127.0.0.1:${port}`, `--dir=${join(dir, "pb_data")}`, `--hooksDir=${join(dir, "h")}`, `--migrationsDir=${join(dir, "m")}`], { stdio: "ignore" });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(url + "/api/health")).ok) break;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url, stop: async () => { child.kill(); await new Promise((r) => child.once("exit", r)); rmSync(dir, { recursive: true, force: true }); } };
}

const median = (list, key) => list.map((r) => r[key]).sort((a, b) => a - b)[Math.floor(list.length / 2)];
const summary = (list) => ({ loadEvent: Math.round(median(list, "loadEvent")), formVisible: median(list, "formVisible"), signedIn: median(list, "signedIn") });

const plinth = await startServer();
const plinthRuns = [];
try {
  for (let i = 0; i < runs; i++) plinthRuns.push(await measure(plinth.url, /#\/collections/));
} finally {
  await plinth.stop();
}
const result = { runs, plinth: summary(plinthRuns) };
if (spawnSync("pocketbase", ["--version"]).status === 0) {
  const pb = await startPocketBase();
  const pbRuns = [];
  try {
    for (let i = 0; i < runs; i++) pbRuns.push(await measure(pb.url, /#\/collections/));
  } finally {
    await pb.stop();
  }
  result.pocketbase = summary(pbRuns);
}
console.log(JSON.stringify(result, null, 2));
