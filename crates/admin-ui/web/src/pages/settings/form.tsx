// The settings form machinery shared by the settings sections: one copy of the settings as the
// server last returned them (`saved`) and one as edited (`draft`), kept across section changes
// so the navigation can mark sections with unsaved changes. Each section owns some paths of the
// settings object; saving a section PATCHes only the values it changed under its paths.
import type { ComponentChildren } from "preact";
import { createContext } from "preact";
import { useContext, useEffect, useRef, useState } from "preact/hooks";
import { errorMessage, fieldErrors, pb } from "../../lib/api";
import { store, useStore } from "../../lib/store";
import { Field, NumberInput, Select, TextInput, Toggle } from "../../ui/form";

// The settings JSON is loosely typed on purpose: its shape is the server's (see
// crates/server/src/settings/mod.rs), and the sections address it by path.
export type Json = any;

export interface SettingsState {
  saved: Json | null;
  draft: Json | null;
  loading: boolean;
  error: string;
}

export const settingsState = store<SettingsState>({ saved: null, draft: null, loading: false, error: "" });

/** The paths each section owns (a prefix owns everything under it). */
export const SECTION_PATHS: Record<string, string[]> = {
  application: [
    "meta.appName",
    "meta.appURL",
    "meta.hideControls",
    "meta.accentColor",
    "batch",
    "trustedProxy",
    "rateLimits",
    "superuserIPs",
    "realtime",
  ],
  mail: ["meta.senderName", "meta.senderAddress", "smtp"],
  storage: ["s3"],
  backups: ["backups"],
  logs: ["logs"],
};

/** Write-only values: never returned by the server; an empty input means "keep the stored one". */
const SECRETS = new Set(["smtp.password", "s3.secret", "backups.s3.secret"]);

export function split(path: string): string[] {
  return path.split(".").filter(Boolean);
}

export function getPath(value: Json, path: string): Json {
  let current = value;
  for (const key of split(path)) {
    if (current === null || current === undefined) return undefined;
    current = current[key];
  }
  return current;
}

/** A copy of `value` with `path` set (containers along the path are copied, not mutated). */
export function setPath(value: Json, path: string, next: Json): Json {
  const keys = split(path);
  const walk = (node: Json, index: number): Json => {
    if (index === keys.length) return next;
    const key = keys[index];
    const copy = Array.isArray(node) ? [...node] : { ...(node ?? {}) };
    const child = walk(node?.[key], index + 1);
    if (child === undefined && !Array.isArray(copy)) delete (copy as Record<string, unknown>)[key];
    else (copy as Record<string, unknown>)[key] = child;
    return copy;
  };
  return walk(value, 0);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return !!value && typeof value === "object" && !Array.isArray(value);
}

/** What changed from `before` to `after`: objects key by key, anything else replaced whole. */
export function diff(before: Json, after: Json): Json {
  if (isPlainObject(before) && isPlainObject(after)) {
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(after)) {
      if (value === undefined) continue;
      const change = diff(before[key], value);
      if (change !== undefined) out[key] = change;
    }
    return Object.keys(out).length ? out : undefined;
  }
  if (after === undefined) return undefined;
  return JSON.stringify(before) === JSON.stringify(after) ? undefined : after;
}

/** The PATCH body for a section's paths (undefined when nothing changed). */
export function sectionPatch(state: SettingsState, paths: string[]): Json {
  if (!state.saved || !state.draft) return undefined;
  let patch: Json = undefined;
  for (const path of paths) {
    const change = diff(getPath(state.saved, path), getPath(state.draft, path));
    if (change !== undefined) patch = setPath(patch ?? {}, path, change);
  }
  return patch;
}

export function sectionDirty(state: SettingsState, section: string): boolean {
  const paths = SECTION_PATHS[section];
  return !!paths && sectionPatch(state, paths) !== undefined;
}

export function anyDirty(state: SettingsState = settingsState.get()): boolean {
  return Object.keys(SECTION_PATHS).some((section) => sectionDirty(state, section));
}

let loading: Promise<void> | null = null;

/** Loads the settings; a reload keeps the edits of sections that have unsaved changes. */
export function loadSettings(): Promise<void> {
  if (loading) return loading;
  settingsState.update((s) => ({ ...s, loading: true, error: "" }));
  loading = pb.settings
    .getAll()
    .then((saved) => {
      const current = settingsState.get();
      let draft: Json = structuredClone(saved);
      if (current.saved && current.draft) {
        for (const [section, paths] of Object.entries(SECTION_PATHS)) {
          if (!sectionDirty(current, section)) continue;
          for (const path of paths) draft = setPath(draft, path, getPath(current.draft, path));
        }
      }
      settingsState.set({ saved, draft, loading: false, error: "" });
    })
    .catch((error) => {
      settingsState.update((s) => ({ ...s, loading: false, error: errorMessage(error) }));
    })
    .finally(() => {
      loading = null;
    });
  return loading;
}

