// First run: the link `serve` prints while no superuser exists opens this page, which creates
// the first superuser with the link's one-time token and signs in as it.
import { useState } from "preact/hooks";
import { errorMessage, fieldErrors, pb, send, SUPERUSERS } from "../lib/api";
import { navigate } from "../lib/router";
import { Field } from "../ui/form";
import { Spinner } from "../ui/misc";

export function Install(props: { token: string; onSignedIn: () => void }) {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [confirmation, setConfirmation] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  const [errors, setErrors] = useState<Record<string, string>>({});

  const submit = async () => {
    setBusy(true);
    setError("");
    setErrors({});
    try {
      await send("/api/installer", {
        method: "POST",
        body: { token: props.token, email, password, passwordConfirm: confirmation },
      });
      await pb.collection(SUPERUSERS).authWithPassword(email, password);
      props.onSignedIn();
      navigate(["collections"], undefined, true);
    } catch (e) {
      const byField = fieldErrors(e);
      setErrors(byField);
      // Field problems are shown beside their inputs; the form says only that there are some.
      setError(Object.keys(byField).length ? "Fix the fields marked above." : errorMessage(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main class="center-page">
      <form
        class="card auth-card"
        aria-label="Create the first superuser"
        onSubmit={(e) => {
          e.preventDefault();
          void submit();
        }}
      >
        <div class="brand-big">Plinth</div>
        <h1>Create your first superuser</h1>
        <p class="muted">This link works once. The account can manage everything on this server.</p>
        <Field label="Email" error={errors.email}>
          <input
            type="email"
            name="email"
            required
            autoFocus
            autoComplete="username"
            value={email}
            onInput={(e) => setEmail(e.currentTarget.value)}
          />
        </Field>
        <Field label="Password" error={errors.password} help="At least 8 characters.">
          <input
            type="password"
            name="password"
            required
            minLength={8}
            autoComplete="new-password"
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
        </Field>
        <Field label="Password again" error={errors.passwordConfirm}>
          <input
            type="password"
            name="passwordConfirm"
            required
            autoComplete="new-password"
            value={confirmation}
            onInput={(e) => setConfirmation(e.currentTarget.value)}
          />
        </Field>
        {error && (
          <p class="form-error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" class="btn btn-primary btn-block" disabled={busy}>
          {busy ? <Spinner /> : "Create superuser and sign in"}
        </button>
      </form>
    </main>
  );
}
