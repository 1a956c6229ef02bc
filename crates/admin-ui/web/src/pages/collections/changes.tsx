// What a save will do to the data, told before it happens: renames (and what refers to the old
// name), removed fields (with the record count and a few of the values that go), options that
// can drop or invalidate values, new unique indexes that existing duplicates would break, a view
// whose query changed, rules opened to everyone.
import type { ComponentChildren } from "preact";
import { pb, send, type CollectionModel } from "../../lib/api";
import {
  activeFields,
  escapeRegExp,
  mentions,
  parseIndex,
  quoteId,
  RULE_KEYS,
  AUTH_RULE_KEYS,
  type Draft,
  type DraftField,
  type Payload,
  type ParsedIndex,
} from "./model";
import { previewView } from "./view-query";

export interface Change {
  level: "danger" | "warn" | "info";
  title: ComponentChildren;
  detail?: ComponentChildren;
}

const RULE_LABELS: Record<string, string> = {
  listRule: "list",
  viewRule: "view",
  createRule: "create",
  updateRule: "update",
  deleteRule: "delete",
  authRule: "authenticate",
  manageRule: "manage other users",
};

function short(value: unknown): string {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  if (text === undefined || text === "" || text === "[]" || text === "null") return "(empty)";
  return text.length > 60 ? text.slice(0, 57) + "…" : text;
}

/** Rules of `collections` (this draft included) whose text mentions `name`. */
function rulesMentioning(collections: { name: string; [k: string]: any }[], test: (text: string) => boolean): string[] {
  const out: string[] = [];
  for (const c of collections) {
    for (const key of [...RULE_KEYS, ...AUTH_RULE_KEYS]) {
      const text = c[key];
      if (typeof text === "string" && text && test(text)) out.push(`${c.name}.${key}`);
    }
    if (c.mfa?.enabled && typeof c.mfa.rule === "string" && c.mfa.rule && test(c.mfa.rule)) out.push(`${c.name}.mfa.rule`);
  }
  return out;
}

async function countWhere(collectionId: string, filter: string): Promise<number | null> {
  try {
    const list = await pb.collection(collectionId).getList(1, 1, { filter, fields: "id" });
    return list.totalItems;
  } catch {
    return null;
  }
}

