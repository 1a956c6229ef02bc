// Probes of the records API edges the other areas leave out: filter operators on multi-value
// fields, modifiers, macros and functions, null and literal comparisons, escapes, length and
// expression limits, malformed filters; sort keys and limits; `fields` wildcards and excerpt
// arguments; expand depth, back-relations and missing targets; paging edge values; update
// modifiers on every kind of field; autodate; validation messages of every field type.

import { createBase, withDates } from '../lib/fixtures.mjs';

const open = { listRule: '', viewRule: '', createRule: '', updateRule: '', deleteRule: '' };

/** A target collection and an `items` collection with every multi-value kind; seeded. */
async function seed(t) {
  const target = await createBase(t, 'ptarget', withDates([{ name: 'name', type: 'text' }]));
  const tc = t.su.collection(target.name);
  const ta = await tc.create({ name: 'Alpha' });
  const tb = await tc.create({ name: 'beta' });
  const tg = await tc.create({ name: 'Gamma' });
  const items = await createBase(t, 'pitems', withDates([
    { name: 'title', type: 'text' },
    { name: 'n', type: 'number' },
    { name: 'flag', type: 'bool' },
    { name: 'status', type: 'select', values: ['draft', 'live', 'archived'], maxSelect: 1 },
    { name: 'tags', type: 'select', values: ['a', 'b', 'c', 'Dd'], maxSelect: 4 },
    { name: 'meta', type: 'json' },
    { name: 'due', type: 'date' },
    { name: 'one', type: 'relation', collectionId: target.id, maxSelect: 1 },
    { name: 'rels', type: 'relation', collectionId: target.id, maxSelect: 5 },
    { name: 'loc', type: 'geoPoint' },
    { name: 'mail', type: 'email' },
  ]));
  const rows = [
    { title: 'r1', n: 1, flag: true, status: 'draft', tags: ['a'], meta: { k: 1, s: 'Hello', arr: [1, 2, 3] }, due: '2024-03-01 10:00:00.000Z', one: ta.id, rels: [ta.id, tb.id], loc: { lon: 23.32, lat: 42.69 }, mail: 'X@Example.com' },
    { title: 'r2', n: 2, flag: false, status: 'live', tags: ['a', 'b'], meta: [1, 'two'], due: '2025-06-15 00:00:00.000Z', one: tb.id, rels: [tb.id], mail: 'y@example.com' },
    { title: 'R3', n: 3, flag: true, status: 'archived', tags: ['b', 'c', 'Dd'], meta: 'str', due: '', one: '', rels: [tg.id, ta.id, tb.id] },
    { title: 'r4 with "quotes" and \\ backslash', n: 0, status: '', tags: [], meta: null, rels: [] },
    { title: "r5 it's 100% _x_", n: -2.5, flag: true, tags: ['Dd'], meta: { k: null }, due: '2030-12-31 23:59:59.999Z', rels: [tg.id] },
    { title: '', n: 1e10, tags: ['c'], meta: true, due: '2000-01-01 00:00:00.000Z', one: tg.id, rels: [tg.id, tb.id] },
  ];
  const created = [];
  for (const row of rows) created.push(await t.su.collection(items.name).create(row));
  return { target, items, ta, tb, tg, created };
}

const titlesOf = (b) => (b && Array.isArray(b.items) ? b.items.map((i) => i.title) : b);

async function filters(t, coll, list, auth = 'su') {
  for (const f of list) {
    await t.http(`filter ${f.length > 120 ? f.slice(0, 60) + '…' + f.length : f}`, 'GET',
      `/api/collections/${coll}/records?perPage=100&sort=${coll.startsWith('jmods') ? 'title' : 'n,title'}&filter=${encodeURIComponent(f)}`,
      { auth, shape: titlesOf });
  }
}

export async function multiValueOperators(t) {
  const { items } = await seed(t);
  await filters(t, items.name, [
    "tags !~ 'a'",
    "tags ?!~ 'a'",
    "tags ?~ 'D'",
    "tags ~ 'D'",
    "tags ?> 'b'",
    "tags > 'b'",
    "tags ?< 'b'",
    "tags:lower ?= 'dd'",
    "tags:lower = 'dd'",
    "tags:each != 'a'",
    "tags:each ?= 'a'",
    "tags:each ~ 'b'",
    "tags:each !~ 'a'",
    'tags:length = 0',
    'tags:length > 2',
    "tags:length = '3'",
    "rels ?= ''",
    "rels = ''",
    "rels != ''",
    "rels.name ?~ 'a'",
    "rels.name ~ 'a'",
    "rels.name !~ 'a'",
    "rels.name ?!~ 'a'",
    "rels.name:lower ?= 'alpha'",
    "rels.name:each ~ 'a'",
    'rels:length = 3',
    'rels:length < 2',
    "rels:each = ''",
    "one.name:lower = 'gamma'",
    "status ?= 'live'",
    'status:length = 1',
    "status:each = 'live'",
    "title:lower ?= 'r3'",
    "meta.arr ?= 2",
    'meta.arr.2 = 3',
  ]);
}

