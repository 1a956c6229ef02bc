/// <reference path="../pb_data/types.d.ts" />
// Creates the collections the hook scenarios use: hk_items (the collection the record hooks
// watch), hk_audit (written by hooks, cron jobs and transactions) and hk_view (list and enrich
// hooks). Observed through the API by scenarios/hooks-migrations.mjs.
migrate((app) => {
  const items = new Collection({
    type: "base",
    name: "hk_items",
    listRule: "",
    viewRule: "",
    createRule: "",
    updateRule: "",
    deleteRule: null,
    fields: [
      { type: "text", name: "title", required: true, max: 100 },
      { type: "number", name: "qty", min: 0 },
      { type: "bool", name: "done" },
      { type: "text", name: "slug" },
      { type: "autodate", name: "created", onCreate: true },
      { type: "autodate", name: "updated", onCreate: true, onUpdate: true },
    ],
    indexes: ["CREATE INDEX `idx_hk_items_title` ON `hk_items` (`title`)"],
  });
  app.save(items);

  const audit = new Collection({
    type: "base",
    name: "hk_audit",
    listRule: "",
    viewRule: "",
    fields: [
      { type: "text", name: "kind" },
      { type: "text", name: "ref" },
    ],
  });
  app.save(audit);

  const view = new Collection({
    type: "base",
    name: "hk_view",
    listRule: "",
    viewRule: "",
    fields: [
      { type: "text", name: "label" },
      { type: "text", name: "secret" },
    ],
  });
  app.save(view);
}, (app) => {
  for (const name of ["hk_view", "hk_audit", "hk_items"]) {
    app.delete(app.findCollectionByNameOrId(name));
  }
});
