/// <reference path="../pb_data/types.d.ts" />
// Seeds one hk_items record and two hk_view records. The hooks in pb_hooks are registered
// before migrations run, so the hk_items hooks (slug, audit row) fire for this save too.
migrate((app) => {
  const item = new Record(app.findCollectionByNameOrId("hk_items"));
  item.set("title", "Seeded Item");
  item.set("qty", 7);
  item.set("note", "from a migration");
  app.save(item);

  const view = app.findCollectionByNameOrId("hk_view");
  for (const [label, secret] of [["alpha", "s-alpha"], ["beta", "s-beta"]]) {
    const r = new Record(view);
    r.set("label", label);
    r.set("secret", secret);
    app.save(r);
  }
}, null);
