//! KEDA's release files for unit tests: in the directory `$KEDAFORM_KEDA_MIRROR`, which `make
//! test` sets (scripts/common.sh: `ensure_keda_release`); integration tests use
//! `kedaform_tests::keda_release`.

/// The text of KEDA 2.20.2's release manifest.
pub fn keda_manifest() -> String {
    let mirror = std::env::var_os("KEDAFORM_KEDA_MIRROR").expect(
        "KEDAFORM_KEDA_MIRROR is not set: run `make test`, or point it at a directory holding keda-2.20.2.yaml",
    );
    let path = std::path::Path::new(&mirror).join("keda-2.20.2.yaml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
