import type { Route } from "../../lib/router";
import { PageHeader } from "../../ui/misc";

export function RecordsPage(props: { name: string; route: Route }) {
  void props;
  return (
    <main id="main" class="page">
      <PageHeader title="RecordsPage" />
    </main>
  );
}
