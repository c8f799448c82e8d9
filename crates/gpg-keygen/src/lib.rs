//! gpg-keygen: makes sure every ScheduledBackup that asks for it has a usable GPG key Secret, and never
//! modifies, replaces or deletes an existing one.
//!
//! - [`keys`]: generating and validating OpenPGP key pairs (pure).
//! - [`secret`]: the layout of a generated key Secret, and the assessment of an existing one (pure).

pub mod keys;
pub mod secret;
