//! One integration-test binary, so the workspace links once.
mod aggregate;
mod bls_cli;
mod cli;
mod epoch_processing;
mod fork;
mod gpu;
mod merkle;
mod operations;
mod reference;
mod rewards;
mod sanity;
mod spec_runner;
mod ssz_static;
mod state_root;
mod transition_vectors;
