//! OpenPGP key pairs: generation (what the original operator produced) and validation of a stored pair.
//!
//! Pure functions, no Kubernetes. Key material never leaves this module in an error message or a `Debug`
//! string: errors name which half of the pair is at fault and why, never its content.

use std::fmt;

use crd_types::KeyAlgorithm;
use pgp::composed::{
    ArmorOptions, Deserializable, EncryptionCaps, KeyType, SecretKeyParamsBuilder, SignedPublicKey,
    SignedPublicSubKey, SignedSecretKey, SubkeyParamsBuilder,
};
use pgp::crypto::ecc_curve::ECCCurve;
use pgp::crypto::hash::HashAlgorithm;
use pgp::crypto::sym::SymmetricKeyAlgorithm;
use pgp::packet::KeyFlags;
use pgp::types::{CompressionAlgorithm, KeyDetails};

/// Upper-case hex fingerprint of an OpenPGP primary key (40 characters for the v4 keys generated here).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// The upper-case hex form, as `gpg --fingerprint` prints it (without spaces).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn of(key: &impl KeyDetails) -> Self {
        Fingerprint(format!("{:X}", key.fingerprint()))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which half of a key pair an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyPart {
    /// The armored public key (certificate).
    Public,
    /// The armored private key (transferable secret key).
    Private,
}

impl fmt::Display for KeyPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyPart::Public => "public key",
            KeyPart::Private => "private key",
        })
    }
}

/// Why a key pair could not be generated, or why a stored pair is unusable.
///
/// Messages never contain key material; they are safe for logs, Events and status conditions.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// rPGP failed to generate or self-sign the key (should not happen with valid parameters).
    #[error("cannot generate a {algorithm} key pair: {detail}")]
    Generation {
        /// Requested algorithm (wire name).
        algorithm: &'static str,
        /// rPGP's error text (contains no key material: nothing was generated).
        detail: String,
    },
    /// Serialising the generated key as ASCII armor failed.
    #[error("cannot armor the generated {part}")]
    Armor {
        /// Which half failed.
        part: KeyPart,
    },
    /// The value is not an ASCII-armored OpenPGP block of the right kind.
    #[error(
        "the {part} is not an ASCII-armored OpenPGP {part} block (expected a line '-----BEGIN PGP {header}-----')"
    )]
    NotArmored {
        /// Which half.
        part: KeyPart,
        /// The armor header that was expected.
        header: &'static str,
    },
    /// The public and the private key are stored under each other's names.
    #[error(
        "the {part} holds a {found} block: the public and private keys look swapped between the data keys"
    )]
    Swapped {
        /// Which half holds the wrong block.
        part: KeyPart,
        /// What was found instead.
        found: KeyPart,
    },
    /// The armor is present but the content does not parse (cut-off armor, corrupt packets).
    #[error(
        "the {part} does not parse as an OpenPGP key (cut-off or corrupt armor, e.g. a missing '-----END' line)"
    )]
    Unparsable {
        /// Which half.
        part: KeyPart,
    },
    /// The key parses but its self-signatures (user id and subkey bindings) do not verify.
    #[error("the {part} has invalid self-signatures (user id or subkey bindings do not verify)")]
    BadSelfSignatures {
        /// Which half.
        part: KeyPart,
    },
    /// The two keys have different primary keys.
    #[error(
        "the public key (fingerprint {public}) does not belong to the private key (fingerprint {private})"
    )]
    Mismatch {
        /// Fingerprint of the public key.
        public: Fingerprint,
        /// Fingerprint of the private key.
        private: Fingerprint,
    },
    /// Nothing to encrypt backups to.
    #[error(
        "key {fingerprint} has no subkey capable of encryption, so backups cannot be encrypted to it"
    )]
    NoEncryptionSubkey {
        /// Fingerprint of the primary key.
        fingerprint: Fingerprint,
    },
    /// The public key has an encryption subkey whose secret half the private key lacks, so backups encrypted to
    /// it could never be restored.
    #[error(
        "the private key lacks the secret part of encryption subkey {subkey}, so backups encrypted to the public key could not be decrypted"
    )]
    MissingSecretSubkey {
        /// Fingerprint of the subkey.
        subkey: Fingerprint,
    },
}

