// Requests per hour as an inline SVG bar chart (no chart library). A click on a bar narrows the
// list to that hour.
import { useEffect, useRef, useState } from "preact/hooks";

export interface HourStat {
  date: string;
  total: number;
}

const HOUR = 3600_000;
const HEIGHT = 150;
const PAD = { top: 12, right: 8, bottom: 22, left: 40 };

export function parseServerDate(value: string): Date {
  return new Date(value.replace(" ", "T"));
}

/** "2026-12-03 22:00:00.000Z", the server's date format. */
export function serverDate(date: Date): string {
  return date.toISOString().replace("T", " ");
}

function floorHour(time: number): number {
  return Math.floor(time / HOUR) * HOUR;
}

export function LogsChart(props: {
  stats: HourStat[];
  /** First hour shown; null: from the first hour with entries. */
  from: Date | null;
  to: Date;
  selected?: string;
  onPick: (hour: string | undefined) => void;
  loading?: boolean;
}) {
  const ref = useRef<HTMLDivElement>(null);
  const [width, setWidth] = useState(800);
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    setWidth(el.clientWidth || 800);
    const observer = new ResizeObserver(() => setWidth(el.clientWidth || 800));
    observer.observe(el);
    return () => observer.disconnect();
  }, []);

  const counts = new Map<number, number>();
  for (const s of props.stats) counts.set(floorHour(parseServerDate(s.date).getTime()), s.total);
  const known = [...counts.keys()];
  const end = floorHour(props.to.getTime());
  // Without a period, from the first hour with entries, but never fewer than 24 hours.
  const start = props.from
    ? floorHour(props.from.getTime())
    : Math.min(end - 23 * HOUR, known.length ? Math.min(...known) : end);
  const hours: number[] = [];
  for (let t = Math.min(start, end); t <= end && hours.length < 24 * 90; t += HOUR) hours.push(t);
  const total = props.stats.reduce((sum, s) => sum + s.total, 0);
  const max = Math.max(1, ...hours.map((h) => counts.get(h) ?? 0));
  let peak = hours[0];
  for (const h of hours) if ((counts.get(h) ?? 0) > (counts.get(peak) ?? 0)) peak = h;

  const innerW = Math.max(10, width - PAD.left - PAD.right);
  const innerH = HEIGHT - PAD.top - PAD.bottom;
  const step = innerW / Math.max(1, hours.length);
  const barW = Math.max(1, step - (step > 4 ? 1.5 : 0));
  const y = (v: number) => PAD.top + innerH - (v / max) * innerH;

  // About one label per 90 px, on whole hours; the day is shown when the span crosses days.
  const multiDay = hours.length > 0 && new Date(hours[0]).toDateString() !== new Date(end).toDateString();
  const every = Math.max(1, Math.ceil(hours.length / Math.max(1, Math.floor(innerW / 90))));
  const label = (t: number) => {
    const d = new Date(t);
    const time = `${String(d.getHours()).padStart(2, "0")}:00`;
    return multiDay ? `${d.getMonth() + 1}/${d.getDate()} ${time}` : time;
  };
  const fmtHour = (t: number) => {
    const d = new Date(t);
    return `${d.toLocaleDateString()} ${String(d.getHours()).padStart(2, "0")}:00–${String((d.getHours() + 1) % 24).padStart(2, "0")}:00`;
  };
  const selected = props.selected ? floorHour(parseServerDate(props.selected).getTime()) : undefined;
  const summary = `${total.toLocaleString("en")} entries over ${hours.length} hours${
    total ? `, most (${counts.get(peak) ?? 0}) at ${fmtHour(peak)}` : ""
  }`;

  return (
    <div class="logs-chart" ref={ref} data-testid="logs-chart">
      <div class="logs-chart-head">
        <span>
          <strong>{total.toLocaleString("en")}</strong> <span class="muted">entries in the period</span>
        </span>
        {props.selected && (
          <button type="button" class="ops-chip" onClick={() => props.onPick(undefined)}>
            Only {fmtHour(selected!)} <span aria-hidden="true">×</span>
            <span class="sr-only">(show all hours)</span>
          </button>
        )}
        {props.loading && <span class="muted small">updating…</span>}
      </div>
      <svg width={width} height={HEIGHT} role="img" aria-label={`Entries per hour: ${summary}`}>
        <title>{summary}</title>
        {[max, Math.round(max / 2)].map((v) => (
          <g key={v} class="chart-grid">
            <line x1={PAD.left} x2={PAD.left + innerW} y1={y(v)} y2={y(v)} />
            <text x={PAD.left - 6} y={y(v) + 4} text-anchor="end">
              {v}
            </text>
          </g>
        ))}
        <line class="chart-axis" x1={PAD.left} x2={PAD.left + innerW} y1={y(0)} y2={y(0)} />
        {hours.map((t, i) => {
          const value = counts.get(t) ?? 0;
          const x = PAD.left + i * step;
          return (
            <g
              key={t}
              class={`chart-bar${selected === t ? " selected" : ""}`}
              onClick={() => props.onPick(selected === t ? undefined : serverDate(new Date(t)))}
            >
              <title>{`${fmtHour(t)}: ${value} ${value === 1 ? "entry" : "entries"}`}</title>
              {/* A full-height transparent target, so thin bars stay easy to hover and click. */}
              <rect class="chart-hit" x={x} y={PAD.top} width={Math.max(step, 1)} height={innerH} />
              {value > 0 && <rect class="chart-fill" x={x} y={y(value)} width={barW} height={y(0) - y(value)} />}
            </g>
          );
        })}
        {hours.map((t, i) =>
          i % every === 0 ? (
            <text key={t} class="chart-label" x={PAD.left + i * step} y={HEIGHT - 6}>
              {label(t)}
            </text>
          ) : null,
        )}
      </svg>
    </div>
  );
}
