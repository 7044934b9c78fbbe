//! `webhooks check`: a correctly signed sample delivery that goes the whole way a real one
//! goes — the webhook's answer, the store, the queue, the processor — without calling the
//! provider's API or publishing anything downstream.
//!
//! The sample is an ordinary event of the provider ([`Provider::sample_delivery`]) with one
//! more top-level member, [`CHECK_FIELD`]. The processor tells a check from the stored body,
//! which the webhook verified (the signature covers it where the provider signs bodies), never
//! from anything written into a queue message.

use serde_json::{json, Value};

use crate::fetch::without_url;
use crate::key::key_of;
use crate::model::{Outcome, Record, Status};
use crate::providers::Provider;
use crate::tenants::Tenant;

/// The top-level member that marks a delivery as a check; its value is the check's id.
pub const CHECK_FIELD: &str = "webhooks_check";

/// What a sample delivery is made of: fresh values, so that each check is a new delivery.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Letters and digits: an id every provider accepts.
    pub id: String,
    /// For providers whose ids are numbers.
    pub number: u64,
    /// Now, epoch milliseconds and RFC 3339 (the caller's clock; the core formats no dates).
    pub now_ms: i64,
    pub now: String,
}

impl Sample {
    /// A sample with a random id (the OS's generator), at `now_ms` written as `now`.
    pub fn new(now_ms: i64, now: String) -> Result<Sample, String> {
        let mut bytes = [0u8; 8];
        getrandom::getrandom(&mut bytes).map_err(|e| format!("no random id: {e}"))?;
        let number = u64::from_le_bytes(bytes) % 1_000_000_000_000_000;
        Ok(Sample {
            id: format!("check{}", hex::encode(bytes)),
            number,
            now_ms,
            now,
        })
    }
}

/// A check delivery ready to be posted: the key it is stored under, its body and the headers
/// that prove it.
#[derive(Debug, Clone)]
pub struct CheckDelivery {
    pub key: String,
    pub body: String,
    pub headers: Vec<(String, String)>,
}

/// The sample delivery of `provider` for `tenant`, signed with `secret` for `url` (the
/// tenant's registered URL where it has one: that is what its signatures cover).
pub fn delivery(
    provider: &dyn Provider,
    tenant: &Tenant,
    secret: &str,
    url: &str,
    sample: &Sample,
) -> Result<CheckDelivery, String> {
    let mut body = provider.sample_delivery(tenant, sample);
    let Some(members) = body.as_object_mut() else {
        return Err(format!(
            "{}'s sample delivery is not an object",
            provider.name()
        ));
    };
    members.insert(CHECK_FIELD.into(), sample.id.clone().into());
    let body = body.to_string();
    let parsed = provider.parse(tenant, body.as_bytes()).map_err(|e| {
        format!(
            "{} tenant {}: the sample delivery does not read with the tenant's settings ({e}); \
             check the tenant's pointers, if it has any",
            provider.name(),
            tenant.id
        )
    })?;
    let signed_url = tenant.url.as_deref().unwrap_or(url);
    let headers = provider
        .auth()
        .credential_headers(tenant, secret, signed_url, body.as_bytes());
    Ok(CheckDelivery {
        key: key_of(provider.name(), &tenant.id, &parsed.dedup_suffix),
        body,
        headers,
    })
}

/// Posts `delivery` to `url` as its provider would: the answer's status and body.
pub async fn send(delivery: &CheckDelivery, url: &str) -> Result<(u16, String), String> {
    let http = crate::fetch::command_client()?;
    let mut request = http
        .post(url)
        .header("content-type", "application/json")
        .body(delivery.body.clone());
    for (name, value) in &delivery.headers {
        request = request.header(name, value);
    }
    let answer = request.send().await.map_err(|e| {
        format!(
            "the webhook at {url} did not answer ({}): is it running, and is --url right?",
            without_url(&e)
        )
    })?;
    let status = answer.status().as_u16();
    Ok((status, answer.text().await.unwrap_or_default()))
}

/// The check id of a stored record, if it is a check delivery.
pub fn check_of(record: &Record) -> Option<String> {
    if !record.body.contains(CHECK_FIELD) {
        return None;
    }
    let body: Value = serde_json::from_str(&record.body).ok()?;
    body.get(CHECK_FIELD)?.as_str().map(str::to_string)
}

/// What processing a check comes to: done, nothing fetched, nothing published.
pub fn outcome(id: &str) -> Outcome {
    let note = json!({ "check": { "id": id, "fetched": false, "published": false } });
    Outcome::Processed {
        detail: Some(note.to_string()),
    }
}

/// The hops a check passes, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hop {
    /// The webhook answered 2xx.
    Answer,
    /// The record is in the store.
    Stored,
    /// The record left `RECEIVED`: the queue took its message.
    Queued,
    /// The processor finished it as a check.
    Processed,
}

