#!/usr/bin/env node
// End-to-end check of the shop example against a server binary (Plinth or PocketBase):
//
//   node examples/shop/check.mjs BIN        # e.g. target/debug/plinth, or "$(command -v pocketbase)"
//
// Starts BIN on a fresh temp dir with copies of pb_hooks/ and pb_migrations/, creates a
// superuser, USERS users (default 20) and a product with stock 10, fires 200 concurrent
// orders of quantity 1 (each user buying in parallel), and asserts: exactly 10 succeed, the
// stock ends at 0, every refusal is a 400 "Only 0 left in stock." (a PocketBase-shaped "busy"
// error is reported and tolerated only with SHOP_ALLOW_BUSY=1), each order is visible to its
// owner only, direct creates are refused, and the payment callback accepts a good signature
// (idempotently) and refuses a bad one. Prints timings. Exit 0 on success, 1 on a failed
// check, 2 when the server does not start. Needs Node 20+ and nothing else.
import { spawn, spawnSync } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BIN = process.argv[2];
if (!BIN) {
  console.error('usage: node examples/shop/check.mjs BIN');
  process.exit(2);
}
const USERS = Number(process.env.USERS ?? 20);
const ORDERS = Number(process.env.ORDERS ?? 200);
const STOCK = 10;
const PRICE = 2.5;
const EMAIL = 'shop-admin@example.com';
const PASSWORD = 'shop-Passw0rd!123';
const SECRET = randomBytes(24).toString('hex');

