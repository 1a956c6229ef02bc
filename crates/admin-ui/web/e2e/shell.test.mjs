// The shell: first-run installer, sign-in and sign-out, phone width, and what the bundle costs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { ADMIN, api, openBrowser, signIn, startServer, startSmtpSink, superuserToken } from "./harness.mjs";

const dist = join(dirname(fileURLToPath(import.meta.url)), "../../dist");

test("the installer link creates the first superuser once and signs in", async () => {
  const server = await startServer({ superuser: false });
  const { page, errors, close } = await openBrowser();
  try {
    assert.ok(server.installerUrl, `serve printed an installer link:\n${server.output}`);
    await page.goto(server.installerUrl);
    await page.getByRole("heading", { name: "Create your first superuser" }).waitFor();
    await page.getByLabel("Email").fill("first@example.com");
    await page.getByLabel("Password", { exact: true }).fill("first-password-1");
    await page.getByLabel("Password again").fill("not-the-same-1");
    await page.getByRole("button", { name: /Create superuser/ }).click();
    // The server's field error is shown beside the confirmation.
    await page.getByText("Values don't match.", { exact: true }).waitFor();
    await page.getByLabel("Password again").fill("first-password-1");
    await page.getByRole("button", { name: /Create superuser/ }).click();
    await page.getByRole("navigation", { name: "Main" }).waitFor();
    assert.match(await page.locator(".whoami").innerText(), /first@example.com/);
    // The account exists on the server and signs in.
    const auth = await api(server, "/api/collections/_superusers/auth-with-password", {
      method: "POST",
      body: { identity: "first@example.com", password: "first-password-1" },
    });
    assert.ok(auth.token);

    // The link is spent.
    await page.getByRole("button", { name: "Log out" }).click();
    await page.goto(server.installerUrl);
    await page.getByLabel("Email").fill("second@example.com");
    await page.getByLabel("Password", { exact: true }).fill("second-password-1");
    await page.getByLabel("Password again").fill("second-password-1");
    await page.getByRole("button", { name: /Create superuser/ }).click();
    await page.getByText("The installer link is invalid or was already used.").waitFor();
    const list = await api(server, "/api/collections/_superusers/records", { token: auth.token });
    assert.equal(list.totalItems, 1);
    // A refused request logs a console error in Chromium (the 403); nothing else may.
    assert.deepEqual(errors.filter((e) => !/status of 40[03]/.test(e)), []);
  } finally {
    await close();
    await server.stop();
  }
});

test("sign-in refuses a wrong password, keeps the session across reloads, and signs out", async () => {
  const server = await startServer();
  const { page, errors, close } = await openBrowser();
  try {
    await page.goto(server.url + "/_/");
    await page.getByLabel("Email").fill(ADMIN.email);
    await page.getByLabel("Password").fill("wrong-password");
    await page.getByRole("button", { name: "Sign in", exact: true }).click();
    await page.getByRole("alert").filter({ hasText: /Failed to authenticate/ }).waitFor();

    await signIn(page, server);
    await page.waitForURL(/#\/collections/);
    await page.reload();
    await page.getByRole("navigation", { name: "Main" }).waitFor();
    // The system `users` collection is listed.
    await page.locator('[data-collection="users"]').waitFor();

    await page.getByRole("button", { name: "Log out" }).click();
    await page.getByRole("heading", { name: "Superuser sign-in" }).waitFor();
    await page.reload();
    await page.getByRole("heading", { name: "Superuser sign-in" }).waitFor();
    assert.deepEqual(errors.filter((e) => !/status of 400/.test(e)), []);
  } finally {
    await close();
    await server.stop();
  }
});

test("phone width: navigation and the collection list fit the screen", async () => {
  const server = await startServer();
  const { page, errors, close } = await openBrowser({ width: 390, height: 844 });
  try {
    await signIn(page, server);
    await page.locator('[data-collection="users"]').click();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - innerWidth);
    assert.ok(overflow <= 1, `the page scrolls sideways by ${overflow}px`);
    assert.deepEqual(errors, []);
  } finally {
    await close();
    await server.stop();
  }
});

test("the bundle stays under 300 KB of gzipped JavaScript", () => {
  const files = readdirSync(join(dist, "assets")).filter((f) => f.endsWith(".js"));
  assert.ok(files.length > 0);
  const total = files.reduce((sum, f) => sum + gzipSync(readFileSync(join(dist, "assets", f)), { level: 9 }).length, 0);
  assert.ok(total < 300 * 1024, `${total} bytes of gzipped JavaScript`);
});

test("MFA: the password, then a one-time code from the mail, signs in", async () => {
  const sink = await startSmtpSink();
  const server = await startServer();
  const { page, errors, close } = await openBrowser();
  try {
    const token = await superuserToken(server);
    await api(server, "/api/settings", {
      method: "PATCH",
      token,
      body: { smtp: { enabled: true, host: "127.0.0.1", port: sink.port, tls: false } },
    });
    await api(server, "/api/collections/_superusers", {
      method: "PATCH",
      token,
      body: { otp: { enabled: true }, mfa: { enabled: true } },
    });
    await page.goto(server.url + "/_/");
    await page.getByLabel("Email").fill(ADMIN.email);
    await page.getByLabel("Password").fill(ADMIN.password);
    await page.getByRole("button", { name: "Sign in", exact: true }).click();
    await page.getByText("A second factor is required.").waitFor();
    const mail = await sink.waitFor((m) => m.to?.text?.includes(ADMIN.email));
    const code = (mail.text ?? "").match(/\b(\d{6,10})\b/)?.[1];
    assert.ok(code, `a code in the mail: ${mail.text}`);
    await page.getByLabel("One-time code").fill(code);
    await page.getByRole("button", { name: "Sign in", exact: true }).click();
    await page.getByRole("navigation", { name: "Main" }).waitFor();
    // The MFA answer is a 401 by design; nothing else may be logged.
    assert.deepEqual(errors.filter((e) => !/status of 401/.test(e)), []);
  } finally {
    await close();
    await server.stop();
    await sink.close();
  }
});
