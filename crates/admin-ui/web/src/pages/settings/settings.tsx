import type { Route } from "../../lib/router";
import { PageHeader } from "../../ui/misc";

export function SettingsPage(props: { section: string; route: Route }) {
  void props;
  return (
    <main id="main" class="page">
      <PageHeader title="SettingsPage" />
    </main>
  );
}
