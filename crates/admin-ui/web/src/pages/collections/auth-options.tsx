// The options tab of an auth collection: sign-in methods (password, OAuth2, OTP, MFA), the new
// location alert, token lifetimes and the email templates (each with a test send).
import { useEffect, useRef, useState } from "preact/hooks";
import { errorMessage, pb, send } from "../../lib/api";
import { toast } from "../../lib/toast";
import { Field, NumberInput, Select, TextInput, Toggle } from "../../ui/form";
import { RuleInput } from "../../ui/rule-input";
import { Check } from "./inputs";
import { activeFields, buildIndex, formatDuration, parseIndex, randomId, type Draft, type Update } from "./model";

export interface AuthProps {
  draft: Draft;
  original: Draft | null;
  ruleCollection: Partial<Draft>;
  update: Update;
  errors: Record<string, string>;
  readOnly: boolean;
}

export function getPath(obj: any, path: string): any {
  return path.split(".").reduce((o, k) => (o == null ? undefined : o[k]), obj);
}

export function setPath<T extends Record<string, any>>(obj: T, path: string, value: unknown): T {
  const [head, ...rest] = path.split(".");
  const copy: any = Array.isArray(obj) ? [...obj] : { ...obj };
  copy[head] = rest.length ? setPath(copy[head] ?? {}, rest.join("."), value) : value;
  return copy;
}

/** True when `name` alone has a UNIQUE index (identity fields need one). */
function hasUniqueIndex(draft: Draft, name: string): boolean {
  return draft.indexes.some((sql) => {
    const p = parseIndex(sql);
    return p?.unique && p.columns.length === 1 && p.columns[0].name.toLowerCase() === name.toLowerCase();
  });
}

export function AuthOptionsTab(props: AuthProps) {
  const { draft, update, errors } = props;
  const set = (path: string, value: unknown) => update((d) => setPath(d, path, value), path);
  const get = (path: string) => getPath(draft, path);

  return (
    <fieldset class="auth-options" disabled={props.readOnly}>
      <section class="card" aria-labelledby="opt-password">
        <h3 id="opt-password">Password sign-in</h3>
        <Toggle checked={Boolean(get("passwordAuth.enabled"))} onChange={(v) => set("passwordAuth.enabled", v)} label="Enable sign-in with identity and password" />
        {errors["passwordAuth.enabled"] && <p class="field-error">{errors["passwordAuth.enabled"]}</p>}
        <IdentityFields {...props} />
      </section>

      <OAuth2Section {...props} />

      <section class="card" aria-labelledby="opt-otp">
        <h3 id="opt-otp">One-time password (OTP)</h3>
        <Toggle checked={Boolean(get("otp.enabled"))} onChange={(v) => set("otp.enabled", v)} label="Enable sign-in with a code sent by email" />
        {errors["otp.enabled"] && <p class="field-error">{errors["otp.enabled"]}</p>}
        {get("otp.enabled") && (
          <div class="grid-2">
            <Field label="Code lifetime (seconds)" error={errors["otp.duration"]} help={formatDuration(get("otp.duration"))}>
              <NumberInput value={get("otp.duration")} min={10} step={1} onValue={(v) => set("otp.duration", v ?? 0)} />
            </Field>
            <Field label="Code length" error={errors["otp.length"]}>
              <NumberInput value={get("otp.length")} min={4} step={1} onValue={(v) => set("otp.length", v ?? 0)} />
            </Field>
          </div>
        )}
        <p class="muted small">The email it sends is the “OTP” template below. Sending mail needs SMTP (Settings → Mail).</p>
      </section>

      <section class="card" aria-labelledby="opt-mfa">
        <h3 id="opt-mfa">Multi-factor authentication (MFA)</h3>
        <Toggle checked={Boolean(get("mfa.enabled"))} onChange={(v) => set("mfa.enabled", v)} label="Require a second sign-in method" />
        {errors["mfa.enabled"] && <p class="field-error">{errors["mfa.enabled"]}</p>}
        {errors["mfa"] && <p class="field-error">{errors["mfa"]}</p>}
        <p class="muted small">
          After a first successful sign-in, the user must also pass another enabled method (e.g. password then OTP)
          within the duration below.
        </p>
        {get("mfa.enabled") && (
          <>
            <Field label="Time to complete the second step (seconds)" error={errors["mfa.duration"]} help={formatDuration(get("mfa.duration"))}>
              <NumberInput value={get("mfa.duration")} min={10} step={1} onValue={(v) => set("mfa.duration", v ?? 0)} />
            </Field>
            <div class={`field${errors["mfa.rule"] ? " has-error" : ""}`}>
              <label class="field-label" for="mfa-rule">
                Require MFA only for records matching (optional)
              </label>
              <RuleInput
                id="mfa-rule"
                mode="rule"
                value={get("mfa.rule") ?? ""}
                onValue={(v) => set("mfa.rule", v)}
                collection={props.ruleCollection as never}
                placeholder="Empty = everyone, e.g. role = 'admin'"
              />
              {errors["mfa.rule"] && <small class="field-error">{errors["mfa.rule"]}</small>}
            </div>
          </>
        )}
      </section>

      <section class="card" aria-labelledby="opt-alert">
        <h3 id="opt-alert">New sign-in alert</h3>
        <Toggle checked={Boolean(get("authAlert.enabled"))} onChange={(v) => set("authAlert.enabled", v)} label="Email users when they sign in from a new location" />
        {errors["authAlert.enabled"] && <p class="field-error">{errors["authAlert.enabled"]}</p>}
      </section>

      <TokensSection {...props} />
      <TemplatesSection {...props} />
    </fieldset>
  );
}

