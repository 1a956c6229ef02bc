// `#/settings/storage`: uploaded files on the local disk or in an S3-compatible bucket. The S3
// inputs and the connection test are shared with the backups section.
import { useState } from "preact/hooks";
import { errorMessage, pb } from "../../lib/api";
import { toast } from "../../lib/toast";
import { SText, SToggle, SectionFormView, useForm, useSectionForm } from "./form";

export function StorageSettings() {
  const form = useSectionForm("storage");
  return (
    <SectionFormView form={form} testId="settings-storage">
      <section class="card" aria-labelledby="storage-s3">
        <h2 id="storage-s3">Files storage</h2>
        <p class="muted">
          Uploaded files are stored in the data directory (<code>storage</code>) unless an S3-compatible bucket is set
          here. Switching does not move the files already stored.
        </p>
        <S3Fields prefix="s3" filesystem="storage" />
      </section>
    </SectionFormView>
  );
}

/** The S3 inputs under `prefix` ("s3" or "backups.s3") and a test of the saved ones. */
export function S3Fields(props: { prefix: string; filesystem: "storage" | "backups" }) {
  const form = useForm();
  const p = (key: string) => `${props.prefix}.${key}`;
  const enabled = !!form.get(p("enabled"));
  const savedEnabled = !!form.saved && !!getSaved(form.saved, props.prefix)?.enabled;
  return (
    <>
      <SToggle path={p("enabled")} label="Use S3-compatible storage" />
      {enabled && (
        <>
          <div class="grid-2">
            <SText path={p("endpoint")} type="url" label="Endpoint" placeholder="https://s3.eu-central-1.amazonaws.com" />
            <SText path={p("bucket")} label="Bucket" />
            <SText path={p("region")} label="Region" placeholder="us-east-1" />
            <SText path={p("accessKey")} label="Access key" />
            <SText
              path={p("secret")}
              type="password"
              label="Secret"
              placeholder="Not shown; type to replace"
              help="Write-only: leave empty to keep the stored one, if any."
            />
          </div>
          <SToggle
            path={p("forcePathStyle")}
            label="Force path-style addressing"
            help="Needed by MinIO and some other S3-compatible servers (bucket in the path, not the host name)."
          />
        </>
      )}
      {(enabled || savedEnabled) && <S3Test filesystem={props.filesystem} dirty={form.dirty} enabled={savedEnabled} />}
    </>
  );
}

function getSaved(saved: Record<string, unknown>, prefix: string): Record<string, unknown> | undefined {
  let node: unknown = saved;
  for (const key of prefix.split(".")) node = (node as Record<string, unknown> | undefined)?.[key];
  return node as Record<string, unknown> | undefined;
}

function S3Test(props: { filesystem: "storage" | "backups"; dirty: boolean; enabled: boolean }) {
  const [state, setState] = useState<{ busy: boolean; result?: "ok" | string }>({ busy: false });
  const run = async () => {
    setState({ busy: true });
    try {
      await pb.settings.testS3(props.filesystem);
      setState({ busy: false, result: "ok" });
      toast("S3 connection works.");
    } catch (error) {
      setState({ busy: false, result: errorMessage(error) });
    }
  };
  return (
    <div class="s3-test">
      <div class="row">
        <button
          type="button"
          class="btn"
          disabled={state.busy || props.dirty || !props.enabled}
          onClick={run}
          data-testid={`test-s3-${props.filesystem}`}
        >
          {state.busy ? "Testing…" : "Test connection"}
        </button>
        <span class="muted">
          {props.dirty
            ? "Save first: the test uses the saved settings."
            : !props.enabled
              ? "Save with S3 switched on to test it."
              : "Writes and deletes a small test object."}
        </span>
      </div>
      {state.result === "ok" && (
        <p class="text-success" role="status">
          ✓ The bucket accepted a write and a delete.
        </p>
      )}
      {state.result && state.result !== "ok" && (
        <pre class="form-error test-error" role="alert">
          {state.result}
        </pre>
      )}
    </div>
  );
}
