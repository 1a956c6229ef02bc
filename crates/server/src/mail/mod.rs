//! Outgoing email over SMTP with `lettre`, configured by the `smtp` and `meta` settings, and
//! PocketBase's template placeholders (`{APP_NAME}`, `{APP_URL}`, `{TOKEN}`, `{OTP}`,
//! `{ALERT_INFO}`, `{RECORD:field}`). The auth request endpoints answer before the message is
//! delivered, so delivery runs in a background task and failures are logged.

use std::time::Duration;

use domain::collection::EmailTemplate;
use domain::{Collection, Record};
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::state::SharedState;
use crate::state::settings::Settings;

/// Why a message was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("SMTP is not enabled in the settings")]
    Disabled,
    #[error("invalid address {0:?}")]
    Address(String),
    #[error("cannot build the message: {0}")]
    Build(#[from] lettre::error::Error),
    #[error("SMTP delivery failed: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
}

/// A rendered message, ready to address.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub subject: String,
    pub html: String,
}

/// Fills a template's placeholders. Record values are HTML-escaped in the body, since users
/// control them; `vars` are `(PLACEHOLDER, value)` pairs such as `("TOKEN", token)`.
pub fn render(
    template: &EmailTemplate,
    settings: &Settings,
    record: Option<&Record>,
    vars: &[(&str, &str)],
) -> Rendered {
    let fill = |text: &str, escape: bool| {
        let mut out = text
            .replace("{APP_NAME}", &settings.meta.app_name)
            .replace("{APP_URL}", settings.meta.app_url.trim_end_matches('/'));
        for (name, value) in vars {
            out = out.replace(&format!("{{{name}}}"), value);
        }
        if let Some(record) = record {
            for (field, value) in &record.data {
                if field == "password" {
                    continue;
                }
                let placeholder = format!("{{RECORD:{field}}}");
                if !out.contains(&placeholder) {
                    continue;
                }
                let text = match value {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Null => String::new(),
                    other => other.to_string(),
                };
                let text = if escape { escape_html(&text) } else { text };
                out = out.replace(&placeholder, &text);
            }
        }
        out
    };
    Rendered {
        subject: fill(&template.subject, false),
        html: fill(&template.body, true),
    }
}

/// A plain-text alternative: tags dropped, whitespace collapsed, the common entities decoded.
pub(crate) fn plain_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut tag: Option<String> = None;
    for c in html.chars() {
        match (&mut tag, c) {
            (None, '<') => tag = Some(String::new()),
            (Some(text), '>') => {
                // Links keep their target, so the plain part still carries the action URL.
                if let Some(href) = text
                    .split_once("href=\"")
                    .and_then(|(_, rest)| rest.split_once('"'))
                    .map(|(url, _)| url.to_owned())
                {
                    out.push(' ');
                    out.push_str(&href);
                }
                out.push(' ');
                tag = None;
            }
            (Some(text), c) => text.push(c),
            (None, c) => out.push(c),
        }
    }
    let collapsed = out.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Builds the message from the configured sender to `to`.
pub fn build(settings: &Settings, to: &str, rendered: &Rendered) -> Result<Message, MailError> {
    let from_address = settings
        .meta
        .sender_address
        .parse()
        .map_err(|_| MailError::Address(settings.meta.sender_address.clone()))?;
    let from = Mailbox::new(Some(settings.meta.sender_name.clone()), from_address);
    let to: Mailbox = to.parse().map_err(|_| MailError::Address(to.to_owned()))?;
    let text = plain_text(&rendered.html);
    Ok(Message::builder()
        .from(from)
        .to(to)
        .subject(rendered.subject.clone())
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(text),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(rendered.html.clone()),
                ),
        )?)
}

/// Delivers `message` with the current SMTP settings.
pub async fn send(settings: &Settings, message: Message) -> Result<(), MailError> {
    let smtp = &settings.smtp;
    if !smtp.enabled {
        return Err(MailError::Disabled);
    }
    let tls_parameters = TlsParameters::new(smtp.host.clone())?;
    let tls = if smtp.tls {
        Tls::Wrapper(tls_parameters)
    } else {
        Tls::Opportunistic(tls_parameters)
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp.host.as_str())
        .port(smtp.port)
        .tls(tls)
        .timeout(Some(Duration::from_secs(15)));
    if !smtp.local_name.is_empty() {
        builder = builder.hello_name(ClientId::Domain(smtp.local_name.clone()));
    }
    if !smtp.username.is_empty() {
        let mechanism = if smtp.auth_method.eq_ignore_ascii_case("LOGIN") {
            Mechanism::Login
        } else {
            Mechanism::Plain
        };
        builder = builder
            .credentials(Credentials::new(
                smtp.username.clone(),
                smtp.password.clone(),
            ))
            .authentication(vec![mechanism]);
    }
    builder.build().send(message).await?;
    Ok(())
}

