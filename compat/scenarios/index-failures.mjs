// Index failures the database itself reports when a collection's indexes are applied: a unique
// index over rows that are not unique, an index named like an existing table. The answer
// carries the database's own error text, in PocketBase's driver wording on SQLite; on
// PostgreSQL the text is PostgreSQL's, so `compat/run.sh --pg` leaves this area out (KD-PG-3).

import { createBase } from '../lib/fixtures.mjs';

export async function indexDatabaseFailures(t) {
  const c = await createBase(t, 'idxdb', [{ name: 'title', type: 'text' }]);
  await t.su.collection(c.name).create({ title: 'same' });
  await t.su.collection(c.name).create({ title: 'same' });
  await t.http('unique index over duplicates', 'PATCH', `/api/collections/${c.name}`, {
    auth: 'su',
    json: { indexes: [`CREATE UNIQUE INDEX idx_uq_${t.tag} ON ${c.name} (title)`] },
  });
  await t.http('index named like a table', 'POST', '/api/collections', {
    auth: 'su',
    json: {
      name: t.coll('idxclash'),
      fields: [{ name: 'title', type: 'text' }],
      indexes: [`CREATE INDEX ${c.name} ON x (title)`],
    },
  });
}
