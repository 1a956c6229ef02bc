// Hooks both servers run in the benchmark: a trivial request hook on `hooked` (a copy of
// `posts` no other workload touches) and a custom JSON route. The other workloads run next
// to them, so they also show what a server with hooks loaded pays where none applies.
onRecordCreateRequest((e) => {
  e.record.set("score", e.record.getInt("score") + 1);
  e.next();
}, "hooked");

routerAdd("GET", "/bench/hello/{name}", (e) => {
  return e.json(200, { hello: e.request.pathValue("name"), n: 1 });
});
