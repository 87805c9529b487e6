//! [`AuditStore`] on [`DbStore`]: the audit trail.

use async_trait::async_trait;
use diesel::prelude::*;
use federa_broker::store::AuditEvent;
use federa_broker::AuditStore;

use super::errors::db_err;
use super::{to_json, DbStore, Res};
use crate::rows::*;
use crate::schema::*;

#[async_trait]
impl AuditStore for DbStore {
    async fn audit(&self, e: AuditEvent) -> Res<()> {
        let details = to_json(&e.details)?;
        self.run_write(move |c, _| {
            diesel::insert_into(audit_events::table)
                .values(AuditRow {
                    id: uuid::Uuid::new_v4().to_string(),
                    realm_name: e.realm,
                    kind: e.kind,
                    resource: e.resource,
                    details,
                    occurred_at: e.time,
                })
                .execute(c)
                .map_err(db_err)?;
            Ok(())
        })
        .await
    }
}
