/// <reference path="../pb_data/types.d.ts" />
// The app-level JS API: $security, $http, $os, cron jobs, finders and Record objects, checked by
// scenarios/hooks-app.mjs.

routerAdd("GET", "/hk/security", (e) => {
  const token = $security.createJWT({ id: "abc", n: 1 }, "secret-key", 3600);
  const claims = $security.parseJWT(token, "secret-key");
  let wrongKey = "accepted";
  try {
    $security.parseJWT(token, "another-key");
  } catch (err) {
    wrongKey = "rejected";
  }
  return e.json(200, {
    hs256: $security.hs256("hello", "key"),
    sha256: $security.sha256("hello"),
    md5: $security.md5("hello"),
    equalSame: $security.equal("abc", "abc"),
    equalDifferent: $security.equal("abc", "abd"),
    jwtParts: token.split(".").length,
    claimId: claims.id,
    claimN: claims.n,
    expInAnHour: Math.abs(claims.exp - Math.floor(Date.now() / 1000) - 3600) < 60,
    wrongKey,
    randomLength: $security.randomString(12).length,
    alphabet: $security.randomStringWithAlphabet(8, "a"),
  });
});

// $http.send to the harness's local HTTP server, whose URL both servers get in their env.
routerAdd("GET", "/hk/http", (e) => {
  const base = $os.getenv("COMPAT_HOOKS_HTTP_URL");
  const res = $http.send({
    url: base + "/echo?x=1",
    method: "post",
    body: JSON.stringify({ hello: "world" }),
    headers: { "content-type": "application/json", "x-compat": "yes" },
    timeout: 10,
  });
  const missing = $http.send({ url: base + "/status/404", timeout: 10 });
  return e.json(200, {
    status: res.statusCode,
    json: res.json,
    contentType: res.headers["Content-Type"],
    text: toString(res.body).length > 0,
    missingStatus: missing.statusCode,
    missingJson: missing.json,
  });
});

// A cron job that never fires by itself (1 January, midnight) and is run through the API.
cronAdd("hk_audit_job", "0 0 1 1 *", () => {
  const audit = new Record($app.findCollectionByNameOrId("hk_audit"));
  audit.set("kind", "cron");
  audit.set("ref", "hk_audit_job");
  $app.save(audit);
});
cronAdd("hk_hourly", "@hourly", () => {});

// Finders, with the scenario's own prefix so that rows from other scenarios do not count.
routerAdd("GET", "/hk/find", (e) => {
  const prefix = e.request.url.query().get("prefix");
  const email = e.request.url.query().get("email");
  const list = $app.findRecordsByFilter("hk_items", "title ~ {:prefix} && qty >= {:min}", "-qty", 10, 0,
    { prefix: prefix + "%", min: 2 });
  const firstTwo = $app.findRecordsByFilter("hk_items", "title ~ {:prefix}", "qty", 2, 0, { prefix: prefix + "%" });
  const count = $app.countRecords("hk_items", $dbx.like("title", prefix).match(false, true));
  const countDone = $app.countRecords("hk_items", $dbx.like("title", prefix).match(false, true),
    $dbx.hashExp({ done: true }));
  const byData = $app.findFirstRecordByData("hk_items", "title", prefix + "-3");
  const user = $app.findAuthRecordByEmail("users", email);
  let miss = "found";
  try {
    $app.findFirstRecordByData("hk_items", "title", prefix + "-nope");
  } catch (err) {
    miss = "not found";
  }
  return e.json(200, {
    list: list.map((r) => [r.getString("title"), r.getInt("qty")]),
    firstTwo: firstTwo.map((r) => r.getString("title")),
    count,
    countDone,
    byData: { id: byData.id, title: byData.getString("title"), qty: byData.getInt("qty") },
    user: { id: user.id, email: user.email(), collection: user.collection().name },
    miss,
  });
});

