// The collections, loaded once after sign-in and reloaded after every schema change the
// dashboard makes (and on a realtime-less poll when the tab becomes visible again).
import { pb, type CollectionModel } from "./api";
import { store } from "./store";

export const collections = store<CollectionModel[]>([]);
export const collectionsLoaded = store<boolean>(false);

export async function loadCollections(): Promise<CollectionModel[]> {
  const list = await pb.collections.getFullList({ sort: "name", batch: 500 });
  collections.set(list);
  collectionsLoaded.set(true);
  return list;
}

export function findCollection(idOrName: string): CollectionModel | undefined {
  return collections.get().find((c) => c.id === idOrName || c.name === idOrName);
}

/** The application's settings the whole dashboard reads (name, hideControls, accentColor). */
export interface AppMeta {
  appName: string;
  appURL: string;
  hideControls: boolean;
  accentColor?: string;
}

export const appMeta = store<AppMeta>({ appName: "Plinth", appURL: "", hideControls: false });

export async function loadAppMeta() {
  try {
    const settings = await pb.settings.getAll({ fields: "meta" });
    const meta = (settings.meta ?? {}) as Record<string, unknown>;
    appMeta.set({
      appName: String(meta.appName || "Plinth"),
      appURL: String(meta.appURL || ""),
      hideControls: Boolean(meta.hideControls),
      accentColor: typeof meta.accentColor === "string" ? meta.accentColor : undefined,
    });
    document.title = `${meta.appName || "Plinth"} · Plinth`;
    const accent = typeof meta.accentColor === "string" ? meta.accentColor : "";
    if (/^#[0-9a-fA-F]{3,8}$/.test(accent)) {
      document.documentElement.style.setProperty("--accent", accent);
    } else {
      document.documentElement.style.removeProperty("--accent");
    }
  } catch {
    // The meta only styles the dashboard; a failure here must not block it.
  }
}
