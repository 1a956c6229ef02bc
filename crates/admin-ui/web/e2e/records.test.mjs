// The records browser, driven as a person would: create records (with a file and a relation),
// edit one, filter, sort, see a record made elsewhere appear live, export the filtered records
// as JSON, and bulk-delete — each outcome checked on the server through the API.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deflateSync } from "node:zlib";
import { api, openBrowser, signIn, startServer, superuserToken } from "./harness.mjs";

/** A small solid-colour PNG (no image library needed). */
function png(width, height, [r, g, b]) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const byte of buf) c = crcTable[(c ^ byte) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
    const sum = Buffer.alloc(4);
    sum.writeUInt32BE(crc(body));
    return Buffer.concat([len, body, sum]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // truecolour
  const row = Buffer.concat([Buffer.from([0]), Buffer.from(Array.from({ length: width }, () => [r, g, b]).flat())]);
  const raw = Buffer.concat(Array.from({ length: height }, () => row));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", header),
    chunk("IDAT", deflateSync(raw)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

async function rowTitles(page) {
  return page.locator("tr.record-row td[data-field=title]").allInnerTexts();
}

test("records: create with file and relation, edit, filter, sort, live update, export, bulk delete", { timeout: 90_000 }, async () => {
  const server = await startServer();
  const browser = await openBrowser();
  const { page, errors } = browser;
  const tmp = mkdtempSync(join(tmpdir(), "plinth-records-e2e-"));
  try {
    const token = await superuserToken(server);
    const labels = await api(server, "/api/collections", {
      method: "POST",
      token,
      body: { name: "labels", type: "base", fields: [{ name: "name", type: "text", presentable: true }] },
    });
    const red = await api(server, "/api/collections/labels/records", { method: "POST", token, body: { name: "Red label" } });
    const blue = await api(server, "/api/collections/labels/records", { method: "POST", token, body: { name: "Blue label" } });
    await api(server, "/api/collections", {
      method: "POST",
      token,
      body: {
        name: "items",
        type: "base",
        fields: [
          { name: "title", type: "text", required: true, presentable: true },
          { name: "count", type: "number" },
          { name: "done", type: "bool" },
          { name: "kind", type: "select", values: ["alpha", "beta", "gamma"], maxSelect: 1 },
          { name: "photo", type: "file", maxSelect: 1, mimeTypes: ["image/png"] },
          { name: "label", type: "relation", collectionId: labels.id, maxSelect: 1 },
          { name: "created", type: "autodate", onCreate: true },
        ],
      },
    });
    const photoPath = join(tmp, "square.png");
    writeFileSync(photoPath, png(16, 16, [220, 40, 40]));

    await signIn(page, server);
    await page.goto(`${server.url}/_/#/collections/items`);
    await page.getByText("No records yet.").waitFor();

    // Create three records through the panel.
    const panel = page.getByTestId("record-panel");
    const create = async ({ title, count, done, kind, label, photo }) => {
      await page.getByTestId("new-record").click();
      await panel.waitFor();
      await panel.locator("#record-field-title").fill(title);
      await panel.locator("#record-field-count").fill(String(count));
      if (done) await panel.getByRole("switch", { name: "done" }).check();
      await panel.locator("#record-field-kind").selectOption(kind);
      if (label) {
        await panel.getByTestId("pick-label").click();
        const picker = page.getByTestId("relation-picker");
        await picker.getByRole("searchbox").fill(label.split(" ")[0]);
        await picker.locator(".picker-item", { hasText: label }).waitFor();
        await picker.locator(".picker-item", { hasText: "label" }).first().waitFor();
        // The debounced search leaves only the match.
        await page.waitForFunction(
          () => document.querySelectorAll("[data-testid=relation-picker] .picker-item").length === 1,
        );
        await picker.locator(".picker-item", { hasText: label }).click();
        await picker.getByTestId("picker-done").click();
        await panel.locator(".relation-chips .chip", { hasText: label }).waitFor();
      }
      if (photo) {
        await panel.getByTestId("file-input-photo").setInputFiles(photo);
        await panel.locator(".file-item.added", { hasText: "square.png" }).waitFor();
      }
      await panel.getByTestId("save-record").click();
      await panel.waitFor({ state: "detached" });
      await page.locator("tr.record-row td[data-field=title]", { hasText: title }).waitFor();
    };
    await create({ title: "Alpha one", count: 5, done: true, kind: "alpha", label: "Red label", photo: photoPath });
    await create({ title: "Beta two", count: 12, done: false, kind: "beta", label: "Blue label" });
    await create({ title: "Gamma three", count: 30, done: false, kind: "gamma" });
    await page.getByTestId("records-count").getByText("3 records").waitFor();

    const listed = await api(server, "/api/collections/items/records?sort=count", { token });
    assert.equal(listed.totalItems, 3);
    const [alpha, beta, gamma] = listed.items;
    assert.equal(alpha.title, "Alpha one");
    assert.equal(alpha.count, 5);
    assert.equal(alpha.done, true);
    assert.equal(alpha.kind, "alpha");
    assert.equal(alpha.label, red.id);
    assert.match(alpha.photo, /^square_\w+\.png$/);
    assert.equal(beta.label, blue.id);
    assert.equal(gamma.label, "");

    // The uploaded image shows as a thumbnail; the relation as its presentable field.
    const thumb = page.locator(`tr[data-id="${alpha.id}"] img.thumb`);
    await thumb.waitFor();
    assert.match(await thumb.getAttribute("src"), /thumb=100x100/);
    await page.waitForFunction((id) => {
      const img = document.querySelector(`tr[data-id="${id}"] img.thumb`);
      return img && img.complete && img.naturalWidth > 0;
    }, alpha.id);
    await page.locator(`tr[data-id="${alpha.id}"] td[data-field=label]`).getByText("Red label").waitFor();

    // Edit one: open it, change the count and the title, save.
    await page.locator(`tr[data-id="${beta.id}"] td[data-field=title]`).click();
    await panel.waitFor();
    await panel.locator("#record-field-count").fill("42");
    await panel.locator("#record-field-title").fill("Beta two (edited)");
    await panel.getByTestId("save-record").click();
    await panel.waitFor({ state: "detached" });
    await page.locator("tr.record-row td[data-field=title]", { hasText: "Beta two (edited)" }).waitFor();
    const edited = await api(server, `/api/collections/items/records/${beta.id}`, { token });
    assert.equal(edited.count, 42);
    assert.equal(edited.title, "Beta two (edited)");
    assert.equal(edited.label, blue.id, "untouched fields stay");

    // Filter with the filter bar: only the matches remain, and the filter is in the URL.
    const filterBox = page.getByRole("combobox", { name: "Filter records" });
    const applyFilter = page.getByTestId("apply-filter");
    await filterBox.fill("count > 10");
    await applyFilter.click();
    await page.waitForFunction(() => location.hash.includes("filter="));
    await page.waitForFunction(() => document.querySelectorAll("tr.record-row").length === 2);
    assert.deepEqual((await rowTitles(page)).sort(), ["Beta two (edited)", "Gamma three"]);

    // A filter the server rejects is reported.
    await filterBox.fill("nosuchfield = 1");
    await applyFilter.click();
    await page.getByTestId("list-error").waitFor();
    await filterBox.fill("count > 10");
    await applyFilter.click();
    await page.waitForFunction(() => document.querySelectorAll("tr.record-row").length === 2);

    // Sort by a column: ascending, then descending.
    await page.getByRole("columnheader", { name: /count/ }).getByRole("button").click();
    await page.waitForFunction(() => location.hash.includes("sort=count"));
    await page.waitForFunction(
      () =>
        [...document.querySelectorAll("tr.record-row td[data-field=count]")].map((td) => td.textContent).join() ===
        "30,42",
    );
    await page.getByRole("columnheader", { name: /count/ }).getByRole("button").click();
    await page.waitForFunction(() => location.hash.includes("sort=-count"));
    await page.waitForFunction(
      () =>
        [...document.querySelectorAll("tr.record-row td[data-field=count]")].map((td) => td.textContent).join() ===
        "42,30",
    );
    assert.deepEqual(await rowTitles(page), ["Beta two (edited)", "Gamma three"]);

    // Live: a record created through the API appears without a reload.
    const live = await api(server, "/api/collections/items/records", {
      method: "POST",
      token,
      body: { title: "Made elsewhere", count: 99, kind: "beta" },
    });
    await page.locator(`tr[data-id="${live.id}"]`).waitFor({ timeout: 10_000 });
    await page.getByTestId("records-count").getByText("3 records").waitFor();
    assert.deepEqual(await rowTitles(page), ["Made elsewhere", "Beta two (edited)", "Gamma three"]);

    // Export the current filter as JSON.
    await page.getByRole("button", { name: /Export/ }).click();
    const dialog = page.getByTestId("export-dialog");
    await dialog.waitFor();
    const [download] = await Promise.all([page.waitForEvent("download"), dialog.getByTestId("export-start").click()]);
    assert.match(download.suggestedFilename(), /^items-\d{8}-\d{6}\.json$/);
    const exported = JSON.parse(readFileSync(await download.path(), "utf8"));
    assert.deepEqual(
      exported.map((r) => r.title),
      ["Made elsewhere", "Beta two (edited)", "Gamma three"],
      "the export has the filtered records in the table's order",
    );
    assert.equal(exported[1].count, 42);
    assert.equal(exported[1].label, blue.id);

    // Bulk delete two of them.
    await page.getByRole("checkbox", { name: `Select record ${live.id}` }).check();
    await page.getByRole("checkbox", { name: `Select record ${gamma.id}` }).check();
    await page.getByTestId("bulk-bar").getByText("2 selected").waitFor();
    await page.getByTestId("bulk-delete").click();
    const confirmBox = page.getByTestId("confirm");
    await confirmBox.getByText("Delete 2 records?").waitFor();
    await confirmBox.getByTestId("confirm-ok").click();
    await page.waitForFunction(() => document.querySelectorAll("tr.record-row").length === 1);
    const after = await api(server, "/api/collections/items/records?sort=count", { token });
    assert.deepEqual(
      after.items.map((r) => r.id),
      [alpha.id, beta.id],
      "the two selected records are gone on the server, the others stay",
    );

    // Reload keeps the filter and sort.
    await page.reload();
    await page.waitForFunction(() => document.querySelectorAll("tr.record-row").length === 1);
    assert.equal(await page.getByRole("combobox", { name: "Filter records" }).inputValue(), "count > 10");

    // The rejected filter's 400 is the one error the browser logs, by design.
    assert.deepEqual(
      errors.filter((e) => !/Failed to load resource: the server responded with a status of 400/.test(e)),
      [],
    );
  } finally {
    await browser.close();
    await server.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
});

test("records panel: field errors, JSON check, rich text, auth user with password, impersonate, remote changes, unsaved guard", { timeout: 90_000 }, async () => {
  const server = await startServer();
  const browser = await openBrowser();
  const { page, errors } = browser;
  try {
    const token = await superuserToken(server);
    await api(server, "/api/collections", {
      method: "POST",
      token,
      body: {
        name: "notes",
        type: "base",
        fields: [
          { name: "title", type: "text", required: true },
          { name: "body", type: "editor" },
          { name: "data", type: "json" },
          { name: "due", type: "date" },
        ],
      },
    });
    await signIn(page, server);
    await page.goto(`${server.url}/_/#/collections/notes`);
    await page.getByText("No records yet.").waitFor();
    const panel = page.getByTestId("record-panel");

    // A required field left empty: the server's message beside the input, the panel stays.
    await page.getByTestId("new-record").click();
    await panel.waitFor();
    await panel.getByTestId("save-record").click();
    await panel.locator("[data-field=title] .field-error").waitFor();
    assert.match(await panel.locator("[data-field=title] .field-error").innerText(), /blank|required/i);

    // JSON is checked as you type and blocks the save while invalid.
    await panel.locator("#record-field-title").fill("First note");
    await panel.locator("#record-field-data").fill('{"a": ');
    assert.match(await panel.getByTestId("json-status-data").innerText(), /Invalid JSON/);
    await panel.getByTestId("save-record").click();
    await panel.getByTestId("form-error").waitFor();
    await panel.locator("#record-field-data").fill('{"a": [1, 2]}');
    assert.equal(await panel.getByTestId("json-status-data").innerText(), "Valid JSON");

    // Rich text: typed text with bold, and a date in local time.
    await panel.getByRole("textbox", { name: "body" }).click();
    await page.keyboard.type("Plain then ");
    await panel.getByRole("button", { name: "Bold (Ctrl+B)" }).click();
    await page.keyboard.type("strong");
    await panel.locator("#record-field-due").fill("2024-05-06T07:08:09");
    await panel.getByTestId("save-record").click();
    await panel.waitFor({ state: "detached" });
    const [note] = (await api(server, "/api/collections/notes/records", { token })).items;
    assert.equal(note.title, "First note");
    assert.deepEqual(note.data, { a: [1, 2] });
    assert.match(note.body, /Plain then <(b|strong)>strong<\/(b|strong)>/);
    const due = await page.evaluate(() => new Date("2024-05-06T07:08:09").toISOString().replace("T", " "));
    assert.equal(note.due, due, "the local date is stored as UTC");

    // The open record is changed elsewhere: a clean panel shows the new values and says so.
    await page.locator(`tr[data-id="${note.id}"] td[data-field=title]`).click();
    await panel.waitFor();
    await page.waitForFunction(() => location.hash.includes("record="));
    await api(server, `/api/collections/notes/records/${note.id}`, { method: "PATCH", token, body: { title: "Renamed elsewhere" } });
    await panel.getByTestId("remote-notice").getByText(/changed elsewhere/).waitFor();
    assert.equal(await panel.locator("#record-field-title").inputValue(), "Renamed elsewhere");
    // With unsaved changes, the panel warns instead of overwriting them.
    await panel.locator("#record-field-title").fill("My unsaved title");
    await api(server, `/api/collections/notes/records/${note.id}`, { method: "PATCH", token, body: { data: { b: 1 } } });
    await panel.getByRole("alert").getByText(/Saving now overwrites/).waitFor();
    assert.equal(await panel.locator("#record-field-title").inputValue(), "My unsaved title");

    // Closing with unsaved changes asks first; Cancel keeps the panel and the edit.
    await page.keyboard.press("Escape");
    const confirmBox = page.getByTestId("confirm");
    await confirmBox.getByText("Discard unsaved changes?").waitFor();
    await confirmBox.getByRole("button", { name: "Cancel" }).click();
    assert.equal(await panel.locator("#record-field-title").inputValue(), "My unsaved title");
    await panel.getByRole("button", { name: "Close" }).first().click();
    await confirmBox.getByTestId("confirm-ok").click();
    await panel.waitFor({ state: "detached" });
    assert.equal((await api(server, `/api/collections/notes/records/${note.id}`, { token })).title, "Renamed elsewhere");

    // An auth record: mismatched passwords are reported beside the input, then it saves.
    await page.goto(`${server.url}/_/#/collections/users`);
    await page.getByText("No records yet.").waitFor();
    await page.getByTestId("new-record").click();
    await panel.waitFor();
    await panel.locator("#record-field-email").fill("member@example.com");
    await panel.locator("#record-field-password").fill("member-pass-1");
    await panel.locator("#record-field-passwordConfirm").fill("member-pass-2");
    await panel.locator("#record-field-name").fill("Member");
    await panel.getByRole("switch", { name: "Verified" }).check();
    await panel.getByTestId("save-record").click();
    await panel.locator("[data-field=passwordConfirm] .field-error").waitFor();
    await panel.locator("#record-field-passwordConfirm").fill("member-pass-1");
    await panel.getByTestId("save-record").click();
    await panel.waitFor({ state: "detached" });
    const [member] = (await api(server, "/api/collections/users/records", { token })).items;
    assert.equal(member.email, "member@example.com");
    assert.equal(member.verified, true);
    const signedIn = await api(server, "/api/collections/users/auth-with-password", {
      method: "POST",
      body: { identity: "member@example.com", password: "member-pass-1" },
    });
    assert.equal(signedIn.record.id, member.id, "the password set in the panel works");

    // Impersonate: a token that acts as the member.
    await page.locator(`tr[data-id="${member.id}"] td[data-field=email]`).click();
    await panel.waitFor();
    await panel.getByTestId("record-actions").click();
    await page.getByRole("menuitem", { name: /Impersonate/ }).click();
    const dialog = page.getByTestId("impersonate");
    await dialog.getByRole("button", { name: "Generate token" }).click();
    const impersonated = await dialog.getByTestId("impersonate-token").inputValue();
    const asMember = await api(server, "/api/collections/users/auth-refresh", { method: "POST", token: impersonated });
    assert.equal(asMember.record.id, member.id);

    // The two refused saves (blank title, mismatched passwords) are logged by the browser as
    // failed requests; nothing else may be.
    assert.deepEqual(
      errors.filter((e) => !/Failed to load resource: the server responded with a status of 400/.test(e)),
      [],
    );
  } finally {
    await browser.close();
    await server.stop();
  }
});

test("records: batch bulk delete reports the records the server refused; CSV export; column picker", { timeout: 60_000 }, async () => {
  const server = await startServer();
  const browser = await openBrowser();
  const { page, errors } = browser;
  try {
    const token = await superuserToken(server);
    await api(server, "/api/settings", { method: "PATCH", token, body: { batch: { enabled: true, maxRequests: 10 } } });
    const owners = await api(server, "/api/collections", {
      method: "POST",
      token,
      body: { name: "owners", type: "base", fields: [{ name: "name", type: "text", presentable: true }] },
    });
    await api(server, "/api/collections", {
      method: "POST",
      token,
      body: {
        name: "pets",
        type: "base",
        fields: [
          { name: "name", type: "text" },
          { name: "owner", type: "relation", collectionId: owners.id, maxSelect: 1, required: true, cascadeDelete: false },
        ],
      },
    });
    const made = [];
    for (const name of ["Ann", "Bob, \"the\" builder", "Cy"]) {
      made.push(await api(server, "/api/collections/owners/records", { method: "POST", token, body: { name } }));
    }
    // Bob owns a pet through a required relation: deleting Bob is refused.
    await api(server, "/api/collections/pets/records", { method: "POST", token, body: { name: "Rex", owner: made[1].id } });

    await signIn(page, server);
    await page.goto(`${server.url}/_/#/collections/owners?sort=name`);
    await page.waitForFunction(() => document.querySelectorAll("tr.record-row").length === 3);

    // The column picker hides a column, and remembers it after a reload.
    await page.getByTestId("column-picker").click();
    await page.getByRole("dialog").getByRole("checkbox", { name: "id" }).uncheck();
    await page.keyboard.press("Escape");
    await page.waitForFunction(() => !document.querySelector("tr.record-row td[data-field=id]"));
    await page.reload();
    await page.waitForFunction(() => document.querySelectorAll("tr.record-row").length === 3);
    assert.equal(await page.locator("tr.record-row td[data-field=id]").count(), 0);
    assert.equal(await page.locator("tr.record-row td[data-field=name]").count(), 3);

    // CSV export of the whole collection, in the table's order, with quoting.
    await page.getByRole("button", { name: /Export/ }).click();
    const dialog = page.getByTestId("export-dialog");
    await dialog.getByRole("radio", { name: /CSV/ }).check();
    const [download] = await Promise.all([page.waitForEvent("download"), dialog.getByTestId("export-start").click()]);
    assert.match(download.suggestedFilename(), /^owners-\d{8}-\d{6}\.csv$/);
    const csv = readFileSync(await download.path(), "utf8").trim().split("\r\n");
    assert.equal(csv[0], "id,name");
    assert.deepEqual(csv.slice(1), [
      `${made[0].id},Ann`,
      `${made[1].id},"Bob, ""the"" builder"`,
      `${made[2].id},Cy`,
    ]);

    // Select all three and delete: the batch fails as a whole, the dashboard retries one by
    // one, deletes the two it can and keeps the refused one selected with the server's reason.
    const writes = [];
    page.on("request", (r) => {
      if (r.method() !== "GET") writes.push(`${r.method()} ${new URL(r.url()).pathname}`);
    });
    await page.getByRole("checkbox", { name: "Select all on this page" }).check();
    await page.getByTestId("bulk-delete").click();
    await page.getByTestId("confirm").getByText("Delete 3 records?").waitFor();
    await page.getByTestId("confirm-ok").click();
    await page.locator(".toast-error", { hasText: "Deleted 2 of 3" }).waitFor();
    assert.match(await page.locator(".toast-error").innerText(), new RegExp(`${made[1].id}: .*required relation`));
    await page.getByTestId("bulk-bar").getByText("1 selected").waitFor();
    await page.waitForFunction(() => document.querySelectorAll("tr.record-row").length === 1);
    assert.equal(writes.filter((w) => w === "POST /api/batch").length, 1, "one batch was tried first");
    assert.equal(writes.filter((w) => w.startsWith("DELETE /api/collections/owners/records/")).length, 3);
    const left = await api(server, "/api/collections/owners/records", { token });
    assert.deepEqual(
      left.items.map((r) => r.id),
      [made[1].id],
    );

    // The refused batch and the refused single delete are the browser's only logged errors.
    assert.deepEqual(
      errors.filter((e) => !/Failed to load resource: the server responded with a status of 400/.test(e)),
      [],
    );
  } finally {
    await browser.close();
    await server.stop();
  }
});
