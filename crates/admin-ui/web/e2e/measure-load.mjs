// Measures the dashboard's first load in headless Chromium (not a test: speed is reported in
// docs/benchmarks.md, never asserted). Usage: node e2e/measure-load.mjs [runs]
import { openBrowser, signIn, startServer } from "./harness.mjs";

const runs = Number(process.argv[2] ?? 5);
const server = await startServer();
const results = [];
try {
  for (let i = 0; i < runs; i++) {
    const { page, close } = await openBrowser();
    const started = Date.now();
    await page.goto(server.url + "/_/");
    await page.getByRole("heading", { name: "Superuser sign-in" }).waitFor();
    const login = await page.evaluate(() => {
      const nav = performance.getEntriesByType("navigation")[0];
      return nav.loadEventEnd - nav.startTime;
    });
    const ready = Date.now() - started;
    const signInStarted = Date.now();
    await signIn(page, server);
    await page.locator('[data-collection="users"]').waitFor();
    results.push({ loadEvent: login, signInPageVisible: ready, signedInToList: Date.now() - signInStarted });
    await close();
  }
} finally {
  await server.stop();
}
const median = (key) => results.map((r) => r[key]).sort((a, b) => a - b)[Math.floor(results.length / 2)];
console.log(JSON.stringify({ runs, median: { loadEvent: median("loadEvent"), signInPageVisible: median("signInPageVisible"), signedInToList: median("signedInToList") }, results }, null, 2));
