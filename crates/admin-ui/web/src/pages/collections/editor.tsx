// The collection editor: `#/collections/+new?type=base|auth|view` (optionally `&from=<name>` to
// duplicate) and `#/collections/<name>/edit`. The draft is edited locally; Save reviews what the
// change does to the data (changes.tsx), asks when it is risky, then creates or updates.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { ClientResponseError, errorMessage, fieldErrors, pb, type CollectionModel } from "../../lib/api";
import { href, navigate, setQuery, type Route } from "../../lib/router";
import { appMeta, collections, loadCollections } from "../../lib/schema";
import { useStore } from "../../lib/store";
import { toast, toastError } from "../../lib/toast";
import { confirm } from "../../ui/dialog";
import { Field, Tabs } from "../../ui/form";
import { copyText, PageHeader, Spinner } from "../../ui/misc";
import { AuthOptionsTab } from "./auth-options";
import { ChangeList, reviewChanges } from "./changes";
import { FieldsList } from "./fields";
import { IndexesSection } from "./indexes";
import {
  activeFields,
  buildPayload,
  newKey,
  parseIndex,
  randomId,
  timestampFields,
  toDraft,
  type CollectionType,
  type Draft,
  type Update,
} from "./model";
import { RulesTab } from "./rules";
import { ViewQueryTab } from "./view-query";

type Tab = "fields" | "rules" | "options";

const TYPES: { value: CollectionType; label: string; about: string }[] = [
  { value: "base", label: "Base", about: "Records with the fields you define" },
  { value: "auth", label: "Auth", about: "Users who sign in: email, password, OAuth2, OTP" },
  { value: "view", label: "View", about: "Read-only records from a SELECT query" },
];

const AUTH_KEYS = [
  "passwordAuth",
  "oauth2",
  "otp",
  "mfa",
  "authAlert",
  "authToken",
  "passwordResetToken",
  "emailChangeToken",
  "verificationToken",
  "fileToken",
  "verificationTemplate",
  "resetPasswordTemplate",
  "confirmEmailChangeTemplate",
];
const RULE_ERROR_KEYS = ["listRule", "viewRule", "createRule", "updateRule", "deleteRule", "authRule", "manageRule"];

function errorTab(path: string, type: CollectionType): Tab | null {
  const head = path.split(".")[0];
  if (head === "fields" || head === "indexes" || head === "viewQuery") return "fields";
  if (RULE_ERROR_KEYS.includes(head)) return "rules";
  if (type === "auth" && AUTH_KEYS.includes(head)) return "options";
  return null;
}

let scaffolds: Promise<Record<string, CollectionModel>> | null = null;
function loadScaffolds() {
  scaffolds ??= pb.collections.getScaffolds().catch((error) => {
    scaffolds = null;
    throw error;
  });
  return scaffolds;
}

async function newDraft(type: CollectionType, from: string | null): Promise<Draft> {
  if (from) {
    const source = await pb.collections.getOne(from);
    const draft = toDraft(source);
    delete draft.id;
    delete draft.created;
    delete draft.updated;
    draft.system = false;
    draft.name = `${source.name}_copy`;
    draft.fields = draft.fields.map((f) => {
      const copy = { ...f, _key: newKey() };
      if (!f.system) delete copy.id;
      return copy;
    });
    // Index names are global to the database: give the copies their own.
    draft.indexes = draft.indexes.map((sql) => {
      const parsed = parseIndex(sql);
      if (!parsed) return sql;
      return sql.replace(parsed.name, `${parsed.name.replace(/_[a-z0-9]{6,}$/, "")}_${randomId(8)}`);
    });
    return draft;
  }
  const all = await loadScaffolds();
  const draft = toDraft(all[type]);
  draft.name = "";
  if (type !== "view") draft.fields = [...draft.fields, ...timestampFields()];
  return draft;
}

