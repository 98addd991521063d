//! The node's integration tests: real HTTP against real banks on 127.0.0.1 (port 0, fresh temp
//! directory each), in-process for the API and as `bankd` processes for crashes.

mod helpers;

mod abuse;
mod accounts;
mod adversarial;
mod concurrency;
mod crash;
mod customers;
mod directory;
mod idempotency;
mod migration;
mod payments;
mod pix;
mod postgres;
mod tls;
mod writer;
