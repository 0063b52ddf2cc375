//! A short `kedaform demo` against the moto of `make test`: its verdict, its bound and the
//! files it writes.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

#[test]
fn a_short_demo_holds_its_verdict_and_writes_the_plot_and_the_summary() {
    kedaform_tests::moto_endpoint();
    let out = std::env::temp_dir().join(format!("kedaform-demo-{}", std::process::id()));
    let manifest = kedaform_tests::keda_release("keda-2.20.2.yaml").display().to_string();
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_kedaform"))
        .args([
            "demo",
            "--seconds",
            "30",
            "--out",
            out.to_str().unwrap(),
            "--keda-manifest",
            &manifest,
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        started.elapsed() < Duration::from_secs(30 + 60),
        "bounded by DEMO_SECONDS + 60 s"
    );
    for step in [
        "1. the AWS side",
        "2. Custom::KedaTrustPolicy",
        "3. what would go onto a cluster",
        "4. producer and consumers",
        "5. verdict",
    ] {
        assert!(stdout.contains(step), "{step} missing from:\n{stdout}");
    }
    assert!(
        stdout.contains("KEDA 2.20.2: 1 Namespace, 6 CustomResourceDefinition, 3 ServiceAccount"),
        "{stdout}"
    );
    assert!(stdout.contains("every distinct valid event stored exactly once, bad events in the DLQ, nothing lost"));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(out.join("demo.json")).unwrap()).unwrap();
    assert_eq!(report["verdict"], true);
    assert_eq!(report["stored"], report["distinct_valid"]);
    assert_eq!(
        (report["missing"].as_u64(), report["unexpected"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(report["bad_in_dlq"], report["bad"]);
    assert!(report["sent"].as_u64().unwrap() > 100, "{report}");
    assert!(
        std::fs::read_to_string(out.join("demo.svg"))
            .unwrap()
            .starts_with("<svg")
    );
    std::fs::remove_dir_all(&out).unwrap();
}
