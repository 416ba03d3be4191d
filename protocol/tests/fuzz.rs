//! A fuzz harness, driven by proptest so that it runs in every `cargo test` for a
//! bounded number of cases (`PROPTEST_CASES` raises it for a longer run): the parsers
//! of everything the daemon reads from the network (reports, project specs and lists,
//! websocket messages from clients, URLs) and the decoder the terminal UI runs on
//! every websocket message from the daemon.
//!
//! Inputs are well-formed samples with random bytes changed, inserted and removed,
//! and arbitrary bytes. For each one: parsing never panics; what parses and validates
//! serializes and parses back to the same value; validation never repeats a secret.

use conjunction_protocol::http_url;
use conjunction_protocol::ws::{ClientMessage, ServerMessage};
use conjunction_protocol::{ProjectEntry, ProjectId, ProjectSpec, Report};
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::Serialize;

const SAMPLES: &[&str] = &[
    r#"{"project":"acme/app","state":"passed","version":"1.2.3","commit":"9f1c2e0","ref":"main","url":"https://ci.example/runs/1","summary":"ok\nall green","metadata":{"pipeline":"release","k":"v"}}"#,
    r#"{"project":"acme/app","build":"01JD3Q8Z5K2V7WQ4M6N8P0R2S4","attempt":2,"state":"failed","summary":"3 tests failed"}"#,
    r#"{"name":"Acme App","contacts":[{"name":"Ana Ortiz","email":"ana@acme.example","chat":"@ana","role":"maintainer"}],"depends_on":[{"project":"acme/lib","range":"^1.2"}],"trigger":{"kind":"webhook","url":"https://bot:SEKRETPW@ci.example/hook?x=1","secret":"SEKRETSIG"},"package":{"ecosystem":"cargo","name":"acme"}}"#,
    r#"{"id":"acme/app","name":"App","depends_on":[{"project":"acme/lib"}],"trigger":{"kind":"webhook","url":"http://127.0.0.1:8080/hook","token":"SEKRETTOK"}}"#,
    r#"{"type":"rebuild","build":"01JD3Q8Z5K2V7WQ4M6N8P0R2S4"}"#,
    r#"{"type":"hello","protocol":2,"daemon":"0.1.0"}"#,
    r#"{"type":"error","error":"invalid_message","message":"no"}"#,
    r#"{"type":"rebuild_started","build":"01JD3Q8Z5K2V7WQ4M6N8P0R2S4","attempt":2,"seq":9}"#,
    r#"{"type":"event","seq":7,"at":"2026-11-23T10:00:00.000Z","change":{"kind":"project_deleted","project":"acme/app"}}"#,
];

/// One change to a sample: at a place (a fraction of its length), replace a byte,
/// insert one, or remove one.
#[derive(Debug, Clone)]
enum Edit {
    Replace(f64, u8),
    Insert(f64, u8),
    Remove(f64),
}

fn edit() -> impl Strategy<Value = Edit> {
    // Bytes that matter to JSON and to URLs, and any byte.
    let byte = prop_oneof![
        prop::sample::select(b"{}[]\":,\\@/?#%.0123456789-tfn \n\t\x00\x7f".to_vec()),
        any::<u8>(),
    ];
    prop_oneof![
        (0.0..1.0f64, byte.clone()).prop_map(|(at, b)| Edit::Replace(at, b)),
        (0.0..1.0f64, byte).prop_map(|(at, b)| Edit::Insert(at, b)),
        (0.0..1.0f64).prop_map(Edit::Remove),
    ]
}

fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(SAMPLES),
        prop::collection::vec(edit(), 0..6),
    )
        .prop_map(|(sample, edits)| {
            let mut bytes = sample.as_bytes().to_vec();
            for e in edits {
                let place = |at: f64, len: usize| ((at * len as f64) as usize).min(len);
                match e {
                    Edit::Replace(at, b) if !bytes.is_empty() => {
                        let i = place(at, bytes.len() - 1);
                        bytes[i] = b;
                    }
                    Edit::Insert(at, b) => {
                        let i = place(at, bytes.len());
                        bytes.insert(i, b);
                    }
                    Edit::Remove(at) if !bytes.is_empty() => {
                        let i = place(at, bytes.len() - 1);
                        bytes.remove(i);
                    }
                    _ => {}
                }
            }
            bytes
        })
}

fn input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => mutated(),
        1 => prop::collection::vec(any::<u8>(), 0..256),
    ]
}

/// Parses `bytes` as `T`; what parses must serialize and parse back unchanged.
fn round_trips<T>(bytes: &[u8]) -> Option<T>
where
    T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug,
{
    let value: T = serde_json::from_slice(bytes).ok()?;
    let again = serde_json::to_vec(&value).expect("what parsed serializes");
    let back: T = serde_json::from_slice(&again).expect("what serialized parses");
    assert_eq!(
        back,
        value,
        "round trip of {}",
        String::from_utf8_lossy(bytes)
    );
    Some(value)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(20_000),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn reports_parse_validate_and_round_trip(bytes in input()) {
        if let Some(report) = round_trips::<Report>(&bytes) {
            let _ = report.validate();
        }
    }

    #[test]
    fn project_specs_and_entries_parse_validate_and_round_trip(bytes in input()) {
        let id = ProjectId::parse("acme/app").unwrap();
        if let Some(spec) = round_trips::<ProjectSpec>(&bytes) {
            match spec.validate(&id) {
                // A refusal never repeats a secret of the spec.
                Err(e) => prop_assert!(!e.message.contains("SEKRET"), "{e}"),
                // What is stored is shown without its secrets.
                Ok(()) => if let Some(view) = spec.trigger.as_ref().map(|t| t.view()) {
                    prop_assert!(!serde_json::to_string(&view).unwrap().contains("SEKRET"), "{view:?}");
                },
            }
        }
        // An entry is read through a map of JSON values; it must never panic.
        if let Ok(entry) = serde_json::from_slice::<ProjectEntry>(&bytes) {
            let _ = entry.spec.validate(&entry.id);
        }
    }

    #[test]
    fn websocket_messages_from_clients_and_from_the_daemon_decode_without_panic(bytes in input()) {
        round_trips::<ClientMessage>(&bytes);
        // What the terminal UI runs on every message from the daemon.
        let _ = serde_json::from_slice::<ServerMessage>(&bytes);
    }

    #[test]
    fn urls_parse_and_are_shown_without_credentials(raw in prop_oneof![
        "[ -~]{0,80}",
        "https?://[a-z0-9:@%./?#\\\\\\[\\]-]{0,40}",
    ]) {
        if let Ok(url) = http_url::parse("trigger.url", &raw, 2048) {
            let shown = http_url::redact(&url);
            let again = http_url::parse("trigger.url", &shown, 2048);
            prop_assert!(again.is_ok(), "{raw} shown as {shown}: {again:?}");
            let again = again.unwrap();
            prop_assert!(!http_url::has_credentials(&again), "{raw} shown as {shown}");
            prop_assert!(again.query().is_none() && again.fragment().is_none(), "{shown}");
            prop_assert_eq!(again.host_str(), url.host_str());
        }
    }
}
