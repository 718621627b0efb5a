//! `[verify] after_run` through the real binary against the embedded registry:
//! the storm's pulls can all pass while the registry no longer serves what it
//! holds, and the run must then fail on the after-run check, naming the blob.

use crate::common::*;

/// Two dockerd nodes, one 1 MiB layer, and the consistency check after the storm.
const SOUND: &str = "[embedded]\nlayers = [\"1MiB\"]\n[fleet]\nnodes_per_cluster = 2\n\
                     [verify]\nafter_run = true\n";

#[test]
fn a_sound_registry_passes_the_after_run_check() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_scenario(dir.path(), "sound", SOUND, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v = r.result();
    assert_eq!(v["verify"]["outcome"], "consistent", "{}", v["verify"]);
    let checked = &v["verify"]["report"]["checked"];
    // The config and the one layer, each HEAD + GET, bytes hashed.
    assert_eq!(checked["blobs"], 2, "{checked}");
    assert_eq!(checked["tags"], 1, "{checked}");
    let check = threshold_check(&v, "verify.after_run");
    assert_eq!(check["passed"], true, "{check}");
    assert!(r.stdout.contains("verify"), "{}", r.stdout);
}

/// The registry serves the two pulls' layer GETs, then answers 404 to every
/// later request for the layer: the storm passes, the registry is broken.
#[test]
fn a_registry_broken_after_the_storm_fails_the_run_on_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = format!(
        "{SOUND}[embedded.faults]\nstatus = 404\nstatus_on = \"layer\"\nstatus_after = 2\n"
    );
    let r = run_scenario(dir.path(), "broken", &scenario, &[]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let v = r.result();
    assert_eq!(u(&v, "pulls.completed"), 2, "the pulls themselves passed");
    assert_eq!(u(&v, "pulls.failed"), 0);
    assert_eq!(v["verify"]["outcome"], "inconsistent", "{}", v["verify"]);
    let findings = v["verify"]["report"]["findings"].as_array().unwrap();
    let layer = findings
        .iter()
        .find(|f| f["object"] == "layer")
        .unwrap_or_else(|| panic!("no layer finding: {findings:?}"));
    assert_eq!(layer["kind"], "blob_unknown", "{layer}");
    let digest = layer["reference"].as_str().unwrap();
    assert!(digest.starts_with("sha256:"), "{digest}");
    let check = threshold_check(&v, "verify.after_run");
    assert_eq!(check["passed"], false, "{check}");
    assert!(
        check["actual"].as_str().unwrap().contains("blob_unknown"),
        "{check}"
    );
    // The console names the check and the report shows the blob.
    assert!(r.stdout.contains("verify.after_run"), "{}", r.stdout);
    assert!(r.report().contains(digest), "the report names the blob");
}

#[test]
fn a_bad_image_reference_is_exit_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = format!("{SOUND}images = [\"Bad Name:1\"]\n");
    let r = run_scenario(dir.path(), "bad", &scenario, &[]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("verify.images[0]") && r.stderr.contains(":7:"),
        "{}",
        r.stderr
    );
}