export async function nullAndLiteralComparisons(t) {
  const { items } = await seed(t);
  await filters(t, items.name, [
    'n = null',
    'n != null',
    'flag = null',
    'flag != null',
    'status = null',
    'status != null',
    'due = null',
    'due != null',
    'one = null',
    'rels = null',
    'meta = null',
    'meta != null',
    'meta.k = null',
    'meta.k != null',
    'null = null',
    'null != null',
    "'' = null",
    '1 = 1',
    '1 = 2',
    '1 > 0',
    "'a' = 'a'",
    "'a' ~ 'A'",
    'true = true',
    'true = 1',
    'false = 0',
    'flag = 1',
    'flag = "1"',
    "flag = 'true'",
    'n = true',
    "n = '1'",
    "n > '1'",
    'n = 1.0',
    'n = 10000000000',
    'n >= -2.5 && n < 0',
    'n = -2.5',
    'title = 1',
    "title > 'r'",
    "title < 'R4'",
    "mail = 'x@example.com'",
    "mail ~ 'EXAMPLE'",
  ]);
}

export async function stringEscapesAndLike(t) {
  const { items } = await seed(t);
  await filters(t, items.name, [
    "title ~ '\"quotes\"'",
    'title ~ "\\"quotes\\""',
    "title ~ '\\\\'",
    "title ~ '%'",
    "title ~ '100%'",
    "title ~ '_x_'",
    "title ~ 'r_'",
    "title ~ '%r%'",
    "title ~ 'r%'",
    "title ~ '%3'",
    "title ~ ''",
    "title !~ ''",
    "title = ''",
    "title ~ 'it\\'s'",
    "title ~ \"it's\"",
    "title ~ 'R'",
    "title ~ 'é'",
    "title = 'r1' || title = \"r2\"",
    "title='r1'",
    "title   =   'r1'",
    "title = 'r1'\n|| title = 'r2'",
    "title = 'r1' /* c */",
    "title = 'r1' // trailing",
    '  ',
    "title ~ 'r' && title !~ 'R3'",
  ]);
}

export async function macrosAndFunctions(t) {
  const { items } = await seed(t);
  await filters(t, items.name, [
    'due > @yesterday',
    'due < @tomorrow',
    'due < @todayEnd',
    'due > @monthStart',
    'due < @monthEnd',
    'due > @yearStart',
    'due > @yearEnd',
    'due > @todayStart && due < @todayEnd',
    'created > @yesterday && created < @tomorrow',
    '@weekday >= 0 && @weekday <= 6',
    '@day > 0 && @month > 0 && @hour >= 0 && @minute >= 0',
    '@nope = 1',
    '@now = @now',
    "@now > '2020-01-01'",
    "strftime('%Y-%m', due) = '2024-03'",
    "strftime('%Y', due) > '2024'",
    "strftime('%s', due) > 0",
    "strftime('%Y', created) = strftime('%Y', @now)",
    "strftime('%Y', '2024-01-01') = '2024'",
    "strftime('%Y', due, 'start of year') = '2024'",
    "strftime('%Y') = '2024'",
    "strftime('%Q', due) = ''",
    "strftime(due) = ''",
    "strftime('%Y', n) = '1970'",
    "strftime('%Y', title) = ''",
    "strftime('%Y', due) = null",
    "strftime('%Y', one.created) = strftime('%Y', @now)",
    'geoDistance(loc.lon, loc.lat, 23.32, 42.69) < 1',
    'geoDistance(loc.lon, loc.lat, 23.32, 42.69) >= 0',
    'geoDistance(loc.lon, loc.lat, 0, 0) > 1000',
    'geoDistance(loc.lon, loc.lat, 23.32) < 1',
    "geoDistance(loc.lon, loc.lat, '23.32', '42.69') < 1",
    'geoDistance(n, n, 0, 0) < 100000',
    'geoDistance(loc, 0, 0, 0) < 1',
    'nofunc(n) = 1',
    'STRFTIME(\'%Y\', due) = \'2024\'',
  ]);
}

export async function filterLimitsAndMalformed(t) {
  const { items } = await seed(t);
  const long = (n) => "title = '" + 'x'.repeat(n) + "' || n = 1";
  const exprs = (n) => Array.from({ length: n }, () => 'n > -100').join(' && ');
  await filters(t, items.name, [
    long(3400),
    long(3600),
    exprs(200),
    exprs(201),
    exprs(199) + ' && (n > -100 || n < 5)',
    '((((((((((n = 1))))))))))',
    '(' .repeat(60) + 'n = 1' + ')'.repeat(60),
    'n',
    'n =',
    '= 1',
    'n == 1',
    'n = 1 & n = 2',
    'n = 1 | n = 2',
    'n = 1 AND n = 2',
    'n = 1 n = 2',
    '()',
    "n = 'unterminated",
    'n = "unterminated',
    'n ! 1',
    'n <> 1',
    'n = @request',
    'n = @request.nope',
    'n = @request.query.x',
    "@request.query.x = ''",
    'n.x = 1',
    'title.x = 1',
    'one.nope = 1',
    'one.name.x = 1',
    'id = 1 ||',
    '&& id = 1',
    'tags:nope = 1',
    'n:lower = 1',
    'n:length = 1',
    'tags:length:lower = 1',
    'title:excerpt = 1',
    "'lit' ~ title",
    '1 ?= 1',
    'n?=1',
  ]);
}

