// A few line icons as inline SVG (emoji and rare symbols are missing from many system fonts).
import { fieldType } from "./model";

const PATHS: Record<string, string> = {
  trash: "M3 4h10M6 4V2.5h4V4M4.5 4l.7 9.5h5.6l.7-9.5M7 6.5v5M9 6.5v5",
  copy: "M5.5 5.5h8v8h-8zM2.5 10.5v-8h8",
  link: "M6.5 9.5l3-3M7 4.5l1.2-1.2a2.5 2.5 0 013.5 3.5L10.5 8M9 11.5l-1.2 1.2a2.5 2.5 0 01-3.5-3.5L5.5 8",
  calendar: "M2.5 3.5h11v10h-11zM2.5 6.5h11M5.5 2v3M10.5 2v3",
  clock: "M8 2.5a5.5 5.5 0 110 11 5.5 5.5 0 010-11zM8 5v3.2l2 1.3",
  clip: "M10.5 5L6 9.5a1.4 1.4 0 002 2l5-5a2.8 2.8 0 00-4-4L4 7.5a4.2 4.2 0 006 6l4-4",
  pin: "M8 14s4.5-4.2 4.5-7.5a4.5 4.5 0 00-9 0C3.5 9.8 8 14 8 14zM8 8a1.5 1.5 0 100-3 1.5 1.5 0 000 3z",
  lock: "M4 7.5h8v6H4zM5.5 7.5V5.5a2.5 2.5 0 015 0v2",
  gear: "M8 5.5a2.5 2.5 0 110 5 2.5 2.5 0 010-5zM8 1.5v2M8 12.5v2M1.5 8h2M12.5 8h2M3.4 3.4l1.4 1.4M11.2 11.2l1.4 1.4M3.4 12.6l1.4-1.4M11.2 4.8l1.4-1.4",
};

export function Icon(props: { name: string; size?: number }) {
  const size = props.size ?? 14;
  return (
    <svg class="icon" viewBox="0 0 16 16" width={size} height={size} aria-hidden="true" fill="none" stroke="currentColor" stroke-width="1.4" stroke-linecap="round" stroke-linejoin="round">
      <path d={PATHS[props.name] ?? ""} />
    </svg>
  );
}

/** A field type's icon: a glyph, or `svg:<name>` for one of the icons above. */
export function TypeIcon(props: { type: string }) {
  const icon = fieldType(props.type).icon;
  return icon.startsWith("svg:") ? <Icon name={icon.slice(4)} /> : <>{icon}</>;
}
