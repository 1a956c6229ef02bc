// A button that opens a small popover (a menu of actions, or the column picker). It closes on
// Escape, on a click outside, and (for menus) after an item is chosen.
import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";

export function Popover(props: {
  label: ComponentChildren;
  /** The accessible name of the button when its label is an icon. */
  ariaLabel?: string;
  title?: string;
  buttonClass?: string;
  align?: "left" | "right";
  role?: "menu" | "dialog";
  testId?: string;
  children: (close: () => void) => ComponentChildren;
}) {
  const [open, setOpen] = useState(false);
  const root = useRef<HTMLDivElement>(null);
  const button = useRef<HTMLButtonElement>(null);
  const role = props.role ?? "menu";

  useEffect(() => {
    if (!open) return;
    const onDown = (e: Event) => {
      if (root.current && !root.current.contains(e.target as Node)) setOpen(false);
    };
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "Escape") {
        // Inside a <dialog>, Escape would also close the dialog: keep it to the popover.
        e.preventDefault();
        e.stopPropagation();
        setOpen(false);
        button.current?.focus();
      }
    };
    document.addEventListener("mousedown", onDown);
    root.current?.addEventListener("keydown", onKey);
    const el = root.current;
    // Focus the first item so the keyboard can use the popover at once.
    const first = el?.querySelector<HTMLElement>(".popover [role=menuitem], .popover input, .popover button");
    first?.focus();
    return () => {
      document.removeEventListener("mousedown", onDown);
      el?.removeEventListener("keydown", onKey);
    };
  }, [open]);

  const close = () => {
    setOpen(false);
    button.current?.focus();
  };

  return (
    <div class="popover-root" ref={root}>
      <button
        ref={button}
        type="button"
        class={props.buttonClass ?? "btn"}
        aria-haspopup={role === "menu" ? "menu" : "dialog"}
        aria-expanded={open}
        aria-label={props.ariaLabel}
        title={props.title}
        data-testid={props.testId}
        onClick={() => setOpen(!open)}
      >
        {props.label}
      </button>
      {open && (
        <div
          class={`popover popover-${props.align ?? "right"}`}
          role={role}
          onKeyDown={(e) => {
            if (role !== "menu" || (e.key !== "ArrowDown" && e.key !== "ArrowUp")) return;
            e.preventDefault();
            const items = [...(e.currentTarget as HTMLElement).querySelectorAll<HTMLElement>("[role=menuitem]")];
            const at = items.indexOf(document.activeElement as HTMLElement);
            const next = e.key === "ArrowDown" ? (at + 1) % items.length : (at - 1 + items.length) % items.length;
            items[next]?.focus();
          }}
        >
          {props.children(close)}
        </div>
      )}
    </div>
  );
}

export function MenuItem(props: {
  onSelect: () => void;
  close: () => void;
  danger?: boolean;
  disabled?: boolean;
  children: ComponentChildren;
}) {
  return (
    <button
      type="button"
      role="menuitem"
      class={`menu-item${props.danger ? " menu-item-danger" : ""}`}
      disabled={props.disabled}
      onClick={() => {
        props.close();
        props.onSelect();
      }}
    >
      {props.children}
    </button>
  );
}
