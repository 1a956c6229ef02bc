// A record's value in a table cell, formatted for its field type.
import type { RecordModel } from "../../lib/api";
import { findCollection } from "../../lib/schema";
import { toast } from "../../lib/toast";
import { copyText, formatDate } from "../../ui/misc";
import {
  asList,
  excerpt,
  htmlToText,
  isImageName,
  originalFileName,
  plainValue,
  recordLabel,
  type CollectionField,
} from "./fields";
import { CopyIcon } from "./icons";
import { fileUrl } from "./file-urls";

const MAX_ITEMS = 3;

function Nothing() {
  return <span class="muted" aria-label="empty">—</span>;
}

function More(props: { count: number }) {
  return props.count > 0 ? <span class="badge">+{props.count}</span> : null;
}

export function Cell(props: { record: RecordModel; field: CollectionField; token: string }) {
  const { record, field } = props;
  const value = record[field.name];
  switch (field.type) {
    case "bool":
      return value ? <span class="badge badge-success">True</span> : <span class="badge">False</span>;
    case "number":
      return <span class="mono">{value === null || value === undefined ? "" : String(value)}</span>;
    case "date":
    case "autodate":
      return value ? (
        <time dateTime={String(value).replace(" ", "T")} title={`${value} (UTC)`}>
          {formatDate(String(value))}
        </time>
      ) : (
        <Nothing />
      );
    case "select": {
      const items = asList(value);
      if (!items.length) return <Nothing />;
      return (
        <span class="cell-items">
          {items.slice(0, MAX_ITEMS).map((v) => (
            <span key={v} class="badge badge-select">
              {v}
            </span>
          ))}
          <More count={items.length - MAX_ITEMS} />
        </span>
      );
    }
    case "relation":
      return <RelationCell record={record} field={field} />;
    case "file":
      return <FileCell record={record} field={field} token={props.token} />;
    case "json": {
      if (value === null || value === undefined) return <Nothing />;
      const text = JSON.stringify(value);
      return (
        <span class="mono" title={excerpt(text, 1000)}>
          {excerpt(text, 60)}
        </span>
      );
    }
    case "editor": {
      const text = htmlToText(String(value ?? ""));
      return text ? <span title={excerpt(text, 1000)}>{excerpt(text, 80)}</span> : <Nothing />;
    }
    case "geoPoint": {
      const point = (value ?? {}) as { lon?: number; lat?: number };
      return (
        <span class="mono">
          {point.lon ?? 0}, {point.lat ?? 0}
        </span>
      );
    }
    default: {
      const text = plainValue(value, field);
      if (!text) return <Nothing />;
      if (field.name === "id" && field.system) return <IdCell id={text} />;
      return <span title={text.length > 60 ? excerpt(text, 1000) : undefined}>{excerpt(text, 60)}</span>;
    }
  }
}

function IdCell(props: { id: string }) {
  return (
    <span class="cell-id">
      <span class="mono">{props.id}</span>
      <button
        type="button"
        class="btn btn-icon btn-copy"
        aria-label={`Copy id ${props.id}`}
        title="Copy id"
        onClick={(e) => {
          e.stopPropagation();
          copyText(props.id);
          toast("Copied the id.", "info", 1500);
        }}
      >
        <CopyIcon />
      </button>
    </span>
  );
}

function RelationCell(props: { record: RecordModel; field: CollectionField }) {
  const ids = asList(props.record[props.field.name]);
  if (!ids.length) return <Nothing />;
  const target = findCollection(String(props.field.collectionId ?? ""));
  const expanded = props.record.expand?.[props.field.name];
  const list: RecordModel[] = Array.isArray(expanded) ? expanded : expanded ? [expanded] : [];
  const byId = new Map(list.map((r) => [r.id, r]));
  return (
    <span class="cell-items">
      {ids.slice(0, MAX_ITEMS).map((id) => {
        const related = byId.get(id);
        return (
          <span key={id} class={`chip${related ? "" : " chip-missing"}`} title={id}>
            {related ? excerpt(recordLabel(related, target), 40) : id}
          </span>
        );
      })}
      <More count={ids.length - MAX_ITEMS} />
    </span>
  );
}

function FileCell(props: { record: RecordModel; field: CollectionField; token: string }) {
  const names = asList(props.record[props.field.name]);
  if (!names.length) return <Nothing />;
  const token = props.field.protected ? props.token : "";
  const waiting = props.field.protected && !token;
  return (
    <span class="cell-items">
      {names.slice(0, MAX_ITEMS).map((name) =>
        isImageName(name) && !waiting ? (
          <img
            key={name}
            class="thumb"
            src={fileUrl(props.record, name, { thumb: "100x100", token })}
            alt={originalFileName(name)}
            title={name}
            // A protected file's token expires: load it now, not when scrolled to later.
            loading={props.field.protected ? "eager" : "lazy"}
            width={28}
            height={28}
          />
        ) : (
          <span key={name} class="file-badge" title={name}>
            {fileExtension(name)}
          </span>
        ),
      )}
      <More count={names.length - MAX_ITEMS} />
    </span>
  );
}

export function fileExtension(name: string): string {
  const m = name.match(/\.([a-z0-9]{1,5})$/i);
  return m ? m[1].toUpperCase() : "FILE";
}
