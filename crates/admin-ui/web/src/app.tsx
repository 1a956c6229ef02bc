// The shell: sign-in gate, navigation, and the page for the current hash route.
import { useEffect, useState } from "preact/hooks";
import { pb, signedIn, startSessionKeeper } from "./lib/api";
import { currentRoute, href, navigate, useRoute, type Route } from "./lib/router";
import { appMeta, collections, loadAppMeta, loadCollections } from "./lib/schema";
import { useStore } from "./lib/store";
import { applyTheme, currentTheme, THEMES, type Theme } from "./lib/theme";
import { toastError } from "./lib/toast";
import { ConfirmHost } from "./ui/dialog";
import { Empty, Spinner, ToastHost } from "./ui/misc";
import { Install } from "./pages/install";
import { loadLocal, saveLocal } from "./pages/records/fields";
import { Login } from "./pages/login";
import { CollectionEditor } from "./pages/collections/editor";
import { CollectionsOverview } from "./pages/collections/overview";
import { RecordsPage } from "./pages/records/records";
import { LogsPage } from "./pages/logs/logs";
import { SettingsPage } from "./pages/settings/settings";
import { SqlPage } from "./pages/sql/sql";

export function App() {
  const route = useRoute();
  const [authed, setAuthed] = useState(signedIn());

  useEffect(() => pb.authStore.onChange(() => setAuthed(signedIn())), []);

  if (route.parts[0] === "install" && route.parts[1]) {
    return (
      <>
        <Install token={route.parts[1]} onSignedIn={() => setAuthed(true)} />
        <ToastHost />
      </>
    );
  }
  if (!authed) {
    return (
      <>
        <Login
          onSignedIn={() => {
            setAuthed(true);
            if (currentRoute().parts[0] === "login") navigate(["collections"], undefined, true);
          }}
        />
        <ToastHost />
      </>
    );
  }
  return <Shell route={route} onSignedOut={() => setAuthed(false)} />;
}

function Shell(props: { route: Route; onSignedOut: () => void }) {
  const [ready, setReady] = useState(false);
  const meta = useStore(appMeta);

  useEffect(() => {
    const stop = startSessionKeeper(props.onSignedOut);
    Promise.all([loadCollections(), loadAppMeta()])
      .catch(toastError)
      .finally(() => setReady(true));
    return stop;
  }, []);

  const section = props.route.parts[0] ?? "collections";
  useEffect(() => {
    // Read the address now, not this render's: it may have moved on (a link, a typed URL).
    const now = currentRoute().parts;
    if (!now.length || now[0] === "login") navigate(["collections"], undefined, true);
  }, [section]);

  const logout = () => {
    pb.authStore.clear();
    props.onSignedOut();
    navigate(["login"], undefined, true);
  };

  return (
    <div class="shell">
      <a class="skip-link" href="#main">
        Skip to content
      </a>
      <nav class="topnav" aria-label="Main">
        <a class="brand" href={href(["collections"])} title={meta.appName} aria-label={meta.appName}>
          <span class="brand-mark" aria-hidden="true">▦</span>
          <span class="brand-name">{meta.appName}</span>
        </a>
        <NavLink section={section} target="collections" label="Collections" icon="⛁" />
        <NavLink section={section} target="logs" label="Logs" icon="≣" />
        <NavLink section={section} target="sql" label="SQL" icon="›_" />
        <NavLink section={section} target="settings" label="Settings" icon="⚙" />
        <div class="topnav-end">
          <span class="muted whoami" title="Signed in as">
            {String(pb.authStore.record?.email ?? "")}
          </span>
          <ThemeButton />
          <button type="button" class="btn btn-small" onClick={logout}>
            Log out
          </button>
        </div>
      </nav>
      <div class="shell-body">
        {!ready ? (
          <main id="main" class="page">
            <Spinner />
          </main>
        ) : (
          <Page route={props.route} />
        )}
      </div>
      <ConfirmHost />
      <ToastHost />
    </div>
  );
}

const THEME_ICONS: Record<Theme, string> = { auto: "◐", light: "☀", dark: "☾" };

/** Cycles the color scheme: the system's, light, dark. */
function ThemeButton() {
  const [theme, setTheme] = useState<Theme>(currentTheme);
  const next = THEMES[(THEMES.indexOf(theme) + 1) % THEMES.length];
  return (
    <button
      type="button"
      class="btn btn-small theme-button"
      aria-label={`Color scheme: ${theme}. Switch to ${next}`}
      title={`Color scheme: ${theme} (click for ${next})`}
      data-testid="theme-button"
      onClick={() => {
        applyTheme(next);
        setTheme(next);
      }}
    >
      <span aria-hidden="true">{THEME_ICONS[theme]}</span>
    </button>
  );
}

