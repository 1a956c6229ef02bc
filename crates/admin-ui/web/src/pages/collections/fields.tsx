// The fields list of a base or auth collection: add (type picker), rename, reorder (drag, or
// the move buttons / Alt+↑↓), duplicate, remove (restorable until save), and each field's options.
import { useEffect, useRef, useState } from "preact/hooks";
import type { CollectionModel } from "../../lib/api";
import { Field, Select, TextInput } from "../../ui/form";
import { FieldOptions, requiredLabel, retype, SHOWN_OPTIONS } from "./field-options";
import { Icon, TypeIcon } from "./icons";
import { Check } from "./inputs";
import {
  activeFields,
  FIELD_TYPES,
  fieldType,
  newField,
  newKey,
  originalField,
  renameIndexColumn,
  uniqueName,
  type Draft,
  type DraftField,
  type Update,
} from "./model";

export interface FieldsProps {
  draft: Draft;
  original: Draft | null;
  update: Update;
  errors: Record<string, string>;
  readOnly: boolean;
  collections: CollectionModel[];
}

/** The draft with one field renamed; indexes, identity fields and OAuth2 mappings follow it. */
export function renameField(draft: Draft, key: string, name: string): Draft {
  const field = draft.fields.find((f) => f._key === key);
  if (!field) return draft;
  const from: string = field._indexName ?? field.name;
  const collides = draft.fields.some(
    (f) => f._key !== key && !f._removed && f.name.toLowerCase() === name.toLowerCase(),
  );
  const follow = Boolean(name) && !collides && from !== name && /^\w+$/.test(name);
  const next: Draft = {
    ...draft,
    // `_indexName` is the name the indexes (and auth options) still use while this one is
    // empty, invalid or taken by another field.
    fields: draft.fields.map((f) => (f._key === key ? { ...f, name, _indexName: follow ? name : from } : f)),
  };
  if (!follow || !from) return next;
  next.indexes = draft.indexes.map((sql) => renameIndexColumn(sql, from, name));
  if (draft.passwordAuth?.identityFields) {
    next.passwordAuth = {
      ...draft.passwordAuth,
      identityFields: draft.passwordAuth.identityFields.map((n: string) => (n === from ? name : n)),
    };
  }
  if (draft.oauth2?.mappedFields) {
    const mapped: Record<string, string> = {};
    for (const [k, v] of Object.entries(draft.oauth2.mappedFields as Record<string, string>)) mapped[k] = v === from ? name : v;
    next.oauth2 = { ...draft.oauth2, mappedFields: mapped };
  }
  return next;
}

