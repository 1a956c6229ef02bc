#!/usr/bin/env node
// A tiny HTTP server on a free loopback port, the target of the hook scenarios' `$http.send`.
// Started by run.sh before the hook servers (which get its URL in COMPAT_HOOKS_HTTP_URL);
// prints `http://127.0.0.1:PORT` on stdout once listening.
//   POST/GET /echo...     → 200 JSON {method, path, query, contentType, xCompat, body}
//   GET /status/NNN       → NNN JSON {status: NNN, echo: true}
import http from 'node:http';

const server = http.createServer((req, res) => {
  let raw = '';
  req.setEncoding('utf8');
  req.on('data', (c) => { raw += c; });
  req.on('end', () => {
    const url = new URL(req.url, 'http://localhost');
    const status = /^\/status\/(\d{3})$/.exec(url.pathname);
    let body;
    if (status) {
      body = { status: Number(status[1]), echo: true };
    } else if (url.pathname.startsWith('/echo')) {
      let parsed = raw;
      try { parsed = JSON.parse(raw); } catch { /* keep the text */ }
      body = {
        method: req.method,
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        contentType: req.headers['content-type'] ?? null,
        xCompat: req.headers['x-compat'] ?? null,
        body: parsed,
      };
    } else {
      body = { status: 404, echo: true };
    }
    res.writeHead(status ? Number(status[1]) : (body.status === 404 ? 404 : 200),
      { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  });
});
server.listen(0, '127.0.0.1', () => {
  console.log(`http://127.0.0.1:${server.address().port}`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)));