function NavLink(props: { section: string; target: string; label: string; icon: string }) {
  const active = props.section === props.target;
  return (
    <a
      class={`navlink${active ? " active" : ""}`}
      href={href([props.target])}
      aria-current={active ? "page" : undefined}
      aria-label={props.label}
    >
      <span class="navlink-icon" aria-hidden="true">
        {props.icon}
      </span>
      <span>{props.label}</span>
    </a>
  );
}

function Page(props: { route: Route }) {
  const [section, ...rest] = props.route.parts;
  switch (section) {
    case "logs":
      return <LogsPage route={props.route} />;
    case "sql":
      return <SqlPage route={props.route} />;
    case "settings":
      return <SettingsPage section={rest[0] ?? "application"} route={props.route} />;
    default:
      return <CollectionsArea route={props.route} />;
  }
}

const LAST_COLLECTION_KEY = "plinth.lastCollection";

/** The collection list beside the selected collection's records or editor. */
function CollectionsArea(props: { route: Route }) {
  const list = useStore(collections);
  const meta = useStore(appMeta);
  const [search, setSearch] = useState("");
  const [showSystem, setShowSystem] = useState(false);
  const [overview, setOverview] = useState(false);
  const selected = props.route.parts[1];
  const editing = props.route.parts[2] === "edit" || selected === "+new";

  // As in PocketBase, "Collections" opens a collection's records straight away: the one last
  // opened in this browser, else the first non-system one.
  useEffect(() => {
    if (selected) {
      if (selected !== "+new" && list.some((c) => c.name === selected)) saveLocal(LAST_COLLECTION_KEY, selected);
      return;
    }
    // The hash may have moved on since this render (a link, a typed URL): only an address
    // that still names no collection is redirected.
    const now = currentRoute().parts;
    if ((now[0] ?? "collections") !== "collections" || now[1]) return;
    const last = loadLocal<string>(LAST_COLLECTION_KEY, "");
    const target = list.find((c) => c.name === last) ?? list.find((c) => !c.system);
    if (target) navigate(["collections", target.name], undefined, true);
  }, [selected, list]);

  const needle = search.trim().toLowerCase();
  const visible = list.filter(
    (c) => (showSystem || !c.system || c.name === selected) && (!needle || c.name.toLowerCase().includes(needle)),
  );
  const systemCount = list.filter((c) => c.system).length;

  let content;
  if (selected === "+new") {
    content = <CollectionEditor name={null} route={props.route} />;
  } else if (selected && editing) {
    content = <CollectionEditor name={selected} route={props.route} />;
  } else if (selected) {
    content = <RecordsPage name={selected} route={props.route} />;
  } else {
    content = (
      <main id="main" class="page">
        <Empty>
          {list.some((c) => !c.system) ? "Select a collection on the left." : "No collections yet."}
          {!meta.hideControls && (
            <p>
              <a class="btn btn-primary" href={href(["collections", "+new"])}>
                New collection
              </a>
            </p>
          )}
        </Empty>
      </main>
    );
  }

  return (
    <div class="split">
      <aside class="sidebar" aria-label="Collections">
        <div class="sidebar-top">
          <input
            type="search"
            class="sidebar-search"
            placeholder="Search collections"
            aria-label="Search collections"
            value={search}
            onInput={(e) => setSearch(e.currentTarget.value)}
          />
          <button
            type="button"
            class="btn btn-icon"
            aria-label="Collections overview"
            title="Collections overview: fields, relations and API rules of all collections"
            data-testid="collections-overview-open"
            onClick={() => setOverview(true)}
          >
            <span aria-hidden="true">⊞</span>
          </button>
        </div>
        <ul class="sidebar-list">
          {visible.map((c) => (
            <li key={c.id}>
              <a
                href={href(["collections", c.name])}
                class={`sidebar-item${c.name === selected ? " active" : ""}`}
                aria-current={c.name === selected ? "page" : undefined}
                data-collection={c.name}
              >
                <span class={`ctype ctype-${c.type}`} aria-hidden="true">
                  {c.type === "auth" ? "◉" : c.type === "view" ? "◧" : "▤"}
                </span>
                <span class="sidebar-name">{c.name}</span>
              </a>
            </li>
          ))}
        </ul>
        {systemCount > 0 && (
          <button type="button" class="btn btn-link btn-small" onClick={() => setShowSystem(!showSystem)}>
            {showSystem ? "Hide" : "Show"} system collections ({systemCount})
          </button>
        )}
        {!meta.hideControls && (
          <a class="btn btn-block" href={href(["collections", "+new"])} data-testid="new-collection">
            + New collection
          </a>
        )}
      </aside>
      {content}
      {overview && <CollectionsOverview onClose={() => setOverview(false)} />}
    </div>
  );
}
