// Shared formatting of log entries: level names and badges, status colors, durations.
export function levelName(level: number): string {
  if (level >= 8) return level === 8 ? "ERROR" : `ERROR+${level - 8}`;
  if (level >= 4) return level === 4 ? "WARN" : `WARN+${level - 4}`;
  if (level >= 0) return level === 0 ? "INFO" : `INFO+${level}`;
  return level === -4 ? "DEBUG" : `DEBUG${level + 4 >= 0 ? "+" : ""}${level + 4}`;
}

/** The level as a number (the SDK types it as a string; the server sends a number). */
export function LevelBadge(props: { level: number | string }) {
  const level = Number(props.level);
  const name = levelName(level);
  const cls = level >= 8 ? "badge-danger" : level >= 4 ? "badge-warn" : level >= 0 ? "badge-success" : "";
  return <span class={`badge ${cls}`}>{name}</span>;
}

export function statusClass(status: number): string {
  if (status >= 500) return "badge-danger";
  if (status >= 400) return "badge-warn";
  return "badge-success";
}

export function formatMs(ms: number): string {
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${ms.toFixed(ms < 10 ? 1 : 0)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}
