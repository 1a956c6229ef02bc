// Labelled inputs with their validation message, keyed by the server's error paths.
import type { ComponentChildren } from "preact";

export function Field(props: {
  label: ComponentChildren;
  error?: string;
  help?: ComponentChildren;
  children: ComponentChildren;
  inline?: boolean;
}) {
  // The help and the error sit outside the <label>, so the input's accessible name is the
  // label text alone.
  return (
    <div class={`field${props.inline ? " field-inline" : ""}${props.error ? " has-error" : ""}`}>
      <label class="field-control">
        <span class="field-label">{props.label}</span>
        {props.children}
      </label>
      {props.help && <small class="field-help">{props.help}</small>}
      {props.error && (
        <small class="field-error" role="alert">
          {props.error}
        </small>
      )}
    </div>
  );
}

export function TextInput(props: {
  value: string | number | undefined | null;
  onValue: (value: string) => void;
  type?: "text" | "email" | "url" | "password" | "search" | "date" | "datetime-local";
  id?: string;
  name?: string;
  placeholder?: string;
  required?: boolean;
  disabled?: boolean;
  autoFocus?: boolean;
  class?: string;
  maxLength?: number;
  list?: string;
}) {
  const { value, onValue, ...rest } = props;
  return (
    <input
      {...rest}
      type={props.type ?? "text"}
      value={value ?? ""}
      onInput={(e) => onValue((e.currentTarget as HTMLInputElement).value)}
    />
  );
}

export function NumberInput(props: {
  value: number | undefined | null;
  onValue: (value: number | null) => void;
  min?: number;
  max?: number;
  step?: number | "any";
  placeholder?: string;
  id?: string;
  name?: string;
}) {
  return (
    <input
      type="number"
      id={props.id}
      name={props.name}
      min={props.min}
      max={props.max}
      step={props.step ?? "any"}
      placeholder={props.placeholder}
      value={props.value ?? ""}
      onInput={(e) => {
        const raw = (e.currentTarget as HTMLInputElement).value;
        props.onValue(raw === "" ? null : Number(raw));
      }}
    />
  );
}

export function Toggle(props: {
  checked: boolean;
  onChange: (checked: boolean) => void;
  label: ComponentChildren;
  disabled?: boolean;
  name?: string;
}) {
  return (
    <label class="toggle">
      <input
        type="checkbox"
        role="switch"
        name={props.name}
        checked={props.checked}
        disabled={props.disabled}
        onChange={(e) => props.onChange((e.currentTarget as HTMLInputElement).checked)}
      />
      <span>{props.label}</span>
    </label>
  );
}

export function Select<T extends string>(props: {
  value: T;
  options: readonly (T | { value: T; label: string })[];
  onValue: (value: T) => void;
  id?: string;
  name?: string;
}) {
  return (
    <select
      id={props.id}
      name={props.name}
      value={props.value}
      onChange={(e) => props.onValue((e.currentTarget as HTMLSelectElement).value as T)}
    >
      {props.options.map((option) => {
        const value = typeof option === "string" ? option : option.value;
        const label = typeof option === "string" ? option : option.label;
        return (
          <option key={value} value={value}>
            {label}
          </option>
        );
      })}
    </select>
  );
}

/** Tabs whose panels are rendered by the caller. */
export function Tabs<T extends string>(props: {
  value: T;
  tabs: readonly { value: T; label: ComponentChildren; badge?: boolean }[];
  onValue: (value: T) => void;
}) {
  return (
    <div class="tabs" role="tablist">
      {props.tabs.map((tab) => (
        <button
          key={tab.value}
          type="button"
          role="tab"
          aria-selected={props.value === tab.value}
          class={`tab${props.value === tab.value ? " active" : ""}`}
          onClick={() => props.onValue(tab.value)}
        >
          {tab.label}
          {tab.badge && <span class="tab-badge" aria-label="has errors" />}
        </button>
      ))}
    </div>
  );
}
