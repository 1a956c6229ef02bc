// `#/settings/application`: name and URL, the dashboard's look, batch API, trusted proxy, rate
// limits, superuser IPs and (a Plinth extension) realtime limits.
import { useEffect, useState } from "preact/hooks";
import { pb } from "../../lib/api";
import { loadAppMeta } from "../../lib/schema";
import { Field, TextInput } from "../../ui/form";
import { SList, SNumber, SText, SToggle, SectionFormView, useForm, useSectionForm, type Json } from "./form";

interface HealthInfo {
  realIP?: string;
  possibleProxyHeader?: string;
  canBackup?: boolean;
}

/** What `/api/health` tells a superuser about the request it just received. */
export function useHealth(deps: unknown[] = []): HealthInfo | null {
  const [info, setInfo] = useState<HealthInfo | null>(null);
  useEffect(() => {
    let live = true;
    pb.health
      .check()
      .then((r) => live && setInfo((r.data ?? {}) as HealthInfo))
      .catch(() => live && setInfo({}));
    return () => {
      live = false;
    };
  }, deps);
  return info;
}

export function ApplicationSettings() {
  const form = useSectionForm("application", () => void loadAppMeta());
  const health = useHealth([JSON.stringify(form.saved?.trustedProxy)]);
  return (
    <SectionFormView form={form} testId="settings-application">
      <section class="card" aria-labelledby="app-general">
        <h2 id="app-general">Application</h2>
        <div class="grid-2">
          <SText path="meta.appName" label="Application name" help="Shown in the dashboard and used in emails." />
          <SText
            path="meta.appURL"
            type="url"
            label="Application URL"
            help="The public address of this server; links in emails point here."
          />
        </div>
        <AccentColor />
        <SToggle
          path="meta.hideControls"
          label="Hide collection create and edit controls"
          help="Keeps the schema from being changed by accident in production; the records stay editable."
        />
      </section>

      <section class="card" aria-labelledby="app-superuser-ips">
        <h2 id="app-superuser-ips">Superuser IPs</h2>
        <SuperuserIps ip={health?.realIP} />
      </section>

      <section class="card" aria-labelledby="app-proxy">
        <h2 id="app-proxy">Trusted proxy</h2>
        <TrustedProxy health={health} />
      </section>

      <section class="card" aria-labelledby="app-rate">
        <h2 id="app-rate">Rate limits</h2>
        <RateLimits />
      </section>

      <section class="card" aria-labelledby="app-batch">
        <h2 id="app-batch">Batch API</h2>
        <SToggle path="batch.enabled" label="Enable batch requests (/api/batch)" />
        {form.get("batch.enabled") && (
          <div class="grid-3">
            <SNumber path="batch.maxRequests" label="Max requests in a batch" min={1} />
            <SNumber path="batch.timeout" label="Timeout (seconds)" min={1} />
            <SNumber
              path="batch.maxBodySize"
              label="Max body size (bytes)"
              min={0}
              help="0 means the default (128 MB)."
            />
          </div>
        )}
      </section>

      {form.get("realtime") && (
        <section class="card" aria-labelledby="app-realtime">
          <details>
            <summary>
              <h2 id="app-realtime" class="inline-heading">
                Realtime limits
              </h2>{" "}
              <span class="badge">Plinth</span>
            </summary>
            <p class="muted">Durations are in seconds. Changes apply without a restart.</p>
            <div class="grid-3">
              <SNumber path="realtime.idleTimeout" label="Idle timeout" min={1} help="Quiet streams are closed after this." />
              <SNumber path="realtime.maxLifetime" label="Max stream lifetime" min={1} />
              <SNumber path="realtime.maxClients" label="Max clients" min={1} />
              <SNumber path="realtime.maxClientsPerIp" label="Max clients per IP" min={1} />
              <SNumber path="realtime.clientQueueMessages" label="Queue per client (messages)" min={1} />
              <SNumber path="realtime.clientQueueBytes" label="Queue per client (bytes)" min={1} />
              <SNumber path="realtime.changeLogMaxEntries" label="Change log: min entries kept" min={0} />
              <SNumber path="realtime.changeLogMaxAge" label="Change log: max age" min={0} />
            </div>
          </details>
        </section>
      )}
    </SectionFormView>
  );
}

