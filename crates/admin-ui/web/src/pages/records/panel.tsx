// The record panel: create, edit, duplicate, delete one record (read-only for views), with an
// input per field type, the server's field errors beside the inputs, a guard against losing
// unsaved changes, and notice of changes made elsewhere while it is open.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import {
  ClientResponseError,
  errorMessage,
  fieldErrors,
  pb,
  type CollectionModel,
  type RecordModel,
} from "../../lib/api";
import { useStore } from "../../lib/store";
import { toast, toastError } from "../../lib/toast";
import { confirm, Dialog } from "../../ui/dialog";
import { copyText, formatDate, Spinner } from "../../ui/misc";
import { Toggle } from "../../ui/form";
import {
  asList,
  emptyValue,
  isAuth,
  isMultiple,
  isSecret,
  isView,
  originalFileName,
  sameValue,
  type CollectionField,
} from "./fields";
import { CopyIcon } from "./icons";
import { fileUrl, fileToken, useFileToken } from "./file-urls";
import { FileInput, type FileChanges } from "./file-field";
import { FieldBlock, FieldLabel, JsonInput, ValueInput, jsonProblem, jsonText } from "./inputs";
import { Popover, MenuItem } from "./menu";
import { RelationInput } from "./relation-picker";
import { ImpersonateDialog } from "./impersonate";
import { ExternalAuths } from "./external-auths";
import { remoteEvents } from "./live";

export interface Prefill {
  values: Record<string, unknown>;
  files: Record<string, File[]>;
}

export type PanelTarget = { kind: "edit"; id: string } | { kind: "new"; prefill?: Prefill; seq?: number };

const AUTH_SYSTEM = ["email", "emailVisibility", "verified"];

/** The fields edited through the generic inputs (not id, secrets, autodates, auth's own). */
function formFields(collection: CollectionModel): CollectionField[] {
  const auth = isAuth(collection);
  return (collection.fields ?? []).filter(
    (f) =>
      !isSecret(f) &&
      !(f.system && f.name === "id") &&
      f.type !== "autodate" &&
      !(auth && f.system && AUTH_SYSTEM.includes(f.name)),
  );
}

/** The fields whose values live in the draft (everything but files and json text). */
function valueFields(collection: CollectionModel): CollectionField[] {
  return (collection.fields ?? []).filter(
    (f) =>
      !isSecret(f) &&
      !(f.system && f.name === "id") &&
      f.type !== "autodate" &&
      f.type !== "file" &&
      f.type !== "json",
  );
}

/** What identifies a record's stored state, to notice changes made elsewhere. */
function signature(collection: CollectionModel, record: RecordModel): string {
  return JSON.stringify((collection.fields ?? []).filter((f) => !isSecret(f)).map((f) => record[f.name] ?? null));
}

