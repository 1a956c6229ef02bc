// The options of one field, by type, with each input's server error beside it.
import type { CollectionModel } from "../../lib/api";
import { Field, NumberInput, Select, TextInput } from "../../ui/form";
import { Check, ListInput, UtcDateInput } from "./inputs";
import { FIELD_TYPES, fieldType, formatBytes, type DraftField } from "./model";

export interface OptionsProps {
  field: DraftField;
  /** The saved version of the field (undefined for a new one). */
  saved?: DraftField;
  onPatch: (patch: Record<string, unknown>) => void;
  error: (option: string) => string | undefined;
  collections: CollectionModel[];
  /** The edited collection's id (a relation may point at its own collection). */
  selfId?: string;
  selfName: string;
}

const MIME_PRESETS: { label: string; types: string[] }[] = [
  { label: "Images", types: ["image/jpeg", "image/png", "image/gif", "image/webp", "image/svg+xml", "image/avif"] },
  {
    label: "Documents",
    types: [
      "application/pdf",
      "text/plain",
      "text/csv",
      "application/msword",
      "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
      "application/vnd.ms-excel",
      "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
      "application/vnd.oasis.opendocument.text",
      "application/vnd.oasis.opendocument.spreadsheet",
    ],
  },
  { label: "Videos", types: ["video/mp4", "video/webm", "video/quicktime", "video/x-msvideo", "video/3gpp"] },
  { label: "Audio", types: ["audio/mpeg", "audio/ogg", "audio/wav", "audio/webm", "audio/aac"] },
  { label: "Archives", types: ["application/zip", "application/x-7z-compressed", "application/vnd.rar", "application/gzip", "application/x-tar"] },
];

const ALL_MIME = [...new Set(MIME_PRESETS.flatMap((p) => p.types).concat(["application/json", "text/html", "text/markdown"]))];

/** Keys each type's option form shows (errors on other keys are listed separately). */
export const SHOWN_OPTIONS: Record<string, string[]> = {
  text: ["min", "max", "pattern", "autogeneratePattern", "primaryKey"],
  editor: ["maxSize", "convertURLs"],
  number: ["min", "max", "onlyInt"],
  bool: [],
  email: ["exceptDomains", "onlyDomains"],
  url: ["exceptDomains", "onlyDomains"],
  date: ["min", "max"],
  autodate: ["onCreate", "onUpdate"],
  select: ["values", "maxSelect"],
  file: ["maxSelect", "maxSize", "mimeTypes", "thumbs", "protected"],
  relation: ["collectionId", "cascadeDelete", "minSelect", "maxSelect"],
  json: ["maxSize"],
  password: ["min", "max", "pattern", "cost"],
  geoPoint: [],
};