export async function sortEdges(t) {
  const { items } = await seed(t);
  const base = `/api/collections/${items.name}/records?perPage=100&fields=title`;
  for (const s of [
    'n,title,n,title,n,title,n,title',
    'n,title,n,title,n,title,n,title,n',
    'x'.repeat(256),
    'tags,title',
    '-tags,title',
    'meta,title',
    'one.name,title',
    '-one.name,-title',
    'status,title',
    '-flag,n',
    'due,title',
    'loc,title',
    'loc.lat,title',
    'meta.k,title',
    '+',
    '--n',
    '-+n',
    '@random',
    '-@random',
    '@rowid,@random',
    '@nope',
    'title:upper',
    'n:lower',
    'tags:length',
    "strftime('%Y',due)",
    'n desc',
    'expand.one',
    'collectionId',
    'collectionName',
  ]) {
    const shape = (b) => {
      if (!b?.items) return b;
      const ts = b.items.map((i) => i.title);
      return s.includes('@random') && !s.startsWith('@rowid') ? ts.sort() : ts;
    };
    await t.http(`sort ${s.length > 60 ? s.slice(0, 20) + '…' + s.length : s}`, 'GET', `${base}&sort=${encodeURIComponent(s)}`, { auth: 'su', shape });
  }
}

export async function pagingEdges(t) {
  const { items } = await seed(t);
  const base = `/api/collections/${items.name}/records?sort=n&fields=title`;
  const shape = (b) => (b?.items ? { ...b, items: b.items.map((i) => i.title) } : b);
  for (const q of ['page=-1', 'perPage=-1', 'page=0&perPage=0', 'page=2&perPage=4', 'page=3&perPage=4',
    'page=1000&perPage=2', 'perPage=1001', 'perPage=999999999999', 'page=2147483648&perPage=1',
    'page=+2&perPage=2', 'page=02&perPage=2', 'perPage=1e1', 'perPage=2.9', 'page=1.0',
    'perPage= 2', 'page=0x2&perPage=2', 'page=2&perPage=2&skipTotal=1', 'page=9&perPage=2&skipTotal=1',
    'perPage=1&perPage=3', 'page=1&page=2&perPage=2', 'skipTotal=', 'skipTotal=2', 'skipTotal=True',
    'skipTotal=f', 'skipTotal=F', 'skipTotal=FALSE', 'skipTotal=no']) {
    await t.http(q, 'GET', `${base}&${q}`, { auth: 'su', shape });
  }
}

export async function fieldsEdges(t) {
  const { items, created } = await seed(t);
  const base = `/api/collections/${items.name}/records`;
  const id = created[0].id;
  for (const f of ['', ',', ' , ', 'title,', 'TITLE', 'expand', 'expand.one', 'expand.one.name',
    '*,expand.one.name', 'expand.*', 'expand.one.*', 'expand.rels.name', '*.*', 'title:excerpt(abc)',
    'title:excerpt()', 'title:excerpt(0)', 'title:excerpt(-1)', 'title:excerpt(2,false)',
    'title:excerpt(2,1)', 'title:excerpt(2,yes)', 'title:excerpt(2, true)', 'title:excerpt(2,true,3)',
    'title:excerpt(2', 'title:nope(2)', 'title:excerpt', 'n:excerpt(1)', 'meta:excerpt(3)',
    'tags:excerpt(1)', 'meta.k', 'meta.*', 'id,id', 'title:excerpt(3),title']) {
    await t.http(`view fields=${f}`, 'GET', `${base}/${id}?expand=one,rels&fields=${encodeURIComponent(f)}`, { auth: 'su' });
  }
  await t.http('list fields=*,expand.rels.name', 'GET', `${base}?sort=n&perPage=3&expand=rels&fields=${encodeURIComponent('title,expand.rels.name')}`, { auth: 'su' });
  await t.http('list fields items.title', 'GET', `${base}?sort=n&perPage=2&fields=${encodeURIComponent('items.title,page')}`, { auth: 'su' });
}

export async function excerptContent(t) {
  const c = await createBase(t, 'pexc', [{ name: 'body', type: 'editor' }, { name: 'txt', type: 'text' }]);
  const bodies = [
    '<p>Hello&nbsp;<b>world</b> &amp; friends &lt;3</p>',
    '<script>alert(1)</script><style>p{}</style><p>visible   text\n\nhere</p>',
    '<p>ünïcödé ✓ characters everywhere</p>',
    '   leading and trailing spaces    ',
    '<p>a</p><p>b</p><br><div>c</div>',
    '<!-- comment --><p>after comment</p>',
  ];
  for (const [i, body] of bodies.entries()) {
    const rec = await t.su.collection(c.name).create({ body, txt: body });
    for (const f of ['body:excerpt(8,true)', 'body:excerpt(100)', 'txt:excerpt(8,true)', 'txt:excerpt(5)']) {
      await t.http(`#${i} ${f}`, 'GET', `/api/collections/${c.name}/records/${rec.id}?fields=${encodeURIComponent(f)}`, { auth: 'su' });
    }
  }
}

