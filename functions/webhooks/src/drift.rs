//! `webhooks drift`: the signs of contract drift the processors noted, and the quarantined
//! deliveries per tenant.

use std::fmt::Write as _;

use serde_json::json;
use webhook_core::operate::{Drift, QUARANTINE_COUNTED};

use crate::print::{pretty, short_time, table, time};

pub(crate) fn print(out: &mut String, json: bool, drift: &Drift, quarantine_list: &str) {
    if json {
        let sightings: Vec<_> = drift
            .sightings
            .iter()
            .map(|s| {
                json!({
                    "provider": s.provider, "tenant": s.tenant, "signal": s.signal,
                    "first_seen": time(s.first_ms), "last_seen": time(s.last_ms),
                    "example_key": s.example_key,
                })
            })
            .collect();
        let quarantined: Vec<_> = drift
            .quarantined
            .iter()
            .map(|((provider, tenant), count)| {
                json!({ "provider": provider, "tenant": tenant, "count": count })
            })
            .collect();
        let answer = json!({ "sightings": sightings, "quarantined": quarantined });
        writeln!(out, "{}", pretty(&answer)).ok();
        return;
    }
    if drift.sightings.is_empty() {
        writeln!(
            out,
            "no sign of contract drift: every delivery processed so far holds what its \
             provider documents"
        )
        .ok();
    } else {
        let rows = drift
            .sightings
            .iter()
            .map(|s| {
                vec![
                    s.provider.clone(),
                    s.tenant.clone(),
                    s.signal.clone(),
                    short_time(s.first_ms),
                    short_time(s.last_ms),
                    s.example_key.clone(),
                ]
            })
            .collect();
        let header = [
            "PROVIDER",
            "TENANT",
            "SIGNAL",
            "FIRST SEEN",
            "LAST SEEN",
            "EXAMPLE",
        ];
        out.push_str(&table(&header, rows, &[]));
    }
    for ((provider, tenant), count) in &drift.quarantined {
        let more = if *count as usize >= QUARANTINE_COUNTED {
            " or more"
        } else {
            ""
        };
        writeln!(
            out,
            "quarantined: {provider} {tenant}: {count}{more} unreadable deliveries ({quarantine_list} --provider {provider})"
        )
        .ok();
    }
}
