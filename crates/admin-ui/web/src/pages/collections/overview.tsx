// The collections overview: every collection's fields with their relations, and one API rule
// side by side across the collections (PocketBase's "Collections overview").
import { useState } from "preact/hooks";
import type { CollectionModel } from "../../lib/api";
import { href } from "../../lib/router";
import { collections } from "../../lib/schema";
import { useStore } from "../../lib/store";
import { Dialog } from "../../ui/dialog";
import { Tabs } from "../../ui/form";
import { TypeIcon } from "./icons";

const RULES = [
  { key: "listRule", label: "List/Search" },
  { key: "viewRule", label: "View" },
  { key: "createRule", label: "Create" },
  { key: "updateRule", label: "Update" },
  { key: "deleteRule", label: "Delete" },
  { key: "authRule", label: "Auth", auth: true },
  { key: "manageRule", label: "Manage", auth: true },
] as const;

type RuleKey = (typeof RULES)[number]["key"];

export function CollectionsOverview(props: { onClose: () => void }) {
  const list = useStore(collections);
  const [tab, setTab] = useState<"fields" | "rules">("fields");
  const [showSystem, setShowSystem] = useState(false);
  const [rule, setRule] = useState<RuleKey>("listRule");
  const shown = list.filter((c) => showSystem || !c.system);
  const byId = new Map(list.map((c) => [c.id, c]));
  const ruleInfo = RULES.find((r) => r.key === rule)!;

  return (
    <Dialog open wide title="Collections overview" onClose={props.onClose} testId="collections-overview">
      <div class="overview-bar">
        <Tabs
          value={tab}
          tabs={[
            { value: "fields", label: "Fields and relations" },
            { value: "rules", label: "API rules" },
          ]}
          onValue={setTab}
        />
        <label class="toggle">
          <input type="checkbox" checked={showSystem} onChange={(e) => setShowSystem(e.currentTarget.checked)} />
          <span>System collections</span>
        </label>
      </div>
      {tab === "fields" ? (
        <div class="overview-grid">
          {shown.map((c) => (
            <section key={c.id} class="overview-card" aria-label={c.name}>
              <h3>
                <a href={href(["collections", c.name, "edit"])} onClick={props.onClose}>
                  {c.name}
                </a>{" "}
                <span class="badge">{c.type}</span>
              </h3>
              <ul>
                {(c.fields ?? []).map((f: Record<string, any>) => {
                  const target = f.type === "relation" ? byId.get(f.collectionId) : undefined;
                  const multi = ["relation", "file", "select"].includes(f.type) ? (f.maxSelect > 1 ? "multiple" : "single") : "";
                  return (
                    <li key={f.id ?? f.name}>
                      <span class="type-icon" aria-hidden="true">
                        <TypeIcon type={f.type} />
                      </span>
                      <span class="overview-field">{f.name}</span>
                      {f.hidden && <span class="badge badge-danger">hidden</span>}
                      {target && (
                        <span class="muted" title={`Relation to ${target.name}`}>
                          → {target.name}
                        </span>
                      )}
                      {multi && <span class="muted overview-multi">{multi}</span>}
                    </li>
                  );
                })}
              </ul>
            </section>
          ))}
        </div>
      ) : (
        <>
          <div class="overview-rules-pick" role="group" aria-label="Rule">
            {RULES.map((r) => (
              <button
                key={r.key}
                type="button"
                class={`btn btn-small${r.key === rule ? " btn-primary" : ""}`}
                aria-pressed={r.key === rule}
                onClick={() => setRule(r.key)}
              >
                {r.label} rule
              </button>
            ))}
          </div>
          <table class="table overview-rules">
            <thead>
              <tr>
                <th scope="col">Collection</th>
                <th scope="col">{ruleInfo.label} rule</th>
              </tr>
            </thead>
            <tbody>
              {shown
                .filter((c) => !("auth" in ruleInfo) || c.type === "auth")
                .map((c) => (
                  <tr key={c.id}>
                    <th scope="row">
                      <a href={href(["collections", c.name, "edit"], { tab: "rules" })} onClick={props.onClose}>
                        {c.name}
                      </a>
                    </th>
                    <td>
                      <RuleValue collection={c} rule={rule} />
                    </td>
                  </tr>
                ))}
            </tbody>
          </table>
        </>
      )}
    </Dialog>
  );
}

function RuleValue(props: { collection: CollectionModel; rule: RuleKey }) {
  const value = (props.collection as Record<string, any>)[props.rule];
  if (props.collection.type === "view" && !["listRule", "viewRule"].includes(props.rule)) return <span class="muted">—</span>;
  if (value === null || value === undefined) return <span class="badge badge-success">Superusers only</span>;
  if (value === "") {
    return <span class="badge badge-warn">{props.rule === "authRule" ? "Every user" : "Public"}</span>;
  }
  return <code class="overview-rule">{value}</code>;
}
