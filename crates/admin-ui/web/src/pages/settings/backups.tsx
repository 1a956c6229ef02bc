// `#/settings/backups`: the backup files (create, upload, download, restore, delete), the
// automatic schedule, and S3 storage for backups.
import { useEffect, useRef, useState } from "preact/hooks";
import { errorMessage, fieldErrors, pb } from "../../lib/api";
import { appMeta } from "../../lib/schema";
import { toast, toastError } from "../../lib/toast";
import { Dialog, confirm } from "../../ui/dialog";
import { Field, TextInput } from "../../ui/form";
import { Empty, Spinner, formatDate } from "../../ui/misc";
import { describeCron } from "./crons";
import { SNumber, SectionFormView, useForm, useSectionForm } from "./form";
import { S3Fields } from "./storage";

interface BackupInfo {
  key: string;
  size: number;
  modified: string;
}

export function formatBytes(size: number): string {
  if (size < 1024) return `${size} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let value = size / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

export function BackupsSettings() {
  const [reloadList, setReloadList] = useState(0);
  const form = useSectionForm("backups", () => setReloadList((n) => n + 1));
  return (
    <>
      <BackupList reload={reloadList} />
      <SectionFormView form={form} testId="settings-backups">
        <section class="card" aria-labelledby="backups-schedule">
          <h2 id="backups-schedule">Automatic backups</h2>
          <Schedule />
        </section>
        <section class="card" aria-labelledby="backups-s3">
          <h2 id="backups-s3">Store backups in S3</h2>
          <p class="muted">
            Off: backups are kept in the data directory (<code>pb_data/backups</code>), on the same disk as the data.
          </p>
          <S3Fields prefix="backups.s3" filesystem="backups" />
        </section>
      </SectionFormView>
    </>
  );
}

function BackupList(props: { reload: number }) {
  const [list, setList] = useState<BackupInfo[] | null>(null);
  const [error, setError] = useState("");
  const [canBackup, setCanBackup] = useState(true);
  const [creating, setCreating] = useState(false);
  const [uploading, setUploading] = useState(false);
  const [busyKey, setBusyKey] = useState("");
  const [restoring, setRestoring] = useState("");
  const fileRef = useRef<HTMLInputElement>(null);

  const load = async () => {
    setError("");
    try {
      const [items, health] = await Promise.all([pb.backups.getFullList(), pb.health.check().catch(() => null)]);
      items.sort((a, b) => b.modified.localeCompare(a.modified) || a.key.localeCompare(b.key));
      setList(items);
      if (health) setCanBackup(health.data?.canBackup !== false);
    } catch (e) {
      setError(errorMessage(e));
    }
  };
  useEffect(() => void load(), [props.reload]);

  const download = async (key: string) => {
    setBusyKey(key);
    try {
      const token = await pb.files.getToken();
      const a = document.createElement("a");
      a.href = pb.backups.getDownloadURL(token, key);
      a.download = key;
      a.rel = "noopener";
      document.body.append(a);
      a.click();
      a.remove();
    } catch (e) {
      toastError(e);
    } finally {
      setBusyKey("");
    }
  };

  const remove = async (key: string) => {
    const ok = await confirm({
      title: "Delete backup",
      body: (
        <p>
          Delete <code>{key}</code>? This cannot be undone.
        </p>
      ),
      confirm: "Delete",
      danger: true,
    });
    if (!ok) return;
    setBusyKey(key);
    try {
      await pb.backups.delete(key);
      toast(`Deleted ${key}.`);
      await load();
    } catch (e) {
      toastError(e);
    } finally {
      setBusyKey("");
    }
  };

  const restore = async (key: string) => {
    const ok = await confirm({
      title: "Restore backup",
      body: (
        <>
          <p>
            Replace <strong>all current data</strong> (database, uploaded files, settings) with the contents of{" "}
            <code>{key}</code>?
          </p>
          <p class="muted">
            The server restarts to do it; requests fail for a few seconds. Changes made since the backup are lost
            unless you make a new backup first.
          </p>
        </>
      ),
      confirm: "Restore",
      danger: true,
      typeToConfirm: key,
    });
    if (!ok) return;
    setBusyKey(key);
    try {
      await pb.backups.restore(key);
      setRestoring(key);
    } catch (e) {
      toastError(e);
    } finally {
      setBusyKey("");
    }
  };

  const upload = async (file: File) => {
    setUploading(true);
    try {
      await pb.backups.upload({ file });
      toast(`Uploaded ${file.name}.`);
      await load();
    } catch (e) {
      const fields = fieldErrors(e);
      toast(fields.file ? `${file.name}: ${fields.file}` : errorMessage(e), "error");
    } finally {
      setUploading(false);
      if (fileRef.current) fileRef.current.value = "";
    }
  };

  return (
    <section class="card" aria-labelledby="backups-list" data-testid="backups">
      <div class="row-between">
        <h2 id="backups-list">Backups</h2>
        <div class="btn-group">
          <button type="button" class="btn btn-small" onClick={() => void load()}>
            Refresh
          </button>
          <label class={`btn btn-small${uploading ? " ops-disabled" : ""}`}>
            {uploading ? "Uploading…" : "Upload backup"}
            <input
              ref={fileRef}
              type="file"
              accept=".zip,application/zip"
              class="sr-only"
              disabled={uploading}
              onChange={(e) => {
                const file = e.currentTarget.files?.[0];
                if (file) void upload(file);
              }}
            />
          </label>
          <button
            type="button"
            class="btn btn-primary btn-small"
            disabled={!canBackup}
            onClick={() => setCreating(true)}
          >
            + New backup
          </button>
        </div>
      </div>
      <p class="muted">
        A backup is a zip of the data directory: the database, uploaded files (when stored locally) and settings.
      </p>
      {!canBackup && (
        <p class="badge badge-warn" role="status">
          A backup or restore is in progress; try again when it ends.
        </p>
      )}
      {error ? (
        <p class="form-error" role="alert">
          {error}
        </p>
      ) : !list ? (
        <Spinner label="Loading backups" />
      ) : !list.length ? (
        <Empty>No backups yet.</Empty>
      ) : (
        <div class="table-wrap">
          <table class="table backups-table">
            <thead>
              <tr>
                <th>Name</th>
                <th>Size</th>
                <th>Modified</th>
                <th>
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {list.map((b) => (
                <tr key={b.key} data-backup={b.key}>
                  <td class="wrap">
                    <code>{b.key}</code>
                  </td>
                  <td>{formatBytes(b.size)}</td>
                  <td>{formatDate(b.modified)}</td>
                  <td class="actions-cell">
                    <span class="btn-group">
                      <button
                        type="button"
                        class="btn btn-small"
                        disabled={busyKey === b.key}
                        onClick={() => void download(b.key)}
                        aria-label={`Download ${b.key}`}
                      >
                        Download
                      </button>
                      <button
                        type="button"
                        class="btn btn-small"
                        disabled={busyKey === b.key || !canBackup}
                        onClick={() => void restore(b.key)}
                        aria-label={`Restore ${b.key}`}
                      >
                        Restore
                      </button>
                      <button
                        type="button"
                        class="btn btn-small btn-outline-danger"
                        disabled={busyKey === b.key}
                        onClick={() => void remove(b.key)}
                        aria-label={`Delete ${b.key}`}
                      >
                        Delete
                      </button>
                    </span>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {creating && (
        <CreateBackupDialog
          onClose={() => setCreating(false)}
          onCreated={(name) => {
            setCreating(false);
            toast(name ? `Backup ${name} created.` : "Backup created.");
            void load();
          }}
        />
      )}
      {restoring && <RestoreProgress backupKey={restoring} />}
    </section>
  );
}

function CreateBackupDialog(props: { onClose: () => void; onCreated: (name: string) => void }) {
  const [name, setName] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const app = appMeta.get().appName;
  const example = `pb_backup_${app.toLowerCase().replace(/[^a-z0-9]+/g, "_").replace(/^_|_$/g, "")}_<date>.zip`;

  const create = async (e?: Event) => {
    e?.preventDefault();
    let value = name.trim();
    if (value && !value.endsWith(".zip")) value += ".zip";
    setBusy(true);
    setError("");
    try {
      await pb.backups.create(value);
      props.onCreated(value);
    } catch (err) {
      setError(fieldErrors(err).name ?? errorMessage(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <Dialog
      open
      title="New backup"
      onClose={() => !busy && props.onClose()}
      testId="create-backup"
      footer={
        <>
          <button type="button" class="btn" disabled={busy} onClick={props.onClose}>
            Cancel
          </button>
          <button type="submit" form="create-backup-form" class="btn btn-primary" disabled={busy}>
            {busy ? "Creating…" : "Create backup"}
          </button>
        </>
      }
    >
      <form id="create-backup-form" onSubmit={create}>
        <Field
          label="Name (optional)"
          error={error}
          help={
            <>
              Lowercase letters, digits, <code>_</code> and <code>-</code>; <code>.zip</code> is added. Empty:{" "}
              <code>{example}</code>
            </>
          }
        >
          <TextInput value={name} onValue={setName} autoFocus placeholder={example} />
        </Field>
        <p class="muted">The server stays usable while the backup is made; writes wait briefly at its start.</p>
        {busy && <Spinner label="Creating backup" />}
      </form>
    </Dialog>
  );
}

/** After a restore was accepted: waits for the server to come back, then reloads the page. */
function RestoreProgress(props: { backupKey: string }) {
  const [phase, setPhase] = useState<"restarting" | "back" | "slow">("restarting");
  useEffect(() => {
    let stopped = false;
    const started = Date.now();
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const healthy = async () => {
      try {
        const res = await fetch("/api/health", { cache: "no-store", signal: AbortSignal.timeout(2500) });
        return res.ok;
      } catch {
        return false;
      }
    };
    (async () => {
      // The old process answers until its shutdown begins: wait for it to go away (or a while).
      while (!stopped && Date.now() - started < 5000 && (await healthy())) await sleep(500);
      while (!stopped) {
        if (await healthy()) {
          setPhase("back");
          await sleep(600);
          location.reload();
          return;
        }
        if (Date.now() - started > 90_000) setPhase("slow");
        await sleep(1000);
      }
    })();
    return () => {
      stopped = true;
    };
  }, []);
  return (
    <Dialog open title="Restoring backup" onClose={() => undefined} testId="restore-progress">
      <div class="row" role="status">
        {phase !== "slow" && <Spinner />}
        <span>
          {phase === "restarting" && (
            <>
              Restoring <code>{props.backupKey}</code>: the server is restarting with the restored data…
            </>
          )}
          {phase === "back" && "The server is back. Reloading…"}
          {phase === "slow" && "The server has not come back yet. Check its output, then reload this page."}
        </span>
      </div>
      {phase === "slow" && (
        <p>
          <button type="button" class="btn" onClick={() => location.reload()}>
            Reload
          </button>
        </p>
      )}
    </Dialog>
  );
}

const PRESETS = [
  { value: "", label: "Off" },
  { value: "0 0 * * *", label: "Daily at 00:00 UTC" },
  { value: "0 */6 * * *", label: "Every 6 hours" },
  { value: "0 0 * * 0", label: "Weekly (Sunday 00:00 UTC)" },
  { value: "0 0 1 * *", label: "Monthly (1st, 00:00 UTC)" },
];

function Schedule() {
  const form = useForm();
  const cron = String(form.get("backups.cron") ?? "");
  const preset = PRESETS.some((p) => p.value === cron) ? cron : "custom";
  const described = cron ? describeCron(cron) : "";
  return (
    <>
      <div class="grid-2">
        <Field label="Schedule">
          <select
            value={preset}
            onChange={(e) => {
              const value = e.currentTarget.value;
              if (value !== "custom") form.set("backups.cron", value);
              else if (!cron) form.set("backups.cron", "0 3 * * *");
            }}
          >
            {PRESETS.map((p) => (
              <option key={p.value} value={p.value}>
                {p.label}
              </option>
            ))}
            <option value="custom">Custom cron expression…</option>
          </select>
        </Field>
        <Field
          label="Cron expression (UTC)"
          error={form.error("backups.cron")}
          help={described || "Five fields: minute hour day-of-month month day-of-week, or @daily, @weekly…"}
        >
          <TextInput
            name="backups.cron"
            value={cron}
            placeholder="Off"
            onValue={(v) => form.set("backups.cron", v.trim() === "" ? "" : v)}
          />
        </Field>
      </div>
      {cron && (
        <SNumber
          path="backups.cronMaxKeep"
          label="Automatic backups to keep"
          min={1}
          help="The oldest automatic backups (named @auto_…) are deleted beyond this number."
        />
      )}
    </>
  );
}
