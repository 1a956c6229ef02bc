// Settings › Export collections and Import collections: the schema as JSON in the shape
// `PUT /api/collections/import` accepts (and PocketBase's export writes), and an import that
// shows what it will do, collection by collection and field by field, before it is applied.
import type { ComponentChildren } from "preact";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { ClientResponseError, errorMessage, fieldErrors, pb, type CollectionModel } from "../../lib/api";
import type { Route } from "../../lib/router";
import { href } from "../../lib/router";
import { collections, loadCollections } from "../../lib/schema";
import { useStore } from "../../lib/store";
import { toast, toastError } from "../../lib/toast";
import { confirm } from "../../ui/dialog";
import { Toggle } from "../../ui/form";
import { Spinner } from "../../ui/misc";
import { copyToClipboard } from "../sql/clipboard";
import {
  exportable,
  parseImport,
  planImport,
  RULE_KEYS,
  type CollectionDiff,
  type FieldDiff,
  type ImportPlan,
  type ValueChange,
} from "./import-diff";

const FILE_NAME = "pb_schema.json";

// ---------------------------------------------------------------------------------------
// Export

/** `#/settings/export`: pick collections and download or copy their JSON. */
export function ExportCollections(props: { route: Route }) {
  void props;
  const list = useStore(collections);
  const [loading, setLoading] = useState(true);
  const [picked, setPicked] = useState<Set<string> | null>(null);

  useEffect(() => {
    loadCollections()
      .catch(toastError)
      .finally(() => setLoading(false));
  }, []);

  // Everything but the system collections, once the list is known.
  const selected = picked ?? new Set(list.filter((c) => !c.system).map((c) => c.id));
  const chosen = list.filter((c) => selected.has(c.id));
  const json = JSON.stringify(chosen.map(exportable), null, 2);

  const toggle = (id: string, on: boolean) => {
    const next = new Set(selected);
    if (on) next.add(id);
    else next.delete(id);
    setPicked(next);
  };
  const regular = list.filter((c) => !c.system);
  const system = list.filter((c) => c.system);

  const download = () => {
    const url = URL.createObjectURL(new Blob([json], { type: "application/json" }));
    const a = document.createElement("a");
    a.href = url;
    a.download = FILE_NAME;
    a.click();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  };

  return (
    <section class="card ie-card" aria-labelledby="export-title">
      <h2 id="export-title">Export collections</h2>
      <p class="muted">
        The definitions of the collections you pick, as JSON for{" "}
        <a href={href(["settings", "import"])}>Import collections</a> here or in another Plinth or PocketBase.
        Records are not included, nor OAuth2 providers (their secrets cannot be read back).
      </p>
      {loading && !list.length ? (
        <Spinner />
      ) : (
        <div class="export-layout">
          <fieldset class="export-pick">
            <legend>Collections</legend>
            <div class="btn-group">
              <button type="button" class="btn btn-small" onClick={() => setPicked(new Set(list.map((c) => c.id)))}>
                All
              </button>
              <button type="button" class="btn btn-small" onClick={() => setPicked(new Set())}>
                None
              </button>
            </div>
            <ul class="export-list" data-testid="export-list">
              {regular.map((c) => (
                <PickItem key={c.id} collection={c} checked={selected.has(c.id)} onChange={toggle} />
              ))}
            </ul>
            {system.length > 0 && (
              <>
                <p class="muted export-system-title">System collections</p>
                <ul class="export-list">
                  {system.map((c) => (
                    <PickItem key={c.id} collection={c} checked={selected.has(c.id)} onChange={toggle} />
                  ))}
                </ul>
              </>
            )}
          </fieldset>
          <div class="export-preview">
            <div class="row-between">
              <span class="muted" aria-live="polite">
                {chosen.length} collection{chosen.length === 1 ? "" : "s"} · {formatBytes(json.length)}
              </span>
              <span class="btn-group">
                <button
                  type="button"
                  class="btn"
                  disabled={!chosen.length}
                  onClick={() => void copyToClipboard(json, "Copied to the clipboard")}
                >
                  Copy
                </button>
                <button type="button" class="btn btn-primary" disabled={!chosen.length} onClick={download}>
                  Download {FILE_NAME}
                </button>
              </span>
            </div>
            <pre class="json-preview" tabIndex={0} aria-label="Exported JSON" data-testid="export-json">
              {json}
            </pre>
          </div>
        </div>
      )}
    </section>
  );
}

