// API preview: the request behind the current table (URL and JS SDK call), and this
// collection's endpoints with the rule that guards each.
import type { CollectionModel } from "../../lib/api";
import { toast } from "../../lib/toast";
import { Dialog } from "../../ui/dialog";
import { copyText } from "../../ui/misc";

function CopyBlock(props: { text: string; label: string }) {
  return (
    <div class="copy-block">
      <pre class="code-block">{props.text}</pre>
      <button
        type="button"
        class="btn btn-small"
        aria-label={`Copy ${props.label}`}
        onClick={() => {
          copyText(props.text);
          toast("Copied.", "info", 1500);
        }}
      >
        Copy
      </button>
    </div>
  );
}

function rule(value: unknown): string {
  if (value === null || value === undefined) return "superusers only";
  if (value === "") return "everyone";
  return String(value);
}

export function ApiPreview(props: {
  collection: CollectionModel;
  filter: string;
  sort: string;
  page: number;
  perPage: number;
  expand: string;
  onClose: () => void;
}) {
  const c = props.collection;
  const params = new URLSearchParams();
  params.set("page", String(props.page));
  params.set("perPage", String(props.perPage));
  if (props.filter) params.set("filter", props.filter);
  if (props.sort) params.set("sort", props.sort);
  if (props.expand) params.set("expand", props.expand);
  const path = `/api/collections/${encodeURIComponent(c.name)}/records`;
  const url = `${location.origin}${path}?${params.toString()}`;
  const options = [
    props.filter ? `  filter: ${JSON.stringify(props.filter)},` : "",
    props.sort ? `  sort: ${JSON.stringify(props.sort)},` : "",
    props.expand ? `  expand: ${JSON.stringify(props.expand)},` : "",
  ].filter(Boolean);
  const sdk =
    `import PocketBase from "pocketbase";\n\nconst pb = new PocketBase(${JSON.stringify(location.origin)});\n\n` +
    `const result = await pb.collection(${JSON.stringify(c.name)}).getList(${props.page}, ${props.perPage}` +
    (options.length ? `, {\n${options.join("\n")}\n});` : ");");
  const view = c.type === "view";
  const rows: [string, string, string][] = [
    ["List / search", `GET ${path}`, rule(c.listRule)],
    ["View", `GET ${path}/:id`, rule(c.viewRule)],
    ...(!view
      ? ([
          ["Create", `POST ${path}`, rule(c.createRule)],
          ["Update", `PATCH ${path}/:id`, rule(c.updateRule)],
          ["Delete", `DELETE ${path}/:id`, rule(c.deleteRule)],
        ] as [string, string, string][])
      : []),
    ["Realtime", `subscribe "${c.name}/*" or "${c.name}/:id"`, `${rule(c.listRule)} / ${rule(c.viewRule)}`],
  ];
  if (c.type === "auth") {
    rows.push(["Sign in", `POST /api/collections/${c.name}/auth-with-password`, "—"]);
  }
  return (
    <Dialog open title={`API: ${c.name}`} onClose={props.onClose} wide testId="api-preview">
      <h3>The current table's request</h3>
      <CopyBlock text={`GET ${url}`} label="the URL" />
      <h3>With the JS SDK</h3>
      <CopyBlock text={sdk} label="the SDK code" />
      <h3>Endpoints and rules</h3>
      <div class="table-wrap">
        <table class="table api-table">
          <thead>
            <tr>
              <th>Action</th>
              <th>Request</th>
              <th>Allowed for</th>
            </tr>
          </thead>
          <tbody>
            {rows.map(([action, request, allowed]) => (
              <tr key={action}>
                <td>{action}</td>
                <td>
                  <code>{request}</code>
                </td>
                <td>
                  <code>{allowed}</code>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <p class="muted">Superusers pass every rule. Send the token as the Authorization header.</p>
    </Dialog>
  );
}
