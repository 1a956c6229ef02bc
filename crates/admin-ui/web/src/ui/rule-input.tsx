// The filter-language input used for API rules and for the records filter bar. It checks the
// text against the (possibly unsaved) collection as you type, marks an error at its position,
// and completes field names, `@request.*`, `@collection.*` and functions.
import type { CollectionModel } from "../lib/api";

export interface RuleInputProps {
  value: string;
  onValue: (value: string) => void;
  /** The collection the text is evaluated against; may be an unsaved draft. */
  collection: Partial<CollectionModel>;
  /** "rule": an API rule (superuser-only, `null` allowed by the caller); "filter": a list filter. */
  mode: "rule" | "filter";
  placeholder?: string;
  /** Called on Enter without Shift (the filter bar applies the filter). */
  onSubmit?: () => void;
  id?: string;
  name?: string;
  "aria-label"?: string;
}

export function RuleInput(props: RuleInputProps) {
  return (
    <textarea
      id={props.id}
      name={props.name}
      class="code-input"
      rows={props.mode === "filter" ? 1 : 2}
      aria-label={props["aria-label"]}
      placeholder={props.placeholder}
      value={props.value}
      onInput={(e) => props.onValue(e.currentTarget.value)}
      onKeyDown={(e) => {
        if (e.key === "Enter" && !e.shiftKey && props.onSubmit) {
          e.preventDefault();
          props.onSubmit();
        }
      }}
    />
  );
}