function PickItem(props: {
  collection: CollectionModel;
  checked: boolean;
  onChange: (id: string, on: boolean) => void;
}) {
  const c = props.collection;
  return (
    <li>
      <label class="export-item">
        <input
          type="checkbox"
          checked={props.checked}
          onChange={(e) => props.onChange(c.id, e.currentTarget.checked)}
        />
        <span>{c.name}</span>
        <span class="muted export-type">{c.type}</span>
      </label>
    </li>
  );
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  return `${(n / 1024).toFixed(n < 10240 ? 1 : 0)} KB`;
}

// ---------------------------------------------------------------------------------------
// Import

/** `#/settings/import`: paste or upload collections JSON, review the diff, apply. */
export function ImportCollections(props: { route: Route }) {
  void props;
  const list = useStore(collections);
  const [text, setText] = useState("");
  const [parsedText, setParsedText] = useState("");
  const [deleteMissing, setDeleteMissing] = useState(false);
  // PocketBase's `deleteMissing` covers both: unlisted collections and the fields an item
  // leaves out are deleted with it, kept without it.
  const keepMissingFields = !deleteMissing;
  const [busy, setBusy] = useState(false);
  const [serverError, setServerError] = useState<{ message: string; details: string[] } | null>(null);
  const [done, setDone] = useState("");
  const [counts, setCounts] = useState<Record<string, number | null>>({});
  const fileInput = useRef<HTMLInputElement>(null);

  useEffect(() => {
    loadCollections().catch(toastError);
  }, []);

  // Parsing follows the typing after a pause (the text may be large).
  useEffect(() => {
    const timer = setTimeout(() => setParsedText(text), 250);
    return () => clearTimeout(timer);
  }, [text]);

  const parsed = useMemo(() => parseImport(parsedText), [parsedText]);
  const plan = useMemo<ImportPlan | null>(
    () => (parsed.items ? planImport(parsed.items, list, { deleteMissing, keepMissingFields }) : null),
    [parsed, list, deleteMissing, keepMissingFields],
  );

  // Record counts of the collections that lose data, fetched once per collection.
  useEffect(() => {
    if (!plan) return;
    const wanted = plan.diffs.filter((d) => d.dataLoss && counts[d.id] === undefined && d.id);
    if (!wanted.length) return;
    setCounts((prev) => {
      const next = { ...prev };
      for (const d of wanted) next[d.id] = null;
      return next;
    });
    for (const d of wanted) {
      const stored = list.find((c) => c.id === d.id);
      if (!stored) continue;
      pb.collection(stored.id)
        .getList(1, 1, { fields: "id" })
        .then((page) => setCounts((prev) => ({ ...prev, [d.id]: page.totalItems })))
        .catch(() => undefined);
    }
  }, [plan]);

  const changes = plan ? plan.counts.new + plan.counts.changed + plan.counts.deleted : 0;
  const losses = plan ? plan.diffs.filter((d) => d.dataLoss) : [];
  const pending = text !== parsedText;

  const loadFile = async (file: File | undefined) => {
    if (!file) return;
    try {
      setText(await file.text());
      setDone("");
      setServerError(null);
    } catch (error) {
      toastError(error);
    }
  };

  const apply = async () => {
    if (!plan || !parsed.items || busy) return;
    // The review must describe the schema as it is now: reload it, and stop if it moved.
    try {
      const fresh = await loadCollections();
      const again = planImport(parsed.items, fresh, { deleteMissing, keepMissingFields });
      if (JSON.stringify(again.diffs) !== JSON.stringify(plan.diffs)) {
        toast("The collections changed on the server meanwhile: check the updated review, then import again.", "info", 8000);
        return;
      }
    } catch (error) {
      toastError(error);
      return;
    }
    if (losses.length) {
      const ok = await confirm({
        title: "Import and lose data?",
        body: (
          <>
            <p>This import deletes stored data:</p>
            <ul>
              {losses.map((d) => (
                <li key={d.key}>
                  <strong>{d.oldName ?? d.name}</strong>
                  {counts[d.id] != null ? ` (${counts[d.id]!.toLocaleString("en")} records)` : ""}:{" "}
                  {d.status === "deleted"
                    ? "the collection and all its records"
                    : d.fields
                        .filter((f) => f.loss)
                        .map((f) => f.oldName ?? f.name)
                        .join(", ")}
                </li>
              ))}
            </ul>
            <p>It cannot be undone. A backup first is a good idea.</p>
          </>
        ),
        confirm: "Import and delete",
        danger: true,
      });
      if (!ok) return;
    }
    setBusy(true);
    setServerError(null);
    try {
      await pb.collections.import(plan.payload as unknown as CollectionModel[], deleteMissing);
      const c = plan.counts;
      setDone(
        [c.new && `${c.new} new`, c.changed && `${c.changed} changed`, c.deleted && `${c.deleted} deleted`]
          .filter(Boolean)
          .join(", "),
      );
      setText("");
      setParsedText("");
      setCounts({});
      await loadCollections();
      toast("Collections imported");
    } catch (error) {
      const details = Object.values(fieldErrors(error));
      setServerError({
        message: error instanceof ClientResponseError ? error.response?.message || error.message : errorMessage(error),
        details,
      });
    } finally {
      setBusy(false);
    }
  };

  const fill = (value: string) => {
    setText(value);
    setDone("");
    setServerError(null);
  };

  return (
    <section class="card ie-card" aria-labelledby="import-title">
      <h2 id="import-title">Import collections</h2>
      <p class="muted">
        Paste collections JSON — from <a href={href(["settings", "export"])}>Export collections</a> here or
        from PocketBase — or load a file. You will see every change before anything is applied.
      </p>
      <div class="row import-actions">
        <button type="button" class="btn" onClick={() => fileInput.current?.click()}>
          Load from JSON file…
        </button>
        <input
          ref={fileInput}
          type="file"
          accept=".json,application/json"
          class="hidden"
          aria-label="JSON file to import"
          data-testid="import-file"
          onChange={(e) => {
            void loadFile(e.currentTarget.files?.[0]);
            e.currentTarget.value = "";
          }}
        />
        <button
          type="button"
          class="btn"
          title="Start from the current definitions of the non-system collections"
          onClick={() => fill(JSON.stringify(list.filter((c) => !c.system).map(exportable), null, 2))}
        >
          Start from the current schema
        </button>
        {text && (
          <button type="button" class="btn btn-link" onClick={() => fill("")}>
            Clear
          </button>
        )}
      </div>
      <label class="field">
        <span class="field-label">Collections JSON</span>
        <textarea
          class="code-input import-text"
          rows={14}
          spellcheck={false}
          value={text}
          placeholder={'[\n  {\n    "name": "posts",\n    "type": "base",\n    "fields": [{ "name": "title", "type": "text" }]\n  }\n]'}
          onInput={(e) => fill(e.currentTarget.value)}
          onDragOver={(e) => e.preventDefault()}
          onDrop={(e) => {
            const file = e.dataTransfer?.files?.[0];
            if (file) {
              e.preventDefault();
              void loadFile(file);
            }
          }}
          aria-invalid={parsed.error ? true : undefined}
          aria-describedby="import-parse-error"
          data-testid="import-text"
        />
        {parsed.error && !pending && (
          <small class="field-error" role="alert" id="import-parse-error">
            {parsed.error}
          </small>
        )}
      </label>

      <div class="import-options">
        <Toggle
          checked={deleteMissing}
          onChange={setDeleteMissing}
          name="deleteMissing"
          label="Delete missing collections and fields"
        />
        <p class="field-help">
          On: collections that are not in the import are deleted with their records, and fields an imported collection
          leaves out are deleted with their values. Off: both stay as they are. System collections and fields are
          always kept.
        </p>
      </div>

      {done && (
        <p class="import-done" role="status" data-testid="import-done">
          ✓ Collections imported ({done}).{" "}
          <a href={href(["collections"])}>Open the collections</a>
        </p>
      )}

      {plan && (
        <ImportReview
          plan={plan}
          counts={counts}
          onApply={() => void apply()}
          busy={busy}
          changes={changes}
          lossy={losses.length > 0}
          error={serverError}
        />
      )}
    </section>
  );
}

