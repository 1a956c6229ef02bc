// A relation field in the record panel: the chosen records as chips, and a picker dialog that
// searches the target collection (its presentable fields) page by page.
import { useEffect, useRef, useState } from "preact/hooks";
import { errorMessage, pb, type CollectionModel, type RecordModel } from "../../lib/api";
import { findCollection } from "../../lib/schema";
import { Dialog } from "../../ui/dialog";
import { Spinner } from "../../ui/misc";
import { asList, excerpt, isMultiple, presentableFields, recordLabel, type CollectionField } from "./fields";
import { FieldBlock, inputId } from "./inputs";

const PAGE = 30;

export function RelationInput(props: {
  field: CollectionField;
  value: unknown;
  onValue: (value: unknown) => void;
  /** Known related records by id (from expand, and from the picker). */
  known: Map<string, RecordModel>;
  onKnown: (records: RecordModel[]) => void;
  error?: string;
}) {
  const { field } = props;
  const [picking, setPicking] = useState(false);
  const target = findCollection(String(field.collectionId ?? ""));
  const multiple = isMultiple(field);
  const max = multiple ? Number(field.maxSelect) || Infinity : 1;
  const ids = asList(props.value);
  const set = (next: string[]) => props.onValue(multiple ? next : (next[0] ?? ""));
  const id = inputId(field);

  return (
    <FieldBlock
      field={field}
      error={props.error}
      group
      extra={
        <span class="muted count">
          {target ? `→ ${target.name}` : "→ ?"}
          {multiple && Number.isFinite(max) ? ` · ${ids.length}/${max}` : ""}
        </span>
      }
    >
      <div class="relation-chips" id={id}>
        {ids.map((rid) => {
          const known = props.known.get(rid);
          return (
            <span key={rid} class={`chip${known ? "" : " chip-missing"}`} title={rid}>
              <span>{known ? excerpt(recordLabel(known, target), 50) : rid}</span>
              <button
                type="button"
                class="chip-remove"
                aria-label={`Remove ${known ? recordLabel(known, target) : rid}`}
                onClick={() => set(ids.filter((x) => x !== rid))}
              >
                ×
              </button>
            </span>
          );
        })}
        <button
          type="button"
          class="btn btn-small"
          disabled={!target}
          onClick={() => setPicking(true)}
          data-testid={`pick-${field.name}`}
        >
          {ids.length ? (multiple ? "+ Add / change" : "Change") : "Choose…"}
        </button>
      </div>
      {picking && target && (
        <RelationPicker
          field={field}
          target={target}
          selected={ids}
          max={max}
          known={props.known}
          onClose={() => setPicking(false)}
          onDone={(next, records) => {
            props.onKnown(records);
            set(next);
            setPicking(false);
          }}
        />
      )}
    </FieldBlock>
  );
}

function searchFilter(target: CollectionModel, text: string): string {
  const q = text.trim();
  if (!q) return "";
  const fields = (target.fields ?? []).filter(
    (f) => ["text", "email", "url", "editor", "select"].includes(f.type) && f.type !== "password" && f.name !== "tokenKey",
  );
  const names = new Set(["id", ...presentableFields(target).map((f) => f.name), ...fields.map((f) => f.name)]);
  return pb.filter([...names].map((n) => `${n} ~ {:q}`).join(" || "), { q });
}