export async function expandEdges(t) {
  const { items, target, ta, tb, created } = await seed(t);
  const base = `/api/collections/${items.name}/records`;
  const compact = (r) => {
    const out = { t: r.title ?? r.name ?? null };
    if (r.expand) out.expand = Object.fromEntries(Object.entries(r.expand).map(([k, v]) => [k, Array.isArray(v) ? v.map(compact) : compact(v)]));
    return out;
  };
  const shape = (b) => (b?.items ? b.items.map(compact) : b?.id ? compact(b) : b);
  for (const e of ['rels', 'one,rels', 'one..x', 'ONE', ',one', 'one,,rels',
    `${items.name}_via_one`, `${items.name}_via_rels`, `${items.name}_via_rels.one`, `${items.name}_via_nope`,
    `${items.name}_via_title`, `nope_via_one`, 'one.pitems_via_one', 'rels:each', 'rels.name', '']) {
    await t.http(`list expand=${e}`, 'GET', `${base}?sort=n&perPage=3&expand=${encodeURIComponent(e)}`, { auth: 'su', shape });
  }
  await t.http('target expand via rels', 'GET', `/api/collections/${target.name}/records?sort=name&expand=${encodeURIComponent(`${items.name}_via_rels,${items.name}_via_one`)}`, { auth: 'su', shape });
  await t.http('target expand via rels nested', 'GET', `/api/collections/${target.name}/records/${ta.id}?expand=${encodeURIComponent(`${items.name}_via_rels.rels`)}`, { auth: 'su', shape });
  // Delete a target referenced by non-required relations: the reference is dropped.
  await t.http('delete referenced', 'DELETE', `/api/collections/${target.name}/records/${tb.id}`, { auth: 'su' });
  await t.http('after delete', 'GET', `${base}?sort=n&expand=one,rels&fields=${encodeURIComponent('title,one,rels,expand')}`, { auth: 'su', shape: (b) => b?.items?.map((i) => ({ title: i.title, one: i.one, rels: i.rels, ex: compact(i).expand ?? null })) });
  void created;
}

export async function expandDepth(t) {
  const c = await createBase(t, 'pchain', [{ name: 'title', type: 'text' }]);
  const withSelf = await t.su.collections.update(c.id, {
    fields: [...c.fields, { name: 'p', type: 'relation', collectionId: c.id, maxSelect: 1 }],
  });
  let prev = '';
  for (let i = 0; i < 9; i++) {
    const r = await t.su.collection(withSelf.name).create({ title: `n${i}`, p: prev });
    prev = r.id;
  }
  const depth = (r) => { let d = 0; let x = r; while (x?.expand?.p) { d++; x = x.expand.p; } return d; };
  for (let k = 1; k <= 8; k++) {
    const e = Array(k).fill('p').join('.');
    await t.http(`expand depth ${k}`, 'GET', `/api/collections/${withSelf.name}/records/${prev}?expand=${e}`, { auth: 'su', shape: (b) => (b?.id ? depth(b) : b) });
  }
}

export async function updateModifiersMore(t) {
  const c = await createBase(t, 'pmods', withDates([
    { name: 'n', type: 'number' },
    { name: 'ni', type: 'number', onlyInt: true, max: 10 },
    { name: 'st', type: 'select', values: ['x', 'y', 'z'], maxSelect: 1 },
    { name: 'ms', type: 'select', values: ['x', 'y', 'z'], maxSelect: 2 },
    { name: 'txt', type: 'text' },
    { name: 'flag', type: 'bool' },
    { name: 'j', type: 'json' },
    { name: 'd', type: 'date' },
    { name: 'auto', type: 'text', autogeneratePattern: '[a-z]{5}' },
  ]));
  const col = t.su.collection(c.name);
  const rec = await col.create({ n: 1, ni: 1, st: 'x', ms: ['x'] });
  const pick = (r) => ({ n: r.n, ni: r.ni, st: r.st, ms: r.ms, txt: r.txt, flag: r.flag, j: r.j, d: r.d, autoLen: r.auto?.length });
  const patch = (label, json) => t.http(label, 'PATCH', `/api/collections/${c.name}/records/${rec.id}`, { auth: 'su', json, shape: (b) => (b?.id ? pick(b) : b) });
  await patch('n+ string', { 'n+': '2.5' });
  await patch('n+ garbage', { 'n+': 'abc' });
  await patch('n- negative', { 'n-': -1 });
  await patch('+n', { '+n': 1 });
  await patch('n+ and n', { n: 100, 'n+': 1 });
  await patch('n+ null', { 'n+': null });
  await patch('n+ array', { 'n+': [1, 2] });
  await patch('ni+ past max', { 'ni+': 20 });
  await patch('ni+ fraction', { 'ni+': 0.5 });
  await patch('st+ single', { 'st+': 'y' });
  await patch('+st single', { '+st': 'z' });
  await patch('st- current', { 'st-': 'y' });
  await patch('st- other', { 'st-': 'z' });
  await patch('ms+ beyond max', { 'ms+': ['y', 'z'] });
  await patch('ms+ one', { 'ms+': 'y' });
  await patch('ms- missing', { 'ms-': 'z' });
  await patch('ms- all', { 'ms-': ['x', 'y'] });
  await patch('ms+ invalid', { 'ms+': 'q' });
  await patch('ms and ms+', { ms: ['x'], 'ms+': 'z' });
  await patch('ms- and +ms', { 'ms-': 'x', '+ms': 'y' });
  await patch('txt+', { 'txt+': 'a' });
  await patch('flag+', { 'flag+': true });
  await patch('j+', { 'j+': [1] });
  await patch('d+', { 'd+': '2024-01-01' });
  await patch('nosuch+', { 'nosuch+': 1 });
  await patch('auto empty string', { auto: '' });
  await patch('txt:autogenerate', { 'txt:autogenerate': 'x' });
  await patch('auto:autogenerate', { 'auto:autogenerate': 'abc' });
  await patch('n-- double', { 'n--': 1 });
  await patch('+n+', { '+n+': 1 });
  await t.http('create with auto:autogenerate', 'POST', `/api/collections/${c.name}/records`, { auth: 'su', json: { 'auto:autogenerate': 'pre' }, shape: (b) => (b?.id ? { prefix: b.auto.slice(0, 3), len: b.auto.length } : b) });
  await t.http('create with ms- and ni-', 'POST', `/api/collections/${c.name}/records`, { auth: 'su', json: { 'ms-': 'x', 'ni-': 3, '+ms': ['y'] }, shape: (b) => (b?.id ? pick(b) : b) });
}

