// `#/settings/<section>`: the sections in a side list (a scrolling row of tabs on a phone) and
// the selected one. Edits are kept while moving between sections; a dot marks each section
// with unsaved changes, and leaving the page with some asks first.
import { useEffect } from "preact/hooks";
import { href, type Route } from "../../lib/router";
import { appMeta } from "../../lib/schema";
import { useStore } from "../../lib/store";
import { Empty, PageHeader, Spinner } from "../../ui/misc";
import { ApplicationSettings } from "./application";
import { BackupsSettings } from "./backups";
import { CronsSettings } from "./crons";
import { anyDirty, loadSettings, sectionDirty, settingsState } from "./form";
import { ExportCollections, ImportCollections } from "./import-export";
import { LogsSettings } from "./logs-settings";
import { MailSettings } from "./mail";
import { StorageSettings } from "./storage";

const SECTIONS: { id: string; label: string; group: string }[] = [
  { id: "application", label: "Application", group: "System" },
  { id: "mail", label: "Mail settings", group: "System" },
  { id: "storage", label: "Files storage", group: "System" },
  { id: "backups", label: "Backups", group: "System" },
  { id: "crons", label: "Crons", group: "System" },
  { id: "logs", label: "Logs", group: "System" },
  { id: "import", label: "Import collections", group: "Sync" },
  { id: "export", label: "Export collections", group: "Sync" },
];

/** Sections edited through the shared settings form (the others load their own data). */
const FORM_SECTIONS = new Set(["application", "mail", "storage", "backups", "logs"]);

export function SettingsPage(props: { section: string; route: Route }) {
  const state = useStore(settingsState);
  const meta = useStore(appMeta);
  // As in PocketBase, hidden collection controls also hide the collections import.
  const sections = meta.hideControls ? SECTIONS.filter((s) => s.id !== "import") : SECTIONS;
  const current = SECTIONS.find((s) => s.id === props.section);

  useEffect(() => {
    // Fresh values on every visit; sections with unsaved edits keep them.
    void loadSettings();
  }, []);

  // On a phone the sections are a scrolling row: keep the current one in view.
  useEffect(() => {
    document.querySelector(".settings-nav-item.active")?.scrollIntoView({ block: "nearest", inline: "nearest" });
  }, [props.section]);

  useEffect(() => {
    const onUnload = (e: BeforeUnloadEvent) => {
      if (anyDirty()) {
        e.preventDefault();
        e.returnValue = "";
      }
    };
    addEventListener("beforeunload", onUnload);
    return () => removeEventListener("beforeunload", onUnload);
  }, []);

  let content;
  if (!current) {
    content = (
      <Empty>
        No settings section "{props.section}". <a href={href(["settings", "application"])}>Application settings</a>
      </Empty>
    );
  } else if (FORM_SECTIONS.has(current.id) && !state.draft) {
    content = state.error ? (
      <div class="card form-error" role="alert">
        {state.error}{" "}
        <button type="button" class="btn btn-small" onClick={() => void loadSettings()}>
          Retry
        </button>
      </div>
    ) : (
      <Spinner label="Loading settings" />
    );
  } else {
    switch (current.id) {
      case "application":
        content = <ApplicationSettings />;
        break;
      case "mail":
        content = <MailSettings />;
        break;
      case "storage":
        content = <StorageSettings />;
        break;
      case "backups":
        content = <BackupsSettings />;
        break;
      case "crons":
        content = <CronsSettings />;
        break;
      case "logs":
        content = <LogsSettings />;
        break;
      case "import":
        content = meta.hideControls ? (
          <div class="notice" role="note">
            Read-only: the application settings hide the collection controls (Settings → Application).
          </div>
        ) : (
          <ImportCollections route={props.route} />
        );
        break;
      case "export":
        content = <ExportCollections route={props.route} />;
        break;
    }
  }

  const groups = [...new Set(sections.map((s) => s.group))];
  return (
    <div class="split settings-split">
      <nav class="settings-nav" aria-label="Settings">
        {groups.map((group) => (
          <div class="settings-nav-group" key={group}>
            <div class="settings-nav-title">{group}</div>
            <ul>
              {sections.filter((s) => s.group === group).map((s) => {
                const active = s.id === current?.id;
                const dirty = FORM_SECTIONS.has(s.id) && sectionDirty(state, s.id);
                return (
                  <li key={s.id}>
                    <a
                      href={href(["settings", s.id])}
                      class={`settings-nav-item${active ? " active" : ""}`}
                      aria-current={active ? "page" : undefined}
                      data-section={s.id}
                    >
                      <span>{s.label}</span>
                      {dirty && (
                        <>
                          <span class="dirty-dot" title="Unsaved changes" aria-hidden="true" />
                          <span class="sr-only">(unsaved changes)</span>
                        </>
                      )}
                    </a>
                  </li>
                );
              })}
            </ul>
          </div>
        ))}
      </nav>
      <main id="main" class="page settings-page">
        <PageHeader crumbs={["Settings"]} title={current?.label ?? props.section} />
        {content}
      </main>
    </div>
  );
}
