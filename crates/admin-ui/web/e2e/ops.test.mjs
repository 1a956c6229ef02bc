// The operations pages: logs, mail test, backups, crons, application settings.
// npx vite build && PLINTH_BIN=/work/main/target/release/plinth node --test e2e/ops.test.mjs
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { api, openBrowser, signIn, startServer, startSmtpSink, superuserToken } from "./harness.mjs";

/** Removes the console errors Chrome prints for an API answer the step expected (a 400). */
function dropExpected(errors, from, status) {
  const kept = errors.slice(0, from);
  for (const line of errors.slice(from)) {
    if (!line.includes(`status of ${status}`)) kept.push(line);
  }
  errors.length = 0;
  errors.push(...kept);
}

describe("operations pages", () => {
  let server, sink, browser, page, errors, token;

  before(async () => {
    [server, sink] = await Promise.all([startServer(), startSmtpSink()]);
    token = await superuserToken(server);
    ({ browser, page, errors } = await openBrowser());
    await signIn(page, server);
  });

  after(async () => {
    await browser?.close();
    await sink?.close();
    await server?.stop();
  });

  test("the logs page shows requests just made, filters them and opens one", async () => {
    const probe = `ops_probe_${Date.now().toString(36)}`;
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${server.url}/api/collections/${probe}/records?n=${i}`);
      assert.equal(res.status, 404);
    }
    await page.goto(server.url + "/_/#/logs");
    const rows = page.locator("tr.log-row", { hasText: probe });
    // The log writer stores entries in the background: refresh until they are there.
    for (let attempt = 0; attempt < 20 && (await rows.count()) < 3; attempt++) {
      await page.waitForTimeout(300);
      await page.getByRole("button", { name: "↻ Refresh" }).click();
      await page.waitForTimeout(200);
    }
    assert.equal(await rows.count(), 3);
    const chart = page.getByTestId("logs-chart");
    await chart.getByText("entries in the period").waitFor();
    // A bar narrows the list to its hour; the chip takes it back.
    await chart.locator("g.chart-bar:has(rect.chart-fill)").last().click();
    await page.waitForURL(/hour=/);
    await chart.getByRole("button", { name: /^Only / }).click();
    await page.waitForURL((u) => !u.href.includes("hour="));

    // Narrow to the probe's failed requests with the filter language.
    await page.getByLabel("Filter logs").fill(`data.url ~ "${probe}" && data.status = 404`);
    await page.getByLabel("Filter logs").press("Enter");
    await page.waitForFunction(
      (p) => {
        const all = [...document.querySelectorAll("tr.log-row")];
        return all.length === 3 && all.every((r) => r.textContent.includes(p));
      },
      probe,
    );
    assert.match(page.url(), /filter=/);

    // The detail panel shows the entry's fields and its data.
    await rows.first().getByRole("link").click();
    const detail = page.getByTestId("log-detail");
    await detail.waitFor();
    await detail.getByTestId("log-data").getByText(`/api/collections/${probe}/records`, { exact: false }).first().waitFor();
    const json = JSON.parse(await detail.getByTestId("log-json").textContent());
    assert.equal(json.data.status, 404);
    assert.equal(json.data.method, "GET");
    assert.ok(json.data.url.includes(probe));
    assert.equal(json.level, 8);
    await detail.getByRole("button", { name: "Close" }).click();
    await detail.waitFor({ state: "detached" });
    assert.doesNotMatch(page.url(), /log=/);
  });

  test("mail settings: SMTP saved through the form, a test email reaches the sink", async () => {
    await page.goto(server.url + "/_/#/settings/mail");
    const form = page.getByTestId("settings-mail");
    await form.getByLabel("Sender address").fill("ops@example.com");
    await form.getByRole("switch", { name: "Send through an SMTP server" }).check();
    await form.getByLabel("Host", { exact: true }).fill("127.0.0.1");
    await form.getByLabel("Port", { exact: true }).fill(String(sink.port));
    await page.getByTestId("save-bar").getByText("Unsaved changes").waitFor();
    // The test uses the saved settings: it waits for the save.
    assert.equal(await page.getByTestId("test-email").isDisabled(), true);
    await page.getByRole("button", { name: "Save changes" }).click();
    await page.getByTestId("save-bar").getByText("Changes saved.").waitFor();

    const settings = await api(server, "/api/settings", { token });
    assert.equal(settings.smtp.enabled, true);
    assert.equal(settings.smtp.host, "127.0.0.1");
    assert.equal(settings.smtp.port, sink.port);
    assert.equal(settings.meta.senderAddress, "ops@example.com");

    await page.getByTestId("test-email").click();
    const dialog = page.getByTestId("test-email-dialog");
    await dialog.getByLabel("To", { exact: true }).fill("ops-inbox@example.com");
    await dialog.getByLabel("Password reset").check();
    await dialog.getByRole("button", { name: "Send" }).click();
    await page.getByText("Test email sent to ops-inbox@example.com.").waitFor();
    const mail = await sink.waitFor((m) => m.to?.text?.includes("ops-inbox@example.com"));
    assert.ok(mail.from.text.includes("ops@example.com"));
  });

  test("backups: created through the page, listed, downloaded as a zip", async () => {
    await page.goto(server.url + "/_/#/settings/backups");
    await page.getByRole("button", { name: "+ New backup" }).click();
    const dialog = page.getByTestId("create-backup");
    await dialog.getByLabel("Name (optional)").fill("ops_e2e");
    await dialog.getByRole("button", { name: "Create backup" }).click();
    await page.locator('tr[data-backup="ops_e2e.zip"]').waitFor();
    const listed = await api(server, "/api/backups", { token });
    assert.ok(listed.some((b) => b.key === "ops_e2e.zip" && b.size > 0));

    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.getByRole("button", { name: "Download ops_e2e.zip" }).click(),
    ]);
    assert.equal(download.suggestedFilename(), "ops_e2e.zip");
    const bytes = readFileSync(await download.path());
    assert.equal(bytes.subarray(0, 2).toString("latin1"), "PK");

    // The same zip uploaded under another name, then deleted after confirmation.
    await page.getByText("Upload backup").locator("input[type=file]").setInputFiles({
      name: "ops_uploaded.zip",
      mimeType: "application/zip",
      buffer: bytes,
    });
    await page.locator('tr[data-backup="ops_uploaded.zip"]').waitFor();
    assert.ok((await api(server, "/api/backups", { token })).some((b) => b.key === "ops_uploaded.zip"));
    await page.getByRole("button", { name: "Delete ops_uploaded.zip" }).click();
    await page.getByTestId("confirm-ok").click();
    await page.locator('tr[data-backup="ops_uploaded.zip"]').waitFor({ state: "detached" });
    assert.ok(!(await api(server, "/api/backups", { token })).some((b) => b.key === "ops_uploaded.zip"));

    // The schedule is a settings value saved with the section's bar.
    const form = page.getByTestId("settings-backups");
    await form.getByLabel("Schedule").selectOption({ label: "Daily at 00:00 UTC" });
    await form.getByLabel("Automatic backups to keep").fill("5");
    await form.getByRole("button", { name: "Save changes" }).click();
    await form.getByText("Changes saved.").waitFor();
    const settings = await api(server, "/api/settings", { token });
    assert.equal(settings.backups.cron, "0 0 * * *");
    assert.equal(settings.backups.cronMaxKeep, 5);
  });

  test("files storage: S3 switched on without its values shows the server's errors beside them", async () => {
    await page.goto(server.url + "/_/#/settings/storage");
    const form = page.getByTestId("settings-storage");
    await form.getByRole("switch", { name: "Use S3-compatible storage" }).check();
    await form.getByLabel("Endpoint").fill("not a url");
    const before = errors.length;
    await form.getByRole("button", { name: "Save changes" }).click();
    await form.getByText("Must be a valid URL.").waitFor();
    assert.ok((await form.getByText("Cannot be blank.").count()) >= 3);
    dropExpected(errors, before, 400);
    assert.equal((await api(server, "/api/settings", { token })).s3.enabled, false);
    await form.getByRole("button", { name: "Reset" }).click();
    await form.getByLabel("Endpoint").waitFor({ state: "detached" });
  });

  test("crons: listed and run now", async () => {
    await page.goto(server.url + "/_/#/settings/crons");
    const row = page.locator('tr[data-cron="__pbLogsCleanup__"]');
    await row.getByText("0 */6 * * *").waitFor();
    const [response] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith("/api/crons/__pbLogsCleanup__") && r.request().method() === "POST"),
      row.getByRole("button", { name: "Run __pbLogsCleanup__ now" }).click(),
    ]);
    assert.equal(response.status(), 204);
    await row.getByText(/Started at/).waitFor();
    await page.getByText("Started __pbLogsCleanup__.").waitFor();
  });

  test("application: field errors beside inputs, then the name saved and shown in the top bar", async () => {
    await page.goto(server.url + "/_/#/settings/application");
    const form = page.getByTestId("settings-application");
    // A server-side validation error lands beside its input (and its row for rate limits).
    await form.getByLabel("Application URL").fill("not a url");
    await form.getByRole("button", { name: "+ Add rule" }).click();
    const before = errors.length;
    await page.getByRole("button", { name: "Save changes" }).click();
    await form.getByText("Must be a valid URL.").waitFor();
    const rules = await api(server, "/api/settings", { token });
    const newIndex = rules.rateLimits.rules.length;
    await form.locator(`input[name="rateLimits.rules.${newIndex}.label"]`).waitFor();
    await form.locator("tr", { has: page.locator(`input[name="rateLimits.rules.${newIndex}.label"]`) }).getByText("Cannot be blank.").waitFor();
    dropExpected(errors, before, 400);
    // The nav marks the section as unsaved; Reset brings the saved values back.
    await page.locator('.settings-nav [data-section="application"] .dirty-dot').waitFor();
    await page.getByRole("button", { name: "Reset" }).click();
    assert.equal(await form.getByLabel("Application URL").inputValue(), "http://localhost:8090");
    assert.equal(await form.locator(`input[name="rateLimits.rules.${newIndex}.label"]`).count(), 0);

    await form.getByLabel("Application name").fill("Ops Test App");
    await page.getByRole("button", { name: "Save changes" }).click();
    await page.getByTestId("save-bar").getByText("Changes saved.").waitFor();
    await page.locator(".topnav .brand-name", { hasText: "Ops Test App" }).waitFor();
    const settings = await api(server, "/api/settings", { token });
    assert.equal(settings.meta.appName, "Ops Test App");
    // Only the changed values were sent: the other sections are as they were.
    assert.equal(settings.smtp.host, "127.0.0.1");
    assert.equal(settings.rateLimits.rules.length, rules.rateLimits.rules.length);
  });

  test("phone width: settings sections in a row, logs without page overflow", async () => {
    const phone = await openBrowser({ width: 390, height: 844 });
    try {
      await signIn(phone.page, server);
      await phone.page.goto(server.url + "/_/#/settings/application");
      const nav = phone.page.getByRole("navigation", { name: "Settings" });
      await nav.getByRole("link", { name: "Crons" }).click();
      await phone.page.locator('tr[data-cron="__pbDBOptimize__"]').waitFor();
      const box = await nav.boundingBox();
      assert.ok(box.height < 80, `the section list is one row (${box.height}px)`);
      await phone.page.goto(server.url + "/_/#/logs");
      await phone.page.locator("tr.log-row").first().waitFor();
      const overflow = await phone.page.evaluate(() => document.documentElement.scrollWidth - innerWidth);
      assert.ok(overflow <= 0, `the page does not scroll sideways (${overflow}px)`);
      assert.deepEqual(phone.errors, []);
    } finally {
      await phone.close();
    }
  });

  test("no console errors", () => {
    assert.deepEqual(errors, []);
  });
});
