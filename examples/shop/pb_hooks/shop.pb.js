/// <reference path="../pb_data/types.d.ts" />
// The shop's server-side logic. Every handler is self-contained: PocketBase (and Plinth, to stay
// compatible) recompiles each handler from its own source, so nothing defined at the top level
// of this file is visible inside a handler.

// (a) Place an order: POST /api/shop/order {"product": "<id>", "quantity": N} as a signed-in
// user. Reading the product, checking and decrementing its stock and creating the order happen
// in ONE transaction, so concurrent buyers can never oversell.
routerAdd("POST", "/api/shop/order", (e) => {
  const body = e.requestInfo().body;
  const productId = typeof body.product === "string" ? body.product : "";
  const quantity = body.quantity === undefined ? 1 : body.quantity;
  if (!productId) {
    throw new BadRequestError("Missing product.", {
      product: new ValidationError("validation_required", "Cannot be blank."),
    });
  }
  if (typeof quantity !== "number" || !Number.isInteger(quantity) || quantity < 1 || quantity > 1000) {
    throw new BadRequestError("Quantity must be a whole number between 1 and 1000.", {
      quantity: new ValidationError("validation_invalid_quantity", "Must be a whole number between 1 and 1000."),
    });
  }

  let order = null;
  $app.runInTransaction((txApp) => {
    let product;
    try {
      product = txApp.findRecordById("products", productId);
    } catch (err) {
      throw new NotFoundError("Product not found.");
    }
    const stock = product.getInt("stock");
    if (stock < quantity) {
      throw new BadRequestError(`Only ${stock} left in stock.`);
    }
    product.set("stock", stock - quantity);
    txApp.save(product);

    order = new Record(txApp.findCollectionByNameOrId("orders"));
    order.set("user", e.auth.id);
    order.set("product", product.id);
    order.set("quantity", quantity);
    // Cents, to keep 0.1 + 0.2 out of the totals.
    order.set("total", Math.round(product.getFloat("price") * 100 * quantity) / 100);
    order.set("status", "pending");
    txApp.save(order);
  });
  return e.json(200, order);
}, $apis.requireAuth("users"));

// (b) The payment provider's callback: POST /api/shop/payment-callback with the raw JSON body
// {"order": "<id>", "paymentRef": "..."} and the header X-Shop-Signature: hex HMAC-SHA256 of the
// raw body with SHOP_WEBHOOK_SECRET. A bad signature is a 401; a second call for a paid order
// changes nothing and says so.
routerAdd("POST", "/api/shop/payment-callback", (e) => {
  const secret = $os.getenv("SHOP_WEBHOOK_SECRET");
  if (!secret) {
    throw new InternalServerError("The payment callback is not configured.");
  }
  // Read the raw body once: the signature covers these exact bytes.
  const raw = toString(e.request.body);
  const signature = (e.request.header.get("X-Shop-Signature") || "").trim().toLowerCase();
  const expected = $security.hs256(raw, secret);
  if (!signature || !$security.equal(signature, expected)) {
    throw new UnauthorizedError("Invalid signature.");
  }

  let payload;
  try {
    payload = JSON.parse(raw);
  } catch (err) {
    throw new BadRequestError("The body must be JSON.");
  }
  const orderId = payload && typeof payload.order === "string" ? payload.order : "";
  const paymentRef = payload && typeof payload.paymentRef === "string" ? payload.paymentRef : "";
  if (!orderId || !paymentRef) {
    throw new BadRequestError("Missing order or paymentRef.");
  }

  let result = null;
  $app.runInTransaction((txApp) => {
    let order;
    try {
      order = txApp.findRecordById("orders", orderId);
    } catch (err) {
      throw new NotFoundError("Order not found.");
    }
    if (order.getString("status") === "paid") {
      result = { id: order.id, status: "paid", paymentRef: order.getString("paymentRef"), alreadyPaid: true };
      return;
    }
    order.set("status", "paid");
    order.set("paymentRef", paymentRef);
    txApp.save(order);
    result = { id: order.id, status: "paid", paymentRef, alreadyPaid: false };
  });
  return e.json(200, result);
});

// (c) Orders only come through POST /api/shop/order: refuse creates through the records API,
// for everyone (superusers included; the route saves through $app, which fires no request hook).
onRecordCreateRequest((e) => {
  throw new ForbiddenError("Orders are placed through POST /api/shop/order.");
}, "orders");
