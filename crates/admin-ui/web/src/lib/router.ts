// Hash routing: `/_/#/collections/posts?filter=…`. The hash keeps every dashboard URL on the
// one index.html the server answers for /_/, with no server-side routes to mirror.
import { useEffect, useState } from "preact/hooks";

export interface Route {
  /** Path segments after `#/`, decoded. */
  parts: string[];
  /** The query after `?` in the hash. */
  query: URLSearchParams;
  /** The raw hash path, `/collections/posts`. */
  path: string;
}

export function currentRoute(): Route {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, search = ""] = raw.split("?", 2);
  const parts = path
    .split("/")
    .filter(Boolean)
    .map((part) => {
      try {
        return decodeURIComponent(part);
      } catch {
        return part;
      }
    });
  return { parts, query: new URLSearchParams(search), path: path || "/" };
}

export function useRoute(): Route {
  const [route, setRoute] = useState(currentRoute);
  useEffect(() => {
    const onChange = () => setRoute(currentRoute());
    addEventListener("hashchange", onChange);
    return () => removeEventListener("hashchange", onChange);
  }, []);
  return route;
}

/** Builds `#/a/b?x=1` from segments (encoded) and an optional query. */
export function href(parts: string[], query?: Record<string, string | undefined>): string {
  const path = "#/" + parts.map(encodeURIComponent).join("/");
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== "") params.set(key, value);
  }
  const search = params.toString();
  return search ? `${path}?${search}` : path;
}

export function navigate(parts: string[], query?: Record<string, string | undefined>, replace = false) {
  const target = href(parts, query);
  if (replace) {
    history.replaceState(null, "", target);
    dispatchEvent(new HashChangeEvent("hashchange"));
  } else {
    location.hash = target.slice(1);
  }
}

/** Replaces the query of the current route, keeping its path (no new history entry). */
export function setQuery(query: Record<string, string | undefined>) {
  navigate(currentRoute().parts, query, true);
}
