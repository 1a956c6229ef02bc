import type { Route } from "../../lib/router";
import { PageHeader } from "../../ui/misc";

export function CollectionEditor(props: { name: string | null; route: Route }) {
  void props;
  return (
    <main id="main" class="page">
      <PageHeader title="CollectionEditor" />
    </main>
  );
}
