import type { ComponentChildren } from "preact";
import { dismiss, toasts } from "../lib/toast";
import { useStore } from "../lib/store";

export function Spinner(props: { label?: string }) {
  return (
    <span class="spinner" role="status" aria-label={props.label ?? "Loading"}>
      <span />
    </span>
  );
}

export function Empty(props: { children: ComponentChildren }) {
  return <div class="empty">{props.children}</div>;
}

export function PageHeader(props: {
  title: ComponentChildren;
  crumbs?: ComponentChildren[];
  actions?: ComponentChildren;
}) {
  return (
    <header class="page-head">
      <h1>
        {props.crumbs?.map((crumb, i) => (
          <span class="crumb" key={i}>
            {crumb}
          </span>
        ))}
        <span>{props.title}</span>
      </h1>
      <div class="page-actions">{props.actions}</div>
    </header>
  );
}

export function ToastHost() {
  const list = useStore(toasts);
  return (
    <div class="toasts" aria-live="polite">
      {list.map((t) => (
        <div key={t.id} class={`toast toast-${t.kind}`} role={t.kind === "error" ? "alert" : "status"}>
          <span>{t.text}</span>
          <button type="button" class="btn btn-icon" aria-label="Dismiss" onClick={() => dismiss(t.id)}>
            ×
          </button>
        </div>
      ))}
    </div>
  );
}

/** "1–30 of 1,204" with previous/next buttons. */
export function Pager(props: {
  page: number;
  perPage: number;
  total: number;
  onPage: (page: number) => void;
}) {
  const pages = Math.max(1, Math.ceil(props.total / props.perPage));
  const first = props.total === 0 ? 0 : (props.page - 1) * props.perPage + 1;
  const last = Math.min(props.total, props.page * props.perPage);
  return (
    <nav class="pager" aria-label="Pages">
      <span>
        {first}–{last} of {props.total.toLocaleString("en")}
      </span>
      <button type="button" class="btn" disabled={props.page <= 1} onClick={() => props.onPage(props.page - 1)}>
        Previous
      </button>
      <span>
        Page {props.page} / {pages}
      </span>
      <button type="button" class="btn" disabled={props.page >= pages} onClick={() => props.onPage(props.page + 1)}>
        Next
      </button>
    </nav>
  );
}

/** A date as the server stores it ("2024-01-02 03:04:05.678Z"), shown in local time. */
export function formatDate(value: string | undefined | null): string {
  if (!value) return "";
  const date = new Date(value.replace(" ", "T"));
  if (Number.isNaN(date.getTime())) return value;
  return date.toLocaleString("sv-SE", { hour12: false }).replace("T", " ");
}

export function copyText(text: string) {
  void navigator.clipboard?.writeText(text);
}
