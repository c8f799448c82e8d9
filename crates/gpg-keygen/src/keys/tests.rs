use std::sync::OnceLock;

use k8s_openapi::api::core::v1::Secret;
use pgp::composed::{Message, MessageBuilder};

use super::*;

/// One Ed25519 pair shared by the tests that only read it (generation is cheap, but this keeps tests focused).
fn ed25519() -> &'static GeneratedKey {
    static KEY: OnceLock<GeneratedKey> = OnceLock::new();
    KEY.get_or_init(|| generate("backups@example.org", KeyAlgorithm::Ed25519).unwrap())
}

fn encrypt_to(public_armored: &str, plaintext: &[u8]) -> Vec<u8> {
    let (public, _) = SignedPublicKey::from_string(public_armored).unwrap();
    let subkey = public
        .public_subkeys
        .iter()
        .find(|s| is_encryption_subkey(s))
        .expect("an encryption subkey");
    let mut builder = MessageBuilder::from_bytes("", plaintext.to_vec())
        .seipd_v1(rand::thread_rng(), SymmetricKeyAlgorithm::AES256);
    builder.encrypt_to_key(rand::thread_rng(), &subkey).unwrap();
    builder.to_vec(rand::thread_rng()).unwrap()
}

fn decrypt_with(private_armored: &str, ciphertext: &[u8]) -> Result<Vec<u8>, String> {
    let (private, _) = SignedSecretKey::from_string(private_armored).unwrap();
    let mut message = Message::from_bytes(ciphertext)
        .map_err(|e| e.to_string())?
        .decrypt(&"".into(), &private)
        .map_err(|e| e.to_string())?;
    if message.is_compressed() {
        message = message.decompress().map_err(|e| e.to_string())?;
    }
    message.as_data_vec().map_err(|e| e.to_string())
}

/// The original's truncated RSA keys (armor footer cut off), base64-decoded from the shipped example Secret.
fn original_truncated_pair() -> (String, String) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/original/backup-keys.secret.yaml"
    );
    let secret: Secret = serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let data = secret.data.unwrap();
    let text = |k: &str| String::from_utf8(data[k].0.clone()).unwrap();
    (text("key.pub"), text("key"))
}

#[test]
fn generated_ed25519_keys_are_armored_and_parse_back() {
    let key = ed25519();
    assert!(
        key.private_armored
            .starts_with("-----BEGIN PGP PRIVATE KEY BLOCK-----")
    );
    assert!(
        key.private_armored
            .trim_end()
            .ends_with("-----END PGP PRIVATE KEY BLOCK-----")
    );
    assert!(
        key.public_armored
            .starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    );
    assert!(
        key.public_armored
            .trim_end()
            .ends_with("-----END PGP PUBLIC KEY BLOCK-----")
    );
    let (public, _) = SignedPublicKey::from_string(&key.public_armored).unwrap();
    let (private, _) = SignedSecretKey::from_string(&key.private_armored).unwrap();
    public.verify_bindings().unwrap();
    private.verify_bindings().unwrap();
}

#[test]
fn generated_ed25519_key_has_the_classic_gnupg_layout_and_user_id() {
    let (public, _) = SignedPublicKey::from_string(&ed25519().public_armored).unwrap();
    assert_eq!(
        public.primary_key.algorithm(),
        pgp::crypto::public_key::PublicKeyAlgorithm::EdDSALegacy
    );
    assert_eq!(public.public_subkeys.len(), 1);
    assert_eq!(
        public.public_subkeys[0].key.algorithm(),
        pgp::crypto::public_key::PublicKeyAlgorithm::ECDH
    );
    assert_eq!(public.primary_key.version(), pgp::types::KeyVersion::V4);
    let users: Vec<String> = public
        .details
        .users
        .iter()
        .map(|u| String::from_utf8_lossy(u.id.id()).into_owned())
        .collect();
    assert_eq!(users, vec!["backups@example.org <backups@example.org>"]);
}

#[test]
fn generated_public_key_matches_the_private_key() {
    let key = ed25519();
    let fingerprint = validate(&key.public_armored, &key.private_armored).unwrap();
    assert_eq!(fingerprint, key.fingerprint);
    assert_eq!(fingerprint.as_str().len(), 40);
    assert!(
        fingerprint
            .as_str()
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
    );
}

#[test]
fn message_encrypted_to_the_public_key_decrypts_with_the_private_key() {
    let key = ed25519();
    let ciphertext = encrypt_to(&key.public_armored, b"pg_dump output");
    assert_eq!(
        decrypt_with(&key.private_armored, &ciphertext).unwrap(),
        b"pg_dump output"
    );
}

#[test]
fn message_encrypted_to_one_key_does_not_decrypt_with_another() {
    let other = generate("other@example.org", KeyAlgorithm::Ed25519).unwrap();
    let ciphertext = encrypt_to(&ed25519().public_armored, b"pg_dump output");
    assert!(decrypt_with(&other.private_armored, &ciphertext).is_err());
}

#[test]
fn each_generation_mints_a_new_identity() {
    let other = generate("backups@example.org", KeyAlgorithm::Ed25519).unwrap();
    assert_ne!(other.fingerprint, ed25519().fingerprint);
}

