// The SQL console's recent queries and unsent draft, kept in this browser's localStorage.
import { store } from "../../lib/store";

export interface HistoryEntry {
  query: string;
  /** When it last ran (ms since the epoch). */
  at: number;
  /** Whether that run succeeded. */
  ok: boolean;
}

const HISTORY_KEY = "plinth_sql_history";
const DRAFT_KEY = "plinth_sql_draft";
const MAX_ENTRIES = 50;

function read(): HistoryEntry[] {
  try {
    const raw = JSON.parse(localStorage.getItem(HISTORY_KEY) ?? "[]");
    if (!Array.isArray(raw)) return [];
    return raw.filter(
      (e): e is HistoryEntry => e && typeof e.query === "string" && typeof e.at === "number",
    );
  } catch {
    return [];
  }
}

export const history = store<HistoryEntry[]>(read());

function save(list: HistoryEntry[]) {
  history.set(list);
  try {
    localStorage.setItem(HISTORY_KEY, JSON.stringify(list));
  } catch {
    // A full or disabled storage only loses the history.
  }
}

/** Puts `query` first (once: an earlier identical entry moves up). */
export function remember(query: string, ok: boolean) {
  const text = query.trim();
  if (!text) return;
  const rest = history.get().filter((e) => e.query.trim() !== text);
  save([{ query: text, at: Date.now(), ok }, ...rest].slice(0, MAX_ENTRIES));
}

export function forget(query: string) {
  save(history.get().filter((e) => e.query !== query));
}

export function clearHistory() {
  save([]);
}

export function loadDraft(): string {
  try {
    return localStorage.getItem(DRAFT_KEY) ?? "";
  } catch {
    return "";
  }
}

export function saveDraft(text: string) {
  try {
    if (text) localStorage.setItem(DRAFT_KEY, text);
    else localStorage.removeItem(DRAFT_KEY);
  } catch {
    // As above.
  }
}
