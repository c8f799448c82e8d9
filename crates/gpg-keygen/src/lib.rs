//! gpg-keygen: makes sure every ScheduledBackup that asks for it has a usable GPG key Secret, and never
//! modifies, replaces or deletes an existing one.
//!
//! - [`keys`]: generating and validating OpenPGP key pairs (pure).
//! - [`secret`]: the layout of a generated key Secret, and the assessment of an existing one (pure).
//! - [`reconcile`]: the controller ([`run`]).
//! - [`error`]: the controller's error type.

pub mod error;
pub mod keys;
pub mod reconcile;
pub mod secret;
pub mod verdicts;

pub use error::Error;
pub use reconcile::{CONTROLLER_NAME, Config, run};
