// `#/logs`: the request and app logs. The filter, quick toggles and the open entry live in the
// URL's query, so a filtered view can be linked and survives a reload:
//   ?filter=<filter language>&level=<min level>&su=1 (with superusers' requests)
//   &range=1h|24h|7d|30d (default: everything kept)&hour=<UTC hour>&sort=<sort>&log=<id>
import type { LogModel } from "pocketbase";
import { useEffect, useRef, useState } from "preact/hooks";
import { ClientResponseError, errorMessage, pb } from "../../lib/api";
import { href, setQuery, type Route } from "../../lib/router";
import { toast, toastError } from "../../lib/toast";
import { confirm } from "../../ui/dialog";
import { Spinner, PageHeader, formatDate } from "../../ui/misc";
import { RuleInput } from "../../ui/rule-input";
import { LogsChart, parseServerDate, serverDate, type HourStat } from "./chart";
import { LogDetail } from "./detail";
import { LevelBadge, formatMs, statusClass } from "./format";

const PER_PAGE = 50;

const RANGES: Record<string, { label: string; hours: number }> = {
  "1h": { label: "Last hour", hours: 1 },
  "24h": { label: "Last 24 hours", hours: 24 },
  "7d": { label: "Last 7 days", hours: 24 * 7 },
  "30d": { label: "Last 30 days", hours: 24 * 30 },
};

const SORTS = [
  { value: "", label: "Newest first", sort: "-created" },
  { value: "created", label: "Oldest first", sort: "created" },
  { value: "slow", label: "Slowest first", sort: "-data.execTime,-created" },
];

const LEVELS = [
  { value: "", label: "All levels" },
  { value: "0", label: "Info and above" },
  { value: "4", label: "Warnings and above" },
  { value: "8", label: "Errors only" },
];

/** A synthetic collection of the log columns, for the filter input's checks and completions. */
const LOGS_COLLECTION = {
  id: "_logs",
  name: "_logs",
  type: "base",
  system: true,
  fields: [
    { id: "id", name: "id", type: "text", system: true, primaryKey: true },
    { id: "created", name: "created", type: "autodate", system: true },
    { id: "level", name: "level", type: "number", system: true },
    { id: "message", name: "message", type: "text", system: true },
    { id: "data", name: "data", type: "json", system: true },
  ],
} as const;

const EXAMPLES = [
  { label: "Failed requests", filter: "data.status >= 400" },
  { label: "Slow (> 500 ms)", filter: "data.execTime > 500" },
  { label: "Writes", filter: 'data.method != "GET"' },
  { label: "Auth requests", filter: 'data.url ~ "/auth-"' },
  { label: "Guests", filter: 'data.auth = ""' },
];

/** The filter sent to the server, built from the page's controls. */
export function buildFilter(q: URLSearchParams, forStats = false): string {
  const parts: string[] = [];
  const text = (q.get("filter") ?? "").trim();
  if (text) parts.push(`(${text})`);
  if (q.get("su") !== "1") parts.push('data.auth != "_superusers"');
  const level = q.get("level") ?? "";
  if (level !== "" && Number.isFinite(Number(level))) parts.push(`level >= ${Number(level)}`);
  const hour = q.get("hour");
  if (hour && !forStats) {
    const start = parseServerDate(hour);
    if (!Number.isNaN(start.getTime())) {
      parts.push(`created >= "${serverDate(start)}" && created < "${serverDate(new Date(start.getTime() + 3600_000))}"`);
    }
  }
  const range = RANGES[q.get("range") ?? ""];
  if (range) parts.push(`created >= "${serverDate(rangeStart(range.hours))}"`);
  return parts.join(" && ");
}

function rangeStart(hours: number): Date {
  const now = Date.now();
  return new Date(Math.floor(now / 3600_000) * 3600_000 - (hours - 1) * 3600_000);
}