export function RecordPanel(props: {
  collection: CollectionModel;
  target: PanelTarget;
  onClose: () => void;
  onSaved: (record: RecordModel, created: boolean) => void;
  onDeleted: (id: string) => void;
  onDuplicate: (prefill: Prefill) => void;
  onOpenCreated: (record: RecordModel) => void;
}) {
  const { collection, target } = props;
  const isNew = target.kind === "new";
  const readOnly = isView(collection);
  const auth = isAuth(collection);
  const shown = useMemo(() => formFields(collection), [collection]);
  const values = useMemo(() => valueFields(collection), [collection]);
  const relationNames = shown.filter((f) => f.type === "relation").map((f) => f.name);
  const expand = relationNames.join(",");
  const token = useFileToken(shown.some((f) => f.type === "file" && f.protected));

  const [original, setOriginal] = useState<RecordModel | null>(null);
  const [loading, setLoading] = useState(!isNew);
  const [loadError, setLoadError] = useState("");
  const [draft, setDraft] = useState<Record<string, unknown>>({});
  const [baseline, setBaseline] = useState<Record<string, unknown>>({});
  const [jsonTexts, setJsonTexts] = useState<Record<string, string>>({});
  const [jsonBaseline, setJsonBaseline] = useState<Record<string, string>>({});
  const [files, setFiles] = useState<Record<string, FileChanges>>({});
  const [customId, setCustomId] = useState("");
  const [pw, setPw] = useState({ change: false, password: "", confirm: "" });
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [formError, setFormError] = useState("");
  const [saving, setSaving] = useState(false);
  const [remote, setRemote] = useState<"" | "changed" | "deleted" | "refreshed">("");
  const [known, setKnown] = useState<Map<string, RecordModel>>(new Map());
  const [impersonating, setImpersonating] = useState(false);

  const fill = (record: RecordModel | null, prefill?: Prefill) => {
    const next: Record<string, unknown> = {};
    const texts: Record<string, string> = {};
    for (const f of values) next[f.name] = record ? (record[f.name] ?? emptyValue(f)) : emptyValue(f);
    for (const f of shown.filter((f) => f.type === "json")) texts[f.name] = jsonText(record ? record[f.name] : null);
    setBaseline(next);
    setJsonBaseline(texts);
    if (prefill) {
      const withPrefill = { ...next };
      const prefillTexts = { ...texts };
      for (const f of values) if (f.name in prefill.values) withPrefill[f.name] = prefill.values[f.name];
      for (const f of shown.filter((f) => f.type === "json"))
        if (f.name in prefill.values) prefillTexts[f.name] = jsonText(prefill.values[f.name]);
      setDraft(withPrefill);
      setJsonTexts(prefillTexts);
      const fileChanges: Record<string, FileChanges> = {};
      for (const [name, list] of Object.entries(prefill.files)) fileChanges[name] = { added: list, removed: [] };
      setFiles(fileChanges);
    } else {
      setDraft(next);
      setJsonTexts(texts);
      setFiles({});
    }
    setPw({ change: false, password: "", confirm: "" });
    setErrors({});
    setFormError("");
    const map = new Map<string, RecordModel>();
    const expanded = (record?.expand ?? {}) as Record<string, RecordModel | RecordModel[]>;
    for (const value of Object.values(expanded)) {
      for (const r of Array.isArray(value) ? value : [value]) if (r?.id) map.set(r.id, r);
    }
    setKnown((prev) => new Map([...prev, ...map]));
    setOriginal(record);
  };

  const fetchRecord = async (id: string) => pb.collection(collection.name).getOne(id, { expand: expand || undefined });

  useEffect(() => {
    if (target.kind === "new") {
      fill(null, target.prefill);
      if (target.prefill) {
        // A duplicate's relation chips need their labels: fetch the chosen records once.
        const ids = relationNames.flatMap((n) => asList(target.prefill!.values[n]));
        if (ids.length) void loadKnown(ids);
      }
      return;
    }
    setLoading(true);
    fetchRecord(target.id)
      .then((record) => fill(record))
      .catch((e) => {
        setLoadError(
          e instanceof ClientResponseError && e.status === 404
            ? `There is no record ${target.id} in ${collection.name} (it may have been deleted).`
            : errorMessage(e),
        );
      })
      .finally(() => setLoading(false));
  }, []);

  const loadKnown = async (ids: string[]) => {
    const byCollection = new Map<string, string[]>();
    for (const f of shown.filter((f) => f.type === "relation")) {
      const mine = asList(draft[f.name] ?? (target.kind === "new" ? target.prefill?.values[f.name] : undefined)).filter((id) =>
        ids.includes(id),
      );
      if (mine.length) byCollection.set(String(f.collectionId), [...(byCollection.get(String(f.collectionId)) ?? []), ...mine]);
    }
    for (const [collectionId, list] of byCollection) {
      try {
        const found = await pb.collection(collectionId).getFullList({
          filter: list.map((id) => pb.filter("id = {:id}", { id })).join(" || "),
          batch: 200,
        });
        setKnown((prev) => new Map([...prev, ...found.map((r) => [r.id, r] as const)]));
      } catch {
        // Chips fall back to ids.
      }
    }
  };

  // Dirty: anything differs from what was loaded.
  const changedValues = values.filter((f) => !sameValue(draft[f.name], baseline[f.name]));
  const changedJson = Object.keys(jsonTexts).filter((k) => jsonTexts[k] !== jsonBaseline[k]);
  const changedFiles = Object.entries(files).filter(([, c]) => c.added.length || c.removed.length);
  const dirty =
    !readOnly &&
    (changedValues.length > 0 ||
      changedJson.length > 0 ||
      changedFiles.length > 0 ||
      (isNew && (customId.trim() !== "" || pw.password !== "")) ||
      (pw.change && pw.password !== ""));
  const dirtyRef = useRef(dirty);
  dirtyRef.current = dirty;

  // Warn before the tab closes with unsaved changes.
  useEffect(() => {
    if (!dirty) return;
    const onBeforeUnload = (e: BeforeUnloadEvent) => {
      e.preventDefault();
      e.returnValue = "";
    };
    addEventListener("beforeunload", onBeforeUnload);
    return () => removeEventListener("beforeunload", onBeforeUnload);
  }, [dirty]);

  // Changes made elsewhere (realtime) to the open record.
  const event = useStore(remoteEvents);
  const handled = useRef(0);
  useEffect(() => {
    if (!event || !original || event.record.id !== original.id || event.seq === handled.current) return;
    handled.current = event.seq;
    if (event.action === "delete") {
      setRemote("deleted");
      return;
    }
    if (event.action !== "update" || saving) return;
    if (signature(collection, event.record) === signature(collection, original)) return;
    if (dirtyRef.current) {
      setRemote("changed");
    } else {
      void fetchRecord(original.id)
        .then((record) => {
          fill(record);
          setRemote("refreshed");
        })
        .catch(() => setRemote("changed"));
    }
  }, [event]);

  const reloadFromServer = async () => {
    if (!original) return;
    if (dirty) {
      const ok = await confirm({
        title: "Load the server's version?",
        body: <p>Your unsaved changes in this panel will be replaced by the record as it is now on the server.</p>,
        confirm: "Load and discard mine",
        danger: true,
      });
      if (!ok) return;
    }
    try {
      fill(await fetchRecord(original.id));
      setRemote("");
    } catch (e) {
      toastError(e);
    }
  };

  const guardedClose = async () => {
    if (dirtyRef.current) {
      const ok = await confirm({
        title: "Discard unsaved changes?",
        body: <p>You changed this record without saving. Close the panel and lose the changes?</p>,
        confirm: "Discard changes",
        danger: true,
      });
      if (!ok) return;
    }
    props.onClose();
  };

  const save = async (stayOpen: boolean) => {
    if (readOnly || saving) return;
    const body: Record<string, unknown> = {};
    const problems: Record<string, string> = {};
    for (const f of values) {
      if (isNew || !sameValue(draft[f.name], baseline[f.name])) body[f.name] = draft[f.name];
    }
    for (const [name, text] of Object.entries(jsonTexts)) {
      if (!isNew && text === jsonBaseline[name]) continue;
      const problem = jsonProblem(text);
      if (problem) problems[name] = `Invalid JSON: ${problem}`;
      else body[name] = text.trim() ? JSON.parse(text) : null;
    }
    if (isNew && customId.trim()) body.id = customId.trim();
    if (auth && (isNew || pw.change)) {
      body.password = pw.password;
      body.passwordConfirm = pw.confirm;
    }
    const uploads: [string, File][] = [];
    for (const [name, change] of changedFiles) {
      const field = shown.find((f) => f.name === name);
      if (!field) continue;
      if (isMultiple(field)) {
        if (change.removed.length && !isNew) body[`${name}-`] = change.removed;
        for (const file of change.added) uploads.push([isNew ? name : `${name}+`, file]);
      } else if (change.added.length) {
        uploads.push([name, change.added[0]]);
      } else if (change.removed.length && !isNew) {
        body[name] = "";
      }
    }
    if (Object.keys(problems).length) {
      setErrors(problems);
      setFormError("Fix the marked fields first.");
      return;
    }
    if (!isNew && !Object.keys(body).length && !uploads.length) {
      if (!stayOpen) props.onClose();
      return;
    }
    let payload: Record<string, unknown> | FormData = body;
    if (uploads.length) {
      // Multipart: the values as one JSON part (no type guessing), the files as parts.
      const form = new FormData();
      form.append("@jsonPayload", JSON.stringify(body));
      for (const [key, file] of uploads) form.append(key, file);
      payload = form;
    }
    setSaving(true);
    setErrors({});
    setFormError("");
    try {
      const service = pb.collection(collection.name);
      const saved = isNew
        ? await service.create(payload, { expand: expand || undefined })
        : await service.update(original!.id, payload, { expand: expand || undefined });
      toast(isNew ? "Record created." : "Changes saved.");
      props.onSaved(saved, isNew);
      setRemote("");
      if (!stayOpen) props.onClose();
      else if (isNew) props.onOpenCreated(saved);
      else fill(saved);
    } catch (e) {
      const found = fieldErrors(e);
      const mapped: Record<string, string> = {};
      const known = new Set([...shown.map((f) => f.name), ...AUTH_SYSTEM, "password", "passwordConfirm", "id"]);
      let unmatched = false;
      for (const [path, message] of Object.entries(found)) {
        const key = path.replace(/[+-]$/, "").replace(/^\+/, "").split(".")[0];
        if (known.has(key)) mapped[key] = message;
        else unmatched = true;
      }
      setErrors(mapped);
      setFormError(unmatched || !Object.keys(mapped).length ? errorMessage(e) : "The server rejected some values: see the marked fields.");
      // Bring the first marked field into view.
      requestAnimationFrame(() => document.querySelector(".record-form .has-error")?.scrollIntoView({ block: "center" }));
    } finally {
      setSaving(false);
    }
  };

  const remove = async () => {
    if (!original) return;
    const ok = await confirm({
      title: "Delete this record?",
      body: (
        <p>
          Record <code>{original.id}</code> of <strong>{collection.name}</strong> and its files will be deleted.
          Records that reference it may be changed or deleted too (cascade).
        </p>
      ),
      confirm: "Delete",
      danger: true,
    });
    if (!ok) return;
    try {
      await pb.collection(collection.name).delete(original.id);
      toast("Record deleted.");
      props.onDeleted(original.id);
    } catch (e) {
      toastError(e);
    }
  };

  const duplicate = async () => {
    const copy: Record<string, unknown> = {};
    for (const f of values) copy[f.name] = draft[f.name];
    for (const [name, text] of Object.entries(jsonTexts)) if (!jsonProblem(text)) copy[name] = text.trim() ? JSON.parse(text) : null;
    // Files are copied by downloading them and uploading them with the new record.
    const copiedFiles: Record<string, File[]> = {};
    let failed = 0;
    if (original) {
      for (const f of shown.filter((f) => f.type === "file")) {
        const change = files[f.name] ?? { added: [], removed: [] };
        const kept = asList(original[f.name]).filter((n) => !change.removed.includes(n));
        const list: File[] = [];
        for (const name of kept) {
          try {
            const fileTokenValue = f.protected ? await fileToken() : "";
            const res = await fetch(fileUrl(original, name, { token: fileTokenValue }));
            if (!res.ok) throw new Error(String(res.status));
            const blob = await res.blob();
            list.push(new File([blob], originalFileName(name), { type: blob.type }));
          } catch {
            failed++;
          }
        }
        list.push(...change.added);
        if (list.length) copiedFiles[f.name] = list;
      }
    }
    if (failed) toast(`${failed} file${failed === 1 ? "" : "s"} could not be copied.`, "error");
    const proceed = () => props.onDuplicate({ values: copy, files: copiedFiles });
    if (dirtyRef.current) {
      const ok = await confirm({
        title: "Duplicate with unsaved changes?",
        body: <p>The copy will include your unsaved changes; this record keeps its saved values.</p>,
        confirm: "Duplicate",
      });
      if (!ok) return;
    }
    proceed();
  };

  const sendEmail = async (kind: "verification" | "reset") => {
    const email = String(original?.email ?? "");
    if (!email) return;
    try {
      if (kind === "verification") await pb.collection(collection.name).requestVerification(email);
      else await pb.collection(collection.name).requestPasswordReset(email);
      toast(`${kind === "verification" ? "Verification" : "Password reset"} email sent to ${email}.`);
    } catch (e) {
      toastError(e);
    }
  };

  const autodates = (collection.fields ?? []).filter((f) => f.type === "autodate");
  const set = (name: string, value: unknown) => setDraft((prev) => ({ ...prev, [name]: value }));

  // A new record starts at its first field (not the dialog's Close button or the optional id).
  useEffect(() => {
    if (!isNew || loading) return;
    const form = document.getElementById("record-form");
    const first = form?.querySelector<HTMLElement>(
      'input:not([type="hidden"]):not([name="id"]):not([disabled]), textarea:not([disabled]), select:not([disabled]), [contenteditable="true"]',
    );
    first?.focus();
  }, [isNew, loading]);

  const title = isNew
    ? target.kind === "new" && target.prefill
      ? `Duplicate of a ${collection.name} record`
      : `New ${collection.name} record`
    : readOnly
      ? `${collection.name} record`
      : `Edit ${collection.name} record`;

  return (
    <Dialog
      open
      variant="panel"
      title={title}
      onClose={() => void guardedClose()}
      testId="record-panel"
      footer={
        readOnly ? (
          <button type="button" class="btn" onClick={props.onClose}>
            Close
          </button>
        ) : (
          <>
            <span class="muted panel-hint hide-narrow">Ctrl+S saves and keeps this open</span>
            <button type="button" class="btn" onClick={() => void guardedClose()}>
              Cancel
            </button>
            <button
              type="submit"
              form="record-form"
              class="btn btn-primary"
              disabled={saving || loading || !!loadError || remote === "deleted"}
              data-testid="save-record"
            >
              {saving ? <Spinner label="Saving" /> : isNew ? "Create" : "Save changes"}
            </button>
          </>
        )
      }
    >
      {loading ? (
        <Spinner label="Loading the record" />
      ) : loadError ? (
        <p class="form-error" role="alert">
          {loadError}
        </p>
      ) : (
        <form
          id="record-form"
          class="record-form"
          noValidate
          onSubmit={(e) => {
            e.preventDefault();
            void save(false);
          }}
          onKeyDown={(e) => {
            if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "s") {
              e.preventDefault();
              void save(true);
            }
          }}
        >
          {remote === "changed" && (
            <div class="notice notice-warn" role="alert" data-testid="remote-notice">
              This record was changed elsewhere since you opened it. Saving now overwrites the fields you changed.{" "}
              <button type="button" class="btn btn-link" onClick={() => void reloadFromServer()}>
                Load the server's version
              </button>
            </div>
          )}
          {remote === "refreshed" && (
            <div class="notice" role="status" data-testid="remote-notice">
              This record was changed elsewhere; the panel shows the new values.{" "}
              <button type="button" class="btn btn-link" onClick={() => setRemote("")}>
                OK
              </button>
            </div>
          )}
          {remote === "deleted" && (
            <div class="notice notice-danger" role="alert" data-testid="remote-notice">
              This record was deleted elsewhere. Saving is no longer possible; you can duplicate it to recreate it.
            </div>
          )}

          <div class="record-meta row-between">
            {isNew ? (
              <div class="field record-field id-field">
                <label for="record-field-id" class="field-label">
                  id <span class="muted">(optional)</span>
                </label>
                <input
                  id="record-field-id"
                  name="id"
                  class="mono"
                  placeholder="Leave empty to generate"
                  value={customId}
                  onInput={(e) => setCustomId(e.currentTarget.value)}
                />
                {errors.id && (
                  <small class="field-error" role="alert">
                    {errors.id}
                  </small>
                )}
              </div>
            ) : original ? (
              <div class="record-id">
                <span class="muted">id</span> <code data-testid="record-id">{original.id}</code>
                <button
                  type="button"
                  class="btn btn-icon btn-copy"
                  aria-label="Copy id"
                  onClick={() => {
                    copyText(original.id);
                    toast("Copied the id.", "info", 1500);
                  }}
                >
                  <CopyIcon />
                </button>
                {autodates.map((f) =>
                  original[f.name] ? (
                    <span key={f.name} class="muted autodate" title={`${original[f.name]} (UTC)`}>
                      · {f.name} {formatDate(String(original[f.name]))}
                    </span>
                  ) : null,
                )}
              </div>
            ) : null}
            {!isNew && original && (
              <Popover label="⋯" ariaLabel="Record actions" title="More actions" buttonClass="btn" testId="record-actions">
                {(close) => (
                  <>
                    <MenuItem
                      close={close}
                      onSelect={() => {
                        const { expand: _expand, ...plain } = original;
                        void _expand;
                        copyText(JSON.stringify(plain, null, 2));
                        toast("Copied the record as JSON.", "info", 1500);
                      }}
                    >
                      Copy as JSON
                    </MenuItem>
                    {!readOnly && (
                      <MenuItem close={close} onSelect={() => void duplicate()}>
                        Duplicate
                      </MenuItem>
                    )}
                    {auth && (
                      <>
                        <MenuItem close={close} onSelect={() => setImpersonating(true)}>
                          Impersonate (get a token)…
                        </MenuItem>
                        {!original.verified && (
                          <MenuItem close={close} onSelect={() => void sendEmail("verification")}>
                            Send verification email
                          </MenuItem>
                        )}
                        <MenuItem close={close} onSelect={() => void sendEmail("reset")}>
                          Send password reset email
                        </MenuItem>
                      </>
                    )}
                    {!readOnly && (
                      <MenuItem close={close} danger onSelect={() => void remove()}>
                        Delete
                      </MenuItem>
                    )}
                  </>
                )}
              </Popover>
            )}
          </div>

          {auth && !readOnly && (
            <AuthFields
              collection={collection}
              draft={draft}
              set={set}
              errors={errors}
              isNew={isNew}
              pw={pw}
              setPw={setPw}
            />
          )}

          {shown.map((field) => {
            const error = errors[field.name];
            if (readOnly) return <ReadOnlyValue key={field.name} field={field} record={original} token={token} />;
            if (field.type === "file") {
              return (
                <FileInput
                  key={field.name}
                  field={field}
                  record={original}
                  existing={original ? asList(original[field.name]) : []}
                  changes={files[field.name] ?? { added: [], removed: [] }}
                  onChanges={(c) => setFiles((prev) => ({ ...prev, [field.name]: c }))}
                  token={token}
                  error={error}
                />
              );
            }
            if (field.type === "relation") {
              return (
                <RelationInput
                  key={field.name}
                  field={field}
                  value={draft[field.name]}
                  onValue={(v) => set(field.name, v)}
                  known={known}
                  onKnown={(records) => setKnown((prev) => new Map([...prev, ...records.map((r) => [r.id, r] as const)]))}
                  error={error}
                />
              );
            }
            if (field.type === "json") {
              return (
                <JsonInput
                  key={field.name}
                  field={field}
                  text={jsonTexts[field.name] ?? ""}
                  onText={(text) => setJsonTexts((prev) => ({ ...prev, [field.name]: text }))}
                  error={error}
                />
              );
            }
            return (
              <ValueInput
                key={field.name}
                field={field}
                value={draft[field.name]}
                onValue={(v) => set(field.name, v)}
                error={error}
              />
            );
          })}
          {auth && !isNew && original && <ExternalAuths collection={collection} record={original} />}
          {auth && readOnly && original && (
            <p class="muted">email: {String(original.email ?? "")}</p>
          )}

          {formError && (
            <p class="form-error" role="alert" data-testid="form-error">
              {formError}
            </p>
          )}
        </form>
      )}
      {impersonating && original && (
        <ImpersonateDialog collection={collection} record={original} onClose={() => setImpersonating(false)} />
      )}
    </Dialog>
  );
}