// Record objects built in JS: setters normalize through the fields; auth records hash passwords.
routerAdd("GET", "/hk/record", (e) => {
  const item = new Record($app.findCollectionByNameOrId("hk_items"));
  item.set("title", "built in js");
  item.set("qty", "12");
  item.set("done", "true");
  item.set("unknown", "zzz");
  const before = { isNew: item.isNew(), id: item.id };
  const user = new Record($app.findCollectionByNameOrId("users"));
  user.setEmail("js-user@example.com");
  user.setPassword("correct horse");
  return e.json(200, {
    before,
    title: item.get("title"),
    qty: item.get("qty"),
    qtyString: item.getString("qty"),
    titleInt: item.getInt("title"),
    qtyInt: item.getInt("qty"),
    done: item.getBool("done"),
    doneRaw: item.get("done"),
    unknown: item.get("unknown"),
    missing: item.get("missing"),
    email: user.email(),
    goodPassword: user.validatePassword("correct horse"),
    badPassword: user.validatePassword("wrong horse"),
  });
});

// Saving a JS-built record from a route fires the model hooks (slug), not the request hooks.
routerAdd("POST", "/hk/record", (e) => {
  const data = e.requestInfo().body;
  const item = new Record($app.findCollectionByNameOrId("hk_items"), { title: data.title, qty: data.qty });
  $app.save(item);
  return e.json(200, $app.findRecordById("hk_items", item.id));
});

// The applied JS migrations, as PocketBase records them (base name with extension; the
// system's own rows are left out).
routerAdd("GET", "/hk/migrations", (e) => {
  const rows = arrayOf(new DynamicModel({ file: "" }));
  $app.db().newQuery("SELECT file FROM _migrations WHERE file LIKE '%.js' ORDER BY file").all(rows);
  return e.json(200, rows.map((r) => r.file));
}, $apis.requireSuperuserAuth());

// Messages that are no record events, to the realtime clients subscribed to `hk_news`.
routerAdd("POST", "/hk/broadcast", (e) => {
  const body = e.requestInfo().body;
  const broker = $app.subscriptionsBroker();
  const clients = broker.clients();
  const seen = [];
  for (let id in clients) {
    const client = clients[id];
    if (!client.hasSubscription("hk_news")) continue;
    const auth = client.get("auth");
    seen.push({
      auth: auth ? auth.email() : null,
      subscriptions: Object.keys(client.subscriptions()).sort(),
      hkOnly: Object.keys(client.subscriptions("hk_")).sort(),
      sameId: broker.clientById(id).id() === id,
      discarded: client.isDiscarded(),
    });
    const data = JSON.stringify({ text: body.text, to: auth ? "user" : "guest" });
    client.send(new SubscriptionMessage({ name: "hk_news", data: data }));
  }
  seen.sort((a, b) => String(a.auth).localeCompare(String(b.auth)));
  let missing = "";
  try {
    broker.clientById("nosuchclient");
  } catch (err) {
    missing = String(err);
  }
  const chunks = broker.chunkedClients(1);
  return e.json(200, {
    seen,
    missing,
    counted: broker.totalClients() >= seen.length,
    chunked: chunks.length === Object.keys(clients).length && chunks.every((c) => c.length === 1),
  });
});

// $filepath as Go's path/filepath answers on Unix.
routerAdd("GET", "/hk/filepath", (e) => {
  const cases = ["", ".", "/", "a", "/a/b/c", "/a/b/", "a/../..", "../x/./y//z", "/../a", ".bashrc", "a.b/c", "x.tar.gz", "a//b///"];
  const out = {};
  for (const c of cases) {
    out[c] = [$filepath.base(c), $filepath.dir(c), $filepath.ext(c), $filepath.clean(c), $filepath.isAbs(c), $filepath.split(c)];
  }
  out.join = [$filepath.join(), $filepath.join("", ""), $filepath.join("a", "", "b"), $filepath.join("/", "a"), $filepath.join("a/", "/b/"), $filepath.join("..", "a", "../../b")];
  return e.json(200, out);
});