export function LogsPage(props: { route: Route }) {
  const q = props.route.query;
  const queryObject = () => Object.fromEntries(q.entries());
  const update = (changes: Record<string, string | undefined>) => setQuery({ ...queryObject(), ...changes });

  const applied = q.get("filter") ?? "";
  const [text, setText] = useState(applied);
  useEffect(() => setText(applied), [applied]);

  const [items, setItems] = useState<LogModel[]>([]);
  const [total, setTotal] = useState(0);
  const [page, setPage] = useState(1);
  const [stats, setStats] = useState<HourStat[]>([]);
  const [loading, setLoading] = useState(true);
  const [loadingMore, setLoadingMore] = useState(false);
  const [error, setError] = useState("");
  const [refreshTick, setRefreshTick] = useState(0);
  const [now, setNow] = useState(() => new Date());
  const generation = useRef(0);
  const [live, setLive] = useState(false);
  const pageRef = useRef(1);
  pageRef.current = page;

  // Auto-refresh: the first page and the chart every 5 s while the tab is visible.
  useEffect(() => {
    if (!live) return;
    const timer = setInterval(() => {
      // Not while more pages are loaded: a refresh would take them away under the reader.
      if (document.visibilityState === "visible" && pageRef.current === 1) setRefreshTick((n) => n + 1);
    }, 5000);
    return () => clearInterval(timer);
  }, [live]);

  const listFilter = buildFilter(q);
  const statsFilter = buildFilter(q, true);
  const sort = (SORTS.find((s) => s.value === (q.get("sort") ?? "")) ?? SORTS[0]).sort;

  // As-you-type filtering, debounced; Enter applies at once.
  useEffect(() => {
    if (text === applied) return;
    const timer = setTimeout(() => update({ filter: text || undefined }), 600);
    return () => clearTimeout(timer);
  }, [text]);

  useEffect(() => {
    const gen = ++generation.current;
    setLoading(true);
    setError("");
    setNow(new Date());
    Promise.all([
      pb.logs.getList(1, PER_PAGE, { filter: listFilter, sort }),
      pb.logs.getStats({ filter: statsFilter }),
    ])
      .then(([list, hourly]) => {
        if (gen !== generation.current) return;
        setItems(list.items);
        setTotal(list.totalItems);
        setPage(1);
        setStats(hourly);
      })
      .catch((e) => {
        if (gen !== generation.current) return;
        setItems([]);
        setTotal(0);
        setStats([]);
        setError(filterError(e));
      })
      .finally(() => gen === generation.current && setLoading(false));
  }, [listFilter, statsFilter, sort, refreshTick]);

  const loadMore = async () => {
    if (loadingMore || items.length >= total) return;
    const gen = generation.current;
    setLoadingMore(true);
    try {
      const next = await pb.logs.getList(page + 1, PER_PAGE, { filter: listFilter, sort, skipTotal: true });
      if (gen !== generation.current) return;
      const seen = new Set(items.map((i) => i.id));
      setItems([...items, ...next.items.filter((i) => !seen.has(i.id))]);
      setPage(page + 1);
    } catch (e) {
      toastError(e);
    } finally {
      setLoadingMore(false);
    }
  };

  // Infinite scroll: the sentinel under the table loads the next page when it comes into view.
  const sentinel = useRef<HTMLDivElement>(null);
  const loadMoreRef = useRef(loadMore);
  loadMoreRef.current = loadMore;
  useEffect(() => {
    const el = sentinel.current;
    if (!el) return;
    const observer = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) void loadMoreRef.current();
    });
    observer.observe(el);
    return () => observer.disconnect();
  }, [items.length > 0]);

  const clearAll = async () => {
    const ok = await confirm({
      title: "Delete all logs",
      body: <p>Delete every stored log entry? This cannot be undone.</p>,
      confirm: "Delete all",
      danger: true,
    });
    if (!ok) return;
    try {
      await pb.logs.truncate();
      toast("All logs deleted.");
      setRefreshTick((n) => n + 1);
    } catch (e) {
      toastError(e);
    }
  };

  const openId = q.get("log") ?? "";
  const rangeKey = q.get("range") ?? "";
  const range = RANGES[rangeKey];
  const includeSuperusers = q.get("su") === "1";

  return (
    <main id="main" class="page logs-page">
      <PageHeader
        title="Logs"
        actions={
          <>
            <button type="button" class="btn" onClick={() => setRefreshTick((n) => n + 1)} disabled={loading}>
              ↻ Refresh
            </button>
            <a class="btn" href={href(["settings", "logs"])}>
              ⚙ Logs settings
            </a>
            <button type="button" class="btn btn-outline-danger" onClick={clearAll}>
              Delete all
            </button>
          </>
        }
      />

      <div class="logs-filters card">
        <form
          class="logs-filter-row"
          role="search"
          onSubmit={(e) => {
            e.preventDefault();
            update({ filter: text || undefined });
          }}
        >
          <div class="logs-filter-input">
            <RuleInput
              value={text}
              onValue={setText}
              collection={LOGS_COLLECTION as never}
              mode="filter"
              aria-label="Filter logs"
              placeholder="Filter, e.g. data.status >= 400"
              onSubmit={() => update({ filter: text || undefined })}
            />
          </div>
          <button type="submit" class="btn">
            Apply
          </button>
          {(applied || text) && (
            <button
              type="button"
              class="btn"
              onClick={() => {
                setText("");
                update({ filter: undefined });
              }}
            >
              Clear
            </button>
          )}
        </form>
        <div class="logs-controls">
          <label class="toggle">
            <input
              type="checkbox"
              role="switch"
              checked={includeSuperusers}
              onChange={(e) => update({ su: e.currentTarget.checked ? "1" : undefined })}
            />
            <span>Include superusers' requests</span>
          </label>
          <label class="toggle">
            <input type="checkbox" role="switch" checked={live} onChange={(e) => setLive(e.currentTarget.checked)} />
            <span>Auto-refresh</span>
          </label>
          <label class="inline-select">
            <span class="sr-only">Level</span>
            <select value={q.get("level") ?? ""} onChange={(e) => update({ level: e.currentTarget.value || undefined })} aria-label="Level">
              {LEVELS.map((l) => (
                <option key={l.value} value={l.value}>
                  {l.label}
                </option>
              ))}
            </select>
          </label>
          <label class="inline-select">
            <span class="sr-only">Period</span>
            <select
              value={rangeKey}
              aria-label="Period"
              onChange={(e) => update({ range: e.currentTarget.value || undefined, hour: undefined })}
            >
              <option value="">Everything kept</option>
              {Object.entries(RANGES).map(([key, r]) => (
                <option key={key} value={key}>
                  {r.label}
                </option>
              ))}
            </select>
          </label>
          <label class="inline-select">
            <span class="sr-only">Sort</span>
            <select value={q.get("sort") ?? ""} aria-label="Sort" onChange={(e) => update({ sort: e.currentTarget.value || undefined })}>
              {SORTS.map((s) => (
                <option key={s.value} value={s.value}>
                  {s.label}
                </option>
              ))}
            </select>
          </label>
        </div>
        <div class="logs-examples">
          <span class="muted small">Try:</span>
          {EXAMPLES.map((ex) => (
            <button
              key={ex.label}
              type="button"
              class="ops-chip"
              aria-pressed={applied === ex.filter}
              onClick={() => {
                const next = applied === ex.filter ? "" : ex.filter;
                setText(next);
                update({ filter: next || undefined });
              }}
            >
              {ex.label}
            </button>
          ))}
        </div>
      </div>

      {error ? (
        <div class="card form-error" role="alert" data-testid="logs-error">
          {error}
        </div>
      ) : (
        <LogsChart
          stats={stats}
          from={range ? rangeStart(range.hours) : null}
          to={now}
          selected={q.get("hour") ?? undefined}
          loading={loading}
          onPick={(hour) => update({ hour })}
        />
      )}

      <div class={`table-wrap logs-table-wrap${error ? " hidden" : ""}`}>
        <table class="table logs-table" data-testid="logs-table">
          <thead>
            <tr>
              <th>Level</th>
              <th>Status</th>
              <th class="logs-col-message">Message</th>
              <th>Time</th>
              <th>Auth</th>
              <th>Created</th>
            </tr>
          </thead>
          <tbody>
            {items.map((item) => (
              <LogRow
                key={item.id}
                item={item}
                active={item.id === openId}
                link={href(["logs"], { ...queryObject(), log: item.id })}
              />
            ))}
          </tbody>
        </table>
        {loading && !items.length && (
          <div class="empty">
            <Spinner label="Loading logs" />
          </div>
        )}
        {!loading && !items.length && !error && (
          <div class="empty" data-testid="logs-empty">
            No log entries match.
            {!includeSuperusers && <div class="small">Superusers' requests are hidden; switch them on above to see them.</div>}
          </div>
        )}
      </div>
      <div ref={sentinel} class="logs-more">
        {items.length > 0 && (
          <span class="muted">
            {items.length.toLocaleString("en")} of {total.toLocaleString("en")}
          </span>
        )}
        {items.length < total && (
          <button type="button" class="btn" disabled={loadingMore} onClick={() => void loadMore()}>
            {loadingMore ? "Loading…" : "Load more"}
          </button>
        )}
      </div>

      {openId && (
        <LogDetail
          id={openId}
          initial={items.find((i) => i.id === openId)}
          onClose={() => update({ log: undefined })}
          onFilter={(filter) => {
            setText(filter);
            update({ filter, log: undefined, hour: undefined });
          }}
        />
      )}
    </main>
  );
}

