//! One integration-test binary, so the workspace links once.
mod aggregate;
mod cli;
mod gpu;
mod merkle;
mod reference;