const STATUS_LABEL: Record<CollectionDiff["status"], string> = {
  new: "New",
  changed: "Changed",
  unchanged: "Unchanged",
  deleted: "Deleted",
};

function ImportReview(props: {
  plan: ImportPlan;
  counts: Record<string, number | null>;
  onApply: () => void;
  busy: boolean;
  changes: number;
  lossy: boolean;
  error: { message: string; details: string[] } | null;
}) {
  const { plan } = props;
  const errorBox = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (props.error) errorBox.current?.scrollIntoView({ block: "nearest" });
  }, [props.error]);
  // An unchanged collection that leaves fields out gets a card too, saying they are kept.
  const keepsFields = (d: CollectionDiff) => d.fields.some((f) => f.status === "kept" && !f.system);
  const shown = plan.diffs.filter((d) => d.status !== "unchanged" || keepsFields(d));
  const unchanged = plan.diffs.filter((d) => d.status === "unchanged" && !keepsFields(d));
  const order: Record<string, number> = { deleted: 0, changed: 1, new: 2, unchanged: 3 };
  shown.sort((a, b) => order[a.status] - order[b.status]);

  return (
    <div class="import-review" data-testid="import-review">
      <h3>Review the changes</h3>
      <p class="import-summary" aria-live="polite">
        {(["new", "changed", "deleted", "unchanged"] as const)
          .filter((s) => plan.counts[s])
          .map((s) => (
            <span key={s} class={`badge import-badge-${s}`}>
              {plan.counts[s]} {STATUS_LABEL[s].toLowerCase()}
            </span>
          ))}
      </p>
      {plan.problems.map((p, i) => (
        <p key={i} class="import-warning import-danger" role="alert">
          {p}
        </p>
      ))}
      {props.lossy && (
        <p class="import-warning import-danger" data-testid="import-data-loss">
          ⚠ This import deletes stored data: see the collections marked “data loss” below.
        </p>
      )}
      {shown.map((d) => (
        <CollectionCard key={d.key} diff={d} count={props.counts[d.id]} />
      ))}
      {unchanged.length > 0 && (
        <p class="muted import-unchanged">
          Unchanged: {unchanged.map((d) => d.name).join(", ")}
        </p>
      )}
      {props.error && (
        <div class="import-error" role="alert" data-testid="import-error" ref={errorBox}>
          <strong>{props.error.message}</strong>
          {props.error.details.map((d, i) => (
            <pre key={i}>{d}</pre>
          ))}
        </div>
      )}
      <div class="import-apply">
        {props.changes === 0 ? (
          <span class="muted">Nothing to change: the collections already match this JSON.</span>
        ) : (
          <span class="muted">Applied in one transaction: all of it or nothing.</span>
        )}
        <button
          type="button"
          class={`btn ${props.lossy ? "btn-danger" : "btn-primary"}`}
          disabled={props.busy || props.changes === 0 || plan.problems.length > 0}
          onClick={props.onApply}
          data-testid="import-apply"
        >
          {props.busy && <Spinner label="Importing" />}
          {props.lossy ? "Import and delete data" : "Import"}
        </button>
      </div>
    </div>
  );
}

