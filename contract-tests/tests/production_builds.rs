//! The provider-state hook is test-only: payment routes `/_test/provider-states` only with the
//! feature `provider-states` (payment's own test checks both builds), and the images build each
//! binary without features. This holds the Dockerfile to that.

use std::path::Path;

#[test]
fn images_build_the_services_without_features() {
    let dockerfile =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docker/Dockerfile"))
            .expect("docker/Dockerfile");
    let lines: Vec<&str> = dockerfile
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .collect();
    // The dependencies (cargo-chef's cook) and the binaries (cargo build): one command each,
    // both for the binaries alone, neither with features.
    for command in ["cargo chef cook", "cargo build"] {
        let found: Vec<&&str> = lines.iter().filter(|line| line.contains(command)).collect();
        assert_eq!(found.len(), 1, "one `{command}` expected: {found:?}");
        let build = found[0];
        assert!(build.contains("--bins"), "{build}");
        for feature_flag in ["--features", "--all-features", "-F "] {
            assert!(
                !build.contains(feature_flag),
                "the image build enables features ({feature_flag}), which could compile the \
                 provider-state hook into production: {build}"
            );
        }
    }
    assert!(
        lines
            .iter()
            .any(|line| line.contains("FLEET_BINARIES=") && line.contains(" payment ")),
        "the build stage's FLEET_BINARIES names payment"
    );
}
