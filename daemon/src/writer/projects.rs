//! Projects: creating and updating them, one or a whole list at once, and deleting
//! them. Each costs what the project's own record and edges cost, whatever the number
//! of projects registered.

use std::collections::{HashMap, HashSet};

use conjunction_protocol::audit::{Action, Actor, Changed};
use conjunction_protocol::project::{DependencyOrigin, ProjectUpserted};
use conjunction_protocol::ws::Change;
use conjunction_protocol::{ProjectEntry, ProjectId};

use super::work::{GraphChange, Work};
use super::{EntryRefusal, WriteError};
use crate::auth::{generate_token, hash_token, TokenHash};
use crate::planner::versions::{Ecosystem, Range};
use crate::planner::{Graph, Principal, Refusal};
use crate::store::{StoreError, StoredProject};

/// Creates or updates every entry, or, if any is refused or `commit` is false, none:
/// every entry is checked before the first is written.
pub(super) fn apply(
    work: &mut Work<'_, '_>,
    entries: Vec<(usize, ProjectEntry)>,
    commit: bool,
    by: &Actor,
) -> Result<Result<Vec<(ProjectUpserted, bool)>, WriteError>, StoreError> {
    let mut refused = Vec::new();
    let mut existing = Vec::with_capacity(entries.len());
    {
        // Ranges are read in the ecosystem of their upstream as it will be once the
        // list is in: an entry's own package, or the registered project's.
        let listed_ecosystems: HashMap<&ProjectId, Option<Ecosystem>> = entries
            .iter()
            .map(|(_, e)| (&e.id, e.spec.package.as_ref().map(|p| p.ecosystem)))
            .collect();
        for (index, entry) in &entries {
            let refuse = |refusal| EntryRefusal {
                index: *index,
                project: entry.id.clone(),
                refusal,
            };
            if let Some(refusal) = check_ranges(work.graph, entry, &listed_ecosystems) {
                refused.push(refuse(refusal));
            }
        }
        let mut listed: HashSet<&ProjectId> = HashSet::new();
        let mut claimed: HashMap<TokenHash, &ProjectId> = HashMap::new();
        for (index, entry) in &entries {
            existing.push(work.tx.project(&entry.id)?);
            let refuse = |refusal| EntryRefusal {
                index: *index,
                project: entry.id.clone(),
                refusal,
            };
            if !listed.insert(&entry.id) {
                refused.push(refuse(Refusal::ListedTwice(entry.id.clone())));
                continue;
            }
            if let Some(token) = &entry.spec.report_token {
                let hash = hash_token(token);
                let own = Principal::Project {
                    project: entry.id.clone(),
                };
                let held_elsewhere = work.tx.token_owner(&hash)?.is_some_and(|o| o != own);
                let claimed_in_list = claimed.insert(hash, &entry.id).is_some();
                if held_elsewhere || claimed_in_list {
                    refused.push(refuse(Refusal::TokenInUse));
                }
            }
        }
    }
    if !refused.is_empty() || !commit {
        return Ok(Err(WriteError::RefusedEntries(refused)));
    }
    let mut applied = Vec::with_capacity(entries.len());
    let mut cycles = Vec::new();
    for ((_, entry), old) in entries.into_iter().zip(existing) {
        let (answer, created, added) = upsert(work, entry, old, by)?;
        cycles.extend(work.graph.cycle_closed_by(&answer.project.id, &added));
        applied.push((answer, created));
    }
    // Warnings once the whole list is in: depending on a project further down the
    // list is nothing to warn about, and a cycle the list closed is named on every
    // project of the list on it.
    let listed: HashMap<ProjectId, usize> = applied
        .iter()
        .enumerate()
        .map(|(i, (a, _))| (a.project.id.clone(), i))
        .collect();
    for cycle in &cycles {
        for (at, member) in cycle.iter().enumerate().skip(1) {
            if let Some(&i) = listed.get(member) {
                let warning = cycle_warning(cycle, at);
                let warnings = &mut applied[i].0.warnings;
                if !warnings.contains(&warning) {
                    warnings.push(warning);
                }
            }
        }
    }
    for (answer, _) in &mut applied {
        answer
            .warnings
            .extend(unregistered_upstreams(work.graph, &answer.project));
    }
    Ok(Ok(applied))
}

