// File URLs of records, with the short-lived file token protected files need.
import { useEffect, useState } from "preact/hooks";
import { pb, type RecordModel } from "../../lib/api";
import { store, useStore } from "../../lib/store";

// The server's file tokens last about three minutes; renew well before.
const TOKEN_TTL_MS = 120_000;
const token = store<{ value: string; at: number }>({ value: "", at: 0 });
let pending: Promise<string> | null = null;

/** A file token (cached; fetched again when it is close to expiring). */
export async function fileToken(): Promise<string> {
  const current = token.get();
  if (current.value && Date.now() - current.at < TOKEN_TTL_MS) return current.value;
  pending ??= pb.files
    .getToken()
    .then((value) => {
      token.set({ value, at: Date.now() });
      return value;
    })
    .finally(() => {
      pending = null;
    });
  return pending;
}

/**
 * The token for protected files while `needed`, refreshed before it expires; "" otherwise or
 * until it arrives.
 */
export function useFileToken(needed: boolean): string {
  const current = useStore(token);
  const [, tick] = useState(0);
  useEffect(() => {
    if (!needed) return;
    void fileToken().catch(() => undefined);
    const timer = setInterval(() => {
      void fileToken()
        .then(() => tick((n) => n + 1))
        .catch(() => undefined);
    }, TOKEN_TTL_MS / 2);
    return () => clearInterval(timer);
  }, [needed]);
  return needed ? current.value : "";
}

export function fileUrl(
  record: RecordModel,
  name: string,
  options: { thumb?: string; token?: string; download?: boolean } = {},
): string {
  const query: Record<string, string | boolean> = {};
  if (options.thumb) query.thumb = options.thumb;
  if (options.token) query.token = options.token;
  if (options.download) query.download = true;
  return pb.files.getURL(record, name, query);
}
