// One input per field type for the record panel. File and relation fields have their own
// components; this file holds the rest and the dispatcher.
import type { ComponentChildren } from "preact";
import { formatDate } from "../../ui/misc";
import { NumberInput, TextInput, Toggle } from "../../ui/form";
import { asList, isMultiple, localInputToServerDate, serverDateToLocalInput, type CollectionField } from "./fields";
import { TYPE_ICONS } from "./table";
import { RichEditor } from "./rich-editor";

/** The label of a field: its type icon, name, and a mark when it is required. */
export function FieldLabel(props: { field: CollectionField; extra?: ComponentChildren }) {
  const f = props.field;
  return (
    <span class="field-label record-field-label">
      <span class="type-icon" aria-hidden="true">
        {TYPE_ICONS[f.type] ?? "?"}
      </span>
      <span>{f.name}</span>
      {f.required && (
        <span class="required-mark" title="Required" aria-label="required">
          *
        </span>
      )}
      {f.hidden && <span class="badge">hidden</span>}
      {props.extra}
    </span>
  );
}

/** A labelled block with the field's help and its error from the server. */
export function FieldBlock(props: {
  field: CollectionField;
  error?: string;
  inputId?: string;
  extra?: ComponentChildren;
  children: ComponentChildren;
  /** Groups of inputs (not a single input) use a fieldset instead of a label. */
  group?: boolean;
}) {
  const f = props.field;
  const help = typeof f.help === "string" && f.help ? f.help : constraintHint(f);
  const errorId = props.inputId ? `${props.inputId}-error` : undefined;
  const body = (
    <>
      {props.children}
      {help && <small class="field-help">{help}</small>}
      {props.error && (
        <small class="field-error" role="alert" id={errorId}>
          {props.error}
        </small>
      )}
    </>
  );
  if (props.group) {
    return (
      <fieldset class={`field record-field${props.error ? " has-error" : ""}`} data-field={f.name}>
        <legend>
          <FieldLabel field={f} extra={props.extra} />
        </legend>
        {body}
      </fieldset>
    );
  }
  return (
    <div class={`field record-field${props.error ? " has-error" : ""}`} data-field={f.name}>
      <label for={props.inputId}>
        <FieldLabel field={f} extra={props.extra} />
      </label>
      {body}
    </div>
  );
}

/** A short description of the field's limits, shown under its input. */
function constraintHint(f: CollectionField): string {
  const parts: string[] = [];
  if (f.type === "text" || f.type === "password") {
    if (f.min && f.max) parts.push(`${f.min}–${f.max} characters`);
    else if (f.min) parts.push(`at least ${f.min} characters`);
    else if (f.max) parts.push(`at most ${f.max} characters`);
    if (f.pattern) parts.push(`pattern ${f.pattern}`);
  }
  if (f.type === "number") {
    if (f.onlyInt) parts.push("whole number");
    if (f.min !== null && f.min !== undefined && f.min !== 0) parts.push(`≥ ${f.min}`);
    if (f.max !== null && f.max !== undefined && f.max !== 0) parts.push(`≤ ${f.max}`);
  }
  if ((f.type === "email" || f.type === "url") && Array.isArray(f.onlyDomains) && f.onlyDomains.length) {
    parts.push(`only ${f.onlyDomains.join(", ")}`);
  }
  if (f.type === "date" && (f.min || f.max)) {
    if (f.min) parts.push(`from ${formatDate(f.min)}`);
    if (f.max) parts.push(`until ${formatDate(f.max)}`);
  }
  return parts.join(" · ");
}

export function inputId(field: CollectionField) {
  return `record-field-${field.name}`;
}

