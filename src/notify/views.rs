//! What the outbox pages show: one `Serialize` struct per page context,
//! field for field the keys the templates read.

use serde::Serialize;

use crate::web::format::Moment;

/// `/outbox`: the newest messages of the file outbox.
#[derive(Debug, Serialize)]
pub struct Outbox {
    pub messages: Vec<Message>,
    pub demo: bool,
}

/// `/outbox/<id>`: one message.
#[derive(Debug, Serialize)]
pub struct OneMessage {
    pub message: Message,
}

/// A message of the outbox as the pages show it.
#[derive(Debug, Serialize)]
pub struct Message {
    pub id: String,
    pub to: String,
    pub subject: String,
    /// When it was written, from its `Date` header (`None` without one).
    pub date: Option<Moment>,
    pub text: String,
    /// Links found in the text, so they can be followed with one click.
    pub links: Vec<String>,
}

impl From<super::OutboxMessage> for Message {
    fn from(m: super::OutboxMessage) -> Message {
        let date = chrono::DateTime::parse_from_rfc3339(&m.date).ok().map(|d| Moment(d.naive_utc()));
        Message { id: m.id, to: m.to, subject: m.subject, date, text: m.text, links: m.links }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_reads_its_date_in_the_one_format_in_utc() {
        let m = super::super::OutboxMessage {
            id: "1".into(),
            to: "a@example.org".into(),
            subject: "Hi".into(),
            date: "2026-12-07T15:03:00+01:00".into(),
            text: String::new(),
            links: Vec::new(),
        };
        let shown = serde_json::to_value(Message::from(m.clone())).unwrap();
        assert_eq!(shown["date"], "7 Dec 2026, 14:03 UTC");
        let undated =
            serde_json::to_value(Message::from(super::super::OutboxMessage { date: String::new(), ..m })).unwrap();
        assert!(undated["date"].is_null());
    }
}
