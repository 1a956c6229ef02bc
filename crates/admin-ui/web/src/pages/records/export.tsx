// Export the records matching the current filter and sort as JSON or CSV: every page, read
// 500 at a time, up to EXPORT_CAP records, then downloaded as a file.
import { useEffect, useRef, useState } from "preact/hooks";
import { errorMessage, pb, type CollectionModel, type RecordModel } from "../../lib/api";
import { toast } from "../../lib/toast";
import { Dialog } from "../../ui/dialog";
import { downloadFile, listableFields, parseSort, stamp, toCsv } from "./fields";

export const EXPORT_CAP = 100_000;
const PAGE = 500;

type Format = "json" | "csv";

export function ExportDialog(props: {
  collection: CollectionModel;
  filter: string;
  sort: string;
  total: number | null;
  onClose: () => void;
}) {
  const [format, setFormat] = useState<Format>("json");
  const [running, setRunning] = useState(false);
  const [done, setDone] = useState(0);
  const [error, setError] = useState("");
  const cancelled = useRef(false);
  useEffect(
    () => () => {
      cancelled.current = true;
    },
    [],
  );

  const expected = props.total === null ? null : Math.min(props.total, EXPORT_CAP);

  const run = async () => {
    cancelled.current = false;
    setRunning(true);
    setError("");
    setDone(0);
    const all: RecordModel[] = [];
    // A tie-breaker keeps pages from overlapping when the sort has equal values.
    const items = parseSort(props.sort);
    const stable =
      props.collection.type === "view" || items.some((s) => s.name === "id" || s.name === "@rowid")
        ? props.sort
        : [props.sort, "id"].filter(Boolean).join(",");
    try {
      for (let page = 1; all.length < EXPORT_CAP; page++) {
        const result = await pb.collection(props.collection.name).getList(page, PAGE, {
          filter: props.filter || undefined,
          sort: stable || undefined,
          skipTotal: true,
        });
        if (cancelled.current) return;
        all.push(...result.items);
        setDone(all.length);
        if (result.items.length < PAGE) break;
      }
      const records = all.slice(0, EXPORT_CAP).map(({ expand: _expand, ...rest }) => rest as RecordModel);
      const name = `${props.collection.name}-${stamp()}.${format}`;
      if (format === "json") {
        downloadFile(name, JSON.stringify(records, null, 2), "application/json");
      } else {
        const columns = listableFields(props.collection).map((f) => f.name);
        downloadFile(name, toCsv(records, columns), "text/csv;charset=utf-8");
      }
      toast(
        `Exported ${records.length.toLocaleString("en")} record${records.length === 1 ? "" : "s"}${
          all.length >= EXPORT_CAP ? ` (the limit is ${EXPORT_CAP.toLocaleString("en")})` : ""
        } to ${name}.`,
      );
      props.onClose();
    } catch (e) {
      if (!cancelled.current) setError(errorMessage(e));
    } finally {
      if (!cancelled.current) setRunning(false);
    }
  };

  return (
    <Dialog
      open
      title={`Export ${props.collection.name}`}
      onClose={() => {
        cancelled.current = true;
        props.onClose();
      }}
      testId="export-dialog"
      footer={
        <>
          <button
            type="button"
            class="btn"
            onClick={() => {
              cancelled.current = true;
              props.onClose();
            }}
          >
            {running ? "Stop" : "Cancel"}
          </button>
          <button type="button" class="btn btn-primary" onClick={() => void run()} disabled={running} data-testid="export-start">
            {running ? "Exporting…" : `Download ${format.toUpperCase()}`}
          </button>
        </>
      }
    >
      <p>
        {expected === null ? "The records" : `The ${expected.toLocaleString("en")} record${expected === 1 ? "" : "s"}`}{" "}
        {props.filter ? "matching the current filter" : "of the collection"}, in the current sort order. At most{" "}
        {EXPORT_CAP.toLocaleString("en")} records are exported; narrow the filter for more.
      </p>
      {props.filter && (
        <p class="muted">
          Filter: <code>{props.filter}</code>
        </p>
      )}
      <fieldset class="field export-format" disabled={running}>
        <legend class="field-label">Format</legend>
        <label class="toggle">
          <input type="radio" name="export-format" checked={format === "json"} onChange={() => setFormat("json")} />
          <span>JSON — an array of records, values as the API returns them</span>
        </label>
        <label class="toggle">
          <input type="radio" name="export-format" checked={format === "csv"} onChange={() => setFormat("csv")} />
          <span>CSV — one column per field; lists and objects as JSON text</span>
        </label>
      </fieldset>
      {running && (
        <div class="export-progress" role="status">
          <progress value={done} max={expected ?? undefined} aria-label="Export progress" />
          <span>
            {done.toLocaleString("en")}
            {expected !== null ? ` / ${expected.toLocaleString("en")}` : ""} records read
          </span>
        </div>
      )}
      {error && (
        <p class="form-error" role="alert">
          {error}
        </p>
      )}
    </Dialog>
  );
}
