// `#/settings/crons`: the registered jobs with their schedules, and "Run now".
import { useEffect, useState } from "preact/hooks";
import { errorMessage, pb } from "../../lib/api";
import { href } from "../../lib/router";
import { toast } from "../../lib/toast";
import { Empty, Spinner } from "../../ui/misc";

interface CronJob {
  id: string;
  expression: string;
}

/** What the built-in jobs do. */
const KNOWN: Record<string, string> = {
  __pbDBOptimize__: "Optimizes the database (PRAGMA optimize, WAL checkpoint).",
  __pbMFACleanup__: "Deletes expired multi-factor sign-in attempts.",
  __pbOTPCleanup__: "Deletes expired one-time passwords.",
  __pbLogsCleanup__: "Deletes logs older than the logs settings allow.",
  __pbAutoBackup__: "Makes the scheduled backup.",
  __plinthFilesCleanup__: "Removes stored files that no record references any more.",
};

export function CronsSettings() {
  const [jobs, setJobs] = useState<CronJob[] | null>(null);
  const [error, setError] = useState("");
  const [running, setRunning] = useState<Record<string, boolean>>({});
  const [started, setStarted] = useState<Record<string, Date>>({});

  const load = () => {
    setError("");
    pb.crons
      .getFullList()
      .then(setJobs)
      .catch((e) => setError(errorMessage(e)));
  };
  useEffect(load, []);

  const run = async (job: CronJob) => {
    setRunning((r) => ({ ...r, [job.id]: true }));
    try {
      await pb.crons.run(job.id);
      setStarted((s) => ({ ...s, [job.id]: new Date() }));
      toast(`Started ${job.id}.`);
    } catch (e) {
      toast(errorMessage(e), "error");
    } finally {
      setRunning((r) => ({ ...r, [job.id]: false }));
    }
  };

  if (error) {
    return (
      <div class="card form-error" role="alert">
        {error}{" "}
        <button type="button" class="btn btn-small" onClick={load}>
          Retry
        </button>
      </div>
    );
  }
  if (!jobs) return <Spinner label="Loading cron jobs" />;
  return (
    <section class="card" aria-labelledby="crons-title">
      <div class="row-between">
        <h2 id="crons-title">Cron jobs</h2>
        <button type="button" class="btn btn-small" onClick={load}>
          Refresh
        </button>
      </div>
      <p class="muted">
        Jobs registered by the server and by hooks (<code>cronAdd</code>). Times are in UTC. "Run now" starts a job in
        the background; its effects show in the <a href={href(["logs"])}>logs</a> when it logs anything.
      </p>
      {!jobs.length ? (
        <Empty>No cron jobs are registered.</Empty>
      ) : (
        <div class="table-wrap">
          <table class="table crons-table" data-testid="crons">
            <thead>
              <tr>
                <th>Job</th>
                <th>Schedule</th>
                <th>
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {jobs.map((job) => (
                <tr key={job.id} data-cron={job.id}>
                  <td class="wrap">
                    <code>{job.id}</code>
                    {KNOWN[job.id] && <div class="muted small">{KNOWN[job.id]}</div>}
                  </td>
                  <td class="wrap">
                    <code>{job.expression}</code>
                    <div class="muted small">{describeCron(job.expression)}</div>
                  </td>
                  <td class="actions-cell">
                    <button
                      type="button"
                      class="btn btn-small"
                      disabled={running[job.id]}
                      onClick={() => run(job)}
                      aria-label={`Run ${job.id} now`}
                    >
                      {running[job.id] ? "Starting…" : "Run now"}
                    </button>
                    {started[job.id] && (
                      <div class="small text-success" role="status">
                        Started at {started[job.id].toLocaleTimeString()}
                      </div>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

const MACROS: Record<string, string> = {
  "@yearly": "Once a year (Jan 1, 00:00)",
  "@annually": "Once a year (Jan 1, 00:00)",
  "@monthly": "Monthly, on the 1st at 00:00",
  "@weekly": "Weekly, Sunday at 00:00",
  "@daily": "Daily at 00:00",
  "@midnight": "Daily at 00:00",
  "@hourly": "Every hour",
};

const DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

/** A plain-English reading of the common cron shapes; "" for the others. */
export function describeCron(expression: string): string {
  const text = expression.trim();
  if (MACROS[text]) return MACROS[text];
  const parts = text.split(/\s+/);
  if (parts.length !== 5) return "";
  const [min, hour, dom, month, dow] = parts;
  const num = (s: string) => /^\d+$/.test(s);
  const time = num(min) && num(hour) ? `${hour.padStart(2, "0")}:${min.padStart(2, "0")}` : "";
  const every = (s: string) => s.match(/^\*\/(\d+)$/)?.[1];
  const rest = dom === "*" && month === "*";
  if (rest && dow === "*") {
    if (min === "*" && hour === "*") return "Every minute";
    if (every(min) && hour === "*") return `Every ${every(min)} minutes`;
    if (num(min) && hour === "*") return `Every hour at minute ${min}`;
    if (num(min) && every(hour)) return `Every ${every(hour)} hours at minute ${min}`;
    if (time) return `Daily at ${time}`;
  }
  if (rest && num(dow) && time) return `Every ${DAYS[Number(dow) % 7]} at ${time}`;
  if (num(dom) && month === "*" && dow === "*" && time) return `Monthly on day ${dom} at ${time}`;
  return "";
}
