// The records browser at #/collections/<name>: a paged, filtered, sorted table of one
// collection's records, kept live through realtime, with the record panel, bulk delete and
// export. Its state (filter, sort, page, perPage, the open record) lives in the hash query.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import type { RecordSubscription } from "pocketbase";
import { errorMessage, pb, type CollectionModel, type RecordModel } from "../../lib/api";
import { currentRoute, href, setQuery, type Route } from "../../lib/router";
import { appMeta, collections, collectionsLoaded } from "../../lib/schema";
import { useStore } from "../../lib/store";
import { toast } from "../../lib/toast";
import { confirm } from "../../ui/dialog";
import { RuleInput } from "../../ui/rule-input";
import { Empty, PageHeader, Pager, Spinner } from "../../ui/misc";
import { deleteMany } from "./bulk";
import {
  cycleSort,
  defaultSort,
  effectiveFilter,
  isQuickSearch,
  isView,
  listableFields,
  loadLocal,
  saveLocal,
} from "./fields";
import { fileToken } from "./file-urls";
import { ExportDialog } from "./export";
import { ApiPreview } from "./api-preview";
import { RecordPanel, type PanelTarget } from "./panel";
import { ColumnPicker, RecordsTable } from "./table";
import { remoteEvents } from "./live";

const PER_PAGE_CHOICES = [10, 20, 30, 50, 100, 200, 500];
const DEFAULT_PER_PAGE = 30;
const HIGHLIGHT_MS = 2500;


interface ListState {
  items: RecordModel[];
  totalItems: number;
  page: number;
  perPage: number;
  token: string;
}

function hiddenKey(collection: CollectionModel) {
  return `plinth.records.hidden.${collection.id}`;
}

export function RecordsPage(props: { name: string; route: Route }) {
  const list = useStore(collections);
  const loaded = useStore(collectionsLoaded);
  const collection = list.find((c) => c.name === props.name) ?? list.find((c) => c.id === props.name);

  if (!collection) {
    return (
      <main id="main" class="page">
        {loaded ? (
          <Empty>
            No collection named <strong>{props.name}</strong>.{" "}
            <a href={href(["collections"])}>Back to the collections</a>
          </Empty>
        ) : (
          <Spinner />
        )}
      </main>
    );
  }
  // A new collection gets a fresh page (state, subscription, selection).
  return <Records key={collection.id} collection={collection} route={props.route} />;
}