function IdentityFields(props: AuthProps) {
  const { draft, update } = props;
  const selected: string[] = getPath(draft, "passwordAuth.identityFields") ?? [];
  const candidates = activeFields(draft).filter((f) => ["text", "email", "number", "url"].includes(f.type) && !f.hidden);
  const error = props.errors["passwordAuth.identityFields"];
  const toggle = (name: string, on: boolean) =>
    update(
      (d) => setPath(d, "passwordAuth.identityFields", on ? [...selected, name] : selected.filter((n) => n !== name)),
      "passwordAuth.identityFields",
    );
  const addUnique = (name: string) =>
    update((d) => ({
      ...d,
      indexes: [
        ...d.indexes,
        buildIndex({ unique: true, ifNotExists: false, name: `idx_${name}_${randomId(8)}`, table: d.name, columns: [{ name, suffix: "", expression: false }], where: "" }),
      ],
    }));
  return (
    <fieldset class={`field identity-fields${error ? " has-error" : ""}`}>
      <legend class="field-label">Identity fields (what users type to sign in)</legend>
      {candidates.map((f) => {
        const on = selected.includes(f.name);
        return (
          <div key={f._key} class="row">
            <Check checked={on} onChange={(v) => toggle(f.name, v)} label={f.name} />
            {on && !hasUniqueIndex(draft, f.name) && (
              <>
                <span class="badge badge-warn">needs a unique index</span>
                <button type="button" class="btn btn-small" onClick={() => addUnique(f.name)}>
                  Add unique index on {f.name}
                </button>
              </>
            )}
          </div>
        );
      })}
      {error && (
        <small class="field-error" role="alert">
          {error}
        </small>
      )}
    </fieldset>
  );
}

interface ProviderInfo {
  name: string;
  displayName: string;
}

let providerCache: Promise<ProviderInfo[]> | null = null;
function loadProviders(): Promise<ProviderInfo[]> {
  providerCache ??= pb.collections.getAllOAuth2Providers().catch((error) => {
    providerCache = null;
    throw error;
  });
  return providerCache;
}