impl KeyError {
    /// Stable CamelCase label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            KeyError::Generation { .. } => "KeyGenerationFailed",
            KeyError::Armor { .. } => "KeyArmorFailed",
            KeyError::NotArmored { .. } => "KeyNotArmored",
            KeyError::Swapped { .. } => "KeysSwapped",
            KeyError::Unparsable { .. } => "KeyUnparsable",
            KeyError::BadSelfSignatures { .. } => "KeyBadSelfSignatures",
            KeyError::Mismatch { .. } => "KeyMismatch",
            KeyError::NoEncryptionSubkey { .. } => "NoEncryptionSubkey",
            KeyError::MissingSecretSubkey { .. } => "MissingSecretSubkey",
        }
    }
}

/// A freshly generated, unprotected key pair.
#[derive(Clone)]
pub struct GeneratedKey {
    /// ASCII-armored transferable secret key (no passphrase).
    pub private_armored: String,
    /// ASCII-armored public key.
    pub public_armored: String,
    /// Fingerprint of the primary key.
    pub fingerprint: Fingerprint,
    /// What was generated.
    pub algorithm: KeyAlgorithm,
}

/// Hand-written so that a stray `{:?}` can never print the private key.
impl fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("fingerprint", &self.fingerprint)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// The user id the original operator gave its keys: the e-mail is also the name (`a@b <a@b>`).
pub fn user_id(email: &str) -> String {
    format!("{email} <{email}>")
}

/// Generates a key pair for `email`: a certify+sign primary key and one encryption subkey, no expiry and no
/// passphrase (like the original; the Jobs run non-interactively).
///
/// Ed25519 is the classic GnuPG "ed25519/cv25519" pair (legacy EdDSA + ECDH Curve25519), readable by GnuPG 2.2+;
/// RSA-4096 takes seconds, so callers on an async runtime must use `spawn_blocking`.
pub fn generate(email: &str, algorithm: KeyAlgorithm) -> Result<GeneratedKey, KeyError> {
    let (primary_type, subkey_type) = match algorithm {
        KeyAlgorithm::Ed25519 => (
            KeyType::Ed25519Legacy,
            KeyType::ECDH(ECCCurve::Curve25519Legacy),
        ),
        KeyAlgorithm::Rsa4096 => (KeyType::Rsa(4096), KeyType::Rsa(4096)),
    };
    let generation_error = |detail: String| KeyError::Generation {
        algorithm: algorithm.as_str(),
        detail,
    };

    let subkey = SubkeyParamsBuilder::default()
        .key_type(subkey_type)
        .can_encrypt(EncryptionCaps::All)
        .build()
        .map_err(|e| generation_error(e.to_string()))?;
    // Without preference subpackets GnuPG falls back to its implicit defaults (3DES/SHA-1 in older versions);
    // these match what the original's go-crypto advertised (AES-256, SHA-256, zlib first).
    let params = SecretKeyParamsBuilder::default()
        .key_type(primary_type)
        .can_certify(true)
        .can_sign(true)
        .primary_user_id(user_id(email))
        .preferred_symmetric_algorithms(
            vec![
                SymmetricKeyAlgorithm::AES256,
                SymmetricKeyAlgorithm::AES192,
                SymmetricKeyAlgorithm::AES128,
            ]
            .into(),
        )
        .preferred_hash_algorithms(
            vec![
                HashAlgorithm::Sha256,
                HashAlgorithm::Sha384,
                HashAlgorithm::Sha512,
            ]
            .into(),
        )
        .preferred_compression_algorithms(
            vec![CompressionAlgorithm::ZLIB, CompressionAlgorithm::ZIP].into(),
        )
        .subkey(subkey)
        .build()
        .map_err(|e| generation_error(e.to_string()))?;
    let secret = params
        .generate(rand::thread_rng())
        .map_err(|e| generation_error(e.to_string()))?;

    let private_armored = secret
        .to_armored_string(ArmorOptions::default())
        .map_err(|_| KeyError::Armor {
            part: KeyPart::Private,
        })?;
    let fingerprint = Fingerprint::of(&secret.primary_key);
    let public_armored = SignedPublicKey::from(secret)
        .to_armored_string(ArmorOptions::default())
        .map_err(|_| KeyError::Armor {
            part: KeyPart::Public,
        })?;
    Ok(GeneratedKey {
        private_armored,
        public_armored,
        fingerprint,
        algorithm,
    })
}

