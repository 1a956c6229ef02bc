/// <reference path="../pb_data/types.d.ts" />
// Alters hk_items: adds a `note` field and narrows the update rule to signed-in users.
migrate((app) => {
  const items = app.findCollectionByNameOrId("hk_items");
  items.fields.add(new TextField({ name: "note", max: 50 }));
  items.updateRule = "@request.auth.id != ''";
  app.save(items);
}, (app) => {
  const items = app.findCollectionByNameOrId("hk_items");
  items.fields.removeByName("note");
  items.updateRule = "";
  app.save(items);
});
