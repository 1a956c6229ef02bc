// `#/settings/logs`: how long request logs are kept and what they record.
import { href } from "../../lib/router";
import { SNumber, SSelect, SToggle, SectionFormView, useForm, useSectionForm } from "./form";

export const LOG_LEVELS = [
  { value: -4, label: "DEBUG" },
  { value: 0, label: "INFO" },
  { value: 4, label: "WARN" },
  { value: 8, label: "ERROR" },
] as const;

export function LogsSettings() {
  const form = useSectionForm("logs");
  return (
    <SectionFormView form={form} testId="settings-logs">
      <section class="card" aria-labelledby="logs-settings">
        <h2 id="logs-settings">Logs</h2>
        <LogsFields />
        <p>
          <a href={href(["logs"])}>Open the logs →</a>
        </p>
      </section>
    </SectionFormView>
  );
}

function LogsFields() {
  const form = useForm();
  const days = form.get("logs.maxDays");
  return (
    <>
      <div class="grid-2">
        <SNumber
          path="logs.maxDays"
          label="Keep logs for (days)"
          min={0}
          help={days === 0 ? "0: request logging is off." : "Older entries are deleted every 6 hours. 0 turns logging off."}
        />
        <SSelect
          path="logs.minLevel"
          label="Minimum level"
          options={LOG_LEVELS.map((l) => ({ value: l.value, label: `${l.label} (${l.value})` }))}
          help="Entries below this level are not stored. Failed requests are ERROR, others INFO."
        />
        <SNumber
          path="logs.maxDataSize"
          label="Max data size per entry (bytes)"
          min={0}
          help="Longer data is shortened. 0 means the default (16 KB)."
        />
      </div>
      <SToggle path="logs.logIP" label="Record the client's IP" />
      <SToggle path="logs.logAuthId" label="Record the signed-in record's id" />
    </>
  );
}
