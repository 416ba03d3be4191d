//! The command-line subcommands: what CI scripts and operators type.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use conjunction_protocol::limits::MAX_SUMMARY;
use conjunction_protocol::text::clean_log;
use conjunction_protocol::{BuildId, ProjectId, Report, ReportState};

use crate::client::{Client, ClientError};

/// Links CI pipelines across projects: report builds, register projects and watch
/// cascades. Without a subcommand it opens the terminal UI.
#[derive(Parser, Debug)]
#[command(name = "conjunction", version)]
pub struct Cli {
    /// The daemon's URL [env: CONJUNCTION_URL; default: http://127.0.0.1:7431]
    #[arg(long, global = true)]
    pub url: Option<String>,
    /// The bearer token: a person's token (viewer, maintainer or operator), or for
    /// `report` a report or build token [env: CONJUNCTION_TOKEN]
    #[arg(long, global = true)]
    pub token: Option<String>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Report a build's state (for CI scripts); prints the build id
    Report(Box<ReportArgs>),
    /// Create or update the projects in a TOML file
    Apply {
        /// The projects file
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
    },
    /// Find the projects of checkouts or a monorepo by their package manifests and
    /// print a projects file for `apply`: each project's package and the ranges it
    /// declares on the others. Cycles and what cannot be resolved are said on stderr
    Discover {
        /// The directories to walk
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Write the projects file here instead of printing it; an existing one is
        /// edited in place, only its dependencies changed and new projects added
        #[arg(long, value_name = "FILE")]
        write: Option<PathBuf>,
        /// The organisation of the ids given to projects found anew (`acme` makes
        /// `acme/lib`); each walked directory's name when left out
        #[arg(long)]
        namespace: Option<String>,
        /// Count development dependencies too
        #[arg(long)]
        dev: bool,
    },
    /// List registered projects
    Projects,
    /// List the direct and transitive dependents of a project
    Dependents { project: ProjectId },
    /// Send a test notice on every channel a project's notices go to, now, and say how
    /// each went; exits non-zero when any was not sent
    NotifyTest { project: ProjectId },
    /// Show a root event's cascade as a tree
    Tree { root: BuildId },
    /// Show what releasing a version of a project would do, before it is released:
    /// what would be built (and on which ref), who needs a bump, what is not affected
    Impact {
        project: ProjectId,
        version: String,
        /// Preview promoting the version's release line to this environment
        #[arg(long)]
        environment: Option<String>,
    },
    /// Show a project's release lines: its versions, and for each the versions of its
    /// dependents and how they fared in each environment
    Releases {
        project: ProjectId,
        /// Show this version's line only
        version: Option<String>,
    },
    /// Start the next attempt of a build
    Rebuild { build: BuildId },
    /// Replace a project's report token with a generated one, printed this once; the
    /// old one stops working at once
    RotateReportToken { project: ProjectId },
    /// Issue, list and revoke people's tokens (viewer, maintainer, operator)
    #[command(subcommand)]
    Token(TokenCommand),
    /// Run a daemon, a simulated CI and about 30 projects in this process, and open
    /// the terminal UI on them
    #[cfg(feature = "demo")]
    Demo {
        /// Seconds between two new upstream versions
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
        interval: u64,
        /// Print the daemon's address and token instead of opening the UI
        #[arg(long)]
        headless: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Issue a token and print it (shown this once)
    Create {
        /// Who holds it, as the audit trail names it: `ana`, `acme-release-bot`
        name: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// For a maintainer: a project (`acme/app`) or namespace (`acme/*`) it
        /// manages; repeat for more
        #[arg(long = "of", value_name = "PATTERN")]
        of: Vec<conjunction_protocol::access::ProjectPattern>,
        /// When it stops working, as a duration from now (`90d`, `12h`)
        #[arg(long, value_parser = humantime::parse_duration)]
        expires_in: Option<std::time::Duration>,
    },
    /// List the tokens this token may revoke
    List,
    /// Revoke a token by its id or name; its open feeds close at once
    Revoke {
        // Not `token`: that is the global `--token` flag's id, which clap would fill
        // with this argument.
        #[arg(value_name = "NAME_OR_ID")]
        which: String,
    },
}

#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum RoleArg {
    Viewer,
    Maintainer,
    Operator,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum StateArg {
    Running,
    Passed,
    Failed,
    Errored,
    Cancelled,
}

impl From<StateArg> for ReportState {
    fn from(s: StateArg) -> Self {
        match s {
            StateArg::Running => ReportState::Running,
            StateArg::Passed => ReportState::Passed,
            StateArg::Failed => ReportState::Failed,
            StateArg::Errored => ReportState::Errored,
            StateArg::Cancelled => ReportState::Cancelled,
        }
    }
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// The project the build belongs to
    #[arg(long)]
    pub project: ProjectId,
    #[arg(long, value_enum)]
    pub state: StateArg,
    /// The build id from the trigger payload; leave out to start a root event
    #[arg(long)]
    pub build: Option<BuildId>,
    /// The attempt from the trigger payload
    #[arg(long)]
    pub attempt: Option<u32>,
    #[arg(long)]
    pub version: Option<String>,
    #[arg(long)]
    pub commit: Option<String>,
    #[arg(long = "ref")]
    pub git_ref: Option<String>,
    /// On a root report: the environment the version went to (a later one than the
    /// first promotes the version's release line there)
    #[arg(long)]
    pub environment: Option<String>,
    /// On a root report: the pipeline tested this change (a pull or merge request's
    /// number) before it merges, which starts a candidate event, not a release
    #[arg(long, conflicts_with = "environment")]
    pub candidate: Option<String>,
    /// With --candidate: the version or commit the change is made on
    #[arg(long, requires = "candidate")]
    pub base: Option<String>,
    /// Where the CI shows this build
    #[arg(long = "build-url")]
    pub build_url: Option<String>,
    /// A short failure summary
    #[arg(long, conflicts_with = "summary_file")]
    pub summary: Option<String>,
    /// Read the summary from a file (its last 16 KiB are kept), such as a test log
    #[arg(long)]
    pub summary_file: Option<PathBuf>,
    /// Metadata as key=value, repeatable
    #[arg(long = "meta", value_parser = parse_meta)]
    pub meta: Vec<(String, String)>,
    /// A package manifest the build used, sent along so that a project whose
    /// dependencies come from_manifest keeps them current: the project's own
    /// first, then what it refers to (a workspace root, a parent POM, an included
    /// requirements file); repeatable
    #[arg(long = "manifest", value_name = "FILE")]
    pub manifests: Vec<PathBuf>,
    /// Report with the CI job's id token in this variable (GitLab's `id_tokens:`
    /// names it) instead of a report token
    #[arg(long, value_name = "VARIABLE")]
    pub id_token_var: Option<String>,
    /// The audience of the id token fetched in a GitHub Actions job; the daemon's
    /// URL when left out (the daemon's `[oidc] audience` must match)
    #[arg(long, env = "CONJUNCTION_AUDIENCE")]
    pub audience: Option<String>,
}

fn parse_meta(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{s:?} is not key=value"))
}

/// Keeps the end of a long log: failures are usually at the bottom.
fn tail(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_owned()
}

pub async fn run(command: Command, client: &Client) -> anyhow::Result<()> {
    match command {
        #[cfg(feature = "demo")]
        Command::Demo { interval, headless } => {
            crate::demo::run(crate::demo::DemoOptions {
                interval: std::time::Duration::from_secs(interval),
                headless,
            })
            .await
        }
        Command::Report(args) => report(*args, client).await,
        Command::Apply { file } => apply(&file, client).await,
        Command::Discover {
            dirs,
            write,
            namespace,
            dev,
        } => discover(
            &dirs,
            write.as_deref(),
            crate::discover::Discover { namespace, dev },
        ),
        Command::Projects => {
            let projects = client.projects().await?;
            if projects.is_empty() {
                println!("no projects registered");
            }
            let registered: std::collections::HashSet<&ProjectId> =
                projects.iter().map(|p| &p.id).collect();
            for p in &projects {
                let deps: Vec<String> = p
                    .depends_on
                    .iter()
                    .map(|d| match &d.range {
                        Some(r) => format!("{} {r}", d.project),
                        None => d.project.to_string(),
                    })
                    .collect();
                let contacts: Vec<&str> = p.contacts.iter().map(|c| c.name.as_str()).collect();
                println!(
                    "{}\t{}\tdepends on: {}\tcontacts: {}\ttrigger: {}",
                    p.id,
                    p.name,
                    if deps.is_empty() {
                        "-".into()
                    } else {
                        deps.join(", ")
                    },
                    if contacts.is_empty() {
                        "-".into()
                    } else {
                        contacts.join(", ")
                    },
                    p.trigger
                        .as_ref()
                        .map_or_else(|| "-".into(), |t| format!("{} {}", t.kind, t.url)),
                );
                println!("  dependencies: {}", p.dependencies_from());
                let unregistered = p.unregistered(|id| registered.contains(id));
                if !unregistered.is_empty() {
                    println!("  unregistered: {}", unregistered.join(", "));
                }
            }
            Ok(())
        }
        Command::Dependents { project } => {
            let deps = client.dependents(&project).await?;
            if deps.is_empty() {
                println!("nothing depends on {project}");
            }
            for d in deps {
                let via: Vec<&str> = d.via.iter().map(ProjectId::as_str).collect();
                println!("{}\tdepth {}\tvia {}", d.project, d.depth, via.join(", "));
            }
            Ok(())
        }
        Command::NotifyTest { project } => {
            let test = client.notify_test(&project).await?;
            if let Some(note) = &test.note {
                println!("{note}");
            }
            let mut all_sent = true;
            for c in &test.channels {
                use conjunction_protocol::notify::TestOutcome;
                let outcome = match c.outcome {
                    TestOutcome::Sent => "sent",
                    TestOutcome::Refused => "refused",
                    TestOutcome::Failed => "failed",
                };
                all_sent &= c.outcome == TestOutcome::Sent;
                match &c.error {
                    Some(e) => println!("{outcome}\t{}\t{e}", c.channel),
                    None => println!("{outcome}\t{}", c.channel),
                }
            }
            if test.channels.is_empty() {
                bail!("{project} has no channel to test");
            }
            if !all_sent {
                bail!("not every channel of {project} took the test notice");
            }
            Ok(())
        }
        Command::Tree { root } => {
            let event = client.root(root).await?;
            print!("{}", crate::tree::render(&event));
            Ok(())
        }
        Command::Impact {
            project,
            version,
            environment,
        } => {
            let impact = client
                .impact(&project, &version, environment.as_deref())
                .await?;
            print!("{}", crate::tree::render_impact(&impact));
            Ok(())
        }
        Command::Releases { project, version } => {
            let releases = client.releases(&project).await?;
            let lines = match version {
                None => releases.lines.clone(),
                Some(v) => vec![client.release_line(&project, &v).await?],
            };
            print!(
                "{}",
                crate::tree::render_releases(&releases.environments, &releases.current, &lines)
            );
            Ok(())
        }
        Command::Rebuild { build } => {
            let node = client.rebuild(build).await?;
            println!("{} attempt {} {}", node.id, node.attempt, node.state.kind());
            Ok(())
        }
        Command::RotateReportToken { project } => {
            let token = client.rotate_report_token(&project).await?;
            eprintln!("{project} has a new report token; the old one no longer works. It is shown this once:");
            println!("{token}");
            Ok(())
        }
        Command::Token(command) => token(command, client).await,
    }
}

async fn token(command: TokenCommand, client: &Client) -> anyhow::Result<()> {
    use conjunction_protocol::access::{Scope, TokenRequest};
    match command {
        TokenCommand::Create {
            name,
            role,
            of,
            expires_in,
        } => {
            let scope = match (role, of.is_empty()) {
                (RoleArg::Maintainer, false) => Scope::Maintainer { of },
                (RoleArg::Maintainer, true) => {
                    bail!("a maintainer token needs --of with a project or namespace, such as --of 'acme/*'")
                }
                (_, false) => bail!("--of is for maintainer tokens only"),
                (RoleArg::Viewer, true) => Scope::Viewer,
                (RoleArg::Operator, true) => Scope::Operator,
            };
            let expires_at = expires_in.map(|d| {
                conjunction_protocol::Timestamp::from_system_time(std::time::SystemTime::now() + d)
            });
            let issued = client
                .create_token(&TokenRequest {
                    name,
                    scope,
                    expires_at,
                })
                .await?;
            eprintln!(
                "issued {} ({}), id {}; the token is shown this once:",
                issued.info.name, issued.info.scope, issued.info.id
            );
            println!("{}", issued.token);
            Ok(())
        }
        TokenCommand::List => {
            let tokens = client.tokens().await?;
            if tokens.is_empty() {
                println!("no tokens");
            }
            for t in tokens {
                let expires = t.expires_at.map_or("never".to_owned(), |at| at.to_string());
                let used = t
                    .last_used_at
                    .map_or("never".to_owned(), |at| at.to_string());
                println!(
                    "{}  {}  {}  by {}  expires {expires}  last used {used}",
                    t.id, t.name, t.scope, t.created_by
                );
            }
            Ok(())
        }
        TokenCommand::Revoke { which } => {
            // A name is looked up among the tokens this token may revoke.
            let id = match client.tokens().await?.into_iter().find(|t| t.name == which) {
                Some(found) => found.id,
                None => which,
            };
            let revoked = client.revoke_token(&id).await?;
            println!(
                "revoked {} ({}), id {}",
                revoked.name, revoked.scope, revoked.id
            );
            Ok(())
        }
    }
}

async fn report(args: ReportArgs, client: &Client) -> anyhow::Result<()> {
    let fetched;
    let token = match (client.token(), &args.id_token_var) {
        (_, Some(var)) => {
            fetched = std::env::var(var)
                .with_context(|| format!("--id-token-var {var}: the job has no such variable; name the one its id_tokens: declares"))?;
            fetched.as_str()
        }
        (Some(token), None) => token,
        (None, None) => match github_id_token(client, args.audience.as_deref()).await? {
            Some(token) => {
                fetched = token;
                fetched.as_str()
            }
            None => bail!(
                "no token: set CONJUNCTION_TOKEN to the project's report token or the build token from the trigger, \
                 or report from a CI job with an id token (GitHub Actions with `permissions: id-token: write`, or --id-token-var)"
            ),
        },
    };
    // Cleaned before the tail is taken, so escape sequences spend none of the limit.
    let summary = match (&args.summary, &args.summary_file) {
        (Some(s), _) => Some(tail(&clean_log(s), MAX_SUMMARY)),
        (None, Some(path)) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            Some(tail(
                &clean_log(&String::from_utf8_lossy(&bytes)),
                MAX_SUMMARY,
            ))
        }
        (None, None) => None,
    };
    let report = Report {
        project: args.project,
        build: args.build,
        attempt: args.attempt,
        state: args.state.into(),
        version: args.version,
        commit: args.commit,
        git_ref: args.git_ref,
        environment: args.environment,
        candidate: args
            .candidate
            .map(|change| conjunction_protocol::Candidate::new(change, args.base)),
        url: args.build_url,
        summary,
        metadata: args.meta.into_iter().collect::<BTreeMap<_, _>>(),
        manifests: args
            .manifests
            .iter()
            .map(|path| {
                let content = std::fs::read_to_string(path)
                    .with_context(|| format!("--manifest {}: cannot read it", path.display()))?;
                Ok(conjunction_protocol::ManifestFile {
                    path: path.to_string_lossy().into_owned(),
                    content,
                })
            })
            .collect::<anyhow::Result<_>>()?,
    };
    let ack = client.report(token, &report).await?;
    for w in &ack.warnings {
        eprintln!("warning: {w}");
    }
    println!("{}", ack.build);
    Ok(())
}