impl Hop {
    pub const ALL: [Hop; 4] = [Hop::Answer, Hop::Stored, Hop::Queued, Hop::Processed];

    pub fn as_str(self) -> &'static str {
        match self {
            Hop::Answer => "answer",
            Hop::Stored => "stored",
            Hop::Queued => "queued",
            Hop::Processed => "processed",
        }
    }
}

/// How far a check has come: when each hop was passed (epoch milliseconds), or why it cannot
/// be passed any more.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    pub sent_at_ms: i64,
    pub answered: Option<(u16, i64)>,
    pub stored_at_ms: Option<i64>,
    pub queued_at_ms: Option<i64>,
    pub processed_at_ms: Option<i64>,
    /// The hop that failed for good and why (a refused answer, a `FAILED` record).
    pub failed: Option<(Hop, String)>,
    /// The webhook answered that the record is stored but its message is not queued.
    pub not_queued_at_answer: bool,
}

impl Progress {
    pub fn new(sent_at_ms: i64) -> Progress {
        Progress {
            sent_at_ms,
            ..Progress::default()
        }
    }

    /// Notes the webhook's answer; anything but 2xx fails the check at its first hop.
    pub fn answer(&mut self, status: u16, body: &str, at_ms: i64) {
        self.answered = Some((status, at_ms));
        if !(200..300).contains(&status) {
            self.failed = Some((Hop::Answer, refusal(status, body)));
            return;
        }
        // The webhook's own answer says whether the queue took the message (the record stays
        // `RECEIVED` either way until a processor claims it); a provider answered in its own
        // form (TIMIFY's `{}`) says nothing, and the record's status is watched instead.
        let answer: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        match (answer.get("status"), answer.get("queued")) {
            (_, Some(Value::Bool(false))) => self.not_queued_at_answer = true,
            (Some(status), _) if status == "accepted" => {
                self.queued_at_ms = Some(at_ms);
            }
            _ => {}
        }
    }

    /// Notes what the store holds under the check's key at `now_ms` (`None`: nothing yet).
    pub fn observe(&mut self, record: Option<&Record>, now_ms: i64) {
        let Some(record) = record else { return };
        self.stored_at_ms.get_or_insert(record.received_at_ms);
        if record.status != Status::Received {
            // No record keeps when its message was queued: the first look that saw it is when.
            self.queued_at_ms.get_or_insert(now_ms);
        }
        match record.status {
            Status::Processed if check_of(record).is_some() && is_check_outcome(record) => {
                self.processed_at_ms = record.processed_at_ms.or(Some(now_ms));
            }
            Status::Processed => {
                self.failed = Some((
                    Hop::Processed,
                    "processed as an ordinary event (its detail is not a check's): the processor \
                     predates checks — deploy the current version"
                        .into(),
                ));
            }
            Status::Failed | Status::Quarantined => {
                let reason = record.last_error.clone().unwrap_or_default();
                self.failed = Some((
                    Hop::Processed,
                    format!("{}: {reason}", record.status.as_str()),
                ));
            }
            _ => {}
        }
    }

    /// Every hop passed.
    pub fn passed(&self) -> bool {
        self.failed.is_none() && self.processed_at_ms.is_some()
    }

    /// Nothing more will change: passed, or a hop failed for good.
    pub fn settled(&self) -> bool {
        self.passed() || self.failed.is_some()
    }

    /// When `hop` was passed, in milliseconds after the delivery was sent.
    pub fn after_ms(&self, hop: Hop) -> Option<i64> {
        let at = match hop {
            Hop::Answer => self.answered.filter(|(s, _)| (200..300).contains(s))?.1,
            Hop::Stored => self.stored_at_ms?,
            Hop::Queued => self.queued_at_ms?,
            Hop::Processed => self.processed_at_ms?,
        };
        Some(at - self.sent_at_ms)
    }

    /// The first hop not passed, with what it means and what to do: the reason a hop failed
    /// for good, else why the hop never came after `waited_s` seconds.
    pub fn first_missing(&self, waited_s: u64) -> Option<(Hop, String)> {
        if let Some(failed) = &self.failed {
            return Some(failed.clone());
        }
        let hop = Hop::ALL
            .into_iter()
            .find(|hop| self.after_ms(*hop).is_none())?;
        let why = match hop {
            Hop::Answer => "no answer from the webhook".to_string(),
            Hop::Stored => format!(
                "answered, but nothing stored under the check's key within {waited_s} s: is the \
                 command reading the table the functions write to (--stack, --table, --local)?"
            ),
            Hop::Queued if self.not_queued_at_answer => format!(
                "stored, but the webhook could not put its message in the work queue, and it was \
                 not queued within {waited_s} s: the queue is unavailable or the function may not \
                 send to it (its log says why); the sweeper enqueues the record once the queue \
                 takes messages"
            ),
            Hop::Queued => format!(
                "stored, but not seen leaving RECEIVED within {waited_s} s: its message did not \
                 reach the work queue, or no processor took it (the webhook's log and the queue's \
                 age of oldest message tell which)"
            ),
            Hop::Processed => format!(
                "queued, but not processed within {waited_s} s: is the processor running (its \
                 log, the queue's age of oldest message), or is the provider paused (webhooks … \
                 stats)?"
            ),
        };
        Some((hop, why))
    }
}

