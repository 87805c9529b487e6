//! The token endpoint's one trip when the session store is this database's
//! `session_entries` table (the embedded default): the code taken, its use
//! recorded, the SSO session and the user read, in one blocking call and one
//! transaction.

use async_trait::async_trait;
use diesel::prelude::*;
use federa_broker::store::{CodeRedeemer, Redeemed, Redemption};

use federa_broker::StoreError;

use super::errors::db_err;
use super::users::user_from_row;
use super::Res;
use crate::db::Conn;
use crate::rows::{SessionRow, UserRow};
use crate::schema::{realms, session_entries, users};
use crate::sessions::EmbeddedSessions;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A live entry's value.
fn live(c: &mut Conn, key: &str, now: i64) -> Res<Option<String>> {
    session_entries::table
        .filter(session_entries::key.eq(key).and(session_entries::expires_at.gt(now)))
        .select(session_entries::value)
        .first(c)
        .optional()
        .map_err(db_err)
}

/// Takes a live entry: only the caller whose delete removed it gets its value.
fn take(c: &mut Conn, key: &str, now: i64) -> Res<Option<String>> {
    let value = live(c, key, now)?;
    let deleted =
        diesel::delete(session_entries::table.filter(session_entries::key.eq(key))).execute(c).map_err(db_err)?;
    Ok(value.filter(|_| deleted == 1))
}

#[async_trait]
impl CodeRedeemer for EmbeddedSessions {
    async fn redeem_code(&self, r: Redemption) -> Res<Redeemed> {
        let (pool, gate) = (self.pool.clone(), self.gate.clone());
        let work = move || -> Res<Redeemed> {
            let _turn = gate.lock();
            let mut c = pool.get().map_err(|e| StoreError::Backend(format!("database pool: {e}")))?;
            let mut out = None;
            c.transaction::<_, diesel::result::Error, _>(|c| {
                out = Some(redeem(c, &r));
                // A failure inside rolls everything back.
                match &out {
                    Some(Err(_)) => Err(diesel::result::Error::RollbackTransaction),
                    _ => Ok(()),
                }
            })
            .or_else(|e| match e {
                diesel::result::Error::RollbackTransaction => Ok(()),
                e => Err(db_err(e)),
            })?;
            out.unwrap_or_else(|| Err(StoreError::Backend("transaction produced nothing".into())))
        };
        tokio::task::spawn_blocking(work).await.map_err(|e| StoreError::Backend(format!("blocking task: {e}")))?
    }
}

fn redeem(c: &mut Conn, r: &Redemption) -> Res<Redeemed> {
    let now = now_ms();
    let Some(grant) = take(c, &r.code_key, now)? else {
        let previous_use = take(c, &r.used_key, now)?;
        return Ok(Redeemed { previous_use, ..Redeemed::default() });
    };
    diesel::delete(session_entries::table.filter(session_entries::key.eq(&r.used_key))).execute(c).map_err(db_err)?;
    let ttl = i64::try_from(r.used_ttl.as_millis()).unwrap_or(i64::MAX / 2).max(1);
    let used = SessionRow { key: r.used_key.clone(), value: r.used_value.clone(), expires_at: now + ttl };
    diesel::insert_into(session_entries::table).values(&used).execute(c).map_err(db_err)?;
    let Some(refs) = (r.refs)(&r.realm, &grant) else {
        return Ok(Redeemed { grant: Some(grant), ..Redeemed::default() });
    };
    let session = live(c, &refs.session_key, now)?;
    let row = users::table
        .inner_join(realms::table.on(realms::id.eq(users::realm_id)))
        .filter(realms::name.eq(&r.realm).and(users::id.eq(&refs.user_id)))
        .select(UserRow::as_select())
        .first(c)
        .optional()
        .map_err(db_err)?;
    let user = row.map(user_from_row).transpose()?;
    Ok(Redeemed { grant: Some(grant), previous_use: None, session, user })
}
