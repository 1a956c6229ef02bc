/// <reference path="../pb_data/types.d.ts" />
// Orders belong to a user and are visible to that user only. They are placed through
// POST /api/shop/order (pb_hooks/shop.pb.js), which checks and decrements the stock in one
// transaction; a hook refuses direct creates through the records API. The create rule below
// is a second line of defence should that hook ever be missing: a user may then only create
// orders in their own name.
migrate((app) => {
  const users = app.findCollectionByNameOrId("users");
  const products = app.findCollectionByNameOrId("products");
  const orders = new Collection({
    type: "base",
    name: "orders",
    listRule: "user = @request.auth.id",
    viewRule: "user = @request.auth.id",
    createRule: "@request.auth.id != '' && user = @request.auth.id",
    updateRule: null,
    deleteRule: null,
    fields: [
      { type: "relation", name: "user", required: true, collectionId: users.id, maxSelect: 1, cascadeDelete: false },
      { type: "relation", name: "product", required: true, collectionId: products.id, maxSelect: 1, cascadeDelete: false },
      { type: "number", name: "quantity", required: true, min: 1, onlyInt: true },
      { type: "number", name: "total", required: false, min: 0 },
      { type: "select", name: "status", required: true, values: ["pending", "paid"], maxSelect: 1 },
      { type: "text", name: "paymentRef", max: 200 },
      { type: "autodate", name: "created", onCreate: true },
      { type: "autodate", name: "updated", onCreate: true, onUpdate: true },
    ],
    indexes: [
      "CREATE INDEX `idx_orders_user` ON `orders` (`user`)",
      "CREATE INDEX `idx_orders_product` ON `orders` (`product`)",
    ],
  });
  app.save(orders);
}, (app) => {
  app.delete(app.findCollectionByNameOrId("orders"));
});
