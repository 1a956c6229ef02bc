// The API rules tab: each rule is either locked (null: superusers only) or a filter expression
// ("" lets everyone in, guests included).
import { useRef } from "preact/hooks";
import type { CollectionModel } from "../../lib/api";
import { RuleInput } from "../../ui/rule-input";
import { Icon } from "./icons";
import { activeFields, type Draft, type Update } from "./model";

interface RuleDef {
  key: string;
  label: string;
  about: string;
}

const RULES: RuleDef[] = [
  { key: "listRule", label: "List/Search rule", about: "Who may list records; records the rule does not match are left out of the list." },
  { key: "viewRule", label: "View rule", about: "Who may fetch one record (and its files when protected)." },
  { key: "createRule", label: "Create rule", about: "Who may create records; @request.body holds the submitted values." },
  { key: "updateRule", label: "Update rule", about: "Who may update records; checked against the stored record and @request.body." },
  { key: "deleteRule", label: "Delete rule", about: "Who may delete records." },
];

const AUTH_RULES: RuleDef[] = [
  {
    key: "authRule",
    label: "Authentication rule",
    about: "Checked on every sign-in (password, OAuth2, OTP) against the record: e.g. verified = true. Locked = nobody but superusers can sign in.",
  },
  {
    key: "manageRule",
    label: "Manage rule",
    about: "Who may change another user's email, password and verified flag without knowing the old password (e.g. staff).",
  },
];

export function RulesTab(props: {
  draft: Draft;
  ruleCollection: Partial<Draft>;
  update: Update;
  errors: Record<string, string>;
  readOnly: boolean;
  collections: CollectionModel[];
}) {
  const { draft } = props;
  const authIds = new Set(props.collections.filter((c) => c.type === "auth").map((c) => c.id));
  const rules = draft.type === "view" ? RULES.slice(0, 2) : RULES;
  const ownerField = activeFields(draft).find((f) => f.type === "relation" && authIds.has(f.collectionId));
  return (
    <div class="rules-tab">
      <p class="muted">
        A rule is a filter the record must match for the request to go on. <strong>Locked</strong> means only
        superusers; an <strong>empty rule</strong> means everyone, guests included. Superusers bypass every rule.
      </p>
      <div class="rule-examples muted small">
        Examples: <code>@request.auth.id != ""</code> (signed-in users)
        {ownerField && (
          <>
            , <code>{`${ownerField.name} = @request.auth.id`}</code> (the record's owner)
          </>
        )}
        , <code>status = "published"</code>, <code>@request.body.role:isset = false</code>.
      </div>
      {rules.map((rule) => (
        <RuleRow key={rule.key} rule={rule} {...props} />
      ))}
      {draft.type === "view" && (
        <p class="muted small">View collections are read-only: they have no create, update or delete rules.</p>
      )}
      {draft.type === "auth" && (
        <>
          <h3>Auth rules</h3>
          {AUTH_RULES.map((rule) => (
            <RuleRow key={rule.key} rule={rule} {...props} />
          ))}
        </>
      )}
    </div>
  );
}

function RuleRow(props: {
  rule: RuleDef;
  draft: Draft;
  ruleCollection: Partial<Draft>;
  update: Update;
  errors: Record<string, string>;
  readOnly: boolean;
}) {
  const { rule, draft } = props;
  const value = draft[rule.key] as string | null | undefined;
  const locked = value === null || value === undefined;
  const remembered = useRef<string>("");
  const error = props.errors[rule.key];
  const id = `rule-${rule.key}`;
  const set = (next: string | null) => props.update((d) => ({ ...d, [rule.key]: next }), rule.key);

  return (
    <div class={`rule${error ? " has-error" : ""}${locked ? " rule-locked" : ""}`} data-testid={rule.key}>
      <div class="rule-head">
        <label class="field-label" for={id}>
          {rule.label}
        </label>
        <span class={`badge ${locked ? "" : value === "" ? "badge-warn" : "badge-success"}`}>
          {locked ? "Superusers only" : value === "" ? "Everyone" : "Custom rule"}
        </span>
        {!props.readOnly &&
          (locked ? (
            <button type="button" class="btn btn-small" onClick={() => set(remembered.current)} aria-label={`Unlock ${rule.label}`}>
              Unlock and set a rule
            </button>
          ) : (
            <button
              type="button"
              class="btn btn-small"
              aria-label={`Lock ${rule.label} to superusers only`}
              onClick={() => {
                remembered.current = value ?? "";
                set(null);
              }}
            >
              <Icon name="lock" /> Superusers only
            </button>
          ))}
      </div>
      <p class="muted small rule-about">{rule.about}</p>
      {locked ? (
        <p class="rule-locked-text" id={id}>
          Only superusers can do this.
        </p>
      ) : props.readOnly ? (
        <pre class="code-preview" id={id}>{value || "(empty: everyone)"}</pre>
      ) : (
        <RuleInput
          id={id}
          name={rule.key}
          mode="rule"
          value={value ?? ""}
          onValue={(v) => set(v)}
          collection={props.ruleCollection as never}
          placeholder='Leave empty to allow everyone, e.g. @request.auth.id != ""'
          aria-label={rule.label}
        />
      )}
      {!locked && value === "" && !error && (
        <small class="muted">
          {rule.key === "authRule" ? "Empty: every user of this collection may sign in." : "Empty: anyone, including guests, may do this."}
        </small>
      )}
      {error && (
        <small class="field-error" role="alert" data-testid={`${rule.key}-error`}>
          {error}
        </small>
      )}
    </div>
  );
}