function Records(props: { collection: CollectionModel; route: Route }) {
  const { collection, route } = props;
  const meta = useStore(appMeta);
  const readOnly = isView(collection);

  // The query: what the user applied (filter, sort, page, perPage) and the open record.
  const q = route.query;
  const filter = q.get("filter") ?? "";
  const sort = q.get("sort") ?? "";
  const page = Math.max(1, Number(q.get("page")) || 1);
  const perPageRaw = Number(q.get("perPage")) || DEFAULT_PER_PAGE;
  const perPage = Math.min(1000, Math.max(1, perPageRaw));
  const openId = q.get("record") ?? "";

  const updateQuery = (patch: Record<string, string | number | undefined>) => {
    // The live hash, not this render's: callers may run after later navigation.
    const next: Record<string, string | undefined> = {};
    currentRoute().query.forEach((value, key) => (next[key] = value));
    for (const [key, value] of Object.entries(patch)) next[key] = value === undefined ? undefined : String(value);
    if (next.page === "1") next.page = undefined;
    if (next.perPage === String(DEFAULT_PER_PAGE)) next.perPage = undefined;
    setQuery(next);
  };

  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [draftFilter, setDraftFilter] = useState(filter);
  useEffect(() => setDraftFilter(filter), [filter]);
  // A new filter is a new set of records: a selection made under the old one would delete
  // records the user no longer sees.
  const firstFilter = useRef(true);
  useEffect(() => {
    if (firstFilter.current) firstFilter.current = false;
    else setSelected(new Set());
  }, [filter]);

  const [hidden, setHiddenState] = useState<string[]>(() => loadLocal(hiddenKey(collection), [] as string[]));
  const setHidden = (next: string[]) => {
    setHiddenState(next);
    saveLocal(hiddenKey(collection), next.length ? next : undefined);
  };
  const fields = useMemo(
    () => listableFields(collection).filter((f) => !hidden.includes(f.name)),
    [collection, hidden],
  );
  const expand = fields
    .filter((f) => f.type === "relation")
    .map((f) => f.name)
    .join(",");
  // Protected files need a file token; one is fetched with each load of the page (the server's
  // tokens last minutes), so thumbnails keep their URLs between loads.
  const needsToken = fields.some((f) => f.type === "file" && f.protected);

  const [data, setData] = useState<ListState | null>(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState("");
  const [highlighted, setHighlighted] = useState<Set<string>>(new Set());
  const [deleting, setDeleting] = useState<{ done: number; total: number } | null>(null);
  const [panel, setPanel] = useState<PanelTarget | null>(null);
  const [exporting, setExporting] = useState(false);
  const [preview, setPreview] = useState(false);

  const sent = effectiveFilter(filter, collection);
  const sentSort = sort || defaultSort(collection);
  const seq = useRef(0);

  const load = async (silent = false) => {
    const mine = ++seq.current;
    if (!silent) setLoading(true);
    try {
      const [result, token] = await Promise.all([
        pb.collection(collection.name).getList(page, perPage, {
          filter: sent || undefined,
          sort: sentSort || undefined,
          expand: expand || undefined,
          skipTotal: false,
        }),
        needsToken ? fileToken().catch(() => "") : Promise.resolve(""),
      ]);
      if (mine !== seq.current) return null;
      setData({ items: result.items, totalItems: result.totalItems, page: result.page, perPage: result.perPage, token });
      setError("");
      // Past the end (after deletes, or a stale link): go to the last page.
      if (!result.items.length && page > 1 && result.totalPages >= 1 && page > result.totalPages) {
        updateQuery({ page: result.totalPages });
      }
      return result.items;
    } catch (e) {
      if (mine !== seq.current) return null;
      if (!silent) setData(null);
      setError(errorMessage(e));
      return null;
    } finally {
      if (mine === seq.current) setLoading(false);
    }
  };

  const loadRef = useRef(load);
  loadRef.current = load;

  useEffect(() => {
    void load();
  }, [collection.id, sent, sentSort, page, perPage, expand, needsToken]);

  // The record named in the query opens in the panel (reload keeps it open).
  useEffect(() => {
    if (openId && (!panel || panel.kind !== "edit" || panel.id !== openId)) setPanel({ kind: "edit", id: openId });
    if (!openId && panel?.kind === "edit") setPanel(null);
  }, [openId]);

  // Live updates: changed rows are patched in at once and the page is re-read shortly after
  // (one request per burst of events), new rows are highlighted.
  const pendingHighlight = useRef<Set<string>>(new Set());
  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let firstAt = 0;
    let eventSeq = 0;
    let unsubscribe: (() => Promise<void>) | null = null;
    let stopped = false;
    const flush = async () => {
      timer = undefined;
      firstAt = 0;
      const items = await loadRef.current(true);
      if (!items) return;
      const present = new Set(items.map((r) => r.id));
      const flash = [...pendingHighlight.current].filter((id) => present.has(id));
      pendingHighlight.current.clear();
      if (flash.length) {
        setHighlighted((prev) => new Set([...prev, ...flash]));
        setTimeout(() => {
          setHighlighted((prev) => {
            const next = new Set(prev);
            for (const id of flash) next.delete(id);
            return next;
          });
        }, HIGHLIGHT_MS);
      }
    };
    const schedule = () => {
      const now = Date.now();
      if (!firstAt) firstAt = now;
      if (timer) clearTimeout(timer);
      // Debounced, but never held back more than 2 s under a steady stream of events.
      timer = setTimeout(flush, now - firstAt > 2000 ? 0 : 250);
    };
    const onEvent = (e: RecordSubscription<RecordModel>) => {
      const record = e.record;
      if (!record?.id) return;
      remoteEvents.set({ action: e.action, record, seq: ++eventSeq });
      if (e.action === "delete") {
        setData((prev) =>
          prev && prev.items.some((r) => r.id === record.id)
            ? { ...prev, items: prev.items.filter((r) => r.id !== record.id), totalItems: prev.totalItems - 1 }
            : prev,
        );
        setSelected((prev) => {
          if (!prev.has(record.id)) return prev;
          const next = new Set(prev);
          next.delete(record.id);
          return next;
        });
        schedule();
        return;
      }
      if (e.action === "update") {
        setData((prev) =>
          prev
            ? { ...prev, items: prev.items.map((r) => (r.id === record.id ? { ...record, expand: r.expand } : r)) }
            : prev,
        );
      }
      pendingHighlight.current.add(record.id);
      schedule();
    };
    pb.collection(collection.name)
      .subscribe("*", onEvent)
      .then((unsub) => {
        if (stopped) void unsub().catch(() => undefined);
        else unsubscribe = unsub;
      })
      .catch(() => {
        // Realtime is a convenience here: the table still works, refresh by hand.
      });
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
      remoteEvents.set(null);
      void unsubscribe?.().catch(() => undefined);
    };
  }, [collection.name]);

  const applyFilter = () => {
    if (draftFilter.trim() === filter.trim()) void load();
    else updateQuery({ filter: draftFilter.trim() || undefined, page: undefined });
  };

  const onSort = (name: string, add: boolean) => {
    updateQuery({ sort: cycleSort(sort, name, add) || undefined, page: undefined });
  };

  const toggle = (id: string) =>
    setSelected((prev) => {
      const next = new Set(prev);
      if (next.has(id)) next.delete(id);
      else next.add(id);
      return next;
    });
  const toggleAll = () => {
    const ids = data?.items.map((r) => r.id) ?? [];
    setSelected((prev) => {
      const all = ids.every((id) => prev.has(id));
      const next = new Set(prev);
      for (const id of ids) {
        if (all) next.delete(id);
        else next.add(id);
      }
      return next;
    });
  };

  const bulkDelete = async () => {
    const ids = [...selected];
    if (!ids.length) return;
    const ok = await confirm({
      title: `Delete ${ids.length} record${ids.length === 1 ? "" : "s"}?`,
      body: (
        <p>
          This permanently deletes {ids.length === 1 ? "the selected record" : `the ${ids.length} selected records`}{" "}
          from <strong>{collection.name}</strong>, with their files. Records that reference them may be changed or
          deleted too (cascade).
        </p>
      ),
      confirm: `Delete ${ids.length}`,
      danger: true,
    });
    if (!ok) return;
    setDeleting({ done: 0, total: ids.length });
    const result = await deleteMany(collection.name, ids, (done) => setDeleting({ done, total: ids.length }));
    setDeleting(null);
    setSelected(new Set(result.failed.map((f) => f.id)));
    if (result.failed.length) {
      const first = result.failed.slice(0, 3).map((f) => `${f.id}: ${f.message}`);
      toast(
        `Deleted ${result.deleted.length} of ${ids.length}. ${result.failed.length} failed (still selected) — ${first.join("; ")}${
          result.failed.length > 3 ? "; …" : ""
        }`,
        "error",
        12000,
      );
    } else {
      toast(`Deleted ${result.deleted.length} record${result.deleted.length === 1 ? "" : "s"}.`);
    }
    void load(true);
  };

  const openRecord = (record: RecordModel) => {
    setPanel({ kind: "edit", id: record.id });
    updateQuery({ record: record.id });
  };
  const closePanel = () => {
    setPanel(null);
    if (openId) updateQuery({ record: undefined });
  };

  const total = data?.totalItems ?? 0;
  const filterRejected = !!error && !!filter;

  return (
    <main id="main" class="page records-page">
      <PageHeader
        crumbs={["Collections"]}
        title={
          <>
            <span data-testid="collection-title">{collection.name}</span>
            {readOnly && <span class="badge">view</span>}
            {collection.type === "auth" && <span class="badge">auth</span>}
            <span class="muted records-count" data-testid="records-count" aria-live="polite">
              {data ? `${total.toLocaleString("en")} record${total === 1 ? "" : "s"}` : ""}
            </span>
          </>
        }
        actions={
          <>
            {!meta.hideControls && (
              <a
                class="btn"
                href={href(["collections", collection.name, "edit"])}
                aria-label="Edit collection"
                title="Edit collection (fields, rules, indexes)"
              >
                ⚙ <span class="hide-narrow">Edit collection</span>
              </a>
            )}
            <button
              type="button"
              class="btn"
              onClick={() => void load()}
              aria-label="Refresh"
              title="Refresh"
              disabled={loading}
            >
              ↻ <span class="hide-narrow">Refresh</span>
            </button>
            <button type="button" class="btn" onClick={() => setPreview(true)} title="API preview" aria-label="API preview">
              {"</>"} <span class="hide-narrow">API</span>
            </button>
            <button type="button" class="btn" onClick={() => setExporting(true)} title="Export records" aria-label="Export records">
              ⤓ <span class="hide-narrow">Export</span>
            </button>
            {!readOnly && (
              <button
                type="button"
                class="btn btn-primary"
                onClick={() => setPanel({ kind: "new" })}
                data-testid="new-record"
              >
                + New record
              </button>
            )}
          </>
        }
      />

      <form
        class="filter-bar"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          applyFilter();
        }}
      >
        <div class="filter-input">
          <RuleInput
            value={draftFilter}
            onValue={setDraftFilter}
            collection={collection}
            mode="filter"
            placeholder={`Search, or filter like: ${filterExample(collection)}`}
            onSubmit={applyFilter}
            aria-label="Filter records"
            name="filter"
          />
        </div>
        <button type="submit" class="btn" data-testid="apply-filter">
          Filter
        </button>
        <ColumnPicker collection={collection} hidden={hidden} onHidden={setHidden} />
        {(filter || draftFilter) && (
          <button
            type="button"
            class="btn btn-link"
            onClick={() => {
              setDraftFilter("");
              updateQuery({ filter: undefined, page: undefined });
            }}
          >
            Clear
          </button>
        )}
      </form>
      {filter && isQuickSearch(filter) && !error && (
        <p class="muted filter-note">
          Searching the text fields for “{filter}”: <code class="mono">{excerptFilter(sent)}</code>
        </p>
      )}
      {error && (
        <div class="form-error filter-error" role="alert" data-testid="list-error">
          {filterRejected ? "The server rejected the filter or sort: " : "Could not load the records: "}
          {error}
          {filterRejected && (
            <span class="muted"> Check the field names and operators (e.g. <code>title ~ "abc"</code>).</span>
          )}
        </div>
      )}

      {selected.size > 0 && !readOnly && (
        <div class="bulk-bar" role="region" aria-label="Selection" data-testid="bulk-bar">
          <span>
            <strong>{selected.size}</strong> selected
          </span>
          <button type="button" class="btn btn-link" onClick={() => setSelected(new Set())} disabled={!!deleting}>
            Clear selection
          </button>
          <button type="button" class="btn btn-danger" onClick={bulkDelete} disabled={!!deleting} data-testid="bulk-delete">
            {deleting ? `Deleting ${deleting.done}/${deleting.total}…` : `Delete selected (${selected.size})`}
          </button>
        </div>
      )}

      {data === null && loading ? (
        <div class="records-loading">
          <Spinner label="Loading records" />
        </div>
      ) : data && data.items.length === 0 ? (
        <div class="table-wrap">
          <Empty>
            {filter ? (
              <>
                No records match the filter.{" "}
                <button
                  type="button"
                  class="btn btn-link"
                  onClick={() => updateQuery({ filter: undefined, page: undefined })}
                >
                  Clear the filter
                </button>
              </>
            ) : page > 1 ? (
              "No records on this page."
            ) : (
              <>
                No records yet.
                {!readOnly && (
                  <p>
                    <button type="button" class="btn btn-primary" onClick={() => setPanel({ kind: "new" })}>
                      + New record
                    </button>
                  </p>
                )}
              </>
            )}
          </Empty>
        </div>
      ) : data ? (
        <RecordsTable
          collection={collection}
          fields={fields}
          records={data.items}
          sort={sort}
          onSort={onSort}
          selected={selected}
          onToggle={toggle}
          onToggleAll={toggleAll}
          selectable={!readOnly}
          highlighted={highlighted}
          onOpen={openRecord}
          token={data.token}
          busy={loading}
        />
      ) : null}

      {data && (
        <div class="records-foot">
          <label class="per-page">
            <span>Per page</span>
            <select
              value={String(perPage)}
              onChange={(e) => updateQuery({ perPage: Number(e.currentTarget.value), page: undefined })}
            >
              {(PER_PAGE_CHOICES.includes(perPage) ? PER_PAGE_CHOICES : [...PER_PAGE_CHOICES, perPage].sort((a, b) => a - b)).map(
                (n) => (
                  <option key={n} value={n}>
                    {n}
                  </option>
                ),
              )}
            </select>
          </label>
          <Pager page={page} perPage={perPage} total={total} onPage={(p) => updateQuery({ page: p })} />
        </div>
      )}

      {panel && (
        <RecordPanel
          key={panel.kind === "edit" ? panel.id : `new-${panel.seq ?? 0}`}
          collection={collection}
          target={panel}
          onClose={closePanel}
          onSaved={(record, created) => {
            if (created) {
              pendingHighlight.current.add(record.id);
              setHighlighted((prev) => new Set([...prev, record.id]));
              setTimeout(
                () =>
                  setHighlighted((prev) => {
                    const next = new Set(prev);
                    next.delete(record.id);
                    return next;
                  }),
                HIGHLIGHT_MS,
              );
            }
            void load(true);
          }}
          onDeleted={(id) => {
            setSelected((prev) => {
              const next = new Set(prev);
              next.delete(id);
              return next;
            });
            closePanel();
            void load(true);
          }}
          onDuplicate={(prefill) => {
            setPanel({ kind: "new", prefill, seq: Date.now() });
            if (openId) updateQuery({ record: undefined });
          }}
          onOpenCreated={(record) => {
            setPanel({ kind: "edit", id: record.id });
            updateQuery({ record: record.id });
          }}
        />
      )}
      {exporting && (
        <ExportDialog
          collection={collection}
          filter={sent}
          sort={sentSort}
          total={data?.totalItems ?? null}
          onClose={() => setExporting(false)}
        />
      )}
      {preview && (
        <ApiPreview
          collection={collection}
          filter={sent}
          sort={sentSort}
          page={page}
          perPage={perPage}
          expand={expand}
          onClose={() => setPreview(false)}
        />
      )}
    </main>
  );
}

function filterExample(collection: CollectionModel): string {
  const text = (collection.fields ?? []).find((f) => f.type === "text" && !f.system);
  return `${text?.name ?? "id"} ~ "abc"`;
}

function excerptFilter(text: string): string {
  return text.length > 140 ? text.slice(0, 139) + "…" : text;
}