function CollectionCard(props: { diff: CollectionDiff; count: number | null | undefined }) {
  const d = props.diff;
  const changedFields = d.fields.filter((f) => f.status !== "unchanged" && f.status !== "kept");
  const kept = d.fields.filter((f) => f.status === "kept" && !f.system);
  return (
    <article class={`import-coll import-coll-${d.status}`} data-testid={`import-diff-${d.name}`} aria-label={`${d.name}: ${STATUS_LABEL[d.status]}`}>
      <header class="import-coll-head">
        <span class={`badge import-badge-${d.status}`}>{STATUS_LABEL[d.status]}</span>
        <strong>{d.name}</strong>
        {d.oldName && <span class="muted">(was {d.oldName})</span>}
        <span class="muted">
          {d.type}
          {d.id ? ` · ${d.id}` : ""}
        </span>
        {d.dataLoss && (
          <span class="badge badge-danger">
            data loss{props.count != null ? ` · ${props.count.toLocaleString("en")} record${props.count === 1 ? "" : "s"}` : ""}
          </span>
        )}
      </header>
      {d.warnings.length > 0 && (
        <ul class="import-warnings">
          {d.warnings.map((w, i) => (
            <li key={i} class={`import-warning import-${w.level}`}>
              {w.level === "danger" ? "⚠ " : ""}
              {w.text}
            </li>
          ))}
        </ul>
      )}
      {d.status === "deleted" ? (
        <p class="muted import-fieldnames">Fields: {d.fields.map((f) => f.name).join(", ")}</p>
      ) : (
        <>
          {changedFields.length > 0 && (
            <Section title={d.status === "new" ? "Fields" : "Field changes"}>
              <ul class="import-fields">
                {changedFields.map((f) => (
                  <FieldLine key={f.id || f.name} field={f} />
                ))}
              </ul>
              {d.status === "new" && d.type !== "view" && !d.fields.some((f) => f.name === "id") && (
                <p class="muted import-note">The server adds the system fields (id{d.type === "auth" ? ", email, password…" : ""}) that are not listed.</p>
              )}
            </Section>
          )}
          {kept.length > 0 && (
            <p class="muted import-note" data-testid="import-kept">
              Not in the import, kept as they are: {kept.map((f) => f.name).join(", ")}. Turn on “Delete missing
              collections and fields” to delete them.
            </p>
          )}
          {d.rules.length > 0 && (
            <Section title={d.status === "new" ? "API rules" : "API rule changes"}>
              <ul class="import-props">
                {d.rules.map((r) => (
                  <li key={r.key}>
                    <span class="import-key">{RULE_LABELS[r.key] ?? r.key}</span>
                    <Change change={r} rule isNew={d.status === "new"} />
                  </li>
                ))}
              </ul>
            </Section>
          )}
          {(d.props.length > 0 || d.indexesAdded.length > 0 || d.indexesRemoved.length > 0) && (
            <Section title="Other changes">
              <ul class="import-props">
                {d.props.map((p) => (
                  <li key={p.key}>
                    <span class="import-key">{p.key}</span>
                    <Change change={p} isNew={d.status === "new"} />
                  </li>
                ))}
                {d.indexesRemoved.map((i) => (
                  <li key={"-" + i}>
                    <span class="import-key">index removed</span>
                    <code class="import-old">{i}</code>
                  </li>
                ))}
                {d.indexesAdded.map((i) => (
                  <li key={"+" + i}>
                    <span class="import-key">index added</span>
                    <code class="import-new">{i}</code>
                  </li>
                ))}
              </ul>
            </Section>
          )}
        </>
      )}
    </article>
  );
}

