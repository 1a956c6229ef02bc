// A real SMTP server for the scenarios about mail (verification, password reset, email change,
// OTP): each server under comparison gets its own sink on a loopback port, and its `smtp`
// settings point at that sink, so both servers really deliver their messages and the scenarios
// read tokens and one-time passwords out of what arrived. The sinks live in the runner's
// process and are started lazily by the first scenario that asks for a mailbox.

import { SMTPServer } from 'smtp-server';
import { simpleParser } from 'mailparser';

const WAIT_MS = 10000;
const POLL_MS = 25;

/** One delivered message, parsed. */
export class Mail {
  constructor({ from, to, subject, html, text }) {
    this.from = from;
    this.to = to;
    this.subject = subject;
    this.html = html;
    this.text = text;
  }

  /** The first JWT in the message (the action token of a verification, reset or change mail). */
  token() {
    const m = /eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*/.exec(`${this.html}\n${this.text}`);
    if (!m) throw new Error(`no token in the mail "${this.subject}"`);
    return m[0];
  }

  /** The one-time password: the first standalone run of `length` digits in the message. */
  otp(length = 8) {
    const re = new RegExp(`(?<![0-9A-Za-z])([0-9]{${length}})(?![0-9A-Za-z])`);
    const m = re.exec(`${this.text}\n${this.html}`);
    if (!m) throw new Error(`no ${length}-digit code in the mail "${this.subject}"`);
    return m[1];
  }
}

/** An SMTP server that accepts every message (no TLS, optional AUTH) and keeps it. */
export class MailSink {
  constructor() {
    this.messages = [];
    this.port = 0;
    this.server = new SMTPServer({
      secure: false,
      authOptional: true,
      // No STARTTLS: a client told to use plain SMTP must not upgrade to a self-signed cert.
      disabledCommands: ['STARTTLS'],
      logger: false,
      onAuth: (auth, session, cb) => cb(null, { user: auth.username ?? 'anonymous' }),
      onData: (stream, session, cb) => {
        simpleParser(stream)
          .then((parsed) => {
            this.messages.push(
              new Mail({
                from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
                to: session.envelope.rcptTo.map((r) => r.address.toLowerCase()),
                subject: parsed.subject ?? '',
                html: typeof parsed.html === 'string' ? parsed.html : '',
                text: parsed.text ?? '',
              }),
            );
            cb();
          })
          .catch((e) => cb(e));
      },
    });
  }

  async start() {
    await new Promise((resolve, reject) => {
      this.server.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => resolve());
    });
    this.port = this.server.server.address().port;
    // The runner exits when its scenarios are done; an idle sink must not keep it alive.
    this.server.server.unref();
    return this;
  }

  /** Messages delivered to `to` so far, oldest first. */
  to(to) {
    const want = to.toLowerCase();
    return this.messages.filter((m) => m.to.includes(want));
  }

  /** Waits for the `index`-th message (0-based) delivered to `to`; throws after 10 s. */
  async waitFor(to, index = 0) {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      const found = this.to(to);
      if (found.length > index) return found[index];
      if (Date.now() > deadline) {
        throw new Error(`no mail #${index} to ${to} within ${WAIT_MS / 1000} s ` +
          `(${found.length} delivered to it, ${this.messages.length} in all)`);
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  /** Waits a little and returns how many messages `to` received (to check "no mail sent"). */
  async countAfter(to, ms = 300) {
    await new Promise((r) => setTimeout(r, ms));
    return this.to(to).length;
  }
}

// One sink per server base URL, configured once per run.
const sinks = new Map();

/**
 * The mailbox of the server `t` talks to: starts its sink and points the server's `smtp`
 * settings at it the first time, then returns the sink.
 */
export async function mailbox(t) {
  let entry = sinks.get(t.base);
  if (!entry) {
    entry = (async () => {
      const sink = await new MailSink().start();
      await t.su.settings.update({
        meta: { senderName: 'Compat', senderAddress: 'compat-sender@example.com' },
        smtp: {
          enabled: true,
          host: '127.0.0.1',
          port: sink.port,
          tls: false,
          authMethod: 'PLAIN',
          username: '',
          password: '',
        },
      });
      return sink;
    })();
    sinks.set(t.base, entry);
    entry.catch(() => sinks.delete(t.base));
  }
  return entry;
}