// Record methods on a new auth record, compared with PocketBase value by value.
routerAdd("GET", "/hk/record/methods", (e) => {
  const out = {};
  const tryit = (k, f) => { try { out[k] = f(); } catch (err) { out[k] = "ERR " + String(err); } };
  const col = $app.findCollectionByNameOrId("users");
  const r = new Record(col);
  tryit("new json", () => JSON.parse(JSON.stringify(r)));
  tryit("set/get", () => { r.set("name", 123); return [r.get("name"), r.getString("name"), r.getInt("name")]; });
  tryit("email", () => { r.setEmail("X@Y.com"); return [r.email(), r.get("email")]; });
  tryit("verified", () => { r.setVerified(true); return r.verified(); });
  tryit("unknown get", () => r.get("nope"));
  tryit("getBool", () => [r.getBool("verified"), r.getBool("name")]);
  tryit("getFloat", () => { r.set("name", "1.5"); return r.getFloat("name"); });
  tryit("getDateTime", () => r.getDateTime("created").isZero());
  tryit("getStringSlice", () => r.getStringSlice("name"));
  tryit("isNew", () => r.isNew());
  tryit("collection", () => r.collection().name);
  tryit("tableName", () => r.tableName());
  tryit("pk", () => typeof r.pk());
  tryit("id", () => r.id);
  tryit("password", () => { r.setPassword("1234567890"); return [r.validatePassword("1234567890"), r.validatePassword("x"), r.get("password")]; });
  tryit("original", () => r.original().get("name"));
  tryit("clone", () => r.clone().get("name"));
  tryit("publicExport", () => Object.keys(r.publicExport()).sort());
  tryit("hide", () => { r.hide("name"); return Object.keys(r.publicExport()).sort(); });
  tryit("unhide", () => { r.unhide("name"); return Object.keys(r.publicExport()).sort(); });
  tryit("withCustomData", () => { r.withCustomData(true); r.set("custom", 1); return JSON.parse(JSON.stringify(r)).custom; });
  tryit("fieldsData", () => Object.keys(r.fieldsData()).sort());
  tryit("customData", () => r.customData());
  tryit("tokenKey", () => typeof r.tokenKey());
  tryit("expandedOne", () => r.expandedOne("x"));
  tryit("expandedAll", () => r.expandedAll("x"));
  tryit("isSuperuser", () => r.isSuperuser());
  tryit("load", () => { r.load({ name: "L", extra: 5 }); return [r.get("name"), r.get("extra")]; });
  return e.json(200, out);
});

