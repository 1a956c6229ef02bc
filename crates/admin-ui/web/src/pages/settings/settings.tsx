import type { Route } from "../../lib/router";
import { PageHeader } from "../../ui/misc";
import { ExportCollections, ImportCollections } from "./import-export";

export function SettingsPage(props: { section: string; route: Route }) {
  // Placeholder until the settings page lands: only the import/export sections are routed.
  if (props.section === "import" || props.section === "export") {
    return (
      <main id="main" class="page">
        <PageHeader title={props.section === "import" ? "Import collections" : "Export collections"} crumbs={["Settings"]} />
        {props.section === "import" ? <ImportCollections route={props.route} /> : <ExportCollections route={props.route} />}
      </main>
    );
  }
  return (
    <main id="main" class="page">
      <PageHeader title="SettingsPage" />
    </main>
  );
}