/** Null numbers (emptied inputs) cannot be saved: an error for each, keyed by path. */
function emptyNumbers(patch: Json, prefix = "", out: Record<string, string> = {}): Record<string, string> {
  if (patch === null) out[prefix] = "Enter a number.";
  else if (patch && typeof patch === "object") {
    for (const [key, value] of Object.entries(patch)) emptyNumbers(value, prefix ? `${prefix}.${key}` : key, out);
  }
  return out;
}

export interface SectionForm {
  section: string;
  draft: Json;
  saved: Json;
  get(path: string): Json;
  set(path: string, value: Json): void;
  error(path: string): string | undefined;
  /** Errors of paths under `prefix` (for a whole list row). */
  errorsUnder(prefix: string): string[];
  clearErrors(prefix: string): void;
  dirty: boolean;
  saving: boolean;
  /** The outcome of the last save, shown in the save bar (no toast: it would cover the bar). */
  notice: { kind: "ok" | "error"; text: string } | null;
  save(): Promise<boolean>;
  reset(): void;
}

export const FormContext = createContext<SectionForm | null>(null);

export function useForm(): SectionForm {
  const form = useContext(FormContext);
  if (!form) throw new Error("settings input outside a settings section");
  return form;
}

/** The form state of one section; `onSaved` runs after a successful save. */
export function useSectionForm(section: string, onSaved?: (saved: Json) => void): SectionForm {
  const state = useStore(settingsState);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [saving, setSaving] = useState(false);
  const [notice, setNotice] = useState<SectionForm["notice"]>(null);
  const paths = SECTION_PATHS[section] ?? [];
  const dirty = sectionPatch(state, paths) !== undefined;

  useEffect(() => {
    setErrors({});
    setNotice(null);
  }, [section]);
  useEffect(() => {
    if (notice?.kind !== "ok") return;
    const timer = setTimeout(() => setNotice(null), 5000);
    return () => clearTimeout(timer);
  }, [notice]);

  const form: SectionForm = {
    section,
    draft: state.draft,
    saved: state.saved,
    get: (path) => getPath(state.draft, path),
    set(path, value) {
      if (SECRETS.has(path) && value === "") value = undefined;
      settingsState.update((s) => ({ ...s, draft: setPath(s.draft, path, value) }));
      if (notice) setNotice(null);
      if (errors[path]) {
        setErrors((all) => {
          const next = { ...all };
          delete next[path];
          return next;
        });
      }
    },
    error: (path) => errors[path],
    errorsUnder: (prefix) =>
      Object.entries(errors)
        .filter(([key]) => key.startsWith(prefix + "."))
        .map(([, message]) => message),
    clearErrors(prefix) {
      setErrors((all) => Object.fromEntries(Object.entries(all).filter(([key]) => !key.startsWith(prefix))));
    },
    dirty,
    saving,
    notice,
    async save() {
      const current = settingsState.get();
      const patch = sectionPatch(current, paths);
      if (patch === undefined) return true;
      const local = emptyNumbers(patch);
      if (Object.keys(local).length) {
        setErrors(local);
        setNotice({ kind: "error", text: "Not saved: some values are missing." });
        return false;
      }
      setSaving(true);
      try {
        const saved = await pb.settings.update(patch);
        settingsState.update((s) => {
          let draft = s.draft;
          for (const path of paths) draft = setPath(draft, path, structuredClone(getPath(saved, path)));
          return { ...s, saved, draft };
        });
        setErrors({});
        setNotice({ kind: "ok", text: "Changes saved." });
        onSaved?.(saved);
        return true;
      } catch (error) {
        const fields = fieldErrors(error);
        setErrors(fields);
        // Takes the keyboard to the first input the server refused.
        setTimeout(() => {
          document
            .querySelector<HTMLElement>(".settings-form .has-error :is(input, select), .settings-form [aria-invalid='true']")
            ?.focus();
        }, 0);
        const outside = Object.keys(fields).filter((key) => !paths.some((p) => key === p || key.startsWith(p + ".")));
        const count = Object.keys(fields).length;
        setNotice({
          kind: "error",
          text:
            count && !outside.length
              ? `Not saved: ${count === 1 ? "one value needs" : `${count} values need`} attention.`
              : `Not saved. ${errorMessage(error)}`,
        });
        return false;
      } finally {
        setSaving(false);
      }
    },
    reset() {
      settingsState.update((s) => {
        let draft = s.draft;
        for (const path of paths) draft = setPath(draft, path, structuredClone(getPath(s.saved, path)));
        return { ...s, draft };
      });
      setErrors({});
      setNotice(null);
    },
  };
  return form;
}

/** A section's <form>: Enter and Ctrl/⌘+S save; the bar at the bottom shows unsaved changes. */
export function SectionFormView(props: { form: SectionForm; children: ComponentChildren; testId?: string }) {
  const { form } = props;
  const formRef = useRef(form);
  formRef.current = form;
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "s") {
        e.preventDefault();
        if (formRef.current.dirty && !formRef.current.saving) void formRef.current.save();
      }
    };
    addEventListener("keydown", onKey);
    return () => removeEventListener("keydown", onKey);
  }, []);
  return (
    <FormContext.Provider value={form}>
      <form
        class="settings-form"
        data-testid={props.testId}
        noValidate
        onSubmit={(e) => {
          e.preventDefault();
          if (form.dirty && !form.saving) void form.save();
        }}
      >
        {props.children}
        <SaveBar />
      </form>
    </FormContext.Provider>
  );
}

