import type { Route } from "../../lib/router";

/** `#/settings/import`: paste or upload collections JSON, review the diff, apply. */
export function ImportCollections(props: { route: Route }) {
  void props;
  return <div class="card">Import collections</div>;
}

/** `#/settings/export`: pick collections and download or copy their JSON. */
export function ExportCollections(props: { route: Route }) {
  void props;
  return <div class="card">Export collections</div>;
}