// More finders, $dbx.not and friends, isCollectionNameUnique, on a collection of their own.
routerAdd("GET", "/hk/find/more", (e) => {
  const out = {};
  const tryit = (k, f) => { try { out[k] = f(); } catch (err) { out[k] = "ERR " + String(err); } };
  let col = null;
  try { col = $app.findCollectionByNameOrId("hk_m4items"); } catch (_) {}
  if (!col) {
    col = new Collection({ name: "hk_m4items", type: "base", fields: [{ name: "title", type: "text" }, { name: "n", type: "number" }] });
    $app.save(col);
    for (let i = 1; i <= 4; i++) { const r = new Record(col); r.set("id", "hkm4item000000" + i); r.set("title", "t" + i); r.set("n", i); $app.save(r); }
  }
  tryit("byFilter", () => $app.findRecordsByFilter("hk_m4items", "n > {:min}", "-n", 2, 1, { min: 1 }).map((r) => r.get("title")));
  tryit("byFilter noLimit", () => $app.findRecordsByFilter("hk_m4items", "n > 0", "n", 0, 0).length);
  tryit("byFilter bad", () => $app.findRecordsByFilter("hk_m4items", "nope > 1"));
  tryit("first", () => $app.findFirstRecordByFilter("hk_m4items", "title = {:t}", { t: "t3" }).get("n"));
  tryit("first miss", () => $app.findFirstRecordByFilter("hk_m4items", "title = 'zz'"));
  tryit("byData", () => $app.findFirstRecordByData("hk_m4items", "n", 2).get("title"));
  tryit("byData miss", () => $app.findFirstRecordByData("hk_m4items", "n", 99));
  tryit("allByData", () => $app.findAllRecords("hk_m4items", $dbx.hashExp({ n: 2 })).map((r) => r.id));
  tryit("byIds", () => $app.findRecordsByIds("hk_m4items", ["hkm4item0000001", "hkm4item0000003", "nope"]).map((r) => r.id).sort());
  tryit("count", () => $app.countRecords("hk_m4items", $dbx.exp ? $dbx.hashExp({ n: 1 }) : null));
  tryit("countAll", () => $app.countRecords("hk_m4items"));
  tryit("byId miss", () => $app.findRecordById("hk_m4items", "nope"));
  tryit("col miss", () => $app.findCollectionByNameOrId("nope_col"));
  tryit("unique", () => [$app.isCollectionNameUnique("hk_m4items"), $app.isCollectionNameUnique("zzz")]);
  tryit("cached", () => $app.findCachedCollectionByNameOrId("hk_m4items").name);
  tryit("allCols", () => $app.findAllCollections("base").map((c) => c.name).filter((n) => n === "hk_m4items"));
  tryit("like", () => $app.findAllRecords("hk_m4items", $dbx.like("title", "t1")).length);
  tryit("in", () => $app.findAllRecords("hk_m4items", $dbx.in("n", 1, 2)).length);
  tryit("and", () => $app.findAllRecords("hk_m4items", $dbx.and($dbx.hashExp({ n: 1 }), $dbx.hashExp({ title: "t1" }))).length);
  tryit("not", () => $app.findAllRecords("hk_m4items", $dbx.not($dbx.hashExp({ n: 1 }))).length);
  tryit("between", () => $app.findAllRecords("hk_m4items", $dbx.between("n", 2, 3)).length);
  return e.json(200, out);
});
routerAdd("GET", "/hk/find/not", (e) => {
  const out = {};
  const tryit = (k, f) => { try { out[k] = f(); } catch (err) { out[k] = "ERR " + String(err); } };
  const ids = (x) => $app.findAllRecords("hk_m4items", x).map((r) => r.get("n")).sort();
  tryit("not hash", () => ids($dbx.not($dbx.hashExp({ n: 1 }))));
  tryit("not hash2", () => ids($dbx.not($dbx.hashExp({ n: 1, title: "t1" }))));
  tryit("not hash in", () => ids($dbx.not($dbx.hashExp({ n: [1, 2] }))));
  tryit("not like", () => ids($dbx.not($dbx.like("title", "t1"))));
  tryit("not like match", () => ids($dbx.not($dbx.like("title", "t").match(true, false))));
  tryit("not in", () => ids($dbx.not($dbx.in("n", 1, 3))));
  tryit("not notIn", () => ids($dbx.not($dbx.notIn("n", 1, 3))));
  tryit("not between", () => ids($dbx.not($dbx.between("n", 2, 3))));
  tryit("notBetween", () => ids($dbx.notBetween("n", 2, 3)));
  tryit("not and", () => ids($dbx.not($dbx.and($dbx.hashExp({ n: 1 }), $dbx.hashExp({ title: "t1" })))));
  tryit("not or", () => ids($dbx.not($dbx.or($dbx.hashExp({ n: 1 }), $dbx.hashExp({ n: 2 })))));
  tryit("not not", () => ids($dbx.not($dbx.not($dbx.hashExp({ n: 4 })))));
  tryit("unique", () => [$app.isCollectionNameUnique("hk_m4items"), $app.isCollectionNameUnique("HK_M4ITEMS"), $app.isCollectionNameUnique("zzz"), $app.isCollectionNameUnique("hk_m4items", $app.findCollectionByNameOrId("hk_m4items").id)]);
  return e.json(200, out);
});

// $app.store() beyond get and set.
routerAdd("GET", "/hk/store", (e) => {
  const s = $app.store();
  s.set("hk_a", 1);
  const limited = [s.setIfLessThanLimit("hk_a", 2, 0), s.setIfLessThanLimit("hk_new", 1, 0), s.get("hk_a")];
  const got = s.getOrSet("hk_c", () => 5);
  const values = s.values().length >= 2;
  s.remove("hk_a");
  return e.json(200, { limited, got, values, has: s.has("hk_a"), c: s.get("hk_c") });
});