function AuthFields(props: {
  collection: CollectionModel;
  draft: Record<string, unknown>;
  set: (name: string, value: unknown) => void;
  errors: Record<string, string>;
  isNew: boolean;
  pw: { change: boolean; password: string; confirm: string };
  setPw: (pw: { change: boolean; password: string; confirm: string }) => void;
}) {
  const { draft, set, errors, pw, setPw } = props;
  const emailField = props.collection.fields.find((f) => f.name === "email");
  const passwordField = props.collection.fields.find((f) => f.type === "password");
  const showPassword = props.isNew || pw.change;
  return (
    <div class="auth-fields">
      <div class={`field record-field${errors.email ? " has-error" : ""}`} data-field="email">
        <label for="record-field-email">
          {emailField ? <FieldLabel field={emailField} /> : <span class="field-label">email</span>}
        </label>
        <div class="row email-row">
          <input
            id="record-field-email"
            type="email"
            name="email"
            autoComplete="off"
            value={String(draft.email ?? "")}
            onInput={(e) => set("email", e.currentTarget.value)}
          />
          <Toggle
            checked={!!draft.emailVisibility}
            onChange={(v) => set("emailVisibility", v)}
            label="Public"
            name="emailVisibility"
          />
        </div>
        <small class="field-help">Public: other users may see this email address.</small>
        {errors.email && (
          <small class="field-error" role="alert">
            {errors.email}
          </small>
        )}
      </div>
      <div class="stack auth-toggles">
        <Toggle checked={!!draft.verified} onChange={(v) => set("verified", v)} label="Verified" name="verified" />
      {!props.isNew && (
        <Toggle
          checked={pw.change}
          onChange={(change) => setPw({ change, password: "", confirm: "" })}
          label="Change password"
          name="changePassword"
        />
      )}
      </div>
      {showPassword && (
        <div class="grid-2">
          <div class={`field record-field${errors.password ? " has-error" : ""}`} data-field="password">
            <label for="record-field-password" class="field-label">
              Password{props.isNew ? " *" : ""}
            </label>
            <input
              id="record-field-password"
              type="password"
              name="password"
              autoComplete="new-password"
              minLength={passwordField?.min || undefined}
              value={pw.password}
              onInput={(e) => setPw({ ...pw, password: e.currentTarget.value })}
            />
            {passwordField?.min ? <small class="field-help">At least {passwordField.min} characters</small> : null}
            {errors.password && (
              <small class="field-error" role="alert">
                {errors.password}
              </small>
            )}
          </div>
          <div class={`field record-field${errors.passwordConfirm ? " has-error" : ""}`} data-field="passwordConfirm">
            <label for="record-field-passwordConfirm" class="field-label">
              Password again
            </label>
            <input
              id="record-field-passwordConfirm"
              type="password"
              name="passwordConfirm"
              autoComplete="new-password"
              value={pw.confirm}
              onInput={(e) => setPw({ ...pw, confirm: e.currentTarget.value })}
            />
            {pw.confirm && pw.password !== pw.confirm && !errors.passwordConfirm && (
              <small class="field-help">The two passwords differ.</small>
            )}
            {errors.passwordConfirm && (
              <small class="field-error" role="alert">
                {errors.passwordConfirm}
              </small>
            )}
          </div>
        </div>
      )}
    </div>
  );
}

