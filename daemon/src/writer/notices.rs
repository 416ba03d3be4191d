//! Notices: queued in the same transaction as the change they tell of, one outbox
//! entry per channel, each recorded on the build it is about; and the notifier's
//! outcome of every try, recorded on that build as it comes.

use conjunction_protocol::notify::{Notice, NoticeKind, NoticeState};
use conjunction_protocol::{BuildId, Node, StateKind};

use super::work::Work;
use crate::notify::message::{excerpt, Digest, MailRef, Message};
use crate::notify::route::{route, Side};
use crate::store::{NoticeEntry, StoreError};

/// What the notifier made of one try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoticeOutcome {
    Sent {
        tries: u32,
    },
    /// Try again at `due`.
    Retry {
        due: conjunction_protocol::Timestamp,
        tries: u32,
        error: String,
    },
    GaveUp {
        tries: u32,
        error: String,
    },
}

/// The kinds already told about `node`, oldest first.
pub(super) fn told(node: &Node) -> Vec<NoticeKind> {
    node.notices.iter().map(|n| n.kind).collect()
}

/// Queues a notice of `kind` about `node` (a dependent of the event, or its root for
/// the digest) to every channel the rules of the sides it concerns route it to, and
/// lists each on the node. `digest` holds the event's numbers for a digest;
/// `replies_to`, the mail a fix answers. Returns the mail it queued, if any.
pub(super) fn queue(
    work: &mut Work<'_, '_>,
    node: &mut Node,
    kind: NoticeKind,
    digest: Option<Digest>,
    replies_to: Option<MailRef>,
) -> Result<Option<MailRef>, StoreError> {
    let record = &work.event(node.root)?.record;
    let (upstream_id, version, environment, root, candidate) = (
        record.project.clone(),
        record.version.clone(),
        record.environment.clone(),
        record.id,
        record.candidate.clone(),
    );
    let upstream = work.tx.project(&upstream_id)?;
    let downstream = if kind == NoticeKind::Digest {
        None
    } else {
        work.tx.project(&node.project)?
    };
    let (up_contacts, up_rules) = upstream
        .as_ref()
        .map(|p| (p.contacts.as_slice(), p.notify.as_slice()))
        .unwrap_or_default();
    let up = Side {
        project: &upstream_id,
        contacts: up_contacts,
        rules: up_rules,
    };
    // A dependent did not ask to hear of unmerged changes, unless it says so.
    let down = downstream
        .as_ref()
        .filter(|p| candidate.is_none() || p.notify_candidates)
        .map(|p| Side {
            project: &p.id,
            contacts: &p.contacts,
            rules: &p.notify,
        });
    let targets = route(kind, down, up, work.email_default);
    if targets.is_empty() {
        return Ok(None);
    }
    let state = node.state.kind();
    let message = Message {
        kind,
        upstream: upstream_id.clone(),
        version,
        environment,
        candidate,
        root,
        project: node.project.clone(),
        build: node.id,
        attempt: node.attempt,
        state,
        verdict: node.verdict,
        url: node.url.clone(),
        excerpt: node
            .summary
            .as_deref()
            .filter(|_| matches!(state, StateKind::Failed | StateKind::Errored))
            .map(excerpt),
        reason: node.state.reason(),
        downstream_contacts: downstream.map(|p| p.contacts).unwrap_or_default(),
        upstream_contacts: up_contacts.to_vec(),
        digest,
        replies_to,
    };
    let mut mail = None;
    for target in targets {
        let id = work.next_id();
        if matches!(
            target.channel,
            conjunction_protocol::notify::Channel::Email { .. }
        ) {
            mail = Some(MailRef { notice: id, root });
        }
        node.notices.push(Notice {
            kind,
            channel: target.label,
            to: target.to,
            state: NoticeState::Queued,
            tries: 0,
            at: work.now,
            error: None,
        });
        let entry = NoticeEntry {
            id,
            build: node.id,
            index: (node.notices.len() - 1) as u32,
            channel: target.channel,
            message: message.clone(),
            tries: 0,
            due: work.now,
            last_error: None,
        };
        work.queue_notice(entry)?;
    }
    Ok(mail)
}

/// Records how a try went on the notice's build; a notice sent or given up leaves
/// the outbox. An outcome for a notice no longer there (recorded before a restart
/// sent it again) changes nothing.
pub(super) fn record(
    work: &mut Work<'_, '_>,
    id: BuildId,
    outcome: NoticeOutcome,
) -> Result<(), StoreError> {
    let Some(mut entry) = work.tx.notice(id)? else {
        return Ok(());
    };
    let Some(mut node) = work.tx.node(entry.build)? else {
        work.tx.remove_notice(id)?;
        return Ok(());
    };
    let now = work.now;
    if let Some(notice) = node.notices.get_mut(entry.index as usize) {
        match &outcome {
            NoticeOutcome::Sent { tries } => {
                notice.state = NoticeState::Sent;
                notice.tries = *tries;
                notice.at = now;
                notice.error = None;
            }
            NoticeOutcome::Retry { tries, error, .. } => {
                notice.tries = *tries;
                notice.error = Some(error.clone());
            }
            NoticeOutcome::GaveUp { tries, error } => {
                notice.state = NoticeState::GaveUp;
                notice.tries = *tries;
                notice.at = now;
                notice.error = Some(error.clone());
            }
        }
    }
    match outcome {
        NoticeOutcome::Retry { due, tries, error } => {
            entry.due = due;
            entry.tries = tries;
            entry.last_error = Some(error);
            work.tx.put_notice(&entry)?;
        }
        NoticeOutcome::Sent { .. } | NoticeOutcome::GaveUp { .. } => work.tx.remove_notice(id)?,
    }
    work.tx.put_node(now, &mut node)
}