export async function autodateMore(t) {
  const c = await createBase(t, 'pauto', [
    { name: 'title', type: 'text' },
    { name: 'c1', type: 'autodate', onCreate: true, onUpdate: false },
    { name: 'u1', type: 'autodate', onCreate: false, onUpdate: true },
    { name: 'cu', type: 'autodate', onCreate: true, onUpdate: true },
  ]);
  const col = t.su.collection(c.name);
  const rec = await t.sdk('create with values', () => col.create({ title: 'x', c1: '2000-01-01 00:00:00.000Z', u1: '2000-01-01 00:00:00.000Z' }));
  await t.sdk('update', () => col.update(rec?.id, { title: 'y', c1: '2000-01-01 00:00:00.000Z' }));
  await t.sdk('filter u1 empty', () => col.getFullList({ filter: "u1 = ''" }), (r) => r.length);
  await t.sdk('sort by c1', () => col.getFullList({ sort: '-c1' }), (r) => r.length);
  await t.sdk('fields c1:excerpt', () => col.getOne(rec?.id, { fields: 'c1:excerpt(4)' }));
}

export async function validationMessages(t) {
  const c = await createBase(t, 'pval', [
    { name: 'txt', type: 'text' },
    { name: 'tmin', type: 'text', min: 2 },
    { name: 'tuni', type: 'text', max: 3 },
    { name: 'ed', type: 'editor', maxSize: 10 },
    { name: 'num', type: 'number', min: -1, max: 1 },
    { name: 'rnum', type: 'number', required: true, onlyInt: true },
    { name: 'rtxt', type: 'text', required: true },
    { name: 'em', type: 'email', exceptDomains: ['bad.com'] },
    { name: 'rem', type: 'email', required: true },
    { name: 'u1', type: 'url', onlyDomains: ['example.com'] },
    { name: 'u2', type: 'url', exceptDomains: ['bad.com'] },
    { name: 'dt', type: 'date', min: '2020-01-01 00:00:00.000Z', max: '2021-01-01 00:00:00.000Z' },
    { name: 'rdt', type: 'date', required: true },
    { name: 'j', type: 'json' },
    { name: 'rj', type: 'json', required: true },
    { name: 'rsel', type: 'select', values: ['a', 'b'], maxSelect: 2, required: true },
    { name: 'rgeo', type: 'geoPoint', required: true },
    { name: 'pat', type: 'text', pattern: '^\\d+$', required: false },
  ]);
  const good = { rnum: 1, rtxt: 'x', rem: 'a@b.co', rdt: '2024-01-01', rj: { a: 1 }, rsel: ['a'], rgeo: { lon: 1, lat: 1 } };
  const cases = {
    'all required missing': {},
    'required whitespace text': { ...good, rtxt: '   ' },
    'required json null': { ...good, rj: null },
    'required json empty array': { ...good, rj: [] },
    'required json empty object': { ...good, rj: {} },
    'required json empty string': { ...good, rj: '' },
    'required json false': { ...good, rj: false },
    'required json 0': { ...good, rj: 0 },
    'required geo zero': { ...good, rgeo: { lon: 0, lat: 0 } },
    'required select empty': { ...good, rsel: [] },
    'text default max 5000': { ...good, txt: 'x'.repeat(5001) },
    'text 5000 ok': { ...good, txt: 'x'.repeat(5000) },
    'text min with empty': { ...good, tmin: '' },
    'text max unicode': { ...good, tuni: 'ééé' },
    'text max unicode over': { ...good, tuni: 'éééé' },
    'text emoji': { ...good, tuni: '👍👍👍' },
    'editor maxSize': { ...good, ed: 'x'.repeat(11) },
    'number min boundary': { ...good, num: -1 },
    'number below min': { ...good, num: -1.01 },
    'number string exp': { ...good, num: '1e0' },
    'number huge string': { ...good, num: '1e400' },
    'number bool true': { ...good, num: true },
    'number onlyInt float-ish': { ...good, rnum: 2.0 },
    'number onlyInt 1e20': { ...good, rnum: 1e20 },
    'required number string zero': { ...good, rnum: '0' },
    'email except domain': { ...good, em: 'x@bad.com' },
    'email except domain case': { ...good, em: 'x@BAD.com' },
    'email with name': { ...good, em: 'Name <x@a.com>' },
    'email no tld': { ...good, em: 'x@localhost' },
    'email trailing space': { ...good, em: 'x@a.com ' },
    'url only domain': { ...good, u1: 'https://other.com' },
    'url only domain sub': { ...good, u1: 'https://sub.example.com' },
    'url except domain': { ...good, u2: 'https://bad.com/x' },
    'url ftp': { ...good, u2: 'ftp://x.com' },
    'url no scheme': { ...good, u2: 'example.com' },
    'url mailto': { ...good, u2: 'mailto:a@b.com' },
    'date after max': { ...good, dt: '2022-01-01' },
    'date min boundary': { ...good, dt: '2020-01-01 00:00:00.000Z' },
    'date bad format': { ...good, dt: '01/02/2020' },
    'date unix string': { ...good, dt: '1700000000' },
    'date rfc3339 no ms': { ...good, dt: '2020-06-01T10:00:00Z' },
    'date only year': { ...good, dt: '2020' },
    'pattern empty value': { ...good, pat: '' },
    'pattern mismatch': { ...good, pat: '12a' },
    'select required invalid': { ...good, rsel: ['c'] },
    'json invalid string': { ...good, j: '{bad json' },
    'json number string': { ...good, j: '12' },
    'json big': { ...good, j: { s: 'x'.repeat(1048576) } },
  };
  for (const [label, body] of Object.entries(cases)) {
    await t.http(label, 'POST', `/api/collections/${c.name}/records`, {
      auth: 'su', json: body,
      shape: (b) => (b?.id ? Object.fromEntries(Object.keys(body).filter((k) => k in b).map((k) => [k, typeof b[k] === 'string' && b[k].length > 50 ? b[k].length : b[k]])) : b),
    });
  }
}

