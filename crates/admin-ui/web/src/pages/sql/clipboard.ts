// Copy to the clipboard, also where the async Clipboard API is missing (plain http on a
// non-local address): a hidden textarea and the legacy copy command.
import { toast } from "../../lib/toast";

export async function copyToClipboard(text: string, what = "Copied"): Promise<boolean> {
  let ok = false;
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      ok = true;
    }
  } catch {
    ok = false;
  }
  if (!ok) {
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "clipboard-helper";
    document.body.appendChild(area);
    area.select();
    try {
      ok = document.execCommand("copy");
    } catch {
      ok = false;
    }
    area.remove();
  }
  if (ok) toast(what);
  else toast("The browser did not allow copying: select the text and copy it by hand.", "error");
  return ok;
}
