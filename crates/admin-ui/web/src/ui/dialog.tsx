// Modal dialogs and side panels on the native <dialog> element: focus is trapped and Escape
// closes them without any code of ours.
import type { ComponentChildren } from "preact";
import { useEffect, useRef } from "preact/hooks";
import { store, useStore } from "../lib/store";

export interface DialogProps {
  open: boolean;
  title: ComponentChildren;
  onClose: () => void;
  children: ComponentChildren;
  footer?: ComponentChildren;
  /** "panel" slides in from the right (editors); "modal" is centred (confirmations). */
  variant?: "modal" | "panel";
  wide?: boolean;
  testId?: string;
}

export function Dialog(props: DialogProps) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    if (props.open && !el.open) {
      const opener = document.activeElement as HTMLElement | null;
      el.showModal();
      // Callers unmount a closed dialog, which skips the browser's own focus return: close it
      // first, then give the focus back to what opened it (the keyboard user's place).
      return () => {
        if (el.open) el.close();
        const active = document.activeElement;
        const lost = !active || active === document.body || el.contains(active) || !active.isConnected;
        if (lost && opener?.isConnected && opener !== document.body) opener.focus();
      };
    }
    if (!props.open && el.open) el.close();
  }, [props.open]);
  if (!props.open) return null;
  const variant = props.variant ?? "modal";
  return (
    <dialog
      ref={ref}
      class={`dialog dialog-${variant}${props.wide ? " dialog-wide" : ""}`}
      data-testid={props.testId}
      aria-label={typeof props.title === "string" ? props.title : undefined}
      onCancel={(e) => {
        e.preventDefault();
        props.onClose();
      }}
      onClick={(e) => {
        // A click on the backdrop (the dialog element itself) closes it.
        if (e.target === ref.current) props.onClose();
      }}
    >
      <div class="dialog-box">
        <header class="dialog-head">
          <h2>{props.title}</h2>
          <button type="button" class="btn btn-icon" aria-label="Close" onClick={props.onClose}>
            ×
          </button>
        </header>
        <div class="dialog-body">{props.children}</div>
        {props.footer && <footer class="dialog-foot">{props.footer}</footer>}
      </div>
    </dialog>
  );
}

interface ConfirmRequest {
  title: string;
  body: ComponentChildren;
  confirm: string;
  danger: boolean;
  /** When set, the user must type this text to enable the button (destructive actions). */
  typeToConfirm?: string;
  resolve: (ok: boolean) => void;
}

const pending = store<ConfirmRequest | null>(null);

/** Asks a yes/no question in a modal; resolves true on confirm. */
export function confirm(options: {
  title: string;
  body: ComponentChildren;
  confirm?: string;
  danger?: boolean;
  typeToConfirm?: string;
}): Promise<boolean> {
  return new Promise((resolve) => {
    pending.set({
      title: options.title,
      body: options.body,
      confirm: options.confirm ?? "Confirm",
      danger: options.danger ?? false,
      typeToConfirm: options.typeToConfirm,
      resolve,
    });
  });
}

/** Mounted once by the shell. */
export function ConfirmHost() {
  const request = useStore(pending);
  const typed = useRef<HTMLInputElement>(null);
  if (!request) return null;
  const close = (ok: boolean) => {
    if (ok && request.typeToConfirm && typed.current?.value !== request.typeToConfirm) return;
    pending.set(null);
    request.resolve(ok);
  };
  return (
    <Dialog
      open
      title={request.title}
      onClose={() => close(false)}
      testId="confirm"
      footer={
        <>
          <button type="button" class="btn" onClick={() => close(false)}>
            Cancel
          </button>
          <button
            type="button"
            class={`btn ${request.danger ? "btn-danger" : "btn-primary"}`}
            data-testid="confirm-ok"
            onClick={() => close(true)}
          >
            {request.confirm}
          </button>
        </>
      }
    >
      <div class="confirm-body">{request.body}</div>
      {request.typeToConfirm && (
        <label class="field">
          <span>
            Type <code>{request.typeToConfirm}</code> to confirm
          </span>
          <input ref={typed} autoFocus data-testid="confirm-type" />
        </label>
      )}
    </Dialog>
  );
}
