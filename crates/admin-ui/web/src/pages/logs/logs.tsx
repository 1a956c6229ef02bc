import type { Route } from "../../lib/router";
import { PageHeader } from "../../ui/misc";

export function LogsPage(props: { route: Route }) {
  void props;
  return (
    <main id="main" class="page">
      <PageHeader title="LogsPage" />
    </main>
  );
}