/// Checks that every range `entry` declares reads in its upstream's ecosystem, and
/// that every range its registered dependents declare on it still reads in its own
/// (a dependent in the list is checked with its new ranges instead).
fn check_ranges(
    graph: &Graph,
    entry: &ProjectEntry,
    listed: &HashMap<&ProjectId, Option<Ecosystem>>,
) -> Option<Refusal> {
    let no_package = |upstream: &ProjectId| {
        format!("; {upstream} declares no package, so ranges on it are read as Cargo's")
    };
    let ecosystem_of = |upstream: &ProjectId| -> (Ecosystem, String) {
        match listed.get(upstream) {
            Some(Some(e)) => return (*e, String::new()),
            Some(None) => return (Ecosystem::default(), no_package(upstream)),
            None => {}
        }
        let why = if !graph.is_registered(upstream) {
            format!("; {upstream} is not registered, so ranges on it are read as Cargo's: register it with its package first")
        } else if graph.package_ecosystem(upstream).is_none() {
            no_package(upstream)
        } else {
            String::new()
        };
        (graph.ecosystem(upstream), why)
    };
    for (i, d) in entry.spec.depends_on.iter().enumerate() {
        let (ecosystem, why) = ecosystem_of(&d.project);
        let mut ranges: Vec<(String, &str)> = Vec::new();
        if let Some(r) = &d.range {
            ranges.push((format!("depends_on[{i}].range"), r));
        }
        for (k, l) in d.lines.iter().enumerate() {
            ranges.push((format!("depends_on[{i}].lines[{k}].range"), &l.range));
        }
        for (field, text) in ranges {
            if let Err(bad) = Range::parse(ecosystem, text) {
                return Some(Refusal::BadRange {
                    field,
                    bad,
                    why_ecosystem: why,
                });
            }
        }
    }
    let new = listed.get(&entry.id).copied().flatten().unwrap_or_default();
    if new != graph.ecosystem(&entry.id) {
        for (dependent, want) in graph.wants_on(&entry.id) {
            if listed.contains_key(dependent) {
                continue;
            }
            for range in want.ranges() {
                if let Err(bad) = Range::parse(new, range) {
                    return Some(Refusal::BreaksRanges {
                        project: entry.id.clone(),
                        ecosystem: new,
                        dependent: dependent.clone(),
                        range: range.to_owned(),
                        why: bad.why,
                    });
                }
            }
        }
    }
    None
}

/// `dependency cycle: x -> ... -> x` for the cycle `path` read from its node `at`.
fn cycle_warning(path: &[ProjectId], at: usize) -> String {
    // A cycle's path starts and ends with the same project; drop the repeat, then
    // start from `at` and come back to it.
    let ring = &path[..path.len() - 1];
    let at = at % ring.len();
    let rotated: Vec<&str> = ring[at..]
        .iter()
        .chain(&ring[..=at])
        .map(ProjectId::as_str)
        .collect();
    format!("dependency cycle: {}", rotated.join(" -> "))
}

/// Writes one checked entry. Returns the answer, whether the project is new, and the
/// upstreams it did not depend on before.
fn upsert(
    work: &mut Work<'_, '_>,
    entry: ProjectEntry,
    old: Option<StoredProject>,
    by: &Actor,
) -> Result<(ProjectUpserted, bool, Vec<ProjectId>), StoreError> {
    let ProjectEntry { id, spec } = entry;
    let mut generated = None;
    let token_hash = match (&spec.report_token, &old) {
        (Some(t), _) => hash_token(t),
        (None, Some(p)) => p.token_hash(),
        (None, None) => {
            let t = generate_token("cjr");
            let h = hash_token(&t);
            generated = Some(t);
            h
        }
    };
    let now = work.now;
    let action = if old.is_some() {
        Action::ProjectUpdated
    } else {
        Action::ProjectCreated
    };
    // Once a build's manifests set a from_manifest project's dependencies, the
    // file's depends_on (which only starts the graph) does not undo them.
    let from_manifest = old
        .as_ref()
        .filter(|o| spec.dependencies == DependencyOrigin::FromManifest && o.manifest.is_some());
    let mut warnings = Vec::new();
    let (depends_on, manifest) = match from_manifest {
        Some(o) => {
            if let Some(source) = o
                .manifest
                .as_ref()
                .filter(|_| spec.depends_on != o.depends_on)
            {
                warnings.push(format!(
                    "{id} takes its dependencies from_manifest: depends_on stays as build {}'s manifests set it, not as given here",
                    source.build
                ));
            }
            (o.depends_on.clone(), o.manifest.clone())
        }
        None => (spec.depends_on, None),
    };
    let stored = StoredProject {
        id: id.clone(),
        name: spec.name,
        contacts: spec.contacts,
        depends_on,
        trigger: spec.trigger,
        package: spec.package,
        source: spec.source,
        reconcile_after_secs: spec.reconcile_after_secs,
        confirm_failures: spec.confirm_failures,
        badges: spec.badges,
        notify: spec.notify,
        notify_candidates: spec.notify_candidates,
        trusted_ci: spec.trusted_ci,
        report_to: spec.report_to,
        dependencies: spec.dependencies,
        dev_dependencies: spec.dev_dependencies,
        manifest,
        report_token_sha256: hex::encode(token_hash),
        created_at: old.as_ref().map_or(now, |p| p.created_at),
        updated_at: now,
        changed: Some(Changed {
            by: by.clone(),
            at: now,
            action,
        }),
    };
    let outcome = match &old {
        None => "created",
        Some(p) if p.same_settings(&stored) => "unchanged",
        Some(_) => "updated",
    };
    let added: Vec<ProjectId> = stored
        .depends_on
        .iter()
        .map(|d| d.project.clone())
        .filter(|u| {
            old.as_ref()
                .is_none_or(|o| !o.depends_on.iter().any(|d| &d.project == u))
        })
        .collect();
    let project = match old {
        Some(old) if outcome == "unchanged" => old.view(),
        old => {
            if let Some(old) = old.filter(|o| o.report_token_sha256 != stored.report_token_sha256) {
                work.tx.remove_token(&old.token_hash())?;
            }
            work.tx.put_token(
                &token_hash,
                &Principal::Project {
                    project: id.clone(),
                },
            )?;
            work.tx.audit(now, by, action, Some(&id), String::new())?;
            work.change_graph(GraphChange::of(&stored));
            save(work, &stored)?
        }
    };
    Ok((
        ProjectUpserted {
            project,
            outcome: outcome.to_owned(),
            report_token: generated,
            warnings,
        },
        outcome == "created",
        added,
    ))
}