/** The input for a plain field type (not file, relation, json, password). */
export function ValueInput(props: {
  field: CollectionField;
  value: unknown;
  onValue: (value: unknown) => void;
  error?: string;
}) {
  const { field, value, onValue } = props;
  const id = inputId(field);
  const described = props.error ? `${id}-error` : undefined;
  switch (field.type) {
    case "bool":
      return (
        <div class={`field record-field${props.error ? " has-error" : ""}`} data-field={field.name}>
          <Toggle checked={!!value} onChange={onValue} label={<FieldLabel field={field} />} name={field.name} />
          {props.error && (
            <small class="field-error" role="alert">
              {props.error}
            </small>
          )}
        </div>
      );
    case "number":
      return (
        <FieldBlock field={field} error={props.error} inputId={id}>
          <NumberInput
            id={id}
            name={field.name}
            value={typeof value === "number" ? value : value === null ? null : Number(value) || 0}
            onValue={(n) => onValue(n)}
            min={typeof field.min === "number" && field.min !== 0 ? field.min : undefined}
            max={typeof field.max === "number" && field.max !== 0 ? field.max : undefined}
            step={field.onlyInt ? 1 : "any"}
          />
        </FieldBlock>
      );
    case "email":
    case "url":
      return (
        <FieldBlock field={field} error={props.error} inputId={id}>
          <TextInput
            id={id}
            name={field.name}
            type={field.type}
            value={String(value ?? "")}
            onValue={onValue}
            placeholder={field.type === "url" ? "https://" : "name@example.com"}
          />
        </FieldBlock>
      );
    case "date":
      return (
        <FieldBlock field={field} error={props.error} inputId={id}>
          <div class="row date-row">
            <input
              id={id}
              name={field.name}
              type="datetime-local"
              step={1}
              aria-describedby={described}
              value={serverDateToLocalInput(value)}
              onInput={(e) => onValue(localInputToServerDate(e.currentTarget.value))}
            />
            {value ? (
              <button type="button" class="btn btn-small" onClick={() => onValue("")} aria-label={`Clear ${field.name}`}>
                Clear
              </button>
            ) : null}
          </div>
          {value ? <small class="muted">UTC: {String(value)}</small> : null}
        </FieldBlock>
      );
    case "select":
      return <SelectInput field={field} value={value} onValue={onValue} error={props.error} />;
    case "editor":
      return (
        <FieldBlock field={field} error={props.error} inputId={id}>
          <RichEditor id={id} value={String(value ?? "")} onValue={onValue} label={field.name} />
        </FieldBlock>
      );
    case "geoPoint": {
      const point = (value && typeof value === "object" ? value : { lon: 0, lat: 0 }) as { lon: number; lat: number };
      return (
        <FieldBlock field={field} error={props.error} group>
          <div class="grid-2 geo-inputs">
            <label class="field">
              <span class="muted">Longitude</span>
              <NumberInput
                name={`${field.name}.lon`}
                value={point.lon}
                min={-180}
                max={180}
                onValue={(lon) => onValue({ ...point, lon: lon ?? 0 })}
              />
            </label>
            <label class="field">
              <span class="muted">Latitude</span>
              <NumberInput
                name={`${field.name}.lat`}
                value={point.lat}
                min={-90}
                max={90}
                onValue={(lat) => onValue({ ...point, lat: lat ?? 0 })}
              />
            </label>
          </div>
        </FieldBlock>
      );
    }
    default:
      // text and anything unknown: a text area that grows with its content.
      return (
        <FieldBlock field={field} error={props.error} inputId={id}>
          <textarea
            id={id}
            name={field.name}
            class="autogrow"
            rows={1}
            aria-describedby={described}
            value={value === null || value === undefined ? "" : String(value)}
            maxLength={typeof field.max === "number" && field.max > 0 ? field.max : undefined}
            placeholder={field.autogeneratePattern ? "Leave empty to generate" : undefined}
            onInput={(e) => onValue(e.currentTarget.value)}
          />
        </FieldBlock>
      );
  }
}

function SelectInput(props: { field: CollectionField; value: unknown; onValue: (value: unknown) => void; error?: string }) {
  const { field } = props;
  const values: string[] = Array.isArray(field.values) ? field.values : [];
  const id = inputId(field);
  if (!isMultiple(field)) {
    return (
      <FieldBlock field={field} error={props.error} inputId={id}>
        <select id={id} name={field.name} value={String(props.value ?? "")} onChange={(e) => props.onValue(e.currentTarget.value)}>
          <option value="">{field.required ? "Choose…" : "— none —"}</option>
          {values.map((v) => (
            <option key={v} value={v}>
              {v}
            </option>
          ))}
        </select>
      </FieldBlock>
    );
  }
  const chosen = asList(props.value);
  const max = Number(field.maxSelect) || values.length;
  const toggle = (v: string) => {
    if (chosen.includes(v)) props.onValue(chosen.filter((c) => c !== v));
    else if (chosen.length < max) props.onValue([...chosen, v]);
  };
  return (
    <FieldBlock field={field} error={props.error} group extra={<span class="muted count">{chosen.length}/{max}</span>}>
      <div class="choice-chips" role="group" aria-label={field.name}>
        {values.map((v) => {
          const on = chosen.includes(v);
          return (
            <button
              key={v}
              type="button"
              class={`choice${on ? " on" : ""}`}
              aria-pressed={on}
              disabled={!on && chosen.length >= max}
              onClick={() => toggle(v)}
            >
              {on ? "✓ " : ""}
              {v}
            </button>
          );
        })}
      </div>
    </FieldBlock>
  );
}

/** A JSON field: a text area checked as you type. */
export function JsonInput(props: {
  field: CollectionField;
  text: string;
  onText: (text: string) => void;
  error?: string;
}) {
  const id = inputId(props.field);
  const problem = jsonProblem(props.text);
  return (
    <FieldBlock field={props.field} error={props.error} inputId={id}>
      <textarea
        id={id}
        name={props.field.name}
        class={`code-input json-input${problem ? " invalid" : ""}`}
        rows={Math.min(14, Math.max(3, props.text.split("\n").length))}
        spellcheck={false}
        aria-invalid={!!problem}
        value={props.text}
        onInput={(e) => props.onText(e.currentTarget.value)}
        placeholder="null"
      />
      <small class={problem ? "field-error" : "muted"} data-testid={`json-status-${props.field.name}`}>
        {problem ? `Invalid JSON: ${problem}` : props.text.trim() ? "Valid JSON" : "Empty (null)"}
      </small>
    </FieldBlock>
  );
}

export function jsonProblem(text: string): string {
  if (!text.trim()) return "";
  try {
    JSON.parse(text);
    return "";
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

export function jsonText(value: unknown): string {
  return value === null || value === undefined ? "" : JSON.stringify(value, null, 2);
}