const RULE_LABELS: Record<string, string> & Record<(typeof RULE_KEYS)[number], string> = {
  listRule: "List/Search rule",
  viewRule: "View rule",
  createRule: "Create rule",
  updateRule: "Update rule",
  deleteRule: "Delete rule",
  authRule: "Auth rule",
  manageRule: "Manage rule",
};

function Section(props: { title: string; children: ComponentChildren }) {
  return (
    <div class="import-section">
      <h4>{props.title}</h4>
      {props.children}
    </div>
  );
}

const FIELD_LABEL: Record<FieldDiff["status"], string> = {
  added: "added",
  removed: "removed",
  renamed: "renamed",
  changed: "changed",
  unchanged: "unchanged",
  kept: "kept",
};

function FieldLine(props: { field: FieldDiff }) {
  const f = props.field;
  return (
    <li class={`import-field import-field-${f.status}`} data-field={f.name}>
      <span class={`badge import-fbadge-${f.status}`}>{FIELD_LABEL[f.status]}</span>
      <span class="import-fname">
        {f.oldName && (
          <>
            <code class="import-old">{f.oldName}</code> →{" "}
          </>
        )}
        <code>{f.name}</code>
      </span>
      <span class="muted">
        {f.oldType ? `${f.oldType} → ${f.type}` : f.type}
        {f.system ? " · system" : ""}
      </span>
      {f.loss && <span class="badge badge-danger">data loss</span>}
      {f.changes.length > 0 && (
        <ul class="import-options-changed">
          {f.changes.map((c) => (
            <li key={c.key}>
              <span class="import-key">{c.key}</span>
              <Change change={c} />
            </li>
          ))}
        </ul>
      )}
    </li>
  );
}

function Change(props: { change: ValueChange; rule?: boolean; isNew?: boolean }) {
  const show = (value: unknown) => {
    if (props.rule) {
      if (value === null || value === undefined) return <em class="muted">superusers only</em>;
      if (value === "") return <em>everyone</em>;
      return <code>{String(value)}</code>;
    }
    if (value === undefined) return <em class="muted">not set</em>;
    return <code>{typeof value === "string" ? JSON.stringify(value) : JSON.stringify(value)}</code>;
  };
  if (props.isNew) return <span class="import-new">{show(props.change.new)}</span>;
  return (
    <span class="import-change">
      <span class="import-old">{show(props.change.old)}</span>
      <span aria-label="becomes"> → </span>
      <span class="import-new">{show(props.change.new)}</span>
    </span>
  );
}