export function SaveBar() {
  const form = useForm();
  return (
    <div class={`save-bar${form.dirty ? " is-dirty" : ""}`} data-testid="save-bar">
      <span class="save-bar-state" aria-live="polite">
        {form.notice?.kind === "error" ? (
          <span class="form-error" role="alert">
            {form.notice.text}
          </span>
        ) : form.dirty ? (
          <>
            <span class="dirty-dot" aria-hidden="true" /> Unsaved changes
          </>
        ) : form.notice?.kind === "ok" ? (
          <span class="text-success">✓ {form.notice.text}</span>
        ) : (
          <span class="muted">No unsaved changes</span>
        )}
      </span>
      <span class="btn-group">
        <button type="button" class="btn" disabled={!form.dirty || form.saving} onClick={() => form.reset()}>
          Reset
        </button>
        <button type="submit" class="btn btn-primary" disabled={!form.dirty || form.saving}>
          {form.saving ? "Saving…" : "Save changes"}
        </button>
      </span>
    </div>
  );
}

// Inputs bound to a settings path, with the server's error for that path beside them.

export function SText(props: {
  path: string;
  label: ComponentChildren;
  help?: ComponentChildren;
  type?: "text" | "email" | "url" | "password";
  placeholder?: string;
  list?: string;
  autoComplete?: string;
}) {
  const form = useForm();
  return (
    <Field label={props.label} help={props.help} error={form.error(props.path)}>
      <TextInput
        type={props.type}
        name={props.path}
        value={form.get(props.path) ?? ""}
        placeholder={props.placeholder}
        list={props.list}
        onValue={(value) => form.set(props.path, value)}
      />
    </Field>
  );
}

export function SNumber(props: {
  path: string;
  label: ComponentChildren;
  help?: ComponentChildren;
  min?: number;
  max?: number;
  step?: number;
  placeholder?: string;
}) {
  const form = useForm();
  return (
    <Field label={props.label} help={props.help} error={form.error(props.path)}>
      <NumberInput
        name={props.path}
        value={form.get(props.path)}
        min={props.min}
        max={props.max}
        step={props.step ?? 1}
        placeholder={props.placeholder}
        onValue={(value) => form.set(props.path, value)}
      />
    </Field>
  );
}

export function SToggle(props: { path: string; label: ComponentChildren; help?: ComponentChildren }) {
  const form = useForm();
  const error = form.error(props.path);
  return (
    <div class="settings-toggle">
      <Toggle name={props.path} checked={!!form.get(props.path)} label={props.label} onChange={(v) => form.set(props.path, v)} />
      {props.help && <small class="field-help">{props.help}</small>}
      {error && (
        <small class="field-error" role="alert">
          {error}
        </small>
      )}
    </div>
  );
}

export function SSelect<T extends string | number | boolean>(props: {
  path: string;
  label: ComponentChildren;
  help?: ComponentChildren;
  options: readonly { value: T; label: string }[];
}) {
  const form = useForm();
  const value = form.get(props.path);
  const options = props.options.map((o) => ({ value: String(o.value), label: o.label }));
  if (!options.some((o) => o.value === String(value ?? ""))) {
    options.push({ value: String(value ?? ""), label: String(value ?? "") });
  }
  return (
    <Field label={props.label} help={props.help} error={form.error(props.path)}>
      <Select
        name={props.path}
        value={String(value ?? "")}
        options={options}
        onValue={(raw) => {
          const match = props.options.find((o) => String(o.value) === raw);
          form.set(props.path, match ? match.value : raw);
        }}
      />
    </Field>
  );
}

/** Parses "a, b\nc" into ["a", "b", "c"]. */
export function parseList(text: string): string[] {
  return text
    .split(/[\n,]/)
    .map((part) => part.trim())
    .filter(Boolean);
}

/** A list of short strings (IPs, header names) typed comma or line separated. */
export function SList(props: { path: string; label: ComponentChildren; help?: ComponentChildren; placeholder?: string }) {
  const form = useForm();
  const value: string[] = form.get(props.path) ?? [];
  const [text, setText] = useState(value.join(", "));
  // Follows outside changes (reset, save, "add my IP") without fighting the user's typing.
  useEffect(() => {
    if (JSON.stringify(parseList(text)) !== JSON.stringify(value)) setText(value.join(", "));
  }, [JSON.stringify(value)]);
  const errors = [form.error(props.path), ...form.errorsUnder(props.path)].filter(Boolean);
  return (
    <Field label={props.label} help={props.help} error={errors.join(" ") || undefined}>
      <TextInput
        name={props.path}
        value={text}
        placeholder={props.placeholder}
        onValue={(raw) => {
          setText(raw);
          form.set(props.path, parseList(raw));
          form.clearErrors(props.path + ".");
        }}
      />
    </Field>
  );
}
