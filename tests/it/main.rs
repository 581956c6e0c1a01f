//! One integration-test binary, so the workspace links once.
mod aggregate;
mod bls_cli;
mod cli;
mod gpu;
mod merkle;
mod reference;
mod ssz_static;
