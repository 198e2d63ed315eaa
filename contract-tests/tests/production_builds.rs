//! The provider-state hook is test-only: payment routes `/_test/provider-states` only with the
//! feature `provider-states` (payment's own test checks both builds), and the images build each
//! binary without features. This holds the Dockerfile to that.

use std::path::Path;

#[test]
fn images_build_the_services_without_features() {
    let dockerfile =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docker/Dockerfile"))
            .expect("docker/Dockerfile");
    let builds: Vec<&str> = dockerfile
        .lines()
        .filter(|line| line.contains("cargo build"))
        .collect();
    assert_eq!(builds.len(), 1, "one build line expected: {builds:?}");
    let build = builds[0];
    assert!(
        build.contains(r#"--package "${SERVICE}" --bin "${SERVICE}""#),
        "{build}"
    );
    for feature_flag in ["--features", "--all-features", "-F "] {
        assert!(
            !build.contains(feature_flag),
            "the image build enables features ({feature_flag}), which could compile the \
             provider-state hook into production: {build}"
        );
    }
}