export function CollectionEditor(props: { name: string | null; route: Route }) {
  const list = useStore(collections);
  const meta = useStore(appMeta);
  const readOnly = meta.hideControls;
  const isNew = props.name === null;
  const queryType = (props.route.query.get("type") as CollectionType) || "base";
  const from = isNew ? props.route.query.get("from") : null;

  const [original, setOriginal] = useState<Draft | null>(null);
  const [raw, setRaw] = useState<CollectionModel | null>(null);
  const [draft, setDraft] = useState<Draft | null>(null);
  const [baseline, setBaseline] = useState("");
  const [loadError, setLoadError] = useState("");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [banner, setBanner] = useState("");
  const [busy, setBusy] = useState<"" | "checking" | "saving">("");
  const [viewFields, setViewFields] = useState<Record<string, any>[] | null>(null);
  const justSaved = useRef<CollectionModel | null>(null);
  const [errorShown, setErrorShown] = useState(0);
  // After a refused save, bring the first marked input into view (the tab was switched to it).
  useEffect(() => {
    if (!errorShown) return;
    requestAnimationFrame(() => {
      const first = document.querySelector<HTMLElement>(".collection-editor .tabs ~ [role=tabpanel] :is(.field-error, .frow-error, .has-error)");
      first?.scrollIntoView({ block: "center", behavior: "smooth" });
    });
  }, [errorShown]);
  const menuRef = useRef<HTMLDivElement>(null);
  const [menuOpen, setMenuOpen] = useState(false);

  const tabParam = props.route.query.get("tab") as Tab | null;
  const type: CollectionType = draft?.type ?? (isNew ? queryType : "base");
  const tabs: { value: Tab; label: string }[] = [
    { value: "fields", label: type === "view" ? "Query" : "Fields" },
    { value: "rules", label: "API rules" },
    ...(type === "auth" ? [{ value: "options" as Tab, label: "Options" }] : []),
  ];
  const tab: Tab = tabs.some((t) => t.value === tabParam) ? (tabParam as Tab) : "fields";
  const setTab = (next: Tab) => setQuery({ ...Object.fromEntries(props.route.query), tab: next === "fields" ? undefined : next });

  const reset = (collection: CollectionModel | null, next: Draft) => {
    const originalDraft = collection ? toDraft(collection) : null;
    setOriginal(originalDraft);
    setRaw(collection);
    setDraft(next);
    setBaseline(JSON.stringify(buildPayload(next, originalDraft).body));
    setErrors({});
    setBanner("");
    setViewFields(null);
  };

  // Load the collection (or a scaffold for a new one).
  useEffect(() => {
    let stale = false;
    setLoadError("");
    const saved = justSaved.current;
    justSaved.current = null;
    if (!isNew && saved && saved.name === props.name) {
      reset(saved, toDraft(saved));
      return;
    }
    setDraft(null);
    const load = isNew
      ? newDraft(queryType, from).then((d) => ({ collection: null, draft: d }))
      : pb.collections.getOne(props.name!).then((c) => ({ collection: c, draft: toDraft(c) }));
    load.then(
      ({ collection, draft: d }) => {
        if (!stale) reset(collection, d);
      },
      (error) => {
        if (!stale) setLoadError(error instanceof ClientResponseError && error.status === 404 ? `No collection named “${props.name ?? from}”.` : errorMessage(error));
      },
    );
    return () => {
      stale = true;
    };
  }, [isNew ? `+new:${from ?? ""}` : props.name]);

  const payload = useMemo(() => (draft ? buildPayload(draft, original) : null), [draft, original]);
  const dirty = Boolean(payload) && JSON.stringify(payload!.body) !== baseline;

  // The collection rules are checked against: the draft as it will be saved.
  const ruleCollection = useMemo(() => {
    if (!payload || !draft) return {};
    const fields = draft.type === "view" ? (viewFields ?? original?.fields ?? []) : payload.body.fields;
    return { ...payload.body, id: draft.id ?? "", fields } as Partial<Draft>;
  }, [payload, viewFields]);

  useEffect(() => {
    if (!dirty || readOnly) return;
    const warn = (e: BeforeUnloadEvent) => {
      e.preventDefault();
    };
    addEventListener("beforeunload", warn);
    // Links inside the dashboard change the hash, which cannot be refused: ask first.
    const onClick = (e: MouseEvent) => {
      if (e.defaultPrevented || e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey) return;
      const link = (e.target as Element | null)?.closest?.("a[href^='#']") as HTMLAnchorElement | null;
      if (!link || link.getAttribute("href") === location.hash) return;
      e.preventDefault();
      void confirm({
        title: "Leave without saving?",
        body: <p>The changes to this collection are not saved yet and will be lost.</p>,
        confirm: "Discard changes",
        danger: true,
      }).then((ok) => {
        if (!ok) return;
        removeEventListener("click", onClick, true);
        location.hash = link.getAttribute("href")!.slice(1);
      });
    };
    addEventListener("click", onClick, true);
    return () => {
      removeEventListener("beforeunload", warn);
      removeEventListener("click", onClick, true);
    };
  }, [dirty, readOnly]);

  const update: Update = (change, touched) => {
    setDraft((d) => (d ? change(d) : d));
    if (touched) {
      setErrors((prev) => {
        const hit = Object.keys(prev).filter((k) => k === touched || k.startsWith(touched.endsWith(".") ? touched : touched + "."));
        if (!hit.length) return prev;
        const next = { ...prev };
        for (const k of hit) delete next[k];
        return next;
      });
    }
  };

  const save = async () => {
    if (!draft || !payload || busy || readOnly) return;
    if (!draft.name.trim()) {
      setErrors({ name: "Cannot be blank." });
      document.getElementById("collection-name")?.focus();
      return;
    }
    if (original) {
      setBusy("checking");
      let ok = true;
      try {
        const changes = await reviewChanges(original, draft, payload, list);
        if (changes.some((c) => c.level !== "info")) {
          ok = await confirm({
            title: "Review what this save does",
            body: <ChangeList changes={changes} />,
            confirm: "Save changes",
            danger: changes.some((c) => c.level === "danger"),
          });
        }
      } catch (error) {
        toastError(error);
        ok = false;
      } finally {
        setBusy("");
      }
      if (!ok) return;
    }
    setBusy("saving");
    try {
      const saved = original
        ? await pb.collections.update(original.id!, payload.body)
        : await pb.collections.create(payload.body);
      await loadCollections().catch(toastError);
      toast(original ? `Saved ${saved.name}.` : `Created ${saved.name}.`);
      if (!original) {
        navigate(["collections", saved.name]);
      } else if (saved.name !== props.name) {
        justSaved.current = saved;
        navigate(["collections", saved.name, "edit"], Object.fromEntries(props.route.query), true);
      } else {
        reset(saved, toDraft(saved));
      }
    } catch (error) {
      const flat = fieldErrors(error);
      const mapped: Record<string, string> = {};
      for (const [path, message] of Object.entries(flat)) {
        const m = /^fields\.(\d+)(?:\.(.*))?$/.exec(path);
        if (m && payload.fieldKeys[Number(m[1])]) mapped[`fields.${payload.fieldKeys[Number(m[1])]}.${m[2] ?? "_"}`] = message;
        else mapped[path] = message;
      }
      setErrors(mapped);
      const unplaced = Object.entries(mapped).filter(([p]) => p !== "name" && p !== "type" && !errorTab(p, draft.type));
      const base = error instanceof ClientResponseError ? error.response?.message || error.message : errorMessage(error);
      setBanner(
        Object.keys(mapped).length === 0
          ? errorMessage(error)
          : unplaced.length
            ? [base, ...unplaced.map(([p, m]) => `${p}: ${m}`)].join(" ")
            : `${base} See the marked ${Object.keys(mapped).length === 1 ? "input" : "inputs"}.`,
      );
      setErrorShown((n) => n + 1);
      const tabsWithErrors = Object.keys(mapped).map((p) => errorTab(p, draft.type)).filter(Boolean) as Tab[];
      if (tabsWithErrors.length && !tabsWithErrors.includes(tab)) setTab(tabsWithErrors[0]);
    } finally {
      setBusy("");
    }
  };

  const saveRef = useRef(save);
  saveRef.current = save;
  const changedRef = useRef(false);
  changedRef.current = dirty || isNew;
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "s") {
        e.preventDefault();
        void saveRef.current();
      } else if (e.key === "Enter" && !e.isComposing && !e.shiftKey && !e.altKey) {
        // Enter in the collection's or a field's name saves, as a form's submit would.
        const target = e.target as HTMLElement | null;
        if (changedRef.current && target?.matches?.("input#collection-name, input.frow-name") && !(target as HTMLInputElement).readOnly) {
          e.preventDefault();
          void saveRef.current();
        }
      }
    };
    addEventListener("keydown", onKey);
    return () => removeEventListener("keydown", onKey);
  }, []);

  // Close the actions menu on an outside click.
  useEffect(() => {
    if (!menuOpen) return;
    const onClick = (e: MouseEvent) => {
      if (!menuRef.current?.contains(e.target as Node)) setMenuOpen(false);
    };
    addEventListener("click", onClick);
    menuRef.current?.querySelector<HTMLElement>("[role=menuitem]")?.focus();
    return () => removeEventListener("click", onClick);
  }, [menuOpen]);

  if (loadError) {
    return (
      <main id="main" class="page">
        <PageHeader title={isNew ? "New collection" : "Edit collection"} />
        <div class="card">
          <p class="form-error" role="alert">
            {loadError}
          </p>
          <a class="btn" href={href(["collections"])}>
            Back to collections
          </a>
        </div>
      </main>
    );
  }
  if (!draft || !payload) {
    return (
      <main id="main" class="page">
        <Spinner />
      </main>
    );
  }

  const closeMenu = () => setMenuOpen(false);
  const menuKeys = (e: KeyboardEvent) => {
    const items = [...(menuRef.current?.querySelectorAll<HTMLElement>("[role=menuitem]") ?? [])];
    const at = items.indexOf(document.activeElement as HTMLElement);
    if (e.key === "Escape") {
      e.preventDefault();
      setMenuOpen(false);
      menuRef.current?.querySelector<HTMLElement>("[aria-haspopup]")?.focus();
    } else if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      items[(at + (e.key === "ArrowDown" ? 1 : items.length - 1)) % items.length]?.focus();
    }
  };

  const tabBadges = new Set(Object.keys(errors).map((p) => errorTab(p, draft.type)).filter(Boolean));
  const system = Boolean(original?.system);

  const recordCount = async (): Promise<number | null> => {
    try {
      return (await pb.collection(original!.id!).getList(1, 1, { fields: "id" })).totalItems;
    } catch {
      return null;
    }
  };

  const remove = async () => {
    closeMenu();
    if (!original) return;
    const count = await recordCount();
    const referencing = list.filter((c) => c.id !== original.id && c.fields.some((f) => f.type === "relation" && f.collectionId === original.id));
    const ok = await confirm({
      title: `Delete the collection ${original.name}?`,
      body: (
        <div class="stack">
          <p>
            The collection, its {count === null ? "" : `${count.toLocaleString("en")} `}record{count === 1 ? "" : "s"}
            {original.type === "view" ? " (a view stores none)" : " and their files"} are deleted. This cannot be undone.
          </p>
          {referencing.length > 0 && (
            <p class="form-error">
              Relation fields of {referencing.map((c) => c.name).join(", ")} point at it: the server refuses the deletion until
              they are removed.
            </p>
          )}
        </div>
      ),
      confirm: "Delete collection",
      danger: true,
      typeToConfirm: original.name,
    });
    if (!ok) return;
    try {
      await pb.collections.delete(original.id!);
      toast(`Deleted ${original.name}.`);
      await loadCollections().catch(toastError);
      navigate(["collections"], undefined, true);
    } catch (error) {
      toastError(error);
    }
  };

  const truncate = async () => {
    closeMenu();
    if (!original) return;
    const count = await recordCount();
    const ok = await confirm({
      title: `Delete every record of ${original.name}?`,
      body: (
        <p>
          {count === null ? "All records" : `All ${count.toLocaleString("en")} records`} of <code>{original.name}</code> and their
          files are deleted (cascading to relations set to cascade). The collection and its fields stay.
        </p>
      ),
      confirm: "Delete all records",
      danger: true,
      typeToConfirm: original.name,
    });
    if (!ok) return;
    try {
      await pb.collections.truncate(original.id!);
      toast(`Deleted all records of ${original.name}.`);
    } catch (error) {
      toastError(error);
    }
  };

  const duplicate = () => {
    closeMenu();
    if (original) navigate(["collections", "+new"], { type: original.type, from: original.name });
  };

  const copyJson = () => {
    closeMenu();
    if (!raw) return;
    copyText(JSON.stringify(raw, null, 2));
    toast("Collection JSON copied to the clipboard.", "info");
  };

  const discard = () => {
    if (original && raw) reset(raw, toDraft(raw));
    else if (isNew) navigate(["collections"]);
  };

  const changeType = async (next: CollectionType) => {
    if (next === draft.type) return;
    try {
      const fresh = await newDraft(next, null);
      fresh.name = draft.name;
      for (const key of ["listRule", "viewRule", "createRule", "updateRule", "deleteRule"]) fresh[key] = draft[key];
      if (next !== "view" && draft.type !== "view") {
        const names = new Set(fresh.fields.map((f) => f.name));
        fresh.fields = [...fresh.fields.filter((f) => f.type !== "autodate"), ...draft.fields.filter((f) => !f.system && !names.has(f.name))];
      }
      setDraft(fresh);
      setErrors({});
      setQuery({ type: next, tab: tab === "options" ? undefined : tab === "fields" ? undefined : tab });
    } catch (error) {
      toastError(error);
    }
  };

  const title = isNew ? (from ? `Duplicate ${from}` : "New collection") : "Edit collection";

  return (
    <main id="main" class="page collection-editor" data-testid="collection-editor">
      <PageHeader
        title={title}
        crumbs={
          original
            ? [
                <a href={href(["collections", original.name])} key="c">
                  {original.name}
                </a>,
              ]
            : undefined
        }
        actions={
          <>
            {original && (
              <a class="btn" href={href(["collections", original.name])}>
                Records
              </a>
            )}
            {original && (
              <div class="menu" ref={menuRef} onKeyDown={menuKeys}>
                <button
                  type="button"
                  class="btn"
                  aria-label="More actions"
                  aria-haspopup="menu"
                  aria-expanded={menuOpen}
                  onClick={() => setMenuOpen(!menuOpen)}
                >
                  ⋯ More
                </button>
                {menuOpen && (
                <div class="menu-list" role="menu">
                  {!readOnly && (
                    <button type="button" role="menuitem" onClick={duplicate}>
                      Duplicate collection
                    </button>
                  )}
                  <button type="button" role="menuitem" onClick={copyJson}>
                    Copy JSON
                  </button>
                  {!readOnly && original.type !== "view" && original.name !== "_superusers" && (
                    <button type="button" role="menuitem" class="danger" onClick={() => void truncate()}>
                      Delete all records…
                    </button>
                  )}
                  {!readOnly && !system && (
                    <button type="button" role="menuitem" class="danger" onClick={() => void remove()} data-testid="delete-collection">
                      Delete collection…
                    </button>
                  )}
                </div>
                )}
              </div>
            )}
            {!readOnly && (dirty || isNew) && (
              <button type="button" class="btn" onClick={discard}>
                {isNew ? "Cancel" : "Discard changes"}
              </button>
            )}
            {!readOnly && (
              <button
                type="button"
                class="btn btn-primary"
                onClick={() => void save()}
                disabled={Boolean(busy) || (!dirty && !isNew)}
                data-testid="save-collection"
                title="Ctrl+S"
              >
                {busy === "checking" ? "Checking…" : busy === "saving" ? "Saving…" : isNew ? "Create" : "Save changes"}
              </button>
            )}
          </>
        }
      />
      {readOnly && (
        <p class="notice" role="note">
          Read-only: the application settings hide the collection controls (Settings → Application).
        </p>
      )}
      {banner && (
        <div class="banner-error" role="alert" data-testid="save-error">
          {banner}
        </div>
      )}
      <div class="card editor-head">
        <div class="editor-name-row">
          <Field label="Name" error={errors.name} help={system ? "System collection: it cannot be renamed or deleted." : "Letters, digits and _; used in the API URL"}>
            <input
              id="collection-name"
              value={draft.name}
              disabled={system}
              readOnly={readOnly}
              autoFocus={isNew}
              spellcheck={false}
              autoComplete="off"
              placeholder={isNew ? 'e.g. "posts"' : undefined}
              onInput={(e) => {
                const name = e.currentTarget.value;
                update((d) => ({ ...d, name }));
                if (errors.name) setErrors(({ name: _, ...rest }) => rest);
              }}
            />
          </Field>
          {isNew && !from ? (
            <fieldset class="type-choice">
              <legend class="field-label">Type</legend>
              {TYPES.map((t) => (
                <label key={t.value} class={`type-card${draft.type === t.value ? " active" : ""}`}>
                  <input type="radio" name="collection-type" value={t.value} checked={draft.type === t.value} onChange={() => void changeType(t.value)} />
                  <span>
                    <strong>{t.label}</strong>
                    <small class="muted">{t.about}</small>
                  </span>
                </label>
              ))}
              {errors.type && <small class="field-error">{errors.type}</small>}
            </fieldset>
          ) : (
            <div class="field">
              <span class="field-label">Type</span>
              <span class={`badge ctype-badge ctype-${draft.type}`}>{TYPES.find((t) => t.value === draft.type)?.label}</span>
              {errors.type && <small class="field-error">{errors.type}</small>}
            </div>
          )}
        </div>
        {dirty && !isNew && <p class="small unsaved">Unsaved changes</p>}
      </div>

      <Tabs value={tab} tabs={tabs.map((t) => ({ ...t, badge: tabBadges.has(t.value) }))} onValue={setTab} />

      <div role="tabpanel" aria-label={tabs.find((t) => t.value === tab)?.label}>
        {tab === "fields" &&
          (draft.type === "view" ? (
            <ViewQueryTab draft={draft} update={update} errors={errors} readOnly={readOnly} onFields={setViewFields} />
          ) : (
            <>
              <FieldsList draft={draft} original={original} update={update} errors={errors} readOnly={readOnly} collections={list} />
              <IndexesSection draft={draft} update={update} errors={errors} readOnly={readOnly} />
            </>
          ))}
        {tab === "rules" && (
          <RulesTab draft={draft} ruleCollection={ruleCollection} update={update} errors={errors} readOnly={readOnly} collections={list} />
        )}
        {tab === "options" && draft.type === "auth" && (
          <AuthOptionsTab draft={draft} original={original} ruleCollection={ruleCollection} update={update} errors={errors} readOnly={readOnly} />
        )}
      </div>
      {draft.type !== "view" && tab === "fields" && activeFields(draft).length > 12 && !readOnly && (dirty || isNew) && (
        <div class="sticky-save">
          <button type="button" class="btn btn-primary" onClick={() => void save()} disabled={Boolean(busy) || (!dirty && !isNew)}>
            {isNew ? "Create" : "Save changes"}
          </button>
        </div>
      )}
    </main>
  );
}
