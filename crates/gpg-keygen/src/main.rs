//! `gpg-keygen run` starts the controller; `gpg-keygen generate` prints, offline, a key Secret manifest.

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use controller_runtime::cli::RunArgs;
use crd_types::{GpgKeySecretRef, KeyAlgorithm};

#[derive(Parser)]
#[command(
    name = "gpg-keygen",
    version,
    about = "Creates GPG key Secrets for ScheduledBackups, and never modifies or replaces an existing one"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller (kubeconfig from KUBECONFIG or in-cluster).
    Run(RunArgs),
    /// Generate a key pair and print it as a Secret manifest (YAML) on stdout, without a cluster.
    ///
    /// For GitOps: seal or encrypt the output before committing it. The private key has no passphrase.
    Generate {
        /// E-mail of the key's user id (`<email> <<email>>`).
        #[arg(long)]
        email: String,
        /// Key algorithm.
        #[arg(long, value_enum, default_value_t = AlgorithmArg::Ed25519)]
        algorithm: AlgorithmArg,
        /// Secret name (spec.gpgKeySecretRef.secretName).
        #[arg(long, default_value = "backup-keys")]
        name: String,
        /// Secret namespace; omitted from the manifest when unset.
        #[arg(long)]
        namespace: Option<String>,
        /// Data key of the private key (spec.gpgKeySecretRef.privateKey).
        #[arg(long, default_value = "key")]
        private_key_key: String,
        /// Data key of the public key (spec.gpgKeySecretRef.publicKey).
        #[arg(long, default_value = "key.pub")]
        public_key_key: String,
        /// Data key of the (empty) passphrase (spec.gpgKeySecretRef.passphraseKey).
        #[arg(long, default_value = "passphrase")]
        passphrase_key: String,
    },
}

/// `--algorithm` values (the CRD's `gpgKeySecretRef.algorithm` names).
#[derive(Clone, Copy, ValueEnum)]
enum AlgorithmArg {
    /// Ed25519 signing key + Curve25519 encryption subkey (GnuPG 2.2+).
    Ed25519,
    /// RSA-4096 key + RSA-4096 encryption subkey (takes seconds).
    Rsa4096,
}

impl From<AlgorithmArg> for KeyAlgorithm {
    fn from(a: AlgorithmArg) -> Self {
        match a {
            AlgorithmArg::Ed25519 => KeyAlgorithm::Ed25519,
            AlgorithmArg::Rsa4096 => KeyAlgorithm::Rsa4096,
        }
    }
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Run(args) => return run(args),
        Command::Generate {
            email,
            algorithm,
            name,
            namespace,
            private_key_key,
            public_key_key,
            passphrase_key,
        } => {
            let reference = GpgKeySecretRef {
                secret_name: name,
                public_key: public_key_key,
                private_key: private_key_key,
                passphrase_key,
                email: Some(email.clone()),
                create_if_not_exists: false,
                algorithm: Some(algorithm.into()),
            };
            gpg_keygen::secret::generate_manifest(
                namespace.as_deref(),
                &reference,
                &email,
                algorithm.into(),
            )
            .map(|yaml| print!("{yaml}"))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: RunArgs) -> ExitCode {
    controller_runtime::runtime::main(gpg_keygen::CONTROLLER_NAME, args, |client, context| {
        gpg_keygen::run(client, context)
    })
}