/// In a GitHub Actions job with `permissions: id-token: write`, the job's id token
/// for `audience` (the daemon's URL when none is given), asked of the runner as
/// GitHub documents; `None` outside such a job.
async fn github_id_token(
    client: &Client,
    audience: Option<&str>,
) -> anyhow::Result<Option<String>> {
    let (Ok(url), Ok(bearer)) = (
        std::env::var("ACTIONS_ID_TOKEN_REQUEST_URL"),
        std::env::var("ACTIONS_ID_TOKEN_REQUEST_TOKEN"),
    ) else {
        return Ok(None);
    };
    let audience = audience.unwrap_or(client.base());
    let separator = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{separator}audience={}", urlencoding::encode(audience));
    #[derive(serde::Deserialize)]
    struct IdToken {
        value: String,
    }
    let answer = reqwest::Client::new()
        .get(&url)
        .bearer_auth(bearer)
        .timeout(std::time::Duration::from_secs(30))
        .send()
        .await
        .context("asking the runner for the job's id token (ACTIONS_ID_TOKEN_REQUEST_URL)")?;
    if !answer.status().is_success() {
        bail!(
            "the runner answered {} to the id token request; does the job have `permissions: id-token: write`?",
            answer.status()
        );
    }
    let token: IdToken = answer
        .json()
        .await
        .context("the runner's id token answer is not {\"value\": …}")?;
    Ok(Some(token.value))
}