function AccentColor() {
  const form = useForm();
  const value = String(form.get("meta.accentColor") ?? "");
  const valid = /^#[0-9a-fA-F]{6}$/.test(value);
  return (
    <Field label="Accent color" error={form.error("meta.accentColor")} help="The dashboard's highlight color.">
      <span class="row">
        <input
          type="color"
          class="color-swatch"
          aria-label="Pick the accent color"
          value={valid ? value : "#1055c9"}
          onInput={(e) => form.set("meta.accentColor", e.currentTarget.value)}
        />
        <TextInput
          name="meta.accentColor"
          class="color-text"
          value={value}
          placeholder="#1055c9"
          onValue={(v) => form.set("meta.accentColor", v)}
        />
      </span>
    </Field>
  );
}

function SuperuserIps(props: { ip?: string }) {
  const form = useForm();
  const list: string[] = form.get("superuserIPs") ?? [];
  const locked = list.length > 0 && props.ip && !list.includes(props.ip);
  return (
    <>
      <SList
        path="superuserIPs"
        label="Allowed IPs"
        placeholder="Any IP (leave empty)"
        help="Superusers may sign in and act only from these addresses (comma separated). Empty allows any."
      />
      <div class="row">
        {props.ip && (
          <span class="muted">
            Your IP, as the server sees it: <code data-testid="real-ip">{props.ip}</code>
          </span>
        )}
        {props.ip && !list.includes(props.ip) && (
          <button type="button" class="btn btn-small" onClick={() => form.set("superuserIPs", [...list, props.ip!])}>
            Add my IP
          </button>
        )}
      </div>
      {locked && (
        <p class="form-error" role="alert">
          Your IP is not in the list: once saved, this session will be refused.
        </p>
      )}
    </>
  );
}

function TrustedProxy(props: { health: HealthInfo | null }) {
  const form = useForm();
  const headers: string[] = form.get("trustedProxy.headers") ?? [];
  const hint = props.health?.possibleProxyHeader;
  return (
    <>
      <p class="muted">
        Behind a reverse proxy (nginx, Caddy, a load balancer), the client's address arrives in a header the proxy
        sets. Name it here, or rate limits and logs see only the proxy's address.
      </p>
      {props.health && (
        <p data-testid="proxy-info">
          The server sees your IP as <code>{props.health.realIP || "unknown"}</code>.{" "}
          {hint && !headers.some((h) => h.toLowerCase() === hint.toLowerCase()) ? (
            <>
              Your request came through a proxy that sets <code>{hint}</code>.{" "}
              <button
                type="button"
                class="btn btn-small"
                onClick={() => form.set("trustedProxy.headers", [...headers, hint])}
              >
                Trust {hint}
              </button>
            </>
          ) : hint ? null : (
            <span class="muted">No proxy header was seen on your request.</span>
          )}
        </p>
      )}
      <SList
        path="trustedProxy.headers"
        label="Client IP headers"
        placeholder="e.g. X-Real-IP, X-Forwarded-For"
        help="Only set headers that your proxy always overwrites; clients can send any header themselves."
      />
      <SToggle
        path="trustedProxy.useLeftmostIP"
        label="Use the leftmost IP of X-Forwarded-For"
        help="Off: the rightmost (the one your proxy added), the safe choice for a single proxy."
      />
    </>
  );
}

const AUDIENCES = [
  { value: "", label: "Everyone" },
  { value: "@guest", label: "Guests only" },
  { value: "@auth", label: "Signed-in only" },
] as const;

const LABEL_SUGGESTIONS = [
  "*:auth",
  "*:create",
  "*:list",
  "*:view",
  "*:update",
  "*:delete",
  "*:file",
  "*:requestOTP",
  "*:requestPasswordReset",
  "*:requestVerification",
  "/api/",
  "/api/batch",
  "/api/realtime",
  "POST /api/files/token",
];