function OAuth2Section(props: AuthProps) {
  const { draft, update, errors } = props;
  const [known, setKnown] = useState<ProviderInfo[]>([]);
  const [adding, setAdding] = useState("");
  useEffect(() => {
    loadProviders().then(setKnown, () => setKnown([]));
  }, []);
  const providers: Record<string, any>[] = getPath(draft, "oauth2.providers") ?? [];
  const savedNames = new Set(((props.original?.oauth2?.providers ?? []) as { name: string }[]).map((p) => p.name));
  const setProviders = (list: Record<string, any>[], touched?: string) => update((d) => setPath(d, "oauth2.providers", list), touched);
  const available = known.filter((k) => !providers.some((p) => p.name === k.name));
  const fieldNames = activeFields(draft).map((f) => f.name);
  const mapped = (getPath(draft, "oauth2.mappedFields") ?? {}) as Record<string, string>;
  const displayOf = (name: string) => known.find((k) => k.name === name)?.displayName ?? name;

  return (
    <section class="card" aria-labelledby="opt-oauth2">
      <h3 id="opt-oauth2">OAuth2</h3>
      <Toggle checked={Boolean(getPath(draft, "oauth2.enabled"))} onChange={(v) => update((d) => setPath(d, "oauth2.enabled", v))} label="Enable sign-in with OAuth2 providers" />
      {errors["oauth2.enabled"] && <p class="field-error">{errors["oauth2.enabled"]}</p>}
      {errors["oauth2.providers"] && <p class="field-error">{errors["oauth2.providers"]}</p>}
      <ul class="provider-list">
        {providers.map((p, i) => {
          const err = (k: string) => errors[`oauth2.providers.${i}.${k}`];
          const patch = (change: Record<string, unknown>) =>
            setProviders(providers.map((q, j) => (j === i ? { ...q, ...change } : q)), `oauth2.providers.${i}.${Object.keys(change)[0]}`);
          const advanced = ["authURL", "tokenURL", "userInfoURL", "displayName", "pkce", "extra"].some((k) => err(k)) ||
            Boolean(p.authURL || p.tokenURL || p.userInfoURL) || /^oidc|gitea|mailcow|planningcenter/.test(p.name);
          return (
            <li key={p.name} class="provider card" data-testid={`provider-${p.name}`}>
              <div class="row-between">
                <strong>
                  {p.displayName || displayOf(p.name)} <span class="muted small">({p.name})</span>
                </strong>
                <button type="button" class="btn btn-small btn-outline-danger" onClick={() => setProviders(providers.filter((_, j) => j !== i))}>
                  Remove
                </button>
              </div>
              <div class="grid-2">
                <Field label="Client ID" error={err("clientId")}>
                  <TextInput value={p.clientId} onValue={(v) => patch({ clientId: v })} />
                </Field>
                <Field label="Client secret" error={err("clientSecret")} help={savedNames.has(p.name) ? "Write-only: leave empty to keep the stored secret" : undefined}>
                  <TextInput type="password" value={p.clientSecret ?? ""} onValue={(v) => patch({ clientSecret: v })} placeholder={savedNames.has(p.name) ? "••••••• (unchanged)" : ""} />
                </Field>
              </div>
              <details open={advanced}>
                <summary>Endpoints and advanced options</summary>
                <div class="grid-2">
                  <Field label="Display name" error={err("displayName")}>
                    <TextInput value={p.displayName} onValue={(v) => patch({ displayName: v })} placeholder={displayOf(p.name)} />
                  </Field>
                  <Field label="PKCE" error={err("pkce")}>
                    <Select
                      value={p.pkce === true ? "on" : p.pkce === false ? "off" : "auto"}
                      options={[
                        { value: "auto", label: "Provider default" },
                        { value: "on", label: "Always" },
                        { value: "off", label: "Never" },
                      ]}
                      onValue={(v) => patch({ pkce: v === "on" ? true : v === "off" ? false : null })}
                    />
                  </Field>
                  <Field label="Auth URL" error={err("authURL")}>
                    <TextInput type="url" value={p.authURL} onValue={(v) => patch({ authURL: v })} />
                  </Field>
                  <Field label="Token URL" error={err("tokenURL")}>
                    <TextInput type="url" value={p.tokenURL} onValue={(v) => patch({ tokenURL: v })} />
                  </Field>
                  <Field label="User info URL" error={err("userInfoURL")}>
                    <TextInput type="url" value={p.userInfoURL} onValue={(v) => patch({ userInfoURL: v })} />
                  </Field>
                </div>
                <ExtraInput value={p.extra} onValue={(v) => patch({ extra: v })} error={err("extra")} />
              </details>
              {p.name === "apple" && <AppleSecret clientId={p.clientId} onSecret={(secret) => patch({ clientSecret: secret })} />}
            </li>
          );
        })}
      </ul>
      <div class="row">
        <label class="sr-only" for="add-provider">
          Provider to add
        </label>
        <select id="add-provider" value={adding} onChange={(e) => setAdding(e.currentTarget.value)} class="provider-select">
          <option value="">Add a provider…</option>
          {available.map((k) => (
            <option key={k.name} value={k.name}>
              {k.displayName}
            </option>
          ))}
        </select>
        <button
          type="button"
          class="btn"
          disabled={!adding}
          onClick={() => {
            setProviders([...providers, { name: adding, clientId: "", clientSecret: "", authURL: "", tokenURL: "", userInfoURL: "", displayName: "", pkce: null, extra: {} }]);
            setAdding("");
          }}
        >
          Add
        </button>
      </div>
      <h4>Map provider data to fields</h4>
      <p class="muted small">On the first OAuth2 sign-in, the new record gets these values from the provider.</p>
      <div class="grid-2">
        {(["id", "name", "username", "avatarURL"] as const).map((key) => (
          <Field key={key} label={{ id: "Provider user id", name: "Name", username: "Username", avatarURL: "Avatar (file or URL field)" }[key]} error={errors[`oauth2.mappedFields.${key}`]}>
            <Select
              value={mapped[key] ?? ""}
              options={[{ value: "", label: "— not mapped —" }, ...fieldNames.map((n) => ({ value: n, label: n }))]}
              onValue={(v) => update((d) => setPath(d, `oauth2.mappedFields.${key}`, v), `oauth2.mappedFields.${key}`)}
            />
          </Field>
        ))}
      </div>
    </section>
  );
}

