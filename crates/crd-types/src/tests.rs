//! Wire compatibility with the original manifests, schema structure, and the CEL admission rules.

use kube::CustomResourceExt;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/original");

fn fixture(name: &str) -> Value {
    let text = std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{name} is not YAML: {e}"))
}

fn typed<K: DeserializeOwned>(value: &Value) -> K {
    serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("does not deserialise: {e}"))
}

/// The openAPIV3Schema of a CRD turned into a JSON schema that is as strict as the apiserver's pruning:
/// `nullable` becomes a null type, and objects with declared properties reject unknown ones (the apiserver
/// would silently drop them, which for a user means a setting that never takes effect).
fn strict_schema(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Value {
    fn tighten(schema: &mut Value) {
        let Some(object) = schema.as_object_mut() else {
            return;
        };
        if object.remove("nullable") == Some(Value::Bool(true))
            && let Some(Value::String(t)) = object.get("type").cloned()
        {
            object.insert("type".into(), json!([t, "null"]));
        }
        if object.contains_key("properties") && !object.contains_key("additionalProperties") {
            object.insert("additionalProperties".into(), Value::Bool(false));
        }
        for key in ["properties"] {
            if let Some(Value::Object(props)) = object.get_mut(key) {
                props.values_mut().for_each(tighten);
            }
        }
        for key in ["items", "additionalProperties"] {
            if let Some(child) = object.get_mut(key) {
                tighten(child);
            }
        }
    }
    let mut schema = serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap();
    tighten(&mut schema);
    // apiVersion/kind/metadata are validated by the apiserver itself.
    schema["properties"]["metadata"] = json!({"type": "object"});
    schema["properties"]["apiVersion"] = json!({"type": "string"});
    schema["properties"]["kind"] = json!({"type": "string"});
    schema
}

fn assert_valid_against_crd<K: CustomResourceExt>(value: &Value) {
    let schema = strict_schema(&K::crd());
    let validator = jsonschema::draft4::new(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{} does not validate against its CRD: {errors:#?}",
        K::crd_name()
    );
}

#[test]
fn original_scheduled_backup_example_is_accepted_unchanged() {
    let value = fixture("scheduledbackup.yaml");
    let sb: ScheduledBackup = typed(&value);
    assert_eq!(sb.spec.operation, Operation::Backup);
    assert!(sb.spec.cron_job.enabled);
    assert_eq!(
        sb.spec.cron_job.schedule_every.as_deref(),
        Some("00 02 * * *")
    );
    assert_eq!(
        sb.spec.template_ref.template_kind(),
        Ok(TemplateKind::ClusterBackupProcedureTemplate)
    );
    assert_eq!(sb.spec.gpg_key_secret_ref.private_key_name(), "private");
    assert_eq!(
        sb.spec.vars_secret_ref.as_ref().unwrap().import_only_keys,
        ["Params.password"]
    );
    assert!(sb.spec.vars.contains("collectionId: \"iwa-ait\""));
    assert_valid_against_crd::<ScheduledBackup>(&value);
    sb.validate_cel()
        .expect("the original example passes the CEL rules");
}

#[test]
fn original_template_example_is_accepted_unchanged() {
    let value = fixture("pg13.yaml");
    let template: ClusterBackupProcedureTemplate = typed(&value);
    assert_eq!(
        template.spec.image,
        "ghcr.io/riotkit-org/pgbr:latest-pg13.2"
    );
    assert!(
        template
            .spec
            .restore
            .as_deref()
            .unwrap()
            .contains("--version=${selectedVersion}")
    );
    assert_valid_against_crd::<ClusterBackupProcedureTemplate>(&value);
    template.validate_cel().unwrap();
}

#[test]
fn original_action_examples_are_accepted_unchanged() {
    for (file, action, target) in [
        ("triggered-backup.yaml", Operation::Backup, None),
        ("restore-scenario/1-backup.yaml", Operation::Backup, None),
        (
            "restore-scenario/2-restore.yaml",
            Operation::Restore,
            Some("v1"),
        ),
    ] {
        let value = fixture(file);
        let rba: RequestedBackupAction = typed(&value);
        assert_eq!(rba.spec.action, action, "{file}");
        assert_eq!(rba.spec.target_version.as_deref(), target, "{file}");
        assert_eq!(
            rba.spec.kind_type,
            KindType::Job,
            "{file}: kindType defaults to Job"
        );
        assert_eq!(rba.spec.scheduled_backup_ref.name, "app1");
        assert_valid_against_crd::<RequestedBackupAction>(&value);
        rba.validate_cel().unwrap_or_else(|e| panic!("{file}: {e}"));
    }
}

#[test]
fn unknown_fields_are_caught_by_the_schema_check() {
    // Proves the strict schema check above can fail: a typo must not pass silently.
    let mut value = fixture("scheduledbackup.yaml");
    value["spec"]["cronJob"]["sheduleEvery"] = json!("0 3 * * *");
    let schema = strict_schema(&ScheduledBackup::crd());
    assert!(!jsonschema::draft4::new(&schema).unwrap().is_valid(&value));
}

fn sb_with(patch: impl FnOnce(&mut Value)) -> ScheduledBackup {
    let mut value = fixture("scheduledbackup.yaml");
    patch(&mut value);
    typed(&value)
}

fn cel_error(result: Result<(), kube::core::cel::ValidationErrors>) -> String {
    result.expect_err("CEL rules must reject this").to_string()
}

#[test]
fn cel_rejects_a_template_kind_typo_with_a_message() {
    let sb = sb_with(|v| v["spec"]["templateRef"]["kind"] = json!("ClusterBackupProcedureTemplat"));
    assert!(cel_error(sb.validate_cel()).contains("spec.templateRef.kind must be 'internal'"));
    let sb = sb_with(|v| v["spec"]["templateRef"]["kind"] = json!("internal"));
    sb.validate_cel().unwrap();
}

#[test]
fn cel_rejects_empty_names() {
    let sb = sb_with(|v| v["spec"]["templateRef"]["name"] = json!(""));
    assert!(cel_error(sb.validate_cel()).contains("spec.templateRef.name must not be empty"));
    let sb = sb_with(|v| v["spec"]["gpgKeySecretRef"]["secretName"] = json!(""));
    assert!(
        cel_error(sb.validate_cel()).contains("spec.gpgKeySecretRef.secretName must not be empty")
    );
    let sb = sb_with(|v| v["spec"]["tokenSecretRef"]["secretName"] = json!(""));
    assert!(
        cel_error(sb.validate_cel()).contains("spec.tokenSecretRef.secretName must not be empty")
    );
}

#[test]
fn cel_requires_a_schedule_when_the_cronjob_is_enabled() {
    let sb = sb_with(|v| v["spec"]["cronJob"]["scheduleEvery"] = json!(""));
    assert!(cel_error(sb.validate_cel()).contains("spec.cronJob.scheduleEvery is required"));
    let sb = sb_with(|v| {
        v["spec"]["cronJob"]["scheduleEvery"] = json!("");
        v["spec"]["cronJob"]["enabled"] = json!(false);
    });
    sb.validate_cel()
        .expect("a disabled CronJob needs no schedule");
}

#[test]
fn cel_rejects_cron_tz_prefixes() {
    let sb = sb_with(|v| {
        v["spec"]["cronJob"]["scheduleEvery"] = json!("CRON_TZ=Europe/Berlin 0 2 * * *")
    });
    assert!(cel_error(sb.validate_cel()).contains("spec.cronJob.timeZone"));
}

#[test]
fn cel_accepts_spread_schedules_and_rejects_h_outside_minute_and_hour() {
    for ok in [
        "H 2 * * *",
        "H H * * 0",
        "H/15 * * * *",
        "@daily-random",
        "0 0 * * THU",
    ] {
        sb_with(|v| v["spec"]["cronJob"]["scheduleEvery"] = json!(ok))
            .validate_cel()
            .unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for bad in ["0 0 H * *", "0 0 * H *", "H H * * H"] {
        let sb = sb_with(|v| v["spec"]["cronJob"]["scheduleEvery"] = json!(bad));
        let e = cel_error(sb.validate_cel());
        assert!(
            e.contains("spec.cronJob.scheduleEvery accepts H only in the minute and hour fields"),
            "{bad}: {e}"
        );
    }
}

#[test]
fn cel_rejects_an_overdue_after_that_is_not_a_positive_duration() {
    for ok in ["26h", "90m", "1h30m", "45s"] {
        sb_with(|v| v["spec"]["cronJob"]["overdueAfter"] = json!(ok))
            .validate_cel()
            .unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for bad in ["0s", "0h0m", "1d", "soon", "", "-1h", "30m1h"] {
        let sb = sb_with(|v| v["spec"]["cronJob"]["overdueAfter"] = json!(bad));
        let e = cel_error(sb.validate_cel());
        assert!(
            e.contains("spec.cronJob.overdueAfter must be a positive duration"),
            "{bad}: {e}"
        );
        // The controller's parser agrees with the admission rule.
        assert!(schedule::parse_overdue_after(bad).is_err(), "{bad}");
    }
}

#[test]
fn cel_rejects_a_starting_deadline_under_ten_seconds() {
    let sb = sb_with(|v| v["spec"]["cronJob"]["startingDeadlineSeconds"] = json!(5));
    assert!(
        cel_error(sb.validate_cel())
            .contains("spec.cronJob.startingDeadlineSeconds must be at least 10")
    );
    sb_with(|v| v["spec"]["cronJob"]["startingDeadlineSeconds"] = json!(10))
        .validate_cel()
        .unwrap();
}

#[test]
fn new_scheduling_fields_default_to_todays_behaviour() {
    let sb = sb_with(|_| {});
    let cron = &sb.spec.cron_job;
    assert_eq!(
        (
            cron.starting_deadline_seconds,
            cron.overdue_after.as_deref()
        ),
        (None, None)
    );
    assert_eq!(cron.starting_deadline_seconds(), 3600);
    assert_eq!(
        cron.overdue_after(schedule::DEFAULT_OVERDUE_GRACE),
        Ok(schedule::OverdueAfter::NextRunPlus(
            jiff::SignedDuration::from_hours(1)
        ))
    );
    // The original example's schedule has no H: the CronJob keeps it byte for byte.
    assert_eq!(
        cron.effective_schedule("default", "app1").unwrap(),
        cron.schedule_every.clone().unwrap()
    );
}

#[test]
fn cel_rejects_negative_actions_history_limits_and_they_default_to_ten() {
    for field in ["successfulActionsHistoryLimit", "failedActionsHistoryLimit"] {
        let sb = sb_with(|v| v["spec"][field] = json!(-1));
        assert!(cel_error(sb.validate_cel()).contains(&format!("spec.{field} must be 0 or more")));
        sb_with(|v| v["spec"][field] = json!(0))
            .validate_cel()
            .unwrap();
    }
    assert_eq!(sb_with(|_| {}).spec.actions_history_limits(), (10, 10));
    let sb = sb_with(|v| {
        v["spec"]["successfulActionsHistoryLimit"] = json!(0);
        v["spec"]["failedActionsHistoryLimit"] = json!(3);
    });
    assert_eq!(sb.spec.actions_history_limits(), (0, 3));
}

#[test]
fn cel_requires_an_email_to_generate_a_key() {
    let sb = sb_with(|v| {
        v["spec"]["gpgKeySecretRef"]
            .as_object_mut()
            .unwrap()
            .remove("email");
    });
    assert!(cel_error(sb.validate_cel()).contains("spec.gpgKeySecretRef.email is required"));
}

fn rba(action: &str, target: Option<&str>) -> RequestedBackupAction {
    let mut value = fixture("restore-scenario/2-restore.yaml");
    value["spec"]["action"] = json!(action);
    match target {
        Some(t) => value["spec"]["targetVersion"] = json!(t),
        None => {
            value["spec"]
                .as_object_mut()
                .unwrap()
                .remove("targetVersion");
        }
    }
    typed(&value)
}

#[test]
fn cel_allows_target_version_only_on_restore() {
    rba("restore", Some("v3")).validate_cel().unwrap();
    rba("backup", None).validate_cel().unwrap();
    assert!(
        cel_error(rba("backup", Some("v3")).validate_cel())
            .contains("spec.targetVersion is only allowed with action: restore")
    );
}

#[test]
fn cel_makes_the_action_spec_immutable() {
    let old = rba("restore", Some("v1"));
    old.validate_cel_update(&old.clone())
        .expect("an unchanged spec is fine");
    let mut status_only = old.clone();
    status_only.status = Some(RequestedBackupActionStatus {
        processed: true,
        ..Default::default()
    });
    status_only
        .validate_cel_update(&old)
        .expect("status changes are fine");
    let new = rba("restore", Some("v2"));
    assert!(
        cel_error(new.validate_cel_update(&old))
            .contains("spec of a RequestedBackupAction is immutable")
    );
}

#[test]
fn cel_requires_a_template_image() {
    let mut value = fixture("pg13.yaml");
    value["spec"]["image"] = json!("");
    let template: ClusterBackupProcedureTemplate = typed(&value);
    assert!(cel_error(template.validate_cel()).contains("spec.image must name"));
}

/// Every schema node must say what it is: the apiserver rejects non-structural schemas.
fn assert_structural(schema: &Value, path: &str) {
    let object = schema
        .as_object()
        .unwrap_or_else(|| panic!("{path}: schema is not an object"));
    let typed = object.contains_key("type")
        || object.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
        || object.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    assert!(typed, "{path}: untyped schema node {schema}");
    for forbidden in ["$ref", "anyOf", "oneOf", "allOf"] {
        assert!(
            !object.contains_key(forbidden),
            "{path}: {forbidden} is not structural"
        );
    }
    if let Some(Value::Object(props)) = object.get("properties") {
        for (name, child) in props {
            assert_structural(child, &format!("{path}.{name}"));
        }
    }
    if let Some(items) = object.get("items") {
        assert_structural(items, &format!("{path}[]"));
    }
    if let Some(additional @ Value::Object(_)) = object.get("additionalProperties") {
        assert_structural(additional, &format!("{path}{{}}"));
    }
}

#[test]
fn generated_crds_are_structural_and_complete() {
    for crd in all_crds() {
        let name = crd.metadata.name.clone().unwrap();
        assert_eq!(crd.spec.group, "riotkit.org");
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(version.served && version.storage);
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "{name}: status subresource"
        );
        assert_eq!(
            crd.spec.names.categories.as_deref(),
            Some(&["backups".to_string()][..]),
            "{name}"
        );
        let schema = serde_json::to_value(
            version
                .schema
                .as_ref()
                .unwrap()
                .open_api_v3_schema
                .as_ref()
                .unwrap(),
        )
        .unwrap();
        assert_structural(&schema, &name);
    }
}

#[test]
fn conditions_are_a_list_map_keyed_by_type() {
    for crd in [ScheduledBackup::crd(), RequestedBackupAction::crd()] {
        let schema = serde_json::to_value(crd.spec.versions[0].schema.as_ref().unwrap()).unwrap();
        let conditions =
            &schema["openAPIV3Schema"]["properties"]["status"]["properties"]["conditions"];
        assert_eq!(conditions["x-kubernetes-list-type"], "map");
        assert_eq!(conditions["x-kubernetes-list-map-keys"], json!(["type"]));
    }
}

#[test]
fn printer_columns_point_at_real_fields() {
    let crd = ScheduledBackup::crd();
    let columns = crd.spec.versions[0]
        .additional_printer_columns
        .clone()
        .unwrap();
    let schedule = columns.iter().find(|c| c.name == "Schedule").unwrap();
    // The original pointed at `.spec.cronjob.scheduleEvery`, which never matched.
    assert_eq!(schedule.json_path, ".spec.cronJob.scheduleEvery");
    let path = |name: &str| {
        columns
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no {name} column"))
            .json_path
            .clone()
    };
    assert_eq!(path("Last Success"), ".status.lastSuccessfulTime");
    assert_eq!(path("Next Run"), ".status.nextScheduleTime");
    assert_eq!(
        path("Overdue"),
        ".status.conditions[?(@.type==\"Overdue\")].status"
    );
    assert_eq!(ScheduledBackup::shortnames(), ["sb"]);
    assert_eq!(RequestedBackupAction::shortnames(), ["rba"]);
    assert_eq!(ClusterBackupProcedureTemplate::shortnames(), ["cbpt"]);
}

#[test]
fn status_round_trips_without_empty_fields() {
    // An empty status must serialise to `{}` so an SSA of it owns nothing by accident.
    assert_eq!(
        serde_json::to_value(ScheduledBackupStatus::default()).unwrap(),
        json!({})
    );
    let rba_status = serde_json::to_value(RequestedBackupActionStatus::default()).unwrap();
    assert_eq!(rba_status, json!({"processed": false}));
}

#[test]
fn key_data_names_fall_back_to_the_original_defaults() {
    let reference: GpgKeySecretRef = serde_json::from_value(json!({"secretName": "keys"})).unwrap();
    assert_eq!(reference.private_key_name(), "key");
    assert_eq!(reference.public_key_name(), "key.pub");
    assert_eq!(reference.passphrase_key_name(), "passphrase");
    assert!(!reference.create_if_not_exists);
}
