//! Python's manifests of public projects (`../shared/fixtures/manifests/python/`,
//! their origins in SOURCES.md there): PEP 621 and PEP 735 `pyproject.toml`,
//! Poetry's tables, and requirements files that include each other.

use conjunction_manifest::{python, Declared, Manifest, Section, Spec};

fn dir() -> std::path::PathBuf {
    crate::dir("python")
}

fn pyproject(name: &str) -> Manifest {
    let text = std::fs::read_to_string(dir().join(name)).unwrap();
    python::pyproject(name, &text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn all<'a>(m: &'a Manifest, name: &str) -> Vec<&'a Declared> {
    m.dependencies.iter().filter(|d| d.name == name).collect()
}

fn range(r: &str) -> Spec {
    Spec::Range(r.into())
}

const PYPROJECTS: [&str; 4] = [
    "fastapi-fastapi.pyproject.toml",
    "encode-uvicorn.pyproject.toml",
    "Textualize-textual.pyproject.toml",
    "python-poetry-poetry.pyproject.toml",
];
const REQUIREMENTS: [&str; 3] = [
    "mdn-kuma.requirements-dev.txt",
    "mdn-kuma.requirements-default.txt",
    "mdn-kuma.requirements-constraints.txt",
];

#[test]
fn every_python_manifest_is_read() {
    for entry in std::fs::read_dir(dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if PYPROJECTS.contains(&name.as_str()) {
            pyproject(&name);
        } else {
            assert!(
                REQUIREMENTS.contains(&name.as_str()),
                "python/{name} is read by a test here"
            );
        }
    }
}

#[test]
fn fastapi_has_extras_and_dependency_groups_that_include_each_other() {
    let m = pyproject("fastapi-fastapi.pyproject.toml");
    assert_eq!(m.name.as_deref(), Some("fastapi"));
    let normal: Vec<&Declared> = m
        .dependencies
        .iter()
        .filter(|d| d.section == Section::Normal)
        .collect();
    assert_eq!(normal.len(), 5);
    assert_eq!(normal[0].name, "starlette");
    assert_eq!(normal[0].spec, range(">=0.46.0"));
    let extras = m
        .dependencies
        .iter()
        .filter(|d| d.section == Section::Optional)
        .count();
    assert_eq!(extras, 9 + 8 + 10);
    // `fastapi-cli[standard] >=0.0.32`: the extra is the package's, the space is PEP 508's.
    let cli = all(&m, "fastapi-cli")
        .into_iter()
        .find(|d| d.condition.as_deref() == Some("extra standard"))
        .expect("the standard extra names fastapi-cli");
    assert_eq!((&cli.spec, cli.optional), (&range(">=0.0.32"), true));
    // `dev` includes `tests`, which includes `docs-tests`: httpx comes through both.
    let dev_httpx: Vec<&Declared> = all(&m, "httpx")
        .into_iter()
        .filter(|d| d.condition.as_deref() == Some("group dev"))
        .collect();
    assert!(
        !dev_httpx.is_empty(),
        "dev reaches docs-tests' httpx through its includes"
    );
    assert_eq!(dev_httpx[0].spec, range(">=0.23.0, <1.0.0"));
}

#[test]
fn uvicorn_keeps_its_markers_unevaluated() {
    let m = pyproject("encode-uvicorn.pyproject.toml");
    let typing = &all(&m, "typing-extensions")[0];
    assert_eq!(typing.spec, range(">=4.0"));
    assert_eq!(
        typing.condition.as_deref(),
        Some("python_full_version < '3.11'")
    );
    let uvloop = &all(&m, "uvloop")[0];
    let when = uvloop.condition.as_deref().unwrap();
    assert!(
        when.starts_with("extra standard; ") && when.contains("sys_platform != 'win32'"),
        "{when}"
    );
    assert_eq!(
        all(&m, "pyyaml")[0].spec,
        range(">=5.1"),
        "names are normalised"
    );
}

#[test]
fn poetrys_tables_groups_and_multiple_constraints_are_read() {
    let textual = pyproject("Textualize-textual.pyproject.toml");
    assert_eq!(textual.name.as_deref(), Some("textual"));
    let normal: Vec<&Declared> = textual
        .dependencies
        .iter()
        .filter(|d| d.section == Section::Normal)
        .collect();
    assert_eq!(normal.len(), 22, "python is the interpreter, not a package");
    assert_eq!(normal.iter().filter(|d| d.optional).count(), 16);
    // Poetry's caret, as the PEP 440 specifiers it means.
    assert_eq!(
        all(&textual, "typing-extensions")[0].spec,
        range(">=4.4.0, <5")
    );
    assert_eq!(all(&textual, "mdit-py-plugins")[0].spec, range("*"));
    let sitter = &all(&textual, "tree-sitter")[0];
    assert_eq!(sitter.condition.as_deref(), Some("python >=3.10"));
    assert_eq!(
        textual
            .dependencies
            .iter()
            .filter(|d| d.section == Section::Dev)
            .count(),
        20
    );

    let poetry = pyproject("python-poetry-poetry.pyproject.toml");
    assert_eq!(
        poetry
            .dependencies
            .iter()
            .filter(|d| d.section == Section::Normal)
            .count(),
        26
    );
    assert_eq!(
        poetry
            .dependencies
            .iter()
            .filter(|d| d.section == Section::Dev)
            .count(),
        10
    );
    let keyring: Vec<(&Spec, Option<&str>)> = all(&poetry, "keyring")
        .iter()
        .map(|d| (&d.spec, d.condition.as_deref()))
        .collect();
    assert_eq!(
        keyring,
        vec![
            (&range(">=18.0.1, <19"), Some("python ~2.7")),
            (&range(">=20.0.1, <21"), Some("python ~3.5")),
            (&range(">=21.2.0"), Some("python ^3.6")),
        ]
    );
}

#[test]
fn requirements_follow_their_includes_and_constraints_declare_nothing() {
    let open = |path: &str| {
        let name = path.rsplit('/').next().unwrap_or(path);
        std::fs::read_to_string(dir().join(format!("mdn-kuma.requirements-{name}"))).ok()
    };
    let dev = python::requirements("requirements/dev.txt", &open).unwrap();
    assert!(dev.missing.is_empty(), "{:?}", dev.missing);
    // default.txt's 55 pins, then dev.txt's own 9; constraints.txt's 51 are none of them.
    assert_eq!(dev.dependencies.len(), 55 + 9);
    let babel = &all(&dev, "django-babel")[0];
    assert_eq!(babel.spec, range("==0.4.0"), "hashes set aside");
    assert_eq!(all(&dev, "bleach")[0].spec, range("==1.5.0"));
    // Without the file it includes, the include is named as missing.
    let only = |path: &str| path.ends_with("dev.txt").then(|| open(path)).flatten();
    let alone = python::requirements("requirements/dev.txt", &only).unwrap();
    assert_eq!(alone.missing, vec!["requirements/default.txt"]);
    assert_eq!(alone.dependencies.len(), 9);
    let err = python::requirements("r.txt", &|_| Some("not a requirement!!\n".into())).unwrap_err();
    assert!(err.to_string().contains("no PEP 508 requirement"), "{err}");
}
