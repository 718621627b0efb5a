//! Step 2b of a run, when the scenario asks for it (`[verify] after_run`): check
//! that the registry still serves every tag, manifest and blob of some images
//! whole, with `pullstorm verify`'s walk, once the storm is over. A storm can
//! leave a registry broken while every pull of it passed (seed 002: a cache that
//! says a blob exists after its data is gone), so the run's verdict includes it.
//!
//! The check uses the run's target, TLS settings and credentials, with its own
//! timeouts (`verify.timeout`) and a budget of `run.duration` for the whole
//! check, so a registry that trickles bytes cannot hold the run; Ctrl-C stops it.

use super::prepare::Ready;
use super::RunOptions;
use crate::net::Timeouts;
use crate::oci::Reference;
use crate::result::build::StopReason;
use crate::result::model::AfterRunVerify;
use std::future::Future;

/// The check's outcome for result.json, or `None` when the scenario did not ask.
/// Never an error: a check that could not run is `not_run` with its reason, and
/// fails the run's `verify` check (a gate never passes what it could not judge).
pub(super) async fn verify<S: Future>(
    opts: &RunOptions,
    ready: &Ready,
    stop: StopReason,
    shutdown: S,
) -> Option<AfterRunVerify> {
    let scenario = &opts.loaded.scenario;
    let section = &scenario.verify;
    if !section.after_run {
        return None;
    }
    if stop == StopReason::Interrupted {
        return Some(not_run("the run was interrupted before the check"));
    }
    let references = match references(&section.images, &ready.ctx.reference) {
        Ok(r) => r,
        Err(e) => return Some(not_run(&e)),
    };
    let timeouts = Timeouts {
        connect: section.timeout.0,
        response: section.timeout.0,
        stall: Some(section.timeout.0),
    };
    let transport = match crate::seed::tool_transport(
        &ready.ctx.base,
        scenario.target.ca_file.as_deref(),
        scenario.target.insecure_tls,
        timeouts,
    ) {
        Ok(t) => t,
        Err(f) => return Some(not_run(&f.message)),
    };
    if !opts.quiet {
        eprintln!(
            "pullstorm: verifying {} image(s) after the run",
            references.len()
        );
    }
    let check = crate::verify::verify_with(
        &ready.ctx.base,
        &references,
        ready.ctx.credentials.clone(),
        &transport,
        section.jobs as usize,
    );
    let budget = scenario.run.duration.0;
    tokio::select! {
        checked = check => Some(match checked {
            Ok(report) => AfterRunVerify {
                outcome: if report.consistent { "consistent" } else { "inconsistent" }.into(),
                reason: None,
                report: Some(report),
            },
            Err(f) => not_run(&f.message),
        }),
        _ = tokio::time::sleep(budget) => Some(not_run(&format!(
            "the check did not finish within run.duration ({})",
            crate::human::secs(budget.as_secs_f64())
        ))),
        _ = shutdown => Some(not_run("interrupted during the check")),
    }
}

/// The images named in `[verify] images`, or the one the run pulled.
fn references(images: &[String], pulled: &Reference) -> Result<Vec<Reference>, String> {
    if images.is_empty() {
        return Ok(vec![pulled.clone()]);
    }
    images
        .iter()
        .map(|i| Reference::parse(i).map_err(|e| format!("verify.images {i:?}: {e}")))
        .collect()
}

fn not_run(reason: &str) -> AfterRunVerify {
    AfterRunVerify {
        outcome: "not_run".into(),
        reason: Some(reason.to_string()),
        report: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pulled_image_is_checked_unless_images_are_named() {
        let pulled = Reference::parse("library/app:1").unwrap();
        let r = references(&[], &pulled).unwrap();
        assert_eq!(r, vec![pulled.clone()]);
        let named = references(
            &["a/b:2".into(), "c@sha256:".to_string() + &"0".repeat(64)],
            &pulled,
        )
        .unwrap();
        assert_eq!(named.len(), 2);
        assert_eq!(named[0].name, "a/b");
        let bad = references(&["UPPER:case".into()], &pulled).unwrap_err();
        assert!(bad.contains("verify.images"), "{bad}");
    }
}