const PUBLIC_HEADER: &str = "PUBLIC KEY BLOCK";
const PRIVATE_HEADER: &str = "PRIVATE KEY BLOCK";

/// Checks that `public_armored` and `private_armored` form a usable pair and returns the primary fingerprint.
///
/// Usable means: both are armored OpenPGP keys of the right kind whose self-signatures verify, they share the
/// primary key, the public key has at least one encryption-capable subkey, and the private key holds the secret
/// part of every such subkey (otherwise a backup could be encrypted to a subkey nobody can decrypt).
/// A passphrase-protected private key is accepted: the passphrase is the Job's business.
pub fn validate(public_armored: &str, private_armored: &str) -> Result<Fingerprint, KeyError> {
    check_armor(public_armored, KeyPart::Public)?;
    check_armor(private_armored, KeyPart::Private)?;

    let (public, _) =
        SignedPublicKey::from_string(public_armored).map_err(|_| KeyError::Unparsable {
            part: KeyPart::Public,
        })?;
    let (private, _) =
        SignedSecretKey::from_string(private_armored).map_err(|_| KeyError::Unparsable {
            part: KeyPart::Private,
        })?;
    public
        .verify_bindings()
        .map_err(|_| KeyError::BadSelfSignatures {
            part: KeyPart::Public,
        })?;
    private
        .verify_bindings()
        .map_err(|_| KeyError::BadSelfSignatures {
            part: KeyPart::Private,
        })?;

    let public_fingerprint = Fingerprint::of(&public.primary_key);
    let private_fingerprint = Fingerprint::of(&private.primary_key);
    // The fingerprint is a hash over the public key material, so equal fingerprints mean equal primary keys.
    if public_fingerprint != private_fingerprint {
        return Err(KeyError::Mismatch {
            public: public_fingerprint,
            private: private_fingerprint,
        });
    }

    let encryption_subkeys: Vec<&SignedPublicSubKey> = public
        .public_subkeys
        .iter()
        .filter(|s| is_encryption_subkey(s))
        .collect();
    if encryption_subkeys.is_empty() {
        return Err(KeyError::NoEncryptionSubkey {
            fingerprint: public_fingerprint,
        });
    }
    for subkey in encryption_subkeys {
        let wanted = subkey.key.fingerprint();
        let held = private
            .secret_subkeys
            .iter()
            .any(|s| s.key.fingerprint() == wanted);
        if !held {
            return Err(KeyError::MissingSecretSubkey {
                subkey: Fingerprint::of(&subkey.key),
            });
        }
    }
    Ok(public_fingerprint)
}

/// An encryption-capable subkey: an encryption algorithm, and binding signatures that allow encryption (a
/// binding without key flags leaves the algorithm to decide, as GnuPG does).
fn is_encryption_subkey(subkey: &SignedPublicSubKey) -> bool {
    if !subkey.key.algorithm().can_encrypt() {
        return false;
    }
    let no_flags = KeyFlags::default();
    let mut flagged = subkey
        .signatures
        .iter()
        .map(|sig| sig.key_flags())
        .filter(|flags| *flags != no_flags)
        .peekable();
    flagged.peek().is_none() || flagged.any(|f| f.encrypt_comms() || f.encrypt_storage())
}

/// Cheap structural checks before parsing, for precise messages: armor present, and of the right kind.
fn check_armor(value: &str, part: KeyPart) -> Result<(), KeyError> {
    let (expected, other, other_part) = match part {
        KeyPart::Public => (PUBLIC_HEADER, PRIVATE_HEADER, KeyPart::Private),
        KeyPart::Private => (PRIVATE_HEADER, PUBLIC_HEADER, KeyPart::Public),
    };
    let first_line = value
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default();
    if first_line == format!("-----BEGIN PGP {expected}-----") {
        return Ok(());
    }
    if first_line == format!("-----BEGIN PGP {other}-----") {
        return Err(KeyError::Swapped {
            part,
            found: other_part,
        });
    }
    Err(KeyError::NotArmored {
        part,
        header: expected,
    })
}

#[cfg(test)]
mod tests;