/** Two targets and a collection with a single and a multi relation to them, fixed ids. */
async function relSeed(t) {
  const target = await createBase(t, 'rtarget', [{ name: 'name', type: 'text' }]);
  const ids = {};
  for (const [id, name] of [['aaaaaaaaaaaaaa1', 'Alpha'], ['bbbbbbbbbbbbbb2', 'beta'], ['ccccccccccccc03', 'Gamma']]) {
    ids[name] = (await t.su.collection(target.name).create({ id, name })).id;
  }
  const items = await createBase(t, 'ritems', [
    { name: 'title', type: 'text' },
    { name: 'one', type: 'relation', collectionId: target.id, maxSelect: 1 },
    { name: 'rels', type: 'relation', collectionId: target.id, maxSelect: 5 },
  ]);
  const rows = [['r1', ['Alpha', 'beta'], 'Alpha'], ['r2', ['beta'], 'beta'], ['R3', ['Gamma', 'Alpha', 'beta'], ''], ['r4', [], ''], ['r5', ['Gamma'], ''], ['r6', ['beta', 'Alpha'], 'Gamma']];
  for (const [title, rels, one] of rows) {
    await t.su.collection(items.name).create({ title, rels: rels.map((n) => ids[n]), one: ids[one] ?? '' });
  }
  return { target, items, ids };
}

/** Expand paths are normalized: spaces removed, leading/trailing dots trimmed. */
export async function expandPathNormalization(t) {
  const { items } = await relSeed(t);
  const shape = (b) => (b?.items ? b.items.map((i) => ({ title: i.title, expand: Object.fromEntries(Object.entries(i.expand ?? {}).map(([k, v]) => [k, Array.isArray(v) ? v.map((x) => x.name) : v.name])) })) : b);
  for (const e of ['one', 'one.', '.one', 'rels.', 'one .', ' one ', 'o ne', 'one, rels', 'one...']) {
    await t.http(`expand=${e}`, 'GET', `/api/collections/${items.name}/records?sort=title&perPage=3&expand=${encodeURIComponent(e)}`, { auth: 'su', shape });
  }
}

/** Sorting by a field reached through a multi relation. */
export async function sortThroughMultiRelation(t) {
  const { items } = await relSeed(t);
  for (const s of ['rels.name,title', '-rels.name,title']) {
    await t.http(`sort=${s}`, 'GET', `/api/collections/${items.name}/records?fields=title&sort=${encodeURIComponent(s)}`, { auth: 'su', shape: titlesOf });
  }
}

/** Modifiers after a json path segment. */
export async function jsonPathModifiers(t) {
  const c = await createBase(t, 'jmods', [{ name: 'title', type: 'text' }, { name: 'meta', type: 'json' }]);
  for (const [title, meta] of [['a', { s: 'Hello', arr: [1, 2, 3] }], ['b', { s: 'hello', arr: [0, 5] }], ['c', { 's:lower': 'hello', slower: 'hello', arrlength: 5 }], ['d', 'Hello']]) {
    await t.su.collection(c.name).create({ title, meta });
  }
  await filters(t, c.name, [
    "meta.s:lower = 'hello'",
    "meta:lower = 'hello'",
    'meta.arr:length = 3',
    'meta.arr:length = 5',
    'meta.arr:length > 0',
    'meta.arr:each > 0',
    "meta.s:upper = 'x'",
    'meta.s:upper = null',
  ]);
}

/** Date strings PocketBase parses (Go layouts, after its own) and those it stores as blank. */
export async function dateStringFormats(t) {
  const c = await createBase(t, 'pdates', [{ name: 'd', type: 'date' }]);
  for (const d of [
    '2024-01-01 10:00',
    '2024-01-01T10:00',
    ' 2024-01-01',
    '2024-1-1',
    '2024-01-01 10:00:00.000z',
    '2024-01-01 10:00:00 +0200',
    '2024-01-01T10:00:00-0700',
    'Mon, 01 Jan 2024 10:00:00 +0100',
    'Mon Jan  1 10:00:00 2024',
    '01 Jan 2024',
    '3:04PM',
  ]) {
    await t.http(`d=${JSON.stringify(d)}`, 'POST', `/api/collections/${c.name}/records`, { auth: 'su', json: { d }, shape: (b) => (b?.id ? b.d : b) });
  }
}

