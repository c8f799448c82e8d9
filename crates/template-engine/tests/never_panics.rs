//! Property: arbitrary `spec.vars`, vars-Secret keys/values and template text produce a result or an error,
//! never a panic.

use crd_types::ScheduledBackup;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use proptest::prelude::*;
use template_engine::{Inputs, ProcedureTemplate, builtin, desired_children};

fn sb(vars: &str) -> ScheduledBackup {
    let mut sb: ScheduledBackup = serde_saphyr::from_str(
        "apiVersion: riotkit.org/v1alpha1\nkind: ScheduledBackup\nmetadata: {name: p, namespace: n, uid: u}\nspec:\n  operation: backup\n  cronJob: {enabled: true}\n  templateRef: {kind: internal, name: pg15}\n  gpgKeySecretRef: {secretName: k}\n  tokenSecretRef: {secretName: t}\n  varsSecretRef: {secretName: v}\n",
    )
    .unwrap();
    sb.spec.vars = vars.to_string();
    sb
}

fn secret(name: &str, data: Vec<(String, Vec<u8>)>) -> Secret {
    let mut s = Secret::default();
    s.metadata.name = Some(name.into());
    s.data = Some(data.into_iter().map(|(k, v)| (k, ByteString(v))).collect());
    s
}

fn vars_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-zA-Z:{}\\[\\]\\- \\n'\"#|>.]{0,80}",
        Just("Params: {hostname: h, db: d, user: u}\nRepository: {url: x}\n".to_string()),
        Just("HelmValues: {env: {A: [1]}}".to_string()),
        Just("Params: 5\nRepository: [1]".to_string()),
    ]
}

fn key_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        "[-._a-zA-Z0-9]{1,20}",
        Just("Params.password".to_string()),
        Just("Params".to_string()),
        Just("Repository.encryptionKeyPath.x".to_string()),
        Just("HelmValues.env.X".to_string()),
        Just("HelmValues.image".to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_vars_and_secret_keys_never_panic(
        vars in vars_strategy(),
        keys in proptest::collection::vec((key_strategy(), proptest::collection::vec(any::<u8>(), 0..12)), 0..6),
    ) {
        let sb = sb(&vars);
        let t = builtin("pg15").unwrap();
        let token = secret("t", vec![("token".into(), b"tok".to_vec())]);
        let vs = secret("v", keys);
        let _ = desired_children(&Inputs { scheduled_backup: &sb, template: &t, token_secret: &token, vars_secret: Some(&vs) });
    }

    #[test]
    fn random_go_template_text_never_panics(src in "[a-zA-Z .${}#%|()\"'`\\-\\n=:,]{0,60}") {
        let sb = sb("Params: {a: 1}\nRepository: {url: x}\n");
        let t = ProcedureTemplate { name: "fuzz".into(), image: "i".into(), backup: src, restore: None, builtin: false };
        let token = secret("t", vec![("token".into(), b"tok".to_vec())]);
        let vs = secret("v", vec![]);
        let _ = desired_children(&Inputs { scheduled_backup: &sb, template: &t, token_secret: &token, vars_secret: Some(&vs) });
    }
}
