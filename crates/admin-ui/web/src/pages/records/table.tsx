// The records table: sortable headers, selection checkboxes, a row per record, and the column
// picker in the last header cell.
import type { CollectionModel, RecordModel } from "../../lib/api";
import { Cell } from "./cells";
import { listableFields, parseSort, type CollectionField } from "./fields";
import { Popover } from "./menu";

export const TYPE_ICONS: Record<string, string> = {
  text: "Aa",
  number: "#",
  bool: "☑",
  email: "@",
  url: "↗",
  editor: "¶",
  date: "◷",
  autodate: "◷",
  select: "☰",
  file: "▣",
  relation: "⇄",
  json: "{}",
  geoPoint: "◎",
  password: "•",
};

export function RecordsTable(props: {
  collection: CollectionModel;
  fields: CollectionField[];
  records: RecordModel[];
  sort: string;
  onSort: (name: string, add: boolean) => void;
  selected: Set<string>;
  onToggle: (id: string) => void;
  onToggleAll: () => void;
  selectable: boolean;
  highlighted: Set<string>;
  onOpen: (record: RecordModel) => void;
  token: string;
  busy: boolean;
}) {
  const sortItems = parseSort(props.sort);
  const pageIds = props.records.map((r) => r.id);
  const selectedOnPage = pageIds.filter((id) => props.selected.has(id)).length;
  const allOnPage = pageIds.length > 0 && selectedOnPage === pageIds.length;

  return (
    <div class={`table-wrap records-table${props.busy ? " is-busy" : ""}`}>
      <table class="table" aria-busy={props.busy}>
        <thead>
          <tr>
            {props.selectable && (
              <th class="col-check">
                <input
                  type="checkbox"
                  aria-label={allOnPage ? "Unselect all on this page" : "Select all on this page"}
                  checked={allOnPage}
                  ref={(el) => {
                    if (el) el.indeterminate = selectedOnPage > 0 && !allOnPage;
                  }}
                  disabled={!pageIds.length}
                  onChange={props.onToggleAll}
                />
              </th>
            )}
            {props.fields.map((field) => {
              const at = sortItems.findIndex((s) => s.name === field.name);
              const item = at >= 0 ? sortItems[at] : null;
              return (
                <th
                  key={field.name}
                  aria-sort={item && at === 0 ? (item.desc ? "descending" : "ascending") : undefined}
                  data-field={field.name}
                >
                  <button
                    type="button"
                    class="th-sort"
                    title={`Sort by ${field.name} (Shift+click to add to the sort)`}
                    onClick={(e) => props.onSort(field.name, e.shiftKey)}
                  >
                    <span class="type-icon" aria-hidden="true">
                      {TYPE_ICONS[field.type] ?? "?"}
                    </span>
                    <span>{field.name}</span>
                    {item && (
                      <span class="sort-mark" aria-label={item.desc ? "descending" : "ascending"}>
                        {item.desc ? "↓" : "↑"}
                        {sortItems.length > 1 ? <sub>{at + 1}</sub> : null}
                      </span>
                    )}
                  </button>
                </th>
              );
            })}
          </tr>
        </thead>
        <tbody>
          {props.records.map((record) => {
            const selected = props.selected.has(record.id);
            return (
              <tr
                key={record.id}
                class={`record-row${selected ? " selected" : ""}${props.highlighted.has(record.id) ? " row-flash" : ""}`}
                data-id={record.id}
                tabIndex={0}
                aria-label={`Record ${record.id}`}
                onClick={(e) => {
                  // Selecting text in a cell is not a request to open the record.
                  if (window.getSelection()?.toString()) return;
                  if ((e.target as HTMLElement).closest("input,button,a")) return;
                  props.onOpen(record);
                }}
                onKeyDown={(e) => {
                  if (e.target !== e.currentTarget) return;
                  if (e.key === "Enter") {
                    e.preventDefault();
                    props.onOpen(record);
                  } else if (e.key === " " && props.selectable) {
                    e.preventDefault();
                    props.onToggle(record.id);
                  }
                }}
              >
                {props.selectable && (
                  <td class="col-check">
                    <input
                      type="checkbox"
                      aria-label={`Select record ${record.id}`}
                      checked={selected}
                      onChange={() => props.onToggle(record.id)}
                    />
                  </td>
                )}
                {props.fields.map((field) => (
                  <td key={field.name} data-field={field.name} class={`cell-${field.type}`}>
                    <Cell record={record} field={field} token={props.token} />
                  </td>
                ))}
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

export function ColumnPicker(props: { collection: CollectionModel; hidden: string[]; onHidden: (hidden: string[]) => void }) {
  const fields = listableFields(props.collection);
  const hidden = new Set(props.hidden);
  const toggle = (name: string) => {
    const next = new Set(hidden);
    if (next.has(name)) next.delete(name);
    else next.add(name);
    props.onHidden([...next]);
  };
  return (
    <Popover
      label={<>▥ <span class="hide-narrow">Columns</span>{props.hidden.length ? <span class="badge">{props.hidden.length} hidden</span> : null}</>}
      ariaLabel="Choose columns"
      title="Choose columns"
      role="dialog"
      testId="column-picker"
    >
      {() => (
        <div class="column-picker">
          <div class="row-between">
            <strong>Columns</strong>
            <span class="btn-group">
              <button type="button" class="btn btn-link btn-small" onClick={() => props.onHidden([])}>
                All
              </button>
            </span>
          </div>
          {fields.map((field) => (
            <label key={field.name} class="toggle">
              <input type="checkbox" checked={!hidden.has(field.name)} onChange={() => toggle(field.name)} />
              <span class="type-icon" aria-hidden="true">
                {TYPE_ICONS[field.type] ?? "?"}
              </span>
              <span>{field.name}</span>
            </label>
          ))}
        </div>
      )}
    </Popover>
  );
}
