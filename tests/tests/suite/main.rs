//! The end-to-end suite as one test binary: each module was a test file of its own, and each
//! of those linked the AWS SDK, axum, the dev server and the CLI again (about 40 MB apiece).
//! Tests that change what is process-wide — `personal_data` and `secrets_in_logs` install the
//! global log subscriber they read, `iam` sets environment variables for the functions' real
//! `main` — run in a process of their own (`rusty_fork_test!`: the same binary, started again
//! for that one test).

mod adding_a_provider;
mod check;
mod cli;
mod conformance;
mod dedup_keys;
mod devserver;
mod devserver_kill;
mod devserver_pages;
mod devserver_wal;
mod drift;
mod erasure;
mod faults;
mod fidelity;
mod flow_control;
mod generated;
mod hostile;
mod hot_keys;
mod iam;
mod ingest;
mod kit_cases;
mod limits;
mod no_panics;
mod personal_data;
mod processor;
mod production;
mod providers;
mod replay_events;
mod secrets_in_logs;
mod stack;
mod storm;
mod template;
mod tenants_cli;
mod trace;
mod trust;
