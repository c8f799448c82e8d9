//! Interop with GnuPG, which is what the backup Jobs run: keys generated here must import into `gpg` and
//! encrypt/decrypt a file. Skipped (with a message) where `gpg` is not installed (`apt-get install -y gnupg`).

use std::path::PathBuf;
use std::process::{Command, Output};

use crd_types::KeyAlgorithm;
use gpg_keygen::keys;

fn gpg_available() -> bool {
    Command::new("gpg")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A throwaway GNUPGHOME, removed (and its agent stopped) on drop.
struct GnupgHome(PathBuf);

impl GnupgHome {
    fn new(label: &str) -> Self {
        // Short path: gpg-agent's socket path must stay under the sun_path limit.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir = std::env::temp_dir().join(format!("gk-{label}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        GnupgHome(dir)
    }

    fn gpg(&self, args: &[&str]) -> Output {
        Command::new("gpg")
            .env("GNUPGHOME", &self.0)
            .args([
                "--batch",
                "--no-tty",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
            ])
            .args(args)
            .output()
            .unwrap()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn arg(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_string()
    }
}

impl Drop for GnupgHome {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", &self.0)
            .args(["--kill", "gpg-agent"])
            .output();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn check(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// What the backup Job does (encrypt to the public key in one keyring) and the restore Job does (decrypt with the
/// private key in another).
fn round_trip(algorithm: KeyAlgorithm) {
    if !gpg_available() {
        eprintln!("skipping GnuPG interop test: gpg is not installed (apt-get install -y gnupg)");
        return;
    }
    let email = "interop@example.org";
    let key = keys::generate(email, algorithm).unwrap();

    let backup = GnupgHome::new("b");
    std::fs::write(backup.path("key.pub"), &key.public_armored).unwrap();
    check(
        &backup.gpg(&["--import", &backup.arg("key.pub")]),
        "import public key",
    );
    let listing = backup.gpg(&["--with-colons", "--fingerprint", email]);
    check(&listing, "list keys");
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing.contains(&format!("fpr:::::::::{}:", key.fingerprint)),
        "gpg sees another fingerprint:\n{listing}"
    );
    std::fs::write(backup.path("dump.sql"), b"CREATE TABLE t (id int);\n").unwrap();
    check(
        &backup.gpg(&[
            "--trust-model",
            "always",
            "--recipient",
            email,
            "--output",
            &backup.arg("dump.sql.gpg"),
            "--encrypt",
            &backup.arg("dump.sql"),
        ]),
        "encrypt",
    );

    let restore = GnupgHome::new("r");
    std::fs::write(restore.path("key"), &key.private_armored).unwrap();
    check(
        &restore.gpg(&["--import", &restore.arg("key")]),
        "import private key",
    );
    std::fs::copy(backup.path("dump.sql.gpg"), restore.path("dump.sql.gpg")).unwrap();
    check(
        &restore.gpg(&[
            "--output",
            &restore.arg("dump.sql"),
            "--decrypt",
            &restore.arg("dump.sql.gpg"),
        ]),
        "decrypt",
    );
    assert_eq!(
        std::fs::read(restore.path("dump.sql")).unwrap(),
        b"CREATE TABLE t (id int);\n"
    );
}

#[test]
fn gnupg_imports_ed25519_keys_and_round_trips_a_file() {
    round_trip(KeyAlgorithm::Ed25519);
}

#[test]
fn gnupg_imports_rsa4096_keys_and_round_trips_a_file() {
    round_trip(KeyAlgorithm::Rsa4096);
}
