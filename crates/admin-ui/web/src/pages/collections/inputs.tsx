// Small inputs of the collection editor: lists typed as comma-separated text, UTC date-times.
import { useEffect, useState } from "preact/hooks";

function parseList(text: string): string[] {
  return text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

/** A string[] edited as "a, b, c"; the text the user types is kept while it parses the same. */
export function ListInput(props: {
  value: string[] | null | undefined;
  onValue: (value: string[]) => void;
  placeholder?: string;
  disabled?: boolean;
  list?: string;
  "aria-label"?: string;
  "aria-describedby"?: string;
}) {
  const value = props.value ?? [];
  const [text, setText] = useState(value.join(", "));
  useEffect(() => {
    if (parseList(text).join("\u0000") !== value.join("\u0000")) setText(value.join(", "));
  }, [value.join("\u0000")]);
  return (
    <input
      type="text"
      value={text}
      placeholder={props.placeholder}
      disabled={props.disabled}
      list={props.list}
      aria-label={props["aria-label"]}
      aria-describedby={props["aria-describedby"]}
      onInput={(e) => {
        const next = e.currentTarget.value;
        setText(next);
        props.onValue(parseList(next));
      }}
      onBlur={() => setText(parseList(text).join(", "))}
    />
  );
}

/** "2024-01-02 03:04:05.000Z" ⇄ the value of a datetime-local input, both in UTC. */
export function toLocalInput(value: string | null | undefined): string {
  if (!value) return "";
  const m = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2})(:\d{2})?/.exec(value);
  return m ? `${m[1]}T${m[2]}${m[3] && m[3] !== ":00" ? m[3] : ""}` : "";
}

export function fromLocalInput(value: string): string {
  if (!value) return "";
  const [date, time = "00:00"] = value.split("T");
  const [h = "00", m = "00", s = "00"] = time.split(":");
  return `${date} ${h}:${m}:${s.padStart(2, "0")}.000Z`;
}

export function UtcDateInput(props: { value: string | null | undefined; onValue: (value: string) => void; "aria-label"?: string }) {
  return (
    <input
      type="datetime-local"
      step={1}
      value={toLocalInput(props.value)}
      aria-label={props["aria-label"]}
      onInput={(e) => props.onValue(fromLocalInput(e.currentTarget.value))}
    />
  );
}

/** A checkbox with its label (the form.tsx Toggle renders a switch; options read better as boxes). */
export function Check(props: {
  checked: boolean;
  onChange: (checked: boolean) => void;
  label: string;
  help?: string;
  disabled?: boolean;
  testId?: string;
}) {
  return (
    <label class="check" title={props.help}>
      <input
        type="checkbox"
        checked={props.checked}
        disabled={props.disabled}
        data-testid={props.testId}
        onChange={(e) => props.onChange(e.currentTarget.checked)}
      />
      <span>{props.label}</span>
      {props.help && <small class="muted check-help">{props.help}</small>}
    </label>
  );
}