/// The detail a check's processing writes (see [`outcome`]).
fn is_check_outcome(record: &Record) -> bool {
    record
        .detail
        .as_deref()
        .and_then(|detail| serde_json::from_str::<Value>(detail).ok())
        .is_some_and(|detail| detail.get("check").is_some())
}

/// What a refused answer means, in the webhook's own words (its answers never hold a secret).
fn refusal(status: u16, body: &str) -> String {
    let said: String = body.chars().take(300).collect();
    let next = match status {
        401 => "the secret used here is not one the function accepts: compare the tenant's secrets (webhooks … tenants show) with what the function reads",
        404 => "no webhook at this URL: check --url, or the stack's webhook URL output",
        413 => "the sample is over the size limit",
        _ => "see the function's log",
    };
    format!("{status} {said} — {next}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: Status, body: &str, detail: Option<&str>) -> Record {
        Record {
            key: "p#t#k".into(),
            body: body.into(),
            status,
            received_at_ms: 1_010,
            processed_at_ms: detail.map(|_| 1_200),
            detail: detail.map(str::to_string),
            ..Record::default()
        }
    }

    #[test]
    fn a_check_is_known_by_its_stored_body_only() {
        let check = record(
            Status::Queued,
            r#"{"a": 1, "webhooks_check": "check1"}"#,
            None,
        );
        assert_eq!(check_of(&check).as_deref(), Some("check1"));
        let nested = record(Status::Queued, r#"{"data": {"webhooks_check": "x"}}"#, None);
        assert_eq!(check_of(&nested), None, "only a top-level member marks one");
        let text = record(Status::Queued, r#"{"note": "webhooks_check"}"#, None);
        assert_eq!(check_of(&text), None);
    }

    #[test]
    fn progress_names_the_first_hop_not_passed() {
        let body = r#"{"webhooks_check": "c"}"#;
        let mut progress = Progress::new(1_000);
        progress.answer(202, r#"{"status": "accepted", "queued": false}"#, 1_040);
        assert_eq!(progress.first_missing(3).unwrap().0, Hop::Stored);
        progress.observe(Some(&record(Status::Received, body, None)), 1_100);
        assert_eq!(progress.after_ms(Hop::Stored), Some(10));
        let (hop, why) = progress.first_missing(3).unwrap();
        assert_eq!(hop, Hop::Queued);
        assert!(
            why.contains("work queue") && why.contains("within 3 s"),
            "{why}"
        );
        progress.observe(Some(&record(Status::Queued, body, None)), 1_150);
        assert_eq!(progress.after_ms(Hop::Queued), Some(150));
        assert_eq!(progress.first_missing(3).unwrap().0, Hop::Processed);
        let done = record(Status::Processed, body, Some(r#"{"check": {"id": "c"}}"#));
        progress.observe(Some(&done), 1_300);
        assert!(progress.passed() && progress.settled());
        assert_eq!(progress.after_ms(Hop::Processed), Some(200));
        assert_eq!(progress.first_missing(3), None);
    }

    #[test]
    fn an_accepted_answer_is_queued_when_it_comes_and_a_silent_one_is_watched() {
        let mut accepted = Progress::new(0);
        accepted.answer(202, r#"{"status": "accepted", "id": "k"}"#, 30);
        assert_eq!(accepted.after_ms(Hop::Queued), Some(30));
        let mut silent = Progress::new(0);
        silent.answer(200, "{}", 30);
        silent.observe(Some(&record(Status::Received, "{}", None)), 40);
        let (hop, why) = silent.first_missing(5).unwrap();
        assert_eq!(hop, Hop::Queued);
        assert!(why.contains("or no processor took it"), "{why}");
    }

    #[test]
    fn a_refused_answer_or_an_ordinary_processing_fails_the_check() {
        let mut refused = Progress::new(0);
        refused.answer(401, r#"{"error":"unauthorized"}"#, 5);
        let (hop, why) = refused.first_missing(3).unwrap();
        assert_eq!(hop, Hop::Answer);
        assert!(
            why.starts_with("401") && why.contains("tenants show"),
            "{why}"
        );

        let mut fetched = Progress::new(0);
        fetched.answer(200, "", 5);
        let ordinary = record(
            Status::Processed,
            r#"{"webhooks_check": "c"}"#,
            Some(r#"{"id": 7}"#),
        );
        fetched.observe(Some(&ordinary), 10);
        assert!(fetched.settled() && !fetched.passed());
        assert_eq!(fetched.first_missing(3).unwrap().0, Hop::Processed);
    }
}