/** Apple's client secret is a JWT signed with the developer's key; the server makes one. */
function AppleSecret(props: { clientId: string; onSecret: (secret: string) => void }) {
  const [form, setForm] = useState({ teamId: "", keyId: "", privateKey: "", duration: 15777000 });
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const generate = async () => {
    setBusy(true);
    setError("");
    try {
      const result = await send<{ secret: string }>("/api/settings/apple/generate-client-secret", {
        method: "POST",
        body: { clientId: props.clientId, ...form },
      });
      props.onSecret(result.secret);
      toast("Client secret generated; save the collection to keep it.");
    } catch (e) {
      setError(errorMessage(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <details class="apple-secret">
      <summary>Generate the client secret from your Apple key</summary>
      <div class="grid-3">
        <Field label="Team ID">
          <TextInput value={form.teamId} onValue={(v) => setForm({ ...form, teamId: v })} />
        </Field>
        <Field label="Key ID">
          <TextInput value={form.keyId} onValue={(v) => setForm({ ...form, keyId: v })} />
        </Field>
        <Field label="Valid for (seconds)" help={`At most 6 months · ${formatDuration(form.duration)}`}>
          <NumberInput value={form.duration} min={1} max={15777000} step={1} onValue={(v) => setForm({ ...form, duration: v ?? 0 })} />
        </Field>
      </div>
      <Field label="Private key (.p8 contents)">
        <textarea class="code-input" rows={4} value={form.privateKey} spellcheck={false} onInput={(e) => setForm({ ...form, privateKey: e.currentTarget.value })} placeholder="-----BEGIN PRIVATE KEY-----" />
      </Field>
      <div class="row">
        <button type="button" class="btn btn-small" disabled={busy || !props.clientId} onClick={() => void generate()}>
          {busy ? "Generating…" : "Generate and use as client secret"}
        </button>
        {!props.clientId && <span class="muted small">Fill in the client ID (your Services ID) first.</span>}
        {error && (
          <small class="field-error" role="alert">
            {error}
          </small>
        )}
      </div>
    </details>
  );
}

function ExtraInput(props: { value: unknown; onValue: (v: Record<string, unknown>) => void; error?: string }) {
  const [text, setText] = useState(() => JSON.stringify(props.value ?? {}, null, 2));
  const [bad, setBad] = useState("");
  return (
    <Field label="Extra (JSON)" error={props.error || bad} help='Provider-specific settings, e.g. {"jwksURL": "…", "issuers": ["…"]} for OIDC'>
      <textarea
        class="code-input"
        rows={3}
        value={text}
        spellcheck={false}
        onInput={(e) => {
          const t = e.currentTarget.value;
          setText(t);
          try {
            const parsed = t.trim() ? JSON.parse(t) : {};
            if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("An object is expected.");
            setBad("");
            props.onValue(parsed);
          } catch (error) {
            setBad(`Not valid JSON: ${(error as Error).message}`);
          }
        }}
      />
    </Field>
  );
}

const TOKENS: { key: string; label: string; about: string }[] = [
  { key: "authToken", label: "Auth token", about: "How long a sign-in lasts (refreshable)" },
  { key: "verificationToken", label: "Email verification", about: "Lifetime of the link in the verification email" },
  { key: "passwordResetToken", label: "Password reset", about: "Lifetime of the password reset link" },
  { key: "emailChangeToken", label: "Email change", about: "Lifetime of the email change confirmation link" },
  { key: "fileToken", label: "Protected file access", about: "Lifetime of a token for protected files" },
];

function TokensSection(props: AuthProps) {
  const { draft, update, errors } = props;
  return (
    <section class="card" aria-labelledby="opt-tokens">
      <h3 id="opt-tokens">Token lifetimes</h3>
      <div class="token-grid">
        {TOKENS.map((t) => {
          const invalidating = Boolean(getPath(draft, `${t.key}.secret`));
          return (
            <div key={t.key} class="token-row">
              <Field label={`${t.label} (seconds)`} error={errors[`${t.key}.duration`] || errors[`${t.key}.secret`]} help={`${t.about}${getPath(draft, `${t.key}.duration`) ? ` · ${formatDuration(getPath(draft, `${t.key}.duration`))}` : ""}`}>
                <NumberInput value={getPath(draft, `${t.key}.duration`)} min={10} step={1} onValue={(v) => update((d) => setPath(d, `${t.key}.duration`, v ?? 0), `${t.key}.duration`)} />
              </Field>
              {invalidating ? (
                <span class="row">
                  <span class="badge badge-warn">all issued tokens are invalidated on save</span>
                  <button type="button" class="btn btn-small btn-link" onClick={() => update((d) => setPath(d, t.key, { duration: getPath(d, `${t.key}.duration`) }))}>
                    Undo
                  </button>
                </span>
              ) : (
                <button
                  type="button"
                  class="btn btn-small"
                  title="Signs out everyone holding such a token (a new signing secret is set on save)"
                  onClick={() => update((d) => setPath(d, `${t.key}.secret`, randomId(50, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")))}
                >
                  Invalidate all issued
                </button>
              )}
            </div>
          );
        })}
      </div>
    </section>
  );
}

const TEMPLATES: { path: string; test: string; label: string; placeholders: string[]; about: string }[] = [
  { path: "verificationTemplate", test: "verification", label: "Verification", placeholders: ["{APP_NAME}", "{APP_URL}", "{TOKEN}", "{RECORD:email}"], about: "Sent to confirm a user's email address" },
  { path: "resetPasswordTemplate", test: "password-reset", label: "Password reset", placeholders: ["{APP_NAME}", "{APP_URL}", "{TOKEN}", "{RECORD:email}"], about: "Sent when a user asks to reset the password" },
  { path: "confirmEmailChangeTemplate", test: "email-change", label: "Email change", placeholders: ["{APP_NAME}", "{APP_URL}", "{TOKEN}", "{RECORD:email}"], about: "Sent to the new address to confirm an email change" },
  { path: "otp.emailTemplate", test: "otp", label: "One-time password (OTP)", placeholders: ["{APP_NAME}", "{APP_URL}", "{OTP}", "{RECORD:email}"], about: "Sent with the sign-in code" },
  { path: "authAlert.emailTemplate", test: "login-alert", label: "New sign-in alert", placeholders: ["{APP_NAME}", "{APP_URL}", "{ALERT_INFO}", "{RECORD:email}"], about: "Sent after a sign-in from a new location" },
];

function TemplatesSection(props: AuthProps) {
  const [testTo, setTestTo] = useState(String(pb.authStore.record?.email ?? ""));
  return (
    <section class="card" aria-labelledby="opt-templates">
      <h3 id="opt-templates">Email templates</h3>
      <p class="muted small">
        Placeholders are replaced when the email is sent; <code>{"{RECORD:field}"}</code> inserts any field of the
        user's record. Click a placeholder to insert it where the cursor is.
      </p>
      <Field label="Send test emails to">
        <TextInput type="email" value={testTo} onValue={setTestTo} placeholder="you@example.com" />
      </Field>
      {TEMPLATES.map((t) => (
        <TemplateEditor key={t.path} def={t} testTo={testTo} {...props} />
      ))}
    </section>
  );
}

function TemplateEditor(props: AuthProps & { def: (typeof TEMPLATES)[number]; testTo: string }) {
  const { def, draft, update, errors } = props;
  const subjectRef = useRef<HTMLInputElement>(null);
  const bodyRef = useRef<HTMLTextAreaElement>(null);
  const last = useRef<"subject" | "body">("body");
  const [sending, setSending] = useState(false);
  const [testError, setTestError] = useState("");
  const value = (getPath(draft, def.path) ?? { subject: "", body: "" }) as { subject: string; body: string };
  const saved = props.original ? getPath(props.original, def.path) : undefined;
  const unsaved = !props.original || JSON.stringify(saved) !== JSON.stringify(value);
  const hasError = Object.keys(errors).some((k) => k.startsWith(def.path + "."));
  const set = (key: "subject" | "body", v: string) => update((d) => setPath(d, `${def.path}.${key}`, v), `${def.path}.${key}`);

  const insert = (placeholder: string) => {
    const which = last.current;
    const el = which === "subject" ? subjectRef.current : bodyRef.current;
    const text = value[which] ?? "";
    const start = el?.selectionStart ?? text.length;
    const end = el?.selectionEnd ?? text.length;
    set(which, text.slice(0, start) + placeholder + text.slice(end));
    requestAnimationFrame(() => {
      el?.focus();
      el?.setSelectionRange(start + placeholder.length, start + placeholder.length);
    });
  };

  const sendTest = async () => {
    setSending(true);
    setTestError("");
    try {
      await send("/api/settings/test/email", {
        method: "POST",
        body: { email: props.testTo, template: def.test, collection: props.original?.name ?? draft.name },
      });
      toast(`Test “${def.label}” email sent to ${props.testTo}.`);
    } catch (error) {
      setTestError(errorMessage(error));
    } finally {
      setSending(false);
    }
  };

  return (
    <details class="template" open={hasError}>
      <summary>
        <strong>{def.label}</strong> <span class="muted small">— {def.about}</span>
        {hasError && <span class="tab-badge" aria-label="has errors" />}
      </summary>
      <Field label="Subject" error={errors[`${def.path}.subject`]}>
        <input ref={subjectRef} value={value.subject} onFocus={() => (last.current = "subject")} onInput={(e) => set("subject", e.currentTarget.value)} />
      </Field>
      <Field label="Body (HTML)" error={errors[`${def.path}.body`]}>
        <textarea ref={bodyRef} class="code-input" rows={8} value={value.body} spellcheck={false} onFocus={() => (last.current = "body")} onInput={(e) => set("body", e.currentTarget.value)} />
      </Field>
      <div class="row placeholder-chips" role="group" aria-label="Insert a placeholder">
        {def.placeholders.map((ph) => (
          <button key={ph} type="button" class="btn btn-small mono" onMouseDown={(e) => e.preventDefault()} onClick={() => insert(ph)}>
            {ph}
          </button>
        ))}
      </div>
      <div class="row template-test">
        <button type="button" class="btn btn-small" disabled={sending || !props.original || !props.testTo} onClick={() => void sendTest()}>
          {sending ? "Sending…" : "Send test email"}
        </button>
        {!props.original ? (
          <span class="muted small">Save the collection to send test emails.</span>
        ) : unsaved ? (
          <span class="muted small">The test uses the saved template; save to test your edits.</span>
        ) : null}
        {testError && (
          <small class="field-error" role="alert">
            {testError}
          </small>
        )}
      </div>
    </details>
  );
}
