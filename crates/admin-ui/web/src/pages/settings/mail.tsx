// `#/settings/mail`: the sender, the SMTP server, and a test message through the saved settings.
import { useState } from "preact/hooks";
import { errorMessage, fieldErrors, pb } from "../../lib/api";
import { collections } from "../../lib/schema";
import { useStore } from "../../lib/store";
import { toast } from "../../lib/toast";
import { Dialog } from "../../ui/dialog";
import { Field, Select, TextInput } from "../../ui/form";
import { SNumber, SSelect, SText, SToggle, SectionFormView, useSectionForm } from "./form";

const TEMPLATES = [
  { value: "verification", label: "Verification" },
  { value: "password-reset", label: "Password reset" },
  { value: "email-change", label: "Email change confirmation" },
  { value: "otp", label: "One-time password" },
  { value: "login-alert", label: "Login alert" },
] as const;

export function MailSettings() {
  const form = useSectionForm("mail");
  const [testing, setTesting] = useState(false);
  const enabled = !!form.get("smtp.enabled");
  return (
    <SectionFormView form={form} testId="settings-mail">
      <section class="card" aria-labelledby="mail-sender">
        <h2 id="mail-sender">Sender</h2>
        <div class="grid-2">
          <SText path="meta.senderName" label="Sender name" placeholder="Support" />
          <SText path="meta.senderAddress" type="email" label="Sender address" placeholder="support@example.com" />
        </div>
      </section>

      <section class="card" aria-labelledby="mail-smtp">
        <h2 id="mail-smtp">SMTP server</h2>
        <SToggle
          path="smtp.enabled"
          label="Send through an SMTP server"
          help={enabled ? undefined : "Off: no emails are sent until an SMTP server is configured."}
        />
        {enabled && (
          <>
            <div class="grid-3">
              <SText path="smtp.host" label="Host" placeholder="smtp.example.com" />
              <SNumber path="smtp.port" label="Port" min={1} max={65535} placeholder="587" />
              <SSelect
                path="smtp.tls"
                label="Encryption"
                options={[
                  { value: false, label: "STARTTLS when offered" },
                  { value: true, label: "TLS from the start (port 465)" },
                ]}
              />
              <SText path="smtp.username" label="Username" autoComplete="off" />
              <SText
                path="smtp.password"
                type="password"
                label="Password"
                placeholder="Not shown; type to replace"
                help="Write-only: leave empty to keep the stored one, if any."
              />
              <SSelect
                path="smtp.authMethod"
                label="Auth method"
                options={[
                  { value: "", label: "PLAIN (default)" },
                  { value: "PLAIN", label: "PLAIN" },
                  { value: "LOGIN", label: "LOGIN" },
                ]}
              />
            </div>
            <SText
              path="smtp.localName"
              label="Local name (EHLO)"
              placeholder="localhost"
              help="The host name announced to the server; some servers require a real one."
            />
          </>
        )}
      </section>

      <div class="card row-between">
        <span class="muted">
          {form.dirty ? "Save your changes first: the test uses the saved settings." : "Send a test email through the saved settings."}
        </span>
        <button type="button" class="btn" disabled={form.dirty} onClick={() => setTesting(true)} data-testid="test-email">
          Send test email
        </button>
      </div>
      {testing && <TestEmailDialog onClose={() => setTesting(false)} />}
    </SectionFormView>
  );
}

function TestEmailDialog(props: { onClose: () => void }) {
  const list = useStore(collections);
  const auth = list.filter((c) => c.type === "auth");
  const [email, setEmail] = useState(String(pb.authStore.record?.email ?? ""));
  const [template, setTemplate] = useState<string>("verification");
  const [collection, setCollection] = useState("_superusers");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [sending, setSending] = useState(false);

  const send = async (e?: Event) => {
    e?.preventDefault();
    setSending(true);
    setErrors({});
    try {
      await pb.settings.testEmail(collection, email.trim(), template);
      toast(`Test email sent to ${email.trim()}.`);
      props.onClose();
    } catch (error) {
      const fields = fieldErrors(error);
      setErrors(fields);
      if (!Object.keys(fields).length) setErrors({ "": errorMessage(error) });
    } finally {
      setSending(false);
    }
  };

  return (
    <Dialog
      open
      title="Send test email"
      onClose={props.onClose}
      testId="test-email-dialog"
      footer={
        <>
          <button type="button" class="btn" onClick={props.onClose}>
            Cancel
          </button>
          <button type="submit" form="test-email-form" class="btn btn-primary" disabled={sending || !email.trim()}>
            {sending ? "Sending…" : "Send"}
          </button>
        </>
      }
    >
      <form id="test-email-form" onSubmit={send}>
        <Field label="To" error={errors.email}>
          <TextInput type="email" value={email} onValue={setEmail} autoFocus placeholder="you@example.com" />
        </Field>
        <fieldset class="radio-group">
          <legend class="field-label">Template</legend>
          {TEMPLATES.map((t) => (
            <label key={t.value} class="toggle">
              <input
                type="radio"
                name="template"
                value={t.value}
                checked={template === t.value}
                onChange={() => setTemplate(t.value)}
              />
              <span>{t.label}</span>
            </label>
          ))}
          {errors.template && <small class="field-error">{errors.template}</small>}
        </fieldset>
        <Field label="Auth collection" help="Its templates are used." error={errors.collection}>
          <Select
            value={collection}
            options={(auth.length ? auth : [{ name: "_superusers" }]).map((c) => ({ value: c.name, label: c.name }))}
            onValue={setCollection}
          />
        </Field>
        {errors[""] && (
          <pre class="form-error test-error" role="alert">
            {errors[""]}
          </pre>
        )}
      </form>
    </Dialog>
  );
}