export function FieldsList(props: FieldsProps) {
  const { draft, update } = props;
  const [open, setOpen] = useState<Set<string>>(new Set());
  const [picker, setPicker] = useState(false);
  const [focusKey, setFocusKey] = useState<{ key: string; target: string } | null>(null);
  const [drag, setDrag] = useState<{ key: string; over?: string; after?: boolean } | null>(null);
  const listRef = useRef<HTMLOListElement>(null);
  const addRef = useRef<HTMLButtonElement>(null);
  const pickerRef = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (picker) pickerRef.current?.querySelector<HTMLElement>("button")?.focus();
  }, [picker]);

  // Open the rows that hold an error after a failed save.
  const errorKeys = Object.keys(props.errors)
    .map((path) => /^fields\.([^.]+)\./.exec(path)?.[1])
    .filter(Boolean) as string[];
  useEffect(() => {
    if (errorKeys.length) setOpen((prev) => new Set([...prev, ...errorKeys]));
  }, [errorKeys.join(",")]);

  useEffect(() => {
    if (!focusKey) return;
    const el = listRef.current?.querySelector<HTMLElement>(
      `[data-key="${focusKey.key}"] [data-focus="${focusKey.target}"]`,
    );
    if (el) {
      el.focus();
      if (el instanceof HTMLInputElement && focusKey.target === "name") el.select();
    }
    setFocusKey(null);
  }, [focusKey]);

  const patch = (key: string, change: Partial<DraftField>) =>
    update((d) => ({ ...d, fields: d.fields.map((f) => (f._key === key ? { ...f, ...change } : f)) }), `fields.${key}.`);

  const move = (key: string, to: number, focus?: string) => {
    update((d) => {
      const from = d.fields.findIndex((f) => f._key === key);
      if (from < 0 || to < 0 || to >= d.fields.length || to === from) return d;
      const fields = [...d.fields];
      const [item] = fields.splice(from, 1);
      fields.splice(to, 0, item);
      return { ...d, fields };
    });
    if (focus) setFocusKey({ key, target: focus });
  };

  const add = (type: string) => {
    const field = newField(type, activeFields(draft).map((f) => f.name));
    // New fields go before the trailing created/updated pair, where PocketBase's dashboard puts them.
    update((d) => {
      const fields = [...d.fields];
      let at = fields.length;
      while (at > 0 && fields[at - 1].type === "autodate" && ["created", "updated"].includes(fields[at - 1].name)) at--;
      fields.splice(at, 0, field);
      return { ...d, fields };
    });
    setOpen((prev) => new Set([...prev, field._key]));
    setPicker(false);
    setFocusKey({ key: field._key, target: "name" });
  };

  const duplicate = (field: DraftField) => {
    const names = activeFields(draft).map((f) => f.name);
    const copy: DraftField = {
      ...structuredClone(field),
      name: uniqueName(`${field.name}_copy`, names),
      system: false,
      primaryKey: field.type === "text" ? false : undefined,
      _key: newKey(),
      _removed: false,
    };
    delete copy.id;
    delete copy._indexName;
    if (copy.primaryKey === undefined) delete copy.primaryKey;
    update((d) => {
      const fields = [...d.fields];
      fields.splice(fields.findIndex((f) => f._key === field._key) + 1, 0, copy);
      return { ...d, fields };
    });
    setOpen((prev) => new Set([...prev, copy._key]));
    setFocusKey({ key: copy._key, target: "name" });
  };

  const remove = (field: DraftField) => {
    if (!originalField(field, props.original)) {
      // Never saved: nothing to restore, so it just goes.
      update((d) => ({ ...d, fields: d.fields.filter((f) => f._key !== field._key) }));
      addRef.current?.focus();
      return;
    }
    patch(field._key, { _removed: true });
    setFocusKey({ key: field._key, target: "restore" });
  };

  const toggle = (key: string) =>
    setOpen((prev) => {
      const next = new Set(prev);
      if (next.has(key)) next.delete(key);
      else next.add(key);
      return next;
    });

  const fieldsError = props.errors["fields"];

  return (
    <section class="fields-section" aria-labelledby="fields-heading">
      <div class="row-between">
        <h3 id="fields-heading">Fields</h3>
        <span class="muted small">{activeFields(draft).length} fields</span>
      </div>
      {fieldsError && (
        <p class="field-error" role="alert">
          {fieldsError}
        </p>
      )}
      <ol class="field-list" ref={listRef}>
        {draft.fields.map((field, index) => (
          <FieldRow
            key={field._key}
            field={field}
            index={index}
            count={draft.fields.length}
            saved={originalField(field, props.original)}
            open={open.has(field._key)}
            readOnly={props.readOnly}
            errors={props.errors}
            collections={props.collections}
            draft={draft}
            drag={drag}
            onDrag={setDrag}
            onToggle={() => toggle(field._key)}
            onPatch={(change) => patch(field._key, change)}
            onRename={(name) => update((d) => renameField(d, field._key, name), `fields.${field._key}.name`)}
            onMove={(to, focus) => move(field._key, to, focus)}
            onDuplicate={() => duplicate(field)}
            onRemove={() => remove(field)}
            onRestore={() => {
              patch(field._key, { _removed: false });
              setFocusKey({ key: field._key, target: "name" });
            }}
            onDrop={(fromKey, after) => {
              const target = draft.fields.findIndex((f) => f._key === field._key);
              const from = draft.fields.findIndex((f) => f._key === fromKey);
              let to = after ? target + 1 : target;
              if (from < to) to--;
              move(fromKey, to);
            }}
          />
        ))}
      </ol>
      {!props.readOnly && (
        <div class="field-add">
          <button
            type="button"
            class="btn btn-block field-add-btn"
            ref={addRef}
            aria-expanded={picker}
            aria-controls="field-type-picker"
            data-testid="add-field"
            onClick={() => setPicker(!picker)}
          >
            + New field
          </button>
          {picker && (
            <div
              id="field-type-picker"
              ref={pickerRef}
              class="type-picker"
              role="group"
              aria-label="Field type"
              onKeyDown={(e) => {
                if (e.key === "Escape") {
                  e.stopPropagation();
                  e.preventDefault();
                  setPicker(false);
                  addRef.current?.focus();
                }
              }}
            >
              {FIELD_TYPES.map((t) => (
                <button
                  key={t.type}
                  type="button"
                  class="type-option"
                  title={t.about}
                  data-type={t.type}
                  onClick={() => add(t.type)}
                >
                  <span class="ftype-icon" aria-hidden="true">
                    <TypeIcon type={t.type} />
                  </span>
                  <span>{t.label}</span>
                </button>
              ))}
            </div>
          )}
        </div>
      )}
    </section>
  );
}

