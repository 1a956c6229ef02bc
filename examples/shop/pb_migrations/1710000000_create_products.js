/// <reference path="../pb_data/types.d.ts" />
// The catalogue: anyone may list and view products; only superusers change them (the shop's
// order route changes `stock` from a hook, which is not bound by API rules).
migrate((app) => {
  const products = new Collection({
    type: "base",
    name: "products",
    listRule: "",
    viewRule: "",
    createRule: null,
    updateRule: null,
    deleteRule: null,
    fields: [
      { type: "text", name: "name", required: true, max: 200, presentable: true },
      { type: "number", name: "price", required: false, min: 0 },
      { type: "number", name: "stock", required: false, min: 0, onlyInt: true },
      { type: "autodate", name: "created", onCreate: true },
      { type: "autodate", name: "updated", onCreate: true, onUpdate: true },
    ],
  });
  app.save(products);
}, (app) => {
  app.delete(app.findCollectionByNameOrId("products"));
});
