/// <reference path="../pb_data/types.d.ts" />
// Custom routes, middlewares, responses and errors, checked by scenarios/hooks-routes.mjs.
// Every handler is self-contained: PocketBase recompiles each one from its source, so
// top-level bindings are not visible inside handlers.

// Global middlewares record their label in the request store, only on /hk/seq so that no
// other route is affected. Priorities: lower runs first; ties keep globals before the route's.
routerUse((e) => {
  if (e.request.url.path === "/hk/seq") e.set("seq", [...(e.get("seq") || []), "g0"]);
  return e.next();
});
routerUse(new Middleware((e) => {
  if (e.request.url.path === "/hk/seq") e.set("seq", [...(e.get("seq") || []), "g-1"]);
  return e.next();
}, -1));
routerUse(new Middleware((e) => {
  if (e.request.url.path === "/hk/seq") {
    // Runs before PocketBase's auth-token loader (-1020), so no auth is known yet.
    e.set("seq", [...(e.get("seq") || []), "g-2000 auth=" + (e.auth ? "yes" : "no")]);
  }
  return e.next();
}, -2000));

routerAdd("GET", "/hk/seq", (e) => {
  const seq = [...(e.get("seq") || []), "handler auth=" + (e.auth ? e.auth.collection().name : "none")];
  return e.json(200, { seq });
}, (e) => {
  e.set("seq", [...(e.get("seq") || []), "r0"]);
  return e.next();
}, new Middleware((e) => {
  e.set("seq", [...(e.get("seq") || []), "r-5"]);
  return e.next();
}, -5), new Middleware((e) => {
  e.set("seq", [...(e.get("seq") || []), "r10"]);
  return e.next();
}, 10));

// A middleware that answers by itself without calling e.next(): the handler never runs.
routerAdd("GET", "/hk/short-circuit", (e) => {
  return e.json(200, { reached: "handler" });
}, (e) => {
  if (e.request.url.query().get("stop") === "1") {
    return e.json(403, { reached: "middleware" });
  }
  return e.next();
});

// Auth middlewares. The answer names who got through.
routerAdd("GET", "/hk/auth/any", (e) => e.json(200, { collection: e.auth.collection().name }),
  $apis.requireAuth());
routerAdd("GET", "/hk/auth/users", (e) => e.json(200, { collection: e.auth.collection().name }),
  $apis.requireAuth("users"));
routerAdd("GET", "/hk/auth/superuser", (e) => e.json(200, { collection: e.auth.collection().name }),
  $apis.requireSuperuserAuth());
routerAdd("GET", "/hk/auth/guest", (e) => e.json(200, { guest: e.auth === null }),
  $apis.requireGuestOnly());

// Path parameters and the request info.
routerAdd("POST", "/hk/info/{name}/{rest...}", (e) => {
  const info = e.requestInfo();
  return e.json(200, {
    name: e.request.pathValue("name"),
    rest: e.request.pathValue("rest"),
    missing: e.request.pathValue("nosuch"),
    method: info.method,
    query: info.query,
    body: info.body,
    header: info.headers["x_custom_header"] ?? null,
    auth: info.auth ? info.auth.collection().name : null,
    superuser: e.hasSuperuserAuth(),
    urlQuery: e.request.url.query().get("a"),
    header2: e.request.header.get("X-Custom-Header"),
  });
});

// Response helpers.
routerAdd("GET", "/hk/resp/json", (e) => e.json(201, { a: 1, list: [1, "two", null], nested: { ok: true } }));
routerAdd("GET", "/hk/resp/string", (e) => e.string(202, "plain text"));
routerAdd("GET", "/hk/resp/html", (e) => e.html(200, "<p>hello</p>"));
routerAdd("DELETE", "/hk/resp/nocontent", (e) => e.noContent(204));
routerAdd("GET", "/hk/resp/redirect", (e) => e.redirect(307, "/hk/resp/json"));
routerAdd("GET", "/hk/resp/nothing", (e) => {});
routerAdd("GET", "/hk/resp/async", async (e) => e.json(200, { async: true }));
routerAdd("GET", "/hk/resp/nocontent-get", (e) => e.noContent(204));

// A subtree: its root without the slash is Go's redirect to the slash.
routerAdd("GET", "/hk/tree/{path...}", (e) => e.string(200, "path=" + e.request.pathValue("path")));

// Error classes and what PocketBase answers for them.
routerAdd("GET", "/hk/err/bad", (e) => { throw new BadRequestError("x"); });
routerAdd("GET", "/hk/err/bad-sentence", (e) => { throw new BadRequestError("hello world"); });
routerAdd("GET", "/hk/err/bad-default", (e) => { throw new BadRequestError(); });
routerAdd("GET", "/hk/err/teapot", (e) => {
  throw new ApiError(418, "teapot", { title: new ValidationError("invalid_title", "Bad title") });
});
routerAdd("GET", "/hk/err/unauthorized", (e) => { throw new UnauthorizedError(); });
routerAdd("GET", "/hk/err/forbidden", (e) => { throw new ForbiddenError("not for you"); });
routerAdd("GET", "/hk/err/notfound", (e) => { throw new NotFoundError(); });
routerAdd("GET", "/hk/err/toomany", (e) => { throw new TooManyRequestsError(); });
routerAdd("GET", "/hk/err/internal", (e) => { throw new InternalServerError("boom?"); });
routerAdd("GET", "/hk/err/plain", (e) => { throw new Error("x"); });
routerAdd("GET", "/hk/err/reference", (e) => { return nonExistentFunction(); });
routerAdd("GET", "/hk/err/returned", (e) => new BadRequestError("returned"));
routerAdd("GET", "/hk/err/missing-record", (e) => {
  return e.json(200, $app.findRecordById("hk_items", "doesnotexist000"));
});
routerAdd("GET", "/hk/err/caught", (e) => {
  try {
    $app.findRecordById("hk_items", "doesnotexist000");
    return e.json(200, { caught: false });
  } catch (err) {
    return e.json(200, { caught: true, isError: err instanceof Error || typeof err === "object" });
  }
});
routerAdd("GET", "/hk/err/async", async (e) => { throw new BadRequestError("async throw"); });

// require() of a CommonJS module next to the hooks.
routerAdd("GET", "/hk/require", (e) => {
  const lib = require(`${__hooks}/lib.js`);
  return e.json(200, { greet: lib.greet("compat"), slug: lib.slugify("Hello, World!") });
});

// Cookies as Go writes them, and `undefined` in a JSON answer (null, as PocketBase converts it).
routerAdd("GET", "/hk/resp/cookies", (e) => {
  e.setCookie(new Cookie({ name: "a", value: "has space", path: "/x", domain: ".example.com", maxAge: -1, secure: true, httpOnly: true, sameSite: 2 }));
  e.setCookie(new Cookie({ name: "b", value: "v;\"q", maxAge: 60, sameSite: 1, expires: new Date(Date.UTC(2030, 0, 2, 3, 4, 5)) }));
  e.setCookie(new Cookie({ name: "d", value: "1", expires: new DateTime("2030-01-02 03:04:05.000Z") }));
  e.setCookie({ name: "c", value: "x,y", sameSite: 4 });
  const info = e.requestInfo();
  return e.json(200, { u: undefined, n: null, nested: { u: undefined }, arr: [undefined, 1], missingHeader: info.headers["x_nope"] });
});

// $apis.bodyLimit on a route: 413 past the limit, counted in bytes.
routerAdd("POST", "/hk/limited", (e) => e.json(200, { ok: true }), $apis.bodyLimit(10));
