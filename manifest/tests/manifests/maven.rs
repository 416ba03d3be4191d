//! Maven's `pom.xml` of a public project (`../shared/fixtures/manifests/maven/`: a
//! root, a parent and a child of aws-powertools/powertools-lambda-java, origins in
//! SOURCES.md there), read with and without the parents they inherit from.

use conjunction_manifest::{maven, Declared, Manifest, Section, Spec};

fn dir() -> std::path::PathBuf {
    crate::dir("maven")
}

const ROOT: &str = "aws-powertools-powertools-lambda-java.pom.xml";
const PARENT: &str = "aws-powertools-powertools-lambda-java.powertools-idempotency.pom.xml";
const CHILD: &str = "aws-powertools-powertools-lambda-java.powertools-idempotency-dynamodb.pom.xml";

fn text(name: &str) -> String {
    std::fs::read_to_string(dir().join(name)).unwrap()
}

fn read(name: &str, parents: &[&str]) -> Manifest {
    let parents: Vec<String> = parents.iter().map(|p| text(p)).collect();
    let parents: Vec<&str> = parents.iter().map(String::as_str).collect();
    maven::read(name, &text(name), &parents).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn find<'a>(m: &'a Manifest, artifact: &str) -> &'a Declared {
    m.dependencies
        .iter()
        .find(|d| d.name.ends_with(&format!(":{artifact}")))
        .unwrap_or_else(|| panic!("{artifact} is declared"))
}

#[test]
fn every_pom_is_read() {
    for entry in std::fs::read_dir(dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            [ROOT, PARENT, CHILD].contains(&name.as_str()),
            "maven/{name} is read by a test here"
        );
        read(&name, &[]);
    }
}

#[test]
fn the_root_manages_versions_and_declares_no_dependency_itself() {
    let root = read(ROOT, &[]);
    assert_eq!(
        root.name.as_deref(),
        Some("software.amazon.lambda:powertools-parent")
    );
    assert_eq!(root.version.as_deref(), Some("2.1.1"));
    assert!(root.dependencies.is_empty());
    assert!(
        root.workspaces
            .iter()
            .any(|m| m == "powertools-idempotency"),
        "{:?}",
        root.workspaces
    );
}

#[test]
fn a_child_resolves_properties_managed_versions_and_inherited_dependencies_through_its_parents() {
    let child = read(CHILD, &[PARENT, ROOT]);
    assert_eq!(
        child.name.as_deref(),
        Some("software.amazon.lambda:powertools-idempotency-dynamodb")
    );
    assert_eq!(child.version.as_deref(), Some("2.1.1"), "from its parent");
    let range = |r: &str| Spec::Range(r.into());
    assert_eq!(
        find(&child, "powertools-idempotency-core").spec,
        range("2.1.1")
    );
    assert_eq!(find(&child, "url-connection-client").spec, range("2.31.40"));
    let local = find(&child, "DynamoDBLocal");
    assert_eq!(
        (&local.spec, local.section),
        (&range("[1.12,2.0)"), Section::Dev)
    );
    assert_eq!(
        find(&child, "libsqlite4java-osx-aarch64").spec,
        range("1.0.392")
    );
    // Managed by the AWS SDK's BOM, which is not in the tree.
    assert!(
        matches!(find(&child, "dynamodb").spec, Spec::Unresolved(ref why) if why.contains("BOM"))
    );
    // Inherited from the parent, versioned by the root's dependencyManagement.
    let aspectj = find(&child, "aspectjrt");
    assert_eq!(
        (&aspectj.spec, aspectj.section),
        (&range("1.9.7"), Section::Peer)
    );
    assert_eq!(find(&child, "commons-lang3").spec, range("3.15.0"));

    let parent = read(PARENT, &[ROOT]);
    assert_eq!(parent.dependencies.len(), 9);
    assert_eq!(find(&parent, "powertools-common").spec, range("2.1.1"));
}

#[test]
fn without_its_parents_a_child_says_what_it_cannot_resolve() {
    let alone = read(CHILD, &[]);
    assert!(
        matches!(find(&alone, "url-connection-client").spec, Spec::Unresolved(ref why) if why.contains("aws.sdk.version")),
        "{:?}",
        find(&alone, "url-connection-client").spec
    );
    assert!(matches!(find(&alone, "dynamodb").spec, Spec::Unresolved(_)));
    let err = maven::read("pom.xml", "<project><dependencies></project>", &[]).unwrap_err();
    assert!(
        err.to_string().starts_with("pom.xml is not valid XML"),
        "{err}"
    );
}

#[test]
fn properties_that_refer_to_each_other_in_a_circle_are_said_to_be_unresolved() {
    let pom = "<project><groupId>g</groupId><artifactId>a</artifactId><version>1</version>\
               <properties><x>${y}</x><y>${x}</y></properties>\
               <dependencies><dependency><groupId>g</groupId><artifactId>b</artifactId>\
               <version>${x}</version></dependency></dependencies></project>";
    let m = maven::read("pom.xml", pom, &[]).unwrap();
    assert!(
        matches!(&m.dependencies[0].spec, Spec::Unresolved(why) if why.contains("in a circle")),
        "{:?}",
        m.dependencies[0].spec
    );
}