/** Casting of loosely typed values (all agree; kept as a regression test). */
export async function castingMore(t) {
  const posts = await createBase(t, 'cposts', [{ name: 'title', type: 'text' }]);
  const p1 = await t.su.collection(posts.name).create({ title: 'p1' });
  const p2 = await t.su.collection(posts.name).create({ title: 'p2' });
  const c = await createBase(t, 'pcast', [
    { name: 'b', type: 'bool' }, { name: 'n', type: 'number' },
    { name: 's', type: 'select', values: ['x', 'y'], maxSelect: 1 },
    { name: 'r', type: 'relation', collectionId: posts.id, maxSelect: 3, minSelect: 2 },
    { name: 'd', type: 'date' }, { name: 't', type: 'text' },
  ]);
  const cases = {
    'b yes': { b: 'yes' }, 'b on': { b: 'on' }, 'b 0': { b: '0' }, 'b TRUE': { b: 'TRUE' }, 'b 1 string': { b: '1' },
    'b 2': { b: 2 }, 'b array': { b: [true] }, 'b obj': { b: {} }, 'n spaces': { n: ' 5 ' }, 'n hex': { n: '0x10' },
    'n empty': { n: '' }, 'n null': { n: null }, 'n array': { n: [3] }, 'n obj': { n: {} }, 'n bool': { n: false },
    'n 1_000': { n: '1_000' }, 'n Infinity': { n: 'Infinity' }, 'n NaN': { n: 'NaN' }, 's array': { s: ['x', 'y'] },
    's array one': { s: ['y'] }, 's empty array': { s: [] }, 'r min': { r: [p1.id] }, 'r min ok': { r: [p1.id, p2.id] },
    'r string comma': { r: `${p1.id},${p2.id}` }, 'd year 0': { d: '0000-01-01' }, 'd number 0': { d: 0 }, 'd bool': { d: true },
    'd 1.5': { d: 1.5 }, 'd 1e12': { d: 1e12 }, 't array': { t: ['a', 'b'] }, 't obj': { t: { a: 1 } }, 't bool': { t: true },
    't null': { t: null }, 't float': { t: 1.5 }, 't big float': { t: 1e21 },
  };
  for (const [label, body] of Object.entries(cases)) {
    await t.http(label, 'POST', `/api/collections/${c.name}/records`, { auth: 'su', json: body, shape: (b) => (b?.id ? Object.fromEntries(Object.keys(body).map((k) => [k, b[k]])) : b) });
  }
}

/** A back-relation through a field with a UNIQUE index, request macros in a list filter. */
export async function uniqueBackRelationAndRequestMacros(t) {
  const posts = await createBase(t, 'uposts', [{ name: 'title', type: 'text' }]);
  const p1 = await t.su.collection(posts.name).create({ title: 'p1' });
  await t.su.collection(posts.name).create({ title: 'p2' });
  const metaName = t.coll('umeta');
  const meta = await createBase(t, 'umeta', [{ name: 'text', type: 'text' }, { name: 'post', type: 'relation', collectionId: posts.id, maxSelect: 1 }], { indexes: [`CREATE UNIQUE INDEX idx_u_${t.tag} ON ${metaName} (post)`] });
  await t.su.collection(meta.name).create({ text: 'm1', post: p1.id });
  const base = `/api/collections/${posts.name}/records`;
  await t.http('unique back-rel expand', 'GET', `${base}?sort=title&fields=title,expand&expand=${meta.name}_via_post`, { auth: 'su' });
  await t.http('unique back-rel view', 'GET', `${base}/${p1.id}?fields=expand&expand=${meta.name}_via_post`, { auth: 'su' });
  for (const f of [`${meta.name}_via_post.text = 'm1'`, `${meta.name}_via_post:length = 1`, `${meta.name}_via_post.text:each = 'm1'`, `${meta.name}_via_post = null`,
    "@request.method = 'GET'", '@request.body.x = null', "@request.query.page = '1'", "@request.headers.x_test = 'y'", "@request.context = 'default'",
    "@request.auth.collectionName = '_superusers'", '@request.body = null']) {
    await t.http(`filter ${f}`, 'GET', `${base}?sort=title&page=1&filter=${encodeURIComponent(f)}`, { auth: 'su', headers: { 'X-Test': 'y' }, shape: titlesOf });
  }
}

/** Email and url field formats (all agree; kept as a regression test). */
export async function emailAndUrlFormats(t) {
  const c = await createBase(t, 'pfmt', [{ name: 'e', type: 'email' }, { name: 'u', type: 'url' }]);
  const emails = ['a..b@c.com', '.a@c.com', 'a.@c.com', 'a@-b.com', 'a@b-.com', 'ü@b.com', 'a@ü.com', 'a@b.c', 'a+b@c.com', "a'b@c.com", 'a@b..com',
    'a@[127.0.0.1]', 'a@127.0.0.1', 'A@B.COM', 'a@b_c.com', 'a@b.com.', 'x'.repeat(65) + '@b.com', 'a@' + 'b'.repeat(64) + '.com',
    'a@' + ('b'.repeat(60) + '.').repeat(5) + 'com', 'a @b.com', 'a@b.com\n', 'mailto:a@b.com', 'a@@b.com', '@b.com', 'a@', '"a\\"b"@c.com', '"a"b@c.com'];
  for (const e of emails) {
    await t.http(`email ${JSON.stringify(e).slice(0, 60)}`, 'POST', `/api/collections/${c.name}/records`, { auth: 'su', json: { e }, shape: (b) => (b?.id ? b.e : b) });
  }
  const urls = ['http://localhost', 'http://localhost:8080/x', 'https://例え.jp', 'http://a b.com', '//example.com', 'http://', 'https://example.com:99999',
    'http://127.0.0.1', 'http://[::1]/', 'https://ex_ample.com', 'HTTPS://EXAMPLE.COM', 'javascript:alert(1)', 'data:text/plain,x', 'http://example',
    'http://example.com/path with space', 'http://user:pass@example.com', 'ws://example.com', 'file:///etc/passwd', 'https://example.com/#frag',
    'https://-ex.com', 'http://example.com.', 'http:/example.com', 'example.com/path', 'https://' + 'a'.repeat(64) + '.com', 'http://1.2.3', 'http://999.1.1.1'];
  for (const u of urls) {
    await t.http(`url ${JSON.stringify(u).slice(0, 60)}`, 'POST', `/api/collections/${c.name}/records`, { auth: 'su', json: { u }, shape: (b) => (b?.id ? b.u : b) });
  }
}

