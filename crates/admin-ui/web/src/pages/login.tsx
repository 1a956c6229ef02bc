// Superuser sign-in: password, one-time code, or both when MFA asks for a second factor.
import { useEffect, useState } from "preact/hooks";
import { ClientResponseError, errorMessage, pb, SUPERUSERS } from "../lib/api";
import { Field } from "../ui/form";
import { Spinner } from "../ui/misc";

type Step =
  | { kind: "password" }
  | { kind: "otp-email" }
  | { kind: "otp-code"; otpId: string; mfaId?: string };

interface Methods {
  password: boolean;
  otp: boolean;
}

export function Login(props: { onSignedIn: () => void }) {
  const [methods, setMethods] = useState<Methods | null>(null);
  const [step, setStep] = useState<Step>({ kind: "password" });
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [code, setCode] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");

  useEffect(() => {
    pb.collection(SUPERUSERS)
      .listAuthMethods()
      .then((m) => {
        const found = { password: m.password.enabled, otp: m.otp.enabled };
        setMethods(found);
        if (!found.password && found.otp) setStep({ kind: "otp-email" });
      })
      .catch(() => setMethods({ password: true, otp: false }));
  }, []);

  const run = async (action: () => Promise<void>) => {
    setBusy(true);
    setError("");
    try {
      await action();
    } catch (e) {
      setError(errorMessage(e));
    } finally {
      setBusy(false);
    }
  };

  const withPassword = () =>
    run(async () => {
      try {
        await pb.collection(SUPERUSERS).authWithPassword(email, password);
        props.onSignedIn();
      } catch (e) {
        // MFA: the password was right, a second factor is due (PocketBase answers 401 with
        // the id of the pending MFA session).
        const mfaId = e instanceof ClientResponseError ? e.response?.mfaId : undefined;
        if (mfaId) {
          const sent = await pb.collection(SUPERUSERS).requestOTP(email);
          setStep({ kind: "otp-code", otpId: sent.otpId, mfaId });
          return;
        }
        throw e;
      }
    });

  const requestCode = () =>
    run(async () => {
      const sent = await pb.collection(SUPERUSERS).requestOTP(email);
      setStep({ kind: "otp-code", otpId: sent.otpId });
    });

  const withCode = (otpId: string, mfaId?: string) =>
    run(async () => {
      try {
        await pb.collection(SUPERUSERS).authWithOTP(otpId, code.trim(), mfaId ? { mfaId } : {});
        props.onSignedIn();
      } catch (e) {
        const nextMfa = e instanceof ClientResponseError ? e.response?.mfaId : undefined;
        if (nextMfa && methods?.password) {
          // The code was the first factor; the password completes the sign-in.
          setStep({ kind: "password" });
          setError("Enter your password to finish signing in.");
          return;
        }
        throw e;
      }
    });

  if (!methods) {
    return (
      <main class="center-page">
        <Spinner />
      </main>
    );
  }

  return (
    <main class="center-page">
      <form
        class="card auth-card"
        aria-label="Sign in"
        onSubmit={(e) => {
          e.preventDefault();
          if (step.kind === "password") void withPassword();
          else if (step.kind === "otp-email") void requestCode();
          else void withCode(step.otpId, step.mfaId);
        }}
      >
        <div class="brand-big">Plinth</div>
        <h1>Superuser sign-in</h1>
        {step.kind !== "otp-code" && (
          <Field label="Email">
            <input
              type="email"
              name="email"
              autoComplete="username"
              required
              autoFocus
              value={email}
              onInput={(e) => setEmail(e.currentTarget.value)}
            />
          </Field>
        )}
        {step.kind === "password" && (
          <Field label="Password">
            <input
              type="password"
              name="password"
              autoComplete="current-password"
              required
              value={password}
              onInput={(e) => setPassword(e.currentTarget.value)}
            />
          </Field>
        )}
        {step.kind === "otp-code" && (
          <>
            <p class="muted">
              {step.mfaId ? "A second factor is required. " : ""}A one-time code was sent to{" "}
              <strong>{email}</strong>.
            </p>
            <Field label="One-time code">
              <input
                name="otp"
                inputMode="numeric"
                autoComplete="one-time-code"
                required
                autoFocus
                value={code}
                onInput={(e) => setCode(e.currentTarget.value)}
              />
            </Field>
          </>
        )}
        {error && (
          <p class="form-error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" class="btn btn-primary btn-block" disabled={busy}>
          {busy ? <Spinner /> : step.kind === "otp-email" ? "Send code" : "Sign in"}
        </button>
        {methods.otp && methods.password && step.kind === "password" && (
          <button type="button" class="btn btn-link" onClick={() => setStep({ kind: "otp-email" })}>
            Sign in with a one-time code instead
          </button>
        )}
        {step.kind !== "password" && methods.password && (
          <button type="button" class="btn btn-link" onClick={() => setStep({ kind: "password" })}>
            Back to password
          </button>
        )}
      </form>
    </main>
  );
}