#[test]
fn mismatched_pair_is_rejected_naming_both_fingerprints() {
    let other = generate("other@example.org", KeyAlgorithm::Ed25519).unwrap();
    let err = validate(&ed25519().public_armored, &other.private_armored).unwrap_err();
    assert_eq!(
        err,
        KeyError::Mismatch {
            public: ed25519().fingerprint.clone(),
            private: other.fingerprint.clone(),
        }
    );
    assert_eq!(err.reason(), "KeyMismatch");
}

#[test]
fn garbage_is_rejected_as_not_armored() {
    let key = ed25519();
    let err = validate("hello", &key.private_armored).unwrap_err();
    assert_eq!(
        err,
        KeyError::NotArmored {
            part: KeyPart::Public,
            header: PUBLIC_HEADER
        }
    );
    let err = validate(&key.public_armored, "").unwrap_err();
    assert_eq!(err.reason(), "KeyNotArmored");
    assert!(err.to_string().contains("private key"), "{err}");
}

#[test]
fn corrupt_armor_body_is_rejected_as_unparsable() {
    let key = ed25519();
    let corrupt = key
        .public_armored
        .replacen("\n\n", "\n\n!!!!not base64!!!!\n", 1);
    let err = validate(&corrupt, &key.private_armored).unwrap_err();
    assert_eq!(
        err,
        KeyError::Unparsable {
            part: KeyPart::Public
        }
    );
}

#[test]
fn swapped_keys_are_reported_as_swapped() {
    let key = ed25519();
    let err = validate(&key.private_armored, &key.public_armored).unwrap_err();
    assert_eq!(
        err,
        KeyError::Swapped {
            part: KeyPart::Public,
            found: KeyPart::Private
        }
    );
}

#[test]
fn truncated_keys_of_the_original_operator_are_rejected() {
    let (public, private) = original_truncated_pair();
    assert!(
        !public.contains("-----END"),
        "fixture should be the cut-off one"
    );
    let err = validate(&public, &private).unwrap_err();
    assert!(
        matches!(err, KeyError::Unparsable { .. }),
        "unexpected {err:?}"
    );
}

#[test]
fn key_without_an_encryption_subkey_is_rejected() {
    let params = SecretKeyParamsBuilder::default()
        .key_type(KeyType::Ed25519Legacy)
        .can_certify(true)
        .can_sign(true)
        .primary_user_id(user_id("sign-only@example.org"))
        .build()
        .unwrap();
    let secret = params.generate(rand::thread_rng()).unwrap();
    let private = secret.to_armored_string(ArmorOptions::default()).unwrap();
    let public = SignedPublicKey::from(secret)
        .to_armored_string(ArmorOptions::default())
        .unwrap();
    let err = validate(&public, &private).unwrap_err();
    assert!(
        matches!(err, KeyError::NoEncryptionSubkey { .. }),
        "{err:?}"
    );
}

#[test]
fn private_key_without_the_secret_encryption_subkey_is_rejected() {
    let key = ed25519();
    let (mut private, _) = SignedSecretKey::from_string(&key.private_armored).unwrap();
    // A "primary only" export: the encryption subkey's secret half is gone.
    private.secret_subkeys.clear();
    let stripped = private.to_armored_string(ArmorOptions::default()).unwrap();
    let err = validate(&key.public_armored, &stripped).unwrap_err();
    assert!(
        matches!(err, KeyError::MissingSecretSubkey { .. }),
        "{err:?}"
    );
}

#[test]
fn errors_and_debug_output_never_contain_key_material() {
    let key = ed25519();
    let debug = format!("{key:?}");
    assert!(!debug.contains("PRIVATE KEY"), "{debug}");
    assert!(debug.contains(key.fingerprint.as_str()));
    let other = generate("other@example.org", KeyAlgorithm::Ed25519).unwrap();
    let err = validate(&key.public_armored, &other.private_armored).unwrap_err();
    let body_line = other.private_armored.lines().nth(2).unwrap();
    assert!(!err.to_string().contains(body_line));
}

#[test]
fn rsa4096_pair_is_generated_validated_and_decrypts() {
    let started = std::time::Instant::now();
    let key = generate("rsa@example.org", KeyAlgorithm::Rsa4096).unwrap();
    eprintln!("RSA-4096 pair generated in {:?}", started.elapsed());
    let (public, _) = SignedPublicKey::from_string(&key.public_armored).unwrap();
    let pgp::types::PublicParams::RSA(params) = public.public_params() else {
        panic!("not an RSA key: {:?}", public.primary_key.algorithm());
    };
    // Serialised RSA parameters start with the modulus as an MPI, whose first two bytes are its bit length.
    let bytes = pgp::ser::Serialize::to_bytes(params).unwrap();
    assert_eq!(u16::from_be_bytes([bytes[0], bytes[1]]), 4096);
    assert_eq!(
        validate(&key.public_armored, &key.private_armored).unwrap(),
        key.fingerprint
    );
    let ciphertext = encrypt_to(&key.public_armored, b"restore me");
    assert_eq!(
        decrypt_with(&key.private_armored, &ciphertext).unwrap(),
        b"restore me"
    );
}