/** A value of a view collection's record, in full. */
function ReadOnlyValue(props: { field: CollectionField; record: RecordModel | null; token: string }) {
  const { field, record } = props;
  if (!record) return null;
  const value = record[field.name];
  let body;
  if (field.type === "file") {
    return (
      <FileInput
        field={field}
        record={record}
        existing={asList(value)}
        changes={{ added: [], removed: [] }}
        onChanges={() => undefined}
        token={props.token}
        readOnly
      />
    );
  } else if (field.type === "json" || (value !== null && typeof value === "object")) {
    body = <pre class="code-block">{JSON.stringify(value, null, 2)}</pre>;
  } else if (field.type === "date" || field.type === "autodate") {
    body = value ? <span title={`${value} (UTC)`}>{formatDate(String(value))}</span> : <span class="muted">—</span>;
  } else if (field.type === "bool") {
    body = value ? "True" : "False";
  } else if (field.type === "editor") {
    body = <pre class="code-block">{String(value ?? "")}</pre>;
  } else {
    body = value === "" || value === null || value === undefined ? <span class="muted">—</span> : <span class="prewrap">{String(value)}</span>;
  }
  return (
    <FieldBlock field={field} group>
      <div class="readonly-value">{body}</div>
    </FieldBlock>
  );
}
