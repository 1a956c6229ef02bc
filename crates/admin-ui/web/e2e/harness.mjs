// Shared pieces of the dashboard's browser tests: a real Plinth server on a throwaway data
// dir, a local SMTP sink, and headless Chromium from Debian's package (never downloaded).
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { SMTPServer } from "smtp-server";
import { simpleParser } from "mailparser";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
export const PLINTH_BIN = resolve(process.env.PLINTH_BIN ?? join(here, "../../../../target/release/plinth"));
export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
export const ADMIN = { email: "admin@example.com", password: "admin-password-1" };

/**
 * Starts `plinth serve` on a free loopback port with a fresh data dir. With `superuser` (the
 * default) an account ADMIN exists; without it, `installerUrl` is the link serve printed.
 */
export async function startServer({ superuser = true, env = {}, args = [] } = {}) {
  if (!existsSync(PLINTH_BIN)) throw new Error(`no plinth binary at ${PLINTH_BIN} (cargo build --release, or set PLINTH_BIN)`);
  const dir = mkdtempSync(join(tmpdir(), "plinth-ui-"));
  if (superuser) {
    const made = spawnSync(PLINTH_BIN, ["superuser", "upsert", ADMIN.email, ADMIN.password, "--dir", dir], {
      encoding: "utf8",
      env: { ...process.env, PLINTH_INSECURE_TEST_HASHING: "1" },
    });
    if (made.status !== 0) throw new Error(`superuser upsert failed: ${made.stderr}`);
  }
  // The bundle under test: this checkout's built `dist/` read from disk, unless
  // PLINTH_E2E_EMBEDDED is set (CI), which tests the bundle embedded in the binary.
  const dashboard = process.env.PLINTH_E2E_EMBEDDED ? {} : { PLINTH_DASHBOARD_DIR: join(here, "../../dist") };
  // Hooks, migrations and public files inside the throwaway dir: the defaults sit beside the
  // data dir, one /tmp folder every test would share (automigrate writes migrations there).
  const own = [
    `--hooksDir=${join(dir, "pb_hooks")}`,
    `--migrationsDir=${join(dir, "pb_migrations")}`,
    `--publicDir=${join(dir, "pb_public")}`,
  ];
  const child = spawn(PLINTH_BIN, ["serve", "--http=127.0.0.1:0", "--dir", dir, ...own, ...args], {
    env: { ...process.env, PLINTH_LOG: "warn", PLINTH_INSECURE_TEST_HASHING: "1", ...dashboard, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const url = await new Promise((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start:\n${output}`)), 30_000);
    const onData = (chunk) => {
      output += chunk.toString();
      const m = output.match(/Server started at (http:\/\/[\d.:]+)/);
      if (m) {
        clearTimeout(timer);
        resolveUrl(m[1]);
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("exit", (code) => reject(new Error(`serve exited (${code}):\n${output}`)));
  });
  const installer = output.match(/(http:\/\/\S+\/_\/#\/install\/\S+)/);
  return {
    url,
    dir,
    get output() {
      return output;
    },
    installerUrl: installer ? installer[1] : null,
    async stop() {
      child.kill("SIGTERM");
      await new Promise((r) => (child.exitCode !== null ? r() : child.once("exit", r)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Calls the API as the superuser; returns parsed JSON (or null for 204). */
export async function api(server, path, { method = "GET", body, token } = {}) {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = token;
  const res = await fetch(server.url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  const json = text ? JSON.parse(text) : null;
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return json;
}

export async function superuserToken(server) {
  const auth = await api(server, "/api/collections/_superusers/auth-with-password", {
    method: "POST",
    body: { identity: ADMIN.email, password: ADMIN.password },
  });
  return auth.token;
}

/** A local SMTP server that keeps every message it receives (parsed). */
export async function startSmtpSink() {
  const messages = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ["STARTTLS"],
    onData(stream, _session, done) {
      simpleParser(stream).then((mail) => {
        messages.push(mail);
        done();
      }, done);
    },
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: server.server.address().port,
    messages,
    async waitFor(predicate, ms = 10_000) {
      const until = Date.now() + ms;
      while (Date.now() < until) {
        const found = messages.find(predicate);
        if (found) return found;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`no matching mail among ${messages.length}`);
    },
    close: () => new Promise((r) => server.close(r)),
  };
}

/** Headless Chromium; every console error and page error is collected in `errors`. */
export async function openBrowser({ width = 1280, height = 800 } = {}) {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-default-apps", "--disable-sync"],
  });
  const context = await browser.newContext({ viewport: { width, height }, acceptDownloads: true });
  const page = await context.newPage();
  const errors = [];
  page.on("console", (msg) => {
    // A failed resource names its URL only in the location.
    const where = msg.location()?.url;
    if (msg.type() === "error") errors.push(where ? `${msg.text()} (${where})` : msg.text());
  });
  page.on("pageerror", (err) => errors.push(String(err)));
  return { browser, context, page, errors, close: () => browser.close() };
}

/** Opens the dashboard and signs in as ADMIN. */
export async function signIn(page, server) {
  await page.goto(server.url + "/_/");
  await page.getByLabel("Email").fill(ADMIN.email);
  await page.getByLabel("Password").fill(ADMIN.password);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await page.getByRole("navigation", { name: "Main" }).waitFor();
}