/** Looks at the save's effects; reads a handful of rows, never more than a few requests. */
export async function reviewChanges(
  original: Draft,
  draft: Draft,
  payload: Payload,
  all: CollectionModel[],
): Promise<Change[]> {
  const changes: Change[] = [];
  const others = all.filter((c) => c.id !== original.id);
  const isView = original.type === "view";

  // The collection's name.
  if (original.name !== draft.name) {
    const old = original.name;
    const refRules = rulesMentioning([...others, draft], (t) => new RegExp(String.raw`@collection\.${escapeRegExp(old)}\b`).test(t));
    const views = others.filter((c) => c.type === "view" && new RegExp(String.raw`\b${escapeRegExp(old)}\b`, "i").test(String((c as any).viewQuery ?? "")));
    changes.push({
      level: "warn",
      title: (
        <>
          Rename the collection <code>{old}</code> to <code>{draft.name}</code>
        </>
      ),
      detail: (
        <ul>
          <li>
            The records stay. Clients must use the new URL: <code>/api/collections/{draft.name}/records</code> (the old
            name stops working).
          </li>
          <li>Relation fields keep working (they point at the collection's id).</li>
          {refRules.length > 0 && (
            <li>
              Rules naming <code>@collection.{old}</code> must be updated: {refRules.join(", ")}.
            </li>
          )}
          {views.length > 0 && (
            <li>
              View collections whose query names <code>{old}</code> must be updated: {views.map((v) => v.name).join(", ")}.
            </li>
          )}
        </ul>
      ),
    });
  }

  // Fields: removed, renamed, options that can lose or invalidate data.
  const savedById = new Map(original.fields.filter((f) => f.id).map((f) => [f.id as string, f]));
  const removed = isView ? [] : draft.fields.filter((f) => f._removed && f.id && savedById.has(f.id)).map((f) => savedById.get(f.id!)!);
  const renamed: { from: string; to: string }[] = [];
  const tightened: string[] = [];
  const selectLimits: { field: DraftField; saved: DraftField }[] = [];
  const lostValues: { field: DraftField; values: string[] }[] = [];
  const retargeted: DraftField[] = [];
  if (!isView) {
    for (const field of activeFields(draft)) {
      const saved = field.id ? savedById.get(field.id) : undefined;
      if (!saved) continue;
      if (saved.name !== field.name) renamed.push({ from: saved.name, to: field.name });
      if (["select", "relation", "file"].includes(field.type)) {
        const before = saved.maxSelect || 1;
        const after = field.maxSelect || 1;
        if (after < before) selectLimits.push({ field, saved });
      }
      if (field.type === "select") {
        const gone = (saved.values ?? []).filter((v: string) => !(field.values ?? []).includes(v));
        if (gone.length) lostValues.push({ field, values: gone });
      }
      if (field.type === "relation" && saved.collectionId !== field.collectionId) retargeted.push(field);
      if (tighter(saved, field)) tightened.push(field.name);
    }
  }

  // One request for the count and a few values of the removed and renamed fields.
  let total: number | null = null;
  let samples: Record<string, unknown>[] = [];
  const sampleNames = [...removed.map((f) => f.name), ...renamed.map((r) => r.from)];
  if (!isView && (sampleNames.length || selectLimits.length || lostValues.length || retargeted.length)) {
    try {
      const list = await pb.collection(original.id!).getList(1, 3, {
        fields: ["id", ...sampleNames].join(","),
        sort: "-@rowid",
      });
      total = list.totalItems;
      samples = list.items;
    } catch {
      try {
        const list = await pb.collection(original.id!).getList(1, 3, { fields: ["id", ...sampleNames].join(",") });
        total = list.totalItems;
        samples = list.items;
      } catch {
        total = null;
      }
    }
  }
  const records = total === null ? "the collection's records" : `${total.toLocaleString("en")} record${total === 1 ? "" : "s"}`;
  const valuesOf = (name: string) => {
    const vals = samples.map((r) => r[name]).filter((v) => v !== undefined && v !== "" && v !== null && !(Array.isArray(v) && !v.length));
    return vals.length ? (
      <span class="sample-values">
        e.g. {vals.map((v, i) => (
          <code key={i}>{short(v)}</code>
        ))}
      </span>
    ) : total ? (
      <span class="muted">(empty in the latest records)</span>
    ) : null;
  };

  for (const field of removed) {
    const refs = rulesMentioning([draft, ...others], (t) => mentions(t, field.name));
    const indexes = payload.droppedIndexes.filter((sql) => sql.toLowerCase().includes(field.name.toLowerCase()));
    changes.push({
      level: "danger",
      title: (
        <>
          Delete the field <code>{field.name}</code> ({field.type}) and its data
        </>
      ),
      detail: (
        <ul>
          <li>
            {total === 1 ? "The value of 1 record is" : `The values of ${records} are`} dropped for good {valuesOf(field.name)}
          </li>
          {field.type === "file" && <li>Its uploaded files are deleted from storage.</li>}
          {indexes.length > 0 && <li>Indexes using it are dropped: {indexes.map((s) => parseIndex(s)?.name ?? s).join(", ")}.</li>}
          {refs.length > 0 && <li>Rules mentioning it will fail to save until edited: {refs.join(", ")}.</li>}
        </ul>
      ),
    });
  }
  for (const r of renamed) {
    const refs = rulesMentioning([draft, ...others], (t) => mentions(t, r.from));
    changes.push({
      level: "warn",
      title: (
        <>
          Rename the field <code>{r.from}</code> to <code>{r.to}</code>
        </>
      ),
      detail: (
        <ul>
          <li>
            The data of {records} is kept under the new name {valuesOf(r.from)}
          </li>
          <li>
            API responses, filters and clients use <code>{r.to}</code> from now on.
          </li>
          {refs.length > 0 && <li>Rules mentioning <code>{r.from}</code> must be updated: {refs.join(", ")}.</li>}
        </ul>
      ),
    });
  }
  for (const { field, saved } of selectLimits) {
    const after = field.maxSelect || 1;
    const over = await countWhere(original.id!, `${saved.name}:length > ${after}`);
    changes.push({
      level: over ? "danger" : "warn",
      title: (
        <>
          Lower <code>{field.name}</code> from {saved.maxSelect || 1} to {after} {field.type === "file" ? "file" : "value"}
          {after === 1 ? "" : "s"}
        </>
      ),
      detail: (
        <ul>
          <li>
            {over === null
              ? "Records holding more values may lose the extra ones."
              : over
                ? `${over.toLocaleString("en")} record${over === 1 ? " holds" : "s hold"} more than ${after}: the extra values are dropped${field.type === "file" ? " (and their files deleted)" : ""}.`
                : `No record holds more than ${after} value${after === 1 ? "" : "s"}.`}
          </li>
          {after === 1 && <li>The API returns a single value instead of a list from now on.</li>}
        </ul>
      ),
    });
  }
  for (const { field, values } of lostValues) {
    const filter = values.map((v) => `${field.name} ?= ${JSON.stringify(v)}`).join(" || ");
    const holding = field.id && savedById.get(field.id)?.name === field.name ? await countWhere(original.id!, filter) : null;
    changes.push({
      level: holding ? "warn" : "info",
      title: (
        <>
          Remove the choice{values.length === 1 ? "" : "s"} {values.map((v) => <code key={v}>{v}</code>)} from <code>{field.name}</code>
        </>
      ),
      detail:
        holding === null ? undefined : holding ? (
          <p>
            {holding.toLocaleString("en")} record{holding === 1 ? " holds" : "s hold"} them; they are refused when next saved
            until changed.
          </p>
        ) : (
          <p>No record uses them.</p>
        ),
    });
  }
  for (const field of retargeted) {
    changes.push({
      level: "danger",
      title: (
        <>
          Point the relation <code>{field.name}</code> at another collection
        </>
      ),
      detail: <p>The ids it holds in {records} refer to records of the old collection and no longer resolve.</p>,
    });
  }
  if (tightened.length) {
    changes.push({
      level: "info",
      title: <>Stricter validation on {tightened.map((n) => <code key={n}>{n}</code>)}</>,
      detail: <p>Existing values are not checked again; a record that breaks the new limits is refused when next saved.</p>,
    });
  }

  // Indexes: a new unique index fails when duplicates exist.
  if (!isView) {
    const before = new Set(original.indexes.map((s) => s.replace(/\s+/g, " ").toLowerCase()));
    const renamedTo = new Map(renamed.map((r) => [r.to.toLowerCase(), r.from.toLowerCase()]));
    const columnsKey = (p: ParsedIndex, map?: Map<string, string>) =>
      p.columns.map((c) => (c.expression ? c.name : (map?.get(c.name.toLowerCase()) ?? c.name.toLowerCase()))).join(",");
    for (const sql of payload.body.indexes as string[]) {
      if (before.has(sql.replace(/\s+/g, " ").toLowerCase())) continue;
      const parsed = parseIndex(sql);
      if (!parsed?.unique) continue;
      // The same unique index, only following a field rename, adds no constraint.
      const same = original.indexes.map(parseIndex).find((p) => p?.name.toLowerCase() === parsed.name.toLowerCase());
      if (same?.unique && columnsKey(same) === columnsKey(parsed, renamedTo) && same.where === parsed.where) continue;
      const cols = parsed.columns;
      const savedNames = new Set(original.fields.map((f) => f.name.toLowerCase()));
      const known = cols.every((c) => !c.expression && savedNames.has(c.name.toLowerCase()) && !renamed.some((r) => r.to === c.name));
      let duplicates: unknown[][] | null = null;
      if (known && total !== 0) {
        const list = cols.map((c) => quoteId(c.name) + (/collate\s+nocase/i.test(c.suffix) ? " COLLATE NOCASE" : "")).join(", ");
        const where = parsed.where ? ` WHERE ${parsed.where}` : "";
        try {
          const result = await send<{ rows: unknown[][] }>("/api/sql", {
            method: "POST",
            body: { query: `SELECT ${list}, COUNT(*) FROM ${quoteId(original.name)}${where} GROUP BY ${list} HAVING COUNT(*) > 1 LIMIT 3` },
          });
          duplicates = result.rows;
        } catch {
          duplicates = null;
        }
      }
      const colText = cols.map((c) => c.name).join(", ");
      changes.push({
        level: duplicates && duplicates.length ? "danger" : "warn",
        title: (
          <>
            Add a unique index on <code>{colText}</code>
          </>
        ),
        detail:
          duplicates && duplicates.length ? (
            <p>
              Existing records share values, so the save will fail until they are fixed:{" "}
              {duplicates.map((row, i) => (
                <code key={i}>
                  {row.slice(0, -1).map(short).join(", ")} ×{String(row[row.length - 1])}
                </code>
              ))}
            </p>
          ) : (
            <p>From now on two records may not share {cols.length > 1 ? "these values" : "a value"}; the save fails if existing records do.</p>
          ),
      });
    }
  }

  // A view's query.
  if (isView && (original.viewQuery ?? "") !== (draft.viewQuery ?? "")) {
    let lost: string[] = [];
    let added: string[] = [];
    try {
      const result = await previewView(draft.viewQuery ?? "");
      const next = new Set(result.fields.map((f) => f.name));
      const prev = new Set(original.fields.map((f) => f.name));
      lost = [...prev].filter((n) => !next.has(n));
      added = [...next].filter((n) => !prev.has(n));
    } catch {
      // The save reports the query's error itself.
    }
    const refs = lost.flatMap((n) => rulesMentioning([draft, ...others], (t) => mentions(t, n)));
    changes.push({
      level: lost.length ? "warn" : "info",
      title: <>Change the view's query</>,
      detail: (
        <ul>
          <li>The view's fields are rebuilt from the new query (a view stores no data of its own).</li>
          {lost.length > 0 && (
            <li>
              No longer in the view: {lost.map((n) => <code key={n}>{n}</code>)} — clients and rules using them break.
            </li>
          )}
          {added.length > 0 && <li>New: {added.map((n) => <code key={n}>{n}</code>)}</li>}
          {refs.length > 0 && <li>Rules to update: {[...new Set(refs)].join(", ")}.</li>}
        </ul>
      ),
    });
  }

  // Rules opened to everyone.
  for (const key of [...RULE_KEYS, ...AUTH_RULE_KEYS]) {
    if (!(key in draft)) continue;
    const was = original[key];
    const now = draft[key];
    if (now === "" && was !== "") {
      changes.push({
        level: "warn",
        title: (
          <>
            Anyone, guests included, may {RULE_LABELS[key]} {key === "authRule" ? "" : "records"}
          </>
        ),
        detail: <p>The {key} {was === null || was === undefined ? "was superusers only" : <>was <code>{String(was)}</code></>}.</p>,
      });
    }
  }

  // Sign-in methods turned off.
  if (original.type === "auth") {
    if (original.passwordAuth?.enabled && !draft.passwordAuth?.enabled) {
      changes.push({ level: "warn", title: "Turn off password sign-in", detail: <p>Users can no longer sign in with their password.</p> });
    }
    const providersNow = new Set(((draft.oauth2?.providers ?? []) as { name: string }[]).map((p) => p.name));
    const gone = ((original.oauth2?.providers ?? []) as { name: string }[]).filter((p) => !providersNow.has(p.name));
    if (gone.length) {
      changes.push({
        level: "warn",
        title: <>Remove the OAuth2 provider{gone.length > 1 ? "s" : ""} {gone.map((p) => p.name).join(", ")}</>,
        detail: <p>Users who signed up through {gone.length > 1 ? "them" : "it"} can no longer sign in that way.</p>,
      });
    }
    const secrets = ["authToken", "passwordResetToken", "emailChangeToken", "verificationToken", "fileToken"].filter((k) => draft[k]?.secret);
    if (secrets.length) {
      changes.push({ level: "warn", title: <>Invalidate every issued {secrets.join(", ")}</>, detail: <p>Users holding such a token must sign in (or ask for a new link) again.</p> });
    }
  }
  return changes;
}

/** Options whose new values refuse more than before (data is kept, but re-validated on save). */
function tighter(saved: DraftField, field: DraftField): boolean {
  const lower = (k: string) => (field[k] ?? 0) > 0 && ((saved[k] ?? 0) === 0 || field[k] < saved[k]);
  const higher = (k: string) => (field[k] ?? 0) > (saved[k] ?? 0);
  if (!saved.required && field.required) return true;
  switch (field.type) {
    case "text":
    case "password":
      return lower("max") || higher("min") || (field.pattern ?? "") !== (saved.pattern ?? "") && Boolean(field.pattern);
    case "number":
      return (!saved.onlyInt && field.onlyInt) || (field.min ?? null) !== (saved.min ?? null) && field.min !== null && (saved.min === null || field.min > saved.min) || (field.max ?? null) !== (saved.max ?? null) && field.max !== null && (saved.max === null || field.max < saved.max);
    case "editor":
    case "json":
      return lower("maxSize");
    case "file":
      return lower("maxSize") || ((field.mimeTypes ?? []).length > 0 && (field.mimeTypes ?? []).join() !== (saved.mimeTypes ?? []).join());
    case "email":
    case "url":
      return (field.onlyDomains ?? []).join() !== (saved.onlyDomains ?? []).join() || (field.exceptDomains ?? []).join() !== (saved.exceptDomains ?? []).join();
    case "date":
      return field.min !== saved.min || field.max !== saved.max;
    case "relation":
      return higher("minSelect");
    default:
      return false;
  }
}

export function ChangeList(props: { changes: Change[] }) {
  return (
    <ul class="change-list" data-testid="change-list">
      {props.changes.map((c, i) => (
        <li key={i} class={`change change-${c.level}`}>
          <span class="change-icon" aria-hidden="true">
            {c.level === "danger" ? "⚠" : c.level === "warn" ? "!" : "i"}
          </span>
          <div>
            <strong>{c.title}</strong>
            {c.detail}
          </div>
        </li>
      ))}
    </ul>
  );
}