function RateLimits() {
  const form = useForm();
  const rules: Json[] = form.get("rateLimits.rules") ?? [];
  const setRules = (next: Json[]) => {
    form.set("rateLimits.rules", next);
  };
  const update = (index: number, key: string, value: Json) => {
    form.set(`rateLimits.rules.${index}.${key}`, value);
  };
  return (
    <>
      <SToggle path="rateLimits.enabled" label="Enable rate limiting" />
      <p class="muted">
        Each rule allows a number of requests per client IP in a time window. A label is a tag (
        <code>*:auth</code>, <code>posts:create</code>), a path prefix ending in <code>/</code>, or an exact path,
        optionally after a method (<code>POST /api/</code>). The most specific rule wins; superusers are not limited.
      </p>
      <datalist id="rate-limit-labels">
        {LABEL_SUGGESTIONS.map((label) => (
          <option key={label} value={label} />
        ))}
      </datalist>
      <div class="table-wrap">
        <table class="table rules-table" data-testid="rate-rules">
          <thead>
            <tr>
              <th>Label</th>
              <th>Audience</th>
              <th>Window (s)</th>
              <th>Max requests</th>
              <th>
                <span class="sr-only">Remove</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {rules.map((rule, index) => {
              const err = (key: string) => form.error(`rateLimits.rules.${index}.${key}`);
              return (
                <tr key={index}>
                  <td data-label="Label">
                    <input
                      value={rule.label ?? ""}
                      list="rate-limit-labels"
                      name={`rateLimits.rules.${index}.label`}
                      aria-label={`Rule ${index + 1} label`}
                      placeholder="*:auth"
                      aria-invalid={err("label") ? true : undefined}
                      onInput={(e) => update(index, "label", e.currentTarget.value)}
                    />
                    <RowError text={err("label")} />
                  </td>
                  <td data-label="Audience">
                    <select
                      value={rule.audience ?? ""}
                      name={`rateLimits.rules.${index}.audience`}
                      aria-label={`Rule ${index + 1} audience`}
                      onChange={(e) => update(index, "audience", e.currentTarget.value)}
                    >
                      {AUDIENCES.map((a) => (
                        <option key={a.value} value={a.value}>
                          {a.label}
                        </option>
                      ))}
                    </select>
                    <RowError text={err("audience")} />
                  </td>
                  <td data-label="Window (s)">
                    <input
                      type="number"
                      min={1}
                      step={1}
                      value={rule.duration ?? ""}
                      name={`rateLimits.rules.${index}.duration`}
                      aria-label={`Rule ${index + 1} window in seconds`}
                      aria-invalid={err("duration") ? true : undefined}
                      onInput={(e) => update(index, "duration", numberOrNull(e.currentTarget.value))}
                    />
                    <RowError text={err("duration")} />
                  </td>
                  <td data-label="Max requests">
                    <input
                      type="number"
                      min={1}
                      step={1}
                      value={rule.maxRequests ?? ""}
                      name={`rateLimits.rules.${index}.maxRequests`}
                      aria-label={`Rule ${index + 1} max requests`}
                      aria-invalid={err("maxRequests") ? true : undefined}
                      onInput={(e) => update(index, "maxRequests", numberOrNull(e.currentTarget.value))}
                    />
                    <RowError text={err("maxRequests")} />
                  </td>
                  <td>
                    <button
                      type="button"
                      class="btn btn-icon"
                      aria-label={`Remove rule ${rule.label || index + 1}`}
                      title="Remove rule"
                      onClick={() => {
                        setRules(rules.filter((_, i) => i !== index));
                        form.clearErrors("rateLimits.rules");
                      }}
                    >
                      ×
                    </button>
                  </td>
                </tr>
              );
            })}
            {!rules.length && (
              <tr>
                <td colSpan={5} class="muted">
                  No rules.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      <p>
        <button
          type="button"
          class="btn btn-small"
          onClick={() => setRules([...rules, { label: "", audience: "", duration: 10, maxRequests: 100 }])}
        >
          + Add rule
        </button>
      </p>
      <SList
        path="rateLimits.excludedIPs"
        label="Excluded IPs"
        placeholder="e.g. 127.0.0.1, ::1"
        help="Requests from these addresses are never limited."
      />
    </>
  );
}

function numberOrNull(raw: string): number | null {
  return raw === "" ? null : Number(raw);
}

function RowError(props: { text?: string }) {
  if (!props.text) return null;
  return (
    <small class="field-error" role="alert">
      {props.text}
    </small>
  );
}