/// Renders, builds and delivers in a background task; failures are logged, since the
/// request that caused the email has already been answered.
pub fn send_in_background(state: &SharedState, to: String, rendered: Rendered) {
    let state = state.clone();
    tokio::spawn(async move {
        let settings = match crate::settings::current(&state).await {
            Ok(settings) => settings,
            Err(error) => {
                tracing::error!(message = %error.message, "cannot load settings to send email");
                return;
            }
        };
        // Scripts' `onMailerSend` handlers see (and may change or stop) the message.
        if crate::scripts::app_ops::mailer_hooked(&state) {
            let message = crate::scripts::app_ops::message_json(&settings, &to, &rendered);
            if let Err(error) = crate::scripts::app_ops::deliver(&state, message).await {
                tracing::warn!(?error, to = %to, subject = %rendered.subject, "email not sent");
            }
            return;
        }
        let result = match build(&settings, &to, &rendered) {
            Ok(message) => send(&settings, message).await,
            Err(error) => Err(error),
        };
        if let Err(error) = result {
            tracing::warn!(%error, to = %to, subject = %rendered.subject, "email not sent");
        }
    });
}

/// The message `POST /api/settings/test/email` sends for a template name.
pub fn test_message(
    settings: &Settings,
    collection: &Collection,
    template: &str,
    to: &str,
) -> Result<Message, MailError> {
    let defaults;
    let auth = match collection.auth.as_ref() {
        Some(auth) => auth,
        None => {
            defaults = domain::collection::AuthOptions::defaults(0);
            &defaults
        }
    };
    let token = "TEST_TOKEN";
    let template_ref = match template {
        "password-reset" => &auth.reset_password_template,
        "email-change" => &auth.confirm_email_change_template,
        "otp" => &auth.otp.email_template,
        "login-alert" => &auth.auth_alert.email_template,
        _ => &auth.verification_template,
    };
    let rendered = render(
        template_ref,
        settings,
        None,
        &[
            ("TOKEN", token),
            ("OTP", "123456"),
            ("ALERT_INFO", "test location"),
        ],
    );
    build(settings, to, &rendered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_and_record_values_escaped() {
        let mut settings = Settings::default();
        settings.meta.app_name = "Demo".into();
        settings.meta.app_url = "https://demo.test/".into();
        let mut data = domain::RecordData::new();
        data.insert("id".into(), "r1".into());
        data.insert("name".into(), "<b>Eve</b>".into());
        data.insert("password".into(), "hash".into());
        let record = Record::new(data);
        let template = EmailTemplate {
            subject: "Hi {RECORD:name} from {APP_NAME}".into(),
            body: "{APP_URL}/t/{TOKEN} {RECORD:name} {RECORD:password} {OTP}".into(),
        };
        let rendered = render(&template, &settings, Some(&record), &[("TOKEN", "abc")]);
        assert_eq!(rendered.subject, "Hi <b>Eve</b> from Demo");
        assert_eq!(
            rendered.html,
            "https://demo.test/t/abc &lt;b&gt;Eve&lt;/b&gt; {RECORD:password} {OTP}"
        );
    }

    #[test]
    fn builds_a_message_from_the_configured_sender() {
        let settings = Settings::default();
        let rendered = Rendered {
            subject: "S".into(),
            html: "<p>Hello</p>".into(),
        };
        let message = build(&settings, "bob@example.com", &rendered).expect("builds");
        let text = String::from_utf8(message.formatted()).expect("utf8");
        assert!(
            text.contains("From: Support <support@example.com>"),
            "{text}"
        );
        assert!(text.contains("To: bob@example.com"), "{text}");
        assert!(matches!(
            build(&settings, "not an address", &rendered),
            Err(MailError::Address(_))
        ));
    }
}