function filterError(e: unknown): string {
  if (e instanceof ClientResponseError && e.status === 400) {
    return `The filter is not valid: ${errorMessage(e)}`;
  }
  return errorMessage(e);
}

function LogRow(props: { item: LogModel; active: boolean; link: string }) {
  const { item } = props;
  const data = (item.data ?? {}) as Record<string, unknown>;
  const status = typeof data.status === "number" ? data.status : undefined;
  const exec = typeof data.execTime === "number" ? data.execTime : undefined;
  const auth = typeof data.auth === "string" ? data.auth : "";
  return (
    <tr
      class={`log-row${props.active ? " selected" : ""}`}
      data-log={item.id}
      onClick={(e) => {
        if ((e.target as HTMLElement).closest("a")) return;
        location.hash = props.link.slice(1);
      }}
    >
      <td>
        <LevelBadge level={item.level} />
      </td>
      <td>{status !== undefined && <span class={`badge ${statusClass(status)}`}>{status}</span>}</td>
      <td class="logs-col-message">
        <a href={props.link} class="log-link" title={item.message}>
          {item.message}
        </a>
      </td>
      <td class="num">{exec !== undefined ? formatMs(exec) : ""}</td>
      <td>{auth ? <span class="badge">{auth}</span> : data.type === "request" ? <span class="muted">guest</span> : ""}</td>
      <td class="nowrap">{formatDate(item.created)}</td>
    </tr>
  );
}