/** An email whose local part is a quoted string. */
export async function emailQuotedLocalPart(t) {
  const c = await createBase(t, 'pquote', [{ name: 'e', type: 'email' }]);
  for (const e of ['"ab"@c.com', '"a b"@c.com', '""@c.com']) {
    await t.http(`email ${e}`, 'POST', `/api/collections/${c.name}/records`, { auth: 'su', json: { e }, shape: (b) => (b?.id ? b.e : b) });
  }
}

/** Literals, escapes and type mixing in filters (all agree; kept as a regression test). */
export async function filterLiteralsAndTypeMixing(t) {
  const c = await createBase(t, 'plit', [{ name: 'title', type: 'text' }, { name: 'n', type: 'number' }, { name: 'meta', type: 'json' },
    { name: 'tags', type: 'select', values: ['a', 'b'], maxSelect: 2 }, { name: 'b', type: 'bool' }]);
  const rows = [['École', 1000, { k: 1 }, ['a']], ['a\nb', 0.5, { k: '1' }, []], ['x"y', -1, 'str', ['a', 'b']], ['UPPER', 16, true, ['b']],
    ['tab\there', 0, [1, 2], []], ['back\\slash', 1e21, { k: null }, []]];
  for (const [title, n, meta, tags] of rows) await t.su.collection(c.name).create({ title, n, meta, tags, b: n > 0 });
  await filters(t, c.name, ["title:lower = 'école'", "title ~ 'ÉCOLE'", "title ~ 'école'", "title ~ 'upper'", 'n = 1e3', 'n = .5', 'n = 0.5', 'n = -0', 'n = +16',
    'n = 0x10', 'n = 1_000', 'n = 1e21', 'n > 1e20', "title = 'a\\nb'", 'title = "a\\nb"', "title ~ '\\n'", "title = 'x\"y'", 'title = "x\\"y"',
    "title = 'tab\\there'", "title = 'back\\\\slash'", "title ~ 'back\\slash'", "title ~ '\\\\'", 'title ?= null', 'tags ?= null', 'tags ?!= null',
    'tags = null', 'tags != null', "meta.k = '1'", 'meta.k = 1', "meta = 'str'", 'meta = true', "meta.k > '0'", 'meta.k > 0', 'meta.k = null',
    "meta ~ 'st'", 'meta ~ 1', 'meta.0 = 1', "meta = '[1,2]'", 'b = "true"', "b = 'false'", 'b != false', 'b = 0', "b ~ 'tr'", 'b ~ 1',
    'n ~ 1', "n ~ '0'", 'n ?= 16', 'title > n', 'title = n', 'n = b', 'meta = n', 'tags ~ meta']);
}

async function excerptSeed(t) {
  const tg = await createBase(t, 'xtarget', [{ name: 'name', type: 'text' }]);
  const t1 = await t.su.collection(tg.name).create({ id: 'tttttttttttttt1', name: 'Target Name Long' });
  const c = await createBase(t, 'xitems', [{ name: 'title', type: 'text' }, { name: 'body', type: 'editor' }, { name: 'one', type: 'relation', collectionId: tg.id, maxSelect: 1 }]);
  const r = await t.su.collection(c.name).create({ id: 'rrrrrrrrrrrrrr1', title: 'Some Title Here', body: '<p>Body text here</p>', one: t1.id });
  return { c, r };
}

/** `fields` excerpt spellings on a viewed record with an expand (all agree; regression test). */
export async function fieldsExcerptSpellings(t) {
  const { c, r } = await excerptSeed(t);
  for (const f of ['expand.one.name:excerpt(3,true)', 'expand.*:excerpt(2)', 'expand.one:excerpt(2)', 'title:excerpt(3,true),expand.one.*',
    '*,expand.one.name:excerpt(4)', 'title:excerpt(3,TRUE)', 'title:excerpt(3,t)', 'title:excerpt( 3 )', 'title:EXCERPT(3)',
    'title:excerpt(99999999999999999999)', 'expand.one.id,expand.one.nope']) {
    await t.http(`fields=${f}`, 'GET', `/api/collections/${c.name}/records/${r.id}?expand=one&fields=${encodeURIComponent(f)}`, { auth: 'su' });
  }
}

/** `*:excerpt(n)`, trailing text after the excerpt arguments, a fractional length. */
export async function fieldsExcerptOnWildcard(t) {
  const { c, r } = await excerptSeed(t);
  for (const f of ['*:excerpt(2)', 'title:excerpt(3)x', 'title:excerpt(1.5)']) {
    await t.http(`fields=${f}`, 'GET', `/api/collections/${c.name}/records/${r.id}?expand=one&fields=${encodeURIComponent(f)}`, { auth: 'su' });
  }
}
