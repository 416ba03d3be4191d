//! Go's `go.mod` of public projects (`../shared/fixtures/manifests/go/`, their
//! origins in SOURCES.md there), each read into the modules it requires.

use conjunction_manifest::{go, Manifest, Spec};

fn dir() -> std::path::PathBuf {
    crate::dir("go")
}

fn read(name: &str) -> Manifest {
    let text = std::fs::read_to_string(dir().join(name)).unwrap();
    go::read(name, &text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn spec<'a>(m: &'a Manifest, module: &str) -> &'a Spec {
    &m.dependencies
        .iter()
        .find(|d| d.local.as_deref().unwrap_or(&d.name) == module)
        .unwrap_or_else(|| panic!("{module} is required"))
        .spec
}

#[test]
fn every_go_mod_is_read() {
    for entry in std::fs::read_dir(dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            ["etcd-io-etcd.go.mod", "prometheus-prometheus.go.mod"].contains(&name.as_str()),
            "go/{name} is read by a test here"
        );
        read(&name);
    }
}

#[test]
fn etcd_keeps_major_suffixes_and_replaces_its_own_modules_with_directories() {
    let m = read("etcd-io-etcd.go.mod");
    assert_eq!(m.name.as_deref(), Some("go.etcd.io/etcd/v3"));
    assert_eq!(m.dependencies.len(), 84, "both require blocks");
    assert_eq!(m.dependencies.iter().filter(|d| d.indirect).count(), 62);
    assert_eq!(
        spec(&m, "github.com/Masterminds/semver/v3"),
        &Spec::Range("v3.5.0".into())
    );
    assert_eq!(
        spec(&m, "go.etcd.io/etcd/api/v3"),
        &Spec::Path("./api".into())
    );
    assert_eq!(spec(&m, "go.etcd.io/bbolt"), &Spec::Range("v1.5.0".into()));
    // A replace of a module it does not require adds nothing.
    assert!(m
        .dependencies
        .iter()
        .all(|d| d.name != "go.etcd.io/etcd/cache/v3"));
}

#[test]
fn prometheus_reads_four_require_blocks_and_exclusions_declare_nothing() {
    let m = read("prometheus-prometheus.go.mod");
    assert_eq!(m.name.as_deref(), Some("github.com/prometheus/prometheus"));
    assert_eq!(m.dependencies.len(), 250);
    assert_eq!(m.dependencies.iter().filter(|d| d.indirect).count(), 141);
    assert_eq!(
        spec(&m, "github.com/linode/linodego"),
        &Spec::Range("v1.69.1".into()),
        "its excluded v1.0.0 is not a requirement"
    );
}

#[test]
fn a_replacement_module_takes_the_place_of_the_one_required() {
    let m = go::read(
        "go.mod",
        "module example.com/app\n\nrequire (\n\told.example/lib v1.2.0 // indirect\n\t\"quoted.example/x\" v0.1.0\n)\n\
         replace old.example/lib v1.2.0 => fork.example/lib v1.2.1\ntool example.com/gen\n",
    )
    .unwrap();
    let lib = &m.dependencies[0];
    assert_eq!(
        (
            lib.name.as_str(),
            lib.local.as_deref(),
            &lib.spec,
            lib.indirect
        ),
        (
            "fork.example/lib",
            Some("old.example/lib"),
            &Spec::Range("v1.2.1".into()),
            true
        )
    );
    assert_eq!(m.dependencies[1].name, "quoted.example/x");
    let err = go::read("sub/go.mod", "require broken.example\n").unwrap_err();
    assert!(err.to_string().contains("sub/go.mod: line 1"), "{err}");
}