function RelationPicker(props: {
  field: CollectionField;
  target: CollectionModel;
  selected: string[];
  max: number;
  known: Map<string, RecordModel>;
  onClose: () => void;
  onDone: (ids: string[], records: RecordModel[]) => void;
}) {
  const { target } = props;
  const multiple = props.max > 1;
  const [search, setSearch] = useState("");
  const [query, setQuery] = useState("");
  const [items, setItems] = useState<RecordModel[]>([]);
  const [page, setPage] = useState(1);
  const [more, setMore] = useState(false);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState("");
  const [chosen, setChosen] = useState<string[]>(props.selected);
  const seen = useRef(new Map<string, RecordModel>(props.known));
  const seq = useRef(0);

  // Search as you type, debounced.
  useEffect(() => {
    const timer = setTimeout(() => setQuery(search), 300);
    return () => clearTimeout(timer);
  }, [search]);

  const load = async (nextPage: number) => {
    const mine = ++seq.current;
    setLoading(true);
    try {
      const result = await pb.collection(target.name).getList(nextPage, PAGE, {
        filter: searchFilter(target, query) || undefined,
        sort: target.type === "view" ? undefined : "-@rowid",
        skipTotal: true,
      });
      if (mine !== seq.current) return;
      for (const r of result.items) seen.current.set(r.id, r);
      setItems((prev) => (nextPage === 1 ? result.items : [...prev, ...result.items]));
      setMore(result.items.length === PAGE);
      setPage(nextPage);
      setError("");
    } catch (e) {
      if (mine === seq.current) setError(errorMessage(e));
    } finally {
      if (mine === seq.current) setLoading(false);
    }
  };

  useEffect(() => {
    void load(1);
  }, [query]);

  const toggle = (id: string) => {
    if (!multiple) {
      setChosen(chosen[0] === id ? [] : [id]);
      return;
    }
    if (chosen.includes(id)) setChosen(chosen.filter((x) => x !== id));
    else if (chosen.length < props.max) setChosen([...chosen, id]);
  };

  const shown = presentableFields(target).slice(0, 3);
  const full = multiple && chosen.length >= props.max;

  return (
    <Dialog
      open
      title={`Choose ${multiple ? "records" : "a record"} of ${target.name}`}
      onClose={props.onClose}
      testId="relation-picker"
      wide
      footer={
        <>
          <span class="muted picker-count">
            {chosen.length} selected{multiple && Number.isFinite(props.max) ? ` (max ${props.max})` : ""}
          </span>
          <button type="button" class="btn" onClick={props.onClose}>
            Cancel
          </button>
          <button
            type="button"
            class="btn btn-primary"
            data-testid="picker-done"
            onClick={() =>
              props.onDone(
                chosen,
                chosen.map((id) => seen.current.get(id)).filter((r): r is RecordModel => !!r),
              )
            }
          >
            Select
          </button>
        </>
      }
    >
      <input
        type="search"
        aria-label={`Search ${target.name}`}
        placeholder={`Search ${target.name} (id${shown.length ? ", " + shown.map((f) => f.name).join(", ") : ""}, text fields)`}
        value={search}
        autoFocus
        onInput={(e) => setSearch(e.currentTarget.value)}
        onKeyDown={(e) => {
          if (e.key === "Enter") {
            e.preventDefault();
            setQuery(search);
          }
        }}
      />
      {chosen.length > 0 && (
        <div class="relation-chips picker-chosen" aria-label="Selected">
          {chosen.map((id) => {
            const r = seen.current.get(id);
            return (
              <span key={id} class="chip" title={id}>
                <span>{r ? excerpt(recordLabel(r, target), 40) : id}</span>
                <button type="button" class="chip-remove" aria-label={`Unselect ${id}`} onClick={() => toggle(id)}>
                  ×
                </button>
              </span>
            );
          })}
        </div>
      )}
      {error && (
        <p class="form-error" role="alert">
          {error}
        </p>
      )}
      <ul class="picker-list" role="listbox" aria-multiselectable={multiple} aria-label={`${target.name} records`}>
        {items.map((r) => {
          const on = chosen.includes(r.id);
          return (
            <li key={r.id} role="option" aria-selected={on}>
              <label class={`picker-item${on ? " on" : ""}`}>
                <input
                  type={multiple ? "checkbox" : "radio"}
                  name="relation-pick"
                  checked={on}
                  disabled={!on && full}
                  onChange={() => toggle(r.id)}
                />
                <span class="picker-label">{excerpt(recordLabel(r, target), 80)}</span>
                <span class="mono muted">{r.id}</span>
              </label>
            </li>
          );
        })}
      </ul>
      {loading && <Spinner />}
      {!loading && !items.length && !error && <p class="muted">No records found.</p>}
      {more && !loading && (
        <button type="button" class="btn btn-block" onClick={() => void load(page + 1)}>
          Load more
        </button>
      )}
    </Dialog>
  );
}