let failures = 0;
function check(ok, what, detail) {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}${!ok && detail !== undefined ? `: ${JSON.stringify(detail)}` : ''}`);
  if (!ok) failures++;
  return ok;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'shop-check-'));
// Copies, so that nothing the server writes next to them (e.g. an automigrate file) lands in
// the repository.
cpSync(path.join(HERE, 'pb_hooks'), path.join(dir, 'pb_hooks'), { recursive: true });
cpSync(path.join(HERE, 'pb_migrations'), path.join(dir, 'pb_migrations'), { recursive: true });
const dataDir = path.join(dir, 'pb_data');
const hookArgs = [
  `--hooksDir=${path.join(dir, 'pb_hooks')}`,
  `--migrationsDir=${path.join(dir, 'pb_migrations')}`,
  '--hooksWatch=false',
];
let server = null;
function cleanup() {
  if (server && server.exitCode === null) server.kill('SIGTERM');
  if (process.env.SHOP_KEEP !== '1') rmSync(dir, { recursive: true, force: true });
  else console.log(`kept ${dir}`);
}
process.on('SIGINT', () => { cleanup(); process.exit(130); });

async function main() {
  const env = { ...process.env, SHOP_WEBHOOK_SECRET: SECRET };
  const up = spawnSync(BIN, ['superuser', 'upsert', EMAIL, PASSWORD, `--dir=${dataDir}`, ...hookArgs],
    { cwd: dir, env, encoding: 'utf8' });
  if (up.status !== 0) {
    console.error(`superuser upsert failed (${up.status}):\n${up.stdout}${up.stderr}`);
    return 2;
  }
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const t0 = Date.now();
  const log = [];
  server = spawn(BIN, ['serve', `--http=127.0.0.1:${port}`, `--dir=${dataDir}`, ...hookArgs],
    { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  server.stdout.on('data', (d) => log.push(String(d)));
  server.stderr.on('data', (d) => log.push(String(d)));
  let ready = false;
  for (let i = 0; i < 300 && server.exitCode === null; i++) {
    try {
      if ((await fetch(`${base}/api/health`)).status === 200) { ready = true; break; }
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  if (!ready) {
    console.error(`the server did not start (exit ${server.exitCode}):\n${log.join('').slice(-3000)}`);
    return 2;
  }
  console.log(`server ready in ${Date.now() - t0} ms on ${base}`);

  async function call(method, p, { json, body, token, headers = {} } = {}) {
    const h = { ...headers };
    if (json !== undefined) {
      body = JSON.stringify(json);
      h['Content-Type'] = 'application/json';
    }
    if (token) h.Authorization = token;
    const started = performance.now();
    const res = await fetch(base + p, { method, headers: h, body, signal: AbortSignal.timeout(60000) });
    const text = await res.text();
    let parsed = null;
    try { parsed = text ? JSON.parse(text) : null; } catch { parsed = { nonJson: text.slice(0, 200) }; }
    return { status: res.status, body: parsed, ms: performance.now() - started };
  }
  async function must(method, p, opts, status = 200) {
    const r = await call(method, p, opts);
    if (r.status !== status) throw new Error(`${method} ${p}: expected ${status}, got ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  }

  const su = (await must('POST', '/api/collections/_superusers/auth-with-password',
    { json: { identity: EMAIL, password: PASSWORD } })).token;

  // Users: created and signed in a few at a time (password hashing is deliberately slow).
  let t = Date.now();
  const users = [];
  for (let i = 0; i < USERS; i += 10) {
    const batch = [];
    for (let j = i; j < Math.min(USERS, i + 10); j++) {
      batch.push((async () => {
        const email = `buyer${j}@example.com`;
        const password = 'buyer-pass-123';
        const rec = await must('POST', '/api/collections/users/records',
          { token: su, json: { email, password, passwordConfirm: password } });
        const auth = await must('POST', '/api/collections/users/auth-with-password',
          { json: { identity: email, password } });
        return { id: rec.id, token: auth.token };
      })());
    }
    users.push(...await Promise.all(batch));
  }
  console.log(`${USERS} users created and signed in in ${Date.now() - t} ms`);

  const product = await must('POST', '/api/collections/products/records',
    { token: su, json: { name: 'Rubber duck', price: PRICE, stock: STOCK } });
  const other = await must('POST', '/api/collections/products/records',
    { token: su, json: { name: 'Spare duck', price: 4, stock: 3 } });

  // Rules and validation first.
  const guestOrder = await call('POST', '/api/shop/order', { json: { product: product.id, quantity: 1 } });
  check(guestOrder.status === 401, 'a guest cannot order (401)', guestOrder);
  const suOrder = await call('POST', '/api/shop/order', { token: su, json: { product: product.id, quantity: 1 } });
  check(suOrder.status === 403, 'a superuser is not a buyer (403)', suOrder);
  const zero = await call('POST', '/api/shop/order', { token: users[0].token, json: { product: product.id, quantity: 0 } });
  check(zero.status === 400 && zero.body?.data?.quantity, 'quantity 0 is refused (400, quantity error)', zero);
  const missing = await call('POST', '/api/shop/order', { token: users[0].token, json: { product: 'nosuchproduct00', quantity: 1 } });
  check(missing.status === 404 && missing.body?.message === 'Product not found.', 'an unknown product is a 404', missing);
  const tooMany = await call('POST', '/api/shop/order', { token: users[0].token, json: { product: other.id, quantity: 4 } });
  check(tooMany.status === 400 && tooMany.body?.message === 'Only 3 left in stock.',
    'more than the stock is refused with "Only 3 left in stock."', tooMany.body);

  // The rush: ORDERS concurrent orders of 1 for a stock of 10.
  t = performance.now();
  const results = await Promise.all(Array.from({ length: ORDERS }, (_, i) =>
    call('POST', '/api/shop/order', { token: users[i % users.length].token, json: { product: product.id, quantity: 1 } })
      .catch((e) => ({ status: 0, body: { error: String(e) }, ms: performance.now() - t }))));
  const wall = performance.now() - t;
  const lat = results.map((r) => r.ms).sort((a, b) => a - b);
  const pct = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))].toFixed(0);
  const byAnswer = {};
  for (const r of results) {
    const key = `${r.status} ${r.status === 200 ? 'ok' : r.body?.message ?? JSON.stringify(r.body)}`;
    byAnswer[key] = (byAnswer[key] ?? 0) + 1;
  }
  console.log(`${ORDERS} concurrent orders in ${wall.toFixed(0)} ms (latency p50 ${pct(0.5)} ms, ` +
    `p95 ${pct(0.95)} ms, max ${pct(1)} ms); answers: ${JSON.stringify(byAnswer)}`);
  const ok = results.filter((r) => r.status === 200);
  const stockRefusals = results.filter((r) => r.status === 400 && /^Only \d+ left in stock\.$/.test(r.body?.message));
  const busy = results.filter((r) => r.status !== 200 && !stockRefusals.includes(r));
  check(ok.length === STOCK, `exactly ${STOCK} orders succeed`, ok.length);
  check(stockRefusals.every((r) => r.body.message === 'Only 0 left in stock.' &&
    JSON.stringify(r.body.data) === '{}' && r.body.status === 400),
  'every stock refusal is 400 {"message":"Only 0 left in stock.","data":{}}');
  const shaped = (r) => r.body && typeof r.body.message === 'string' && r.body.status === r.status && r.body.data;
  if (busy.length) console.log(`other refusals: ${JSON.stringify(busy.slice(0, 3).map((r) => [r.status, r.body]))}`);
  check(busy.length === 0 || (process.env.SHOP_ALLOW_BUSY === '1' && busy.every(shaped)),
    'no refusal other than the stock message', busy.length);
  check(ok.every((r) => r.body.status === 'pending' && r.body.quantity === 1 && r.body.total === PRICE &&
    r.body.product === product.id && r.body.paymentRef === ''),
  'each order is pending, quantity 1, total = price, no paymentRef', ok[0]?.body);

  const after = await must('GET', `/api/collections/products/records/${product.id}`);
  check(after.stock === 0, 'the stock ends at 0', after.stock);
  const all = await must('GET', `/api/collections/orders/records?perPage=500&filter=${encodeURIComponent(`product='${product.id}'`)}`, { token: su });
  check(all.totalItems === STOCK, `${STOCK} orders stored`, all.totalItems);
  check(new Set(ok.map((r) => r.body.id)).size === STOCK && ok.every((r) => all.items.some((o) => o.id === r.body.id)),
    'the stored orders are the ones answered');

  // Visibility: the owner sees their orders, nobody else does.
  const first = ok[0].body;
  const owner = users.find((u) => u.id === first.user);
  const stranger = users.find((u) => u.id !== first.user);
  const own = await must('GET', '/api/collections/orders/records?perPage=500', { token: owner.token });
  check(own.items.length > 0 && own.items.every((o) => o.user === owner.id), 'an owner lists only their own orders', own.totalItems);
  const seen = await call('GET', `/api/collections/orders/records/${first.id}`, { token: stranger.token });
  check(seen.status === 404, "another user cannot view someone's order (404)", seen.status);
  const guestList = await must('GET', '/api/collections/orders/records');
  check(guestList.totalItems === 0, 'a guest lists no orders', guestList.totalItems);

  // Direct creates through the records API are refused by the hook.
  const direct = await call('POST', '/api/collections/orders/records', {
    token: owner.token,
    json: { user: owner.id, product: product.id, quantity: 1, total: 0, status: 'paid' },
  });
  check(direct.status === 403 && direct.body?.message === 'Orders are placed through POST /api/shop/order.',
    'a direct create by the owner is refused (403)', direct.body);
  const directSu = await call('POST', '/api/collections/orders/records', {
    token: su, json: { user: owner.id, product: product.id, quantity: 1, total: 0, status: 'paid' },
  });
  check(directSu.status === 403, 'a direct create by a superuser is refused too (403)', directSu.body);
  const foreign = await call('POST', '/api/collections/orders/records', {
    token: owner.token, json: { user: stranger.id, product: product.id, quantity: 1, status: 'paid' },
  });
  check(foreign.status === 400 && foreign.body?.message === 'Failed to create record.',
    "creating in someone else's name fails the create rule first (400)", foreign.body);

  // The payment callback.
  const sign = (raw) => createHmac('sha256', SECRET).update(raw).digest('hex');
  const pay = (raw, signature) => call('POST', '/api/shop/payment-callback', {
    body: raw,
    headers: { 'Content-Type': 'application/json', ...(signature === undefined ? {} : { 'X-Shop-Signature': signature }) },
  });
  const raw = JSON.stringify({ order: first.id, paymentRef: 'pay_0001' });
  const paid = await pay(raw, sign(raw));
  check(paid.status === 200 && paid.body?.status === 'paid' && paid.body?.alreadyPaid === false,
    'a good signature marks the order paid', paid.body);
  const again = await pay(raw, sign(raw));
  check(again.status === 200 && again.body?.alreadyPaid === true && again.body?.paymentRef === 'pay_0001',
    'a second callback changes nothing (idempotent)', again.body);
  const second = ok[1].body;
  const raw2 = JSON.stringify({ order: second.id, paymentRef: 'pay_0002' });
  const bad = await pay(raw2, sign(raw2).replace(/^./, (c) => (c === '0' ? '1' : '0')));
  check(bad.status === 401 && bad.body?.message === 'Invalid signature.', 'a bad signature is a 401', bad.body);
  const unsigned = await pay(raw2);
  check(unsigned.status === 401, 'a missing signature is a 401', unsigned.body);
  const tampered = await pay(raw2.replace('pay_0002', 'pay_9999'), sign(raw2));
  check(tampered.status === 401, 'a signature of another body is a 401', tampered.body);
  const upper = await pay(raw2, sign(raw2).toUpperCase());
  check(upper.status === 200 && upper.body?.alreadyPaid === false, 'the signature is hex, case-insensitive', upper.body);
  const viewed = await must('GET', `/api/collections/orders/records/${first.id}`, { token: owner.token });
  check(viewed.status === 'paid' && viewed.paymentRef === 'pay_0001', 'the owner sees the order paid', viewed);
  const unknown = JSON.stringify({ order: 'nosuchorder0000', paymentRef: 'x' });
  const nf = await pay(unknown, sign(unknown));
  check(nf.status === 404 && nf.body?.message === 'Order not found.', 'a callback for an unknown order is a 404', nf.body);

  console.log(`total ${Date.now() - t0} ms`);
  return failures ? 1 : 0;
}

main()
  .then((code) => {
    if (code === 1) console.log(`${failures} check(s) failed`);
    else if (code === 0) console.log('all checks passed');
    cleanup();
    process.exit(code);
  })
  .catch((e) => {
    console.error(`check.mjs: ${e?.stack ?? e}`);
    cleanup();
    process.exit(1);
  });
