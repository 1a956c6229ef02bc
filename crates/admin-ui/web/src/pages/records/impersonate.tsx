// Impersonate an auth record: a non-refreshable token to act as that user (for tests, support).
import { useState } from "preact/hooks";
import { errorMessage, pb, type CollectionModel, type RecordModel } from "../../lib/api";
import { toast } from "../../lib/toast";
import { Dialog } from "../../ui/dialog";
import { NumberInput } from "../../ui/form";
import { copyText, formatDate, Spinner } from "../../ui/misc";

function tokenExpiry(token: string): string {
  try {
    const payload = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    return payload.exp ? formatDate(new Date(payload.exp * 1000).toISOString()) : "";
  } catch {
    return "";
  }
}

export function ImpersonateDialog(props: { collection: CollectionModel; record: RecordModel; onClose: () => void }) {
  const defaultDuration = Number((props.collection as { authToken?: { duration?: number } }).authToken?.duration) || 0;
  const [duration, setDuration] = useState<number | null>(null);
  const [token, setToken] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");

  const generate = async () => {
    setBusy(true);
    setError("");
    try {
      const client = await pb.collection(props.collection.name).impersonate(props.record.id, duration ?? 0);
      setToken(client.authStore.token);
    } catch (e) {
      setError(errorMessage(e));
    } finally {
      setBusy(false);
    }
  };

  const who = String(props.record.email || props.record.username || props.record.id);
  return (
    <Dialog
      open
      title={`Impersonate ${who}`}
      onClose={props.onClose}
      testId="impersonate"
      footer={
        <>
          <button type="button" class="btn" onClick={props.onClose}>
            Close
          </button>
          <button type="button" class="btn btn-primary" onClick={() => void generate()} disabled={busy}>
            {busy ? <Spinner /> : token ? "Generate another" : "Generate token"}
          </button>
        </>
      }
    >
      <p class="muted">
        An auth token for this record, as if it had signed in. It cannot be refreshed; anyone holding it acts as{" "}
        <strong>{who}</strong> until it expires.
      </p>
      <label class="field">
        <span class="field-label">Duration in seconds</span>
        <NumberInput
          value={duration}
          min={0}
          step={1}
          placeholder={defaultDuration ? `${defaultDuration} (the collection's default)` : "the collection's default"}
          onValue={setDuration}
        />
      </label>
      {error && (
        <p class="form-error" role="alert">
          {error}
        </p>
      )}
      {token && (
        <div class="field">
          <span class="field-label">Token</span>
          <textarea class="code-input" readOnly rows={4} value={token} aria-label="Impersonation token" data-testid="impersonate-token" />
          <div class="row-between">
            <small class="muted">Expires {tokenExpiry(token)}. Send it as the Authorization header.</small>
            <button
              type="button"
              class="btn btn-small"
              onClick={() => {
                copyText(token);
                toast("Copied the token.", "info", 1500);
              }}
            >
              Copy
            </button>
          </div>
        </div>
      )}
    </Dialog>
  );
}
