/// <reference path="../pb_data/types.d.ts" />
// Record hooks on the collections created by ../pb_migrations, checked by
// scenarios/hooks-records.mjs (and, for the seed record, hooks-migrations.mjs).

// Validation: a create through the API with a reserved title is refused before anything runs.
onRecordCreateRequest((e) => {
  const title = e.record.getString("title");
  if (title.toLowerCase().startsWith("forbidden")) {
    throw new BadRequestError("title is reserved", {
      title: new ValidationError("title_reserved", "Titles starting with forbidden are reserved"),
    });
  }
  if (title === "plain-error") {
    throw new Error("a plain error in a request hook");
  }
  return e.next();
}, "hk_items");

// A computed field, set before the core work: every save of a new hk_items record (API, route,
// migration) gets its slug from the title.
onRecordCreate((e) => {
  const slug = e.record.getString("title").toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "");
  e.record.set("slug", slug);
  if (e.record.getString("title") === "model-refuses") {
    throw new BadRequestError("refused by the model hook");
  }
  return e.next();
}, "hk_items");

// After a committed create, write another collection.
onRecordAfterCreateSuccess((e) => {
  const audit = new Record(e.app.findCollectionByNameOrId("hk_audit"));
  audit.set("kind", "created");
  audit.set("ref", e.record.id);
  e.app.save(audit);
  return e.next();
}, "hk_items");

// Update hook: the submitted values are already on e.record; original() holds the stored ones.
onRecordUpdateRequest((e) => {
  const before = e.record.original().getString("note");
  e.record.set("note", `${e.record.getString("note")} (was: ${before})`);
  return e.next();
}, "hk_items");

// The list answer can be edited by its request hook.
onRecordsListRequest((e) => {
  e.result.totalItems = 999;
  for (const r of e.records) {
    r.set("label", r.getString("label").toUpperCase());
  }
  return e.next();
}, "hk_view");

// Enrich: guests never see `secret`; everyone gets a computed key.
onRecordEnrich((e) => {
  if (!e.requestInfo.auth) {
    e.record.hide("secret");
  }
  e.record.withCustomData(true);
  e.record.set("labelLength", e.record.getString("label").length);
  return e.next();
}, "hk_view");

// A transaction: saves an item, and with ?fail=1 throws afterwards, which must leave nothing.
routerAdd("POST", "/hk/tx", (e) => {
  const title = e.request.url.query().get("title");
  const fail = e.request.url.query().get("fail") === "1";
  let savedId = "";
  $app.runInTransaction((txApp) => {
    const item = new Record(txApp.findCollectionByNameOrId("hk_items"));
    item.set("title", title);
    txApp.save(item);
    const audit = new Record(txApp.findCollectionByNameOrId("hk_audit"));
    audit.set("kind", "tx");
    audit.set("ref", item.id);
    txApp.save(audit);
    savedId = item.id;
    if (fail) {
      throw new BadRequestError("transaction aborted");
    }
  });
  return e.json(200, { id: savedId, slug: $app.findRecordById("hk_items", savedId).getString("slug") });
});

// The same with a plain Error: the route answers the generic 400 and nothing is kept.
routerAdd("POST", "/hk/tx-plain", (e) => {
  const title = e.request.url.query().get("title");
  $app.runInTransaction((txApp) => {
    const item = new Record(txApp.findCollectionByNameOrId("hk_items"));
    item.set("title", title);
    txApp.save(item);
    throw new Error("plain error inside a transaction");
  });
  return e.json(200, { unreachable: true });
});
