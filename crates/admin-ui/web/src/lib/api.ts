// The one API client of the dashboard: the official PocketBase JS SDK, pointed at the server
// that serves the page. The dashboard uses the same public HTTP API as every other client.
import PocketBase, { ClientResponseError, LocalAuthStore } from "pocketbase";
import type { CollectionModel, RecordModel } from "pocketbase";

export type { CollectionModel, RecordModel };
export { ClientResponseError };

export const SUPERUSERS = "_superusers";

export const pb = new PocketBase(
  location.origin,
  new LocalAuthStore("plinth_dashboard_auth"),
);
// The SDK cancels a request when another with the same key starts; the dashboard's pages
// cancel their own stale loads explicitly instead.
pb.autoCancellation(false);

/** PocketBase's error shape, as the SDK reports it. */
export interface ApiErrorShape {
  status: number;
  message: string;
  data: Record<string, { code: string; message: string } | unknown>;
}

/** The message to show for any thrown value. */
export function errorMessage(error: unknown): string {
  if (error instanceof ClientResponseError) {
    if (error.status === 0) return "The server cannot be reached.";
    const fields = fieldErrors(error);
    const first = Object.entries(fields)[0];
    const base = error.response?.message || error.message;
    return first ? `${base} ${first[0]}: ${first[1]}` : base;
  }
  if (error instanceof Error) return error.message;
  return String(error);
}

/** Field errors flattened to `path → message` ("fields.2.name" → "Cannot be blank."). */
export function fieldErrors(error: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!(error instanceof ClientResponseError)) return out;
  const walk = (value: unknown, path: string) => {
    if (!value || typeof value !== "object") return;
    const v = value as Record<string, unknown>;
    if (typeof v.message === "string" && typeof v.code === "string") {
      out[path] = v.message;
      return;
    }
    for (const [key, child] of Object.entries(v)) {
      walk(child, path ? `${path}.${key}` : key);
    }
  };
  walk(error.response?.data, "");
  return out;
}

/** True while a superuser is signed in with a token that has not expired. */
export function signedIn(): boolean {
  return pb.authStore.isValid && pb.authStore.record?.collectionName === SUPERUSERS;
}

/** Seconds until the stored token expires (negative when it has). */
export function tokenSecondsLeft(): number {
  const token = pb.authStore.token;
  const part = token.split(".")[1];
  if (!part) return -1;
  try {
    const payload = JSON.parse(atob(part.replace(/-/g, "+").replace(/_/g, "/")));
    return (payload.exp ?? 0) - Date.now() / 1000;
  } catch {
    return -1;
  }
}

/**
 * Keeps the session alive: refreshes the token when less than a quarter of a day (or half its
 * lifetime) is left, and signs out when the server refuses the refresh.
 */
export function startSessionKeeper(onSignedOut: () => void): () => void {
  let stopped = false;
  const tick = async () => {
    if (stopped || !pb.authStore.token) return;
    const left = tokenSecondsLeft();
    if (left <= 0) {
      pb.authStore.clear();
      onSignedOut();
      return;
    }
    if (left < 30 * 60) {
      try {
        await pb.collection(SUPERUSERS).authRefresh();
      } catch (error) {
        if (error instanceof ClientResponseError && error.status === 401) {
          pb.authStore.clear();
          onSignedOut();
        }
      }
    }
  };
  void tick();
  const timer = setInterval(tick, 60_000);
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}

/** A superuser-only fetch to a Plinth route the SDK does not wrap. */
export async function send<T = unknown>(
  path: string,
  options: { method?: string; body?: unknown; query?: Record<string, unknown> } = {},
): Promise<T> {
  return pb.send<T>(path, {
    method: options.method ?? "GET",
    body: options.body as never,
    query: options.query,
  });
}
