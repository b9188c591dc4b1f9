//! Black-box tests against the real router on a random port.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod accounts;
mod at_rest;
mod budgets;
mod captures;
mod cli;
mod clients;
mod cluster;
mod cluster_escrow;
mod cluster_limits;
mod dashboard;
mod docs;
mod full_disk;
mod gateway;
mod health;
mod helpers;
mod keys;
mod ledger;
mod limits;
mod members;
mod metered;
mod mock;
mod money;
mod money_matrix;
mod persistence;
mod prices;
mod process;
mod providers;
mod ratelimit;
mod requires;
mod sdk;
mod shutdown;
mod surreal;
mod traces;
mod usage;
