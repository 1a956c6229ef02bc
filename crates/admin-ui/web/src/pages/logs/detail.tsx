// One log entry in a side panel: every column, each `data` key, and the raw JSON.
import type { LogModel } from "pocketbase";
import { useEffect, useState } from "preact/hooks";
import { errorMessage, pb } from "../../lib/api";
import { toast } from "../../lib/toast";
import { Dialog } from "../../ui/dialog";
import { Spinner, formatDate } from "../../ui/misc";
import { LevelBadge, formatMs, statusClass } from "./format";

/** The order the request keys are shown in; other keys follow alphabetically. */
const ORDER = [
  "type",
  "method",
  "url",
  "status",
  "execTime",
  "auth",
  "authId",
  "userIP",
  "remoteIP",
  "referer",
  "userAgent",
  "error",
  "details",
];

export function LogDetail(props: {
  id: string;
  initial?: LogModel;
  onClose: () => void;
  onFilter: (filter: string) => void;
}) {
  const [log, setLog] = useState<LogModel | undefined>(props.initial);
  const [error, setError] = useState("");

  useEffect(() => {
    let live = true;
    setError("");
    if (props.initial?.id !== props.id) setLog(undefined);
    pb.logs
      .getOne(props.id)
      .then((entry) => live && setLog(entry))
      .catch((e) => live && setError(errorMessage(e)));
    return () => {
      live = false;
    };
  }, [props.id]);

  const data = (log?.data ?? {}) as Record<string, unknown>;
  const keys = Object.keys(data).sort((a, b) => {
    const ia = ORDER.indexOf(a);
    const ib = ORDER.indexOf(b);
    if (ia >= 0 || ib >= 0) return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib);
    return a.localeCompare(b);
  });
  const json = log ? JSON.stringify(log, null, 2) : "";
  const quote = (v: unknown) => JSON.stringify(String(v));

  return (
    <Dialog
      open
      variant="panel"
      wide
      title={log ? (data.type === "request" ? "Request log" : "Log entry") : "Log entry"}
      onClose={props.onClose}
      testId="log-detail"
      footer={
        <>
          <button
            type="button"
            class="btn"
            disabled={!log}
            onClick={() => {
              if (!navigator.clipboard) return toast("This browser does not allow copying here.", "error");
              navigator.clipboard.writeText(json).then(
                () => toast("Copied the entry as JSON."),
                () => toast("The browser refused to copy.", "error"),
              );
            }}
          >
            Copy JSON
          </button>
        </>
      }
    >
      {error && (
        <p class="form-error" role="alert">
          {error}
        </p>
      )}
      {!log && !error && <Spinner label="Loading the entry" />}
      {log && (
        <>
          <table class="table kv-table">
            <tbody>
              <tr>
                <th scope="row">id</th>
                <td>
                  <code>{log.id}</code>
                </td>
              </tr>
              <tr>
                <th scope="row">created</th>
                <td>
                  {formatDate(log.created)} <span class="muted small">({log.created})</span>
                </td>
              </tr>
              <tr>
                <th scope="row">level</th>
                <td>
                  <LevelBadge level={log.level} /> <span class="muted">{log.level}</span>
                </td>
              </tr>
              <tr>
                <th scope="row">message</th>
                <td class="wrap">{log.message}</td>
              </tr>
            </tbody>
          </table>

          <h3>data</h3>
          {keys.length ? (
            <table class="table kv-table" data-testid="log-data">
              <tbody>
                {keys.map((key) => (
                  <tr key={key}>
                    <th scope="row">{key}</th>
                    <td class="wrap">
                      <DataValue name={key} value={data[key]} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : (
            <p class="muted">No data.</p>
          )}

          {data.type === "request" && (
            <div class="btn-group log-actions">
              {typeof data.url === "string" && (
                <button type="button" class="btn btn-small" onClick={() => props.onFilter(`data.url = ${quote(data.url)}`)}>
                  Same URL
                </button>
              )}
              {typeof data.userIP === "string" && data.userIP && (
                <button
                  type="button"
                  class="btn btn-small"
                  onClick={() => props.onFilter(`data.userIP = ${quote(data.userIP)}`)}
                >
                  Same IP
                </button>
              )}
              {typeof data.authId === "string" && data.authId && (
                <button
                  type="button"
                  class="btn btn-small"
                  onClick={() => props.onFilter(`data.authId = ${quote(data.authId)}`)}
                >
                  Same user
                </button>
              )}
            </div>
          )}

          <h3>JSON</h3>
          <pre class="ops-code" data-testid="log-json">
            {json}
          </pre>
        </>
      )}
    </Dialog>
  );
}

function DataValue(props: { name: string; value: unknown }) {
  const { name, value } = props;
  if (value === null || value === undefined) return <span class="muted">null</span>;
  if (name === "status" && typeof value === "number") return <span class={`badge ${statusClass(value)}`}>{value}</span>;
  if (name === "execTime" && typeof value === "number") return <>{formatMs(value)}</>;
  if (name === "auth" && value === "") return <span class="muted">guest (not signed in)</span>;
  if (value === "") return <span class="muted">(empty)</span>;
  if (typeof value === "object") return <pre class="ops-code">{JSON.stringify(value, null, 2)}</pre>;
  return <span class={typeof value === "string" ? "mono" : undefined}>{String(value)}</span>;
}