/// `conjunction discover`: walks, then prints a projects file or writes one.
fn discover(
    dirs: &[PathBuf],
    write: Option<&std::path::Path>,
    options: crate::discover::Discover,
) -> anyhow::Result<()> {
    use crate::discover;
    let existing = match write {
        Some(file) if file.exists() => Some(
            std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?,
        ),
        _ => None,
    };
    let known = match &existing {
        Some(text) => discover::known_packages(text)?,
        None => Vec::new(),
    };
    let found = discover::discover(dirs, &options, &known)?;
    for line in &found.unreadable {
        eprintln!("unreadable: {line}");
    }
    for p in &found.projects {
        for note in &p.notes {
            eprintln!("{}: {note}", p.id);
        }
    }
    for cycle in &found.cycles {
        let names: Vec<&str> = cycle.iter().map(ProjectId::as_str).collect();
        eprintln!("dependency cycle: {}", names.join(" -> "));
    }
    let edges: usize = found.projects.iter().map(|p| p.depends_on.len()).sum();
    let outside: usize = found.projects.iter().map(|p| p.outside.len()).sum();
    eprintln!(
        "found {} projects with {edges} dependencies between them; {outside} declared packages are not projects of the tree",
        found.projects.len()
    );
    let Some(file) = write else {
        print!("{}", discover::render(&found, dirs));
        return Ok(());
    };
    let text = match &existing {
        Some(text) => {
            let edited = discover::update(text, &found)?;
            for change in &edited.changes {
                eprintln!("{change}");
            }
            for id in &edited.not_found {
                eprintln!("{id}: not found in the tree, kept as it is");
            }
            if edited.text == *text {
                eprintln!("{} is up to date", file.display());
                return Ok(());
            }
            edited.text
        }
        None => discover::render(&found, dirs),
    };
    // Written beside and renamed over, so an interrupted write leaves the old file.
    let partial = file.with_extension("toml.partial");
    std::fs::write(&partial, &text)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    std::fs::rename(&partial, file)
        .with_context(|| format!("cannot replace {}", file.display()))?;
    eprintln!("wrote {}", file.display());
    Ok(())
}

