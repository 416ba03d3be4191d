//! People's tokens: issuing one, revoking one, and writing down when each was last
//! used. Who may issue or revoke what is checked here, inside the transaction that
//! does it, so a token revoked in one batch cannot issue another in the same batch.

use conjunction_protocol::access::{TokenInfo, TokenIssued, TokenRequest};
use conjunction_protocol::audit::Action;
use conjunction_protocol::Timestamp;

use super::work::Work;
use crate::auth::{generate_token, hash_token, Caller, PERSON_TOKEN_PREFIX};
use crate::planner::Refusal;
use crate::store::{PersonToken, StoreError};

pub(super) fn issue(
    work: &mut Work<'_, '_>,
    request: TokenRequest,
    by: &Caller,
) -> Result<Result<TokenIssued, Refusal>, StoreError> {
    if !by.scope.may_issue(&request.scope) {
        return Ok(Err(Refusal::OutOfScope(format!(
            "{} may not issue a {} token: a maintainer issues viewer tokens and maintainer tokens inside its own projects, an operator any token; ask an operator",
            by.describe(),
            request.scope
        ))));
    }
    let name = request.name.trim().to_owned();
    if work.tx.people()?.iter().any(|(_, p)| p.info.name == name) {
        return Ok(Err(Refusal::TokenNameInUse(name)));
    }
    let token = generate_token(PERSON_TOKEN_PREFIX);
    let info = TokenInfo {
        id: work.next_id().0.to_string(),
        name,
        scope: request.scope,
        created_at: work.now,
        created_by: by.name.clone(),
        expires_at: request.expires_at,
        last_used_at: None,
    };
    let person = PersonToken {
        info: info.clone(),
        issuer: by.token.clone(),
    };
    work.tx.put_person(&hash_token(&token), &person)?;
    let detail = format!("{} ({})", info.name, info.scope);
    work.tx
        .audit(work.now, &by.actor(), Action::TokenIssued, None, detail)?;
    Ok(Ok(TokenIssued { token, info }))
}

pub(super) fn revoke(
    work: &mut Work<'_, '_>,
    id: &str,
    by: &Caller,
) -> Result<Result<TokenInfo, Refusal>, StoreError> {
    let found = work.tx.people()?.into_iter().find(|(_, p)| p.info.id == id);
    let Some((hash, person)) = found else {
        return Ok(Err(Refusal::UnknownToken(id.to_owned())));
    };
    if !by.may_revoke(id, &person.info.scope, person.issuer.as_deref()) {
        return Ok(Err(Refusal::OutOfScope(format!(
            "{} may not revoke {} ({}): an operator revokes any token, a maintainer its own, those it issued and maintainer tokens inside its own projects",
            by.describe(),
            person.info.name,
            person.info.scope
        ))));
    }
    work.tx.remove_person(&hash)?;
    let detail = format!("{} ({})", person.info.name, person.info.scope);
    work.tx
        .audit(work.now, &by.actor(), Action::TokenRevoked, None, detail)?;
    Ok(Ok(person.info))
}

/// Writes down when tokens were last used; a token revoked since is left alone.
pub(super) fn used(
    work: &mut Work<'_, '_>,
    used: &[(String, Timestamp)],
) -> Result<(), StoreError> {
    for (hash, mut person) in work.tx.people()? {
        let latest = used
            .iter()
            .filter(|(id, _)| *id == person.info.id)
            .map(|(_, at)| *at)
            .max();
        if let Some(at) = latest.filter(|at| person.info.last_used_at < Some(*at)) {
            person.info.last_used_at = Some(at);
            work.tx.put_person(&hash, &person)?;
        }
    }
    Ok(())
}
