//! `render_scheduled_backup`: the bundled example (ScheduledBackup on built-in pg15 with token and vars
//! Secrets) → every child object, as the scheduled-controller does on each reconcile.

use crd_types::ScheduledBackup;
use criterion::{Criterion, criterion_group, criterion_main};
use k8s_openapi::api::core::v1::Secret;
use template_engine::{EXAMPLE, Inputs, builtin, desired_children, parse_documents};

fn render_scheduled_backup(c: &mut Criterion) {
    let docs = parse_documents(EXAMPLE).expect("example parses");
    let sb: ScheduledBackup = serde_json::from_value(
        docs.iter()
            .find(|d| d["kind"] == "ScheduledBackup")
            .expect("example has a ScheduledBackup")
            .clone(),
    )
    .expect("valid ScheduledBackup");
    let secret = |name: &str| -> Secret {
        serde_json::from_value(
            docs.iter()
                .find(|d| d["kind"] == "Secret" && d["metadata"]["name"] == name)
                .expect("example Secret")
                .clone(),
        )
        .expect("valid Secret")
    };
    let token = secret("app1-backup-token");
    let vars = secret("app1-backup-vars");
    let template = builtin("pg15").expect("pg15 is built in");
    let inputs = Inputs {
        scheduled_backup: &sb,
        template: &template,
        token_secret: &token,
        vars_secret: Some(&vars),
    };
    desired_children(&inputs).expect("example renders");
    c.bench_function("render_scheduled_backup", |b| {
        b.iter(|| desired_children(std::hint::black_box(&inputs)).expect("renders"))
    });
}

criterion_group!(benches, render_scheduled_backup);
criterion_main!(benches);