async fn apply(file: &std::path::Path, client: &Client) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let env = |k: &str| std::env::var(k).ok();
    let dir = file.parent().unwrap_or(std::path::Path::new("."));
    let entries = crate::apply::parse_with(&text, &crate::apply::Secrets { env: &env, dir })?;
    let applied = match client.apply_projects(&entries).await {
        Ok(applied) => applied,
        Err(ClientError::Refused { error, .. }) if !error.entries.is_empty() => {
            for e in &error.entries {
                let project = e.project.as_deref().unwrap_or("?");
                eprintln!(
                    "refused {project} (entry {}): {} ({})",
                    e.index + 1,
                    e.message,
                    e.error
                );
            }
            bail!("{}", error.message);
        }
        Err(e) => return Err(e.into()),
    };
    for answer in &applied.projects {
        let id = &answer.project.id;
        match &answer.report_token {
            Some(t) => println!("{} {id} (report token, shown once: {t})", answer.outcome),
            None => println!("{} {id}", answer.outcome),
        }
        for w in &answer.warnings {
            println!("  warning: {w}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_named_on_the_command_line_is_not_taken_for_the_bearer_token() {
        let cli = Cli::try_parse_from([
            "conjunction",
            "--token",
            "cjp_mine",
            "token",
            "revoke",
            "wallboard",
        ])
        .unwrap();
        assert_eq!(cli.token.as_deref(), Some("cjp_mine"));
        match cli.command {
            Some(Command::Token(TokenCommand::Revoke { which })) => assert_eq!(which, "wallboard"),
            other => panic!("parsed as {other:?}"),
        }
    }
}