interface RowProps {
  field: DraftField;
  index: number;
  count: number;
  saved?: DraftField;
  open: boolean;
  readOnly: boolean;
  errors: Record<string, string>;
  collections: CollectionModel[];
  draft: Draft;
  drag: { key: string; over?: string; after?: boolean } | null;
  onDrag: (drag: { key: string; over?: string; after?: boolean } | null) => void;
  onToggle: () => void;
  onPatch: (change: Partial<DraftField>) => void;
  onRename: (name: string) => void;
  onMove: (to: number, focus?: string) => void;
  onDuplicate: () => void;
  onRemove: () => void;
  onRestore: () => void;
  onDrop: (fromKey: string, after: boolean) => void;
}

function FieldRow(props: RowProps) {
  const { field, saved } = props;
  const t = fieldType(field.type);
  const prefix = `fields.${field._key}.`;
  const error = (option: string) => props.errors[prefix + option];
  const rowErrors = Object.entries(props.errors).filter(([k]) => k.startsWith(prefix));
  const shown = new Set(["name", "required", "hidden", "presentable", "help", "type", ...(SHOWN_OPTIONS[field.type] ?? [])]);
  const otherErrors = rowErrors.filter(([k]) => !shown.has(k.slice(prefix.length)));
  const label = field.name || "(unnamed)";
  const bodyId = `field-opts-${field._key}`;
  const isNew = !saved;
  const renamedFrom = saved && saved.name !== field.name ? saved.name : null;
  const lockedHidden = field.system && (field.name === "password" || field.name === "tokenKey");
  const dragging = props.drag?.key === field._key;
  const over = props.drag && props.drag.over === field._key && props.drag.key !== field._key;

  if (field._removed) {
    return (
      <li class="frow frow-removed" data-key={field._key} data-field-name={field.name}>
        <div class="frow-head">
          <span class="ftype-icon" aria-hidden="true">
            <TypeIcon type={field.type} />
          </span>
          <span class="frow-removed-name">{field.name}</span>
          <span class="badge badge-danger">Removed — its data is dropped on save</span>
          <span class="frow-actions">
            <button type="button" class="btn btn-small" data-focus="restore" onClick={props.onRestore}>
              Restore
            </button>
          </span>
        </div>
      </li>
    );
  }

  const keyMove = (e: KeyboardEvent) => {
    if (!e.altKey || props.readOnly) return;
    if (e.key === "ArrowUp" && props.index > 0) {
      e.preventDefault();
      props.onMove(props.index - 1, "name");
    } else if (e.key === "ArrowDown" && props.index < props.count - 1) {
      e.preventDefault();
      props.onMove(props.index + 1, "name");
    }
  };

  const req = requiredLabel(field.type);

  return (
    <li
      class={`frow${props.open ? " open" : ""}${rowErrors.length ? " frow-error" : ""}${dragging ? " dragging" : ""}${over ? (props.drag?.after ? " drop-after" : " drop-before") : ""}`}
      data-key={field._key}
      data-field-name={field.name}
      onDragOver={(e) => {
        if (!props.drag) return;
        e.preventDefault();
        const rect = (e.currentTarget as HTMLElement).getBoundingClientRect();
        const after = e.clientY > rect.top + rect.height / 2;
        if (props.drag.over !== field._key || props.drag.after !== after) props.onDrag({ ...props.drag, over: field._key, after });
      }}
      onDrop={(e) => {
        e.preventDefault();
        if (props.drag && props.drag.key !== field._key) props.onDrop(props.drag.key, Boolean(props.drag.after));
        props.onDrag(null);
      }}
      onKeyDown={keyMove}
    >
      <div class="frow-head">
        {!props.readOnly && (
          <span
            class="drag-handle"
            draggable
            title="Drag to reorder (or Alt+↑/↓)"
            aria-hidden="true"
            onDragStart={(e) => {
              e.dataTransfer?.setData("text/plain", field._key);
              if (e.dataTransfer) e.dataTransfer.effectAllowed = "move";
              const row = (e.currentTarget as HTMLElement).closest("li");
              if (row && e.dataTransfer) e.dataTransfer.setDragImage(row, 20, 20);
              props.onDrag({ key: field._key });
            }}
            onDragEnd={() => props.onDrag(null)}
          >
            ⋮⋮
          </span>
        )}
        <span class="ftype-icon" title={t.label}>
          <span aria-hidden="true" class="ftype-glyph"><TypeIcon type={field.type} /></span>
          <span class="sr-only">{t.label}</span>
        </span>
        <input
          class={`frow-name${error("name") ? " invalid" : ""}`}
          aria-label={`Field name (${t.label})`}
          aria-invalid={error("name") ? true : undefined}
          data-focus="name"
          value={field.name}
          disabled={field.system}
          readOnly={props.readOnly}
          spellcheck={false}
          autoComplete="off"
          onInput={(e) => props.onRename(e.currentTarget.value)}
        />
        <span class="frow-badges">
          {field.system && <span class="badge" title="System field: cannot be renamed or removed"><Icon name="lock" size={11} /> system</span>}
          {field.primaryKey && <span class="badge">primary key</span>}
          {isNew && <span class="badge badge-success">new</span>}
          {renamedFrom && <span class="badge badge-warn">was {renamedFrom}</span>}
          {field.required && <span class="badge">{req.label.toLowerCase()}</span>}
          {field.hidden && <span class="badge">hidden</span>}
          {field.presentable && <span class="badge">presentable</span>}
        </span>
        <span class="frow-actions">
          <button
            type="button"
            class="btn btn-small"
            aria-expanded={props.open}
            aria-controls={bodyId}
            aria-label={`Options of ${label}`}
            data-focus="options"
            onClick={props.onToggle}
          >
            <Icon name="gear" />
            <span class="btn-text">Options</span>
            {rowErrors.length > 0 && <span class="tab-badge" aria-label="has errors" />}
          </button>
          {!props.readOnly && (
            <>
              <button
                type="button"
                class="btn btn-small btn-icon-sq"
                aria-label={`Move ${label} up`}
                data-focus="up"
                disabled={props.index === 0}
                onClick={() => props.onMove(props.index - 1, props.index - 1 === 0 ? "down" : "up")}
              >
                ↑
              </button>
              <button
                type="button"
                class="btn btn-small btn-icon-sq"
                aria-label={`Move ${label} down`}
                data-focus="down"
                disabled={props.index >= props.count - 1}
                onClick={() => props.onMove(props.index + 1, props.index + 1 >= props.count - 1 ? "up" : "down")}
              >
                ↓
              </button>
              <button type="button" class="btn btn-small btn-icon-sq" aria-label={`Duplicate ${label}`} title="Duplicate" disabled={field.primaryKey} onClick={props.onDuplicate}>
                <Icon name="copy" />
              </button>
              <button
                type="button"
                class="btn btn-small btn-icon-sq btn-outline-danger"
                aria-label={`Remove ${label}`}
                title={field.system ? "System fields cannot be removed" : "Remove"}
                disabled={field.system}
                onClick={props.onRemove}
              >
                <Icon name="trash" />
              </button>
            </>
          )}
        </span>
      </div>
      {error("name") && (
        <p class="field-error frow-name-error" role="alert">
          {error("name")}
        </p>
      )}
      {props.open && (
        <fieldset class="frow-body" id={bodyId} disabled={props.readOnly} aria-label={`Options of ${label}`}>
          {isNew && !props.readOnly && (
            <Field label="Type" error={error("type")} help="The type can change until the field is saved">
              <Select
                value={field.type}
                options={FIELD_TYPES.map((ft) => ({ value: ft.type, label: ft.label }))}
                onValue={(type) => props.onPatch(retype(field, type))}
              />
            </Field>
          )}
          {!isNew && error("type") && <p class="field-error">{error("type")}</p>}
          <FieldOptions
            field={field}
            saved={saved}
            onPatch={(change) => props.onPatch(change as Partial<DraftField>)}
            error={error}
            collections={props.collections}
            selfId={props.draft.id}
            selfName={props.draft.name}
          />
          <div class="frow-flags">
            {field.type !== "autodate" && (
              <Check
                checked={Boolean(field.required)}
                onChange={(v) => props.onPatch({ required: v })}
                label={req.label}
                help={req.help}
                disabled={field.primaryKey}
              />
            )}
            <Check
              checked={Boolean(field.hidden)}
              onChange={(v) => props.onPatch({ hidden: v })}
              label="Hidden"
              help="Left out of API responses and filters for everyone but superusers"
              disabled={lockedHidden}
            />
            <Check
              checked={Boolean(field.presentable)}
              onChange={(v) => props.onPatch({ presentable: v })}
              label="Presentable"
              help="Shown as the record's label in relation pickers and previews"
            />
          </div>
          {["required", "hidden", "presentable"].map((k) => error(k) && (
            <p key={k} class="field-error">
              {k}: {error(k)}
            </p>
          ))}
          {field.type !== "autodate" && (
            <Field label="Help text" error={error("help")} help="Shown under the input in the record form">
              <TextInput value={field.help} onValue={(v) => props.onPatch({ help: v })} />
            </Field>
          )}
          {otherErrors.map(([k, message]) => (
            <p key={k} class="field-error" role="alert">
              {k.slice(prefix.length)}: {message}
            </p>
          ))}
        </fieldset>
      )}
    </li>
  );
}
