// Short messages in the corner: success, or an error with the server's message.
import { errorMessage } from "./api";
import { store } from "./store";

export interface Toast {
  id: number;
  kind: "success" | "error" | "info";
  text: string;
}

export const toasts = store<Toast[]>([]);
let next = 1;

export function toast(text: string, kind: Toast["kind"] = "success", ms = 4000) {
  const id = next++;
  toasts.update((list) => [...list.slice(-4), { id, kind, text }]);
  setTimeout(() => dismiss(id), kind === "error" ? Math.max(ms, 8000) : ms);
}

export function toastError(error: unknown) {
  toast(errorMessage(error), "error");
}

export function dismiss(id: number) {
  toasts.update((list) => list.filter((t) => t.id !== id));
}
