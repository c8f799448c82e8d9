//! `kubectl backup logs SB|rba/NAME [-f]`: the log of the most recent run's Pod, through `pods/log`.

use std::io::Write;

use futures::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::LogParams;
use kube::{Api, ResourceExt};

use crate::cli::LogsArgs;
use crate::lookup;
use crate::{Error, Result, Session, Target};

/// Containers that run the procedure: the Job's (`backup-maker`) and Argo's `main`; anything else is a sidecar.
const PROCEDURE_CONTAINERS: [&str; 2] = [template_engine::CONTAINER_NAME, "main"];

/// The Pod whose log `target` means: an action's newest Pod, or the newest Pod of the ScheduledBackup's newest
/// Job (a CronJob run or an action).
pub async fn pod_for(session: &Session, target: &Target) -> Result<Pod> {
    match target {
        Target::Action(name) => {
            let action = lookup::action(session, name).await?;
            let pods = lookup::pods(session, &lookup::action_selector(name)).await?;
            pods.into_iter().next().ok_or_else(|| {
                let phase = action
                    .status
                    .and_then(|s| s.phase)
                    .map_or("not started", |p| p.as_str());
                Error::NoPod(format!(
                    "rba/{name} has no Pod (phase: {phase}); its Job may not have started yet or was cleaned up: see `kubectl backup describe rba/{name}`"
                ))
            })
        }
        Target::ScheduledBackup(name) => {
            lookup::scheduled_backup_value(session, name).await?;
            let selector = lookup::sb_selector(name);
            let jobs = lookup::jobs(session, &selector).await?;
            let Some(job) = jobs.first() else {
                return Err(Error::NoPod(format!(
                    "ScheduledBackup {name} has no runs yet: start one with `kubectl backup run {name}`"
                )));
            };
            let pods = lookup::pods(session, &selector).await?;
            pods.into_iter()
                .find(|p| lookup::pod_of_job(p, job))
                .ok_or_else(|| {
                    Error::NoPod(format!(
                        "Job {} (the most recent run of {name}) has no Pod: it may not have started, or its Pods were cleaned up",
                        job.name_any()
                    ))
                })
        }
    }
}

fn container(pod: &Pod) -> Option<String> {
    let containers = &pod.spec.as_ref()?.containers;
    if containers.len() < 2 {
        return None; // the API server picks the only one
    }
    containers
        .iter()
        .find(|c| PROCEDURE_CONTAINERS.contains(&c.name.as_str()))
        .or(containers.first())
        .map(|c| c.name.clone())
}

/// `kubectl backup logs`: copies the log to `out`, line by line (and, with `-f`, until the container ends).
pub async fn logs(session: &Session, args: &LogsArgs, out: &mut (dyn Write + Send)) -> Result<()> {
    let target = Target::parse(&args.target)?;
    let pod = pod_for(session, &target).await?;
    let name = pod.name_any();
    let params = LogParams {
        follow: args.follow,
        container: container(&pod),
        ..Default::default()
    };
    let api: Api<Pod> = Api::namespaced(session.client.clone(), &session.namespace);
    let what = format!("reading the log of Pod {name}");
    let stream = api
        .log_stream(&name, &params)
        .await
        .map_err(|e| Error::api(e, what.clone(), "get", "pods/log"))?;
    let mut lines = stream.lines();
    while let Some(line) = lines
        .try_next()
        .await
        .map_err(|e| Error::Io(std::io::Error::new(e.kind(), format!("{what}: {e}"))))?
    {
        writeln!(out, "{line}")?;
        if args.follow {
            out.flush()?;
        }
    }
    out.flush()?;
    Ok(())
}