/// Writes `stored` and tells the feed its new state; answers that state.
pub(super) fn save(
    work: &mut Work<'_, '_>,
    stored: &StoredProject,
) -> Result<conjunction_protocol::Project, StoreError> {
    work.tx.put_project(stored)?;
    let view = stored.view();
    work.tx.emit(
        work.now,
        Change::ProjectUpserted {
            project: view.clone(),
        },
    )?;
    Ok(view)
}

/// A warning for each upstream of `project` that nobody registered.
fn unregistered_upstreams(graph: &Graph, project: &conjunction_protocol::Project) -> Vec<String> {
    project
        .depends_on
        .iter()
        .filter(|d| !graph.is_registered(&d.project))
        .map(|d| {
            format!(
                "{} is not registered yet; {} will be triggered by it once it is registered and reports",
                d.project, project.id
            )
        })
        .collect()
}

/// Gives `id` a new generated report token in place of its old one, which stops
/// working with this commit. The new token is in the answer only.
pub(super) fn rotate_report_token(
    work: &mut Work<'_, '_>,
    id: &ProjectId,
    by: &Actor,
) -> Result<Result<String, Refusal>, StoreError> {
    let Some(mut stored) = work.tx.project(id)? else {
        return Ok(Err(Refusal::UnknownProject(id.clone())));
    };
    let token = generate_token("cjr");
    let hash = hash_token(&token);
    work.tx.remove_token(&stored.token_hash())?;
    work.tx.put_token(
        &hash,
        &Principal::Project {
            project: id.clone(),
        },
    )?;
    let now = work.now;
    stored.report_token_sha256 = hex::encode(hash);
    stored.updated_at = now;
    stored.changed = Some(Changed {
        by: by.clone(),
        at: now,
        action: Action::ProjectUpdated,
    });
    save(work, &stored)?;
    work.tx.audit(
        now,
        by,
        Action::ProjectUpdated,
        Some(id),
        "report token rotated".into(),
    )?;
    Ok(Ok(token))
}

pub(super) fn delete(
    work: &mut Work<'_, '_>,
    id: &ProjectId,
    by: &Actor,
) -> Result<Result<(), Refusal>, StoreError> {
    let Some(existing) = work.tx.project(id)? else {
        return Ok(Err(Refusal::UnknownProject(id.clone())));
    };
    work.tx.remove_project(id)?;
    work.tx.remove_token(&existing.token_hash())?;
    work.change_graph(GraphChange::Remove {
        project: id.clone(),
    });
    work.tx.emit(
        work.now,
        Change::ProjectDeleted {
            project: id.clone(),
        },
    )?;
    work.tx.audit(
        work.now,
        by,
        Action::ProjectDeleted,
        Some(id),
        String::new(),
    )?;
    Ok(Ok(()))
}