export function FieldOptions(props: OptionsProps) {
  const { field, onPatch, error } = props;
  const num = (key: string) => (typeof field[key] === "number" ? (field[key] as number) : null);
  const multiple = (field.maxSelect ?? 0) > 1;

  const setMultiple = (on: boolean, defaultMax: number) => {
    const patch: Record<string, unknown> = { maxSelect: on ? Math.max(2, defaultMax) : 1 };
    if (!on && field.type === "relation") patch.minSelect = Math.min(field.minSelect ?? 0, 1);
    onPatch(patch);
  };

  const domains = (
    <div class="grid-2">
      <Field label="Only domains" error={error("onlyDomains")} help="Comma-separated; empty = any domain">
        <ListInput value={field.onlyDomains} onValue={(v) => onPatch({ onlyDomains: v })} placeholder="example.com" disabled={(field.exceptDomains ?? []).length > 0} />
      </Field>
      <Field label="Except domains" error={error("exceptDomains")} help="Comma-separated domains to refuse">
        <ListInput value={field.exceptDomains} onValue={(v) => onPatch({ exceptDomains: v })} placeholder="spam.example" disabled={(field.onlyDomains ?? []).length > 0} />
      </Field>
    </div>
  );

  switch (field.type) {
    case "text":
      return (
        <>
          <div class="grid-2">
            <Field label="Min length" error={error("min")} help="0 = no minimum">
              <NumberInput value={num("min")} min={0} step={1} onValue={(v) => onPatch({ min: v ?? 0 })} />
            </Field>
            <Field label="Max length" error={error("max")} help="0 = default (5000 characters)">
              <NumberInput value={num("max")} min={0} step={1} onValue={(v) => onPatch({ max: v ?? 0 })} />
            </Field>
          </div>
          <div class="grid-2">
            <Field label="Validation pattern" error={error("pattern")} help="A regular expression the value must match, e.g. ^[a-z0-9]+$">
              <TextInput class="mono" value={field.pattern} onValue={(v) => onPatch({ pattern: v })} placeholder="^\w+$" />
            </Field>
            <Field
              label="Autogenerate pattern"
              error={error("autogeneratePattern")}
              help="Fills an empty value on create from this pattern, e.g. [a-z0-9]{15}"
            >
              <TextInput class="mono" value={field.autogeneratePattern} onValue={(v) => onPatch({ autogeneratePattern: v })} placeholder="[a-z0-9]{30}" />
            </Field>
          </div>
          {field.primaryKey && (
            <p class="muted small">
              This is the collection's primary key: it is always required, and its pattern and length limit what ids
              clients may choose.
            </p>
          )}
          {error("primaryKey") && <p class="field-error">{error("primaryKey")}</p>}
        </>
      );
    case "password":
      return (
        <>
          <div class="grid-2">
            <Field label="Min length" error={error("min")}>
              <NumberInput value={num("min")} min={0} step={1} onValue={(v) => onPatch({ min: v ?? 0 })} />
            </Field>
            <Field label="Max length" error={error("max")} help="0 = default (71, bcrypt's limit)">
              <NumberInput value={num("max")} min={0} step={1} onValue={(v) => onPatch({ max: v ?? 0 })} />
            </Field>
          </div>
          <div class="grid-2">
            <Field label="Validation pattern" error={error("pattern")} help="A regular expression the password must match">
              <TextInput class="mono" value={field.pattern} onValue={(v) => onPatch({ pattern: v })} />
            </Field>
            <Field label="Bcrypt cost" error={error("cost")} help="4–31; 0 = default (10). Higher is slower to check.">
              <NumberInput value={num("cost")} min={0} max={31} step={1} onValue={(v) => onPatch({ cost: v ?? 0 })} />
            </Field>
          </div>
        </>
      );
    case "editor":
      return (
        <div class="grid-2">
          <Field label="Max size (bytes)" error={error("maxSize")} help={`0 = default (5 MB)${field.maxSize ? ` · ${formatBytes(field.maxSize)}` : ""}`}>
            <NumberInput value={num("maxSize")} min={0} step={1} onValue={(v) => onPatch({ maxSize: v ?? 0 })} />
          </Field>
          <div class="field">
            <span class="field-label">Links</span>
            <Check
              checked={Boolean(field.convertURLs)}
              onChange={(v) => onPatch({ convertURLs: v })}
              label="Convert URLs"
              help="Make the editor rewrite links to relative URLs"
            />
          </div>
        </div>
      );
    case "number":
      return (
        <div class="grid-3">
          <Field label="Min" error={error("min")} help="Empty = no minimum">
            <NumberInput value={num("min")} onValue={(v) => onPatch({ min: v })} />
          </Field>
          <Field label="Max" error={error("max")} help="Empty = no maximum">
            <NumberInput value={num("max")} onValue={(v) => onPatch({ max: v })} />
          </Field>
          <div class="field">
            <span class="field-label">Kind</span>
            <Check checked={Boolean(field.onlyInt)} onChange={(v) => onPatch({ onlyInt: v })} label="Only integers" />
          </div>
        </div>
      );
    case "email":
    case "url":
      return domains;
    case "date":
      return (
        <div class="grid-2">
          <Field label="Min (UTC)" error={error("min")} help="Empty = no minimum">
            <UtcDateInput value={field.min} onValue={(v) => onPatch({ min: v })} />
          </Field>
          <Field label="Max (UTC)" error={error("max")} help="Empty = no maximum">
            <UtcDateInput value={field.max} onValue={(v) => onPatch({ max: v })} />
          </Field>
        </div>
      );
    case "autodate":
      return (
        <div class="row">
          <Check checked={Boolean(field.onCreate)} onChange={(v) => onPatch({ onCreate: v })} label="Set on create" />
          <Check checked={Boolean(field.onUpdate)} onChange={(v) => onPatch({ onUpdate: v })} label="Set on update" />
          {error("onCreate") && <span class="field-error">{error("onCreate")}</span>}
          {error("onUpdate") && <span class="field-error">{error("onUpdate")}</span>}
        </div>
      );
    case "select":
      return (
        <>
          <Field label="Values" error={error("values")} help="Comma-separated choices">
            <ListInput value={field.values} onValue={(v) => onPatch({ values: v })} placeholder="draft, published, archived" />
          </Field>
          <div class="grid-2">
            <Field label="Selection">
              <Select
                value={multiple ? "multiple" : "single"}
                options={[
                  { value: "single", label: "Single value" },
                  { value: "multiple", label: "Multiple values" },
                ]}
                onValue={(v) => setMultiple(v === "multiple", (field.values ?? []).length)}
              />
            </Field>
            {multiple && (
              <Field label="Max values" error={error("maxSelect")}>
                <NumberInput value={num("maxSelect")} min={2} step={1} onValue={(v) => onPatch({ maxSelect: v ?? 2 })} />
              </Field>
            )}
          </div>
          {!multiple && error("maxSelect") && <p class="field-error">{error("maxSelect")}</p>}
        </>
      );
    case "file":
      return (
        <>
          <div class="grid-3">
            <Field label="Files">
              <Select
                value={multiple ? "multiple" : "single"}
                options={[
                  { value: "single", label: "Single file" },
                  { value: "multiple", label: "Multiple files" },
                ]}
                onValue={(v) => setMultiple(v === "multiple", 99)}
              />
            </Field>
            {multiple ? (
              <Field label="Max files" error={error("maxSelect")}>
                <NumberInput value={num("maxSelect")} min={2} step={1} onValue={(v) => onPatch({ maxSelect: v ?? 2 })} />
              </Field>
            ) : (
              <span />
            )}
            <Field label="Max size per file (bytes)" error={error("maxSize")} help={`0 = default (5 MB)${field.maxSize ? ` · ${formatBytes(field.maxSize)}` : ""}`}>
              <NumberInput value={num("maxSize")} min={0} step={1} onValue={(v) => onPatch({ maxSize: v ?? 0 })} />
            </Field>
          </div>
          {!multiple && error("maxSelect") && <p class="field-error">{error("maxSelect")}</p>}
          <Field label="Allowed types (MIME)" error={error("mimeTypes")} help="Comma-separated; empty = any type">
            <ListInput value={field.mimeTypes} onValue={(v) => onPatch({ mimeTypes: v })} placeholder="image/png, image/jpeg" list="mime-types" />
          </Field>
          <datalist id="mime-types">
            {ALL_MIME.map((m) => (
              <option key={m} value={m} />
            ))}
          </datalist>
          <div class="row mime-presets" role="group" aria-label="Add common types">
            <span class="muted small">Add:</span>
            {MIME_PRESETS.map((preset) => (
              <button
                key={preset.label}
                type="button"
                class="btn btn-small"
                onClick={() => onPatch({ mimeTypes: [...new Set([...(field.mimeTypes ?? []), ...preset.types])] })}
              >
                {preset.label}
              </button>
            ))}
            {(field.mimeTypes ?? []).length > 0 && (
              <button type="button" class="btn btn-small btn-link" onClick={() => onPatch({ mimeTypes: [] })}>
                Allow any type
              </button>
            )}
          </div>
          <Field
            label="Thumbnail sizes"
            error={error("thumbs")}
            help="Comma-separated: 100x100 (crop centre), 100x100t (top), 100x100b (bottom), 100x100f (fit), 0x100 or 100x0 (keep ratio)"
          >
            <ListInput value={field.thumbs} onValue={(v) => onPatch({ thumbs: v })} placeholder="100x100, 0x300" />
          </Field>
          {(field.thumbs ?? []).some((t: string) => !/^\d+x\d+[tbf]?$/.test(t)) && (
            <p class="field-error">Thumb sizes look like 100x100, 100x100t, 100x100b, 100x100f, 0x100 or 100x0.</p>
          )}
          <Check
            checked={Boolean(field.protected)}
            onChange={(v) => onPatch({ protected: v })}
            label="Protected"
            help="Downloads need a file token (and the view rule) instead of a public URL"
          />
        </>
      );
    case "relation": {
      const targets = props.collections.filter((c) => c.id !== props.selfId);
      const options = [
        { value: "", label: "Choose a collection…" },
        ...(props.selfId ? [{ value: props.selfId, label: `${props.selfName} (this collection)` }] : []),
        ...targets.map((c) => ({ value: c.id, label: `${c.name}${c.type === "view" ? " (view)" : ""}${c.system ? " (system)" : ""}` })),
      ];
      const changedTarget = props.saved && props.saved.collectionId !== field.collectionId;
      return (
        <>
          <div class="grid-2">
            <Field label="Related collection" error={error("collectionId")} help={changedTarget ? "Existing ids point at the old collection's records." : undefined}>
              <Select value={String(field.collectionId ?? "")} options={options} onValue={(v) => onPatch({ collectionId: v })} />
            </Field>
            <Field label="Selection">
              <Select
                value={multiple ? "multiple" : "single"}
                options={[
                  { value: "single", label: "Single record" },
                  { value: "multiple", label: "Multiple records" },
                ]}
                onValue={(v) => setMultiple(v === "multiple", 999)}
              />
            </Field>
          </div>
          {multiple && (
            <div class="grid-2">
              <Field label="Min records" error={error("minSelect")} help="0 = none required">
                <NumberInput value={num("minSelect")} min={0} step={1} onValue={(v) => onPatch({ minSelect: v ?? 0 })} />
              </Field>
              <Field label="Max records" error={error("maxSelect")}>
                <NumberInput value={num("maxSelect")} min={2} step={1} onValue={(v) => onPatch({ maxSelect: v ?? 2 })} />
              </Field>
            </div>
          )}
          {!multiple && (error("maxSelect") || error("minSelect")) && <p class="field-error">{error("maxSelect") ?? error("minSelect")}</p>}
          <Check
            checked={Boolean(field.cascadeDelete)}
            onChange={(v) => onPatch({ cascadeDelete: v })}
            label="Cascade delete"
            help="Deleting a related record deletes this record too (or removes the id, for multiple relations)"
          />
        </>
      );
    }
    case "json":
      return (
        <Field label="Max size (bytes)" error={error("maxSize")} help={`0 = default (1 MB)${field.maxSize ? ` · ${formatBytes(field.maxSize)}` : ""}`}>
          <NumberInput value={num("maxSize")} min={0} step={1} onValue={(v) => onPatch({ maxSize: v ?? 0 })} />
        </Field>
      );
    case "bool":
    case "geoPoint":
      return null;
    default:
      return <p class="muted">This field type ({field.type}) has no options the dashboard knows.</p>;
  }
}

/** The "required" flag's meaning differs by type. */
export function requiredLabel(type: string): { label: string; help: string } {
  switch (type) {
    case "number":
      return { label: "Nonzero", help: "Required: the value may not be 0 (or empty)" };
    case "bool":
      return { label: "Must be true", help: "Required: the value must be true" };
    case "select":
    case "relation":
    case "file":
      return { label: "Nonempty", help: "Required: at least one value" };
    default:
      return { label: "Nonempty", help: "Required: the value may not be empty" };
  }
}

/** A new field's type may still change; its options restart from that type's defaults. */
export function retype(field: DraftField, type: string): DraftField {
  const keep = { name: field.name, hidden: field.hidden, presentable: field.presentable, _key: field._key };
  return {
    system: false,
    ...keep,
    type,
    ...structuredClone(fieldType(type).defaults),
  } as DraftField;
}

export { FIELD_TYPES };
